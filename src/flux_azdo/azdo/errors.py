"""What can go wrong when talking to the Azure DevOps REST API, as errors a user can act on, and the mapping.

The SDK reports failures in shapes that are hard to act on: `AzureDevOpsServiceError` carries the service's
message but not the HTTP status, a missing credential is an `AzureDevOpsAuthenticationError` whose text is a URL,
a sign-in page is a deserialisation error and a timeout is a `ClientRequestError` wrapping requests' exception.
`ErrorTranslator` turns each of them (with the status of the last reply, which the client records through a
response hook) into one of the types below, so callers can branch on the kind of failure (a missing repository
is not an outage) and the CLI can print the message as it is: one line saying what happened and how to fix it.
Messages are built here from what we know, never from the request, and `scrub_secrets` removes every form of the
token in case a server echoed it.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote

from urllib3.exceptions import NewConnectionError

from flux_azdo.azdo.credentials import AzureDevOpsToken
from flux_azdo.azdo.security import NAMES, permission_by_api_name
from flux_azdo.errors import UserError

AuthenticationReason = Literal["expired", "invalid", "not-authorized", "sign-in"]

#: PAT scopes as the "New Token" page names them, for the fix in a TF400813 message.
SCOPE_NAMES = {
    "vso.project": "Project and Team (Read)",
    "vso.code": "Code (Read)",
    "vso.code_write": "Code (Read & write)",
    "vso.code_manage": "Code (Read, write, & manage)",
}

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


class AzureDevOpsError(UserError):
    """Any failed Azure DevOps call; `status` is the HTTP status (None: no reply), `code` the TF/VS number."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class AuthenticationFailed(AzureDevOpsError):
    """The service did not accept the credential for this call.

    `reason`: `expired` (the token's lifetime is over), `invalid` (wrong, revoked, or for another organisation),
    `not-authorized` (TF400813: a valid token that lacks the PAT scope this call needs, or an identity the
    organisation does not allow), `sign-in` (the service answered with a sign-in page instead of data).
    """

    def __init__(
        self, message: str, reason: AuthenticationReason, *, status: int | None = 401, code: str | None = None
    ) -> None:
        super().__init__(message, status=status, code=code)
        self.reason: AuthenticationReason = reason


class PermissionDenied(AzureDevOpsError):
    """403 TF401027: the identity lacks a Git permission; `permission` is its API name (`CreateRepository`)."""

    def __init__(
        self,
        message: str,
        *,
        permission: str | None = None,
        identity: str | None = None,
        status: int | None = 403,
        code: str | None = "TF401027",
    ) -> None:
        super().__init__(message, status=status, code=code)
        self.permission = permission
        self.identity = identity


class NotFound(AzureDevOpsError):
    """404 (TF401019 repository, TF200016/VS800075 project): missing, or hidden from this identity."""


class Conflict(AzureDevOpsError):
    """409 (TF400948: a repository with that name already exists)."""


class Unavailable(AzureDevOpsError):
    """No usable answer: a timeout, a refused or dropped connection, or 429/5xx after the bounded retries."""


# ----- from the SDK's exceptions to these -------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
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
    """What a call does, for messages: `what` completes "could not ...", `subject` names what may be missing."""

    what: str
    scope: str | None = None
    subject: str | None = None


