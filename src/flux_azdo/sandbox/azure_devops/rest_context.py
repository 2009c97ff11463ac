"""What every REST handler works with: the authenticated caller, the query, the body, and the lookups that hide
what the caller may not see (404 rather than 403, as the service does for projects and repositories)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from flux_azdo.sandbox.azure_devops import errors
from flux_azdo.sandbox.azure_devops.errors import ServiceError
from flux_azdo.sandbox.world import Credential, Project, Repository

if TYPE_CHECKING:
    from flux_azdo.sandbox.azure_devops.server import AzureDevOpsServer, _Handler

PROJECT_SCOPES = ("vso.project", "vso.profile")
CODE_SCOPES = ("vso.code",)
CODE_WRITE_SCOPES = ("vso.code_write",)


class RequestContext:
    def __init__(self, handler: _Handler, owner: AzureDevOpsServer, credential: Credential, query: dict[str, str]):
        self.handler = handler
        self.owner = owner
        self.world = owner.world
        self.credential = credential
        self.identity = credential.identity
        self.query = query  # keys lowercased

    def require_scope(self, *scopes: str) -> None:
        if not self.credential.has_scope(*scopes):
            raise errors.not_authorized(self.identity.id)

    def body(self, parameter: str) -> Any:
        """The JSON body (None when empty). A body that is not JSON does not bind to the action's `parameter`,
        which the service reports as ArgumentNullException for that parameter (400)."""
        raw = self.handler.read_body()
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            raise errors.argument_null(parameter) from None

    def project(self, name_or_id: str) -> Project:
        """The route's `{project}`, hidden (404) when the caller cannot see it, like the service does."""
        project = self.world.find_project(name_or_id)
        if project is None or not self.can_see(project):
            raise project_missing(name_or_id)
        return project

    def can_see(self, project: Project) -> bool:
        return self.world.is_member(self.identity, project)

    def readable_repository(
        self, project: Project | None, name_or_id: str, *, allow_disabled: bool = False
    ) -> Repository:
        """The repository if the caller may read it, else 404 TF401019; a disabled one only with `allow_disabled`
        (the repository itself is still shown, with `isDisabled: true`; what is inside it is refused)."""
        repository = self.world.find_repository(project, name_or_id)
        if repository is None or not self.owner.can_read(self.identity, repository):
            raise errors.repository_not_found(name_or_id)
        if repository.is_disabled and not allow_disabled:
            raise errors.repository_not_found(name_or_id)
        return repository

    def repository_in_route(self, project_name: str | None, name_or_id: str) -> Repository:
        """`{project}/_apis/git/repositories/{repositoryId}` or the project-less form (repository by id), for the
        calls inside a repository: a disabled repository is refused like a missing one."""
        project = self.project(project_name) if project_name is not None else None
        return self.readable_repository(project, name_or_id)


def is_guid(text: str) -> bool:
    parts = text.split("-")
    return [len(p) for p in parts] == [8, 4, 4, 4, 12] and all(c in "0123456789abcdefABCDEF" for c in "".join(parts))


def project_missing(name_or_id: str) -> ServiceError:
    return (
        errors.project_not_found_by_id(name_or_id)
        if is_guid(name_or_id)
        else errors.project_not_found_by_name(name_or_id)
    )


def time_text(moment: datetime) -> str:
    """The service's timestamp form: UTC, milliseconds, `Z`."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def collection(items: list[Any]) -> dict[str, Any]:
    """`VssJsonCollectionWrapper`: what list endpoints return and the SDK unwraps."""
    return {"count": len(items), "value": items}
