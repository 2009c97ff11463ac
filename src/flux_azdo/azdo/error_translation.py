"""From what the `azure-devops` SDK raised to `flux_azdo.azdo.errors`: a message saying what happened and a fix.

The SDK reports failures in shapes that are hard to act on: `AzureDevOpsServiceError` carries the service's
message but not the HTTP status, a missing credential is an `AzureDevOpsAuthenticationError` whose text is a URL,
a sign-in page is a deserialisation error and a timeout is a `ClientRequestError` wrapping requests' exception.
`ErrorTranslator` turns each of them (with the status of the last reply, which the client records through a
response hook into `Replies`) into one of our types.

What the SDK raised must not travel on: requests' exceptions keep the request, and with it the `Authorization`
header. So the translation copies out plain values only (status, TF code, the service's one-line message), and
the client raises the result outside the `except` block, without a cause or context. Messages are built here
from what we know, never from the request, and `scrub_secrets` removes every form of the token from them in
case a server echoed it.
"""

from __future__ import annotations

import re
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from flux_azdo.azdo import pages
from flux_azdo.azdo.credentials import AzureDevOpsToken
from flux_azdo.azdo.errors import (
    AuthenticationFailed,
    AuthenticationReason,
    AzureDevOpsError,
    Conflict,
    NotFound,
    PermissionDenied,
    Unavailable,
)
from flux_azdo.azdo.scopes import pat_scope
from flux_azdo.azdo.security import NAMES, GitPermission, permission_by_api_name

_CODE = re.compile(r"\b(TF\d{5,6}|VS\d{6})\b")
_NEEDS_PERMISSION = re.compile(r"You need the Git '([^']+)' permission")
_IDENTITY = re.compile(r"identity '([^']+)'")
_SCOPE = re.compile(r"scope '([^']+)'")
# The SDK's service errors carry no status; these are the service's types for the statuses we branch on.
_STATUS_BY_TYPE_KEY = {
    "GitRepositoryNotFoundException": 404,
    "ProjectDoesNotExistWithNameException": 404,
    "ProjectDoesNotExistException": 404,
    "GitRepositoryNameAlreadyExistsException": 409,
    "GitNeedsPermissionException": 403,
    "UnauthorizedRequestException": 401,
    "AccessCheckException": 401,
}
_HOSTED = (".dev.azure.com", ".visualstudio.com")
_RUN_AGAIN = "run again; if it keeps failing, report it with this message"


# ----- what the client tells the translator ----------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """The facts of one HTTP reply that messages may use: plain strings, no request, no headers object."""

    status: int
    method: str
    url: str
    content_type: str
    service_error: str  # the X-TFS-ServiceError header, decoded


class Replies(threading.local):
    """The last HTTP reply of the current call, per thread (requests' response hook fills it)."""

    last: Reply | None = None

    def record(self, response: Any, *args: Any, **kwargs: Any) -> Any:
        request = getattr(response, "request", None)
        self.last = Reply(
            status=int(response.status_code),
            method=str(getattr(request, "method", "") or ""),
            url=str(getattr(response, "url", "") or ""),
            content_type=str(response.headers.get("Content-Type", "")),
            service_error=unquote(str(response.headers.get("X-TFS-ServiceError", ""))),
        )
        return response


@dataclass(frozen=True)
class Operation:
    """What a call does, for messages.

    `what` completes "could not ..."; `scope` is the PAT scope the call needs; `subject` names what may be
    missing on a 404 ("project 'platform'"); `repository` is the repository's name when the call is about one
    (the fix for a missing Git permission then names its Security page); `organisation` marks a call whose
    subject is the organisation itself, where a 404 means the URL is not an organisation URL.
    """

    what: str
    scope: str | None = None
    subject: str | None = None
    repository: str | None = None
    organisation: bool = False

    @classmethod
    def on_organisation(cls, what: str, collection_url: str) -> Operation:
        return cls(what, subject=f"the organisation {collection_url}", organisation=True)


