"""The object store: objects per resource, one global resourceVersion counter, and a bounded event history per kind.

Like etcd behind a real apiserver, every write takes the next revision, which becomes the object's
`resourceVersion`, and is recorded as a watch event (ADDED, MODIFIED, DELETED). Watches replay the history after
a given revision; once the history has moved past it they get `410 Expired`. As in the apiserver's watch cache
(one per resource), each kind keeps its own history, so a watch on a quiet kind is not expired by a burst of
writes to another. Stored objects are never mutated in place (writers store new dicts), so events and readers
can share them without copies.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from flux_azdo.sandbox.kube.errors import expired

ResourceKey = tuple[str, str]  # (group, plural)
ObjectKey = tuple[str, str]  # (namespace or "", name)


@dataclass(frozen=True)
class StoredEvent:
    revision: int
    type: str
    resource: ResourceKey
    namespace: str
    name: str
    obj: dict[str, Any]
    #: The object before a MODIFIED, so a selector watch can turn it into ADDED or DELETED.
    old: dict[str, Any] | None


class Store:
    def __init__(self, history: int = 4096) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self._revision = 1
        self._objects: dict[ResourceKey, dict[ObjectKey, dict[str, Any]]] = {}
        self._history = history
        self._events: dict[ResourceKey, deque[StoredEvent]] = {}
        #: Per kind, the lowest revision a watch may start after; it moves up when that history drops events.
        self._floors: dict[ResourceKey, int] = {}
        self.closed = False

    @property
    def revision(self) -> int:
        with self.lock:
            return self._revision

    def get(self, resource: ResourceKey, namespace: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            return self._objects.get(resource, {}).get((namespace, name))

    def objects(self, resource: ResourceKey, namespace: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            items = self._objects.get(resource, {})
            keys = sorted(key for key in items if namespace is None or key[0] == namespace)
            return [items[key] for key in keys]

    def count_in_namespace(self, namespace: str) -> dict[ResourceKey, int]:
        with self.lock:
            counts = {}
            for resource, items in self._objects.items():
                found = sum(1 for key in items if key[0] == namespace)
                if found:
                    counts[resource] = found
            return counts

    def put(self, resource: ResourceKey, obj: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
        """Store `obj` (ADDED when `old` is None, else MODIFIED) under the next revision; returns it."""
        with self.lock:
            self._revision += 1
            metadata = dict(obj.get("metadata") or {})
            metadata["resourceVersion"] = str(self._revision)
            stored = {**obj, "metadata": metadata}
            key = (metadata.get("namespace", "") or "", metadata["name"])
            self._objects.setdefault(resource, {})[key] = stored
            self._record("ADDED" if old is None else "MODIFIED", resource, key, stored, old)
            return stored

    def remove(self, resource: ResourceKey, namespace: str, name: str) -> dict[str, Any] | None:
        """Delete an object; the DELETED event (and the return value) carry the deletion's revision."""
        with self.lock:
            current = self._objects.get(resource, {}).pop((namespace, name), None)
            if current is None:
                return None
            self._revision += 1
            gone = {**current, "metadata": {**current["metadata"], "resourceVersion": str(self._revision)}}
            self._record("DELETED", resource, (namespace, name), gone, current)
            return gone

    def _record(
        self, kind: str, resource: ResourceKey, key: ObjectKey, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> None:
        events = self._events.setdefault(resource, deque(maxlen=self._history))
        if len(events) == self._history:
            self._floors[resource] = events[0].revision
        events.append(StoredEvent(self._revision, kind, resource, key[0], key[1], obj, old))
        self.changed.notify_all()

    def events_after(self, resource: ResourceKey, revision: int) -> list[StoredEvent]:
        """Events of `resource` above `revision`; `410 Expired` when some of them are no longer kept."""
        with self.lock:
            self.check_watchable(resource, revision)
            events = self._events.get(resource)
            if not events or events[-1].revision <= revision:
                return []
            later: list[StoredEvent] = []
            for event in reversed(events):
                if event.revision <= revision:
                    break
                later.append(event)
            later.reverse()
            return later

    def check_watchable(self, resource: ResourceKey, revision: int) -> None:
        with self.lock:
            floor = self._floors.get(resource, 0)
            if revision < floor:
                raise expired(f"too old resource version: {revision} ({floor})")

    def close(self) -> None:
        """End every watch (the server is stopping)."""
        with self.lock:
            self.closed = True
            self.changed.notify_all()

    def reopen(self) -> None:
        with self.lock:
            self.closed = False
