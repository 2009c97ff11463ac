"""Error replies in the shapes Azure DevOps sends, so clients take the same code paths as against the service.

REST errors are `WrappedException` JSON documents: the SDK turns any non-2xx reply with such a body into
`AzureDevOpsServiceError` (even a 401), a 401 without one into `AzureDevOpsAuthenticationError`. The service also
repeats the message, URL-encoded, in the `X-TFS-ServiceError` header; tools that only look at headers (the
pipeline agent, curl scripts) read it from there. Git clients get plain text instead, which git prints as
`remote: <text>`.

Texts are the service's, with the TF/VS numbers people search for (azure-devops.md §6.2).
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

_GIT_SERVER = "Microsoft.TeamFoundation.Git.Server"
_CORE = "Microsoft.TeamFoundation.Core.WebApi"
_FRAMEWORK = "Microsoft.TeamFoundation.Framework.Server"
_WEB_API = "Microsoft.VisualStudio.Services.WebApi"
_EMPTY_GUID = "00000000-0000-0000-0000-000000000000"


@dataclass
class ServiceError(Exception):
    """An error reply: HTTP status plus the WrappedException fields (and extra headers such as Retry-After)."""

    status: int
    message: str
    type_key: str
    assembly: str = _FRAMEWORK
    custom_properties: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # 401 replies for a missing or unknown credential carry no body at all (see `unauthenticated`).
    empty_body: bool = False
    # The .NET namespace of the exception type when it differs from its assembly (System.ArgumentException lives
    # in mscorlib).
    namespace: str | None = None

    def __str__(self) -> str:
        return self.message

    @property
    def type_name(self) -> str:
        return f"{self.namespace or self.assembly}.{self.type_key}, {self.assembly}"

    def body(self) -> dict[str, Any]:
        document: dict[str, Any] = {"$id": "1", "innerException": None, "message": self.message}
        if self.custom_properties is not None:
            document["customProperties"] = self.custom_properties
        document.update({"typeName": self.type_name, "typeKey": self.type_key, "errorCode": 0, "eventId": 3000})
        return document

    def json_bytes(self) -> bytes:
        return json.dumps(self.body(), separators=(",", ":")).encode()

    def service_error_header(self) -> str:
        """`X-TFS-ServiceError` value: the message, percent-encoded like the service does."""
        return quote(self.message, safe="")


def repository_not_found(name_or_id: str) -> ServiceError:
    """404 TF401019: also the answer when the caller may not read the repository (the service hides it)."""
    return ServiceError(404, repository_not_found_text(name_or_id), "GitRepositoryNotFoundException", _GIT_SERVER)


def repository_not_found_text(name_or_id: str) -> str:
    return (
        f"TF401019: The Git repository with name or identifier {name_or_id} does not exist or you do not have "
        "permissions for the operation you are attempting."
    )


def needs_permission_text(permission: str, identity_name: str, scope: str = "repository") -> str:
    """TF401027 text; `scope` is `repository`, `branch` or `project` depending on where the check failed.

    `identity_name` is the identity's unique name as the service prints it (`Identity.error_name`):
    `Build\\<projectId>` for a project build service, `<tenant or domain>\\<sign-in name>` for a user.
    """
    return (
        f"TF401027: You need the Git '{permission}' permission to perform this action. "
        f"Details: identity '{identity_name}', scope '{scope}'."
    )


def needs_permission(permission: str, identity_name: str, scope: str = "repository") -> ServiceError:
    return ServiceError(
        403, needs_permission_text(permission, identity_name, scope), "GitNeedsPermissionException", _GIT_SERVER
    )


def project_not_found_by_name(name: str) -> ServiceError:
    message = (
        f"TF200016: The following project does not exist: {name}. Verify that the name of the project is correct "
        "and that the project exists on the specified Azure DevOps Server."
    )
    return ServiceError(404, message, "ProjectDoesNotExistWithNameException", _CORE)


def project_not_found_by_id(project_id: str) -> ServiceError:
    message = (
        f"VS800075: The project with id 'vstfs:///Classification/TeamProject/{project_id}' does not exist, "
        "or you do not have permission to access it."
    )
    return ServiceError(404, message, "ProjectDoesNotExistException", _CORE)


def repository_name_exists(name: str) -> ServiceError:
    return ServiceError(
        409,
        f"TF400948: A Git repository with the name {name} already exists.",
        "GitRepositoryNameAlreadyExistsException",
        _GIT_SERVER,
    )


def stale_ref_text(ref: str) -> str:
    """TF401028: the ref moved between the client's read and its update."""
    return (
        f"TF401028: The reference '{ref}' has already been updated by another client, so you cannot update it. "
        "Please try again."
    )


