"""Per-ref update rules, shared by git pushes (HTTP and SSH) and the REST `refs` update: what Azure DevOps checks
for every ref that changes.

The proc-receive hook sends the pushed commands here (through the server's `/_sandbox/receive`), the REST API
sends its `GitRefUpdate`s, and this module decides each one and applies the accepted updates itself, so that the
side effects happen in the same step as the ref update:

* a new branch needs CreateBranch, a new tag CreateTag;
* updating a branch needs GenericContribute, and ForcePush when it is not a fast-forward; fast-forward is worked
  out here with `git merge-base --is-ancestor`, never taken from the client;
* deleting a branch or a tag, or moving a tag, needs ForcePush (the service's "Force push (rewrite history,
  delete branches and tags)"); notes need ManageNote; any other ref GenericContribute;
* a branch with a required policy rejects direct updates (deletion included) with TF402455 unless PolicyExempt;
* side effects of an accepted update: the first branch of a repository without a default branch becomes the
  default; deleting the default branch leaves the repository without one; the creator of a branch gets ForcePush
  and ManagePermissions on it.

Permissions are checked on the ref's own token (so branch-level ACEs count), permission failures first, then
policies, as the service reports them. TF401027's scope word is `repository` for a ref that does not exist yet
(CreateBranch/CreateTag, as the service prints for `az repos ref create`) and `branch` for an existing one
(`ForcePush ... scope 'branch'` in `git push` output).
"""

from __future__ import annotations

import os
import subprocess
import threading
from dataclasses import dataclass

from flux_azdo.sandbox.azure_devops import errors, security
from flux_azdo.sandbox.azure_devops.security import GitPermission
from flux_azdo.sandbox.world import Identity, Repository, World

_GIT_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}

# `GitRefUpdateStatus` values (REST `updateStatus`) for each missing permission.
_STATUS_FOR_PERMISSION: dict[int, str] = {
    GitPermission.CREATE_BRANCH: "createBranchPermissionRequired",
    GitPermission.CREATE_TAG: "createTagPermissionRequired",
    GitPermission.GENERIC_CONTRIBUTE: "writePermissionRequired",
    GitPermission.FORCE_PUSH: "forcePushRequired",
    GitPermission.MANAGE_NOTE: "manageNotePermissionRequired",
}


@dataclass(frozen=True)
class PushCommand:
    old: str
    new: str
    ref: str

    @property
    def creates(self) -> bool:
        return _is_null(self.old)

    @property
    def deletes(self) -> bool:
        return _is_null(self.new)


@dataclass(frozen=True)
class PushResult:
    """One ref's outcome: `status` is the REST `updateStatus`, `reason` the text git shows (`ng <ref> <reason>`)."""

    command: PushCommand
    status: str
    reason: str = ""

    @property
    def ref(self) -> str:
        return self.command.ref

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    def as_json(self) -> dict[str, object]:
        return {"ref": self.ref, "ok": self.ok, "reason": self.reason}


def _is_null(object_id: str) -> bool:
    """The null object id (40 zeros, or 64 in a SHA-256 repository)."""
    return bool(object_id) and set(object_id) == {"0"}


def is_fast_forward(repository: Repository, old: str, new: str) -> bool:
    """Creation is trivially fast-forward; deletion never is; otherwise `old` must be an ancestor of `new`."""
    if _is_null(old):
        return True
    if _is_null(new):
        return False
    return _git(repository, "merge-base", "--is-ancestor", old, new).returncode == 0


def required_permissions(command: PushCommand, fast_forward: bool) -> tuple[list[GitPermission], str]:
    """The bits a command needs, in the order the service checks them, and the TF401027 scope word."""
    ref = command.ref
    if ref.startswith("refs/heads/"):
        if command.creates:
            return [GitPermission.CREATE_BRANCH], "repository"
        if command.deletes:
            return [GitPermission.FORCE_PUSH], "branch"
        needed = [GitPermission.GENERIC_CONTRIBUTE]
        if not fast_forward:
            needed.append(GitPermission.FORCE_PUSH)
        return needed, "branch"
    if ref.startswith("refs/tags/"):
        if command.creates:
            return [GitPermission.CREATE_TAG], "repository"
        return [GitPermission.FORCE_PUSH], "branch"
    if ref.startswith("refs/notes/"):
        return [GitPermission.MANAGE_NOTE], "repository"
    return [GitPermission.GENERIC_CONTRIBUTE], "repository"


