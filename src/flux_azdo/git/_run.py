"""Running one git command through GitPython with a context's environment, a deadline and our own errors.

GitPython's `Git.execute` is used for what it does well: the command runs with stdin closed, English messages,
and on timeout the whole process tree (git, git-remote-http, ssh) is killed. Its own exception text is never
used, because it prints the command line; failures become a `GitError` built from stderr.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import git
from flux_azdo.git.auth import GitContext
from flux_azdo.git.errors import GitError


@dataclass(frozen=True)
class GitResult:
    status: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.status == 0


def run_git(
    context: GitContext,
    args: Sequence[str],
    *,
    cwd: Path,
    timeout: float,
    operation: str,
    env: Mapping[str, str] | None = None,
    branch: str | None = None,
    check: bool = True,
) -> GitResult:
    """Run `git <args>` in `cwd`; with `check`, a non-zero exit raises the GitError its stderr describes."""
    executable = git.Git.GIT_PYTHON_GIT_EXECUTABLE or "git"
    runner = git.Git(str(cwd))
    status, stdout, stderr = runner.execute(
        [executable, *args],
        env={**context.overrides(), **(env or {})},
        with_extended_output=True,
        with_exceptions=False,
        kill_after_timeout=timeout,
        strip_newline_in_stdout=False,
    )
    result = GitResult(int(status or 0), str(stdout or ""), str(stderr or ""))
    if result.ok or not check:
        return result
    raise failure(context, result, timeout=timeout, operation=operation, branch=branch)


def failure(context: GitContext, result: GitResult, *, timeout: float, operation: str, branch: str | None) -> GitError:
    if result.stderr.startswith("Timeout:"):  # GitPython's text (it names the command line): not shown
        return GitError(
            f"git {operation} {context.url} did not finish within {timeout:g} s: check the network and the "
            "server, or allow more time (--timeout)"
        )
    return context.error(result.stderr + "\n" + result.stdout, operation, branch)
