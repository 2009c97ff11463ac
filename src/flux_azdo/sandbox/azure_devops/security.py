"""The Git Repositories security namespace of Azure DevOps: permission bits, token formats, ACL evaluation.

Azure DevOps authorises Git operations against *security tokens* in the namespace
`2e9eb7ed-3c0a-47d4-87c1-0ffdd275fd87`. Tokens are hierarchical paths rooted at `repoV2`:

* `repoV2`                                  every repository of the organisation
* `repoV2/<projectId>`                      every repository of a project (CreateRepository lives here)
* `repoV2/<projectId>/<repoId>`             one repository
* `repoV2/<projectId>/<repoId>/refs/heads/<hex>/...`  a branch, each `/`-separated name component encoded as
  UTF-16LE bytes in lowercase hex, with a trailing `/` (`main` -> `6d00610069006e00/`)

The evaluation mirrors how the service resolves an access control list (azure-devops.md §5.4): for every bit
that is asked for, walk from the requested token towards the root; the *closest* level that carries an explicit
allow or deny for that bit decides, and at one level a deny beats an allow. No explicit entry anywhere means
"not set", which Azure DevOps treats as deny. This is why a repository-level deny overrides a project-level allow
(the Contributors preset) and a branch-level allow overrides a repository-level deny.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

GIT_NAMESPACE_ID = "2e9eb7ed-3c0a-47d4-87c1-0ffdd275fd87"
ROOT_TOKEN = "repoV2"


class GitPermission(enum.IntFlag):
    """`GitRepositoryPermissions` bits, values as the service defines them."""

    ADMINISTER = 1
    GENERIC_READ = 2
    GENERIC_CONTRIBUTE = 4
    FORCE_PUSH = 8
    CREATE_BRANCH = 16
    CREATE_TAG = 32
    MANAGE_NOTE = 64
    POLICY_EXEMPT = 128
    CREATE_REPOSITORY = 256
    DELETE_REPOSITORY = 512
    RENAME_REPOSITORY = 1024
    EDIT_POLICIES = 2048
    REMOVE_OTHERS_LOCKS = 4096
    MANAGE_PERMISSIONS = 8192
    PULL_REQUEST_CONTRIBUTE = 16384
    PULL_REQUEST_BYPASS_POLICY = 32768


# The names the service prints in TF401027 ("You need the Git 'CreateBranch' permission ...").
PERMISSION_NAMES: Mapping[int, str] = {
    GitPermission.ADMINISTER: "Administer",
    GitPermission.GENERIC_READ: "GenericRead",
    GitPermission.GENERIC_CONTRIBUTE: "GenericContribute",
    GitPermission.FORCE_PUSH: "ForcePush",
    GitPermission.CREATE_BRANCH: "CreateBranch",
    GitPermission.CREATE_TAG: "CreateTag",
    GitPermission.MANAGE_NOTE: "ManageNote",
    GitPermission.POLICY_EXEMPT: "PolicyExempt",
    GitPermission.CREATE_REPOSITORY: "CreateRepository",
    GitPermission.DELETE_REPOSITORY: "DeleteRepository",
    GitPermission.RENAME_REPOSITORY: "RenameRepository",
    GitPermission.EDIT_POLICIES: "EditPolicies",
    GitPermission.REMOVE_OTHERS_LOCKS: "RemoveOthersLocks",
    GitPermission.MANAGE_PERMISSIONS: "ManagePermissions",
    GitPermission.PULL_REQUEST_CONTRIBUTE: "PullRequestContribute",
    GitPermission.PULL_REQUEST_BYPASS_POLICY: "PullRequestBypassPolicy",
}

ALL_PERMISSIONS = int(sum(GitPermission))
# Composite values the service documents; `ProjectLevelPermissions` is what a Project Administrator holds.
BRANCH_LEVEL_PERMISSIONS = 47244
REPOSITORY_LEVEL_PERMISSIONS = 65278
PROJECT_LEVEL_PERMISSIONS = 65534

# The default grants of the project groups, applied on `repoV2/<projectId>`, as Microsoft's "Default Git
# repository and branch permissions" table lists them. ForcePush, PolicyExempt ("Bypass policies when pushing")
# and PullRequestBypassPolicy are "Not set" for every group, Project Administrators included: 65534 minus those
# three bits is 32630.
CONTRIBUTOR_PERMISSIONS = int(
    GitPermission.GENERIC_READ
    | GitPermission.GENERIC_CONTRIBUTE
    | GitPermission.CREATE_BRANCH
    | GitPermission.CREATE_TAG
    | GitPermission.MANAGE_NOTE
    | GitPermission.PULL_REQUEST_CONTRIBUTE
)
READER_PERMISSIONS = int(GitPermission.GENERIC_READ | GitPermission.PULL_REQUEST_CONTRIBUTE)
ADMIN_PERMISSIONS = PROJECT_LEVEL_PERMISSIONS & ~int(
    GitPermission.FORCE_PUSH | GitPermission.POLICY_EXEMPT | GitPermission.PULL_REQUEST_BYPASS_POLICY
)
# The build service identities: "Read: Allow (system)" and "Create tag: Allow" in the repository security UI
# (azure-devops-docs pull request #6075, confirmed by the docs maintainer); everything else is not set.
BUILD_SERVICE_PERMISSIONS = int(GitPermission.GENERIC_READ | GitPermission.CREATE_TAG)
# What the service grants the creator of a branch on that branch, so that people can clean up after themselves.
BRANCH_CREATOR_PERMISSIONS = int(GitPermission.FORCE_PUSH | GitPermission.MANAGE_PERMISSIONS)


def permission_name(bit: int) -> str:
    """The service's name for one bit (or the number when it is not a single known bit)."""
    return PERMISSION_NAMES.get(bit, str(bit))