# ----- network failures ------------------------------------------------------------------------------------------

NetworkKind = Literal["timeout", "refused", "dns", "tls-untrusted", "tls-hostname", "tls", "connection"]


@dataclass(frozen=True)
class NetworkCause:
    """The kind of transport failure behind an error, and a short detail safe to print (never from the request)."""

    kind: NetworkKind
    detail: str = ""


def network_cause(error: BaseException) -> NetworkCause | None:
    """What went wrong on the way to the server, from the requests/urllib3/ssl exceptions behind `error`."""
    import requests
    import urllib3.exceptions as u3

    chain = list(_chain(error))
    for current in chain:
        if isinstance(current, ssl.SSLCertVerificationError):
            detail = str(current.verify_message or "").strip().rstrip(".")
            if current.verify_code == 62 or "hostname" in detail.lower():
                return NetworkCause("tls-hostname", detail)
            return NetworkCause("tls-untrusted", detail)
    if any(isinstance(current, u3.NameResolutionError) for current in chain):
        return NetworkCause("dns")
    if any(isinstance(current, (u3.NewConnectionError, ConnectionRefusedError)) for current in chain):
        refused = any(isinstance(current, ConnectionRefusedError) for current in chain)
        return NetworkCause("refused", "connection refused" if refused else "")
    if any(isinstance(current, (requests.exceptions.Timeout, u3.TimeoutError, TimeoutError)) for current in chain):
        return NetworkCause("timeout")
    for current in chain:
        if isinstance(current, ssl.SSLError):
            return NetworkCause("tls", str(current.reason or "").lower().replace("_", " "))
    if any(isinstance(current, (requests.exceptions.SSLError, u3.SSLError)) for current in chain):
        return NetworkCause("tls")
    if any(
        isinstance(current, (requests.exceptions.RequestException, u3.HTTPError, ConnectionError)) for current in chain
    ):
        return NetworkCause("connection")
    return None


def _chain(error: BaseException, limit: int = 64) -> Iterator[BaseException]:
    """`error` and every exception reachable from it: causes, contexts, msrest's `inner_exception`, urllib3's
    `reason` and exceptions passed as arguments (requests wraps urllib3's errors that way)."""
    seen: set[int] = set()
    queue: list[BaseException] = [error]
    while queue and len(seen) < limit:
        current = queue.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        links: list[object] = [current.__cause__, current.__context__, getattr(current, "inner_exception", None)]
        links += [getattr(current, "reason", None), *current.args]
        queue.extend(link for link in links if isinstance(link, BaseException))


# ----- the translator ----------------------------------------------------------------------------------------------


