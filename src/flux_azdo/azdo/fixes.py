"""The texts that tell a person how to fix what the preflight found: where to click, and what to run.

A failing check is only useful when it names the exact setting. Azure DevOps shows other names than its API
(`vso.code_write` is "Code (Read & write)" on the PAT page, `GenericContribute` is "Contribute" on the Security
page), so every fix here uses the names the person will see, the identity's display name as the Security page
lists it, and, where the same change can be scripted, the `az devops` command with the exact token and bit.

The fix also depends on what the token is: "regenerate the PAT" is no help for a pipeline's job token, whose
reach is set by the job authorization scope settings and by what the pipeline references.
"""

from __future__ import annotations

import shlex
from typing import Literal

from flux_azdo.azdo import pages
from flux_azdo.azdo.pages import Level, security_path
from flux_azdo.azdo.scopes import pat_scope
from flux_azdo.azdo.security import GIT_NAMESPACE_ID, NAMES, GitPermission

__all__ = ["Level", "security_path"]  # re-exported: the preflight takes every fix text from here


#: What the token is (`flux_azdo.azdo.preflight.facts.credential_kind`).
TokenKind = Literal["pat", "job-token", "entra", "token"]

#: The two organisation/project settings that decide what a job token may reach (azure-devops.md §6.4).
LIMIT_SCOPE = "Limit job authorization scope to current project for non-release pipelines"
LIMIT_SCOPE_RELEASE = "Limit job authorization scope to current project for release pipelines"
PROTECT_REPOSITORIES = "Protect access to repositories in YAML pipelines"
PIPELINE_SETTINGS = "Project settings > Pipelines > Settings"
REFERENCE_REPOSITORY = "reference the repository in the pipeline (a `checkout:` step or `uses: repositories:`)"
PAT_SCOPES_FOR_CHECK = "Project and Team (Read) and Code (Read & write)"


def _base(collection_url: str) -> str:
    return collection_url.rstrip("/")


def tokens_page(collection_url: str | None) -> str:
    """The user's "Personal access tokens" page of this organisation (the menu path when it is not known)."""
    return pages.tokens_page(collection_url) if collection_url else "User settings > Personal access tokens"


def ssh_keys_page(collection_url: str | None) -> str:
    """The user's "SSH public keys" page (the menu path when the organisation is not known)."""
    return pages.ssh_keys_page(collection_url) if collection_url else "User settings > SSH public keys"


def new_repository_page(collection_url: str, project: str) -> str:
    from flux_azdo.azdo.urls import encode

    return f"{_base(collection_url)}/{encode(project)}/_git"


def scope_label(scope: str) -> str:
    """`'Code (Read & write)' scope (vso.code_write)`."""
    return f"'{pat_scope(scope).label}' scope ({scope})"


def scope_tick(scope: str) -> str:
    """The option to choose on the PAT's edit page: `Custom defined > Code > Read & write`."""
    return pat_scope(scope).checkbox_path


def missing_scope(scope: str, collection_url: str | None) -> str:
    """The fix for a PAT without `scope`: the page to edit it on and the checkbox to tick."""
    return f"edit the PAT at {tokens_page(collection_url)} and choose {scope_tick(scope)}"


def unknown_scope(scope: str, collection_url: str | None) -> str:
    """The fix when a probe could not tell: look at the PAT."""
    return f"check the PAT at {tokens_page(collection_url)}: {scope_tick(scope)} must be chosen"


def regenerate_pat(collection_url: str | None) -> str:
    return f"regenerate the PAT at {tokens_page(collection_url)} (Regenerate keeps its scopes) and pass the new one"


def refused_token(kind: TokenKind, collection_url: str | None, origin: str = "") -> str:
    """What to do when the service refuses the token, by what the token is and where it came from."""
    if kind == "job-token":
        return (
            "pass $(System.AccessToken) of the running job (map it into the step's env), never a token saved from "
            "an earlier run"
        )
    if kind == "entra":
        where = f" {collection_url}" if collection_url else ""
        return (
            "sign in again (az login, or the pipeline's workload identity service connection) and make sure the "
            f"identity was added to the organisation{where}"
        )
    give = f"set {origin} to it" if origin == "AZURE_DEVOPS_EXT_PAT" else "pass it (GIT_PASSWORD or --password-stdin)"
    if kind == "token":
        return f"get a new token for the identity and {give}"
    return f"create a PAT at {tokens_page(collection_url)} and {give}"


