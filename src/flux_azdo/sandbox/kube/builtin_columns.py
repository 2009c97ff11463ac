"""The columns `kubectl get` shows for the built-in kinds, computed as the apiserver's printers compute them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flux_azdo.sandbox.kube.columns import AGE, NAME, Column, JsonObj, age, as_int, get


def _deployment_ready(obj: JsonObj) -> str:
    return f"{as_int(get(obj, 'status', 'readyReplicas'))}/{as_int(get(obj, 'spec', 'replicas'))}"


def _containers(obj: JsonObj, field: str) -> str:
    containers = get(obj, "spec", "template", "spec", "containers") or []
    return ",".join(str(c.get(field, "")) for c in containers if isinstance(c, dict))


def _selector(obj: JsonObj) -> str:
    selector = get(obj, "spec", "selector") or {}
    labels = selector.get("matchLabels") if isinstance(selector, dict) and "matchLabels" in selector else selector
    if not isinstance(labels, dict) or not labels:
        return "<none>"
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def _pod_ready(obj: JsonObj) -> str:
    statuses = get(obj, "status", "containerStatuses") or []
    total = len(get(obj, "spec", "containers") or [])
    ready = sum(1 for status in statuses if isinstance(status, dict) and status.get("ready"))
    return f"{ready}/{total}"


def _pod_status(obj: JsonObj) -> str:
    if get(obj, "metadata", "deletionTimestamp"):
        return "Terminating"
    for status in get(obj, "status", "containerStatuses") or []:
        waiting = get(status, "state", "waiting", "reason")
        if waiting:
            return str(waiting)
    return str(get(obj, "status", "phase") or "Pending")


def _pod_restarts(obj: JsonObj) -> int:
    return sum(as_int(get(status, "restartCount")) for status in get(obj, "status", "containerStatuses") or [])


def _ports(obj: JsonObj) -> str:
    ports = get(obj, "spec", "ports") or []
    texts = []
    for port in ports:
        if isinstance(port, dict):
            node_port = f":{port['nodePort']}" if port.get("nodePort") else ""
            texts.append(f"{port.get('port')}{node_port}/{port.get('protocol', 'TCP')}")
    return ",".join(texts) or "<none>"


def _data_count(obj: JsonObj) -> int:
    return len(get(obj, "data") or {}) + len(get(obj, "binaryData") or {})


def _event_object(obj: JsonObj) -> str:
    involved = get(obj, "involvedObject") or {}
    return f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}"


def _event_last_seen(obj: JsonObj) -> str:
    for field in ("lastTimestamp", "eventTime", "firstTimestamp"):
        value = get(obj, field)
        if value:
            return age(value)
    return age(get(obj, "metadata", "creationTimestamp"))


def _role_ref(obj: JsonObj) -> str:
    ref = get(obj, "roleRef") or {}
    return f"{ref.get('kind', '')}/{ref.get('name', '')}"


def _subjects(kind: str) -> Callable[[JsonObj], str]:
    def cell(obj: JsonObj) -> str:
        subjects = get(obj, "subjects") or []
        names = []
        for subject in subjects:
            if isinstance(subject, dict) and subject.get("kind") == kind:
                if kind == "ServiceAccount":
                    names.append(f"{subject.get('namespace', '')}/{subject.get('name', '')}")
                else:
                    names.append(str(subject.get("name", "")))
        return ", ".join(names)

    return cell


def _quota(kind: str) -> Callable[[JsonObj], str]:
    def cell(obj: JsonObj) -> str:
        hard = get(obj, "status", "hard") or get(obj, "spec", "hard") or {}
        used = get(obj, "status", "used") or {}
        parts = [
            f"{name}: {used.get(name, '0')}/{value}"
            for name, value in sorted(hard.items())
            if name.startswith(kind + ".") or (kind == "requests" and "." not in name)
        ]
        return ", ".join(parts)

    return cell


_BINDING_COLUMNS = [
    NAME,
    Column("Role", "string", _role_ref, "Role is the role that the binding refers to"),
    AGE,
    Column("Users", "string", _subjects("User"), "Users in the binding", priority=1),
    Column("Groups", "string", _subjects("Group"), "Groups in the binding", priority=1),
    Column("ServiceAccounts", "string", _subjects("ServiceAccount"), "ServiceAccounts in the binding", priority=1),
]

BUILTIN_COLUMNS: dict[str, list[Column]] = {
    "Namespace": [
        NAME,
        Column("Status", "string", lambda o: get(o, "status", "phase"), "The status of the namespace"),
        AGE,
    ],
    "Deployment": [
        NAME,
        Column("Ready", "string", _deployment_ready, "Number of the pod with ready state"),
        Column(
            "Up-to-date",
            "integer",
            lambda o: as_int(get(o, "status", "updatedReplicas")),
            "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
        ),
        Column(
            "Available",
            "integer",
            lambda o: as_int(get(o, "status", "availableReplicas")),
            "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
        ),
        AGE,
        Column(
            "Containers",
            "string",
            lambda o: _containers(o, "name"),
            "Names of each container in the template.",
            priority=1,
        ),
        Column(
            "Images",
            "string",
            lambda o: _containers(o, "image"),
            "Images referenced by each container in the template.",
            priority=1,
        ),
        Column("Selector", "string", _selector, "Label selector for pods.", priority=1),
    ],
    "ReplicaSet": [
        NAME,
        Column("Desired", "integer", lambda o: as_int(get(o, "spec", "replicas")), "Number of desired pods."),
        Column("Current", "integer", lambda o: as_int(get(o, "status", "replicas")), "Number of actual replicas."),
        Column(
            "Ready", "integer", lambda o: as_int(get(o, "status", "readyReplicas")), "The number of ready replicas."
        ),
        AGE,
    ],
    "Pod": [
        NAME,
        Column("Ready", "string", _pod_ready, "The aggregate readiness state of this pod for accepting traffic."),
        Column("Status", "string", _pod_status, "The aggregate status of the containers in this pod."),
        Column(
            "Restarts",
            "string",
            lambda o: str(_pod_restarts(o)),
            "The number of times the containers in this pod have been restarted.",
        ),
        AGE,
        Column(
            "IP",
            "string",
            lambda o: get(o, "status", "podIP") or "<none>",
            "IP address allocated to the pod.",
            priority=1,
        ),
        Column("Node", "string", lambda o: get(o, "spec", "nodeName") or "<none>", "Name of the node.", priority=1),
    ],
    "Service": [
        NAME,
        Column("Type", "string", lambda o: get(o, "spec", "type"), "The type of the service."),
        Column(
            "Cluster-IP", "string", lambda o: get(o, "spec", "clusterIP") or "<none>", "The cluster-ip of the service."
        ),
        Column("External-IP", "string", lambda o: "<none>", "The external-ip of the service."),
        Column("Port(s)", "string", _ports, "The port(s) of service."),
        AGE,
        Column("Selector", "string", _selector, "The label selector of the service.", priority=1),
    ],
    "Secret": [
        NAME,
        Column("Type", "string", lambda o: get(o, "type")),
        Column("Data", "string", lambda o: str(_data_count(o))),
        AGE,
    ],
    "ConfigMap": [NAME, Column("Data", "string", lambda o: str(_data_count(o))), AGE],
    "ServiceAccount": [NAME, Column("Secrets", "string", lambda o: str(len(get(o, "secrets") or []))), AGE],
    "Event": [
        Column("Last Seen", "string", _event_last_seen),
        Column("Type", "string", lambda o: get(o, "type")),
        Column("Reason", "string", lambda o: get(o, "reason")),
        Column("Object", "string", _event_object),
        Column("Message", "string", lambda o: get(o, "message")),
    ],
    "ResourceQuota": [
        NAME,
        AGE,
        Column(
            "Request",
            "string",
            _quota("requests"),
            "Request represents a minimum amount of cpu/memory that a container may consume.",
        ),
        Column(
            "Limit",
            "string",
            _quota("limits"),
            "Limits control the maximum amount of cpu/memory that a container may use independent of contention on "
            "the node.",
        ),
    ],
    "NetworkPolicy": [
        NAME,
        Column(
            "Pod-Selector",
            "string",
            lambda o: _labels_text(get(o, "spec", "podSelector")),
            "Pods selected by this policy.",
        ),
        AGE,
    ],
    "RoleBinding": _BINDING_COLUMNS,
    "ClusterRoleBinding": _BINDING_COLUMNS,
    "Lease": [NAME, Column("Holder", "string", lambda o: get(o, "spec", "holderIdentity") or ""), AGE],
}


def _labels_text(selector: Any) -> str:
    if not isinstance(selector, dict):
        return "<none>"
    labels = selector.get("matchLabels") or {}
    text = ",".join(f"{key}={value}" for key, value in sorted(labels.items()))
    return text or "<none>"
