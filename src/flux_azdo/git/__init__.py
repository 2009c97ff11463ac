"""Git for bootstrap: a private checkout, commits only on change, pushes without force that survive concurrent
writers, and credentials that never leave the environment of the git processes.

Modules: `workspace` (the Workspace callers use, and `remote_state`), `checkout` (the clone and its git
commands), `publish` (commit, push, the retry budget, lost replies), `paths` (branch names, what a change may
write), `remote` (ls-remote), `auth` (the environment git runs with), `ssh` (keys and known_hosts), `errors`
(git's stderr as errors a user can act on), `folders` (private temporary folders no interrupt leaves behind),
`_run` (one git process: its process group, deadline and errors), `_shield` (what an interrupt must not cut in
half, on a helper thread).
"""

from __future__ import annotations

from flux_azdo.git.auth import GitAuth, SshAuth, TokenAuth, git_environment
from flux_azdo.git.errors import (
    BranchNotFound,
    BranchPolicyRejected,
    GitAuthenticationFailed,
    GitError,
    GitPermissionDenied,
    HostKeyMismatch,
    KeyRejected,
    PushConflict,
    RepositoryNotFound,
)
from flux_azdo.git.ssh import SshKeyInfo, inspect_private_key, known_hosts_for, require_rsa
from flux_azdo.git.workspace import (
    Author,
    Change,
    ChangeProducer,
    Commit,
    PublishResult,
    RemoteState,
    Workspace,
    remote_state,
)

__all__ = [
    "Author",
    "BranchNotFound",
    "BranchPolicyRejected",
    "Change",
    "ChangeProducer",
    "Commit",
    "GitAuth",
    "GitAuthenticationFailed",
    "GitError",
    "GitPermissionDenied",
    "HostKeyMismatch",
    "KeyRejected",
    "PublishResult",
    "PushConflict",
    "RemoteState",
    "RepositoryNotFound",
    "SshAuth",
    "SshKeyInfo",
    "TokenAuth",
    "Workspace",
    "git_environment",
    "inspect_private_key",
    "known_hosts_for",
    "remote_state",
    "require_rsa",
]
