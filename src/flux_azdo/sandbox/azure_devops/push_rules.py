"""Per-ref push rules, shared by HTTP and SSH pushes: what Azure DevOps checks for every ref a push updates.

The proc-receive hook sends the pushed commands here (through the server's `/_sandbox/receive`), and this module
decides each one and applies the accepted updates itself, so that "first branch becomes the default" happens in
the same step as the ref update:

* a new branch needs CreateBranch on the branch token;
* updating a branch needs GenericContribute on the branch token, and ForcePush when it is not a fast-forward;
* deleting a branch needs ForcePush (the service's "Force push (rewrite history, delete branches and tags)");
* tags: CreateTag to create, ForcePush to move or delete; notes: ManageNote; any other ref: GenericContribute;
* a branch with a required policy rejects direct pushes with TF402455 unless the pusher has PolicyExempt.

Permission failures come first, then policies, as the service reports them.
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


@dataclass(frozen=True)
class PushCommand:
    old: str
    new: str
    ref: str
    fast_forward: bool

    @property
    def creates(self) -> bool:
        return set(self.old) == {"0"}

    @property
    def deletes(self) -> bool:
        return set(self.new) == {"0"}


@dataclass(frozen=True)
class PushResult:
    ref: str
    ok: bool
    reason: str = ""

    def as_json(self) -> dict[str, object]:
        return {"ref": self.ref, "ok": self.ok, "reason": self.reason}


def required_permissions(command: PushCommand) -> tuple[list[GitPermission], str]:
    """The bits a command needs, in the order the service checks them, and the TF401027 scope word."""
    ref = command.ref
    if ref.startswith("refs/heads/"):
        if command.creates:
            return [GitPermission.CREATE_BRANCH], "branch"
        if command.deletes:
            return [GitPermission.FORCE_PUSH], "branch"
        needed = [GitPermission.GENERIC_CONTRIBUTE]
        if not command.fast_forward:
            needed.append(GitPermission.FORCE_PUSH)
        return needed, "branch"
    if ref.startswith("refs/tags/"):
        return ([GitPermission.CREATE_TAG] if command.creates else [GitPermission.FORCE_PUSH]), "tag"
    if ref.startswith("refs/notes/"):
        return [GitPermission.MANAGE_NOTE], "repository"
    return [GitPermission.GENERIC_CONTRIBUTE], "repository"


def _token_for(repository: Repository, ref: str) -> str:
    try:
        return security.ref_token(repository.project.id, repository.id, ref)
    except ValueError:
        return security.repository_token(repository.project.id, repository.id)


def decide(world: World, identity: Identity, repository: Repository, command: PushCommand) -> str | None:
    """None when the command is allowed, else the rejection reason the client will see."""
    token = _token_for(repository, command.ref)
    needed, scope = required_permissions(command)
    for bit in needed:
        if not world.has_permission(identity, token, bit):
            return errors.needs_permission_text(security.permission_name(bit), identity.display_name, scope)
    if (
        command.ref.startswith("refs/heads/")
        and world.is_protected(repository, command.ref)
        and not world.has_permission(identity, token, GitPermission.POLICY_EXEMPT)
    ):
        return errors.POLICY_REJECTION
    return None


class PushApplier:
    """Decides and applies pushes; one lock per server so default-branch promotion is race-free."""

    def __init__(self, world: World) -> None:
        self._world = world
        self._lock = threading.Lock()

    def apply(self, identity: Identity, repository: Repository, commands: list[PushCommand]) -> list[PushResult]:
        results = []
        with self._lock:
            for command in commands:
                reason = decide(self._world, identity, repository, command)
                if reason is None and not _update_ref(repository, command):
                    reason = errors.stale_ref_text(command.ref)
                if reason is not None:
                    results.append(PushResult(command.ref, False, reason))
                    continue
                if repository.default_branch is None and command.ref.startswith("refs/heads/") and not command.deletes:
                    self._world.set_default_branch(repository, command.ref)
                results.append(PushResult(command.ref, True))
        return results


def _update_ref(repository: Repository, command: PushCommand) -> bool:
    """`git update-ref` with the old value as a guard (a concurrent push makes it fail)."""
    if command.deletes:
        args = ["git", "update-ref", "-d", command.ref, command.old]
    else:
        args = ["git", "update-ref", command.ref, command.new, command.old]
    env = {**os.environ, **_GIT_ENV, "GIT_DIR": str(repository.git_dir)}
    return subprocess.run(args, env=env, capture_output=True, check=False).returncode == 0
