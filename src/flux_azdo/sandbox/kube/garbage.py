"""Deletions that follow from other deletions: a CRD's objects, and dependents of deleted owners.

- A deleted CRD (finalizer `customresourcecleanup.apiextensions.k8s.io`) deletes all its objects, waits for their
  finalizers, then goes, and its kind is no longer served.
- The garbage collector's `foregroundDeletion` (delete dependents first) and `orphan` (detach them) finalizers.
- Dependents whose owners (by `ownerReferences` uid) are all gone are deleted, as in background propagation.
"""

from __future__ import annotations

import copy

from flux_azdo.sandbox.kube import crds
from flux_azdo.sandbox.kube.calls import CRD_KEY
from flux_azdo.sandbox.kube.errors import JsonObj
from flux_azdo.sandbox.kube.resources import Registry, ResourceType
from flux_azdo.sandbox.kube.rest import Api


def cleanup_crd(api: Api, registry: Registry, crd: JsonObj) -> bool:
    spec = crd.get("spec") or {}
    resource = registry.get(str(spec.get("group", "")), str((spec.get("names") or {}).get("plural", "")))
    progress = False
    if resource is not None:
        left = False
        for obj in api.store.objects(resource.key):
            if not obj["metadata"].get("deletionTimestamp"):
                _, remains = api.delete_object(resource, obj)
                progress = True
                left |= remains
            else:
                left = True
        if left:
            return progress
    finalizers = [f for f in crd["metadata"].get("finalizers") or [] if f != crds.CLEANUP_FINALIZER]
    if finalizers == (crd["metadata"].get("finalizers") or []):
        return progress
    if finalizers:
        updated = copy.deepcopy(crd)
        updated["metadata"]["finalizers"] = finalizers
        api.store.put(CRD_KEY, updated, crd)
    else:
        api.store.remove(CRD_KEY, "", crd["metadata"]["name"])
    crd_type = registry.get(*CRD_KEY)
    if crd_type is not None:
        api.on_change(crd_type, None)
    return True


def _all_objects(api: Api, registry: Registry) -> list[tuple[ResourceType, JsonObj]]:
    return [(resource, obj) for resource in registry if not resource.virtual for obj in api.store.objects(resource.key)]


def finalize_owners(api: Api, registry: Registry) -> bool:
    progress = False
    objects = None
    for resource, obj in _all_objects(api, registry):
        metadata = obj["metadata"]
        pending = set(metadata.get("finalizers") or []) & {"foregroundDeletion", "orphan"}
        if not metadata.get("deletionTimestamp") or not pending:
            continue
        objects = objects if objects is not None else _all_objects(api, registry)
        uid = metadata.get("uid")
        dependents = [
            (dep_type, dep)
            for dep_type, dep in objects
            if any(
                ref.get("uid") == uid for ref in dep["metadata"].get("ownerReferences") or [] if isinstance(ref, dict)
            )
        ]
        if "orphan" in pending:
            for dep_type, dep in dependents:
                refs = [r for r in dep["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
                updated = copy.deepcopy(dep)
                if refs:
                    updated["metadata"]["ownerReferences"] = refs
                else:
                    updated["metadata"].pop("ownerReferences", None)
                api.store.put(dep_type.key, updated, dep)
            dependents = []
        else:
            for dep_type, dep in dependents:
                if not dep["metadata"].get("deletionTimestamp"):
                    api.delete_object(dep_type, dep, options={"propagationPolicy": "Foreground"})
            dependents = [
                (t, d)
                for t, d in dependents
                if api.store.get(t.key, d["metadata"].get("namespace", ""), d["metadata"]["name"])
            ]
        if dependents:
            continue
        left = [f for f in metadata.get("finalizers") or [] if f not in pending]
        current = api.store.get(resource.key, metadata.get("namespace", ""), metadata["name"])
        if current is None:
            continue
        if left:
            updated = copy.deepcopy(current)
            updated["metadata"]["finalizers"] = left
            api.store.put(resource.key, updated, current)
        else:
            api.store.remove(resource.key, metadata.get("namespace", ""), metadata["name"])
        progress = True
    return progress


def collect_orphans(api: Api, registry: Registry) -> bool:
    """Delete dependents whose owners are all gone (owners of kinds the server does not serve are kept)."""
    objects = _all_objects(api, registry)
    uids = {obj["metadata"].get("uid") for _, obj in objects}
    progress = False
    for resource, obj in objects:
        refs = [ref for ref in obj["metadata"].get("ownerReferences") or [] if isinstance(ref, dict)]
        if not refs or obj["metadata"].get("deletionTimestamp"):
            continue
        if not all(_serves(registry, ref) for ref in refs):
            continue
        if all(ref.get("uid") not in uids for ref in refs):
            api.delete_object(resource, obj)
            progress = True
    return progress


def _serves(registry: Registry, ref: JsonObj) -> bool:
    api_version = str(ref.get("apiVersion", ""))
    group = api_version.rpartition("/")[0] if "/" in api_version else ""
    return registry.by_kind(group, str(ref.get("kind", ""))) is not None
