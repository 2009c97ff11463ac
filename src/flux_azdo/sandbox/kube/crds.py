"""CustomResourceDefinitions: checks, the status the apiextensions controllers write, and the resource they serve.

As in a real cluster, a new CRD is stored with only `status.storedVersions` (its storage version); a moment later
the naming and establishing controllers (here `LifecycleController`) accept its names, mark it `NamesAccepted`
and `Established`, and only then is its kind served, so clients must wait for `Established` (`kubectl wait
--for=condition=established`) before creating objects of it. Every write of the spec adds the storage version
to `storedVersions`; an update whose `spec.versions` drops a version still listed there is refused (422), and
only a write to `/status` (what `flux migrate` does after rewriting the objects) may trim that list.
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


def initial_status(crd: dict[str, Any]) -> dict[str, Any]:
    """The status a CRD is created with: nothing accepted yet, its storage version stored."""
    return {"acceptedNames": {"plural": "", "kind": ""}, "storedVersions": [storage_version(crd)]}


def storage_version(crd: dict[str, Any]) -> str:
    return str(next(v["name"] for v in crd["spec"]["versions"] if v.get("storage")))


def with_storage_version(crd: dict[str, Any]) -> None:
    """A spec write records the (possibly new) storage version in `status.storedVersions`, in place."""
    status = crd.setdefault("status", {})
    stored = list(status.get("storedVersions") or [])
    storage = storage_version(crd)
    if storage not in stored:
        stored.append(storage)
    status["storedVersions"] = stored


def check_stored_versions(crd: dict[str, Any]) -> list[FieldError]:
    """ValidateCustomResourceDefinitionStoredVersions: every stored version must still be in spec.versions."""
    stored = list((crd.get("status") or {}).get("storedVersions") or [])
    if not stored:
        return [invalid_value("status.storedVersions", "[]", "must have at least one stored version")]
    declared = {str(v.get("name")) for v in crd["spec"]["versions"] if isinstance(v, dict)}
    return [
        invalid_value(f"status.storedVersions[{index}]", version, "must appear in spec.versions")
        for index, version in enumerate(stored)
        if version not in declared
    ]


def _wanted_names(crd: dict[str, Any]) -> dict[str, Any]:
    names = dict(crd["spec"]["names"])
    accepted: dict[str, Any] = {
        "plural": names["plural"],
        "singular": names.get("singular") or str(names["kind"]).lower(),
        "kind": names["kind"],
        "listKind": names.get("listKind") or f"{names['kind']}List",
    }
    for optional in ("shortNames", "categories"):
        if names.get(optional):
            accepted[optional] = list(names[optional])
    return accepted


def _true(crd: dict[str, Any], kind: str) -> bool:
    conditions = (crd.get("status") or {}).get("conditions") or []
    return any(isinstance(c, dict) and c.get("type") == kind and c.get("status") == "True" for c in conditions)


def is_established(crd: dict[str, Any]) -> bool:
    return _true(crd, "Established")


def settled(crd: dict[str, Any]) -> bool:
    """Whether the naming and establishing controllers have nothing left to do for this CRD."""
    accepted = (crd.get("status") or {}).get("acceptedNames")
    return _true(crd, "NamesAccepted") and is_established(crd) and accepted == _wanted_names(crd)


def established_status(crd: dict[str, Any]) -> dict[str, Any]:
    """The status after the naming and establishing controllers ran: names accepted, kind served."""
    status = crd.get("status") or {}
    previous = list(status.get("conditions") or [])
    conditions = [
        _condition("NamesAccepted", "True", "NoConflicts", "no conflicts found", previous),
        _condition("Established", "True", "InitialNamesAccepted", "the initial names have been accepted", previous),
    ]
    conditions += [c for c in previous if isinstance(c, dict) and c.get("type") not in ("NamesAccepted", "Established")]
    stored = list(status.get("storedVersions") or [storage_version(crd)])
    return {"conditions": conditions, "acceptedNames": _wanted_names(crd), "storedVersions": stored}


def terminating_status(crd: dict[str, Any]) -> dict[str, Any]:
    """The status once deleted: the finalizer controller adds `Terminating` while it removes the objects."""
    status = dict(crd.get("status") or {})
    previous = list(status.get("conditions") or [])
    terminating = _condition(
        "Terminating", "True", "InstanceDeletionInProgress", "CustomResource deletion is in progress", previous
    )
    status["conditions"] = [c for c in previous if isinstance(c, dict) and c.get("type") != "Terminating"]
    status["conditions"].append(terminating)
    return status


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