def project_token(project_id: str) -> str:
    return f"{ROOT_TOKEN}/{project_id}"


def repository_token(project_id: str, repository_id: str) -> str:
    return f"{ROOT_TOKEN}/{project_id}/{repository_id}"


def encode_ref_component(component: str) -> str:
    """One name component as the service encodes it: UTF-16LE bytes, lowercase hex."""
    return component.encode("utf-16-le").hex()


def ref_token(project_id: str, repository_id: str, ref: str) -> str:
    """The token of a ref, e.g. `refs/heads/feature/x` -> `repoV2/p/r/refs/heads/<hex feature>/<hex x>/`.

    Only the part after the ref namespace (`refs/heads/`, `refs/tags/`, `refs/notes/`) is encoded; the
    namespace itself stays as plain lowercase text, as in the tokens the service returns.
    """
    parts = ref.split("/")
    if len(parts) < 3 or parts[0] != "refs":
        raise ValueError(f"not a full ref name: {ref!r}")
    namespace = parts[1].lower()
    encoded = "/".join(encode_ref_component(part) for part in parts[2:])
    return f"{repository_token(project_id, repository_id)}/refs/{namespace}/{encoded}/"


def branch_token(project_id: str, repository_id: str, branch: str) -> str:
    """Token of a branch given as `main` or `refs/heads/main`."""
    ref = branch if branch.startswith("refs/") else f"refs/heads/{branch}"
    return ref_token(project_id, repository_id, ref)


def normalize_token(token: str) -> str:
    """Compare form of a token: GUIDs and hex are case-insensitive, and a trailing `/` does not matter."""
    return token.strip().rstrip("/").lower()


def token_lineage(token: str) -> list[str]:
    """The token and all of its ancestors, closest first, in normalized form.

    `repoV2/p/r/refs/heads/aa/bb/` -> [`.../aa/bb`, `.../aa`, `.../refs/heads`, `.../refs`, `repoV2/p/r`,
    `repoV2/p`, `repoV2`]. The `refs` and `refs/heads` levels exist in the service too (permissions on "all
    branches" or on a branch folder are set there).
    """
    parts = normalize_token(token).split("/")
    return ["/".join(parts[:end]) for end in range(len(parts), 0, -1) if parts[:end] != [""]]


def evaluate(
    entries: Mapping[str, tuple[int, int]],
    token: str,
    bits: int,
) -> bool:
    """True when every bit in `bits` is effectively allowed for one identity.

    `entries` maps normalized tokens to the identity's (allow, deny) masks. For each bit the closest level with
    an explicit entry decides; deny beats allow at the same level; no entry means deny.
    """
    if bits == 0:
        return True
    lineage = token_lineage(token)
    undecided = bits
    allowed = 0
    for level in lineage:
        allow, deny = entries.get(level, (0, 0))
        denied_here = deny & undecided
        if denied_here:
            return False
        allowed_here = allow & undecided
        allowed |= allowed_here
        undecided &= ~allowed_here
        if not undecided:
            return True
    return False


def allowed_at_or_below(entries: Mapping[str, tuple[int, int]], token: str, bits: int) -> bool:
    """True when `bits` are allowed on `token` itself or on any token below it that carries an entry.

    Only levels with an explicit entry can change the outcome of `evaluate`, so checking those (and the token
    itself) answers "is there any branch of this repository the identity may contribute to?".
    """
    if evaluate(entries, token, bits):
        return True
    prefix = normalize_token(token) + "/"
    return any(level.startswith(prefix) and evaluate(entries, level, bits) for level in entries)
