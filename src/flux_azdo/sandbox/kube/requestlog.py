"""A record of every request the fake API server answered, so tests can count what a client really sent.

A bootstrap re-run that has nothing to change must make no write request; a `plan` must make none at all outside
`dryRun=All`. Counting at the server is the only way to check that without trusting the client. Records are
appended before the response is written, so once a client has its answer the record is there to read.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

#: Verbs that change stored state (unless `dry_run`).
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


@dataclass(frozen=True)
class RequestRecord:
    """One answered request, as the apiserver's RequestInfo and audit log see it."""

    #: HTTP method (GET, POST, PUT, PATCH, DELETE, HEAD).
    method: str
    #: The URL path without the query string.
    path: str
    #: get, list, watch, create, update, patch, delete, deletecollection; for non-resource paths (/version,
    #: /apis, /openapi/v3...) the lower-cased method ("get").
    verb: str
    #: The API group ("" for the core group and for non-resource paths).
    group: str = ""
    version: str = ""
    #: The resource's plural name ("" for non-resource paths).
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    #: The authenticated user's name ("" when authentication failed).
    user: str = ""
    #: The HTTP status code sent (200 for a watch that started streaming).
    code: int = 0
    #: `dryRun=All` was asked for: the request was validated but nothing was stored.
    dry_run: bool = False
    #: The request's Content-Type without parameters (tells the patch formats apart).
    content_type: str = ""
    #: SelfSubjectAccessReview and friends: a `create` that stores nothing.
    review: bool = False

    @property
    def resource_request(self) -> bool:
        return bool(self.resource)

    @property
    def is_write(self) -> bool:
        """A request that could change what is stored: a write verb, not a dry run, not an access review.

        Failed writes count too (the client did send them); filter on `code` to see only the accepted ones.
        """
        return self.verb in WRITE_VERBS and not self.dry_run and not self.review


class RequestLog:
    """A thread-safe, append-only list of `RequestRecord`s that tests may read and clear."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []

    def add(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)

    def snapshot(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
