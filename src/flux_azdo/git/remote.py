"""What a remote repository has, read with `git ls-remote --symref`: its default branch and its branches.

One call answers the questions bootstrap asks before cloning (is the repository empty, does the branch exist,
where would a new branch start) and doubles as the access check for the preflight: it needs read access only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from flux_azdo.git._run import GitContext, run_git


@dataclass(frozen=True)
class RemoteState:
    default_branch: str | None
    heads: Mapping[str, str]  # branch -> sha


def ls_remote(context: GitContext, timeout: float) -> RemoteState:
    """The remote's HEAD target (None: no branches, or HEAD names a deleted branch) and its branch heads."""
    result = run_git(
        context,
        ["ls-remote", "--symref", "--", context.git_url, "HEAD", "refs/heads/*"],
        cwd=context.directory,
        timeout=timeout,
        operation="ls-remote",
    )
    default: str | None = None
    heads: dict[str, str] = {}
    for line in result.stdout.splitlines():
        value, _, ref = line.partition("\t")
        if value.startswith("ref: ") and ref == "HEAD":
            target = value[len("ref: ") :]
            default = target.removeprefix("refs/heads/") if target.startswith("refs/heads/") else None
        elif ref.startswith("refs/heads/"):
            heads[ref[len("refs/heads/") :]] = value
    if default is not None and default not in heads:
        default = None  # HEAD points at a deleted branch
    return RemoteState(default, heads)


def fallback_base(heads: Mapping[str, str]) -> str:
    """The branch a new branch starts from when the remote's HEAD names none (its default was deleted)."""
    for name in ("main", "master"):
        if name in heads:
            return name
    return sorted(heads)[0]
