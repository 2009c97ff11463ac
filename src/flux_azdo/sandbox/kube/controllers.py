"""The controllers a cluster runs without being asked, as one background thread woken by every write.

- Every new namespace gets a `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap.
- CRD naming and establishing (`crds`): `crd_establish_delay` seconds after a CRD is created (or renamed) its
  names are accepted, it becomes `Established` and its kind is served; until then its objects are 404.
- Namespace lifecycle (`namespaces`): a deleted namespace terminates, then disappears. The controller gets to
  it `namespace_termination_delay` seconds after the delete, as a real one gets to it only seconds later; until
  then the namespace shows Terminating (and what it holds) and refuses new content, but keeps its content.
- Garbage collection (`garbage`): a deleted CRD takes its objects along; `foregroundDeletion` and `orphan`
  finalizers; dependents whose owners are all gone.

They write through the store as the real controllers write through the API, so clients see the same events.
"""

from __future__ import annotations

import threading
import time
import uuid

from flux_azdo.sandbox.kube import crds, garbage, managed, namespaces
from flux_azdo.sandbox.kube.calls import CRD_KEY, NAMESPACE_KEY
from flux_azdo.sandbox.kube.errors import JsonObj
from flux_azdo.sandbox.kube.managed import now_text
from flux_azdo.sandbox.kube.resources import Registry, ResourceType
from flux_azdo.sandbox.kube.rest import Api

ROOT_CA_DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the "
    "internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of "
    "Kubernetes clusters."
)


def _due_key(crd: JsonObj) -> tuple[str, int]:
    """A CRD awaiting its names, by uid and generation (a renamed CRD waits again)."""
    metadata = crd["metadata"]
    return (str(metadata.get("uid", "")), int(metadata.get("generation", 1) or 1))


class LifecycleController:
    def __init__(
        self,
        api: Api,
        registry: Registry,
        ca_pem: bytes | None,
        *,
        crd_establish_delay: float = 0.05,
        namespace_termination_delay: float = 0.0,
    ) -> None:
        self.api = api
        self.store = api.store
        self.registry = registry
        self.ca_pem = ca_pem
        self.crd_establish_delay = crd_establish_delay
        self.namespace_termination_delay = namespace_termination_delay
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen_namespaces: set[str] = set()
        #: When each CRD awaiting its names (by uid and generation) is due to be established (monotonic time).
        self._crds_due: dict[tuple[str, int], float] = {}
        #: When the content of each terminating namespace (by uid) is due to be deleted (monotonic time).
        self._namespaces_due: dict[str, float] = {}
        #: The earliest such time, so the loop wakes up for it without a write to poke it.
        self._next_due: float | None = None

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="kube-controllers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def poke(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            due = self._next_due
            self._wake.wait(None if due is None else max(0.0, due - time.monotonic()))
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self.sync()
            except Exception:  # a controller never dies of one bad object; the next write retries
                continue

    def sync(self) -> None:
        """Pass over everything until a pass changes nothing (bounded, in case two objects fight)."""
        with self.store.lock:
            self._next_due = None
            for _ in range(100):
                if not self._step():
                    return

    def _step(self) -> bool:
        progress = False
        for namespace in self.store.objects(NAMESPACE_KEY):
            metadata = namespace["metadata"]
            if metadata.get("deletionTimestamp"):
                progress |= self._terminate(namespace)
            elif metadata.get("uid", "") not in self._seen_namespaces:
                self._seen_namespaces.add(metadata.get("uid", ""))
                progress |= self._populate(metadata["name"])
        for crd in self.store.objects(CRD_KEY):
            if crd["metadata"].get("deletionTimestamp"):
                progress |= garbage.cleanup_crd(self.api, self.registry, crd)
            else:
                progress |= self._establish(crd)
        live = {_due_key(crd) for crd in self.store.objects(CRD_KEY)}
        for forgotten in set(self._crds_due) - live:
            del self._crds_due[forgotten]
        present = {str(ns["metadata"].get("uid", "")) for ns in self.store.objects(NAMESPACE_KEY)}
        for forgotten_ns in set(self._namespaces_due) - present:
            del self._namespaces_due[forgotten_ns]
        progress |= garbage.finalize_owners(self.api, self.registry)
        progress |= garbage.collect_orphans(self.api, self.registry)
        return progress

    def _wake_at(self, due: float) -> None:
        self._next_due = due if self._next_due is None else min(self._next_due, due)

    def _terminate(self, namespace: JsonObj) -> bool:
        """The namespace controller: report at once, delete the content once the namespace's delay has passed."""
        metadata = namespace["metadata"]
        uid = str(metadata.get("uid", ""))
        progress = False
        if self.namespace_termination_delay > 0:
            now = time.monotonic()
            if uid not in self._namespaces_due:
                self._namespaces_due[uid] = now + self.namespace_termination_delay
                progress = namespaces.report(self.api, self.registry, namespace)
            due = self._namespaces_due[uid]
            if now < due:
                self._wake_at(due)
                return progress
            namespace = self.store.get(NAMESPACE_KEY, "", metadata["name"]) or namespace
        progress |= namespaces.terminate(self.api, self.registry, namespace)
        if self.store.get(NAMESPACE_KEY, "", metadata["name"]) is None:
            self._seen_namespaces.discard(uid)
        return progress

    def _establish(self, crd: JsonObj) -> bool:
        """The naming and establishing controllers: accept the names once the CRD's delay has passed."""
        if crds.settled(crd) or crds.check(crd):
            return False
        metadata = crd["metadata"]
        key = _due_key(crd)
        now = time.monotonic()
        due = self._crds_due.setdefault(key, now + self.crd_establish_delay)
        if now < due:
            self._wake_at(due)
            return False
        del self._crds_due[key]
        resource = self.registry.get(*CRD_KEY)
        assert resource is not None
        new = {**crd, "status": crds.established_status(crd)}
        writer = managed.Writer.of("kube-apiserver", resource.api_version("v1"), managed.SCOPE_STATUS)
        managers = managed.update(crd, new, resource.structure, writer)
        new["metadata"] = {**metadata, "managedFields": managed.encode(managers)}
        stored = self.store.put(CRD_KEY, new, crd)
        self.api.on_change(resource, stored)
        return True

    def _system_create(self, resource: ResourceType | None, obj: JsonObj) -> bool:
        if resource is None:
            return False
        metadata = obj["metadata"]
        if self.store.get(resource.key, metadata.get("namespace", ""), metadata["name"]) is not None:
            return False
        metadata["uid"] = str(uuid.uuid4())
        metadata["creationTimestamp"] = now_text()
        self.store.put(resource.key, obj, None)
        return True

    def _populate(self, namespace: str) -> bool:
        account = {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "default", "namespace": namespace},
        }
        made = self._system_create(self.registry.get("", "serviceaccounts"), account)
        if self.ca_pem is not None:
            metadata = {
                "name": "kube-root-ca.crt",
                "namespace": namespace,
                "annotations": {"kubernetes.io/description": ROOT_CA_DESCRIPTION},
            }
            bundle = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": metadata,
                "data": {"ca.crt": self.ca_pem.decode()},
            }
            made |= self._system_create(self.registry.get("", "configmaps"), bundle)
        return made