def permission_label(permission: GitPermission) -> str:
    """`Contribute (GenericContribute)`: the UI name people look for, and the API name TF401027 prints."""
    names = NAMES[permission]
    return f"{names.ui} ({names.api})"


def az_subject(subject_descriptor: str | None, unique_name: str | None) -> str | None:
    """What `az devops security permission update --subject` accepts for an identity, or None.

    The az extension reads any subject containing "." as a graph subject descriptor (`aad.…`, `svc.…`), so the
    subject descriptor is the reliable form; a sign-in name with "@" is resolved as a user. Anything else (an
    identity descriptor `Microsoft.TeamFoundation…`, `Build\\<id>`) would be rejected: then no command is given
    and the Security page path stays the fix.
    """
    if subject_descriptor:
        return subject_descriptor
    if unique_name and "@" in unique_name:
        return unique_name
    return None


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


def collection_build_service(organization: str | None) -> str:
    return f"Project Collection Build Service ({organization})" if organization else "Project Collection Build Service"


def job_scope_other_project(build_service: str, *, project: str, repository: str, organization: str | None) -> str:
    """A project's build service asking about another project: what decides whether its job token gets there."""
    return (
        f'grant "{build_service}" access in project {project} (Project settings > Repositories > {repository} > '
        f'Security > "{build_service}" > Read and Contribute: Allow) and {REFERENCE_REPOSITORY}, which '
        f'"{PROTECT_REPOSITORIES}" requires; or, in the pipeline\'s project, turn off "{LIMIT_SCOPE}" (or '
        f'"{LIMIT_SCOPE_RELEASE}" for a release pipeline) under {PIPELINE_SETTINGS}, so the job runs as '
        f'"{collection_build_service(organization)}", and grant that identity access instead'
    )


def job_scope_own_project(build_service: str, *, repository: str) -> str:
    """A project's build service not finding a repository of its own project: usually the repository protection."""
    return (
        f'if it exists, {REFERENCE_REPOSITORY}: with "{PROTECT_REPOSITORIES}" on ({PIPELINE_SETTINGS}) the job '
        f'token reaches only the repositories its pipeline references; also check that "{build_service}" has '
        f"Read on it (Project settings > Repositories > {repository} > Security); if it does not exist, create it "
        "or fix the repository name in --url"
    )


def collection_scope_note() -> str:
    """Why a job runs as the collection's build service, and the other way to fix it."""
    return (
        f'(the job runs as the collection\'s build service because "{LIMIT_SCOPE}" is off; with it on, grant '
        '"<Project> Build Service (<organization>)" instead)'
    )


def create_repository_fix(
    *,
    may_create: bool | None,
    scope: bool | None,
    identity: str,
    project: str,
    page: str,
    collection_url: str | None,
) -> str:
    """The fix for a missing repository without --create-repo, worded from whether this identity may create it.

    `may_create`: CreateRepository on the project (None: not known); `scope`: the PAT's vso.code_manage (None:
    not a PAT, or not known).
    """
    rename = "or fix the repository name in --url"
    if may_create is True and scope is False:
        return (
            f"pass --create-repo (you may create it) after choosing {scope_tick('vso.code_manage')} on the PAT at "
            f"{tokens_page(collection_url)}, {rename}"
        )
    if may_create is True:
        return f"pass --create-repo (you may create it), {rename}"
    if may_create is False:
        return (
            f'ask a project administrator of {project} to create it at {page}, or to grant "{identity}" Create '
            f"repository (Project settings > Repositories > Security); {rename}"
        )
    return f"pass --create-repo, or create it at {page}, {rename}"


def new_rsa_key(collection_url: str | None) -> str:
    return (
        f"create an RSA key (ssh-keygen -t rsa -b 4096 -f flux-azdo), add its .pub at {ssh_keys_page(collection_url)}, "
        "and pass it with --private-key-file"
    )


def api_token_for_ssh(organization_missing: bool) -> str:
    """How to let the preflight ask Azure DevOps about an SSH URL."""
    token = (
        f"set AZURE_DEVOPS_EXT_PAT to a PAT of the SSH key's owner with {PAT_SCOPES_FOR_CHECK}, or pass --entra-auth "
        "signed in as that owner"
    )
    if organization_missing:
        return f"pass --organization with the collection URL (e.g. https://server/tfs/DefaultCollection) and {token}"
    return token