POLICY_REJECTION = (
    "TF402455: Pushes to this branch are not permitted; you must use a pull request to update this branch."
)

PAT_EXPIRED = "Access Denied: The Personal Access Token used has expired."
ANONYMOUS_GIT = "TF400813: Resource not available for anonymous access. Client authentication required."


def pat_expired() -> ServiceError:
    """401 for an expired PAT: an `AccessCheckException` JSON body, as seen from the service (agent#1559)."""
    custom = {
        "Descriptor": None,
        "IdentityDisplayName": None,
        "Token": None,
        "RequestedPermissions": 0,
        "NamespaceId": _EMPTY_GUID,
    }
    return ServiceError(401, PAT_EXPIRED, "AccessCheckException", _FRAMEWORK, custom_properties=custom)


def unauthenticated(message: str) -> ServiceError:
    """401 for a missing, unknown or revoked credential.

    The service answers these with an empty body and `WWW-Authenticate` challenges; the SDK then raises
    `AzureDevOpsAuthenticationError("The requested resource requires user authentication: <url>")`.
    `message` only goes to the git side (plain text) and the `X-TFS-ServiceError` header.
    """
    return ServiceError(401, message, "UnauthorizedRequestException", _FRAMEWORK, empty_body=True)


def not_authorized(identity_id: str) -> ServiceError:
    """401 TF400813 for a valid credential that lacks the PAT scope the call needs.

    UNVERIFIED body: the service does not document the reply to a missing scope. TF400813
    `UnauthorizedRequestException` is what its REST layer reports when a token is valid but not authorised for
    the resource (azure-cli#24108), so the SDK raises an `AzureDevOpsServiceError` with this text.
    """
    message = f"TF400813: The user '{identity_id}' is not authorized to access this resource."
    return ServiceError(401, message, "UnauthorizedRequestException", _FRAMEWORK)


def bad_request(message: str, type_key: str = "ArgumentException") -> ServiceError:
    """400 for input the service cannot use: `System.ArgumentException, mscorlib` unless another type is named."""
    if type_key in ("ArgumentException", "ArgumentNullException"):
        return ServiceError(400, message, type_key, "mscorlib", namespace="System")
    return ServiceError(400, message, type_key, _FRAMEWORK)


def argument_null(parameter: str) -> ServiceError:
    """400 when a required input is missing or did not bind (a body that is not JSON binds to nothing)."""
    return bad_request(f"Value cannot be null.\r\nParameter name: {parameter}", "ArgumentNullException")


def invalid_guid(parameter: str, value: str) -> ServiceError:
    """400 for a query parameter that must be a GUID (the service binds such parameters as `Guid`).

    The exact text of the service's binding failure is not documented; this one names the parameter and value.
    """
    return bad_request(f"The value '{value}' is not a valid GUID.\r\nParameter name: {parameter}")


def resource_not_found(path: str) -> ServiceError:
    """404 for an unknown route (the service says the same for a URL that maps to no API resource)."""
    message = f"The controller for path '{path}' was not found or does not implement IController."
    return ServiceError(404, message, "HttpException", "System.Web")


def organization_not_found(name: str) -> ServiceError:
    """404 for an organisation the server does not host.

    The service answers 404 for a mistyped organisation (azure-cli#32897); its body could not be verified, so
    this one only names the organisation and carries no TF number.
    """
    return ServiceError(404, f"The organization '{name}' was not found.", "HostDoesNotExistException")


def method_not_allowed(method: str, allowed: list[str]) -> ServiceError:
    """405 for a path that exists with another method (ASP.NET Web API's text), with the `Allow` header."""
    message = f"The requested resource does not support http method '{method}'."
    return ServiceError(405, message, "HttpException", "System.Web", headers={"Allow": ", ".join(allowed)})


def version_not_specified(method: str) -> ServiceError:
    """400 when a non-GET request names no api-version (WebApiResources.VersionNotSuppliedMessage)."""
    message = (
        f'No api-version was supplied for the "{method}" request. The version must be supplied either as part of '
        'the Accept header (e.g. "application/json; api-version=1.0") or as a query parameter '
        '(e.g. "?api-version=1.0").'
    )
    return ServiceError(400, message, "VssVersionNotSpecifiedException", _WEB_API)


