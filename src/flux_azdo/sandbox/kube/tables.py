"""Server-side printing: `meta.k8s.io/v1` Tables, which `kubectl get` asks for in its Accept header.

kubectl prints whatever columns the server sends, so `kubectl get deploy` shows READY/UP-TO-DATE/AVAILABLE only
if the server computes them. Columns follow the apiserver's printers for the built-in kinds, the CRD's
additionalPrinterColumns for custom resources (JSONPath, with `date` columns turned into ages), and Name +
Created At for everything else.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flux_azdo.sandbox.kube.builtin_columns import BUILTIN_COLUMNS
from flux_azdo.sandbox.kube.columns import CREATED_AT, NAME, Column, JsonObj, age
from flux_azdo.sandbox.kube.jsonpath import jsonpath
from flux_azdo.sandbox.kube.resources import ResourceType


def _custom_columns(resource: ResourceType, version: str) -> list[Column]:
    columns = resource.printer_columns.get(version) or [
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    ]
    result = [NAME]
    for spec in columns:
        kind = str(spec.get("type", "string"))
        path = str(spec.get("jsonPath", ""))
        result.append(
            Column(
                str(spec.get("name", "")),
                kind,
                _custom_cell(path, kind),
                str(spec.get("description", "")),
                str(spec.get("format", "")),
                int(spec.get("priority", 0) or 0),
            )
        )
    return result


def _custom_cell(path: str, kind: str) -> Callable[[JsonObj], Any]:
    def cell(obj: JsonObj) -> Any:
        found = jsonpath(obj, path)
        if not found or found[0] is None:
            return None
        value = found[0]
        if kind == "date":
            return age(value) if isinstance(value, str) else None
        if kind == "integer":
            return value if isinstance(value, int) else None
        if kind == "number":
            return value if isinstance(value, (int, float)) else None
        if kind == "boolean":
            return value if isinstance(value, bool) else None
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (dict, list)):
            return json.dumps(value, separators=(",", ":"))
        return str(value)

    return cell


def columns_for(resource: ResourceType, version: str) -> list[Column]:
    if resource.custom:
        return _custom_columns(resource, version)
    return BUILTIN_COLUMNS.get(resource.kind, [NAME, CREATED_AT])


def partial_metadata(obj: JsonObj) -> JsonObj:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata", {})}


def table(
    resource: ResourceType,
    version: str,
    objects: list[JsonObj],
    *,
    resource_version: str,
    include_object: str = "Metadata",
    headers: bool = True,
    list_meta: JsonObj | None = None,
) -> JsonObj:
    columns = columns_for(resource, version)
    rows = []
    for obj in objects:
        row: JsonObj = {"cells": [column.cell(obj) for column in columns]}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = partial_metadata(obj)
        rows.append(row)
    metadata: JsonObj = {"resourceVersion": resource_version, **(list_meta or {})}
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": [column.definition() for column in columns] if headers else [],
        "rows": rows,
    }
