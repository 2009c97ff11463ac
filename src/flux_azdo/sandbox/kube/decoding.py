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

from flux_azdo.sandbox.kube import errors, protobuf, schema
from flux_azdo.sandbox.kube.calls import Call
from flux_azdo.sandbox.kube.errors import JsonObj


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


def check_apply_fits_schema(call: Call, config: JsonObj) -> None:
    """An applied configuration of a custom kind must fit its schema: structured-merge-diff refuses the rest."""
    resource = call.resource
    undeclared = schema.prune(copy.deepcopy(config), resource.schemas.get(call.version) or {})
    if not undeclared:
        return
    problems = [f".{path}: field not declared in schema" for path in undeclared]
    detail = problems[0] if len(problems) == 1 else "\n  ".join(["errors:", *problems])
    where = f"{call.namespace}/{call.name}; {resource.group}/{call.version}, Kind={resource.kind}"
    raise errors.ApiError(500, "", f"failed to create typed patch object ({where}): {detail}")


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
