"""The resource verbs: get, list, create, replace, patch (four formats), delete and deletecollection.

Every write runs the same pipeline: decode and check the body, fetch the live object, patch or merge it, prepare
the object to store (`preparation`), record who owns which field (`managed`), then commit: store it under a new
resourceVersion, unless nothing changed (then, as in a real cluster, the resourceVersion stays), the object was
only waiting for its last finalizer (then it goes), or `dryRun=All` asked for no write at all.
"""

from __future__ import annotations

import base64
import copy
import json
import secrets
import uuid
from collections.abc import Callable

from flux_azdo.sandbox.kube import access, deletion, errors, managed
from flux_azdo.sandbox.kube.calls import (
    APPLY_PATCH,
    CRD_KEY,
    JSON_PATCH,
    MERGE_PATCH,
    NAMESPACE_KEY,
    STRATEGIC_PATCH,
    Call,
    Reply,
)
from flux_azdo.sandbox.kube.decoding import (
    check_apply_fits_schema,
    check_body_types,
    check_identity,
    check_patch_options,
    check_patched_types,
    check_type,
    decode_body,
    decode_patch,
    delete_options,
)
from flux_azdo.sandbox.kube.equality import same_value
from flux_azdo.sandbox.kube.errors import JsonObj
from flux_azdo.sandbox.kube.patches import json_patch, merge_patch, strategic_merge_patch
from flux_azdo.sandbox.kube.preparation import prepare
from flux_azdo.sandbox.kube.rendering import render, render_list, to_version
from flux_azdo.sandbox.kube.resources import Registry, ResourceType
from flux_azdo.sandbox.kube.scale import replicas_of, scale_of
from flux_azdo.sandbox.kube.selectors import (
    fields_match,
    labels_match,
    parse_field_selector,
    parse_int_parameter,
    parse_label_selector,
)
from flux_azdo.sandbox.kube.store import Store

_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_UNSET_VERSION = errors.FieldError(
    "FieldValueInvalid", "metadata.resourceVersion", "Invalid value: 0x0: must be specified for an update"
)

#: The namespace lifecycle admission plugin refuses to delete these.
IMMORTAL_NAMESPACES = ("default", "kube-system", "kube-public")

__all__ = ["CRD_KEY", "NAMESPACE_KEY", "Api", "Call", "Reply"]


