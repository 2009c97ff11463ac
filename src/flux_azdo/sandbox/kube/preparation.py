"""The object a write stores, built from what the client sent and what is live.

In the apiserver's order: keep what only the server sets (uid, creationTimestamp, resourceVersion, generation,
deletion marks, managedFields), keep status on the main endpoint and everything but status on /status, refuse
new finalizers during deletion, default, prune and validate custom objects against their schema (unknown fields
warn, or fail under fieldValidation=Strict) and their CEL rules, validate built-in kinds, keep a CRD's
`storedVersions` honest, and move `generation`.
"""

from __future__ import annotations

import copy
import json

from flux_azdo.sandbox.kube import cel, crds, errors, managed, schema, validation
from flux_azdo.sandbox.kube.calls import CRD_KEY, Call
from flux_azdo.sandbox.kube.equality import same_value
from flux_azdo.sandbox.kube.errors import FieldError, JsonObj
from flux_azdo.sandbox.kube.resources import GENERATION_NONE, GENERATION_SPEC, ResourceType

SERVER_METADATA = ("uid", "creationTimestamp", "generation", "deletionTimestamp", "deletionGracePeriodSeconds")


def prepare(call: Call, old: JsonObj | None, candidate: JsonObj) -> JsonObj:
    """The object to store for `candidate` replacing `old` (None on create); raises the apiserver's errors."""
    resource = call.resource
    new = copy.deepcopy(candidate)
    new["apiVersion"], new["kind"] = resource.api_version(call.version), resource.kind
    if old is not None:
        new = _keep_server_fields(call, old, new)
    else:
        if call.scope == managed.SCOPE_MAIN:
            new.pop("status", None)
        for name in (*SERVER_METADATA, "resourceVersion", "managedFields"):
            new["metadata"].pop(name, None)
    metadata = new["metadata"]
    if metadata.get("finalizers") == []:
        metadata.pop("finalizers")
    if resource.defaulter is not None:
        resource.defaulter(new, old)
    problems: list[FieldError] = []
    name = str(metadata.get("name", ""))
    if old is None:
        problems += validation.validate_name(resource.kind, name)
    problems += validation.validate_metadata(metadata)
    if resource.custom:
        version_schema = resource.schemas.get(call.version) or resource.schemas.get(resource.storage_version) or {}
        _unknown_fields(call, schema.prune(new, version_schema))
        schema.apply_defaults(new, version_schema)
        found = schema.validate(new, version_schema)
        if any(problem.type in cel.BLOCKING_TYPES for problem in found):
            found.append(cel.BLOCKED)
        else:
            found += cel.validate(new, version_schema, old)
        problems += found
    else:
        problems += validation.validate_kind(resource.kind, new, old)
    if resource.key == CRD_KEY:
        problems += _crd_status(call, old, new)
    if problems:
        raise errors.invalid(resource.group, resource.kind, name, problems)
    move_generation(resource, old, new)
    return new


def _crd_status(call: Call, old: JsonObj | None, new: JsonObj) -> list[FieldError]:
    """A new CRD starts with its storage version stored; a spec write adds the storage version and may not drop a
    stored one from spec.versions. Writes to /status are taken as sent (that is how stored versions are trimmed)."""
    found = crds.check(new)
    if found or call.scope == managed.SCOPE_STATUS:
        return found
    if old is None:
        new["status"] = crds.initial_status(new)
        return []
    crds.with_storage_version(new)
    return crds.check_stored_versions(new)


def _keep_server_fields(call: Call, old: JsonObj, new: JsonObj) -> JsonObj:
    if call.scope == managed.SCOPE_STATUS:
        status = new.get("status")
        new = copy.deepcopy(old)
        if status is None:
            new.pop("status", None)
        else:
            new["status"] = status
    elif call.scope == managed.SCOPE_MAIN:
        if "status" in old:
            new["status"] = copy.deepcopy(old["status"])
        else:
            new.pop("status", None)
    metadata = new.setdefault("metadata", {})
    old_metadata = old["metadata"]
    for name in (*SERVER_METADATA, "resourceVersion", "name", "namespace"):
        if name in old_metadata:
            metadata[name] = old_metadata[name]
        else:
            metadata.pop(name, None)
    metadata["managedFields"] = old_metadata.get("managedFields", [])
    if old_metadata.get("deletionTimestamp"):
        added = set(metadata.get("finalizers") or []) - set(old_metadata.get("finalizers") or [])
        if added:
            detail = "no new finalizers can be added if the object is being deleted, found new finalizers "
            problem = errors.forbidden_field("metadata.finalizers", detail + json.dumps(sorted(added)))
            raise errors.invalid(call.resource.group, call.resource.kind, old_metadata["name"], [problem])
    return new


def _unknown_fields(call: Call, dropped: list[str]) -> None:
    """fieldValidation: Strict fails (400, the decoder's text), Warn (the default) warns, Ignore ignores."""
    if not dropped:
        return
    directive = call.query.get("fieldValidation") or "Warn"
    texts = [f'unknown field "{path}"' for path in dropped]
    if directive == "Strict":
        kind, version = call.resource.kind, call.version
        prefix = f'{kind} in version "{version}" cannot be handled as a {kind}: strict decoding error: '
        raise errors.bad_request(prefix + ", ".join(texts))
    if directive == "Warn":
        call.warnings.extend(texts)


def move_generation(resource: ResourceType, old: JsonObj | None, new: JsonObj) -> None:
    """1 on create; +1 when the spec changes (built-ins) or anything but metadata and status (custom kinds)."""
    if resource.generation == GENERATION_NONE:
        return
    metadata = new["metadata"]
    if old is None:
        metadata["generation"] = 1
        return
    previous = int(old["metadata"].get("generation", 1) or 1)
    if resource.generation == GENERATION_SPEC:
        changed = not same_value(old.get("spec"), new.get("spec"))
    else:
        skip = ("apiVersion", "metadata", "status")
        before = {k: v for k, v in old.items() if k not in skip}
        changed = not same_value(before, {k: v for k, v in new.items() if k not in skip})
    metadata["generation"] = previous + 1 if changed else previous
