"""CustomResourceDefinitions: checks, the status the apiextensions controllers write, and the resource they serve.

A real cluster accepts the names, marks the CRD `NamesAccepted` and `Established` and starts serving the kind a
moment later; here that happens in the same write, so `kubectl wait --for=condition=established` returns at once.
"""

from __future__ import annotations

from typing import Any

from flux_azdo.sandbox.kube.errors import FieldError, invalid_value, required
from flux_azdo.sandbox.kube.managed import now_text
from flux_azdo.sandbox.kube.resources import (
    ALL_VERBS,
    GENERATION_CONTENT,
    ResourceType,
    version_priority,
)
from flux_azdo.sandbox.kube.typeinfo import from_openapi, with_metadata

CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"


def check(crd: dict[str, Any]) -> list[FieldError]:
    errors: list[FieldError] = []
    spec: dict[str, Any] = crd["spec"] if isinstance(crd.get("spec"), dict) else {}
    names: dict[str, Any] = spec["names"] if isinstance(spec.get("names"), dict) else {}
    group = spec.get("group")
    if not group:
        errors.append(required("spec.group"))
    for field in ("plural", "kind"):
        if not names.get(field):
            errors.append(required(f"spec.names.{field}"))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        errors.append(
            required("spec.scope")
            if not spec.get("scope")
            else invalid_value("spec.scope", spec["scope"], "must be Namespaced or Cluster")
        )
    name = (crd.get("metadata") or {}).get("name", "")
    if group and names.get("plural") and name != f"{names['plural']}.{group}":
        errors.append(invalid_value("metadata.name", name, 'must be spec.names.plural+"."+spec.group'))
    versions = spec.get("versions") or []
    if not versions:
        errors.append(required("spec.versions"))
    storage = [v for v in versions if isinstance(v, dict) and v.get("storage")]
    if versions and len(storage) != 1:
        errors.append(
            invalid_value("spec.versions", len(storage), "must have exactly one version marked as storage version")
        )
    for index, version in enumerate(versions):
        if isinstance(version, dict) and not isinstance((version.get("schema") or {}).get("openAPIV3Schema"), dict):
            errors.append(required(f"spec.versions[{index}].schema.openAPIV3Schema", "schemas are required"))
    return errors


def _condition(kind: str, status: str, reason: str, message: str, previous: list[Any]) -> dict[str, Any]:
    earlier = next((c for c in previous if isinstance(c, dict) and c.get("type") == kind), None)
    unchanged = earlier is not None and earlier.get("status") == status
    return {
        "type": kind,
        "status": status,
        "lastTransitionTime": earlier.get("lastTransitionTime") if unchanged and earlier else now_text(),
        "reason": reason,
        "message": message,
    }


def established_status(crd: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    spec = crd["spec"]
    names = dict(spec["names"])
    accepted = {
        "plural": names["plural"],
        "singular": names.get("singular") or str(names["kind"]).lower(),
        "kind": names["kind"],
        "listKind": names.get("listKind") or f"{names['kind']}List",
    }
    for optional in ("shortNames", "categories"):
        if names.get(optional):
            accepted[optional] = list(names[optional])
    previous = ((old or {}).get("status") or {}).get("conditions") or []
    stored = list(((old or {}).get("status") or {}).get("storedVersions") or [])
    storage = next(v["name"] for v in spec["versions"] if v.get("storage"))
    if storage not in stored:
        stored.append(storage)
    conditions = [
        _condition("NamesAccepted", "True", "NoConflicts", "no conflicts found", previous),
        _condition("Established", "True", "InitialNamesAccepted", "the initial names have been accepted", previous),
    ]
    if (crd.get("metadata") or {}).get("deletionTimestamp"):
        conditions.append(
            _condition(
                "Terminating", "True", "InstanceDeletionInProgress", "CustomResource deletion is in progress", previous
            )
        )
    return {"conditions": conditions, "acceptedNames": accepted, "storedVersions": stored}


def resource_type(crd: dict[str, Any]) -> ResourceType:
    spec = crd["spec"]
    names = spec["names"]
    served = [v for v in spec["versions"] if v.get("served")]
    storage = next(v["name"] for v in spec["versions"] if v.get("storage"))
    subresources: set[str] = set()
    schemas: dict[str, dict[str, Any]] = {}
    structures = {}
    columns: dict[str, list[dict[str, Any]]] = {}
    for version in served:
        subresources.update((version.get("subresources") or {}).keys())
        schema = (version.get("schema") or {}).get("openAPIV3Schema") or {}
        schemas[version["name"]] = schema
        structures[version["name"]] = with_metadata(from_openapi(schema))
        columns[version["name"]] = list(version.get("additionalPrinterColumns") or [])
    versions = tuple(sorted((v["name"] for v in served), key=version_priority))
    return ResourceType(
        group=spec["group"],
        versions=versions,
        storage_version=storage,
        plural=names["plural"],
        singular=names.get("singular") or str(names["kind"]).lower(),
        kind=names["kind"],
        namespaced=spec.get("scope") == "Namespaced",
        verbs=ALL_VERBS,
        short_names=tuple(names.get("shortNames") or ()),
        categories=tuple(names.get("categories") or ()),
        subresources=tuple(sorted(subresources & {"status", "scale"})),
        structure=structures.get(storage) or with_metadata(from_openapi({})),
        version_structures=structures,
        schemas=schemas,
        printer_columns=columns,
        custom=True,
        generation=GENERATION_CONTENT,
        returns_object_on_delete=True,
    )
