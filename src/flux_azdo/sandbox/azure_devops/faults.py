"""Fault injection for reliability tests: throttling, dropped pushes and latency, switched on at run time.

Faults apply to the public URL space only (REST and Git); the internal `/_sandbox/` endpoints the push hook and
the SSH forced command use are never disturbed, so a fault always surfaces at the client under test.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass
class _Failure:
    remaining: int
    status: int
    retry_after: float | None
    path_contains: str | None
    method: str | None

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path_contains is None or self.path_contains.lower() in path.lower()


class FaultInjector:
    """Thread-safe switches the server consults on every request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: list[_Failure] = []
        self._drop_pushes = 0
        self._latency = 0.0
        self._served_failures = 0
        self._dropped_pushes = 0
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

    def drop_next_push(self, n: int = 1) -> None:
        """Close the connection in the middle of the next `n` receive-pack POSTs, without a reply."""
        with self._lock:
            self._drop_pushes += n

    def latency(self, seconds: float) -> None:
        """Delay every request by `seconds` (0 switches it off)."""
        with self._lock:
            self._latency = max(0.0, float(seconds))

    def reset(self) -> None:
        with self._lock:
            self._failures.clear()
            self._drop_pushes = 0
            self._latency = 0.0

    @property
    def push_drop_pending(self) -> bool:
        with self._lock:
            return self._drop_pushes > 0

    @property
    def served_failures(self) -> int:
        """How many injected 503/429 replies were sent so far."""
        with self._lock:
            return self._served_failures

    @property
    def dropped_pushes(self) -> int:
        """How many pushes had their connection dropped so far."""
        with self._lock:
            return self._dropped_pushes

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
            for failure in self._failures:
                if failure.matches(method, path):
                    failure.remaining -= 1
                    if failure.remaining <= 0:
                        self._failures.remove(failure)
                    self._served_failures += 1
                    return failure.status, failure.retry_after
            return None

    def take_push_drop(self) -> bool:
        """Consume one pending dropped push."""
        with self._lock:
            if self._drop_pushes > 0:
                self._drop_pushes -= 1
                self._dropped_pushes += 1
                return True
            return False
