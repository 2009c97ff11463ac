"""A private checkout of one branch, and publishing to it without force, surviving concurrent writers.

`Workspace` is the one object callers use: it owns the private temporary folder (the clone and the credential
files), the git environment (`auth`), and removes all of it on `close()`, on leaving `with`, and on any
exception while opening, wherever it lands. An interrupt between the constructor returning and `with` taking the
object over drops it unclosed: its folder goes when it is collected (`folders.PrivateFolder`), which CPython does
as the exception leaves the caller's frame.

The parts: `checkout` (the clone and the git commands on it), `publish` (commit, push, retry on conflicts, lost
replies), `paths` (what a change may write), `remote` (ls-remote), `folders` (the private folders), `_run` (one
git process, its deadline, its errors).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Literal

from flux_azdo.errors import UserError
from flux_azdo.git._run import failure
from flux_azdo.git.auth import GitAuth, GitSession, git_context
from flux_azdo.git.checkout import Author, Change, Checkout, Commit
from flux_azdo.git.errors import BranchNotFound
from flux_azdo.git.folders import PrivateFolder
from flux_azdo.git.paths import check_branch_name, checkout_path
from flux_azdo.git.publish import ChangeProducer, PublishResult, RetryBudget, publish_changes
from flux_azdo.git.remote import RemoteState, ls_remote

__all__ = [
    "Author",
    "Change",
    "ChangeProducer",
    "Commit",
    "PublishResult",
    "RemoteState",
    "Workspace",
    "remote_state",
]

#: The default budget for publishing (see `publish`): conflicts are retried for this long, and at least this often.
RETRY_DEADLINE = 180.0
MAX_ATTEMPTS = 15
#: Flux's default identity: name Flux, empty email.
DEFAULT_AUTHOR = Author()
#: Where `includes` fetches the branch to, so that the checkout (its branch, index and files) stays as it is.
FOLLOW_REF = "refs/flux-azdo/followed"
_OBJECT_NAME = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def remote_state(url: str, auth: GitAuth, *, timeout: float = 60.0) -> RemoteState:
    """The default branch and the branches of a remote repository (`git ls-remote --symref`), to check access."""
    with git_context(url, auth, timeout=timeout) as context:
        return ls_remote(context, timeout)


class Workspace:
    """A checkout of `branch` of `url` in a private temporary folder, removed on `close()` / leaving `with`.

    `state` says what was found: "existing" branch, "empty" repository (branch unborn), or "new-branch" (created
    from the default branch, with `create_branch`). A missing branch without `create_branch` is BranchNotFound.
    `timeout` bounds every git command (seconds); `max_attempts` and `retry_deadline` the retries of `publish`.
    """

    def __init__(
        self,
        url: str,
        branch: str,
        auth: GitAuth,
        *,
        create_branch: bool = False,
        author: Author = DEFAULT_AUTHOR,
        temp_parent: Path | None = None,
        max_attempts: int = MAX_ATTEMPTS,
        retry_deadline: float = RETRY_DEADLINE,
        timeout: float = 120.0,
    ) -> None:
        check_branch_name(branch)
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
        self.retry_deadline = retry_deadline
        self.timeout = timeout
        self.head: str | None = None
        self.default_branch: str | None = None
        self.state: Literal["existing", "empty", "new-branch"] = "existing"
        self._folder: PrivateFolder | None = None
        self._session: GitSession | None = None
        try:
            self._folder = PrivateFolder("flux-azdo-workspace-", temp_parent)
            self.root = self._folder.path / "checkout"
            self._session = git_context(url, auth, temp_parent=self._folder.path, timeout=timeout)
            context = self._session.__enter__()
            self._checkout = Checkout(context, self.root, branch, author, timeout, create_branch=create_branch)
            self.state, self.default_branch = self._checkout.open()
            self.head = self._checkout.rev_parse("HEAD")
        except BaseException:
            self.close()
            raise

    # -- lifecycle -----------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Remove the checkout and every credential file; safe to call twice."""
        try:
            if self._session is not None:
                self._session.close()
        finally:
            if self._folder is not None:
                self._folder.remove()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def url(self) -> str:
        return self._checkout.url

    @property
    def directory(self) -> Path:
        """The private folder holding the checkout and the credential files."""
        if self._folder is None:
            raise RuntimeError("the workspace was not opened")
        return self._folder.path

    # -- reading -------------------------------------------------------------------------------------------------

    def read(self, relative: str) -> str | None:
        """A file of the checkout as text, or None when it does not exist."""
        path = checkout_path(self.root, relative)
        if not path.is_file():
            return None
        return path.read_bytes().decode("utf-8")

    # -- publishing ----------------------------------------------------------------------------------------------

    def publish(self, produce: ChangeProducer, *, on_retry: Callable[[int, str], None] | None = None) -> PublishResult:
        """Commit what `produce` returns and push it without force, on top of whatever others pushed meanwhile.

        `on_retry(attempt, reason)` is called before attempt 2, 3, ... with why the previous one failed. After a
        push whose reply was lost, that next attempt may find the push landed and end without pushing again;
        `attempts` counts the attempts that pushed. Nothing changed: no commit, no push (`pushed` False), except
        that a new branch is still created. Retries: see `flux_azdo.git.publish`.
        """
        budget = RetryBudget(self.max_attempts, self.retry_deadline)
        result = publish_changes(self._checkout, produce, on_retry, budget)
        self.head = self._checkout.rev_parse("HEAD")
        return result

    # -- after publishing ----------------------------------------------------------------------------------------

    def includes(self, commit: str, revision: str, *, timeout: float | None = None) -> bool:
        """Whether commit `revision` is `commit` or has it in its history (both full hex object names).

        Asked when the cluster reports a revision other than our head: somebody may have pushed on top of ours
        before the cluster fetched. A `revision` the clone lacks is fetched with the branch as it is now (without
        a depth: only what is new since our push comes down) into a ref of its own, so the checkout and its files
        stay as they are; a `revision` the branch does not have is False, as is anything but an object name.
        `timeout` bounds the fetch (default: the workspace's). A fetch that fails raises its GitError.
        """
        if not (_OBJECT_NAME.fullmatch(commit) and _OBJECT_NAME.fullmatch(revision)):
            return False
        if revision == commit:
            return True
        if self._checkout.rev_parse(revision) is None:
            with self._bounded(timeout):
                if not self._fetch_followed():
                    return False
            if self._checkout.rev_parse(revision) is None:
                return False
        checkout = self._checkout
        result = checkout.git("merge-base", "--is-ancestor", commit, revision, operation="merge-base", check=False)
        return result.status == 0

    def _fetch_followed(self) -> bool:
        """Fetch the branch into FOLLOW_REF; False when the remote has no such branch (anymore)."""
        checkout = self._checkout
        refspec = f"+refs/heads/{self.branch}:{FOLLOW_REF}"
        operation = "fetch from"
        args = ("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "origin", refspec)
        fetched = checkout.git(*args, operation=operation, check=False)
        if fetched.ok:
            return True
        error = failure(checkout.context, fetched, timeout=checkout.timeout, operation=operation, branch=self.branch)
        if isinstance(error, BranchNotFound):
            return False
        raise error

    @contextlib.contextmanager
    def _bounded(self, timeout: float | None) -> Iterator[None]:
        """The checkout's git commands get at most `timeout` seconds each while the block runs."""
        previous = self._checkout.timeout
        if timeout is not None:
            self._checkout.timeout = min(previous, max(timeout, 0.001))
        try:
            yield
        finally:
            self._checkout.timeout = previous
