"""The `scale` subresource (autoscaling/v1 Scale) of deployments and replicasets, as `kubectl scale` uses it."""

from __future__ import annotations

from typing import Any

from flux_azdo.sandbox.kube import errors
from flux_azdo.sandbox.kube.errors import JsonObj


def scale_of(obj: JsonObj) -> JsonObj:
    selector = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    metadata = obj["metadata"]
    kept = ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {key: metadata[key] for key in kept if key in metadata},
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
        "status": {
            "replicas": (obj.get("status") or {}).get("replicas", 0),
            "selector": ",".join(f"{k}={v}" for k, v in sorted(selector.items())),
        },
    }


def replicas_of(scale: Any, name: str) -> int:
    replicas = ((scale or {}).get("spec") or {}).get("replicas") if isinstance(scale, dict) else None
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        problem = errors.invalid_value("spec.replicas", replicas, "must be greater than or equal to 0")
        raise errors.invalid("autoscaling", "Scale", name, [problem])
    return replicas
