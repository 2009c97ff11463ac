"""Which Flux controllers are running, and with what arguments, environment and ServiceAccount.

A controller acts only while its Deployment is Available, like the real thing: before that nobody touches
GitRepositories or Kustomizations. Flux Deployments are recognised by the label `app.kubernetes.io/part-of:
flux` (every Flux manifest carries it) or by a component name (label `app.kubernetes.io/component`, else the
Deployment's name); the component is taken from that label or the name.

The arguments (`--ssh-hostkey-algos`, `--watch-all-namespaces`, `--storage-adv-addr`...) and the environment
are read from the running Pod when there is one, because that is the process that acts: a patched Deployment
whose new Pod never starts keeps the old arguments, and variables injected by a webhook exist only in the Pod.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flux_azdo.sandbox.flux.cluster import JSON, Cluster, KubeError, resource_path
from flux_azdo.sandbox.flux.informer import Informer

SOURCE_CONTROLLER = "source-controller"
KUSTOMIZE_CONTROLLER = "kustomize-controller"
COMPONENTS = (
    SOURCE_CONTROLLER,
    KUSTOMIZE_CONTROLLER,
    "helm-controller",
    "notification-controller",
    "image-reflector-controller",
    "image-automation-controller",
    "source-watcher",
)
PART_OF = "app.kubernetes.io/part-of"
DEFAULT_NAMESPACE = "flux-system"
COMPONENT = "app.kubernetes.io/component"


def component_of(deployment: JSON) -> str | None:
    metadata = deployment.get("metadata") or {}
    labels = metadata.get("labels") or {}
    label = labels.get(COMPONENT)
    if label in COMPONENTS:
        return str(label)
    name = metadata.get("name")
    return str(name) if name in COMPONENTS else None


def is_flux_deployment(deployment: JSON) -> bool:
    labels = (deployment.get("metadata") or {}).get("labels") or {}
    return bool(labels.get(PART_OF) == "flux" or component_of(deployment) is not None)


def is_available(deployment: JSON) -> bool:
    for condition in (deployment.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Available":
            return bool(condition.get("status") == "True")
    return False


def selector_string(match_labels: dict[str, Any]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(match_labels.items()))


def pod_is_ready(pod: JSON) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") != "Running" or (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def main_container(pod_spec: JSON) -> JSON:
    containers = pod_spec.get("containers") or [{}]
    for container in containers:
        if container.get("name") == "manager":
            return dict(container)
    return dict(containers[0])


@dataclass(frozen=True)
class ControllerRuntime:
    """What one running controller knows about itself."""

    component: str
    namespace: str
    deployment: str
    args: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    service_account: str = "default"
    pod_name: str | None = None

    def flag(self, name: str) -> list[str] | None:
        """Values of a Go flag (`--name=v`, `--name v`, repeated, comma lists split); None when never given."""
        values: list[str] | None = None
        args = list(self.args)
        for index, arg in enumerate(args):
            value: str | None = None
            if arg.startswith(f"--{name}="):
                value = arg.split("=", 1)[1]
            elif arg == f"--{name}" and index + 1 < len(args):
                value = args[index + 1]
            if value is None:
                continue
            values = (values or []) + [item.strip() for item in value.split(",") if item.strip()]
        return values

    def bool_flag(self, name: str, default: bool) -> bool:
        for arg in self.args:
            if arg == f"--{name}":
                return True
            if arg.startswith(f"--{name}="):
                return arg.split("=", 1)[1].lower() in ("true", "1", "t")
        return default

    def watches(self, namespace: str) -> bool:
        """`--watch-all-namespaces=false` limits a controller to its own namespace."""
        return self.bool_flag("watch-all-namespaces", True) or namespace == self.namespace

    def expand(self, text: str) -> str:
        """Kubernetes `$(VAR)` expansion in arguments, with the Pod's environment."""
        for name, value in self.env.items():
            text = text.replace(f"$({name})", value)
        return text


class Components:
    """Tracks the Flux Deployments (from the Deployment informer) and tells controllers when theirs starts."""

    def __init__(self, cluster: Cluster, *, require_available: bool = True) -> None:
        self._cluster = cluster
        self._require_available = require_available
        self._deployments: Informer | None = None
        self._listeners: dict[str, list[Callable[[], None]]] = {}
        self._available: set[str] = set()
        self._lock = threading.Lock()

    def attach(self, deployments: Informer) -> None:
        self._deployments = deployments

    def subscribe(self, component: str, callback: Callable[[], None]) -> None:
        """`callback` runs (on the watch thread) each time `component` becomes Available."""
        with self._lock:
            self._listeners.setdefault(component, []).append(callback)

    def on_deployment_event(self) -> None:
        now_available = {c for d in self._candidates() if is_available(d) and (c := component_of(d))}
        with self._lock:
            started = now_available - self._available
            self._available = now_available
            callbacks = [cb for component in started for cb in self._listeners.get(component, [])]
        for callback in callbacks:
            callback()

    def _candidates(self) -> list[JSON]:
        if self._deployments is None:
            return []
        items = [d for d in self._deployments.items() if is_flux_deployment(d)]
        return sorted(items, key=lambda d: ((d["metadata"].get("namespace") or ""), d["metadata"].get("name") or ""))

    def runtime(self, component: str) -> ControllerRuntime | None:
        """The running `component` (first Available one by namespace), or None when it does not run."""
        candidates = [d for d in self._candidates() if component_of(d) == component]
        for deployment in candidates:
            if is_available(deployment):
                return self._describe(component, deployment)
        if self._require_available:
            return None
        if candidates:
            return self._describe(component, candidates[0])
        return ControllerRuntime(component=component, namespace=DEFAULT_NAMESPACE, deployment=component, args=())

    def _describe(self, component: str, deployment: JSON) -> ControllerRuntime:
        metadata = deployment["metadata"]
        namespace = str(metadata.get("namespace") or "default")
        spec = deployment.get("spec") or {}
        pod_spec: JSON = ((spec.get("template") or {}).get("spec")) or {}
        pod = self._running_pod(namespace, (spec.get("selector") or {}).get("matchLabels") or {})
        pod_name = None
        if pod is not None:
            pod_spec = pod.get("spec") or pod_spec
            pod_name = str(pod["metadata"].get("name"))
        container = main_container(pod_spec)
        env = {"RUNTIME_NAMESPACE": namespace}
        for variable in container.get("env") or []:
            if "value" in variable:
                env[str(variable.get("name"))] = str(variable.get("value"))
        return ControllerRuntime(
            component=component,
            namespace=namespace,
            deployment=str(metadata.get("name")),
            args=tuple(str(arg) for arg in container.get("args") or []),
            env=env,
            service_account=str(pod_spec.get("serviceAccountName") or pod_spec.get("serviceAccount") or "default"),
            pod_name=pod_name,
        )

    def _running_pod(self, namespace: str, match_labels: dict[str, Any]) -> JSON | None:
        if not match_labels:
            return None
        try:
            pods = self._cluster.list(
                resource_path("v1", "pods", namespace), label_selector=selector_string(match_labels)
            )
        except KubeError:
            return None
        ready = [pod for pod in pods.get("items") or [] if pod_is_ready(pod)]
        ready.sort(key=lambda pod: str(pod["metadata"].get("creationTimestamp") or ""), reverse=True)
        return ready[0] if ready else None
