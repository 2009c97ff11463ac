"""Pieces both toolkit reconcilers share: finalizers, the reconcile predicates and requeue timing."""

from __future__ import annotations

import threading

from flux_azdo.sandbox.flux.cluster import JSON, Cluster
from flux_azdo.sandbox.flux.informer import Key
from flux_azdo.sandbox.flux.options import SimulatorOptions

FINALIZER = "finalizers.fluxcd.io"
REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"

#: controller-runtime's per-item back-off as Flux configures it (`--min-retry-delay=750ms`).
FIRST_RETRY = 0.75
#: kustomize-controller's `--requeue-dependency` default.
DEPENDENCY_REQUEUE = 30.0


def requested_at(obj: JSON) -> str | None:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(REQUESTED_AT)
    return None if value is None else str(value)


def changed_for_reconcile(obj: JSON) -> tuple[object, ...]:
    """What Flux's predicates react to: a new generation, a new requestedAt, a deletion (not status writes)."""
    metadata = obj.get("metadata") or {}
    return (metadata.get("generation"), requested_at(obj), bool(metadata.get("deletionTimestamp")))


class Finalizers:
    """Adds and removes `finalizers.fluxcd.io` with a resourceVersion precondition (no lost updates)."""

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster

    def ensure(self, path: str, obj: JSON) -> bool:
        """True when present already; else add it and return False (the caller requeues, as Flux does)."""
        finalizers = list((obj.get("metadata") or {}).get("finalizers") or [])
        if FINALIZER in finalizers:
            return True
        self._write(path, obj, [*finalizers, FINALIZER])
        return False

    def remove(self, path: str, obj: JSON) -> None:
        finalizers = list((obj.get("metadata") or {}).get("finalizers") or [])
        if FINALIZER in finalizers:
            self._write(path, obj, [item for item in finalizers if item != FINALIZER])

    def _write(self, path: str, obj: JSON, finalizers: list[str]) -> None:
        version = (obj.get("metadata") or {}).get("resourceVersion")
        metadata: JSON = {"finalizers": finalizers}
        if version:
            metadata["resourceVersion"] = version
        self._cluster.merge_patch(path, {"metadata": metadata})


class RequeuePolicy:
    """When to look at an object again: its interval after success, exponential back-off after failure."""

    def __init__(self, options: SimulatorOptions) -> None:
        self._options = options
        self._failures: dict[Key, int] = {}
        self._lock = threading.Lock()

    def clamp(self, seconds: float) -> float:
        seconds = max(seconds, self._options.min_interval)
        if self._options.max_interval is not None:
            seconds = min(seconds, self._options.max_interval)
        return seconds

    def periodic(self, interval: float) -> float:
        return self.clamp(interval)

    def dependency(self) -> float:
        return self.clamp(DEPENDENCY_REQUEUE)

    def failure(self, key: Key, cap: float) -> float:
        with self._lock:
            count = self._failures.get(key, 0) + 1
            self._failures[key] = count
        delay = FIRST_RETRY * float(2 ** min(count - 1, 20))
        return min(delay, self.clamp(cap))

    def success(self, key: Key) -> None:
        with self._lock:
            self._failures.pop(key, None)

    forget = success
