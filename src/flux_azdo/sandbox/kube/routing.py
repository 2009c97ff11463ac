"""Routing, authentication and authorization in front of the resource verbs, as the apiserver's filters do.

Paths are parsed like the apiserver's RequestInfo (`/api/v1/namespaces/x/secrets/y`, `/apis/g/v/...`, and the
namespace's own `status`/`finalize`); a missing or unknown bearer token is `401 Unauthorized`; then the user's
rules decide (403 with the real message); then discovery, OpenAPI or the resource verb answers. Watches stream
chunked JSON lines until the client leaves, the timeout passes, or the server stops. Every answer is recorded in
the request log before it is written, so a client that has its answer finds its request counted.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from flux_azdo.sandbox.kube import discovery, errors, openapi, watch
from flux_azdo.sandbox.kube.access import Attributes, User, Users, authorize
from flux_azdo.sandbox.kube.calls import CRD_KEY, NAMESPACE_KEY, TABLE, Call, Reply, wants
from flux_azdo.sandbox.kube.errors import ApiError
from flux_azdo.sandbox.kube.requestlog import RequestLog, RequestRecord
from flux_azdo.sandbox.kube.resources import Registry
from flux_azdo.sandbox.kube.rest import Api
from flux_azdo.sandbox.kube.transport import Handler, peer_closed

MAX_BODY = 3 * 1024 * 1024
_TRUE = ("1", "t", "T", "true", "TRUE", "True")


@dataclass
class _Exchange:
    """What is known about the request being served, filled in as routing learns it (for the request log)."""

    method: str
    path: str
    content_type: str
    verb: str = ""
    user: str = ""
    call: Call | None = None

    def record(self, code: int) -> RequestRecord:
        call = self.call
        if call is None:
            return RequestRecord(self.method, self.path, self.verb, user=self.user, code=code)
        return RequestRecord(
            self.method,
            self.path,
            self.verb,
            group=call.resource.group,
            version=call.version,
            resource=call.resource.plural,
            subresource=call.subresource,
            namespace=call.namespace,
            name=call.name,
            user=self.user,
            code=code,
            dry_run=call.dry_run,
            content_type=self.content_type,
            review=call.resource.virtual,
        )


class App:
    """Routing, authentication and authorization in front of `rest.Api`."""

    def __init__(
        self,
        users: Users,
        registry: Registry,
        api: Api,
        address: Callable[[], str],
        *,
        version_info: dict[str, Any] | None = None,
        log: RequestLog | None = None,
        bookmark_interval: float = watch.DEFAULT_BOOKMARK_INTERVAL,
    ) -> None:
        self.users = users
        self.registry = registry
        self.api = api
        #: host:port as clients reach it (for /api's serverAddressByClientCIDRs).
        self.address = address
        self.version_info = dict(version_info or discovery.VERSION_INFO)
        self.log = log if log is not None else RequestLog()
        self.bookmark_interval = bookmark_interval

    # ------------------------------------------------------------------------------------------------ plumbing

    def handle(self, handler: Handler) -> None:
        content_type = handler.headers.get("Content-Type", "").split(";")[0].strip().lower()
        exchange = _Exchange(handler.command, urlsplit(handler.path).path, content_type)
        try:
            self._handle(handler, exchange)
        except ApiError as error:
            self._send(handler, exchange, Reply(error.code, error.status()), list(error.headers.items()))
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True
        except Exception as error:  # the real server answers 500 and keeps serving
            self._send(handler, exchange, Reply(500, errors.internal(str(error)).status()))

    def _send(
        self, handler: Handler, exchange: _Exchange, reply: Reply, headers: list[tuple[str, str]] | None = None
    ) -> None:
        self.log.add(exchange.record(reply.code))
        payload = reply.raw if reply.raw is not None else json.dumps(reply.body, separators=(",", ":")).encode() + b"\n"
        handler.send_response(reply.code)
        handler.send_header("Content-Type", reply.content_type)
        handler.send_header("Content-Length", str(len(payload)))
        handler.send_header("Cache-Control", "no-cache, private")
        for name, value in headers or []:
            handler.send_header(name, value)
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(payload)

    def _read_body(self, handler: Handler) -> bytes:
        if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            total = 0
            while True:
                size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_BODY:
                    raise ApiError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {MAX_BODY}")
                chunks.append(handler.rfile.read(size))
                handler.rfile.readline()
            return b"".join(chunks)
        length = int(handler.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ApiError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {MAX_BODY}")
        return handler.rfile.read(length) if length else b""

    # ------------------------------------------------------------------------------------------------- routing

    def _handle(self, handler: Handler, exchange: _Exchange) -> None:
        split = urlsplit(handler.path)
        query = {key: values[-1] for key, values in parse_qs(split.query, keep_blank_values=True).items()}
        segments = [segment for segment in split.path.split("/") if segment]
        method = handler.command
        exchange.verb = "get" if method == "GET" else method.lower()
        body = self._read_body(handler)
        try:
            user = self.users.authenticate(handler.headers.get("Authorization"))
        except ApiError:
            self._describe(handler, exchange, segments, query)
            raise
        exchange.user = user.name
        if not segments or segments[0] not in ("api", "apis") or self._is_discovery(segments):
            authorize(user, Attributes(verb=exchange.verb, path=split.path or "/"))
            if method not in ("GET", "HEAD"):
                raise errors.method_not_allowed()
            self._send(handler, exchange, self._non_resource(handler, segments, query))
            return
        call, verb = self._route(handler, segments, query, body, user)
        exchange.call, exchange.verb = call, verb
        namespace = call.namespace or (call.name if call.resource.key == NAMESPACE_KEY else "")
        authorize(
            user,
            Attributes(
                verb=verb,
                group=call.resource.group,
                resource=call.resource.plural,
                subresource=call.subresource,
                namespace=namespace,
                name=call.name,
            ),
        )
        if verb == "watch":
            self._watch(handler, exchange, watch.prepare(call))
            return
        reply = self._dispatch(verb, call)
        warnings = [("Warning", f"299 - {json.dumps(text)}") for text in call.warnings]
        self._send(handler, exchange, reply, warnings)

    def _describe(self, handler: Handler, exchange: _Exchange, segments: list[str], query: dict[str, str]) -> None:
        """Fill in what the request addresses for the log, as the apiserver's RequestInfo knows it before authn."""
        if not segments or segments[0] not in ("api", "apis") or self._is_discovery(segments):
            return
        with contextlib.suppress(ApiError):
            exchange.call, exchange.verb = self._route(handler, segments, query, b"", User("", ()))

    @staticmethod
    def _is_discovery(segments: list[str]) -> bool:
        if segments[0] == "api":
            return len(segments) <= 2
        return len(segments) <= 3

    def _non_resource(self, handler: Handler, segments: list[str], query: dict[str, str]) -> Reply:
        accept = handler.headers.get("Accept", "")
        path = "/" + "/".join(segments)
        if path == "/version":
            return Reply(200, dict(self.version_info))
        if path in ("/healthz", "/livez", "/readyz"):
            return Reply(200, {"status": "ok"})
        if path == "/openapi/v3":
            return Reply(200, openapi.root(self.registry))
        if path == "/openapi/v2":
            return openapi.v2(accept)
        if segments[:2] == ["openapi", "v3"] and len(segments) > 2:
            rest = segments[2:]
            group, version = (
                ("", rest[1])
                if rest[0] == "api" and len(rest) == 2
                else ((rest[1], rest[2]) if rest[0] == "apis" and len(rest) == 3 else ("", ""))
            )
            document = openapi.document(self.registry, group, version) if version else None
            if document is None:
                raise errors.no_route()
            return Reply(200, document)
        if segments and segments[0] in ("api", "apis"):
            return self._discovery(segments, accept)
        raise errors.no_route()

    def _discovery(self, segments: list[str], accept: str) -> Reply:
        aggregated = discovery.aggregated_format(accept)
        with self.api.store.lock:
            if segments == ["api"]:
                if aggregated:
                    content = discovery.AGGREGATED_V2 if aggregated == "v2" else discovery.AGGREGATED_V2BETA1
                    return Reply(200, discovery.aggregated(self.registry, True, aggregated), content)
                return Reply(200, discovery.api_versions(self.address()))
            if segments == ["apis"]:
                if aggregated:
                    content = discovery.AGGREGATED_V2 if aggregated == "v2" else discovery.AGGREGATED_V2BETA1
                    return Reply(200, discovery.aggregated(self.registry, False, aggregated), content)
                return Reply(200, discovery.group_list(self.registry))
            if segments[0] == "api" and len(segments) == 2:
                found = discovery.resource_list(self.registry, "", segments[1])
            elif len(segments) == 2:
                found = discovery.group(self.registry, segments[1])
            else:
                found = discovery.resource_list(self.registry, segments[1], segments[2])
        if found is None:
            raise errors.no_route()
        return Reply(200, found)

    def _route(
        self, handler: Handler, segments: list[str], query: dict[str, str], body: bytes, user: User
    ) -> tuple[Call, str]:
        if segments[0] == "api":
            group, version, rest = "", segments[1], segments[2:]
        else:
            group, version, rest = segments[1], segments[2], segments[3:]
        namespace = ""
        # `namespaces/x/status` and `namespaces/x/finalize` address the namespace itself.
        if len(rest) > 2 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise errors.no_route()
        with self.api.store.lock:
            resource = self.registry.lookup(group, version, rest[0])
        if resource is None:
            raise errors.no_route()
        name = rest[1] if len(rest) > 1 else ""
        subresource = rest[2] if len(rest) > 2 else ""
        if namespace and not resource.namespaced:
            raise errors.no_route()
        if subresource and subresource not in resource.subresources:
            raise errors.no_route()
        if resource.namespaced and name and not namespace:
            raise errors.no_route()
        headers = {key.lower(): value for key, value in handler.headers.items() if key.lower() != "authorization"}
        call = Call(user, resource, version, namespace, name, subresource, query, headers, body)
        return call, self._verb(handler.command, call)

    @staticmethod
    def _verb(method: str, call: Call) -> str:
        resource = call.resource
        if method in ("GET", "HEAD"):
            verb = "get" if call.name else ("watch" if call.query.get("watch") in _TRUE else "list")
        elif method == "POST":
            verb = "create"
        elif method == "PUT":
            verb = "update"
        elif method == "PATCH":
            verb = "patch"
        elif method == "DELETE":
            verb = "delete" if call.name else "deletecollection"
        else:
            raise errors.method_not_allowed()
        if call.subresource:
            allowed = ("update",) if call.subresource == "finalize" else ("get", "patch", "update")
            if verb not in allowed:
                raise errors.method_not_allowed()
            return verb
        if verb not in resource.verbs and not (verb == "watch" and "list" in resource.verbs):
            raise errors.method_not_allowed()
        if verb == "create" and resource.namespaced and not call.namespace:
            raise errors.method_not_allowed()
        if verb in ("update", "patch") and not call.name:
            raise errors.method_not_allowed()
        return verb

    def _dispatch(self, verb: str, call: Call) -> Reply:
        if call.resource.virtual:
            return self.api.review(call)
        if verb in ("create", "update", "patch"):
            self._check_custom_writable(call, verb)
        handlers = {
            "get": self.api.get,
            "list": self.api.list_objects,
            "create": self.api.create,
            "update": self.api.replace,
            "patch": self.api.patch,
            "delete": self.api.delete,
            "deletecollection": self.api.delete_collection,
        }
        return handlers[verb](call)

    def _check_custom_writable(self, call: Call, verb: str) -> None:
        if not call.resource.custom or verb != "create":
            return
        crd = self.api.store.get(CRD_KEY, "", f"{call.resource.plural}.{call.resource.group}")
        if crd is not None and crd["metadata"].get("deletionTimestamp"):
            raise ApiError(
                405, "MethodNotAllowed", "create not allowed while custom resource definition is terminating", {}
            )

    def _watch(self, handler: Handler, exchange: _Exchange, plan: watch.WatchPlan) -> None:
        self.log.add(exchange.record(200))
        handler.send_response(200)
        content_type = TABLE if wants(plan.call.accept, "Table") else "application/json"
        handler.send_header("Content-Type", content_type)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.send_header("Cache-Control", "no-cache, private")
        handler.end_headers()
        handler.wfile.flush()

        def send(line: bytes) -> None:
            handler.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
            handler.wfile.flush()

        watch.stream(self.api, plan, send, lambda: peer_closed(handler.connection), self.bookmark_interval)
        try:
            handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()
        except OSError:
            handler.close_connection = True
