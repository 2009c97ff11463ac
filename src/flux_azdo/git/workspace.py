"""A private checkout of one branch, and publishing to it without force, surviving concurrent writers.

`Workspace` is the one object callers use: it owns the private temporary folder (the clone and the credential
files), the git environment (`auth`), and removes all of it on `close()`, on leaving `with`, and on any
exception while opening. The parts: `checkout` (the clone and the git commands on it), `publish` (commit, push,
retry on conflicts, lost replies), `paths` (what a change may write), `remote` (ls-remote), `_run` (one git
process, its deadline, its errors).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Literal

from flux_azdo.errors import UserError
from flux_azdo.git.auth import GitAuth, git_context
from flux_azdo.git.checkout import Author, Change, Checkout, Commit
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
        self._stack = contextlib.ExitStack()
        try:
            if temp_parent is not None:
                Path(temp_parent).mkdir(parents=True, exist_ok=True)
            self._directory = Path(tempfile.mkdtemp(prefix="flux-azdo-workspace-", dir=temp_parent))
            self._stack.callback(shutil.rmtree, self._directory, True)
            self.root = self._directory / "checkout"
            context = self._stack.enter_context(git_context(url, auth, temp_parent=self._directory, timeout=timeout))
            self._checkout = Checkout(context, self.root, branch, author, timeout, create_branch=create_branch)
            self.state, self.default_branch = self._checkout.open()
            self.head = self._checkout.rev_parse("HEAD")
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
        return self._checkout.url

    @property
    def directory(self) -> Path:
        """The private folder holding the checkout and the credential files."""
        return self._directory

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
