"""A private checkout of one branch, and publishing to it without force, surviving concurrent writers.

The checkout is made with `git init` + `fetch` of the one branch + `reset --hard` rather than `git clone`, so the
three starting points bootstrap meets take one code path: an existing branch, an empty repository (the branch
stays unborn and the first push creates it), and a new branch started from the default branch. Every push names
its target (`HEAD:refs/heads/<branch>`), since an empty repository gives no upstream to rely on. History is
fetched with depth 1: bootstrap only ever adds commits on top of the head, and the full history costs time in
proportion to its length for nothing (benchmarks/run.py, 2,000 commits on the sandbox: 215 ms full, 105 ms
shallow; the push from a shallow checkout needs nothing more, since the server has every parent).

Publishing is produce-then-push. `produce(root)` returns the changes for the checkout as it is; each change
becomes a commit when it changes something. When the push is rejected because the branch moved (another
bootstrap, a person, a pipeline), the checkout is reset to the new remote head and `produce` runs again on it, so
nothing anybody else pushed is lost and nothing is forced: up to `max_attempts` times, with exponential backoff
and full jitter between attempts so concurrent writers spread out. Flux's own retry for this never fires
(flux-bootstrap reference, section 2.6).
"""

from __future__ import annotations

import contextlib
import random
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Literal

from flux_azdo.errors import UserError
from flux_azdo.git._run import GitResult, failure, run_git
from flux_azdo.git.auth import GitAuth, GitContext, git_context
from flux_azdo.git.errors import BranchNotFound, GitError, PushConflict

#: Depth of every fetch: 1 (the head only). None would fetch the whole history.
FETCH_DEPTH: int | None = 1
#: Backoff between publish attempts: a random delay in [0, min(CAP, BASE * 2**(retry - 1))] seconds. Measured
#: with 20 writers racing for one branch of the sandbox on 2 cores: the unluckiest needed 6 attempts (10 runs;
#: BASE 0.5 needed 7, BASE 0.25 exceeded 8). A single conflict waits 0.5 s on average; the worst case of the
#: default 8 attempts sleeps at most 1+2+4+8+8+8+8 = 39 s.
BACKOFF_BASE = 1.0
BACKOFF_CAP = 8.0

# Rejections that mean "the branch moved under us": fetch, produce again, push again.
_MOVED = (
    "fetch first",
    "non-fast-forward",
    "TF401028",  # Azure DevOps: the ref was updated by another client between our read and our update
    "stale info",
    "failed to update ref",
    "cannot lock ref",
    "incorrect old value",
)
# Transport failures after which the push may or may not have landed: look, then retry.
_TRANSPORT = (
    "RPC failed",
    "remote end hung up",
    "Empty reply from server",
    "unexpected disconnect",
    "early EOF",
    "Connection reset",
    "returned error: 500",
    "returned error: 502",
    "returned error: 503",
    "returned error: 504",
    "returned error: 429",
)


@dataclass(frozen=True)
class Change:
    message: str
    files: Mapping[str, str | None]  # repo-relative path -> content (None: delete)


ChangeProducer = Callable[[Path], Sequence[Change]]


@dataclass(frozen=True)
class Author:
    name: str = "Flux"
    email: str = ""


@dataclass(frozen=True)
class Commit:
    message: str
    sha: str


@dataclass(frozen=True)
class PublishResult:
    head: str | None
    commits: tuple[Commit, ...]
    attempts: int
    pushed: bool
    created_branch: bool


@dataclass(frozen=True)
class RemoteState:
    default_branch: str | None
    heads: Mapping[str, str]  # branch -> sha


def remote_state(url: str, auth: GitAuth, *, timeout: float = 60.0) -> RemoteState:
    """The default branch and the branches of a remote repository (`git ls-remote --symref`), to check access."""
    with git_context(url, auth) as context:
        return _ls_remote(context, timeout)


