"""Git smart HTTP on the Azure Repos URL space, served by `git http-backend` (CGI) behind the sandbox's checks.

URL forms (azure-devops.md §7): `/<org>/<project>/_git/<repo>` and, for a repository named like its project,
`/<org>/_git/<repo>`; an optional `.git` suffix; names percent-decoded and matched case-insensitively.

Before git runs, the request goes through what Azure Repos enforces:

* credentials: Basic (PAT or job token as password) or Bearer; a failure is a 401 with a `Basic` challenge and a
  plain-text body that git prints as `remote: ...`;
* PAT scopes: `vso.code` to fetch, `vso.code_write` to push;
* GenericRead to see the repository at all; without it the answer is the same 404 TF401019 as for a missing one,
  because the service does not reveal repositories you cannot read; a disabled repository gets that answer too,
  whoever asks (renovate#13013: `git clone` of a disabled repository fails with `remote: TF401019: ...` and
  `fatal: repository '...' not found`);
* GenericContribute for `git-receive-pack`, on the repository or on at least one branch below it (checked on
  `info/refs`, so git fails before it builds a pack, with the TF401027 text); which refs may really change is
  decided per ref later, inside the push, by the proc-receive hook (`push_rules.py`).

Faults: `drop_next_push` ends a receive-pack POST mid-upload; `drop_after_next_push` lets the push run (the hook
applies the refs) and then ends the connection instead of relaying receive-pack's report. While either is
pending, every receive-pack reply closes its connection: curl silently re-sends a request that died on a
*reused* connection, which would turn the failure into a success (or a second push).

Only the smart protocol is served (`info/refs?service=...`, `git-upload-pack`, `git-receive-pack`): Azure Repos
has no dumb HTTP. A known Git path with the wrong method is a 405; HEAD is answered like GET, without a body.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import parse_qs

from flux_azdo.sandbox.azure_devops import errors
from flux_azdo.sandbox.world import AuthenticationFailed, Repository

if TYPE_CHECKING:
    from flux_azdo.sandbox.azure_devops.server import AzureDevOpsServer, _Handler

GitService = Literal["git-upload-pack", "git-receive-pack"]
HTTP_BACKEND = "/usr/lib/git-core/git-http-backend"
_TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class GitRoute:
    project: str | None  # None for `/<org>/_git/<repo>` (project named like the repository)
    repository: str
    action: str  # "info/refs", "git-upload-pack", "git-receive-pack", or anything else (refused)


def match(org: str, segments: list[str]) -> GitRoute | None:
    """The Git route in a request path (decoded segments, org first), or None when it is not a Git URL."""
    if len(segments) < 3 or segments[0].casefold() != org.casefold():
        return None
    rest = segments[1:]
    if rest[0].lower() == "_git":
        project, after = None, rest[1:]
    elif len(rest) >= 3 and rest[1].lower() == "_git":
        project, after = rest[0], rest[2:]
    else:
        return None
    if not after or not after[0]:
        return None
    name = after[0][:-4] if after[0].lower().endswith(".git") else after[0]
    return GitRoute(project, name, "/".join(after[1:]))


def serve(handler: _Handler, owner: AzureDevOpsServer, route: GitRoute, query: str) -> None:
    method = "GET" if handler.command == "HEAD" else handler.command
    action = route.action.strip("/").lower()
    expected = _METHODS.get(action)
    if expected is not None and method != expected:
        headers = {"Allow": "GET, HEAD" if expected == "GET" else expected}
        handler.send_bytes(405, b"Method Not Allowed\n", _TEXT, headers)
        return
    service = _service(action, query)
    if service is None:
        handler.send_bytes(404, b"Not Found\n", _TEXT)
        return
    try:
        credential = owner.world.authenticate_credential(handler.headers.get("Authorization"))
    except AuthenticationFailed as failure:
        text = errors.PAT_EXPIRED if failure.reason == "expired" else errors.ANONYMOUS_GIT
        headers = {"WWW-Authenticate": f'Basic realm="{owner.url}/"', "X-TFS-ServiceError": _quote(text)}
        handler.send_bytes(401, (text + "\n").encode(), _TEXT, headers)
        return
    identity = credential.identity
    repository = _find(owner, route)
    if repository is None or repository.is_disabled or not owner.can_read(identity, repository):
        _refuse(handler, 404, errors.repository_not_found_text(route.repository))
        return
    needed_scope = "vso.code_write" if service == "git-receive-pack" else "vso.code"
    if not credential.has_scope(needed_scope):
        message = errors.not_authorized(identity.id).message
        _refuse(handler, 401, message, {"WWW-Authenticate": f'Basic realm="{owner.url}/"'})
        return
    if service == "git-receive-pack" and not owner.can_push(identity, repository):
        _refuse(handler, 403, errors.needs_permission_text("GenericContribute", identity.error_name))
        return
    if service == "git-receive-pack" and owner.faults.push_drop_pending:
        # curl silently re-sends a request that died on a *reused* connection; make the POST use a fresh one so
        # that the drop reaches git as the failure it is ("Empty reply from server").
        handler.close_connection = True
    if handler.command == "POST" and service == "git-receive-pack" and owner.faults.take_push_drop():
        handler.drop_connection_mid_body()
        return
    ticket = None
    extra_env: dict[str, str] = {}
    if handler.command == "POST" and service == "git-receive-pack":
        ticket = owner.issue_ticket(identity, repository, lifetime=600.0, transport="http")
        extra_env = owner.hook_environment(ticket)
    try:
        reply = _run_backend(handler, repository, route.action, query, identity.unique_name or identity.id, extra_env)
        if ticket is not None and owner.take_hang_up(ticket):
            handler.hang_up()  # the push is applied; its report never reaches git
            return
        reply.send(handler)
    finally:
        if ticket is not None:
            owner.revoke_ticket(ticket)


# The smart-protocol paths and the one method each accepts.
_METHODS = {"info/refs": "GET", "git-upload-pack": "POST", "git-receive-pack": "POST"}


def _service(action: str, query: str) -> GitService | None:
    """The git service a request is for (the method was checked), or None for anything else (404)."""
    if action == "info/refs":
        requested = parse_qs(query).get("service", [""])[0]
        if requested in ("git-upload-pack", "git-receive-pack"):
            return requested  # type: ignore[return-value]
        return None
    if action in ("git-upload-pack", "git-receive-pack"):
        return action  # type: ignore[return-value]
    return None


def _find(owner: AzureDevOpsServer, route: GitRoute) -> Repository | None:
    project = owner.world.find_project(route.project if route.project is not None else route.repository)
    if project is None:
        return None
    return owner.world.find_repository(project, route.repository)


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


def _refuse(handler: _Handler, status: int, text: str, headers: dict[str, str] | None = None) -> None:
    all_headers = {"X-TFS-ServiceError": _quote(text), **(headers or {})}
    handler.send_bytes(status, (text + "\n").encode(), _TEXT, all_headers)


@dataclass(frozen=True)
class _Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def send(self, handler: _Handler) -> None:
        headers = dict(self.headers)
        content_type = headers.pop("content-type", None)
        handler.send_bytes(self.status, self.body, content_type, {_title(k): v for k, v in headers.items()})


def _run_backend(
    handler: _Handler, repository: Repository, action: str, query: str, remote_user: str, extra_env: dict[str, str]
) -> _Reply:
    """Run `git http-backend` once as a CGI program; its reply, for the caller to relay with a Content-Length."""
    body = handler.read_body() if handler.command == "POST" else b""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_PROJECT_ROOT": str(repository.git_dir.parent),
        "GIT_HTTP_EXPORT_ALL": "1",
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REQUEST_METHOD": "GET" if handler.command == "HEAD" else handler.command,
        "PATH_INFO": f"/{repository.git_dir.name}/{action.strip('/')}",
        "QUERY_STRING": query,
        "CONTENT_TYPE": handler.headers.get("Content-Type", ""),
        "CONTENT_LENGTH": str(len(body)),
        "REMOTE_USER": remote_user,
        "REMOTE_ADDR": handler.client_address[0],
        **extra_env,
    }
    encoding = handler.headers.get("Content-Encoding")
    if encoding:
        env["HTTP_CONTENT_ENCODING"] = encoding
    protocol = handler.headers.get("Git-Protocol")
    if protocol:
        env["HTTP_GIT_PROTOCOL"] = protocol
        env["GIT_PROTOCOL"] = protocol
    done = subprocess.run([HTTP_BACKEND], input=body, env=env, capture_output=True, check=False)
    status, headers, payload = parse_cgi(done.stdout)
    if status >= 500 and done.stderr:
        payload = payload or done.stderr
    return _Reply(status, headers, payload)


def parse_cgi(output: bytes) -> tuple[int, dict[str, str], bytes]:
    """Split CGI output into (status, lowercase headers, body); `Status:` defaults to 200."""
    separator = re.search(rb"\r?\n\r?\n", output)
    if separator is None:
        return 502, {"content-type": _TEXT}, b"git http-backend gave no CGI headers\n"
    head, body = output[: separator.start()], output[separator.end() :]
    headers: dict[str, str] = {}
    for line in head.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        if name.strip():
            headers[name.strip().lower()] = value.strip()
    status_text = headers.pop("status", "200")
    return int(status_text.split()[0]), headers, body


def _title(name: str) -> str:
    return "-".join(part.capitalize() for part in name.split("-"))
