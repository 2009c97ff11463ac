"""What the scheduler, the kubelet and the workload-identity webhook would write for a simulated Pod.

The shapes follow a Kubernetes 1.32 node running containerd: Pod conditions (PodReadyToStartContainers,
Initialized, Ready, ContainersReady, PodScheduled), container statuses with `waiting` reasons ContainerCreating,
ErrImagePull and ImagePullBackOff, and the kubelet's Event texts, so `kubectl get pods`, `kubectl describe` and
kstatus see what they would see on a node that cannot pull an image.
"""

from __future__ import annotations

import copy
import hashlib
import json
import secrets
from typing import Any

from flux_azdo.sandbox.flux.cluster import JSON
from flux_azdo.sandbox.flux.conditions import now_rfc3339

#: Pod phases as the simulator tracks them.
CREATING = "ContainerCreating"
RUNNING = "Running"
PULL_FAILED = "ErrImagePull"
PULL_BACKOFF = "ImagePullBackOff"

_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand
NODE_IP = "10.224.0.4"

USE_LABEL = "azure.workload.identity/use"
CLIENT_ID_ANNOTATION = "azure.workload.identity/client-id"
TENANT_ID_ANNOTATION = "azure.workload.identity/tenant-id"
SANDBOX_TENANT_ID = "72f988bf-0000-4000-8000-00000000a2d0"
TOKEN_DIRECTORY = "/var/run/secrets/azure/tokens"
TOKEN_FILE = f"{TOKEN_DIRECTORY}/azure-identity-token"


def template_hash(template: JSON) -> str:
    """A `pod-template-hash` the way the deployment controller spells it (FNV-32a, safe-encoded digits)."""
    data = _canonical(template).encode()
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE_ALPHABET[ord(digit) % len(_SAFE_ALPHABET)] for digit in str(value))


def random_suffix(length: int = 5) -> str:
    return "".join(secrets.choice(_SAFE_ALPHABET) for _ in range(length))


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def normalise_image(image: str) -> str:
    """containerd's fully qualified reference: `nginx` -> `docker.io/library/nginx:latest`."""
    name, _, digest = image.partition("@")
    first = name.split("/", 1)[0]
    if "/" not in name or ("." not in first and ":" not in first and first != "localhost"):
        name = f"docker.io/{name}" if "/" in name else f"docker.io/library/{name}"
    if digest:
        return f"{name}@{digest}"
    if ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name


def image_matches(image: str, patterns: tuple[str, ...]) -> bool:
    normalised = normalise_image(image)
    return any(image == p or image.startswith(p) or normalised == p or normalised.startswith(p) for p in patterns)


def pull_error(image: str) -> str:
    """containerd's answer for an image that does not exist in its registry."""
    reference = normalise_image(image)
    return (
        f'rpc error: code = NotFound desc = failed to pull and unpack image "{reference}": '
        f'failed to resolve reference "{reference}": {reference}: not found'
    )


def qos_class(spec: JSON) -> str:
    containers = spec.get("containers") or []
    requests_or_limits = False
    guaranteed = True
    for container in containers:
        resources = container.get("resources") or {}
        limits = resources.get("limits") or {}
        requests = resources.get("requests") or limits
        if limits or requests:
            requests_or_limits = True
        for resource in ("cpu", "memory"):
            if resource not in limits or str(requests.get(resource)) != str(limits.get(resource)):
                guaranteed = False
    if not requests_or_limits:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def inject_workload_identity(spec: JSON, client_id: str, tenant_id: str) -> JSON:
    """The azure-workload-identity webhook's mutation: AZURE_* variables and the projected token volume."""
    mutated = copy.deepcopy(spec)
    variables = [
        {"name": "AZURE_CLIENT_ID", "value": client_id},
        {"name": "AZURE_TENANT_ID", "value": tenant_id},
        {"name": "AZURE_FEDERATED_TOKEN_FILE", "value": TOKEN_FILE},
        {"name": "AZURE_AUTHORITY_HOST", "value": "https://login.microsoftonline.com/"},
    ]
    for container in mutated.get("containers") or []:
        present = {variable.get("name") for variable in container.get("env") or []}
        container["env"] = list(container.get("env") or []) + [v for v in variables if v["name"] not in present]
        mounts = list(container.get("volumeMounts") or [])
        mounts.append({"name": "azure-identity-token", "mountPath": TOKEN_DIRECTORY, "readOnly": True})
        container["volumeMounts"] = mounts
    volumes = list(mutated.get("volumes") or [])
    volumes.append(
        {
            "name": "azure-identity-token",
            "projected": {
                "defaultMode": 420,
                "sources": [
                    {
                        "serviceAccountToken": {
                            "audience": "api://AzureADTokenExchange",
                            "expirationSeconds": 3600,
                            "path": "azure-identity-token",
                        }
                    }
                ],
            },
        }
    )
    mutated["volumes"] = volumes
    return mutated