class ErrorTranslator:
    """Maps what the SDK raised (plus the last reply) to `flux_azdo.azdo.errors`, each with a message and a fix."""

    def __init__(self, collection_url: str, token: AzureDevOpsToken, timeout: float, retries: int) -> None:
        self.url = collection_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.retries = retries
        host = (urlsplit(self.url).hostname or "").lower()
        self.hosted = any(f".{host}".endswith(suffix) for suffix in _HOSTED)

    def translate(self, error: BaseException, operation: Operation, reply: Reply | None) -> AzureDevOpsError | None:
        """Our error for `error`; None for what is not a failure of the call (a bug: it keeps its traceback)."""
        import requests
        from azure.core.exceptions import DeserializationError
        from azure.devops.exceptions import AzureDevOpsAuthenticationError, AzureDevOpsServiceError
        from msrest.exceptions import ClientException, ClientRequestError

        if isinstance(error, AzureDevOpsAuthenticationError):
            return self._authentication(operation, "", reply)
        network = network_cause(error)
        if network is not None and isinstance(error, (ClientException, requests.exceptions.RequestException)):
            return self._network(operation, network)
        if isinstance(error, AzureDevOpsServiceError):
            message = _one_line(str(error.message or ""))
            status = reply.status if reply is not None and reply.status >= 400 else None
            status = status or _STATUS_BY_TYPE_KEY.get(str(error.type_key or ""))
            return self._status(operation, status, message, reply)
        if isinstance(error, DeserializationError):
            if reply is not None and (reply.status == 203 or "html" in reply.content_type.lower()):
                return self._authentication(operation, "", reply, sign_in=True)
            return AzureDevOpsError(
                f"{self.url} did not answer like Azure DevOps while trying to {operation.what} (a reply that is "
                "not JSON)",
                fix=self._organisation_fix(),
                status=reply.status if reply is not None else None,
            )
        if isinstance(error, ClientRequestError):
            status = reply.status if reply is not None and reply.status >= 400 else None
            return self._status(operation, status, "", reply)
        if isinstance(error, ValueError) and "is not registered" in str(error):
            return AzureDevOpsError(
                f"{self.url} does not offer the REST API needed to {operation.what}",
                fix="use Azure DevOps Services or Azure DevOps Server 2020 or later",
            )
        if isinstance(error, (ClientException, requests.exceptions.RequestException)):
            return AzureDevOpsError(
                f"the call to {self.url} failed while trying to {operation.what} ({type(error).__name__})",
                fix=_RUN_AGAIN,
            )
        return None

    # -- by kind ----------------------------------------------------------------------------------------------------

    def _status(self, operation: Operation, status: int | None, message: str, reply: Reply | None) -> AzureDevOpsError:
        code = _code(message)
        said = f": {message}" if message else ""
        if status == 401:
            return self._authentication(operation, message, reply)
        if status == 203:
            return self._authentication(operation, message, reply, sign_in=True)
        if status == 403:
            return self._permission(operation, message, code)
        if status == 404:
            return self._not_found(operation, message, code, reply)
        if status == 409:
            fix = (
                "use the existing repository (without --create-repo) or choose another name"
                if code == "TF400948"
                else "something changed it at the same time: run again"
            )
            return Conflict(f"could not {operation.what}{said}", fix=fix, status=409, code=code)
        if status == 429:
            return Unavailable(
                f"Azure DevOps at {self.url} was still throttling requests (HTTP 429) after {self.retries} "
                f"retries while trying to {operation.what}",
                fix=self._unavailable_fix(),
                status=429,
                code=code,
            )
        if status is not None and status >= 500:
            return Unavailable(
                f"Azure DevOps at {self.url} answered HTTP {status} after {self.retries} retries while trying to "
                f"{operation.what}{said}",
                fix=self._unavailable_fix(),
                status=status,
                code=code,
            )
        shown = f"HTTP {status}" if status is not None else "no status"
        return AzureDevOpsError(
            f"Azure DevOps at {self.url} refused to {operation.what} ({shown}){said}",
            fix=_RUN_AGAIN,
            status=status,
            code=code,
        )

    def _not_found(self, operation: Operation, message: str, code: str | None, reply: Reply | None) -> AzureDevOpsError:
        if operation.organisation or (reply is not None and reply.method == "OPTIONS"):
            # OPTIONS <url>/_apis is the location service every SDK client asks first; ConnectionData is the
            # organisation's own resource: a 404 for either means there is no organisation at this URL.
            asked = "its location service" if reply is not None and reply.method == "OPTIONS" else "ConnectionData"
            return AzureDevOpsError(
                f"{self.url} is not an Azure DevOps organisation or collection URL ({asked} answered HTTP 404)",
                fix=self._organisation_fix(),
                status=404,
                code=code,
            )
        subject = operation.subject or "what was asked for"
        return NotFound(
            f"{subject} was not found on {self.url}, or this identity may not see it ({code or 'HTTP 404'})",
            fix="check the name in --url and that the identity is a member of the project; is "
            f"{self.url} the right organisation?",
            status=404,
            code=code,
        )

    def _authentication(
        self, operation: Operation, message: str, reply: Reply | None, *, sign_in: bool = False
    ) -> AuthenticationFailed:
        text = f"{message} {reply.service_error if reply is not None else ''}"
        code = _code(text)
        reason: AuthenticationReason
        if sign_in:
            reason = "sign-in"
        elif "expired" in text.lower():
            reason = "expired"
        elif "TF400813" in text and "anonymous" not in text.lower():
            reason = "not-authorized"
        else:
            reason = "invalid"
        status = reply.status if reply is not None else 401
        said, fix = self._authentication_texts(reason, operation)
        return AuthenticationFailed(said, reason, fix=fix, status=status, code=code)

    def _authentication_texts(self, reason: AuthenticationReason, operation: Operation) -> tuple[str, str]:
        """(message, fix) for a credential the service refused, by reason and by where the token came from."""
        source = self.token.source
        tokens_page = pages.tokens_page(self.url)
        if source == "job-token":
            name = "pipeline job token (System.AccessToken)"
            renew = "pass $(System.AccessToken) of the running job (map it into the step's env)"
        elif source == "entra":
            name = "Microsoft Entra token"
            renew = (
                "add the identity to the organisation (Organization settings > Users), then sign in again (az login)"
            )
        else:
            name = "Azure DevOps token"
            renew = f"create a PAT at {tokens_page} and pass it"
        if reason == "expired":
            if source == "job-token":
                return f"the {name} for {self.url} has expired (its job has ended)", renew
            if source == "entra":
                return (
                    f"the {name} for {self.url} has expired",
                    "sign in again (az login), or check the workload identity federation",
                )
            return (
                f"the {name} for {self.url} has expired",
                f"create a new PAT at {tokens_page} (or regenerate this one there) and pass it",
            )
        if reason == "not-authorized":
            said = f"the {name} is valid but not authorized to {operation.what} on {self.url} (TF400813)"
            if source in ("password", "environment") and operation.scope is not None:
                scope = pat_scope(operation.scope)
                return f"{said}: the PAT lacks the scope {scope.described}", (
                    f"edit the PAT at {tokens_page} and select {scope.checkbox_path}"
                )
            if source in ("password", "environment"):
                return f"{said}: the PAT lacks a scope this call needs, or the identity is not allowed", (
                    f"check the PAT's scopes at {tokens_page}, or ask an organisation administrator whether the "
                    "identity may use the API"
                )
            if source == "job-token":
                return said, (
                    "allow the pipeline's build service here: check the job authorization scope under "
                    "Project settings > Pipelines > Settings"
                )
            return said, "ask an organisation administrator to allow this identity (Organization settings > Policies)"
        if reason == "sign-in":
            return (
                f"{self.url} answered with a sign-in page instead of data while trying to {operation.what}: the "
                "credential was not accepted there",
                f"check that {self.url} is the organisation URL, then {renew}",
            )
        if source == "job-token":
            return (
                f"the {name} was rejected (401) by {self.url}: it is revoked (its job has ended) or for another "
                "organisation",
                renew,
            )
        return f"the {name} was rejected (401) by {self.url}: it is wrong, revoked or for another organisation", renew

    def _permission(self, operation: Operation, message: str, code: str | None) -> PermissionDenied:
        needed = _NEEDS_PERMISSION.search(message)
        who = _IDENTITY.search(message)
        where = _SCOPE.search(message)
        permission = needed.group(1) if needed else None
        identity = who.group(1) if who else None
        who_text = f"identity '{identity}'" if identity else "this identity"
        if permission is None:
            said = f": {message}" if message else ""
            return PermissionDenied(
                f"Azure DevOps refused to {operation.what} (HTTP 403){said}",
                fix=f"ask a project administrator to check the permissions of {who_text} under Project settings > "
                "Repositories > Security",
                identity=identity,
                code=code,
            )
        known = permission_by_api_name(permission)
        label = f"'{permission}' (\"{NAMES[known].ui}\")" if known is not None else f"'{permission}'"
        level = where.group(1).lower() if where else None
        at = f" at {level} level" if level else ""
        if known is not None:
            project_level = known == GitPermission.CREATE_REPOSITORY or level == "project"
            path = pages.security_path(
                known,
                identity or "the identity",
                level="project" if project_level else "repository",
                repository=operation.repository,
            )
            fix = f"a project administrator can allow it: {path}"
        else:
            fix = (
                f"a project administrator can allow '{permission}' for {who_text} under Project settings > "
                "Repositories > Security"
            )
        return PermissionDenied(
            f"could not {operation.what} ({code or 'TF401027'}): {who_text} needs the Git permission {label}{at}",
            fix=fix,
            permission=permission,
            identity=identity,
            code=code,
        )

    def _network(self, operation: Operation, cause: NetworkCause) -> Unavailable:
        network_fix = "check the URL (--url, --organization) and the network or proxy (HTTPS_PROXY, NO_PROXY)"
        detail = f": {cause.detail}" if cause.detail else ""
        host = urlsplit(self.url).hostname or self.url
        if cause.kind == "timeout":
            return Unavailable(
                f"Azure DevOps at {self.url} did not answer within {self.timeout:g} s while trying to {operation.what}",
                fix="allow more time with --timeout, or check the network (proxy, firewall)",
            )
        if cause.kind == "dns":
            return Unavailable(
                f"could not connect to {self.url} (host {host} not found) while trying to {operation.what}",
                fix=network_fix,
            )
        if cause.kind == "refused":
            how = cause.detail or "no connection"
            return Unavailable(
                f"could not connect to {self.url} ({how}, after {self.retries} retries) while trying to "
                f"{operation.what}",
                fix=network_fix,
            )
        if cause.kind == "tls-untrusted":
            return Unavailable(
                f"the TLS connection to {self.url} failed while trying to {operation.what}: the server's "
                f"certificate is not trusted{detail}",
                fix="set REQUESTS_CA_BUNDLE to your CA bundle (a PEM file with the CA that signed the server's "
                "or your TLS-inspecting proxy's certificate)",
            )
        if cause.kind == "tls-hostname":
            return Unavailable(
                f"the TLS connection to {self.url} failed while trying to {operation.what}: the server's "
                f"certificate is for another host{detail}",
                fix=f"check the host name {host} in --url or --organization",
            )
        if cause.kind == "tls":
            return Unavailable(
                f"the TLS connection to {self.url} failed while trying to {operation.what}{detail}",
                fix="check that the URL's scheme and port are right (https), and the proxy settings "
                "(HTTPS_PROXY, NO_PROXY)",
            )
        return Unavailable(
            f"the connection to {self.url} failed while trying to {operation.what}",
            fix="check the network and any proxy settings (HTTPS_PROXY, NO_PROXY), then run again",
        )

    # -- fixes ------------------------------------------------------------------------------------------------------

    def _organisation_fix(self) -> str:
        return (
            f"is {self.url} the organisation URL? It is https://dev.azure.com/<organisation> (Azure DevOps Server: "
            "https://<server>/<collection>): correct --url, or pass --organization"
        )

    def _unavailable_fix(self) -> str:
        if self.hosted:
            return f"Azure DevOps is unavailable; try again later, status page {pages.STATUS_PAGE}"
        return "the Azure DevOps server is unavailable; try again later, or ask its administrators"


def _code(text: str) -> str | None:
    found = _CODE.search(text)
    return found.group(1) if found else None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def scrub_secrets(error: AzureDevOpsError, token: AzureDevOpsToken) -> AzureDevOpsError:
    """Belt and braces: no form of the secret survives in the message or the fix, whatever a server echoed."""
    text, fix = error.message, error.fix
    for form in token.secret_forms():
        text = text.replace(form, "***")
        fix = fix.replace(form, "***") if fix else fix
    if text != error.message:
        error.args = (text,)
    error.fix = fix
    return error
