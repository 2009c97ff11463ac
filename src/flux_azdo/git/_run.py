"""Running one git command: through GitPython, in a process group of its own, with a deadline that holds.

GitPython's `Git.execute` starts git the way the rest of the project expects (stdin closed, English messages, the
executable from GIT_PYTHON_GIT_EXECUTABLE, its trace log), and returns the process (`as_process=True`). Its own
`kill_after_timeout` is not used: it finds git's children with pgrep or ps, which slim container images lack, and
then kills git alone while git-remote-http or ssh keep running (with the token in their environment) and keep the
output pipes open, so the call never returns. Instead git starts in a session of its own (`start_new_session`),
which makes it the leader of a process group that every helper it starts joins; on timeout, and on any exception
at any point of the call (KeyboardInterrupt, or SystemExit from the CLI's SIGTERM/SIGHUP handler), the whole group
is killed with SIGKILL and reaped before the exception goes on. git is started on a helper thread (`_shield`), as
signal handlers raise on the main thread only: an interrupt can never land between git starting and the call
knowing its process. A session of its own also means no controlling terminal, so no helper can ever prompt on
/dev/tty.

GitPython's exception texts are never used, because they print the command line; failures become a `GitError`
built from stderr (`errors.classify`), with the secrets and the private folder scrubbed.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flux_azdo.errors import UserError
from flux_azdo.git._shield import Job
from flux_azdo.git.errors import GitError, classify

try:
    import git
except ImportError as error:  # GitPython refuses to be imported when it finds no git executable
    if "git executable" not in str(error):
        raise
    git = None  # type: ignore[assignment]

#: Said when git cannot be started at all.
GIT_MISSING = "git is not installed: install git 2.31 or later"

#: Inherited GIT_* variables that only choose TLS trust, proxy authentication or timeouts: kept. Not
#: GIT_SSL_NO_VERIFY: switching TLS verification off would hand the token to whoever answers.
KEPT_GIT_VARIABLES = frozenset(
    {
        "GIT_SSL_CAINFO",
        "GIT_SSL_CAPATH",
        "GIT_SSL_CERT",
        "GIT_SSL_KEY",
        "GIT_SSL_VERSION",
        "GIT_SSL_CIPHER_LIST",
        "GIT_HTTP_PROXY_AUTHMETHOD",
        "GIT_HTTP_LOW_SPEED_LIMIT",
        "GIT_HTTP_LOW_SPEED_TIME",
        "GIT_EXEC_PATH",
    }
)
#: Inherited variables that point git at a repository (set inside a git hook, say): an empty value would not
#: unset them, so GitPython callers get a path that does not exist (commands on a repository set their own).
REPOSITORY_VARIABLES = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_COMMON_DIR")
#: The variable the askpass script reads the key's passphrase from.
PASSPHRASE_VARIABLE = "FLUX_AZDO_SSH_PASSPHRASE"
#: Other inherited variables that would change who authenticates or how.
DROPPED_VARIABLES = frozenset({"SSH_ASKPASS", "SSH_ASKPASS_REQUIRE", "SSH_AUTH_SOCK", PASSPHRASE_VARIABLE})
#: How long to wait for a killed process group's leader to be reaped (SIGKILL cannot be refused).
_REAP_SECONDS = 10.0


def dropped(name: str) -> bool:
    """Whether an inherited variable is kept away from git."""
    return (name.startswith("GIT_") and name not in KEPT_GIT_VARIABLES) or name in DROPPED_VARIABLES


@dataclass(frozen=True)
class GitContext:
    """One authenticated git environment: what to run git with, and what must never show up in a message."""

    env: dict[str, str] = field(repr=False)
    directory: Path  # the private 0700 folder (removed when the context ends)
    url: str  # the repository URL for messages: as given, password removed
    git_url: str  # the URL git is given (http(s) without user info, or ssh://)
    secrets: tuple[str, ...] = field(repr=False, default=())
    has_credentials: bool = True  # a token or a key was given (a 401 without one means "missing")
    keys_page: str | None = None  # the SSH public keys page of the organisation, when known

    def overrides(self) -> dict[str, str]:
        """`env` for GitPython, which merges what it is given over `os.environ`: the variables this context drops
        are overridden, with empty values (which git and ssh treat as unset) or, for the variables that name a
        repository, with a path that does not exist."""
        nowhere = str(self.directory / "no-repository")
        blanks = {
            name: nowhere if name in REPOSITORY_VARIABLES else ""
            for name in os.environ
            if dropped(name) and name not in self.env
        }
        return {**blanks, **self.env}

    def error(self, stderr: str, operation: str, branch: str | None = None) -> GitError:
        """The GitError for a failed command, with secrets and private paths scrubbed."""
        paths = (str(self.directory), os.path.realpath(self.directory))
        return classify(
            stderr,
            operation=operation,
            url=self.url,
            branch=branch,
            secrets=self.secrets,
            paths=paths,
            has_credentials=self.has_credentials,
            keys_page=self.keys_page,
        )


@dataclass(frozen=True)
class GitResult:
    status: int
    stdout: str
    stderr: str
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.status == 0 and not self.timed_out


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
    """Run `git <args>` in `cwd`; with `check`, a non-zero exit or the timeout raises the GitError it means."""
    # Started on a helper thread (`_shield`): an interrupt can land anywhere in this thread, but never between git
    # starting and `launch.result` holding its process.
    launch: Job[subprocess.Popen[bytes]] = Job(functools.partial(_start, context, args, cwd=cwd, env=env))
    try:
        launch.start()
        process = launch.wait()
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.communicate(timeout=_REAP_SECONDS)  # the pipes close as the group dies
            _reap(process)
            result = GitResult(-signal.SIGKILL, "", "", timed_out=True)
        else:
            result = GitResult(process.returncode, _text(stdout), _text(stderr))
    except BaseException:
        # KeyboardInterrupt, SystemExit from a signal handler, anything: no helper may outlive the call with the
        # credentials in its environment. cancel(): git is not started from now on, or has been when it returns.
        try:
            launch.cancel()
        finally:
            _stop(launch.result)
        raise
    if result.ok or not check:
        return result
    raise failure(context, result, timeout=timeout, operation=operation, branch=branch)


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    """Kill and reap git's process group, unless it was reaped already (its group id may be reused since)."""
    if process is not None and process.returncode is None:
        _kill_group(process)
        _reap(process)


