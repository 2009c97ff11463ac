"""The Git Repositories security namespace: which bits a bootstrap needs, where they live, what people call them.

Azure DevOps checks Git permissions against hierarchical tokens (`repoV2/<projectId>/<repoId>/refs/heads/...`),
so asking "may I push to main" means asking about the branch token, where a branch-level deny or allow can
override the repository's. The UI shows other names than the API: both are kept so a failure can name the
checkbox a person must tick.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

GIT_NAMESPACE_ID = "2e9eb7ed-3c0a-47d4-87c1-0ffdd275fd87"
ROOT_TOKEN = "repoV2"


class GitPermission(enum.IntFlag):
    """`GitRepositoryPermissions` bits (the values the service defines)."""

    GENERIC_READ = 2
    GENERIC_CONTRIBUTE = 4
    FORCE_PUSH = 8
    CREATE_BRANCH = 16
    POLICY_EXEMPT = 128
    CREATE_REPOSITORY = 256


@dataclass(frozen=True)
class PermissionName:
    api: str  # as TF401027 prints it
    ui: str  # as the Security page lists it


NAMES: dict[GitPermission, PermissionName] = {
    GitPermission.GENERIC_READ: PermissionName("GenericRead", "Read"),
    GitPermission.GENERIC_CONTRIBUTE: PermissionName("GenericContribute", "Contribute"),
    GitPermission.FORCE_PUSH: PermissionName("ForcePush", "Force push (rewrite history, delete branches and tags)"),
    GitPermission.CREATE_BRANCH: PermissionName("CreateBranch", "Create branch"),
    GitPermission.POLICY_EXEMPT: PermissionName("PolicyExempt", "Bypass policies when pushing"),
    GitPermission.CREATE_REPOSITORY: PermissionName("CreateRepository", "Create repository"),
}


def permission_by_api_name(name: str) -> GitPermission | None:
    """The bit TF401027 names (`You need the Git 'GenericContribute' permission`), if we know it."""
    for permission, names in NAMES.items():
        if names.api.lower() == name.lower():
            return permission
    return None


def project_token(project_id: str) -> str:
    """Every repository of a project: where CreateRepository is granted."""
    return f"{ROOT_TOKEN}/{project_id.lower()}"


def repository_token(project_id: str, repository_id: str) -> str:
    return f"{project_token(project_id)}/{repository_id.lower()}"


def branch_token(project_id: str, repository_id: str, branch: str) -> str:
    """A branch: each `/`-separated part of the name as UTF-16LE hex, with a trailing `/` (`main` -> `6d00...`)."""
    parts = [part.encode("utf-16-le").hex() for part in branch.removeprefix("refs/heads/").split("/")]
    return f"{repository_token(project_id, repository_id)}/refs/heads/{'/'.join(parts)}/"
