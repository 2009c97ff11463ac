"""Where in Azure DevOps a person fixes what we found: page addresses and the clicks on the Security pages.

Messages from the client and the fixes of the preflight point at the same pages; building the addresses and
click paths in one place keeps them identical everywhere.
"""

from __future__ import annotations

from typing import Literal

from flux_azdo.azdo.security import NAMES, GitPermission

#: The status page of Azure DevOps Services (dev.azure.com and *.visualstudio.com).
STATUS_PAGE = "https://status.dev.azure.com"

#: Where a Git permission is set: one repository (or one branch of it), or every repository of the project.
Level = Literal["repository", "branch", "project"]


def tokens_page(collection_url: str) -> str:
    """The signed-in user's "Personal access tokens" page for this organisation (or collection)."""
    return f"{collection_url.rstrip('/')}/_usersSettings/tokens"


def ssh_keys_page(collection_url: str) -> str:
    """The signed-in user's "SSH public keys" page."""
    return f"{collection_url.rstrip('/')}/_usersSettings/keys"


def security_path(
    permission: GitPermission, identity: str, *, level: Level, repository: str | None = None, branch: str | None = None
) -> str:
    """The clicks that set `permission` to Allow for `identity` (its name as the Security page lists it).

    Repository level: `Project settings > Repositories > <repo> > Security`; project level ("all repositories",
    where CreateRepository lives and what a repository not created yet inherits): `Project settings >
    Repositories > Security`; branch level (a Deny on the branch overrides the repository's Allow):
    `Repos > Branches > <branch> > ... > Branch security`. Without the names a level needs, the project level
    is given, which covers every repository.
    """
    setting = f'"{identity}" > {NAMES[permission].ui}: Allow'
    if level == "branch" and repository and branch:
        return f"Repos > Branches ({repository}) > {branch} > More options (...) > Branch security > {setting}"
    if level == "repository" and repository:
        return f"Project settings > Repositories > {repository} > Security > {setting}"
    return f"Project settings > Repositories > Security (all repositories) > {setting}"