def _token_for(repository: Repository, ref: str) -> str:
    try:
        return security.ref_token(repository.project.id, repository.id, ref)
    except ValueError:
        return security.repository_token(repository.project.id, repository.id)


def decide(world: World, identity: Identity, repository: Repository, command: PushCommand) -> PushResult | None:
    """None when the command is allowed, else the rejection (REST status and the text git shows)."""
    token = _token_for(repository, command.ref)
    needed, scope = required_permissions(command, is_fast_forward(repository, command.old, command.new))
    for bit in needed:
        if not world.has_permission(identity, token, bit):
            text = errors.needs_permission_text(security.permission_name(bit), identity.error_name, scope)
            return PushResult(command, _STATUS_FOR_PERMISSION[bit], text)
    if (
        command.ref.startswith("refs/heads/")
        and world.is_protected(repository, command.ref)
        and not world.has_permission(identity, token, GitPermission.POLICY_EXEMPT)
    ):
        return PushResult(command, "rejectedByPolicy", errors.POLICY_REJECTION)
    return None


class PushApplier:
    """Decides and applies ref updates; one lock per server so that the side effects are race-free."""

    def __init__(self, world: World) -> None:
        self._world = world
        self._lock = threading.Lock()

    def apply(
        self, identity: Identity, repository: Repository, commands: list[PushCommand], *, from_git: bool = False
    ) -> list[PushResult]:
        """Each command on its own (best effort), in order; the accepted ones are applied before returning.

        `from_git`: the commands come from receive-pack, which already checked ref names, old values and objects.
        """
        results = []
        with self._lock:
            for command in commands:
                checked = None if from_git else self._check_objects(repository, command)
                rejected = checked or decide(self._world, identity, repository, command)
                if rejected is None and not _update_ref(repository, command):
                    rejected = PushResult(command, "staleOldObjectId", errors.stale_ref_text(command.ref))
                if rejected is not None:
                    results.append(rejected)
                    continue
                self._after_update(identity, repository, command)
                results.append(PushResult(command, "succeeded"))
        return results

    def _check_objects(self, repository: Repository, command: PushCommand) -> PushResult | None:
        """What must hold before permissions matter: a valid ref name, the old value still current (else the
        update is stale), and a new value that names a commit (tags may name an annotated tag object).

        A git push always passes these (receive-pack checked them); REST updates may not.
        """
        ref = command.ref
        if not ref.startswith("refs/") or _git(repository, "check-ref-format", ref).returncode != 0:
            return PushResult(command, "invalidRefName", f"The ref name {ref} is not valid.")
        current = _git(repository, "rev-parse", "--verify", "--quiet", ref).stdout.strip()
        if current != ("" if command.creates else command.old.lower()):
            return PushResult(command, "staleOldObjectId", errors.stale_ref_text(ref))
        if command.deletes:
            return None
        kind = _git(repository, "cat-file", "-t", command.new).stdout.strip()
        allowed = ("commit", "tag") if ref.startswith("refs/tags/") else ("commit",)
        if kind in allowed:
            return None
        return PushResult(command, "unresolvableToCommit", f"The object {command.new} does not resolve to a commit.")

    def _after_update(self, identity: Identity, repository: Repository, command: PushCommand) -> None:
        if not command.ref.startswith("refs/heads/"):
            return
        if command.deletes:
            if repository.default_branch == command.ref:
                self._world.set_default_branch(repository, None)
            return
        if command.creates:
            self._world.grant_branch_creator(identity, repository, command.ref)
        if repository.default_branch is None:
            self._world.set_default_branch(repository, command.ref)


def _git(repository: Repository, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **_GIT_ENV, "GIT_DIR": str(repository.git_dir)}
    return subprocess.run(["git", *args], env=env, capture_output=True, text=True, check=False)


def _update_ref(repository: Repository, command: PushCommand) -> bool:
    """`git update-ref` with the old value as a guard (a concurrent update makes it fail)."""
    if command.deletes:
        return _git(repository, "update-ref", "-d", command.ref, command.old).returncode == 0
    return _git(repository, "update-ref", command.ref, command.new, command.old).returncode == 0