class Api:
    """The verbs over one store and registry; `on_change` hears of every committed write (CRDs, controllers)."""

    def __init__(
        self, store: Store, registry: Registry, on_change: Callable[[ResourceType, JsonObj | None], None]
    ) -> None:
        self.store = store
        self.registry = registry
        self.on_change = on_change

    # -------------------------------------------------------------------------------------------------- reading

    def _live(self, call: Call) -> JsonObj:
        old = self.store.get(call.resource.key, call.namespace, call.name)
        if old is None:
            raise errors.not_found(call.resource.group, call.resource.plural, call.name)
        return old

    def get(self, call: Call) -> Reply:
        obj = self._live(call)
        if call.subresource == "scale":
            return Reply(200, scale_of(obj))
        return render(call, obj)

    def select(self, call: Call) -> tuple[list[JsonObj], int]:
        """The objects the call's namespace and selectors pick, and the revision they were read at."""
        labels = parse_label_selector(call.query.get("labelSelector"))
        fields = parse_field_selector(call.query.get("fieldSelector"), call.resource.kind)
        with self.store.lock:
            revision = self.store.revision
            items = self.store.objects(call.resource.key, call.namespace if call.namespace else None)
        chosen = [item for item in items if labels_match(labels, item) and fields_match(fields, item)]
        return chosen, revision

    def list_objects(self, call: Call) -> Reply:
        items, revision = self.select(call)
        list_meta: JsonObj = {"resourceVersion": str(revision)}
        token = call.query.get("continue")
        if token:
            try:
                state = json.loads(base64.urlsafe_b64decode(token.encode()).decode())
                start = (str(state["namespace"]), str(state["name"]))
                list_meta["resourceVersion"] = str(state["rv"])
            except (ValueError, KeyError, TypeError) as error:
                raise errors.bad_request(f"continue key is not valid: {error}") from error
            items = [i for i in items if (i["metadata"].get("namespace", ""), i["metadata"]["name"]) > start]
        limit = parse_int_parameter(call.query.get("limit")) or 0
        if 0 < limit < len(items):
            last = items[limit - 1]["metadata"]
            state = {"rv": int(list_meta["resourceVersion"]), "namespace": last.get("namespace", "")}
            state["name"] = last["name"]
            list_meta["continue"] = base64.urlsafe_b64encode(json.dumps(state).encode()).decode()
            list_meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        return render_list(call, items, list_meta)

    # ------------------------------------------------------------------------------------------------- creating

    def create(self, call: Call) -> Reply:
        if call.name or call.subresource:
            raise errors.method_not_allowed()
        obj = decode_body(call)
        check_body_types(call, obj)
        check_type(call, obj)
        check_identity(call, obj)
        if obj["metadata"].get("resourceVersion"):
            raise errors.internal("resourceVersion should not be set on objects to be created")
        with self.store.lock:
            return self._create_object(call, obj, None)

    def _namespace_open(self, resource: ResourceType, namespace: str, name: str) -> None:
        if not resource.namespaced:
            return
        found = self.store.get(NAMESPACE_KEY, "", namespace)
        if found is None:
            raise errors.not_found("", "namespaces", namespace)
        if found["metadata"].get("deletionTimestamp"):
            reason = f"unable to create new content in namespace {namespace} because it is being terminated"
            error = errors.forbidden(resource.group, resource.plural, name, reason)
            cause = {"message": f"namespace {namespace} is being terminated", "field": "metadata.namespace"}
            assert error.details is not None
            error.details["causes"] = [{"reason": "NamespaceTerminating", **cause}]
            raise error

    def _create_object(self, call: Call, obj: JsonObj, managers: list[managed.Manager] | None) -> Reply:
        resource = call.resource
        metadata = obj["metadata"]
        if not metadata.get("name"):
            prefix = metadata.get("generateName")
            if not prefix:
                problem = errors.required("metadata.name", "name or generateName is required")
                raise errors.invalid(resource.group, resource.kind, "", [problem])
            metadata["name"] = prefix + "".join(secrets.choice(_GENERATE_ALPHABET) for _ in range(5))
        name = metadata["name"]
        self._namespace_open(resource, call.namespace, name)
        if self.store.get(resource.key, call.namespace, name) is not None:
            raise errors.already_exists(resource.group, resource.plural, name)
        new = prepare(call, None, obj)
        new["metadata"]["uid"] = str(uuid.uuid4())
        new["metadata"]["creationTimestamp"] = managed.now_text()
        if managers is None:
            structure = resource.structure_for(call.version)
            api_version = resource.api_version(call.version)
            managers = managed.update(None, new, structure, managed.Writer.of(call.manager(), api_version, call.scope))
        new["metadata"]["managedFields"] = managed.encode(managers)
        if not new["metadata"]["managedFields"]:
            del new["metadata"]["managedFields"]
        if call.dry_run:
            return render(call, new, 201)
        stored = self.store.put(resource.key, to_version(resource, new, resource.storage_version), None)
        self.on_change(resource, stored)
        return render(call, stored, 201)

    # ------------------------------------------------------------------------------------------------- updating

    def replace(self, call: Call) -> Reply:
        resource = call.resource
        obj = decode_body(call)
        if call.subresource == "scale":
            with self.store.lock:
                return self._scale_to(call, self._live(call), replicas_of(obj, call.name))
        check_body_types(call, obj)
        check_type(call, obj)
        check_identity(call, obj)
        with self.store.lock:
            old = self._live(call)
            _check_uid(resource, old, obj)
            given = obj["metadata"].get("resourceVersion")
            if given and given != old["metadata"]["resourceVersion"]:
                raise errors.modified_conflict(resource.group, resource.plural, call.name)
            if not given and resource.custom:
                raise errors.invalid(resource.group, resource.kind, call.name, [_UNSET_VERSION])
            if call.subresource == "finalize":
                return self._commit(call, old, _finalized(old, obj))
            return self._write(call, old, obj)

    def patch(self, call: Call) -> Reply:
        resource = call.resource
        kinds = [JSON_PATCH, MERGE_PATCH] + ([] if resource.custom else [STRATEGIC_PATCH]) + [APPLY_PATCH]
        if call.content_type not in kinds:
            raise errors.unsupported_media_type(kinds)
        check_patch_options(call, call.content_type == APPLY_PATCH)
        if call.content_type == APPLY_PATCH:
            return self._apply(call)
        document = decode_patch(call)
        with self.store.lock:
            old = self._live(call)
            if call.subresource == "scale":
                scale = scale_of(old)
                patch = json_patch if call.content_type == JSON_PATCH else merge_patch
                return self._scale_to(call, old, replicas_of(patch(scale, document), call.name))
            current = to_version(resource, old, call.version)
            if call.content_type == JSON_PATCH:
                patched = json_patch(current, document)
            elif call.content_type == MERGE_PATCH:
                if not isinstance(document, dict):
                    raise errors.bad_request("json: cannot unmarshal a merge patch that is not a JSON object")
                patched = merge_patch(current, document)
            else:
                patched = strategic_merge_patch(current, document, resource.structure_for(call.version))
            if not isinstance(patched, dict):
                raise errors.bad_request("the patch did not produce an object")
            check_patched_types(call, patched, document)
            check_type(call, patched)
            check_identity(call, patched)
            _check_uid(resource, old, patched)
            given = patched["metadata"].get("resourceVersion")
            if given and given != old["metadata"]["resourceVersion"]:
                raise errors.modified_conflict(resource.group, resource.plural, call.name)
            return self._write(call, old, patched)

    def _apply(self, call: Call) -> Reply:
        resource = call.resource
        config = decode_body(call, apply=True)
        if not config.get("apiVersion") or not config.get("kind"):
            raise errors.bad_request("invalid object type: apiVersion and kind must be set in an apply configuration")
        check_type(call, config)
        check_identity(call, config)
        if config["metadata"].get("managedFields") is not None:
            raise errors.bad_request("metadata.managedFields must be nil")
        check_apply_fits_schema(call, config)
        manager, api_version = call.query["fieldManager"], resource.api_version(call.version)
        force = call.query.get("force", "").lower() == "true"
        structure = resource.structure_for(call.version)

        def merged_with(live: JsonObj | None) -> tuple[JsonObj, list[managed.Manager]]:
            writer = managed.Writer.of(manager, api_version, call.scope)
            return managed.apply(live, config, structure, writer, force=force, typed=not resource.custom)

        with self.store.lock:
            old = self.store.get(resource.key, call.namespace, call.name)
            if old is None:
                if call.subresource:
                    raise errors.not_found(resource.group, resource.plural, call.name)
                return self._create_object(call, *merged_with(None))
            given = config["metadata"].get("resourceVersion")
            if given and given != old["metadata"]["resourceVersion"]:
                raise errors.modified_conflict(resource.group, resource.plural, call.name)
            old_shown = to_version(resource, old, call.version)
            merged, managers = merged_with(old_shown)
            new = prepare(call, old_shown, merged)
            new["metadata"]["managedFields"] = managed.encode(managers)
            return self._commit(call, old, new)

    def _write(self, call: Call, old: JsonObj, candidate: JsonObj, subresource: str | None = None) -> Reply:
        """A non-apply write: the writer takes every field it changed (recorded under `subresource` if given)."""
        resource = call.resource
        old_shown = to_version(resource, old, call.version)
        new = prepare(call, old_shown, candidate)
        structure = resource.structure_for(call.version)
        api_version = resource.api_version(call.version)
        writer = managed.Writer.of(call.manager(), api_version, call.scope, subresource)
        managers = managed.update(old_shown, new, structure, writer)
        new["metadata"]["managedFields"] = managed.encode(managers)
        return self._commit(call, old, new)

    def _commit(self, call: Call, old: JsonObj, new: JsonObj) -> Reply:
        resource = call.resource
        if not new["metadata"].get("managedFields"):
            new["metadata"].pop("managedFields", None)
        stored_form = to_version(resource, new, resource.storage_version)
        metadata = stored_form["metadata"]
        if metadata.get("deletionTimestamp") and not metadata.get("finalizers") and not _held(resource, stored_form):
            if call.dry_run:
                return render(call, stored_form)
            gone = self.store.remove(resource.key, metadata.get("namespace", ""), metadata["name"])
            self.on_change(resource, None)
            return render(call, gone or stored_form)
        if same_value(stored_form, old):
            return render(call, old)
        if call.dry_run:
            return render(call, stored_form)
        stored = self.store.put(resource.key, stored_form, old)
        self.on_change(resource, stored)
        return render(call, stored)

    def _scale_to(self, call: Call, old: JsonObj, replicas: int) -> Reply:
        candidate = copy.deepcopy(to_version(call.resource, old, call.version))
        candidate.setdefault("spec", {})["replicas"] = replicas
        reply = self._write(call.on_main_endpoint(), old, candidate, subresource="scale")
        return Reply(200, scale_of(reply.body))

    # ------------------------------------------------------------------------------------------------- deleting

    def delete(self, call: Call) -> Reply:
        resource = call.resource
        options = delete_options(call)
        with self.store.lock:
            old = self._live(call)
            if resource.key == NAMESPACE_KEY and call.name in IMMORTAL_NAMESPACES:
                raise errors.forbidden("", "namespaces", call.name, "this namespace may not be deleted")
            deletion.check_preconditions(resource, old, options)
            result, remains = self.delete_object(resource, old, options)
        if remains or resource.returns_object_on_delete:
            return render(call, result)
        uid = result["metadata"].get("uid", "")
        return Reply(200, errors.status_success(resource.group, resource.plural, call.name, uid))

    def delete_object(
        self, resource: ResourceType, old: JsonObj, options: JsonObj | None = None
    ) -> tuple[JsonObj, bool]:
        """Delete or mark for deletion (see `deletion`); also used by the background controllers."""
        with self.store.lock:
            return deletion.delete_object(self.store, self.on_change, resource, old, options or {})

    def delete_collection(self, call: Call) -> Reply:
        options = delete_options(call)
        items, _ = self.select(call)
        deleted = []
        with self.store.lock:
            for item in items:
                metadata = item["metadata"]
                current = self.store.get(call.resource.key, metadata.get("namespace", ""), metadata["name"])
                if current is not None:
                    deleted.append(self.delete_object(call.resource, current, options)[0])
            revision = self.store.revision
        return render_list(call, deleted, {"resourceVersion": str(revision)})

    # -------------------------------------------------------------------------------------------------- reviews

    def review(self, call: Call) -> Reply:
        body = decode_body(call)
        if call.resource.plural == "selfsubjectaccessreviews":
            return Reply(201, access.access_review(call.user, body))
        if call.resource.plural == "selfsubjectreviews":
            return Reply(201, access.self_review(call.user))
        return Reply(201, access.rules_review(call.user, body))


