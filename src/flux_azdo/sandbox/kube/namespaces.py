"""Namespace lifecycle, as the namespace controller runs it.

A deleted namespace stays `Terminating` while everything in it is deleted; objects with finalizers wait for
them, and the namespace reports what is left in the controller's conditions (`NamespaceContentRemaining: Some
resources are remaining: gitrepositories.source.toolkit.fluxcd.io has 1 resource instances`,
`NamespaceFinalizersRemaining`). Once empty, its `kubernetes` finalizer is dropped and it is gone.

A real controller gets to a deleted namespace only seconds later (work queue, discovery of every API group), so
`kubectl delete -f` of a file that holds a namespace and its content finds that content still there. The
controllers model that wait and call `report` when it starts: the namespace then shows what it holds, untouched.
"""

from __future__ import annotations

from flux_azdo.sandbox.kube.calls import NAMESPACE_KEY
from flux_azdo.sandbox.kube.errors import JsonObj
from flux_azdo.sandbox.kube.managed import now_text
from flux_azdo.sandbox.kube.resources import Registry
from flux_azdo.sandbox.kube.rest import Api

_PARSED = "All legacy kube types successfully parsed"
_CONTENT_DELETED = "All content successfully deleted, may be waiting on finalization"
_CONTENT_REMOVED = "All content successfully removed"


def report(api: Api, registry: Registry, namespace: JsonObj) -> bool:
    """Write what `namespace` holds into its Terminating status, deleting nothing; True when that changed it."""
    name = namespace["metadata"]["name"]
    remaining, finalizers = _survey(api, registry, name)
    current = api.store.get(NAMESPACE_KEY, "", name)
    return current is not None and _write_status(api, current, remaining, finalizers)


def terminate(api: Api, registry: Registry, namespace: JsonObj) -> bool:
    """One step of terminating `namespace`; True when it changed something."""
    store = api.store
    name = namespace["metadata"]["name"]
    progress = False
    for resource in registry:
        if not resource.namespaced or resource.virtual:
            continue
        for obj in store.objects(resource.key, name):
            if not obj["metadata"].get("deletionTimestamp"):
                api.delete_object(resource, obj, options={"propagationPolicy": "Background"})
                progress = True
    remaining, finalizers = _survey(api, registry, name)
    current_ns = store.get(NAMESPACE_KEY, "", name)
    if current_ns is None:
        return progress
    if remaining:
        _write_status(api, current_ns, remaining, finalizers)
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


def _survey(api: Api, registry: Registry, name: str) -> tuple[dict[str, int], dict[str, int]]:
    """How many objects of each resource the namespace still holds, and how many wait for each finalizer."""
    remaining: dict[str, int] = {}
    finalizers: dict[str, int] = {}
    for resource in registry:
        if not resource.namespaced or resource.virtual:
            continue
        for obj in api.store.objects(resource.key, name):
            label = f"{resource.plural}.{resource.group}" if resource.group else resource.plural
            remaining[label] = remaining.get(label, 0) + 1
            for finalizer in obj["metadata"].get("finalizers") or []:
                finalizers[finalizer] = finalizers.get(finalizer, 0) + 1
    return remaining, finalizers


def _write_status(api: Api, namespace: JsonObj, remaining: dict[str, int], finalizers: dict[str, int]) -> bool:
    status = {
        **(namespace.get("status") or {}),
        "phase": "Terminating",
        "conditions": _conditions(namespace, remaining, finalizers),
    }
    if status == namespace.get("status"):
        return False
    api.store.put(NAMESPACE_KEY, {**namespace, "status": status}, namespace)
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
    ]
    if content:
        rows.append(
            ("NamespaceContentRemaining", "True", "SomeResourcesRemain", f"Some resources are remaining: {content}")
        )
    else:
        rows.append(("NamespaceContentRemaining", "False", "ContentRemoved", _CONTENT_REMOVED))
    if pending:
        message = f"Some content in the namespace has finalizers remaining: {pending}"
        rows.append(("NamespaceFinalizersRemaining", "True", "SomeFinalizersRemain", message))
    else:
        message = "All content-preserving finalizers finished"
        rows.append(("NamespaceFinalizersRemaining", "False", "ContentHasNoFinalizers", message))
    return [condition(*row) for row in rows]
