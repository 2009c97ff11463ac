"""Deleting one object as the apiserver's registry does.

An object without finalizers goes at once (DELETED event). One with finalizers, and every namespace and CRD
(their controllers must clean up first), only gets `deletionTimestamp` and stays until the last finalizer is
removed; `propagationPolicy: Foreground|Orphan` adds the garbage collector's finalizer. Deleting a namespace
that is already terminating is a 409 with the namespace controller's text.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from flux_azdo.sandbox.kube import crds, errors, managed
from flux_azdo.sandbox.kube.calls import CRD_KEY, NAMESPACE_KEY
from flux_azdo.sandbox.kube.errors import JsonObj
from flux_azdo.sandbox.kube.resources import GENERATION_NONE, ResourceType
from flux_azdo.sandbox.kube.store import Store

_NAMESPACE_BUSY = (
    "The system is ensuring all content is removed from this namespace.  Upon completion, this namespace will "
    "automatically be purged by the system."
)


def check_preconditions(resource: ResourceType, old: JsonObj, options: JsonObj) -> None:
    preconditions = options.get("preconditions") or {}
    metadata = old["metadata"]
    uid, version = preconditions.get("uid"), preconditions.get("resourceVersion")
    if uid and uid != metadata.get("uid"):
        cause = f"Precondition failed: UID in precondition: {uid}, UID in object meta: {metadata.get('uid')}"
        raise errors.conflict(resource.group, resource.plural, metadata["name"], cause)
    if version and version != metadata.get("resourceVersion"):
        cause = (
            f"Precondition failed: ResourceVersion in precondition: {version}, "
            f"ResourceVersion in object meta: {metadata.get('resourceVersion')}"
        )
        raise errors.conflict(resource.group, resource.plural, metadata["name"], cause)


def delete_object(
    store: Store,
    on_change: Callable[[ResourceType, JsonObj | None], None],
    resource: ResourceType,
    old: JsonObj,
    options: JsonObj,
) -> tuple[JsonObj, bool]:
    """(the object now or as it was last, whether it still exists); the caller holds the store lock."""
    dry_run = options.get("dryRun") == ["All"]
    metadata = old["metadata"]
    if metadata.get("deletionTimestamp"):
        if resource.key == NAMESPACE_KEY:
            raise errors.conflict("", "namespaces", metadata["name"], _NAMESPACE_BUSY)
        return old, True
    finalizers = list(metadata.get("finalizers") or [])
    policy = options.get("propagationPolicy")
    if policy == "Foreground" and "foregroundDeletion" not in finalizers:
        finalizers.append("foregroundDeletion")
    elif policy == "Orphan" and "orphan" not in finalizers:
        finalizers.append("orphan")
    if resource.key == CRD_KEY and crds.CLEANUP_FINALIZER not in finalizers:
        finalizers.append(crds.CLEANUP_FINALIZER)
    if finalizers or resource.key == NAMESPACE_KEY:
        marked = _mark(resource, old, finalizers)
        if dry_run:
            return marked, True
        stored = store.put(resource.key, marked, old)
        on_change(resource, stored)
        return stored, True
    if dry_run:
        return old, False
    gone = store.remove(resource.key, metadata.get("namespace", "") or "", metadata["name"])
    on_change(resource, None)
    return gone or old, False


def _mark(resource: ResourceType, old: JsonObj, finalizers: list[str]) -> JsonObj:
    new = copy.deepcopy(old)
    metadata = new["metadata"]
    metadata["deletionTimestamp"] = managed.now_text()
    metadata["deletionGracePeriodSeconds"] = 0
    if finalizers:
        metadata["finalizers"] = finalizers
    if resource.generation != GENERATION_NONE:
        metadata["generation"] = int(metadata.get("generation", 1) or 1) + 1
    if resource.key == NAMESPACE_KEY:
        new.setdefault("status", {})["phase"] = "Terminating"
    if resource.key == CRD_KEY:
        new["status"] = crds.terminating_status(new)
    return new
