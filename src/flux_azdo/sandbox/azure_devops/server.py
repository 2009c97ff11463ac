"""AzureDevOpsServer: one loopback HTTP server for the REST subset, Git smart HTTP and the internal endpoints.

URL space (like dev.azure.com, with the organisation as the first path segment):

* `OPTIONS /_apis` and `/<org>/_apis...`        REST (`rest.py`)
* `/<org>/<project>/_git/<repo>[.git]/...`       Git smart HTTP (`git_http.py`), also `/<org>/_git/<repo>`
* `POST /_sandbox/receive`                       decisions for the proc-receive hook (`receive_hook.py`)
* `POST /_sandbox/git-access`                    authorisation for the SSH forced command
* `GET /_signin`                                  the sign-in page unauthenticated REST calls are sent to
                                                  (`rest.py`: without `X-TFS-FedAuthRedirect: Suppress`, or
                                                  always with the `sign_in_page` switch)

Every request is served on its own thread (`ThreadingHTTPServer`, keep-alive, Nagle off); `stop()` closes the
listening socket, then every open connection, and joins all handler threads.

Keep-alive safety: whatever the method, a request body nobody read is drained before the reply (or, when it is
large, chunked or unreadable, the connection is closed after the reply), so the next request on the connection
is never read from the middle of a body. A malformed `Content-Length` is a 400 and the connection is closed.

Push tickets (which the hook presents to `/_sandbox/receive`) are good for one push: HTTP ones end with the
request, SSH ones with their first use or after an hour; expired ones are swept whenever tickets are touched.

Faults (`faults.py`): `fail_next` refuses a public request before handling it; `fail_after_handling` lets a REST
request take effect and then replaces its reply (`send_bytes` does the swap, so errors the handler raised are
lost the same way); `drop_after_next_push` is decided when the push's refs have been updated
(`internal_receive`): an HTTP push then ends without a reply, an SSH push has its receive-pack killed by the hook
before it reports to the client.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import quote, unquote, urlsplit

from flux_azdo.sandbox.azure_devops import errors, git_http, rest
from flux_azdo.sandbox.azure_devops.errors import ServiceError
from flux_azdo.sandbox.azure_devops.faults import FaultInjector, LostReply
from flux_azdo.sandbox.azure_devops.push_rules import PushApplier, PushCommand
from flux_azdo.sandbox.azure_devops.receive_hook import TICKET_VARIABLE, URL_VARIABLE
from flux_azdo.sandbox.azure_devops.security import GitPermission
from flux_azdo.sandbox.serving import Served, serve_in_thread
from flux_azdo.sandbox.world import Identity, Repository, World

log = logging.getLogger(__name__)

INTERNAL_PREFIX = "/_sandbox/"
# An SSH session has no request to end with; its ticket lives this long unless a push uses it first.
SSH_TICKET_SECONDS = 3600.0
# Bodies up to this size are drained when nobody read them; bigger ones end the connection instead.
_DRAIN_LIMIT = 1 << 20


class MalformedRequest(Exception):
    """The request cannot be framed (bad Content-Length, broken chunked encoding): 400 and close."""


@dataclass(frozen=True)
class _Ticket:
    identity: Identity
    repository: Repository
    expires: float
    transport: Literal["http", "ssh"] = "ssh"


class AzureDevOpsServer(Served):
    """The sandbox's Azure DevOps organisation on `http://127.0.0.1:<port>/<org>`."""

    def __init__(self, world: World, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.world = world
        self.faults = FaultInjector()
        self.internal_secret = secrets.token_urlsafe(32)
        self.ssh_host: str | None = None
        self.ssh_port: int | None = None
        self.ssh_user: str = "git"
        #: True: REST calls without a valid credential get the HTML sign-in page (203), even when they send
        #: `X-TFS-FedAuthRedirect: Suppress` (a proxy that drops the header, or a client that cannot send it).
        #: False (default): only requests without that header are sent to the sign-in page, as on the service.
        self.sign_in_page = False
        self.pushes = PushApplier(world)
        self._tickets: dict[str, _Ticket] = {}
        # HTTP push tickets whose push was applied and must now end without a reply (drop_after_next_push).
        self._hang_ups: set[str] = set()
        self._tickets_lock = threading.Lock()
        self._httpd = _HttpServer((host, port), _Handler, self)
        self._thread: threading.Thread | None = None
        bound_host, bound_port = self._httpd.server_address[:2]
        self._address = (str(bound_host), int(bound_port))
        self.url = f"http://{bound_host!s}:{bound_port}"
        self.org_url = f"{self.url}/{quote(world.org, safe='')}"

    # ----- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = serve_in_thread(self._httpd, "azdo-sandbox")

    def stop(self) -> None:
        """Stop serving and wait for every handler thread; safe to call twice.

        `shutdown()` only takes effect when the accept loop wakes up; a throw-away connection wakes it at once
        instead of after the poll interval (tests start and stop a server each).
        """
        if self._thread is not None:
            stopper = threading.Thread(target=self._httpd.shutdown, name="azdo-sandbox-stop", daemon=True)
            stopper.start()
            while stopper.is_alive():
                with contextlib.suppress(OSError), socket.create_connection(self._address, timeout=0.5):
                    pass
                stopper.join(0.01)
            self._thread.join()
            self._thread = None
        self._httpd.server_close()
        self._httpd.close_connections()

    # ----- URLs --------------------------------------------------------------------------------------------

    def repo_url(self, repo: Repository) -> str:
        """The HTTPS-style clone URL without credentials: `{org_url}/{project}/_git/{repo}`."""
        return f"{self.org_url}/{quote(repo.project.name, safe='')}/_git/{quote(repo.name, safe='')}"

    def ssh_url(self, repo: Repository) -> str:
        """`sshUrl` as the REST API reports it: the scp-like form of ssh.dev.azure.com, or the local sshd's URL."""
        path = f"v3/{quote(self.world.org, safe='')}/{quote(repo.project.name, safe='')}/{quote(repo.name, safe='')}"
        if self.ssh_host is None:
            return f"git@ssh.dev.azure.com:{path}"
        if self.ssh_port is None or self.ssh_port == 22:
            return f"{self.ssh_user}@{self.ssh_host}:{path}"
        return f"ssh://{self.ssh_user}@{self.ssh_host}:{self.ssh_port}/{path}"

    # ----- push tickets ------------------------------------------------------------------------------------

    def issue_ticket(
        self,
        identity: Identity,
        repository: Repository,
        lifetime: float = SSH_TICKET_SECONDS,
        transport: Literal["http", "ssh"] = "ssh",
    ) -> str:
        """A push ticket; `transport` says how a dropped reply is carried out (see `internal_receive`)."""
        ticket = secrets.token_urlsafe(24)
        now = time.monotonic()
        with self._tickets_lock:
            self._sweep_tickets(now)
            self._tickets[ticket] = _Ticket(identity, repository, now + lifetime, transport)
        return ticket

    def revoke_ticket(self, ticket: str) -> None:
        with self._tickets_lock:
            self._tickets.pop(ticket, None)
            self._hang_ups.discard(ticket)

    def take_hang_up(self, ticket: str) -> bool:
        """Whether the HTTP push of `ticket` was applied and must now lose its reply (asked once, after git)."""
        with self._tickets_lock:
            if ticket in self._hang_ups:
                self._hang_ups.discard(ticket)
                return True
            return False

    @property
    def live_tickets(self) -> int:
        """How many push tickets are outstanding (unused and unexpired)."""
        with self._tickets_lock:
            self._sweep_tickets(time.monotonic())
            return len(self._tickets)

    def hook_environment(self, ticket: str) -> dict[str, str]:
        """Variables the git service needs so that the proc-receive hook can reach this server."""
        return {URL_VARIABLE: self.url, TICKET_VARIABLE: ticket}

    def _take_ticket(self, ticket: str) -> _Ticket | None:
        """The ticket's grant, used up: receive-pack runs the hook once per push, so a second use is forged."""
        now = time.monotonic()
        with self._tickets_lock:
            self._sweep_tickets(now)
            return self._tickets.pop(ticket, None)

    def _sweep_tickets(self, now: float) -> None:
        for key in [k for k, t in self._tickets.items() if t.expires < now]:
            del self._tickets[key]

    # ----- internal endpoints ------------------------------------------------------------------------------

    def internal_receive(self, document: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Decide and apply one push's ref updates (fast-forward is recomputed here, never taken from the hook).

        This is where `drop_after_next_push` is used up, once the updates are applied: an HTTP ticket is marked
        so that `git_http` drops the connection instead of relaying receive-pack's report; for SSH the answer
        carries `hangUp`, and the hook kills its receive-pack before it writes the report.
        """
        raw = document.get("commands")
        if not isinstance(raw, list) or not all(
            isinstance(c, dict) and all(isinstance(c.get(k), str) for k in ("old", "new", "ref")) for c in raw
        ):
            return 400, {"message": "commands must be a list of {old, new, ref} strings"}
        key = str(document.get("ticket", ""))
        ticket = self._take_ticket(key)
        if ticket is None:
            return 403, {"message": "unknown, used or expired push ticket"}
        commands = [PushCommand(c["old"], c["new"], c["ref"]) for c in raw]
        if ticket.repository.is_disabled:  # disabled while the push was under way
            text = errors.repository_not_found_text(ticket.repository.name)
            return 200, {"results": [{"ref": c.ref, "ok": False, "reason": text} for c in commands]}
        results = self.pushes.apply(ticket.identity, ticket.repository, commands, from_git=True)
        reply: dict[str, Any] = {"results": [r.as_json() for r in results]}
        if self.faults.take_push_reply_drop():
            if ticket.transport == "http":
                with self._tickets_lock:
                    self._hang_ups.add(key)
            else:
                reply["hangUp"] = True
        return 200, reply

    def internal_git_access(self, document: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Authorise an SSH git command for an identity: the same checks as the HTTP side."""
        if not secrets.compare_digest(str(document.get("secret", "")), self.internal_secret):
            return 403, {"message": "bad internal secret"}
        service = str(document.get("service", ""))
        if service not in ("git-upload-pack", "git-receive-pack"):
            return 400, {"message": f"unsupported service {service!r}"}
        identity = self.world.identity(str(document.get("identity", "")))
        path = str(document.get("path", ""))
        repository, shown_name = self.resolve_ssh_path(path)
        if identity is None:
            return 401, {"message": errors.ANONYMOUS_GIT}
        if repository is None or repository.is_disabled or not self.can_read(identity, repository):
            return 404, {"message": errors.repository_not_found_text(shown_name)}
        if service == "git-receive-pack" and not self.can_push(identity, repository):
            return 403, {"message": errors.needs_permission_text("GenericContribute", identity.error_name)}
        env: dict[str, str] = {}
        if service == "git-receive-pack":
            env = self.hook_environment(self.issue_ticket(identity, repository))
        return 200, {"gitDir": str(repository.git_dir), "env": env}

    def resolve_ssh_path(self, path: str) -> tuple[Repository | None, str]:
        """`v3/<org>/<project>/<repo>` (leading `/`, percent-encoding, `.git` and case all tolerated)."""
        parts = [unquote(p) for p in path.strip().strip("'\"").strip("/").split("/") if p]
        shown = parts[-1] if parts else path
        if len(parts) != 4 or parts[0].lower() != "v3" or parts[1].casefold() != self.world.org.casefold():
            return None, shown
        name = parts[3][:-4] if parts[3].lower().endswith(".git") else parts[3]
        project = self.world.find_project(parts[2])
        if project is None:
            return None, name
        return self.world.find_repository(project, name), name

    # ----- shared permission helpers ------------------------------------------------------------------------

    def can_read(self, identity: Identity, repository: Repository) -> bool:
        return self.world.has_permission(identity, _repo_token(repository), GitPermission.GENERIC_READ)

    def can_push(self, identity: Identity, repository: Repository) -> bool:
        """GenericContribute on the repository or on any branch of it: enough to start a push (per-ref rules
        decide the rest), so that a branch-level allow is usable."""
        return self.world.has_permission_at_or_below(
            identity, _repo_token(repository), GitPermission.GENERIC_CONTRIBUTE
        )


def _repo_token(repository: Repository) -> str:
    return f"repoV2/{repository.project.id}/{repository.id}"


class _HttpServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that remembers its connections so that `stop()` can end keep-alive threads."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], owner: AzureDevOpsServer):
        self.owner = owner
        self._live: dict[threading.Thread, socket.socket] = {}
        self._live_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_connection, args=(request, client_address), name="azdo-sandbox-conn", daemon=True
        )
        with self._live_lock:
            self._live[thread] = request
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._live_lock:
                self._live.pop(threading.current_thread(), None)

    def close_connections(self, timeout: float = 10.0) -> None:
        with self._live_lock:
            live = list(self._live.items())
        for _, connection in live:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        for thread, _ in live:
            thread.join(timeout)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "Microsoft-IIS/10.0"
    sys_version = ""
    server: _HttpServer

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_OPTIONS(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    # ----- body handling -----------------------------------------------------------------------------------

    _body: bytes | None = None
    # Set while a request runs whose reply `fail_after_handling` takes away (see `send_bytes`).
    _lost_reply: LostReply | None = None

    @property
    def chunked(self) -> bool:
        return "chunked" in self.headers.get("Transfer-Encoding", "").lower()

    def content_length(self) -> int:
        """The declared body length (0 when absent); MalformedRequest when it is not a non-negative number."""
        text = (self.headers.get("Content-Length") or "0").strip()
        if not text.isdigit():
            raise MalformedRequest(f"invalid Content-Length {text!r}")
        return int(text)

    def read_body(self) -> bytes:
        """The whole request body; chunked bodies (git pushes over http.postBuffer) are de-chunked."""
        if self._body is None:
            if self.chunked:
                self._body = self._read_chunked()
            else:
                length = self.content_length()
                self._body = self.rfile.read(length) if length > 0 else b""
        return self._body

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size_line = self.rfile.readline(65537)
            if not size_line:
                raise ConnectionError("connection closed inside a chunked body")
            try:
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            except ValueError:
                raise MalformedRequest("invalid chunk size") from None
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline(3)

    def drop_connection_mid_body(self) -> None:
        """Read part of the request body, then hang up without any reply (a network failure mid-push)."""
        if self.chunked:
            self.rfile.read1(65536)
        else:
            length = self.content_length()
            self.rfile.read(min(max(length // 2, 1), 65536) if length else 0)
        self.hang_up()

    def hang_up(self) -> None:
        """End the connection now, without a reply (whatever was handled stays done)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # ----- replies -----------------------------------------------------------------------------------------

    def send_bytes(
        self, status: int, body: bytes, content_type: str | None, headers: dict[str, str] | None = None
    ) -> None:
        lost, self._lost_reply = self._lost_reply, None
        if lost is not None:
            # The request was handled; its reply is what `fail_after_handling` takes away.
            if lost.status is None:
                self.hang_up()
            elif lost.status == 500:
                self.send_service_error(errors.internal_error(str(uuid.uuid4())))
            else:
                self.send_service_error(errors.throttled(lost.status, lost.retry_after))
            return
        if self._body is None:
            self._drain_or_close()
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        session = self.headers.get("X-TFS-Session")
        if session:
            self.send_header("X-TFS-Session", session)
        self.send_header("ActivityId", str(uuid.uuid4()))
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _drain_or_close(self) -> None:
        """Never leave an unread body on a keep-alive connection, whatever the method: small ones are read,
        big, chunked or unframed ones end the connection after this reply."""
        try:
            length = self.content_length()
        except MalformedRequest:
            self.close_connection = True
            return
        if self.chunked or length > _DRAIN_LIMIT:
            self.close_connection = True
        elif length > 0:
            self._body = self.rfile.read(length)

    def send_json(
        self, status: int, document: Any, headers: dict[str, str] | None = None, *, api_version: str | None = None
    ) -> None:
        """A JSON reply; `api_version` is echoed in the Content-Type as the service does (`; api-version=7.1`)."""
        body = json.dumps(document, separators=(",", ":")).encode()
        content_type = "application/json; charset=utf-8"
        if api_version is not None:
            content_type += f"; api-version={api_version}"
        self.send_bytes(status, body, content_type, headers)

    def send_service_error(self, error: ServiceError) -> None:
        headers = dict(error.headers)
        headers["X-TFS-ServiceError"] = error.service_error_header()
        if error.status == 401:
            headers.update(_challenge_headers(self.server.owner))
        if error.empty_body:
            self.send_bytes(error.status, b"", None, headers)
        else:
            self.send_bytes(error.status, error.json_bytes(), "application/json; charset=utf-8", headers)

    # ----- routing -----------------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        owner = self.server.owner
        self._body = None  # one handler object serves every request of a keep-alive connection
        self._lost_reply = None
        split = urlsplit(self.path)
        try:
            self.content_length()  # unframed requests are refused before anything else
            if split.path.startswith(INTERNAL_PREFIX):
                self._internal(owner, split.path)
                return
            if split.path.rstrip("/").lower() == errors.SIGN_IN_PATH:
                # The service's sign-in page lives on another host (vssps), which no fault of this one touches.
                self._sign_in_page()
                return
            delay = owner.faults.take_delay()
            if delay:
                time.sleep(delay)
            segments = [unquote(s) for s in split.path.split("/")[1:]]
            if segments and segments[-1] == "":
                segments.pop()
            failure = owner.faults.take_failure(self.command, split.path)
            git_route = git_http.match(owner.world.org, segments)
            if failure is not None:
                error = errors.throttled(*failure)
                if git_route is not None:
                    self.send_bytes(error.status, error.message.encode(), "text/plain; charset=utf-8", error.headers)
                else:
                    self.send_service_error(error)
                return
            if git_route is not None:
                git_http.serve(self, owner, git_route, split.query)
                return
            self._lost_reply = owner.faults.take_lost_reply(self.command, split.path)
            rest.serve(self, owner, segments, split.query)
        except ServiceError as error:
            self.send_service_error(error)
        except MalformedRequest:
            self.close_connection = True
            self.send_bytes(400, b"Bad Request - Invalid Header\n", "text/plain; charset=utf-8")
        except (ConnectionError, BrokenPipeError):
            self.close_connection = True
        except Exception as error:  # a bug in the sandbox: answer 500 like the service's error page, keep serving
            log.exception("sandbox Azure DevOps failed on %s %s", self.command, self.path)
            self.send_service_error(ServiceError(500, f"TF400898: An Internal Error Occurred. ({error})", "Exception"))

    def _sign_in_page(self) -> None:
        """`GET /_signin`: the page the sign-in redirect leads to, answered 203 Non-Authoritative Information.

        203 with an HTML sign-in page is what API clients that follow the service's redirect have reported
        (vsts-rest-api-specs#97, azure-sdk-for-cpp#5786; azure-devops.md §6.2). UNVERIFIED: one later report
        (2026) saw 200 with the HTML instead; either way a JSON client cannot read it.
        """
        if self.command not in ("GET", "HEAD", "POST"):
            self.send_bytes(405, b"Method Not Allowed\n", "text/plain; charset=utf-8", {"Allow": "GET, HEAD, POST"})
            return
        self.send_bytes(203, errors.sign_in_page_html(), "text/html; charset=utf-8")

    def _internal(self, owner: AzureDevOpsServer, path: str) -> None:
        if self.command != "POST":
            self.send_json(405, {"message": "POST only"})
            return
        try:
            document = json.loads(self.read_body() or b"{}")
        except ValueError:
            self.send_json(400, {"message": "body is not JSON"})
            return
        if not isinstance(document, dict):
            self.send_json(400, {"message": "body must be a JSON object"})
            return
        if path == "/_sandbox/receive":
            status, reply = owner.internal_receive(document)
        elif path == "/_sandbox/git-access":
            status, reply = owner.internal_git_access(document)
        else:
            status, reply = 404, {"message": f"no internal endpoint {path}"}
        self.send_json(status, reply)


def _challenge_headers(owner: AzureDevOpsServer) -> dict[str, str]:
    """The challenge the service sends with a 401 (one header; the service adds a Bearer challenge too)."""
    return {"WWW-Authenticate": f'Basic realm="{owner.url}/"'}
