"""The bounded retry policy of every Azure DevOps REST request: what is sent again, and how long one wait may be.

urllib3's `Retry` does the counting; this subclass decides what may be repeated without doing something twice
and caps the waits, because urllib3 alone sleeps whatever `Retry-After` says (an hour, if a server asks).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from urllib3.exceptions import ConnectTimeoutError, InvalidHeader, NewConnectionError, ReadTimeoutError
from urllib3.util.retry import Retry

log = logging.getLogger(__name__)

#: Methods that do the same when sent twice.
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


class RepeatablePosts(threading.local):
    """Whether the POSTs of the call running on this thread only read, so they may be sent again.

    Some Azure DevOps reads are POSTs: `Security/PermissionEvaluationBatch` evaluates permissions and stores
    nothing, and the scope probes post requests the service rejects before changing anything (an empty list of
    ref updates, a repository without a name). Repeating them is as safe as repeating a GET, so the client marks
    such calls and they get the retries of a GET. The retry policy only sees the method, not the call, hence this
    per-thread switch (urllib3 retries on the thread that sent the request).
    """

    active: bool = False

    @contextlib.contextmanager
    def allowed(self, repeatable: bool = True) -> Iterator[None]:
        previous, self.active = self.active, repeatable
        try:
            yield
        finally:
            self.active = previous


class BoundedRetry(Retry):
    """urllib3's Retry with Azure DevOps' rules: what is retried, and how long one wait may be.

    * 429 is retried for every method: the service refused the request before doing anything (TF400733).
    * Other 5xx (not 501/505, which will not change) are retried for idempotent methods, and for POSTs of a call
      marked repeatable (`RepeatablePosts`). Any other POST is retried on 503 only when the reply carries
      `Retry-After` (load shedding before processing); anything else might have been applied already.
      `AzureDevOpsClient.create_repository` therefore looks the repository up after a failed create instead of
      posting again.
    * Refused connections are retried (the request never left); a connection lost after sending is retried for
      what may be repeated; read and connect timeouts are not retried, so a call never takes much longer than the
      client's `timeout` when the server hangs.
    * Each wait is `Retry-After` (seconds or an HTTP date), else exponential backoff, and never more than
      `max_wait`. Every wait is logged at INFO, which is also how tests see it without timing anything.
    """

    max_wait: float = 30.0
    repeatable: RepeatablePosts | None = None

    @classmethod
    def create(cls, retries: int, max_wait: float, repeatable: RepeatablePosts | None = None) -> BoundedRetry:
        retry = cls(
            total=None,
            connect=retries,
            read=retries,
            status=retries,
            other=0,
            redirect=None,
            allowed_methods=IDEMPOTENT,
            backoff_factor=0.5,
            backoff_max=max_wait,
            raise_on_status=False,  # the last reply reaches the SDK, whose error then carries the service's text
            respect_retry_after_header=True,
        )
        retry.max_wait = max_wait
        retry.repeatable = repeatable
        return retry

    def new(self, **kw: Any) -> BoundedRetry:
        retry = super().new(**kw)
        retry.max_wait = self.max_wait
        retry.repeatable = self.repeatable
        return retry

    def _is_method_retryable(self, method: str) -> bool:
        if method.upper() in IDEMPOTENT:
            return True
        return method.upper() == "POST" and self.repeatable is not None and self.repeatable.active

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if status_code == 429:
            return True
        if self._is_method_retryable(method):
            return status_code >= 500 and status_code not in (501, 505)
        return status_code == 503 and has_retry_after

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: TracebackType | None = None,
    ) -> BoundedRetry:
        if isinstance(error, ReadTimeoutError) or (
            isinstance(error, ConnectTimeoutError) and not isinstance(error, NewConnectionError)
        ):
            raise error.with_traceback(_stacktrace)
        return super().increment(method, url, response, error, _pool, _stacktrace)

    def get_retry_after(self, response: Any) -> float | None:
        try:
            seconds = super().get_retry_after(response)
        except InvalidHeader:
            return None
        return None if seconds is None else min(float(seconds), self.max_wait)

    def sleep(self, response: Any = None) -> None:
        wait = self.get_retry_after(response) if response is not None else None
        if wait is None:
            wait = min(self.get_backoff_time(), self.max_wait)
        last = self.history[-1] if self.history else None
        if last is not None:
            cause = f"HTTP {last.status}" if last.status else type(last.error).__name__
            path = urlsplit(last.url or "").path
            log.info("Azure DevOps: %s on %s %s; retry %d in %.2f s", cause, last.method, path, len(self.history), wait)
        if wait > 0:
            time.sleep(wait)