def _ls_remote(context: GitContext, timeout: float) -> RemoteState:
    result = run_git(
        context,
        ["ls-remote", "--symref", "--", context.url, "HEAD", "refs/heads/*"],
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


@dataclass(frozen=True)
class _PushOutcome:
    ok: bool
    created: bool = False
    reason: str = ""
    moved: bool = False  # rejected because the branch moved: retry on top of it
    maybe_landed: bool = False  # transport failure: the push may have been applied
    error: GitError | None = None


class Workspace:
    """A checkout of `branch` of `url` in a private temporary folder, removed on `close()` / leaving `with`.

    `state` says what was found: "existing" branch, "empty" repository (branch unborn), or "new-branch" (created
    from the default branch, with `create_branch`). A missing branch without `create_branch` is BranchNotFound.
    """

    def __init__(
        self,
        url: str,
        branch: str,
        auth: GitAuth,
        *,
        create_branch: bool = False,
        author: Author = Author(),
        temp_parent: Path | None = None,
        max_attempts: int = 8,
        timeout: float = 120.0,
    ) -> None:
        _check_branch_name(branch)
        if not author.name.strip() or any(c in author.name + author.email for c in "<>\n"):
            raise UserError(
                "the commit author needs a name, and neither name nor email may hold '<', '>' or a line break"
            )
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.branch = branch
        self.author = author
        self.create_branch = create_branch
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.head: str | None = None
        self.default_branch: str | None = None
        self.state: Literal["existing", "empty", "new-branch"] = "existing"
        self._base_branch: str | None = None  # where a new branch starts (the default branch)
        self._remote_head: str | None = None  # the branch's head on the remote as last seen; None: not there
        self._stack = contextlib.ExitStack()
        try:
            if temp_parent is not None:
                Path(temp_parent).mkdir(parents=True, exist_ok=True)
            self._directory = Path(tempfile.mkdtemp(prefix="flux-azdo-workspace-", dir=temp_parent))
            self._stack.callback(shutil.rmtree, self._directory, True)
            self.root = self._directory / "checkout"
            self._context = self._stack.enter_context(git_context(url, auth, temp_parent=self._directory))
            self._open()
        except BaseException:
            self._stack.close()
            raise

    # -- lifecycle -----------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Remove the checkout and every credential file; safe to call twice."""
        self._stack.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def url(self) -> str:
        return self._context.url

    @property
    def directory(self) -> Path:
        """The private folder holding the checkout and the credential files."""
        return self._directory

    # -- reading -------------------------------------------------------------------------------------------------

    def read(self, relative: str) -> str | None:
        """A file of the checkout as text, or None when it does not exist."""
        path = self._path(relative)
        if not path.is_file():
            return None
        return path.read_bytes().decode("utf-8")

    # -- publishing ----------------------------------------------------------------------------------------------

    def publish(self, produce: ChangeProducer, *, on_retry: Callable[[int, str], None] | None = None) -> PublishResult:
        """Commit what `produce` returns and push it without force, on top of whatever others pushed meanwhile.

        `on_retry(attempt, reason)` is called before attempt 2, 3, ... with why the previous one failed.
        Nothing changed: no commit, no push (`pushed` False), except that a new branch is still created.
        """
        attempt = 1
        while True:
            commits = self._apply(produce(self.root))
            head = self._rev_parse("HEAD")
            self.head = head
            if head is None or head == self._remote_head:
                return PublishResult(head, commits, attempt, pushed=False, created_branch=False)
            outcome = self._push()
            if outcome.ok:
                self._remote_head = head
                return PublishResult(head, commits, attempt, pushed=True, created_branch=outcome.created)
            if outcome.error is not None:
                raise outcome.error
            if outcome.maybe_landed and self._refresh() == head:
                # The connection broke after the server took the push: it is there, nothing to do again.
                return PublishResult(head, commits, attempt, pushed=True, created_branch=False)
            if attempt >= self.max_attempts:
                why = "others keep pushing to it" if outcome.moved else "the connection keeps failing"
                raise PushConflict(
                    f"git push to branch '{self.branch}' of {self.url} was rejected {attempt} "
                    f"time{'s' if attempt != 1 else ''} ({outcome.reason}): {why}. Nothing was forced and nothing "
                    "of theirs was lost: run the command again"
                )
            attempt += 1
            if on_retry is not None:
                on_retry(attempt, outcome.reason)
            time.sleep(backoff_delay(attempt - 1))
            self._refresh()

    # -- internals -----------------------------------------------------------------------------------------------

    def _open(self) -> None:
        remote = _ls_remote(self._context, self.timeout)
        self.default_branch = remote.default_branch
        self.root.mkdir()
        self._git("init", "--quiet", "--template=", f"--initial-branch={self.branch}", operation="init")
        self._git("remote", "add", "--", "origin", self.url, operation="remote add")
        if self.branch in remote.heads:
            self.state = "existing"
            if self._checkout(self.branch) is None:  # deleted since ls-remote listed it
                raise BranchNotFound(f"branch '{self.branch}' was deleted from {self.url} just now: run again")
        elif not remote.heads:
            self.state = "empty"
        else:
            base = remote.default_branch or _fallback_base(remote.heads)
            if not self.create_branch:
                raise BranchNotFound(
                    f"branch '{self.branch}' does not exist in {self.url}: pass --create-branch to create it "
                    f"from '{base}'"
                )
            self.state = "new-branch"
            self._base_branch = base
            if self._checkout(base) is None:
                raise BranchNotFound(f"branch '{base}' was deleted from {self.url} just now: run again")
        self.head = self._rev_parse("HEAD")

    def _checkout(self, remote_branch: str) -> str | None:
        """Fetch `remote_branch` and reset the local branch and the files to it; its sha, or None if missing."""
        depth = [f"--depth={FETCH_DEPTH}"] if FETCH_DEPTH else []
        tracking = f"refs/remotes/origin/{remote_branch}"
        fetched = self._git(
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            *depth,
            "origin",
            f"+refs/heads/{remote_branch}:{tracking}",
            operation="fetch from",
            branch=remote_branch,
            check=False,
        )
        if not fetched.ok:
            error = failure(self._context, fetched, timeout=self.timeout, operation="fetch from", branch=remote_branch)
            if isinstance(error, BranchNotFound):
                return None
            raise error
        self._git("reset", "--quiet", "--hard", tracking, operation="reset")
        self._git("clean", "-ffdxq", operation="clean")
        sha = self._rev_parse(tracking)
        if remote_branch == self.branch:
            self._remote_head = sha
        return sha

    def _refresh(self) -> str | None:
        """Reset to the branch as it is on the remote now (or to the starting point while it is not there)."""
        sha = self._checkout(self.branch)
        if sha is not None:
            return sha
        self._remote_head = None
        if self._base_branch is not None and self._checkout(self._base_branch) is not None:
            return None
        # The repository (still) has no such branch: start again from nothing, as in an empty repository.
        self._git("symbolic-ref", "HEAD", f"refs/heads/{self.branch}", operation="reset")
        self._git("update-ref", "-d", f"refs/heads/{self.branch}", operation="reset", check=False)
        self._git("read-tree", "--empty", operation="reset")
        self._git("clean", "-ffdxq", operation="clean")
        return None

    def _apply(self, changes: Sequence[Change]) -> tuple[Commit, ...]:
        commits = []
        for change in changes:
            paths = [self._write(relative, content) for relative, content in change.files.items()]
            if not paths:
                continue
            listed = self._git("ls-files", "-z", "--", *paths, operation="ls-files", literal=True).stdout
            tracked = [entry for entry in listed.split("\0") if entry]
            # A path is staged when it exists now or the index has it (or files below it): deletions included.
            stage = [
                p
                for p in paths
                if (self.root / p).exists()
                or (self.root / p).is_symlink()
                or any(t == p or t.startswith(p + "/") for t in tracked)
            ]
            if stage:
                self._git("add", "--all", "--force", "--", *stage, operation="add", literal=True)
            if self._git("diff", "--cached", "--quiet", operation="diff", check=False).status == 0:
                continue
            self._git("commit", "--quiet", "--no-verify", "--no-gpg-sign", "-m", change.message, operation="commit")
            sha = self._rev_parse("HEAD")
            assert sha is not None
            commits.append(Commit(change.message, sha))
        return tuple(commits)

    def _write(self, relative: str, content: str | None) -> str:
        path = self._path(relative)
        if content is None:
            if path.is_symlink() or path.is_file():
                path.unlink()
            elif path.is_dir():
                shutil.rmtree(path)
        else:
            if path.is_symlink() or path.is_dir():
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content.encode("utf-8"))
        return path.relative_to(self.root).as_posix()

    def _path(self, relative: str) -> Path:
        """`relative` inside the checkout; UserError for a path that would leave it or touch `.git`."""
        if not relative or "\0" in relative or "\\" in relative:
            raise UserError(f"invalid path {relative!r} in the repository: use a relative path with '/'")
        pure = PurePosixPath(relative)
        if pure.is_absolute() or any(part in ("..", "") for part in pure.parts) or not pure.parts:
            raise UserError(f"path {relative!r} must be relative to the repository root, without '..'")
        if any(part.lower() == ".git" for part in pure.parts):
            raise UserError(f"path {relative!r} points into .git: choose a path outside it")
        path = self.root.joinpath(*pure.parts)
        parent = self.root
        for part in pure.parts[:-1]:
            parent = parent / part
            if parent.is_symlink():
                raise UserError(f"path {relative!r} goes through a symbolic link in the repository ({part})")
        return path

    def _push(self) -> _PushOutcome:
        refspec = f"HEAD:refs/heads/{self.branch}"
        operation = f"push to branch '{self.branch}' of"
        result = self._git("push", "--porcelain", "origin", refspec, operation=operation, check=False)
        flag, summary = _porcelain(result.stdout, self.branch)
        if result.ok and flag is not None and flag != "!":
            return _PushOutcome(ok=True, created=flag == "*")
        if flag == "!" and any(word in summary for word in _MOVED):
            return _PushOutcome(ok=False, moved=True, reason=f"the branch moved: {summary}")
        error = failure(self._context, result, timeout=self.timeout, operation=operation, branch=self.branch)
        if type(error) is GitError and any(word in result.stderr for word in _TRANSPORT):
            return _PushOutcome(ok=False, maybe_landed=True, reason=f"the connection failed: {error.message}")
        return _PushOutcome(ok=False, error=error)

    def _rev_parse(self, ref: str) -> str | None:
        result = self._git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", operation="rev-parse", check=False)
        return (result.stdout.strip() or None) if result.ok else None

    def _git(
        self, *args: str, operation: str, branch: str | None = None, check: bool = True, literal: bool = False
    ) -> GitResult:
        git_dir = self.root / ".git"
        env = {
            "GIT_DIR": str(git_dir),
            "GIT_WORK_TREE": str(self.root),
            "GIT_INDEX_FILE": str(git_dir / "index"),
            "GIT_OBJECT_DIRECTORY": str(git_dir / "objects"),
            "GIT_COMMON_DIR": str(git_dir),
            "GIT_AUTHOR_NAME": self.author.name,
            "GIT_AUTHOR_EMAIL": self.author.email,
            "GIT_COMMITTER_NAME": self.author.name,
            "GIT_COMMITTER_EMAIL": self.author.email,
        }
        if literal:
            env["GIT_LITERAL_PATHSPECS"] = "1"
        return run_git(
            self._context,
            args,
            cwd=self.root,
            env=env,
            timeout=self.timeout,
            operation=operation,
            branch=branch or self.branch,
            check=check,
        )


