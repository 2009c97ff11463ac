"""Core v1 Events as client-go's recorder writes them, including its de-duplication.

Controllers report through Events (`kubectl describe`, `kubectl get events`, `flux events`). client-go names
an Event `<object>.<nanoseconds in hex>`, fills `source` and `reportingComponent` with the component, and when
the same object gets the same type/reason/message again it bumps `count` and `lastTimestamp` on the existing
Event instead of creating another one. Recording never fails the caller: a lost Event is only logged.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from flux_azdo.sandbox.flux.cluster import JSON, Cluster, KubeError, resource_path
from flux_azdo.sandbox.flux.conditions import now_rfc3339

log = logging.getLogger(__name__)

CACHE_SIZE = 4096
NORMAL = "Normal"
WARNING = "Warning"


class EventRecorder:
    """Writes Events for one cluster; safe to share between the controllers' threads."""

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, ...], tuple[str, str, int]] = {}

    def record(
        self,
        involved: JSON,
        event_type: str,
        reason: str,
        message: str,
        *,
        component: str,
        host: str | None = None,
        annotations: dict[str, str] | None = None,
    ) -> None:
        metadata = involved.get("metadata") or {}
        namespace = str(metadata.get("namespace") or "default")
        name = str(metadata.get("name") or "")
        uid = str(metadata.get("uid") or "")
        correlation = (namespace, name, uid, event_type, reason, message, component)
        now = now_rfc3339()
        with self._lock:
            previous = self._seen.get(correlation)
        try:
            if previous is not None:
                event_namespace, event_name, count = previous
                path = resource_path("v1", "events", event_namespace, event_name)
                self._cluster.merge_patch(path, {"count": count + 1, "lastTimestamp": now})
                with self._lock:
                    self._seen[correlation] = (event_namespace, event_name, count + 1)
                return
        except KubeError as error:
            if not error.not_found:
                log.debug("event update failed: %s", error)
                return
        source: dict[str, Any] = {"component": component}
        if host:
            source["host"] = host
        event_name = f"{name}.{time.time_ns():x}"
        body: JSON = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": event_name, "namespace": namespace},
            "involvedObject": {
                "apiVersion": involved.get("apiVersion", ""),
                "kind": involved.get("kind", ""),
                "name": name,
                "namespace": namespace,
                "uid": uid,
                "resourceVersion": str(metadata.get("resourceVersion") or ""),
            },
            "reason": reason,
            "message": message,
            "type": event_type,
            "source": source,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "eventTime": None,
            "reportingComponent": component,
            "reportingInstance": host or "",
        }
        if annotations:
            body["metadata"]["annotations"] = dict(annotations)
        try:
            self._cluster.create(resource_path("v1", "events", namespace), body)
        except KubeError as error:
            log.debug("event create failed: %s", error)
            return
        with self._lock:
            if len(self._seen) >= CACHE_SIZE:  # client-go keeps an LRU of this size
                self._seen.pop(next(iter(self._seen)))
            self._seen[correlation] = (namespace, event_name, 1)
