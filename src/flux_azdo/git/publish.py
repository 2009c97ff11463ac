"""Publishing without force: produce, commit, push; when the branch moved, do it again on top of the new head.

`produce(root)` returns the changes for the checkout as it is; each change becomes a commit when it changes
something. When the push is rejected because the branch moved (another bootstrap, a person, a pipeline), the
checkout is reset to the new remote head and `produce` runs again on it, so nothing anybody else pushed is lost
and nothing is forced. Flux's own retry for this never fires (flux-bootstrap reference, section 2.6).

How long to keep trying. A count alone is the wrong budget for conflicts: with N writers racing for one branch
each round lands at least one of them, so the unluckiest may need up to N attempts, and how many it needs
depends on timing; a fixed count is a latent failure for any N above it. Time is the right budget, with a floor:
conflicts are retried until `retry_deadline` (180 s) has passed *and* at least `max_attempts` (15) attempts were
made. The deadline covers any number of concurrent writers that can land within three minutes (twenty on the
sandbox need about ten seconds); the floor keeps a slow server (each attempt taking many seconds) from being
given only a few tries. Failures that are not conflicts are different: a dropped connection or a 5xx, a server
that cannot update the ref ("failed to update ref", "cannot lock ref"), and a rejection as a conflict after which
the branch turns out not to have moved (Azure DevOps answers TF401028 for a ref it cannot lock) say nothing about
others making progress, and a server that fails five times in a row (`TRANSIENT_FAILURES`, about 15 s of
backoff) is down or broken: they end the run sooner, saying so. Between attempts, exponential backoff with full
jitter spreads colliding writers out.

A push whose reply was lost (the connection broke after the server took it) may have landed. It is never
pushed or committed again blindly: the next refresh fetches the branch with its recent history, and when the
branch has our commit (as its head, or below commits others pushed since) the publish is over: `pushed` with our
commits, and `created_branch` when the branch did not exist before our push.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from flux_azdo.git._run import failure
from flux_azdo.git.checkout import Change, Checkout, Commit
from flux_azdo.git.errors import GitError, PushConflict

ChangeProducer = Callable[[Path], Sequence[Change]]
RetryCallback = Callable[[int, str], None]

#: Backoff between attempts: a random delay in [0, min(CAP, BASE * 2**(retry - 1))] seconds. A single conflict
#: waits 0.5 s on average; from the fourth retry on, up to 8 s.
BACKOFF_BASE = 1.0
BACKOFF_CAP = 8.0
#: Failures in a row that are not conflicts (connection, 5xx, ref update) after which the server is deemed down.
TRANSIENT_FAILURES = 5

# Rejections that mean "the branch moved under us": fetch, produce again, push again.
_MOVED = (
    "fetch first",
    "non-fast-forward",
    "TF401028",  # Azure DevOps: the ref was updated by another client between our read and our update
    "stale info",
    "incorrect old value",
)
# Rejections that mean the server could not write the ref: not a conflict, a fault on its side (a lock left
# behind, a full disk). Retried a few times like a dropped connection.
_REF_FAILURE = ("failed to update ref", "cannot lock ref", "failed to lock")


@dataclass(frozen=True)
class PublishResult:
    head: str | None
    commits: tuple[Commit, ...]
    attempts: int
    pushed: bool
    created_branch: bool


Outcome = Literal["ok", "moved", "ref-failure", "transient", "error"]


@dataclass(frozen=True)
class PushOutcome:
    kind: Outcome
    created: bool = False
    reason: str = ""  # for on_retry and messages
    summary: str = ""  # the server's reason for a rejected ref, as git printed it
    error: GitError | None = None


@dataclass
class RetryBudget:
    """Conflicts: retried until both the deadline has passed and `max_attempts` were made. Other failures:
    `TRANSIENT_FAILURES` in a row (a push that gets an answer ends the row)."""

    max_attempts: int
    deadline: float  # seconds from the start
    started: float = field(default_factory=time.monotonic)
    failures_in_a_row: int = 0

    def allows_another(self, attempt: int, outcome: Outcome) -> bool:
        if outcome in ("transient", "ref-failure"):
            return self.failures_in_a_row < TRANSIENT_FAILURES
        return attempt < self.max_attempts or time.monotonic() - self.started < self.deadline


@dataclass(frozen=True)
class _LostPush:
    """A push whose reply never came: it may have landed."""

    head: str
    commits: tuple[Commit, ...]
    attempt: int
    created: bool  # the branch was not there before it


def publish_changes(
    checkout: Checkout, produce: ChangeProducer, on_retry: RetryCallback | None, budget: RetryBudget
) -> PublishResult:
    """See the module docstring; `on_retry(attempt, reason)` is called before attempt 2, 3, ..."""
    attempt = 1
    lost: _LostPush | None = None
    while True:
        if lost is not None and checkout.remote_contains(lost.head):
            return PublishResult(lost.head, lost.commits, lost.attempt, pushed=True, created_branch=lost.created)
        lost = None
        commits = checkout.apply(produce(checkout.root))
        head = checkout.rev_parse("HEAD")
        if head is None or head == checkout.remote_head:
            return PublishResult(head, commits, attempt, pushed=False, created_branch=False)
        based_on = checkout.remote_head
        outcome = push(checkout)
        if outcome.kind == "ok":
            checkout.remote_head = head
            return PublishResult(head, commits, attempt, pushed=True, created_branch=outcome.created)
        if outcome.error is not None:
            raise outcome.error
        if outcome.kind == "transient":
            lost = _LostPush(head, commits, attempt, created=based_on is None)
        if outcome.kind in ("transient", "ref-failure"):
            budget.failures_in_a_row += 1
        if not budget.allows_another(attempt, outcome.kind):
            if lost is not None and _landed_after_all(checkout, lost.head):
                return PublishResult(lost.head, lost.commits, attempt, pushed=True, created_branch=lost.created)
            raise _gave_up(checkout, attempt, outcome)
        attempt += 1
        if on_retry is not None:
            on_retry(attempt, outcome.reason)
        time.sleep(backoff_delay(attempt - 1))
        _refresh(checkout, budget, full=lost is not None)
        if outcome.kind == "moved":
            if checkout.remote_head != based_on:
                budget.failures_in_a_row = 0  # it did move: others are making progress
                continue
            # Rejected as a conflict, yet the branch is where it was: the server cannot update it (a lock left
            # behind, say). Counted like a server failure, so that it ends instead of running out the deadline.
            budget.failures_in_a_row += 1
            if budget.failures_in_a_row >= TRANSIENT_FAILURES:
                reason = f"the server rejected the update as a conflict, but the branch did not move: {outcome.summary}"
                stuck = PushOutcome("ref-failure", reason=reason)
                raise _gave_up(checkout, attempt - 1, stuck)


def push(checkout: Checkout) -> PushOutcome:
    """Push, and say what the answer means for the next step."""
    result = checkout.push()
    flag, summary = porcelain(result.stdout, checkout.branch)
    if result.ok and flag is not None and flag != "!":
        return PushOutcome("ok", created=flag == "*")
    if flag == "!" and any(word in summary for word in _MOVED):
        return PushOutcome("moved", reason=f"the branch moved: {summary}", summary=summary)
    if flag == "!" and any(word in summary for word in _REF_FAILURE):
        return PushOutcome("ref-failure", reason=f"the server could not update the branch: {summary}", summary=summary)
    error = failure(
        checkout.context, result, timeout=checkout.timeout, operation=checkout.push_operation, branch=checkout.branch
    )
    if error.transient:
        return PushOutcome("transient", reason=f"the connection failed: {error.message}")
    return PushOutcome("error", error=error)


def _landed_after_all(checkout: Checkout, sha: str) -> bool:
    """A last look before giving up: whether the push whose reply was lost is in the branch after all."""
    try:
        checkout.refresh(full=True)
    except GitError:
        return False
    return checkout.remote_contains(sha)


def _refresh(checkout: Checkout, budget: RetryBudget, *, full: bool) -> None:
    """Fetch the branch again; a fetch that fails for a moment is tried again like a push (same row count)."""
    while True:
        try:
            checkout.refresh(full=full)
            return
        except GitError as error:
            if not error.transient or budget.failures_in_a_row >= TRANSIENT_FAILURES:
                raise
            budget.failures_in_a_row += 1
            time.sleep(backoff_delay(budget.failures_in_a_row))


def _gave_up(checkout: Checkout, attempt: int, outcome: PushOutcome) -> GitError:
    where = f"git push to branch '{checkout.branch}' of {checkout.url}"
    times = f"{attempt} time{'s' if attempt != 1 else ''}"
    kept = "Nothing was forced and nothing of anybody else's was lost"
    if outcome.kind == "moved":
        return PushConflict(
            f"{where} was rejected {times} ({outcome.reason}): others keep pushing to it. {kept}: run the command again"
        )
    if outcome.kind == "ref-failure":
        return GitError(
            f"{where} failed {times}: {outcome.reason}. That is a fault on the server, not a conflict. {kept}: run "
            "the command again later, or ask the server's administrator"
        )
    return GitError(
        f"{where} failed {times}, and the server failed {TRANSIENT_FAILURES} times in a row: {outcome.reason}. "
        f"{kept}: check the server's status and the network, then run the command again",
        transient=True,
    )


def backoff_delay(retry: int) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**(retry - 1))], so writers that collided spread out."""
    return random.uniform(0.0, min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (retry - 1)))


def porcelain(stdout: str, branch: str) -> tuple[str | None, str]:
    """(flag, summary) of our ref's line in `git push --porcelain` output: ' ' '*' '=' '!' ..."""
    target = f"refs/heads/{branch}"
    for line in stdout.splitlines():
        fields = line.split("\t")
        if len(fields) >= 3 and fields[1].endswith(f":{target}"):
            return fields[0][:1] or " ", "\t".join(fields[2:]).strip()
    return None, ""