def backoff_delay(retry: int) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**(retry - 1))], so writers that collided spread out."""
    return random.uniform(0.0, min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (retry - 1)))


def _porcelain(stdout: str, branch: str) -> tuple[str | None, str]:
    """(flag, summary) of our ref's line in `git push --porcelain` output: ' ' '*' '=' '!' ..."""
    target = f"refs/heads/{branch}"
    for line in stdout.splitlines():
        fields = line.split("\t")
        if len(fields) >= 3 and fields[1].endswith(f":{target}"):
            return fields[0][:1] or " ", "\t".join(fields[2:]).strip()
    return None, ""


def _fallback_base(heads: Mapping[str, str]) -> str:
    """The branch a new branch starts from when the remote's HEAD names none (its default was deleted)."""
    for name in ("main", "master"):
        if name in heads:
            return name
    return sorted(heads)[0]


_BRANCH = re.compile(r"^(?!/|.*(?:\.\.|//|@\{|\.lock/|/\.|\.lock$))[^\x00-\x20\x7f~^:?*\[\\]+(?<![/.])$")


def _check_branch_name(branch: str) -> None:
    """The rules of `git check-ref-format --branch`, checked before any process runs."""
    if not branch or branch.startswith(("-", ".")) or branch in ("@", "HEAD") or not _BRANCH.match(branch):
        raise UserError(f"{branch!r} is not a valid branch name: use a name such as main or flux/bootstrap")
