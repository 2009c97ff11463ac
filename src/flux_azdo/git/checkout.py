"""The local clone behind a Workspace: the git commands that fetch, reset, commit and push one branch.

The clone is made with `git init` + `fetch` of the one branch + `reset --hard` rather than `git clone`, so the
three starting points bootstrap meets take one code path: an existing branch, an empty repository (the branch
stays unborn and the first push creates it), and a new branch started from the default branch. Every push names
its target (`HEAD:refs/heads/<branch>`), since an empty repository gives no upstream to rely on. History is
fetched with depth 1: bootstrap only ever adds commits on top of the head, and the full history costs time in
proportion to its length for nothing (benchmarks/run.py, 2,000 commits on the sandbox: 215 ms full, 105 ms
shallow; the push from a shallow clone needs nothing more, since the server has every parent). A later fetch
without a depth (`full=True`) brings only what is new since then, down to the commits the clone has, which is
what telling "is my commit in the remote branch" needs.

Every command runs with the repository named through GIT_DIR and friends, so an inherited GIT_DIR can never
point git at another repository, and with the workspace's author as author and committer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from flux_azdo.git._run import GitContext, GitResult, failure, run_git
from flux_azdo.git.errors import BranchNotFound, GitError
from flux_azdo.git.paths import write_file
from flux_azdo.git.remote import RemoteState, fallback_base, ls_remote

#: Depth of the first fetch: 1 (the head only). None would fetch the whole history.
FETCH_DEPTH: int | None = 1

State = Literal["existing", "empty", "new-branch"]


@dataclass(frozen=True)
class Change:
    message: str
    files: Mapping[str, str | None]  # repo-relative path -> content (None: delete)


@dataclass(frozen=True)
class Author:
    name: str = "Flux"
    email: str = ""


@dataclass(frozen=True)
class Commit:
    message: str
    sha: str


class Checkout:
    """A clone of `branch` at `root`, and what publishing needs to do with it."""

    def __init__(
        self, context: GitContext, root: Path, branch: str, author: Author, timeout: float, *, create_branch: bool
    ) -> None:
        self.context = context
        self.root = root
        self.branch = branch
        self.author = author
        self.timeout = timeout
        self.create_branch = create_branch
        self.remote_head: str | None = None  # the branch's head on the remote as last fetched; None: not there
        self.base_branch: str | None = None  # where a new branch starts (the default branch)

    @property
    def url(self) -> str:
        return self.context.url

    # -- starting ------------------------------------------------------------------------------------------------

    def open(self) -> tuple[State, str | None]:
        """Create the clone; (what was found, the remote's default branch). BranchNotFound: see Workspace."""
        remote = ls_remote(self.context, self.timeout)
        self.root.mkdir()
        self.git("init", "--quiet", "--template=", f"--initial-branch={self.branch}", operation="init")
        self.git("remote", "add", "--", "origin", self.context.git_url, operation="remote add")
        return self._start(remote), remote.default_branch

    def _start(self, remote: RemoteState) -> State:
        if self.branch in remote.heads:
            if self.fetch(self.branch) is None:  # deleted since ls-remote listed it
                raise BranchNotFound(f"branch '{self.branch}' was deleted from {self.url} just now: run again")
            return "existing"
        if not remote.heads:
            return "empty"
        base = remote.default_branch or fallback_base(remote.heads)
        if not self.create_branch:
            raise BranchNotFound(
                f"branch '{self.branch}' does not exist in {self.url}: pass --create-branch to create it from '{base}'"
            )
        self.base_branch = base
        if self.fetch(base) is None:
            raise BranchNotFound(f"branch '{base}' was deleted from {self.url} just now: run again")
        return "new-branch"

    # -- following the remote ------------------------------------------------------------------------------------

    def fetch(self, remote_branch: str, *, full: bool = False) -> str | None:
        """Fetch `remote_branch` and reset the local branch and the files to it; its sha, or None if missing.

        `full`: no depth limit, so that the history from the new head down to what the clone has is complete.
        """
        depth = [f"--depth={FETCH_DEPTH}"] if FETCH_DEPTH and not full else []
        tracking = f"refs/remotes/origin/{remote_branch}"
        operation = "fetch from"
        fetched = self.git(
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            *depth,
            "origin",
            f"+refs/heads/{remote_branch}:{tracking}",
            operation=operation,
            branch=remote_branch,
            check=False,
        )
        if not fetched.ok:
            error = failure(self.context, fetched, timeout=self.timeout, operation=operation, branch=remote_branch)
            if isinstance(error, BranchNotFound):
                return None
            raise error
        self.git("reset", "--quiet", "--hard", tracking, operation="reset")
        self.git("clean", "-ffdxq", operation="clean")
        sha = self.rev_parse(tracking)
        if remote_branch == self.branch:
            self.remote_head = sha
        return sha

    def refresh(self, *, full: bool = False) -> str | None:
        """Reset to the branch as it is on the remote now (or to the starting point while it is not there)."""
        sha = self.fetch(self.branch, full=full)
        if sha is not None:
            return sha
        self.remote_head = None
        if self.base_branch is not None and self.fetch(self.base_branch) is not None:
            return None
        # The repository (still) has no such branch: start again from nothing, as in an empty repository.
        self.git("symbolic-ref", "HEAD", f"refs/heads/{self.branch}", operation="reset")
        self.git("update-ref", "-d", f"refs/heads/{self.branch}", operation="reset", check=False)
        self.git("read-tree", "--empty", operation="reset")
        self.git("clean", "-ffdxq", operation="clean")
        return None

    def remote_contains(self, sha: str) -> bool:
        """Whether the remote branch, as last fetched, is `sha` or has it in its history."""
        if self.remote_head is None:
            return False
        if self.remote_head == sha:
            return True
        result = self.git("merge-base", "--is-ancestor", sha, self.remote_head, operation="merge-base", check=False)
        return result.status == 0

    # -- changing ------------------------------------------------------------------------------------------------

    def apply(self, changes: Sequence[Change]) -> tuple[Commit, ...]:
        """One commit per change that changes something; the commits made."""
        commits = []
        for change in changes:
            paths = [write_file(self.root, relative, content) for relative, content in change.files.items()]
            if not paths:
                continue
            listed = self.git("ls-files", "-z", "--", *paths, operation="ls-files", literal=True).stdout
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
                self.git("add", "--all", "--force", "--", *stage, operation="add", literal=True)
            if self.git("diff", "--cached", "--quiet", operation="diff", check=False).status == 0:
                continue
            self.git("commit", "--quiet", "--no-verify", "--no-gpg-sign", "-m", change.message, operation="commit")
            sha = self.rev_parse("HEAD")
            if sha is None:
                raise GitError(f"git commit in the checkout of {self.url} left no commit behind: run the command again")
            commits.append(Commit(change.message, sha))
        return tuple(commits)

    def push(self) -> GitResult:
        """`git push --porcelain origin HEAD:refs/heads/<branch>`, without force; the caller reads the result."""
        return self.git(
            "push",
            "--porcelain",
            "origin",
            f"HEAD:refs/heads/{self.branch}",
            operation=self.push_operation,
            check=False,
        )

    @property
    def push_operation(self) -> str:
        return f"push to branch '{self.branch}' of"

    # -- plumbing ------------------------------------------------------------------------------------------------

    def rev_parse(self, ref: str) -> str | None:
        result = self.git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", operation="rev-parse", check=False)
        return (result.stdout.strip() or None) if result.ok else None

    def git(
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
            self.context,
            args,
            cwd=self.root,
            env=env,
            timeout=self.timeout,
            operation=operation,
            branch=branch or self.branch,
            check=check,
        )
