"""Request bodies and options, checked the way the apiserver's handlers check them before any storage work.

Bodies arrive as JSON, YAML (`application/yaml`, apply configurations) or protobuf (client-go typed clients);
their apiVersion, kind, namespace and name must agree with the URL; PATCH and DELETE options are validated with
apimachinery's texts.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import yaml

from flux_azdo.sandbox.kube import errors, gotypes, protobuf, schema
from flux_azdo.sandbox.kube.calls import STRATEGIC_PATCH, Call
from flux_azdo.sandbox.kube.errors import JsonObj
from flux_azdo.sandbox.kube.fieldsets import path_text


class _YamlLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """YAML as sigs.k8s.io/yaml reads it: unquoted timestamps stay strings (PyYAML would make datetimes)."""


_YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def decode_body(call: Call, *, apply: bool = False) -> JsonObj:
    content_type = call.content_type
    if content_type == protobuf.CONTENT_TYPE and not apply:
        return protobuf.decode(call.body)
    text = call.body.decode("utf-8", errors="replace")
    try:
        if apply or content_type in ("application/yaml", "application/apply-patch+yaml"):
            data = yaml.load(text, Loader=_YamlLoader)
        elif content_type in ("application/json", "", "*/*") or content_type.endswith("+json"):
            data = json.loads(text) if text.strip() else None
        else:
            raise errors.unsupported_media_type(["application/json", "application/yaml", protobuf.CONTENT_TYPE])
    except (ValueError, yaml.YAMLError) as error:
        raise errors.bad_request(f"error decoding request body: {error}") from error
    if not isinstance(data, dict):
        raise errors.bad_request(f"Object 'Kind' is missing in '{text[:200]}'")
    return data


def decode_patch(call: Call) -> Any:
    try:
        return json.loads(call.body.decode("utf-8")) if call.body.strip() else None
    except ValueError as error:
        raise errors.bad_request(f"error decoding patch: {error}") from error


def check_type(call: Call, obj: JsonObj) -> None:
    """apiVersion and kind must be the endpoint's (missing ones are filled in, as the typed decoder does)."""
    resource = call.resource
    expected = resource.api_version(call.version)
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if api_version and api_version != expected:
        raise errors.bad_request(
            f"the API version in the data ({api_version}) does not match the expected API version ({expected})"
        )
    if kind and kind != resource.kind:
        raise errors.bad_request(f"the kind in the data ({kind}) does not match the expected kind ({resource.kind})")
    obj["apiVersion"], obj["kind"] = expected, resource.kind
    if not isinstance(obj.setdefault("metadata", {}), dict):
        raise errors.bad_request("metadata must be an object")


def check_identity(call: Call, obj: JsonObj) -> None:
    """Namespace and name must be the URL's."""
    metadata = obj["metadata"]
    if call.resource.namespaced:
        given = metadata.get("namespace")
        if given and given != call.namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        metadata["namespace"] = call.namespace
    else:
        metadata.pop("namespace", None)
    if call.name:
        given_name = metadata.get("name")
        if given_name and given_name != call.name:
            raise errors.bad_request(
                f"the name of the object ({given_name}) does not match the name on the URL ({call.name})"
            )
        metadata["name"] = call.name


def check_patch_options(call: Call, apply: bool) -> None:
    """apimachinery's ValidatePatchOptions: 422 on the PatchOptions kind of meta.k8s.io."""
    problems = []
    if apply and not call.query.get("fieldManager"):
        problems.append(errors.required("fieldManager", "is required for apply patch"))
    if not apply and "force" in call.query:
        problems.append(errors.forbidden_field("force", "may not be specified for non-apply patch"))
    if len(call.query.get("fieldManager", "")) > 128:
        problems.append(errors.too_long("fieldManager", 128))
    if problems:
        raise errors.invalid("meta.k8s.io", "PatchOptions", "", problems)


def check_body_types(call: Call, obj: JsonObj) -> None:
    """A JSON or YAML body of a built-in kind must decode into its Go struct (400 with Go's decoder text)."""
    resource = call.resource
    if resource.custom or resource.virtual or call.content_type == protobuf.CONTENT_TYPE:
        return
    problem = gotypes.decode_error(resource.kind, obj)
    if problem is not None:
        kind, version = resource.kind, call.version
        raise errors.bad_request(f'{kind} in version "{version}" cannot be handled as a {kind}: {problem}')


