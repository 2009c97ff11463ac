"""AzureServer: Microsoft Entra ID and Azure Resource Manager on one HTTPS port of 127.0.0.1.

MSAL refuses an authority that is not https, so the server speaks TLS with a CA of its own, written to `ca_file`
for clients (`REQUESTS_CA_BUNDLE`, or azure-core's `connection_verify`). Paths:

* `GET /{tenant}/v2.0/.well-known/openid-configuration`, `GET /{tenant}/discovery/v2.0/keys`,
  `POST /{tenant}/oauth2/v2.0/token`, `GET /common/discovery/instance`: Entra ID (`entra.py`; the v1 endpoints
  are not served: the clients the product uses never call them);
* `/subscriptions/...`: ARM (`arm.py`).

Besides serving HTTP it gives the other sandbox parts their view of Entra: `kube_authenticator` (AKS's webhook
authentication: an Entra token for the AKS server app names the principal's object id as the Kubernetes user)
and `azure_devops_claims` (the claims of an Entra token for Azure DevOps, for the sandbox organisation).
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from flux_azdo.sandbox.azure.arm import ResourceManager
from flux_azdo.sandbox.azure.entra import Directory, TokenRejected
from flux_azdo.sandbox.azure.ids import AKS_SERVER_APP, AZURE_DEVOPS_APP
from flux_azdo.sandbox.azure.replies import Reply
from flux_azdo.sandbox.kube.tls import generate_serving_material, server_context
from flux_azdo.sandbox.kube.transport import Handler, HttpServer
from flux_azdo.sandbox.serving import Served, serve_in_thread, stop_serving

_MAX_BODY = 1 << 20
#: A body up to this size is read and dropped before a 400; a larger one ends the connection.
_DRAIN_LIMIT = 16 << 20


class AzureServer(Served):
    """The sandbox's Azure cloud on `https://127.0.0.1:<port>`; use it as a context manager.

    `authority_host` (no trailing slash) is what azure-identity takes as `authority`; `arm_url` (with one) is the
    ARM endpoint; `ca_file` the CA clients must trust; `tenant_id` and `subscription_id` the tenant and the one
    subscription. `directory` (Entra) and `resources` (ARM) are the models tests configure.
    """

    def __init__(
        self,
        folder: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tenant_id: str | None = None,
        subscription_id: str | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.folder, 0o700)
        self.directory = Directory(tenant_id)
        self.resources = ResourceManager(self.directory, subscription_id)
        self._material = generate_serving_material(host)
        self.ca_file = self.folder / "azure-ca.pem"
        self.ca_file.write_bytes(self._material.ca_pem)
        self._http = HttpServer((host, port), _App(self), server_context(self._material))
        bound_host, bound_port = self._http.server_address[:2]
        self.host, self.port = str(bound_host), int(bound_port)
        self.authority_host = f"https://{self.host}:{self.port}"
        self.arm_url = f"{self.authority_host}/"
        self.directory.authority_host = self.authority_host
        self.directory.arm_audiences += [self.arm_url, self.authority_host]
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def tenant_id(self) -> str:
        return self.directory.tenant_id

    @property
    def subscription_id(self) -> str:
        return self.resources.subscription_id

    @property
    def ca_pem(self) -> bytes:
        return self._material.ca_pem

    def token_endpoint(self, tenant: str | None = None) -> str:
        return f"{self.authority_host}/{tenant or self.tenant_id}/oauth2/v2.0/token"

    # ----- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = serve_in_thread(self._http, "azure-sandbox")

    def stop(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        stop_serving(self._http, thread)
        with contextlib.suppress(FileNotFoundError):
            self.ca_file.unlink()

    # ----- views for the other sandbox parts ----------------------------------------------------------------

    def kube_authenticator(self, token: str) -> tuple[str, Sequence[str]] | None:
        """AKS webhook authentication: (object id, groups) for a valid token for the AKS server app, else None."""
        try:
            claims = self.directory.verify_access_token(token, (AKS_SERVER_APP,))
        except TokenRejected:
            return None
        groups = claims.get("groups")
        return str(claims["oid"]), [str(g) for g in groups] if isinstance(groups, list) else []

    def azure_devops_claims(self, token: str) -> dict[str, Any] | None:
        """The claims of a valid Entra token for Azure DevOps (`aud` 499b84ac-...), else None."""
        try:
            return self.directory.verify_access_token(token, (AZURE_DEVOPS_APP,))
        except TokenRejected:
            return None


class _App:
    def __init__(self, server: AzureServer) -> None:
        self.server = server

    def handle(self, handler: Handler) -> None:
        try:
            body = _read_body(handler)
        except _BadBody as bad:
            handler.close_connection = not bad.drained
            _send(handler, Reply(400, {"error": "invalid_request", "error_description": f"Bad request body: {bad}"}))
            return
        split = urlsplit(handler.path)
        segments = [unquote(s) for s in split.path.split("/")[1:]]
        if segments and segments[-1] == "":
            segments.pop()
        query = {k.lower(): v for k, v in parse_qsl(split.query, keep_blank_values=True)}
        method = handler.command
        try:
            reply = self._route(method, segments, query, body, handler)
        except Exception as error:  # a sandbox bug: answer 500, keep serving
            reply = Reply(500, {"error": {"code": "InternalServerError", "message": f"sandbox error: {error}"}})
        _send(handler, reply)

    def _route(self, method: str, segments: list[str], query: dict[str, str], body: bytes, handler: Handler) -> Reply:
        directory = self.server.directory
        correlation = handler.headers.get("client-request-id")
        lowered = [s.lower() for s in segments]
        if lowered[:1] == ["subscriptions"]:
            return self.server.resources.handle(method, segments, query, handler.headers.get("Authorization"))
        if lowered == ["common", "discovery", "instance"] and method == "GET":
            return directory.instance_discovery(query)
        if len(segments) >= 2:
            tenant, rest = segments[0], lowered[1:]
            if method == "GET" and rest == ["v2.0", ".well-known", "openid-configuration"]:
                return directory.openid_configuration(tenant, correlation)
            if method == "GET" and rest == ["discovery", "v2.0", "keys"]:
                return directory.keys(tenant, correlation)
            if method == "POST" and rest == ["oauth2", "v2.0", "token"]:
                form = {k: v for k, v in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)}
                return directory.token(tenant, form, correlation)
        return Reply(404, {"error": {"code": "NotFound", "message": f"No route for {method} /{'/'.join(segments)}"}})


class _BadBody(ValueError):
    """A request body the server will not take; `drained`: it was read, so the connection stays usable."""

    def __init__(self, reason: str, *, drained: bool) -> None:
        super().__init__(reason)
        self.drained = drained


def _read_body(handler: Handler) -> bytes:
    """The request body: Content-Length or chunked framing, up to `_MAX_BODY`.

    A larger body is still read (up to `_DRAIN_LIMIT`) and thrown away before the 400 goes out: a client that is
    still sending when the server closes would see a reset or a TLS EOF instead of the reply.
    """
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        return _read_chunked(handler)
    text = (handler.headers.get("Content-Length") or "0").strip()
    if not text.isdigit():
        raise _BadBody("bad Content-Length", drained=False)
    length = int(text)
    if length > _MAX_BODY:
        if length > _DRAIN_LIMIT:
            raise _BadBody("body too large", drained=False)
        _discard(handler, length)
        raise _BadBody("body too large", drained=True)
    return handler.rfile.read(length) if length else b""


def _read_chunked(handler: Handler) -> bytes:
    body = bytearray()
    total = 0
    while True:
        line = handler.rfile.readline(1024)
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise _BadBody("bad chunk size", drained=False) from None
        if size == 0:
            while handler.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                pass  # trailer fields
            break
        total += size
        if total > _DRAIN_LIMIT:
            raise _BadBody("body too large", drained=False)
        chunk = handler.rfile.read(size)
        handler.rfile.readline(1024)  # the CRLF after the chunk
        if len(chunk) < size:
            raise _BadBody("truncated chunk", drained=False)
        if total <= _MAX_BODY:
            body += chunk
    if total > _MAX_BODY:
        raise _BadBody("body too large", drained=True)
    return bytes(body)


def _discard(handler: Handler, length: int) -> None:
    while length > 0:
        piece = handler.rfile.read(min(length, 1 << 16))
        if not piece:
            return
        length -= len(piece)


def _send(handler: Handler, reply: Reply) -> None:
    body = reply.body()
    handler.send_response(reply.status)
    handler.send_header("Content-Type", "application/json; charset=utf-8")
    request_id = reply.headers.get("x-ms-request-id") or str(uuid.uuid4())
    handler.send_header("x-ms-request-id", request_id)
    for name, value in reply.headers.items():
        if name != "x-ms-request-id":
            handler.send_header(name, value)
    correlation = handler.headers.get("client-request-id")
    if correlation:
        handler.send_header("client-request-id", correlation)
    handler.send_header("Content-Length", str(len(body)))
    if handler.close_connection:
        handler.send_header("Connection", "close")
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)


__all__ = ["AzureServer"]
