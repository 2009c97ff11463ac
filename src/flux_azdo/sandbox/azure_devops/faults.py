"""Fault injection for reliability tests: throttling, lost replies, dropped pushes and latency, switched on at run time.

The faults, and what the client under test sees:

* `fail_next(n, status=503|429)`: the next `n` matching requests (REST or Git) are *not* handled and get the
  service's 503/429 with `Retry-After`; a retry may succeed.
* `fail_after_handling(n, status=503|500|None)`: the next `n` matching REST requests *are* handled (a repository
  is created, refs are updated) and then the reply is lost: the client gets a 503 or 500 WrappedException instead,
  or (`status=None`) the connection is closed without any reply. A client that retries blindly meets the effect
  of its first attempt (409 TF400948 for a second create). REST only; the push variant is below. The SDK (msrest
  on urllib3 2) does not retry a POST on its own, so the failure reaches the caller; GET, PUT and DELETE it
  retries up to 3 times on a 5xx (with backoff), so those need `n` > 3 to reach the caller.
* `drop_next_push(n)`: the next `n` git pushes over HTTP lose their connection in the middle of the upload,
  *before* any ref changes: the push did not happen.
* `drop_after_next_push(n)`: the next `n` git pushes (HTTP or SSH) are applied (objects stored, refs updated by
  the push rules) and then the connection is dropped before git reads the result: git reports a broken
  connection although the push landed (over HTTP `RPC failed; curl 52 Empty reply from server`, over SSH `the
  remote end hung up unexpectedly`). Counted when the push reaches its ref updates, so a push with nothing to
  send does not use it up.
* `latency(seconds)`: every public request waits that long first.

Faults apply to the public URL space only (REST and Git); the internal `/_sandbox/` endpoints the push hook and
the SSH forced command use are never disturbed, so a fault always surfaces at the client under test.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass
class _Failure:
    remaining: int
    status: int | None
    retry_after: float | None
    path_contains: str | None
    method: str | None

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path_contains is None or self.path_contains.lower() in path.lower()


@dataclass(frozen=True)
class LostReply:
    """What replaces the reply of a request that was handled: `status` 503/500, or None for a dropped connection."""

    status: int | None
    retry_after: float | None


class FaultInjector:
    """Thread-safe switches the server consults on every request (see the module docstring for each fault).

    * `fail_next(n, status, retry_after, path_contains=, method=)`: refuse before handling (503/429);
    * `fail_after_handling(n, status, retry_after, path_contains=, method=)`: handle a REST request, then answer
      503/500 or (`status=None`) drop the connection;
    * `drop_next_push(n)`: drop a git push over HTTP mid-upload, nothing applied;
    * `drop_after_next_push(n)`: apply a git push (HTTP or SSH), then drop the connection before git reads the
      result;
    * `latency(seconds)`, `reset()`, and counters: `served_failures`, `lost_replies`, `dropped_pushes`,
      `dropped_push_replies`, `delayed_requests`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: list[_Failure] = []
        self._after_failures: list[_Failure] = []
        self._drop_pushes = 0
        self._drop_push_replies = 0
        self._latency = 0.0
        self._served_failures = 0
        self._lost_replies = 0
        self._dropped_pushes = 0
        self._dropped_push_replies = 0
        self._delayed_requests = 0

    def fail_next(
        self,
        n: int = 1,
        status: int = 503,
        retry_after: float | None = 1,
        *,
        path_contains: str | None = None,
        method: str | None = None,
    ) -> None:
        """Answer the next `n` matching requests with `status` (503 or 429) and a `Retry-After` header."""
        if status not in (429, 503):
            raise ValueError("status must be 429 or 503")
        with self._lock:
            self._failures.append(_Failure(n, status, retry_after, path_contains, method))

    def fail_after_handling(
        self,
        n: int = 1,
        status: int | None = 503,
        retry_after: float | None = None,
        *,
        path_contains: str | None = None,
        method: str | None = None,
    ) -> None:
        """Handle the next `n` matching REST requests, then lose their replies.

        The request takes full effect (e.g. `POST .../git/repositories` creates the repository); instead of its
        reply the client gets `status` (503 `ServiceUnavailableException` or 500 TF400898, as WrappedException
        JSON, with `Retry-After` when `retry_after` is given), or with `status=None` the connection is closed
        without a reply (requests raises ConnectionError). Git URLs are not matched: use
        `drop_after_next_push` for pushes.
        """
        if status not in (500, 503, None):
            raise ValueError("status must be 500, 503 or None (drop the connection)")
        with self._lock:
            self._after_failures.append(_Failure(n, status, retry_after, path_contains, method))

    def drop_next_push(self, n: int = 1) -> None:
        """Close the connection in the middle of the next `n` receive-pack POSTs, without a reply (HTTP only).

        Nothing is applied: the refs stay where they were.
        """
        with self._lock:
            self._drop_pushes += n

    def drop_after_next_push(self, n: int = 1) -> None:
        """Apply the next `n` pushes (HTTP or SSH), then drop the connection before git reads their result.

        The refs are updated exactly as without the fault (push rules, default branch, creator rights); git sees
        a broken connection and exits non-zero, so a client must look at the remote refs to learn that its push
        landed.
        """
        with self._lock:
            self._drop_push_replies += n

    def latency(self, seconds: float) -> None:
        """Delay every request by `seconds` (0 switches it off)."""
        with self._lock:
            self._latency = max(0.0, float(seconds))

    def reset(self) -> None:
        """Switch every pending fault off (the counters keep their values)."""
        with self._lock:
            self._failures.clear()
            self._after_failures.clear()
            self._drop_pushes = 0
            self._drop_push_replies = 0
            self._latency = 0.0

    @property
    def push_drop_pending(self) -> bool:
        """A push (of either kind) will be dropped: the HTTP side then avoids connection reuse before it."""
        with self._lock:
            return self._drop_pushes > 0 or self._drop_push_replies > 0

    @property
    def served_failures(self) -> int:
        """How many injected 503/429 replies were sent so far."""
        with self._lock:
            return self._served_failures

    @property
    def lost_replies(self) -> int:
        """How many handled REST requests had their reply replaced or dropped so far."""
        with self._lock:
            return self._lost_replies

    @property
    def dropped_pushes(self) -> int:
        """How many pushes had their connection dropped (before any ref update) so far."""
        with self._lock:
            return self._dropped_pushes

    @property
    def dropped_push_replies(self) -> int:
        """How many pushes were applied and then had their connection dropped so far."""
        with self._lock:
            return self._dropped_push_replies

    @property
    def delayed_requests(self) -> int:
        """How many requests were slowed down by the latency switch so far."""
        with self._lock:
            return self._delayed_requests

    def take_delay(self) -> float:
        """The latency to add to this request (0 when switched off); counts the delayed requests."""
        with self._lock:
            if self._latency > 0:
                self._delayed_requests += 1
            return self._latency

    def take_failure(self, method: str, path: str) -> tuple[int, float | None] | None:
        """Consume one injected failure matching this request: (status, retry_after), or None."""
        with self._lock:
            failure = _take(self._failures, method, path)
            if failure is None or failure.status is None:
                return None
            self._served_failures += 1
            return failure.status, failure.retry_after

    def take_lost_reply(self, method: str, path: str) -> LostReply | None:
        """Consume one `fail_after_handling` matching this REST request: how its reply is lost, or None."""
        with self._lock:
            failure = _take(self._after_failures, method, path)
            if failure is None:
                return None
            self._lost_replies += 1
            return LostReply(failure.status, failure.retry_after)

    def take_push_drop(self) -> bool:
        """Consume one pending dropped push."""
        with self._lock:
            if self._drop_pushes > 0:
                self._drop_pushes -= 1
                self._dropped_pushes += 1
                return True
            return False

    def take_push_reply_drop(self) -> bool:
        """Consume one pending `drop_after_next_push` (called once the push's ref updates are applied)."""
        with self._lock:
            if self._drop_push_replies > 0:
                self._drop_push_replies -= 1
                self._dropped_push_replies += 1
                return True
            return False


def _take(failures: list[_Failure], method: str, path: str) -> _Failure | None:
    """Use up one count of the first failure matching the request (the caller holds the lock)."""
    for failure in failures:
        if failure.matches(method, path):
            failure.remaining -= 1
            if failure.remaining <= 0:
                failures.remove(failure)
            return failure
    return None
