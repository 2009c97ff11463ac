"""Namespace lifecycle, as the namespace controller runs it.

A deleted namespace stays `Terminating` while everything in it is deleted; objects with finalizers wait for
them, and the namespace reports what is left in the controller's conditions (`NamespaceContentRemaining: Some
resources are remaining: gitrepositories.source.toolkit.fluxcd.io has 1 resource instances`,
`NamespaceFinalizersRemaining`). Once empty, its `kubernetes` finalizer is dropped and it is gone.
"""

from __future__ import annotations

from flux_azdo.sandbox.kube.calls import NAMESPACE_KEY
from flux_azdo.sandbox.kube.errors import JsonObj
from flux_azdo.sandbox.kube.managed import now_text
from flux_azdo.sandbox.kube.resources import Registry
from flux_azdo.sandbox.kube.rest import Api

_PARSED = "All legacy kube types successfully parsed"
_CONTENT_DELETED = "All content successfully deleted, may be waiting on finalization"


def terminate(api: Api, registry: Registry, namespace: JsonObj) -> bool:
    """One step of terminating `namespace`; True when it changed something."""
    store = api.store
    name = namespace["metadata"]["name"]
    progress = False
    remaining: dict[str, int] = {}
    finalizers: dict[str, int] = {}
    for resource in registry:
        if not resource.namespaced or resource.virtual:
            continue
        for obj in store.objects(resource.key, name):
            if not obj["metadata"].get("deletionTimestamp"):
                _, remains = api.delete_object(resource, obj, options={"propagationPolicy": "Background"})
                progress = True
                if not remains:
                    continue
            label = f"{resource.plural}.{resource.group}" if resource.group else resource.plural
            remaining[label] = remaining.get(label, 0) + 1
            current = store.get(resource.key, name, obj["metadata"]["name"]) or obj
            for finalizer in current["metadata"].get("finalizers") or []:
                finalizers[finalizer] = finalizers.get(finalizer, 0) + 1
    current_ns = store.get(NAMESPACE_KEY, "", name)
    if current_ns is None:
        return progress
    if remaining:
        status = {
            **(current_ns.get("status") or {}),
            "phase": "Terminating",
            "conditions": _conditions(current_ns, remaining, finalizers),
        }
        if status != current_ns.get("status"):
            store.put(NAMESPACE_KEY, {**current_ns, "status": status}, current_ns)
        return progress
    spec = dict(current_ns.get("spec") or {})
    spec.pop("finalizers", None)
    if current_ns["metadata"].get("finalizers"):
        if current_ns.get("spec") != spec:
            store.put(NAMESPACE_KEY, {**current_ns, "spec": spec}, current_ns)
            return True
        return progress
    store.remove(NAMESPACE_KEY, "", name)
    return True


def _conditions(namespace: JsonObj, remaining: dict[str, int], finalizers: dict[str, int]) -> list[JsonObj]:
    previous = {
        c.get("type"): c for c in (namespace.get("status") or {}).get("conditions") or [] if isinstance(c, dict)
    }

    def condition(kind: str, status: str, reason: str, message: str) -> JsonObj:
        earlier = previous.get(kind)
        stamp = earlier["lastTransitionTime"] if earlier and earlier.get("status") == status else now_text()
        return {"type": kind, "status": status, "lastTransitionTime": stamp, "reason": reason, "message": message}

    content = ", ".join(f"{label} has {count} resource instances" for label, count in sorted(remaining.items()))
    pending = ", ".join(f"{name} in {count} resource instances" for name, count in sorted(finalizers.items()))
    rows = [
        (
            "NamespaceDeletionDiscoveryFailure",
            "False",
            "ResourcesDiscovered",
            "All resources successfully discovered",
        ),
        ("NamespaceDeletionGroupVersionParsingFailure", "False", "ParsedGroupVersions", _PARSED),
        ("NamespaceDeletionContentFailure", "False", "ContentDeleted", _CONTENT_DELETED),
        ("NamespaceContentRemaining", "True", "SomeResourcesRemain", f"Some resources are remaining: {content}"),
    ]
    if pending:
        message = f"Some content in the namespace has finalizers remaining: {pending}"
        rows.append(("NamespaceFinalizersRemaining", "True", "SomeFinalizersRemain", message))
    else:
        message = "All content-preserving finalizers finished"
        rows.append(("NamespaceFinalizersRemaining", "False", "ContentHasNoFinalizers", message))
    return [condition(*row) for row in rows]