def pod_body(
    *,
    name: str,
    namespace: str,
    template: JSON,
    spec: JSON,
    template_hash_value: str,
    node_name: str,
    owner: JSON | None,
) -> JSON:
    template_metadata = template.get("metadata") or {}
    labels = dict(template_metadata.get("labels") or {})
    labels["pod-template-hash"] = template_hash_value
    metadata: JSON = {"name": name, "namespace": namespace, "labels": labels}
    if template_metadata.get("annotations"):
        metadata["annotations"] = dict(template_metadata["annotations"])
    if owner is not None:
        metadata["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": owner["metadata"]["name"],
                "uid": owner["metadata"].get("uid", ""),
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    pod_spec = copy.deepcopy(spec)
    pod_spec["nodeName"] = node_name
    pod_spec.setdefault("restartPolicy", "Always")
    pod_spec.setdefault("schedulerName", "default-scheduler")
    pod_spec.setdefault("serviceAccountName", pod_spec.get("serviceAccount") or "default")
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec}


def state_of(pod: JSON) -> str | None:
    """The phase this simulator last wrote, read back from the Pod's status (None: never written)."""
    status = pod.get("status") or {}
    if status.get("phase") == "Running":
        return RUNNING
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in (PULL_FAILED, PULL_BACKOFF):
            return str(waiting["reason"])
    if status.get("containerStatuses"):
        return CREATING
    return None


def pod_status(pod: JSON, state: str, failing: set[str], pod_ip: str) -> JSON:
    """The `status` the kubelet reports for `state`; `failing` names the containers whose image cannot pull."""
    old = pod.get("status") or {}
    now = now_rfc3339()
    spec = pod.get("spec") or {}
    uid = str((pod.get("metadata") or {}).get("uid") or "")
    containers = spec.get("containers") or []
    ready = state == RUNNING
    unready = [str(c.get("name")) for c in containers if not ready]

    def condition(kind: str, ok: bool, reason: str | None = None, message: str | None = None) -> JSON:
        previous = next((c for c in old.get("conditions") or [] if c.get("type") == kind), None)
        value = "True" if ok else "False"
        moment = previous["lastTransitionTime"] if previous and previous.get("status") == value else now
        item: JSON = {"type": kind, "status": value, "lastProbeTime": None, "lastTransitionTime": moment}
        if reason:
            item["reason"] = reason
            item["message"] = message or ""
        return item

    not_ready_message = f"containers with unready status: [{' '.join(unready)}]"
    conditions = [
        condition("PodReadyToStartContainers", state != CREATING),
        condition("Initialized", True),
        condition("Ready", ready, None if ready else "ContainersNotReady", None if ready else not_ready_message),
        condition(
            "ContainersReady", ready, None if ready else "ContainersNotReady", None if ready else not_ready_message
        ),
        condition("PodScheduled", True),
    ]
    statuses = []
    for container in containers:
        name = str(container.get("name"))
        image = str(container.get("image") or "")
        entry: JSON = {
            "name": name,
            "image": image,
            "imageID": "",
            "ready": ready,
            "restartCount": 0,
            "started": ready,
            "lastState": {},
        }
        if ready:
            digest = hashlib.sha256(normalise_image(image).encode()).hexdigest()
            entry["imageID"] = f"{normalise_image(image).rsplit(':', 1)[0]}@sha256:{digest}"
            entry["containerID"] = "containerd://" + hashlib.sha256(f"{uid}/{name}".encode()).hexdigest()
            started = _running_since(old, name) or now
            entry["state"] = {"running": {"startedAt": started}}
        elif name in failing and state == PULL_FAILED:
            entry["state"] = {"waiting": {"reason": PULL_FAILED, "message": pull_error(image)}}
        elif name in failing and state == PULL_BACKOFF:
            entry["state"] = {"waiting": {"reason": PULL_BACKOFF, "message": f'Back-off pulling image "{image}"'}}
        else:
            entry["state"] = {"waiting": {"reason": CREATING}}
        statuses.append(entry)
    status: JSON = {
        "phase": "Running" if ready else "Pending",
        "conditions": conditions,
        "hostIP": NODE_IP,
        "hostIPs": [{"ip": NODE_IP}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": old.get("startTime") or now,
        "containerStatuses": statuses,
        "qosClass": qos_class(spec),
    }
    return status


def _running_since(old_status: JSON, name: str) -> str | None:
    for container in old_status.get("containerStatuses") or []:
        if container.get("name") == name:
            running = (container.get("state") or {}).get("running") or {}
            started = running.get("startedAt")
            return str(started) if started else None
    return None
