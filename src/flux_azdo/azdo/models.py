"""What the client returns: small frozen values, parsed from the SDK's models so nothing else sees those.

The SDK's models are msrest objects with every field optional; the values here carry only what a bootstrap
uses, with the gaps filled in or made explicit (an empty repository has no default branch: None).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

CallerKind = Literal["user", "build-service", "collection-build-service", "other"]
#: Where `Caller.display_name` comes from: `service` (ConnectionData gave it), `derived` (built the way Azure
#: DevOps names build services: "<Project> Build Service (<org>)"), `account` (the sign-in name, e.g.
#: `Build\<project id>`: the Security pages list the identity under another name), `id` (nothing better known).
NameSource = Literal["service", "derived", "account", "id"]

_USER_DESCRIPTOR = "Microsoft.IdentityModel.Claims.ClaimsIdentity"
_SERVICE_DESCRIPTOR = "Microsoft.TeamFoundation.ServiceIdentity"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


@dataclass(frozen=True)
class Caller:
    """Who the token is, as `ConnectionData` tells (the identity Git permissions are evaluated for)."""

    id: str
    display_name: str
    descriptor: str
    subject_descriptor: str | None
    unique_name: str | None
    kind: CallerKind
    #: The project id (build-service) or the collection id (collection-build-service); None otherwise.
    build_scope_id: str | None
    #: How `display_name` was found; anything but `service` deserves a word when it is shown (see NameSource).
    name_source: NameSource = "service"


@dataclass(frozen=True)
class ProjectInfo:
    id: str
    name: str


@dataclass(frozen=True)
class RepositoryInfo:
    id: str
    name: str
    project_id: str
    project_name: str
    #: "main" (without refs/heads/); None for an empty repository, which has no default branch yet.
    default_branch: str | None
    remote_url: str
    ssh_url: str | None
    web_url: str
    is_disabled: bool


@dataclass(frozen=True)
class BranchPolicy:
    id: int
    type_name: str
    #: A required policy: direct pushes are rejected (TF402455) unless the pusher has PolicyExempt.
    blocking: bool


# ----- from the SDK's models -----------------------------------------------------------------------------------


def caller_from_connection_data(data: Any) -> Caller | None:
    """The authenticated identity of a `ConnectionData`, None when it names none (not Azure DevOps, really).

    The display name is the one the service shows people (`customDisplayName`, else `providerDisplayName`). A
    build service may come with a bare GUID there (its project's id) or nothing at all; then `display_name` is
    empty, for `better_name` to fill in.
    """
    user = getattr(data, "authenticated_user", None)
    if user is None:
        return None
    descriptor = str(user.descriptor or "")
    kind, scope_id = _caller_kind(descriptor, str(getattr(data, "instance_id", None) or ""))
    names = (str(name).strip() for name in (user.custom_display_name, user.provider_display_name) if name)
    display_name = next((name for name in names if name and not _GUID.match(name)), "")
    return Caller(
        id=str(user.id),
        display_name=display_name,
        descriptor=descriptor,
        subject_descriptor=user.subject_descriptor or None,
        unique_name=_account_name(user.properties),
        kind=kind,
        build_scope_id=scope_id,
    )


def better_name(caller: Caller, organization: str, project_name: str | None) -> Caller:
    """`caller` with a display name people recognise, when the service gave none (or only a GUID).

    Build services are named by Azure DevOps as "<Project> Build Service (<org>)" and "Project Collection Build
    Service (<org>)"; that name is built only when the parts are known (`project_name` comes from the project the
    descriptor names). Otherwise the sign-in name (`Build\\<project id>`) is the best there is, then the id.
    """
    if caller.display_name:
        return caller
    if caller.kind == "collection-build-service" and organization:
        return replace(caller, display_name=f"Project Collection Build Service ({organization})", name_source="derived")
    if caller.kind == "build-service" and organization and project_name:
        return replace(caller, display_name=f"{project_name} Build Service ({organization})", name_source="derived")
    if caller.unique_name:
        return replace(caller, display_name=caller.unique_name, name_source="account")
    return replace(caller, display_name=caller.id, name_source="id")


def organization_name(collection_url: str) -> str:
    """What Azure DevOps puts in brackets after "Build Service": the organisation (dev.azure.com/<org>, or
    <org>.visualstudio.com) or the collection (Azure DevOps Server: .../<collection>)."""
    parts = urlsplit(collection_url)
    segments = [unquote(segment) for segment in parts.path.split("/") if segment]
    if segments:
        return segments[-1]
    host = (parts.hostname or "").lower()
    return host.split(".")[0] if host.endswith(".visualstudio.com") else ""


def repository_info(repository: Any) -> RepositoryInfo:
    default = repository.default_branch
    project = repository.project
    return RepositoryInfo(
        id=str(repository.id),
        name=str(repository.name),
        project_id=str(project.id) if project is not None else "",
        project_name=str(project.name) if project is not None else "",
        default_branch=str(default).removeprefix("refs/heads/") if default else None,
        remote_url=str(repository.remote_url or ""),
        ssh_url=str(repository.ssh_url) if repository.ssh_url else None,
        web_url=str(repository.web_url or ""),
        is_disabled=bool(repository.is_disabled),
    )


def enabled_branch_policy(item: Any) -> BranchPolicy | None:
    """A git policy configuration as a BranchPolicy; None when it is disabled or deleted (it applies to nothing)."""
    if not item.is_enabled or item.is_deleted:
        return None
    type_name = str(getattr(item.type, "display_name", None) or getattr(item.type, "id", "") or "")
    return BranchPolicy(id=int(item.id), type_name=type_name, blocking=bool(item.is_blocking))


def _caller_kind(descriptor: str, instance_id: str) -> tuple[CallerKind, str | None]:
    """`ServiceIdentity;<host>:Build:<id>` is a build service: of the collection when <id> is the collection's
    own id (ConnectionData `instanceId`), else of the project <id>. `ClaimsIdentity;...` is a user."""
    kind, _, rest = descriptor.partition(";")
    if kind == _USER_DESCRIPTOR:
        return "user", None
    if kind == _SERVICE_DESCRIPTOR:
        parts = rest.split(":")
        if len(parts) >= 3 and parts[-2] == "Build" and parts[-1]:
            scope_id = parts[-1].lower()
            if instance_id and scope_id == instance_id.lower():
                return "collection-build-service", scope_id
            return "build-service", scope_id
    return "other", None


def _account_name(properties: Any) -> str | None:
    """The sign-in name from an Identity's properties (`{"Account": {"$type": ..., "$value": "..."}}`)."""
    if not isinstance(properties, dict):
        return None
    account = properties.get("Account")
    value = account.get("$value") if isinstance(account, dict) else account
    return str(value) if isinstance(value, str) and value else None