def invalid_api_version(text: str) -> ServiceError:
    """400 for an api-version that does not parse (WebApiResources.InvalidApiVersionStringMessage)."""
    message = (
        f'Invalid api version string: "{text}". Api version string must be in the format: '
        "{Major}.{Minor}[-preview[.{ResourceVersion}]]."
    )
    return ServiceError(400, message, "VssInvalidApiResourceVersionException", _WEB_API)


def api_version_out_of_range(requested: str, latest: str) -> ServiceError:
    """400 for a version above the server's newest (WebApiResources.ApiVersionOutOfRange)."""
    message = (
        f"The requested REST API version of {requested} is out of range for this server. "
        f"The latest REST API version this server supports is {latest}."
    )
    return ServiceError(400, message, "VssVersionOutOfRangeException", _WEB_API)


def preview_not_supplied(requested: str) -> ServiceError:
    """400 for a preview resource (or version) asked for without `-preview`
    (WebApiResources.PreviewVersionNotSuppliedMessage)."""
    message = (
        f'The requested version "{requested}" of the resource is under preview. The -preview flag must be '
        f'supplied in the api-version for such requests. For example: "{requested}-preview"'
    )
    return ServiceError(400, message, "VssInvalidPreviewVersionException", _WEB_API)


def branch_not_found(branch: str, repository_name: str) -> ServiceError:
    """404 TF401175 for a branch that does not exist (text as captured from the service's items/stats APIs)."""
    message = (
        f"TF401175:The version descriptor <Branch: {branch} > could not be resolved to a version in the "
        f"repository {repository_name}"
    )
    return ServiceError(404, message, "GitUnresolvableToCommitException", _GIT_SERVER)


def throttled(status: int, retry_after: float | None) -> ServiceError:
    """An injected 503/429: the texts the service uses when it sheds or rate-limits load."""
    if status == 429:
        message = (
            "TF400733: The request has been canceled: Request was blocked due to exceeding usage of resource "
            "'ATCPU' in namespace 'User'."
        )
        type_key = "RequestBlockedException"
    else:
        message = "TF400898: An Internal Error Occurred. The service is temporarily unavailable."
        type_key = "ServiceUnavailableException"
    headers = {}
    if status == 429:
        # The service's rate-limit headers (learn.microsoft.com "Rate and usage limits").
        headers.update({"X-RateLimit-Resource": "ATCPU", "X-RateLimit-Delay": "1", "X-RateLimit-Limit": "200"})
        headers.update({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "0"})
    if retry_after is not None:
        # HTTP allows whole seconds only; clients (urllib3) ignore anything else.
        headers["Retry-After"] = str(max(0, math.ceil(retry_after)))
    return ServiceError(status, message, type_key, headers=headers)


def internal_error(activity_id: str) -> ServiceError:
    """500 TF400898 as the service words it (vsts-rest-api-specs#636: `TF400898: An Internal Error Occurred.
    Activity Id: <guid>.`). The type varies with the failure on the service; `System.Exception` stands for any."""
    message = f"TF400898: An Internal Error Occurred. Activity Id: {activity_id}."
    return ServiceError(500, message, "Exception", "mscorlib", namespace="System")


# ----- the sign-in page ----------------------------------------------------------------------------------------

#: The header the SDK (azure/devops/client.py, `_suppress_fedauth_redirect`, always True) and the Azure SDKs'
#: pipeline credentials send so that a refused credential gets a 401 instead of the sign-in redirect.
FEDAUTH_REDIRECT_HEADER = "X-TFS-FedAuthRedirect"
SIGN_IN_PATH = "/_signin"


def object_moved_html(location: str) -> bytes:
    """The body of the service's 302 to its sign-in page (IIS' "Object moved", quoted in azure-sdk-for-js'
    TROUBLESHOOTING for AzurePipelinesCredential and in azure-devops-docs#13661)."""
    escaped = html.escape(location, quote=True)
    return (
        "<html><head><title>Object moved</title></head><body>\r\n"
        f'<h2>Object moved to <a href="{escaped}">here</a>.</h2>\r\n'
        "</body></html>\r\n"
    ).encode()


def sign_in_page_html() -> bytes:
    """A sign-in page like the one the service's redirect leads to: HTML a browser shows, data for no API client."""
    return (
        b'<!DOCTYPE html>\r\n<html><head><meta charset="utf-8">'
        b"<title>Azure DevOps Services | Sign In</title></head>\r\n"
        b"<body><h1>Sign in</h1><p>Sign in to continue to Azure DevOps.</p>"
        b'<form method="post" action="/_signin"><input type="email" name="loginfmt">'
        b'<input type="submit" value="Next"></form></body></html>\r\n'
    )
