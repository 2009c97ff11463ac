"""Defaults the apiserver fills in for the built-in kinds a Flux bootstrap writes.

Clients read these back (`kubectl get deploy -o yaml` shows `progressDeadlineSeconds: 600`; a Secret written
with `stringData` comes back with base64 `data` and `type: Opaque`), and server-side apply must treat them as
nobody's fields, so they are applied after the merge, exactly where the real server applies them.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import itertools
import threading
from typing import Any

from flux_azdo.sandbox.kube.errors import bad_request, invalid, invalid_value

JsonObj = dict[str, Any]


def _default(target: JsonObj, name: str, value: Any) -> None:
    if target.get(name) is None:
        target[name] = value


def secret(obj: JsonObj, old: JsonObj | None) -> None:
    string_data = obj.pop("stringData", None)
    data = obj.get("data")
    if data is not None and not isinstance(data, dict):
        raise bad_request('Secret in version "v1" cannot be handled as a Secret: data must be an object')
    for value in (data or {}).values():
        if not isinstance(value, str):
            raise bad_request('Secret in version "v1" cannot be handled as a Secret: illegal base64 data')
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as error:
            raise bad_request(
                f'Secret in version "v1" cannot be handled as a Secret: illegal base64 data: {error}'
            ) from error
    if isinstance(string_data, dict) and string_data:
        merged = dict(data or {})
        for name, value in string_data.items():
            merged[name] = base64.b64encode(str(value).encode()).decode()
        obj["data"] = merged
    _default(obj, "type", "Opaque")


def namespace(obj: JsonObj, old: JsonObj | None) -> None:
    name = (obj.get("metadata") or {}).get("name", "")
    labels = obj.setdefault("metadata", {}).get("labels")
    labels = dict(labels) if isinstance(labels, dict) else {}
    labels["kubernetes.io/metadata.name"] = name
    obj["metadata"]["labels"] = labels
    if old is None:
        obj["spec"] = {"finalizers": ["kubernetes"]}
        obj["status"] = {"phase": "Active"}
    else:
        obj["spec"] = old.get("spec", {"finalizers": ["kubernetes"]})


def _probe(probe: Any) -> None:
    if not isinstance(probe, dict):
        return
    _default(probe, "timeoutSeconds", 1)
    _default(probe, "periodSeconds", 10)
    _default(probe, "successThreshold", 1)
    _default(probe, "failureThreshold", 3)
    if isinstance(probe.get("httpGet"), dict):
        _default(probe["httpGet"], "path", "/")
        _default(probe["httpGet"], "scheme", "HTTP")


def _container(container: Any) -> None:
    if not isinstance(container, dict):
        return
    image = str(container.get("image", ""))
    tag = image.rsplit("/", 1)[-1]
    pinned = "@" in image or (":" in tag and not tag.endswith(":latest"))
    _default(container, "imagePullPolicy", "IfNotPresent" if pinned else "Always")
    _default(container, "terminationMessagePath", "/dev/termination-log")
    _default(container, "terminationMessagePolicy", "File")
    _default(container, "resources", {})
    for port in container.get("ports") or []:
        if isinstance(port, dict):
            _default(port, "protocol", "TCP")
    for variable in container.get("env") or []:
        field_ref = ((variable or {}).get("valueFrom") or {}).get("fieldRef") if isinstance(variable, dict) else None
        if isinstance(field_ref, dict):
            _default(field_ref, "apiVersion", "v1")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        _probe(container.get(probe))


def pod_spec(spec: Any) -> None:
    if not isinstance(spec, dict):
        return
    _default(spec, "restartPolicy", "Always")
    _default(spec, "terminationGracePeriodSeconds", 30)
    _default(spec, "dnsPolicy", "ClusterFirst")
    _default(spec, "securityContext", {})
    _default(spec, "schedulerName", "default-scheduler")
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or []:
            _container(container)
    for volume in spec.get("volumes") or []:
        if not isinstance(volume, dict):
            continue
        for source in ("secret", "configMap"):
            if isinstance(volume.get(source), dict):
                _default(volume[source], "defaultMode", 420)
    if spec.get("serviceAccountName") and not spec.get("serviceAccount"):
        spec["serviceAccount"] = spec["serviceAccountName"]


def _template(template: Any) -> None:
    if not isinstance(template, dict):
        return
    metadata = template.setdefault("metadata", {})
    if isinstance(metadata, dict):
        metadata.setdefault("creationTimestamp", None)
    pod_spec(template.get("spec"))


def deployment(obj: JsonObj, old: JsonObj | None) -> None:
    spec = obj.setdefault("spec", {})
    _default(spec, "replicas", 1)
    _default(spec, "revisionHistoryLimit", 10)
    _default(spec, "progressDeadlineSeconds", 600)
    strategy = spec.setdefault("strategy", {})
    _default(strategy, "type", "RollingUpdate")
    if strategy.get("type") == "RollingUpdate":
        rolling = strategy.setdefault("rollingUpdate", {})
        _default(rolling, "maxUnavailable", "25%")
        _default(rolling, "maxSurge", "25%")
    _template(spec.get("template"))
    obj.setdefault("status", {})


def replicaset(obj: JsonObj, old: JsonObj | None) -> None:
    spec = obj.setdefault("spec", {})
    _default(spec, "replicas", 1)
    _template(spec.get("template"))
    obj.setdefault("status", {"replicas": 0})


def pod(obj: JsonObj, old: JsonObj | None) -> None:
    pod_spec(obj.setdefault("spec", {}))
    spec = obj["spec"]
    _default(spec, "enableServiceLinks", True)
    _default(spec, "preemptionPolicy", "PreemptLowerPriority")
    _default(spec, "priority", 0)
    if old is None:
        status: JsonObj = obj["status"] if isinstance(obj.get("status"), dict) else {}
        status.setdefault("phase", "Pending")
        status.setdefault("qosClass", "BestEffort")
        obj["status"] = status


class ClusterIPAllocator:
    """Hands out service IPs from 10.96.0.0/12 as the real service CIDR default does (10.96.0.1 is `kubernetes`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = itertools.count(10)
        self._network = ipaddress.ip_network("10.96.0.0/12")

    def allocate(self) -> str:
        with self._lock:
            return str(self._network[next(self._next)])


def make_service_defaulter(allocator: ClusterIPAllocator) -> Any:
    def service(obj: JsonObj, old: JsonObj | None) -> None:
        spec = obj.setdefault("spec", {})
        _default(spec, "type", "ClusterIP")
        _default(spec, "sessionAffinity", "None")
        for port in spec.get("ports") or []:
            if isinstance(port, dict):
                _default(port, "protocol", "TCP")
                _default(port, "targetPort", port.get("port"))
        old_spec = (old or {}).get("spec") or {}
        if old_spec.get("clusterIP"):
            if spec.get("clusterIP") not in (None, "", old_spec["clusterIP"]):
                name = (obj.get("metadata") or {}).get("name", "")
                raise invalid(
                    "",
                    "Service",
                    name,
                    [invalid_value("spec.clusterIPs[0]", spec["clusterIP"], "may not change once set")],
                )
            spec["clusterIP"] = old_spec["clusterIP"]
        elif spec.get("type") != "ExternalName" and not spec.get("clusterIP"):
            spec["clusterIP"] = allocator.allocate()
        if spec.get("clusterIP") and spec.get("type") != "ExternalName":
            spec["clusterIPs"] = [spec["clusterIP"]]
            _default(spec, "ipFamilies", ["IPv4"])
            _default(spec, "ipFamilyPolicy", "SingleStack")
            _default(spec, "internalTrafficPolicy", "Cluster")
        obj.setdefault("status", {"loadBalancer": {}})

    return service


def network_policy(obj: JsonObj, old: JsonObj | None) -> None:
    spec = obj.setdefault("spec", {})
    if not spec.get("policyTypes"):
        types = ["Ingress"]
        if spec.get("egress"):
            types.append("Egress")
        spec["policyTypes"] = types


def custom_resource_definition(obj: JsonObj, old: JsonObj | None) -> None:
    spec = obj.setdefault("spec", {})
    conversion = spec.setdefault("conversion", {})
    _default(conversion, "strategy", "None")
    names = spec.get("names")
    if isinstance(names, dict):
        _default(names, "singular", str(names.get("kind", "")).lower())
        _default(names, "listKind", f"{names.get('kind', '')}List")
