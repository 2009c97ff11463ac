"""The deployment controller, scheduler and kubelet, for Flux Deployments only.

A Flux Deployment gets a ReplicaSet `<name>-<pod-template-hash>` and Pods `<replicaset>-<suffix>` whose
status the kubelet would write: ContainerCreating, then Running/Ready after `deployment_ready_after` seconds,
or ErrImagePull then ImagePullBackOff (with the kubelet's Warning Events) when an image is unpullable. The
Deployment's status follows the way the deployment controller computes it: replicas, updatedReplicas,
readyReplicas, availableReplicas, unavailableReplicas, observedGeneration and the Available/Progressing
conditions, ProgressDeadlineExceeded after `progressDeadlineSeconds` without progress. A changed Pod
template rolls out like RollingUpdate with one replica: the old Pod serves until the new one is Ready.

Nothing here garbage-collects by owner references (the fake API server has no garbage collector), so when a
Flux Deployment disappears its simulated ReplicaSets and Pods are deleted here.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from datetime import datetime, timezone
from typing import Any

from flux_azdo.sandbox.flux import pods as podlib
from flux_azdo.sandbox.flux.cluster import JSON, Cluster, KubeError, resource_path
from flux_azdo.sandbox.flux.components import is_flux_deployment, selector_string
from flux_azdo.sandbox.flux.conditions import now_rfc3339
from flux_azdo.sandbox.flux.events import NORMAL, WARNING, EventRecorder
from flux_azdo.sandbox.flux.informer import Key, key_of
from flux_azdo.sandbox.flux.options import SimulatorOptions
from flux_azdo.sandbox.flux.workqueue import WorkQueue

log = logging.getLogger(__name__)

DEPLOYMENT_CONTROLLER = "deployment-controller"
REPLICASET_CONTROLLER = "replicaset-controller"
SCHEDULER = "default-scheduler"
KUBELET = "kubelet"


def _as_int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def max_unavailable(deployment: JSON, replicas: int) -> int:
    strategy = (deployment.get("spec") or {}).get("strategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate" or replicas == 0:
        return 0
    value = (strategy.get("rollingUpdate") or {}).get("maxUnavailable", "25%")
    if isinstance(value, str) and value.endswith("%"):
        return math.floor(replicas * _as_int(value[:-1], 25) / 100)
    return _as_int(value, 0)


class DeploymentSimulator:
    """Reconciles Flux Deployments on its own worker thread."""

    def __init__(self, cluster: Cluster, events: EventRecorder, options: SimulatorOptions) -> None:
        self._cluster = cluster
        self._events = events
        self._options = options
        self._unpullable = tuple(options.unpullable_images)
        self.queue = WorkQueue("deployments", self.reconcile)
        self._lock = threading.Lock()
        self._known: set[Key] = set()
        self._pod_started: dict[str, float] = {}
        self._pod_owner: dict[Key, Key] = {}
        self._progress: dict[Key, tuple[str, float]] = {}
        self._replicasets_served = True
        self._ip_counter = 10

    # -- watch handlers -----------------------------------------------------------------------------------------

    def on_deployment(self, kind: str, obj: JSON) -> None:
        key = key_of(obj)
        with self._lock:
            known = key in self._known
        if is_flux_deployment(obj) or known:
            self.queue.add(key)

    def on_pod(self, kind: str, obj: JSON) -> None:
        with self._lock:
            owner = self._pod_owner.get(key_of(obj))
        if owner is not None:
            self.queue.add(owner)

    # -- reconcile ----------------------------------------------------------------------------------------------

    def reconcile(self, key: Key) -> float | None:
        try:
            return self._reconcile_key(key)
        except KubeError as error:  # a conflict or a server hiccup: look again shortly
            log.debug("Deployment %s/%s: %s", *key, error)
            return 0.5

    def _reconcile_key(self, key: Key) -> float | None:
        namespace, name = key
        deployment = self._cluster.get(resource_path("apps/v1", "deployments", namespace, name))
        if deployment is None or (deployment.get("metadata") or {}).get("deletionTimestamp"):
            with self._lock:
                known = key in self._known
                self._known.discard(key)
                self._progress.pop(key, None)
            if known:
                self._cleanup(namespace, name)
            return None
        if not is_flux_deployment(deployment):
            return None
        with self._lock:
            self._known.add(key)
        return self._sync(key, deployment)

    def _sync(self, key: Key, deployment: JSON) -> float | None:
        namespace, name = key
        spec = deployment.get("spec") or {}
        template = spec.get("template") or {}
        replicas = _as_int(spec.get("replicas", 1), 1)
        hash_value = podlib.template_hash(template)
        replicaset_name = f"{name}-{hash_value}"
        now = time.monotonic()
        with self._lock:
            progress = self._progress.get(key)
            if progress is None or progress[0] != hash_value:
                self._progress[key] = (hash_value, now)
        replicaset = self._ensure_replicaset(deployment, replicaset_name, hash_value, replicas)

        match_labels = (spec.get("selector") or {}).get("matchLabels") or {}
        listed = self._cluster.list(
            resource_path("v1", "pods", namespace), label_selector=selector_string(match_labels)
        )
        # List items carry no apiVersion/kind; Events about them need both.
        owned = [
            {"apiVersion": "v1", "kind": "Pod", **pod} for pod in listed.get("items") or [] if self._owned_by(pod, name)
        ]
        live = [pod for pod in owned if not pod["metadata"].get("deletionTimestamp")]
        current = [pod for pod in live if pod["metadata"].get("labels", {}).get("pod-template-hash") == hash_value]
        old = [pod for pod in live if pod not in current]
        if (spec.get("strategy") or {}).get("type") == "Recreate" and old:
            for pod in old:
                self._delete_pod(pod)
            self._scale_down_old(deployment, {p["metadata"].get("labels", {}).get("pod-template-hash") for p in old})
            old = []
        for pod in current[replicas:]:
            self._delete_pod(pod)
        current = current[:replicas]
        while len(current) < replicas:
            created = self._create_pod(deployment, template, hash_value, replicaset)
            if created is None:
                break
            current.append(created)
            with self._lock:
                self._progress[key] = (hash_value, time.monotonic())

        wakes: list[float] = []
        ready = 0
        for pod in current:
            state, wake = self._advance(pod, deployment)
            if state == podlib.RUNNING:
                ready += 1
            if wake is not None:
                wakes.append(wake)
        if ready >= replicas and old:
            for pod in old:
                self._delete_pod(pod)
            self._scale_down_old(deployment, {p["metadata"].get("labels", {}).get("pod-template-hash") for p in old})
            old = []
        old_ready = sum(1 for pod in old if podlib.state_of(pod) == podlib.RUNNING)
        with self._lock:
            progressed_at = self._progress[key][1]
        deadline = _as_int(spec.get("progressDeadlineSeconds", 600), 600)
        complete = ready >= replicas and not old
        timed_out = not complete and time.monotonic() - progressed_at > deadline
        if not complete and not timed_out:
            wakes.append(max(0.05, progressed_at + deadline - time.monotonic() + 0.05))
        self._write_status(deployment, replicaset_name, replicas, len(current), ready, len(old), old_ready, timed_out)
        if replicaset is not None:
            self._write_replicaset_status(replicaset, len(current), ready)
        return min(wakes) if wakes else None

    # -- pods -----------------------------------------------------------------------------------------------------

    def _owned_by(self, pod: JSON, deployment_name: str) -> bool:
        metadata = pod.get("metadata") or {}
        if "pod-template-hash" not in (metadata.get("labels") or {}):
            return False
        owners = metadata.get("ownerReferences") or []
        if owners:
            return any(
                o.get("kind") == "ReplicaSet" and str(o.get("name", "")).startswith(f"{deployment_name}-")
                for o in owners
            )
        return str(metadata.get("name", "")).startswith(f"{deployment_name}-")

    def _create_pod(self, deployment: JSON, template: JSON, hash_value: str, owner: JSON | None) -> JSON | None:
        metadata = deployment["metadata"]
        namespace, name = str(metadata["namespace"]), str(metadata["name"])
        spec = template.get("spec") or {}
        spec = self._webhook(namespace, template, spec)
        pod_name = f"{name}-{hash_value}-{podlib.random_suffix()}"
        body = podlib.pod_body(
            name=pod_name,
            namespace=namespace,
            template=template,
            spec=spec,
            template_hash_value=hash_value,
            node_name=self._options.node_name,
            owner=owner,
        )
        try:
            pod = self._cluster.create(resource_path("v1", "pods", namespace), body)
        except KubeError as error:
            log.warning("cannot create Pod %s/%s: %s", namespace, pod_name, error)
            return None
        with self._lock:
            self._pod_started[str(pod["metadata"].get("uid"))] = time.monotonic()
            self._pod_owner[(namespace, pod_name)] = (namespace, name)
            self._ip_counter += 1
            pod_ip = f"10.244.0.{self._ip_counter % 250 + 2}"
        if owner is not None:
            self._events.record(
                owner, NORMAL, "SuccessfulCreate", f"Created pod: {pod_name}", component=REPLICASET_CONTROLLER
            )
        self._events.record(
            pod,
            NORMAL,
            "Scheduled",
            f"Successfully assigned {namespace}/{pod_name} to {self._options.node_name}",
            component=SCHEDULER,
        )
        return self._write_pod_status(pod, podlib.CREATING, set(), pod_ip) or pod

    def _webhook(self, namespace: str, template: JSON, spec: JSON) -> JSON:
        """azure-workload-identity: mutate Pods of labelled templates whose ServiceAccount names a client id."""
        if not self._options.workload_identity_webhook:
            return spec
        labels = (template.get("metadata") or {}).get("labels") or {}
        if str(labels.get(podlib.USE_LABEL, "")).lower() != "true":
            return spec
        account = str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default")
        try:
            service_account = self._cluster.get(resource_path("v1", "serviceaccounts", namespace, account))
        except KubeError:
            return spec
        annotations = ((service_account or {}).get("metadata") or {}).get("annotations") or {}
        client_id = annotations.get(podlib.CLIENT_ID_ANNOTATION)
        if not client_id:
            return spec
        tenant = str(annotations.get(podlib.TENANT_ID_ANNOTATION) or podlib.SANDBOX_TENANT_ID)
        return podlib.inject_workload_identity(spec, str(client_id), tenant)

    def _advance(self, pod: JSON, deployment: JSON) -> tuple[str, float | None]:
        """Move a Pod along its timeline; return its state and the seconds until its next step."""
        delay = max(self._options.deployment_ready_after, 0.0)
        uid = str(pod["metadata"].get("uid"))
        with self._lock:
            started = self._pod_started.get(uid)
            if started is None:  # made by an earlier simulator: its age counts from creationTimestamp
                started = time.monotonic() - _age(pod)
                self._pod_started[uid] = started
                self._pod_owner[key_of(pod)] = key_of(deployment)
        age = time.monotonic() - started
        containers = (pod.get("spec") or {}).get("containers") or []
        failing = {
            str(c.get("name")) for c in containers if podlib.image_matches(str(c.get("image") or ""), self._unpullable)
        }
        if failing:
            if age >= 2 * delay:
                state, wake = podlib.PULL_BACKOFF, None
            elif age >= delay:
                state, wake = podlib.PULL_FAILED, 2 * delay - age
            else:
                state, wake = podlib.CREATING, delay - age
        elif age >= delay:
            state, wake = podlib.RUNNING, None
        else:
            state, wake = podlib.CREATING, delay - age
        previous = podlib.state_of(pod)
        if previous != state:
            pod_ip = str((pod.get("status") or {}).get("podIP") or "10.244.0.2")
            self._write_pod_status(pod, state, failing, pod_ip)
            if state == podlib.PULL_BACKOFF and previous != podlib.PULL_FAILED:
                self._kubelet_events(pod, podlib.PULL_FAILED, failing)  # the kubelet always fails a pull first
            self._kubelet_events(pod, state, failing)
        return state, (max(wake, 0.01) if wake is not None else None)

    def _write_pod_status(self, pod: JSON, state: str, failing: set[str], pod_ip: str) -> JSON | None:
        metadata = pod["metadata"]
        status = podlib.pod_status(pod, state, failing, pod_ip)
        path = resource_path("v1", "pods", metadata["namespace"], metadata["name"]) + "/status"
        try:
            return self._cluster.merge_patch(path, {"status": status})
        except KubeError as error:
            log.debug("pod status of %s: %s", metadata["name"], error)
            return None

    def _kubelet_events(self, pod: JSON, state: str, failing: set[str]) -> None:
        host = self._options.node_name

        def record(event_type: str, reason: str, message: str) -> None:
            self._events.record(pod, event_type, reason, message, component=KUBELET, host=host)

        for container in (pod.get("spec") or {}).get("containers") or []:
            name, image = str(container.get("name")), str(container.get("image") or "")
            if state == podlib.RUNNING:
                record(NORMAL, "Pulled", f'Container image "{image}" already present on machine')
                record(NORMAL, "Created", f"Created container: {name}")
                record(NORMAL, "Started", f"Started container {name}")
            elif state == podlib.PULL_FAILED and name in failing:
                record(NORMAL, "Pulling", f'Pulling image "{image}"')
                record(WARNING, "Failed", f'Failed to pull image "{image}": {podlib.pull_error(image)}')
                record(WARNING, "Failed", "Error: ErrImagePull")
            elif state == podlib.PULL_BACKOFF and name in failing:
                record(NORMAL, "BackOff", f'Back-off pulling image "{image}"')
                record(WARNING, "Failed", "Error: ImagePullBackOff")

    def _delete_pod(self, pod: JSON) -> None:
        metadata = pod["metadata"]
        self._cluster.delete(resource_path("v1", "pods", metadata["namespace"], metadata["name"]))
        with self._lock:
            self._pod_started.pop(str(metadata.get("uid")), None)
            self._pod_owner.pop(key_of(pod), None)
        owners = metadata.get("ownerReferences") or []
        if owners:
            replicaset = {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": owners[0].get("name"),
                    "namespace": metadata["namespace"],
                    "uid": owners[0].get("uid"),
                },
            }
            self._events.record(
                replicaset,
                NORMAL,
                "SuccessfulDelete",
                f"Deleted pod: {metadata['name']}",
                component=REPLICASET_CONTROLLER,
            )

    # -- replica sets ---------------------------------------------------------------------------------------------

    def _ensure_replicaset(self, deployment: JSON, name: str, hash_value: str, replicas: int) -> JSON | None:
        if not self._replicasets_served:
            return None
        metadata = deployment["metadata"]
        namespace = str(metadata["namespace"])
        path = resource_path("apps/v1", "replicasets", namespace, name)
        try:
            existing = self._cluster.get(path)
        except KubeError:
            existing = None
        if existing is not None:
            return existing
        template = dict((deployment.get("spec") or {}).get("template") or {})
        template_metadata = dict(template.get("metadata") or {})
        labels = dict(template_metadata.get("labels") or {})
        labels["pod-template-hash"] = hash_value
        template_metadata["labels"] = labels
        template["metadata"] = template_metadata
        selector = dict(((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {})
        selector["pod-template-hash"] = hash_value
        body = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": labels,
                "annotations": {
                    "deployment.kubernetes.io/desired-replicas": str(replicas),
                    "deployment.kubernetes.io/max-replicas": str(replicas + 1),
                },
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": metadata["name"],
                        "uid": metadata.get("uid", ""),
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {"replicas": replicas, "selector": {"matchLabels": selector}, "template": template},
        }
        try:
            created = self._cluster.create(resource_path("apps/v1", "replicasets", namespace), body)
        except KubeError as error:
            if error.not_found:
                self._replicasets_served = False
            elif error.conflict:
                return self._cluster.get(path)
            else:
                log.debug("cannot create ReplicaSet %s/%s: %s", namespace, name, error)
            return None
        self._events.record(
            deployment,
            NORMAL,
            "ScalingReplicaSet",
            f"Scaled up replica set {name} from 0 to {replicas}",
            component=DEPLOYMENT_CONTROLLER,
        )
        return created

    def _write_replicaset_status(self, replicaset: JSON, replicas: int, ready: int) -> None:
        metadata = replicaset["metadata"]
        status = {
            "replicas": replicas,
            "fullyLabeledReplicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": metadata.get("generation", 1),
        }
        if all((replicaset.get("status") or {}).get(k) == v for k, v in status.items()):
            return
        path = resource_path("apps/v1", "replicasets", metadata["namespace"], metadata["name"]) + "/status"
        try:
            self._cluster.merge_patch(path, {"status": status})
        except KubeError as error:
            log.debug("replicaset status: %s", error)

    def _scale_down_old(self, deployment: JSON, hashes: set[str | None]) -> None:
        metadata = deployment["metadata"]
        for hash_value in sorted(h for h in hashes if h):
            name = f"{metadata['name']}-{hash_value}"
            self._events.record(
                deployment,
                NORMAL,
                "ScalingReplicaSet",
                f"Scaled down replica set {name} from 1 to 0",
                component=DEPLOYMENT_CONTROLLER,
            )
            if not self._replicasets_served:
                continue
            path = resource_path("apps/v1", "replicasets", metadata["namespace"], name)
            try:
                self._cluster.merge_patch(path, {"spec": {"replicas": 0}})
                self._cluster.merge_patch(
                    path + "/status",
                    {"status": {"replicas": 0, "fullyLabeledReplicas": 0, "readyReplicas": 0, "availableReplicas": 0}},
                )
            except KubeError as error:
                log.debug("scale down %s: %s", name, error)

    # -- deployment status ----------------------------------------------------------------------------------------

    def _write_status(
        self,
        deployment: JSON,
        replicaset: str,
        replicas: int,
        updated: int,
        ready: int,
        old: int,
        old_ready: int,
        timed_out: bool,
    ) -> None:
        old_status = deployment.get("status") or {}
        total = updated + old
        available = ready + old_ready
        is_available = available >= replicas - max_unavailable(deployment, replicas)
        complete = ready >= replicas and old == 0
        if complete:
            progressing = ("True", "NewReplicaSetAvailable", f'ReplicaSet "{replicaset}" has successfully progressed.')
        elif timed_out:
            progressing = ("False", "ProgressDeadlineExceeded", f'ReplicaSet "{replicaset}" has timed out progressing.')
        else:
            progressing = ("True", "ReplicaSetUpdated", f'ReplicaSet "{replicaset}" is progressing.')
        if is_available:
            availability = ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
        else:
            availability = ("False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
        conditions = [
            _deployment_condition(old_status, "Available", *availability),
            _deployment_condition(old_status, "Progressing", *progressing),
        ]
        status: JSON = {
            "observedGeneration": deployment["metadata"].get("generation", 1),
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": available,
            "availableReplicas": available,
            "conditions": conditions,
        }
        if total - available > 0:
            status["unavailableReplicas"] = total - available
        comparable = {k: v for k, v in old_status.items() if k in status or k == "unavailableReplicas"}
        if comparable == status:
            return
        for field in ("readyReplicas", "availableReplicas", "unavailableReplicas", "updatedReplicas", "replicas"):
            if field not in status:
                status[field] = None
        metadata = deployment["metadata"]
        path = resource_path("apps/v1", "deployments", metadata["namespace"], metadata["name"]) + "/status"
        try:
            self._cluster.merge_patch(path, {"status": status})
        except KubeError as error:
            log.debug("deployment status of %s: %s", metadata["name"], error)

    # -- deletion ------------------------------------------------------------------------------------------------

    def _cleanup(self, namespace: str, name: str) -> None:
        """Stand in for the garbage collector: remove the ReplicaSets and Pods this simulator made."""
        try:
            listed = self._cluster.list(resource_path("v1", "pods", namespace))
        except KubeError:
            return
        for pod in listed.get("items") or []:
            if self._owned_by(pod, name):
                self._cluster.delete(resource_path("v1", "pods", namespace, pod["metadata"]["name"]))
                with self._lock:
                    self._pod_owner.pop(key_of(pod), None)
        if not self._replicasets_served:
            return
        try:
            replicasets = self._cluster.list(resource_path("apps/v1", "replicasets", namespace))
        except KubeError:
            return
        for replicaset in replicasets.get("items") or []:
            owners = (replicaset.get("metadata") or {}).get("ownerReferences") or []
            if any(o.get("kind") == "Deployment" and o.get("name") == name for o in owners):
                self._cluster.delete(resource_path("apps/v1", "replicasets", namespace, replicaset["metadata"]["name"]))


def _age(obj: JSON) -> float:
    created = str((obj.get("metadata") or {}).get("creationTimestamp") or "")
    try:
        moment = datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return 0.0
    return max((datetime.now(timezone.utc) - moment).total_seconds(), 0.0)


def _deployment_condition(old_status: JSON, kind: str, status: str, reason: str, message: str) -> JSON:
    now = now_rfc3339()
    previous = next((c for c in old_status.get("conditions") or [] if c.get("type") == kind), None)
    transition = now
    update = now
    if previous is not None:
        if previous.get("status") == status:
            transition = str(previous.get("lastTransitionTime") or now)
        if (previous.get("status"), previous.get("reason"), previous.get("message")) == (status, reason, message):
            update = str(previous.get("lastUpdateTime") or now)
    return {
        "type": kind,
        "status": status,
        "lastUpdateTime": update,
        "lastTransitionTime": transition,
        "reason": reason,
        "message": message,
    }
