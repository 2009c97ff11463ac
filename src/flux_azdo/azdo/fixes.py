"""The texts that tell a person how to fix what the preflight found: where to click, and what to run.

A failing check is only useful when it names the exact setting. Azure DevOps shows other names than its API
(`vso.code_write` is "Code (Read & write)" on the PAT page, `GenericContribute` is "Contribute" on the Security
page), so every fix here uses the names the person will see, the identity's display name as the Security page
lists it, and, where the same change can be scripted, the `az devops` command with the exact token and bit.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Literal

from flux_azdo.azdo.security import GIT_NAMESPACE_ID, NAMES, GitPermission


@dataclass(frozen=True)
class ScopeName:
    ui: str  # as the PAT list shows it: "Code (Read & write)"
    tick: str  # the checkbox on the PAT edit page: "Code > Read & write"


#: The PAT scopes a bootstrap can need, with the names of the "Edit a personal access token" page.
SCOPES: dict[str, ScopeName] = {
    "vso.project": ScopeName("Project and Team (Read)", "Project and Team > Read"),
    "vso.code": ScopeName("Code (Read)", "Code > Read"),
    "vso.code_write": ScopeName("Code (Read & write)", "Code > Read & write"),
    "vso.code_manage": ScopeName("Code (Read, write, & manage)", "Code > Read, write, & manage"),
}

#: Where a Git permission is set: one repository (or one branch of it), or every repository of the project.
Level = Literal["repository", "branch", "project"]


def _base(collection_url: str) -> str:
    return collection_url.rstrip("/")


def tokens_page(collection_url: str) -> str:
    """The user's "Personal access tokens" page of this organisation."""
    return f"{_base(collection_url)}/_usersSettings/tokens"


def ssh_keys_page(collection_url: str) -> str:
    """The user's "SSH public keys" page."""
    return f"{_base(collection_url)}/_usersSettings/keys"


def scope_label(scope: str) -> str:
    """`'Code (Read & write)' scope (vso.code_write)`."""
    name = SCOPES.get(scope)
    return f"'{name.ui}' scope ({scope})" if name else f"'{scope}' scope"


def missing_scope(scope: str, collection_url: str | None) -> str:
    """The fix for a PAT without `scope`: the page to edit it on and the checkbox to tick."""
    name = SCOPES.get(scope)
    tick = name.tick if name else scope
    where = tokens_page(collection_url) if collection_url else "User settings > Personal access tokens"
    return f"edit the PAT at {where} and tick {tick}"


def regenerate_pat(collection_url: str | None) -> str:
    where = tokens_page(collection_url) if collection_url else "User settings > Personal access tokens"
    return f"regenerate the PAT at {where} (Regenerate keeps its scopes) and pass the new one"


def permission_label(permission: GitPermission) -> str:
    """`Contribute (GenericContribute)`: the UI name people look for, and the API name TF401027 prints."""
    names = NAMES[permission]
    return f"{names.ui} ({names.api})"


def security_path(
    permission: GitPermission, identity: str, *, level: Level, repository: str | None = None, branch: str | None = None
) -> str:
    """The clicks that set `permission` to Allow for `identity` (its display name as the Security page lists it).

    Repository level: `Project settings > Repositories > <repo> > Security`; project level ("all repositories",
    where CreateRepository lives and what a repository not created yet inherits): `Project settings >
    Repositories > Security`; branch level (a Deny on the branch overrides the repository's Allow):
    `Repos > Branches > <branch> > ... > Branch security`.
    """
    setting = f'"{identity}" > {NAMES[permission].ui}: Allow'
    if level == "branch" and repository and branch:
        return f"Repos > Branches ({repository}) > {branch} > More options (...) > Branch security > {setting}"
    if level == "repository" and repository:
        return f"Project settings > Repositories > {repository} > Security > {setting}"
    return f"Project settings > Repositories > Security (all repositories) > {setting}"


def grant_command(permission: GitPermission, *, subject: str, token: str, collection_url: str) -> str:
    """`az devops security permission update` that allows `permission` for `subject` on `token`."""
    return " ".join(
        [
            "az devops security permission update",
            f"--id {GIT_NAMESPACE_ID}",
            f"--subject {shlex.quote(subject)}",
            f"--token {shlex.quote(token)}",
            f"--allow-bit {int(permission)}",
            f"--org {shlex.quote(_base(collection_url))}",
        ]
    )


def policy_alternative(branch: str) -> str:
    """What to do instead of exempting the identity from a branch policy."""
    return (
        f"or bootstrap to a branch without the policy (--branch flux-{branch}) and merge it into {branch} "
        "with a pull request"
    )


def enable_repository(repository: str) -> str:
    return f"enable it: Project settings > Repositories > {repository} > Settings > Disable Repository: Off"
