"""A small OpenAPI v3 surface: enough for kubectl to know the server validates fields itself.

Before `kubectl apply` (client- or server-side) and `kubectl create` send anything, kubectl checks the PATCH
operation of the kind in /openapi/v3 for a `fieldValidation` query parameter; if it is missing it validates
client-side and needs full schemas. Each group/version document therefore lists every resource's operations
tagged with `x-kubernetes-group-version-kind` and that parameter. Request bodies are left out on purpose: kubectl
then builds client-side-apply patches from its compiled-in types (strategic merge for built-ins, JSON merge
patch for custom resources), as it does against any server whose document it cannot use. Custom resources carry
their CRD schema.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from flux_azdo.sandbox.kube.calls import Reply
from flux_azdo.sandbox.kube.resources import Registry, ResourceType

_QUERY_PARAMETERS = ("dryRun", "fieldManager", "fieldValidation", "force", "pretty")


def _path_prefix(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def _operation(resource: ResourceType, version: str, action: str, verb: str) -> dict[str, Any]:
    parameters = [
        {"name": name, "in": "query", "description": name, "schema": {"type": "string", "uniqueItems": True}}
        for name in _QUERY_PARAMETERS
    ]
    return {
        "description": f"{verb} the specified {resource.kind}",
        "operationId": f"{action}{resource.kind}",
        "parameters": parameters if action in ("patch", "create", "replace") else [],
        "responses": {"200": {"description": "OK"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": resource.group, "version": version, "kind": resource.kind},
    }


def document(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    types = registry.in_version(group, version)
    if not types:
        return None
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    prefix = "/" + _path_prefix(group, version)
    for resource in types:
        scope = (
            f"{prefix}/namespaces/{{namespace}}/{resource.plural}"
            if resource.namespaced
            else f"{prefix}/{resource.plural}"
        )
        if resource.virtual:
            paths[scope] = {"post": _operation(resource, version, "post", "create")}
            continue
        paths[scope] = {
            "get": _operation(resource, version, "list", "list"),
            "post": _operation(resource, version, "post", "create"),
        }
        paths[f"{scope}/{{name}}"] = {
            "get": _operation(resource, version, "get", "read"),
            "put": _operation(resource, version, "put", "replace"),
            "patch": _operation(resource, version, "patch", "partially update"),
            "delete": _operation(resource, version, "delete", "delete"),
        }
        for sub in resource.subresources:
            if sub in ("status", "scale"):
                paths[f"{scope}/{{name}}/{sub}"] = {
                    "get": _operation(resource, version, "get", f"read {sub} of"),
                    "put": _operation(resource, version, "put", f"replace {sub} of"),
                }
        schema_name = f"{resource.group or 'core'}.{version}.{resource.kind}"
        if resource.custom and resource.schemas.get(version):
            schemas[schema_name] = {
                **resource.schemas[version],
                "x-kubernetes-group-version-kind": [
                    {"group": resource.group, "version": version, "kind": resource.kind}
                ],
            }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.4"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def root(registry: Registry) -> dict[str, Any]:
    """The /openapi/v3 index: one relative URL per group/version, keyed by a hash of its document."""
    paths = {}
    for group, versions in registry.groups().items():
        for version in versions:
            doc = document(registry, group, version)
            digest = hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:128].upper()
            prefix = _path_prefix(group, version)
            paths[prefix] = {"serverRelativeURL": f"/openapi/v3/{prefix}?hash={digest}"}
    return {"paths": paths}


V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"


def v2(accept: str) -> Reply:
    """An OpenAPI v2 document without definitions.

    kubectl reads it (as protobuf) only to validate objects client-side when /openapi/v3 cannot vouch for
    `fieldValidation`, which happens for a custom resource whose CRD does not exist yet. Without a definition
    for the kind kubectl skips that validation and reports what a real cluster makes it report: `no matches for
    kind ... ensure CRDs are installed first`.
    """
    if V2_PROTOBUF in accept:
        # gnostic's openapi_v2.Document with only field 1 (swagger) = "2.0".
        return Reply(200, {}, "application/com.github.proto-openapi.spec.v2.v1.0+protobuf", raw=b"\x0a\x032.0")
    body = {"swagger": "2.0", "info": {"title": "Kubernetes", "version": "v1.32.4"}, "paths": {}, "definitions": {}}
    return Reply(200, body)