def _check_uid(resource: ResourceType, old: JsonObj, obj: JsonObj) -> None:
    """A uid in the written object is a precondition on the stored one: 409 from storage when they differ."""
    given = obj["metadata"].get("uid")
    stored = old["metadata"].get("uid", "")
    if not given or given == stored:
        return
    metadata = old["metadata"]
    parts = (_storage_prefix(resource), metadata.get("namespace", ""), metadata["name"])
    key = "/".join(part for part in parts if part)
    cause = (
        f"StorageError: invalid object, Code: 4, Key: {key}, ResourceVersion: 0, AdditionalErrorMsg: "
        f"Precondition failed: UID in precondition: {given}, UID in object meta: {stored}"
    )
    raise errors.conflict(resource.group, resource.plural, metadata["name"], cause)


def _storage_prefix(resource: ResourceType) -> str:
    """Where etcd keeps a kind (the apiserver's default `/registry` layout)."""
    if resource.custom or resource.key == CRD_KEY:
        return f"/registry/{resource.group}/{resource.plural}"
    if resource.key == ("", "services"):
        return "/registry/services/specs"
    return f"/registry/{resource.plural}"


def _held(resource: ResourceType, obj: JsonObj) -> bool:
    """Namespaces also wait for their `spec.finalizers` (the namespace controller's `kubernetes`)."""
    return resource.key == NAMESPACE_KEY and bool((obj.get("spec") or {}).get("finalizers"))


def _finalized(old: JsonObj, obj: JsonObj) -> JsonObj:
    """A namespace after PUT /finalize: only `spec.finalizers` changes."""
    finalizers = (obj.get("spec") or {}).get("finalizers") or []
    new = copy.deepcopy(old)
    new["spec"] = {**(old.get("spec") or {}), "finalizers": finalizers}
    if not finalizers:
        new["spec"].pop("finalizers")
    return new