def check_patched_types(call: Call, patched: JsonObj, document: object) -> None:
    """A patched built-in object must decode into its Go struct: 422 on the `patch` field, as the patcher says.

    JSON and merge patches show the whole patched object (JSON); strategic merge patches show the patch itself
    (Go's `%+v`) and the unstructured converter's text.
    """
    resource = call.resource
    if resource.custom:
        return
    if call.content_type == STRATEGIC_PATCH:
        problem = gotypes.convert_error(resource.kind, patched)
        shown = gotypes.go_text(document)
    else:
        problem = gotypes.decode_error(resource.kind, patched)
        shown = json.dumps(patched, sort_keys=True, separators=(",", ":"))
    if problem is not None:
        raise errors.invalid("", "", "", [errors.invalid_value("patch", shown, problem)])


def check_apply_fits_schema(call: Call, config: JsonObj) -> None:
    """An applied configuration must fit its type: structured-merge-diff refuses the rest (500).

    Custom kinds: every field declared in the schema, scalars of the declared type. Built-in kinds: scalars
    of the Go field types.
    """
    resource = call.resource
    if resource.custom:
        version_schema = resource.schemas.get(call.version) or {}
        undeclared = schema.prune(copy.deepcopy(config), version_schema)
        problems = [f".{path}: field not declared in schema" for path in undeclared]
        problems += _schema_type_errors(config, version_schema)
    elif gotypes.known(resource.kind):
        problems = gotypes.apply_errors(resource.kind, config, resource.structure_for(call.version))
    else:
        return
    if not problems:
        return
    detail = problems[0] if len(problems) == 1 else "\n  ".join(["errors:", *problems])
    # GroupVersionKind.String(): "/v1, Kind=ConfigMap" for the core group.
    where = f"{call.namespace}/{call.name}; {resource.group}/{call.version}, Kind={resource.kind}"
    raise errors.ApiError(500, "", f"failed to create typed patch object ({where}): {detail}")


_OPENAPI_SCALARS = {"integer": "numeric", "number": "numeric", "string": "string", "boolean": "boolean"}


def _schema_type_errors(config: JsonObj, version_schema: JsonObj) -> list[str]:
    found: list[str] = []
    properties = version_schema.get("properties") or {}
    for name, value in config.items():
        if name not in ("apiVersion", "kind", "metadata") and name in properties:
            _schema_value(value, properties[name], ("f:" + name,), found)
    return found


def _schema_value(value: object, node: object, path: tuple[str, ...], out: list[str]) -> None:
    if not isinstance(node, dict) or value is None or node.get("x-kubernetes-int-or-string"):
        return
    kind = node.get("type")
    problem = None
    if kind in _OPENAPI_SCALARS:
        problem = gotypes.scalar_mismatch(value, _OPENAPI_SCALARS[str(kind)])
    elif kind in ("object", "array"):
        problem = gotypes.container_mismatch(value, "map" if kind == "object" else "list")
    if problem is not None:
        out.append(f"{path_text(path)}: {problem}")
        return
    if isinstance(value, dict):
        properties, additional = node.get("properties") or {}, node.get("additionalProperties")
        for name, inner in value.items():
            sub = properties.get(name, additional if isinstance(additional, dict) else None)
            _schema_value(inner, sub, (*path, "f:" + name), out)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _schema_value(item, node.get("items"), (*path, f"i:{index}"), out)


def delete_options(call: Call) -> JsonObj:
    """DeleteOptions from the body (JSON or protobuf) and the query."""
    options: JsonObj = {}
    if call.content_type == protobuf.CONTENT_TYPE and call.body:
        options = protobuf.decode(call.body)
    elif call.body.strip():
        try:
            parsed = json.loads(call.body.decode("utf-8"))
        except ValueError as error:
            raise errors.bad_request(f"error decoding DeleteOptions: {error}") from error
        if isinstance(parsed, dict):
            options = parsed
    if "propagationPolicy" in call.query:
        options["propagationPolicy"] = call.query["propagationPolicy"]
    policy = options.get("propagationPolicy")
    if policy not in (None, "", "Orphan", "Background", "Foreground"):
        allowed = ["Foreground", "Background", "Orphan", "nil"]
        raise errors.invalid("", "DeleteOptions", "", [errors.not_supported("propagationPolicy", policy, allowed)])
    if call.dry_run or options.get("dryRun") == ["All"]:
        options["dryRun"] = ["All"]
    return options