def failure(context: GitContext, result: GitResult, *, timeout: float, operation: str, branch: str | None) -> GitError:
    """The GitError a failed `GitResult` stands for."""
    if result.timed_out:
        return GitError(
            f"git {operation} {context.url} did not finish within {timeout:g} s: check the network and the "
            "server, or allow more time (--timeout)"
        )
    return context.error(result.stderr + "\n" + result.stdout, operation, branch)


def _start(
    context: GitContext, args: Sequence[str], *, cwd: Path, env: Mapping[str, str] | None
) -> subprocess.Popen[bytes]:
    if git is None:
        raise UserError(GIT_MISSING)
    executable = git.Git.GIT_PYTHON_GIT_EXECUTABLE or "git"
    popen_options: dict[str, Any] = {"start_new_session": True}
    try:
        handle = git.Git(str(cwd)).execute(
            [executable, *args],
            env={**context.overrides(), **(env or {})},
            as_process=True,
            **popen_options,
        )
    except git.GitCommandNotFound:
        raise UserError(GIT_MISSING) from None
    # The process is ours from here on: GitPython's wrapper would terminate it (git alone, with SIGTERM) as soon as
    # the wrapper is garbage collected.
    process: subprocess.Popen[bytes] = handle.proc
    handle.proc = None
    return process


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL git's process group (git, git-remote-http, ssh...). Called before the leader is reaped, so the
    group id cannot have been reused."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def _reap(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(Exception):
        process.wait(timeout=_REAP_SECONDS)
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()


def _text(data: bytes | None) -> str:
    return (data or b"").decode("utf-8", errors="replace")
