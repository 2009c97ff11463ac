"""What both toolkit reconcilers share: the loop around one reconcile, finalizers, predicates and requeue timing.

`ToolkitReconciler` is the part of source-controller's and kustomize-controller's reconcilers that is the same
for every Flux kind: react only to what Flux's predicates react to, act only while the controller runs and in the
namespaces it watches, remove the finalizer of a deleted object (and forget it), add the finalizer first, stop at
`spec.suspend`, and turn API errors into a retry with back-off. A subclass names its kind and implements
`reconcile_object` -- the part that differs.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import quote

from flux_azdo.sandbox.flux.cluster import JSON, Cluster, KubeError, resource_path
from flux_azdo.sandbox.flux.components import Components, ControllerRuntime
from flux_azdo.sandbox.flux.conditions import Conditions
from flux_azdo.sandbox.flux.events import EventRecorder
from flux_azdo.sandbox.flux.informer import Informer, Key, key_of
from flux_azdo.sandbox.flux.options import SimulatorOptions
from flux_azdo.sandbox.flux.storage import ArtifactStorage
from flux_azdo.sandbox.flux.workqueue import WorkQueue

log = logging.getLogger(__name__)

FINALIZER = "finalizers.fluxcd.io"
REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"

#: controller-runtime's per-item back-off as Flux configures it (`--min-retry-delay=750ms`).
FIRST_RETRY = 0.75
#: kustomize-controller's `--requeue-dependency` default.
DEPENDENCY_REQUEUE = 30.0
#: Back-off cap after an API error (a conflict on the finalizer, a server restarting).
API_ERROR_RETRY_CAP = 60.0


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


@dataclass(frozen=True)
class ControllerContext:
    """What the toolkit controllers of one simulator share: the API, Events, the running components, the
    artifact storage (source-controller writes it, kustomize-controller reads it) and the options."""

    cluster: Cluster
    events: EventRecorder
    components: Components
    storage: ArtifactStorage
    options: SimulatorOptions


class ToolkitReconciler(ABC):
    """One Flux kind's controller: its watch handler, its work queue and the shared steps of every reconcile."""

    group: ClassVar[str]
    kind: ClassVar[str]
    plural: ClassVar[str]
    #: The Flux component whose Deployment must run for this controller to act.
    component: ClassVar[str]
    #: API versions to watch, preferred first (the v1beta2 path serves clusters with older CRDs).
    versions: ClassVar[tuple[str, ...]] = ("v1", "v1beta2")

    def __init__(self, context: ControllerContext) -> None:
        self._cluster = context.cluster
        self._events = context.events
        self._components = context.components
        self._storage = context.storage
        self._policy = RequeuePolicy(context.options)
        self._finalizers = Finalizers(context.cluster)
        self.queue = WorkQueue(self.plural, self.reconcile)
        #: Set by the simulator; the cache `enqueue_all` walks and the served path `object_path` uses.
        self.informer: Informer | None = None
        self._fingerprints: dict[Key, tuple[object, ...]] = {}
        self._lock = threading.Lock()
        context.components.subscribe(self.component, self.enqueue_all)

    def list_paths(self) -> list[str]:
        return [resource_path(f"{self.group}/{version}", self.plural) for version in self.versions]

    def object_path(self, namespace: str, name: str) -> str:
        """The object's path in the API version the watch found served (the preferred one before that)."""
        served = self.informer.path if self.informer is not None and self.informer.path else self.list_paths()[0]
        collection = served.rsplit("/", 1)[0]
        return f"{collection}/namespaces/{quote(namespace, safe='')}/{self.plural}/{quote(name, safe='')}"

    # -- triggers ---------------------------------------------------------------------------------------------

    def enqueue_all(self) -> None:
        """The controller (re)started: look at every object, as a fresh controller's initial list does."""
        if self.informer is not None:
            for obj in self.informer.items():
                self.queue.add(key_of(obj))

    def on_event(self, event_type: str, obj: JSON) -> None:
        """Queue the object when its generation, requestedAt or deletion changed (not for status writes)."""
        key = key_of(obj)
        with self._lock:
            if event_type == "DELETED":
                self._fingerprints.pop(key, None)
            else:
                fingerprint = changed_for_reconcile(obj)
                if self._fingerprints.get(key) == fingerprint:
                    return
                self._fingerprints[key] = fingerprint
        self.queue.add(key)

    # -- reconcile --------------------------------------------------------------------------------------------

    def reconcile(self, key: Key) -> float | None:
        """One reconcile; the seconds until the next one, or None. An API error means a retry with back-off."""
        try:
            return self._reconcile_key(key)
        except KubeError as error:
            if error.not_found:
                return None
            log.debug("%s %s/%s: %s", self.kind, *key, error)
            return self._policy.failure(key, API_ERROR_RETRY_CAP)

    def _reconcile_key(self, key: Key) -> float | None:
        runtime = self._components.runtime(self.component)
        namespace, name = key
        if runtime is None or not runtime.watches(namespace):
            return None  # the controller is not running (for this namespace); enqueue_all follows its start
        path = self.object_path(namespace, name)
        obj = self._cluster.get(path)
        if obj is None or (obj.get("metadata") or {}).get("deletionTimestamp"):
            self.release(namespace, name)
            if obj is not None:
                self._finalizers.remove(path, obj)
            self._policy.forget(key)
            return None
        if not self._finalizers.ensure(path, obj):
            return 0.0
        if (obj.get("spec") or {}).get("suspend"):
            return None
        return self.reconcile_object(key, path, obj, runtime)

    @abstractmethod
    def release(self, namespace: str, name: str) -> None:
        """Drop what the controller keeps for an object that is gone or being deleted (artifacts, caches)."""

    @abstractmethod
    def reconcile_object(self, key: Key, path: str, obj: JSON, runtime: ControllerRuntime) -> float | None:
        """Reconcile a live, unsuspended object that carries the finalizer; the seconds until the next time."""

    def patch_status(self, path: str, status: JSON, conditions: Conditions) -> None:
        status["conditions"] = conditions.as_list()
        self._cluster.merge_patch(path + "/status", {"status": status})