class ErrorTranslator:
    """Maps what the SDK raised (plus the last reply) to `flux_azdo.azdo.errors`."""

    def __init__(self, collection_url: str, token: AzureDevOpsToken, timeout: float, retries: int) -> None:
        self.url = collection_url
        self.token = token
        self.timeout = timeout
        self.retries = retries

    def translate(self, error: Exception, operation: Operation, reply: Reply | None) -> AzureDevOpsError | None:
        from azure.core.exceptions import DeserializationError
        from azure.devops.exceptions import AzureDevOpsAuthenticationError, AzureDevOpsServiceError
        from msrest.exceptions import ClientRequestError

        if isinstance(error, AzureDevOpsAuthenticationError):
            return self._authentication(operation, "", reply)
        network = _network_cause(error)
        if network is not None:
            return self._network(operation, network)
        if isinstance(error, AzureDevOpsServiceError):
            message = str(error.message or "")
            status = reply.status if reply is not None and reply.status >= 400 else None
            status = status or _STATUS_BY_TYPE_KEY.get(str(error.type_key or ""))
            return self._status(operation, status, message, reply)
        if isinstance(error, DeserializationError):
            if reply is not None and (reply.status == 203 or "html" in reply.content_type.lower()):
                return self._authentication(operation, "", reply, sign_in=True)
            return AzureDevOpsError(
                f"{self.url} did not answer like Azure DevOps while trying to {operation.what} (a reply that is "
                "not JSON): check that the URL is the organisation or collection URL"
            )
        if isinstance(error, ClientRequestError):
            status = reply.status if reply is not None and reply.status >= 400 else None
            return self._status(operation, status, "", reply)
        if isinstance(error, ValueError) and "is not registered" in str(error):
            return AzureDevOpsError(
                f"{self.url} does not offer the REST API needed to {operation.what}: it must be Azure DevOps "
                "Services or Azure DevOps Server 2020 or later"
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
            if reply is not None and reply.method == "OPTIONS":
                return AzureDevOpsError(
                    f"{self.url} is not an Azure DevOps organisation or collection URL (its location service "
                    f"answered 404{said}): check the organisation name in the URL",
                    status=404,
                    code=code,
                )
            subject = operation.subject or "what was asked for"
            return NotFound(
                f"{subject} was not found on {self.url}, or this identity may not see it ({code or 'HTTP 404'}): "
                "check the name and that the identity is a member of the project",
                status=404,
                code=code,
            )
        if status == 409:
            return Conflict(f"could not {operation.what}{said}", status=409, code=code)
        if status == 429:
            return Unavailable(
                f"Azure DevOps at {self.url} was still throttling requests (HTTP 429) after up to {self.retries} "
                f"retries while trying to {operation.what}: wait a few minutes and run again",
                status=429,
                code=code,
            )
        if status is not None and status >= 500:
            return Unavailable(
                f"Azure DevOps at {self.url} is unavailable (HTTP {status}) while trying to {operation.what}, "
                f"after up to {self.retries} retries: try again later (service status: https://status.dev.azure.com)",
                status=status,
                code=code,
            )
        shown = f"HTTP {status}" if status is not None else "no status"
        return AzureDevOpsError(
            f"Azure DevOps at {self.url} refused to {operation.what} ({shown}){said}", status=status, code=code
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
        return AuthenticationFailed(self._authentication_message(reason, operation), reason, status=status, code=code)

    def _authentication_message(self, reason: AuthenticationReason, operation: Operation) -> str:
        source = self.token.source
        pat_page = f"{self.url}/_usersSettings/tokens"
        if source == "job-token":
            name, fix = "pipeline job token (System.AccessToken)", "use the System.AccessToken of the running job"
        elif source == "entra":
            name = "Microsoft Entra token"
            fix = "add the identity to the organisation (Organization settings > Users) and sign in again (az login)"
        else:
            name, fix = "Azure DevOps token", f"create a PAT at {pat_page}"
        if reason == "expired":
            if source == "job-token":
                return f"the {name} for {self.url} has expired: its job has ended; {fix}"
            if source == "entra":
                return f"the {name} for {self.url} has expired: sign in again (az login) or check the workload identity"
            return f"the {name} for {self.url} has expired: create a new PAT at {pat_page}"
        if reason == "not-authorized":
            scope = operation.scope
            if source in ("password", "environment") and scope is not None:
                ui = SCOPE_NAMES.get(scope, scope)
                fix = f"the PAT needs the scope {ui} ({scope}): create one at {pat_page}"
            elif source in ("password", "environment"):
                fix = f"the PAT lacks a scope this call needs, or the identity is not allowed: check it at {pat_page}"
            else:
                fix = "the identity is not allowed to do this in this organisation (Organization settings > Policies)"
            return f"the {name} is valid but not authorized to {operation.what} on {self.url} (TF400813): {fix}"
        if reason == "sign-in":
            return (
                f"{self.url} answered with a sign-in page instead of data while trying to {operation.what}: the "
                f"credential was not accepted there; check the organisation URL, then {fix}"
            )
        if source == "job-token":
            return (
                f"the {name} was rejected (401) by {self.url}: it is revoked (its job has ended) or for another "
                f"organisation; {fix}"
            )
        return f"the {name} was rejected (401) by {self.url}: it is wrong, revoked or for another organisation; {fix}"

    def _permission(self, operation: Operation, message: str, code: str | None) -> PermissionDenied:
        needed = _NEEDS_PERMISSION.search(message)
        who = _IDENTITY.search(message)
        where = _SCOPE.search(message)
        permission = needed.group(1) if needed else None
        identity = who.group(1) if who else None
        if permission is None:
            said = f": {message}" if message else ""
            return PermissionDenied(
                f"Azure DevOps refused to {operation.what} (HTTP 403){said}", identity=identity, code=code
            )
        known = permission_by_api_name(permission)
        label = f"'{permission}' (\"{NAMES[known].ui}\")" if known is not None else f"'{permission}'"
        level = f" at {where.group(1)} level" if where else ""
        who_text = f"identity '{identity}'" if identity else "this identity"
        return PermissionDenied(
            f"could not {operation.what} ({code or 'TF401027'}): {who_text} needs the Git permission "
            f"{label}{level}; a project administrator can allow it under Project settings > "
            "Repositories > Security",
            permission=permission,
            identity=identity,
            code=code,
        )

    def _network(self, operation: Operation, cause: str) -> Unavailable:
        if cause == "timeout":
            return Unavailable(
                f"Azure DevOps at {self.url} did not answer within {self.timeout:g} s while trying to "
                f"{operation.what}: check the network (proxy, firewall) or allow more time with --timeout"
            )
        if cause == "refused":
            return Unavailable(
                f"could not connect to {self.url} (connection refused or host not found, {self.retries} retries) "
                f"while trying to {operation.what}: check the URL and the network"
            )
        if cause == "tls":
            return Unavailable(
                f"the TLS connection to {self.url} failed while trying to {operation.what}: check the URL and, "
                "behind a TLS-inspecting proxy, set REQUESTS_CA_BUNDLE to its CA certificate"
            )
        return Unavailable(
            f"the connection to {self.url} failed while trying to {operation.what}: check the network and any "
            "proxy settings (HTTPS_PROXY, NO_PROXY), then run again"
        )


def _code(text: str) -> str | None:
    found = _CODE.search(text)
    return found.group(1) if found else None


def _network_cause(error: BaseException) -> str | None:
    """The kind of requests/urllib3 failure behind `error` (timeout, refused, tls, connection), else None."""
    import requests

    seen: set[int] = set()
    current: BaseException | None = error
    found: str | None = None
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, requests.exceptions.Timeout):
            return "timeout"
        if isinstance(current, requests.exceptions.SSLError):
            return "tls"
        if isinstance(current, requests.exceptions.ConnectionError):
            reason = getattr(current.args[0], "reason", None) if current.args else None
            found = "refused" if isinstance(reason, NewConnectionError) else "connection"
        elif isinstance(current, requests.exceptions.RequestException):
            found = found or "connection"
        current = current.__cause__ or current.__context__
    return found


def scrub_secrets(error: AzureDevOpsError, token: AzureDevOpsToken) -> None:
    """Belt and braces: no form of the secret survives in a message, whatever a server echoed."""
    text = error.message
    for form in token.secret_forms():
        text = text.replace(form, "***")
    if text != error.message:
        error.args = (text,)
