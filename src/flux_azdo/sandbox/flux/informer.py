"""List-then-watch loops, one thread per kind, like client-go's reflector feeding a store.

A watch is resumed from the last resourceVersion it saw; `410 Expired` (as an HTTP status or an ERROR event)
means the server forgot that version, so the loop lists again at once and reports what changed meanwhile.
Kinds that the server does not serve (yet: CRDs not installed or not Established; or no longer: CRD deleted)
count as empty and are listed again until they appear. Connection errors, a restarting or stopped server and
repeated expiries back off exponentially up to a second, so a broken server never makes the loop spin.
`request_stop()` shuts the open watch stream, so a stop never waits for the server.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from flux_azdo.sandbox.flux.cluster import JSON, Cluster, KubeError

log = logging.getLogger(__name__)

Key = tuple[str, str]
#: (event type: ADDED | MODIFIED | DELETED, object)
Handler = Callable[[str, JSON], None]

#: How long one watch request lasts; stop() does not depend on it (it shuts the stream), so it can be long.
WATCH_TIMEOUT_SECONDS = 60
#: Seconds added to the read timeout beyond timeoutSeconds before a silent connection counts as dead.
WATCH_GRACE_SECONDS = 10.0
FIRST_RETRY_SECONDS = 0.1
MAX_RETRY_SECONDS = 1.0


def key_of(obj: JSON) -> Key:
    metadata = obj.get("metadata") or {}
    return (str(metadata.get("namespace") or ""), str(metadata.get("name") or ""))


class WatchExpired(Exception):
    """The server no longer has the resourceVersion the watch resumes from."""


class Informer:
    """Keeps `store` equal to the server's view of one resource and calls `handler` for every change."""

    def __init__(self, cluster: Cluster, name: str, paths: Sequence[str], handler: Handler) -> None:
        #: Cluster-wide list paths to try in order (e.g. the v1 then the v1beta2 path of a CRD).
        self._paths = list(paths)
        self._cluster = cluster
        self._handler = handler
        self.name = name
        self.path: str | None = None
        self._store: dict[Key, JSON] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._response: Any = None
        self._thread: threading.Thread | None = None
        self.synced = threading.Event()

    # -- store ----------------------------------------------------------------------------------------------------

    def items(self) -> list[JSON]:
        with self._lock:
            return list(self._store.values())

    def get(self, namespace: str, name: str) -> JSON | None:
        with self._lock:
            return self._store.get((namespace, name))

    # -- lifecycle ------------------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=f"flux-watch-{self.name}", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        self._stopping.set()
        response = self._response
        if response is not None:
            _shutdown(response)

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    # -- loop -----------------------------------------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0  # attempts in a row that ended before a watch ran its course
        while not self._stopping.is_set():
            try:
                version = self._relist()
                if version is None:
                    failures += 1  # not served: look again later
                else:
                    while not self._stopping.is_set():
                        resumed = self._watch(version)
                        # A stream that ended without a single event (a quiet timeout, or a server that closes
                        # watches at once) is watched again after a pause: never a tight loop.
                        failures = 0 if resumed != version else failures + 1
                        version = resumed
                        if failures:
                            self._stopping.wait(retry_delay(failures))
            except WatchExpired:
                failures += 1
                if failures == 1:
                    continue  # list again right away, as client-go does; expiring again at once backs off
            except Exception as error:  # KubeError, unreachable server, a malformed stream: list again later
                failures += 1
                if not self._stopping.is_set():
                    log.debug("%s: %s", self.name, error)
            self._stopping.wait(retry_delay(failures))

    def _relist(self) -> str | None:
        """Replace the store with a fresh list; the list's resourceVersion, or None when the kind is not served."""
        listed = self._list()
        document, path = listed if listed is not None else ({}, None)
        self.path = path
        fresh = {key_of(item): item for item in document.get("items") or []}
        with self._lock:
            previous = self._store
            self._store = dict(fresh)
        for key, obj in previous.items():
            if key not in fresh:
                self._emit("DELETED", obj)
        for key, obj in fresh.items():
            old = previous.get(key)
            if old is None:
                self._emit("ADDED", obj)
            elif _version(old) != _version(obj):
                self._emit("MODIFIED", obj)
        if listed is None:
            return None
        self.synced.set()
        return str((document.get("metadata") or {}).get("resourceVersion") or "")

    def _list(self) -> tuple[JSON, str] | None:
        """The first served path's list (e.g. v1 before v1beta2 of a CRD), or None when none is served."""
        for path in self._paths:
            document = self._cluster.get(path)
            if document is not None:
                return document, path
        return None

    def _watch(self, version: str) -> str:
        assert self.path is not None
        query = [
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(WATCH_TIMEOUT_SECONDS)),
        ]
        if version:
            query.append(("resourceVersion", version))
        try:
            timeout = (5.0, WATCH_TIMEOUT_SECONDS + WATCH_GRACE_SECONDS)
            response = self._cluster.open("GET", self.path, query=query, timeout=timeout)
        except KubeError as error:
            if error.status == 410:
                raise WatchExpired() from None
            raise
        self._response = response
        try:
            if self._stopping.is_set():
                return version
            for event in _events(response):
                kind = str(event.get("type") or "")
                obj = event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410 or obj.get("reason") in ("Expired", "Gone"):
                        raise WatchExpired()
                    raise KubeError(int(obj.get("code") or 500), str(obj.get("reason")), str(obj.get("message")))
                version = _version(obj) or version
                if kind == "BOOKMARK":
                    continue
                self._apply(kind, obj)
        finally:
            self._response = None
            response.release_conn()
        return version

    def _apply(self, kind: str, obj: JSON) -> None:
        key = key_of(obj)
        with self._lock:
            if kind == "DELETED":
                self._store.pop(key, None)
            else:
                self._store[key] = obj
        self._emit(kind, obj)

    def _emit(self, kind: str, obj: JSON) -> None:
        try:
            self._handler(kind, obj)
        except Exception:
            log.exception("%s: handler failed for %s %s", self.name, kind, key_of(obj))


def retry_delay(failures: int) -> float:
    """Exponential back-off: 0.1 s after the first failure, doubling, never more than a second."""
    return min(FIRST_RETRY_SECONDS * 2.0 ** max(failures - 1, 0), MAX_RETRY_SECONDS)


def _version(obj: JSON) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _events(response: Any) -> Iterator[JSON]:
    """JSON documents of a watch stream, one per line, as soon as each arrives."""
    buffer = b""
    for chunk in _chunks(response):
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                document = json.loads(line)
                if isinstance(document, dict):
                    yield document
    if buffer.strip():
        document = json.loads(buffer)
        if isinstance(document, dict):
            yield document


def _chunks(response: Any) -> Iterator[bytes]:
    if getattr(response, "chunked", False) and response.supports_chunked_reads():
        yield from response.read_chunked(decode_content=True)
        return
    while True:
        chunk = response.read1(65536) if hasattr(response, "read1") else response.read(65536)
        if not chunk:
            return
        yield chunk


def _shutdown(response: Any) -> None:
    """Unblock a thread reading `response` (urllib3 >= 2.3 has `shutdown`; else close the socket)."""
    try:
        if hasattr(response, "shutdown"):
            response.shutdown()
        else:
            response.close()
    except Exception:
        pass
