"""A delaying, de-duplicating work queue with one worker thread: one controller's reconcile loop.

Like controller-runtime's queue, a key is reconciled by one thread at a time, a key added while queued is
not queued twice, and an earlier due time wins over a later one (so an event during a long wait is handled
now). The handler returns the delay before the key should be seen again, or None.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

Key = tuple[str, str]
Reconcile = Callable[[Key], float | None]


class WorkQueue:
    """Keys waiting for a reconcile, and the thread that runs them in due-time order."""

    def __init__(self, name: str, reconcile: Reconcile) -> None:
        self.name = name
        self._reconcile = reconcile
        self._due: dict[Key, float] = {}
        self._heap: list[tuple[float, Key]] = []
        self._condition = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def add(self, key: Key, delay: float = 0.0) -> None:
        due = time.monotonic() + max(delay, 0.0)
        with self._condition:
            current = self._due.get(key)
            if current is not None and current <= due:
                return
            self._due[key] = due
            heapq.heappush(self._heap, (due, key))
            self._condition.notify()

    def forget(self, key: Key) -> None:
        with self._condition:
            self._due.pop(key, None)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"flux-{self.name}", daemon=True)
            self._thread.start()

    def request_stop(self) -> None:
        with self._condition:
            self._stopping = True
            self._condition.notify_all()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _next(self) -> Key | None:
        with self._condition:
            while not self._stopping:
                now = time.monotonic()
                while self._heap and self._due.get(self._heap[0][1]) != self._heap[0][0]:
                    heapq.heappop(self._heap)  # superseded by an earlier due time, or forgotten
                if self._heap and self._heap[0][0] <= now:
                    _, key = heapq.heappop(self._heap)
                    del self._due[key]
                    return key
                timeout = self._heap[0][0] - now if self._heap else None
                self._condition.wait(timeout)
            return None

    def _run(self) -> None:
        while True:
            key = self._next()
            if key is None:
                return
            try:
                delay = self._reconcile(key)
            except Exception:
                if self._stopping:
                    return
                log.exception("%s: reconcile of %s/%s failed", self.name, *key)
                delay = 1.0
            if delay is not None:
                self.add(key, delay)
