"""Custom objects against their CRD's openAPIV3Schema: pruning, defaulting and validation.

The apiserver prunes fields a structural schema does not declare, fills `default`s, then validates; a failure is
`422 Invalid` with one cause per field and texts like `spec.url: Required value` or `spec.interval: Invalid
value: "1x": spec.interval in body should match '^...$'`. CEL rules (`x-kubernetes-validations`) are evaluated
afterwards by `cel`.
"""

from __future__ import annotations

import base64
import binascii
import copy
import ipaddress
import re
import uuid
from datetime import datetime
from typing import Any

from flux_azdo.sandbox.kube.errors import (
    FieldError,
    duplicate,
    invalid_value,
    not_supported,
    required,
    too_long,
    too_many,
    type_invalid,
)

#: ObjectMeta fields that survive pruning of a custom object's metadata.
OBJECT_META_FIELDS = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    }
)


def prune(obj: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """Drop, in place, what the schema does not declare; returns the dropped paths (`spec.foo`).

    apiVersion, kind and the known metadata fields always stay.
    """
    dropped: list[str] = []
    metadata = obj.get("metadata")
    if isinstance(metadata, dict):
        for name in list(metadata):
            if name not in OBJECT_META_FIELDS:
                del metadata[name]
                dropped.append(f"metadata.{name}")
    properties = schema.get("properties") or {}
    for name in list(obj):
        if name in ("apiVersion", "kind", "metadata"):
            continue
        if name in properties:
            _prune_value(obj[name], properties[name], name, dropped)
        elif not schema.get("x-kubernetes-preserve-unknown-fields"):
            del obj[name]
            dropped.append(name)
    return dropped


def _prune_value(value: Any, schema: Any, path: str, dropped: list[str]) -> None:
    if not isinstance(schema, dict):
        return
    if isinstance(value, dict):
        properties = schema.get("properties")
        additional = schema.get("additionalProperties")
        embedded = schema.get("x-kubernetes-embedded-resource")
        for name in list(value):
            if embedded and name in ("apiVersion", "kind", "metadata"):
                continue
            if properties and name in properties:
                _prune_value(value[name], properties[name], f"{path}.{name}", dropped)
            elif isinstance(additional, dict):
                _prune_value(value[name], additional, f"{path}.{name}", dropped)
            elif schema.get("x-kubernetes-preserve-unknown-fields") or additional is True:
                continue
            else:
                del value[name]
                dropped.append(f"{path}.{name}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            _prune_value(item, schema["items"], f"{path}[{index}]", dropped)


def apply_defaults(value: Any, schema: Any) -> None:
    """Fill `default`s in place wherever a declared property is absent (or null without `nullable`)."""
    if not isinstance(schema, dict):
        return
    if isinstance(value, dict):
        for name, sub in (schema.get("properties") or {}).items():
            if not isinstance(sub, dict):
                continue
            if "default" in sub and (name not in value or (value[name] is None and not sub.get("nullable"))):
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                apply_defaults(value[name], sub)
        additional = schema.get("additionalProperties")
        if isinstance(additional, dict):
            for name in value:
                if not (schema.get("properties") or {}).get(name):
                    apply_defaults(value[name], additional)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            apply_defaults(item, schema["items"])


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _matches_type(value: Any, expected: str) -> bool:
    actual = _type_name(value)
    return actual == expected or (expected == "number" and actual == "integer")


def validate(obj: dict[str, Any], schema: dict[str, Any]) -> list[FieldError]:
    errors: list[FieldError] = []
    properties = schema.get("properties") or {}
    for name in schema.get("required") or []:
        if name not in obj and name not in ("apiVersion", "kind", "metadata"):
            errors.append(required(name))
    for name, sub in properties.items():
        if name in obj and name not in ("apiVersion", "kind", "metadata"):
            _validate(obj[name], sub, name, errors)
    return errors


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _validate(value: Any, schema: Any, path: str, errors: list[FieldError]) -> None:
    if not isinstance(schema, dict):
        return
    if value is None:
        if not schema.get("nullable") and schema.get("type"):
            errors.append(type_invalid(path, "null", f'{path} in body must be of type {schema["type"]}: "null"'))
        return
    expected = schema.get("type")
    if schema.get("x-kubernetes-int-or-string"):
        if _type_name(value) not in ("integer", "string"):
            detail = f'{path} in body must be of type integer,string: "{_type_name(value)}"'
            errors.append(type_invalid(path, _type_name(value), detail))
            return
    elif expected and not _matches_type(value, expected):
        detail = f'{path} in body must be of type {expected}: "{_type_name(value)}"'
        errors.append(type_invalid(path, _type_name(value), detail))
        return
    if "enum" in schema and value not in schema["enum"]:
        errors.append(not_supported(path, value, list(schema["enum"])))
    if isinstance(value, str):
        _validate_string(value, schema, path, errors)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        _validate_number(value, schema, path, errors)
    elif isinstance(value, list):
        _validate_array(value, schema, path, errors)
    elif isinstance(value, dict):
        _validate_object(value, schema, path, errors)
    for sub in schema.get("allOf") or []:
        _validate(value, sub, path, errors)
    for junctor in ("anyOf", "oneOf"):
        options = schema.get(junctor)
        if options:
            results = []
            for option in options:
                found: list[FieldError] = []
                _validate(value, option, path, found)
                results.append(found)
            passing = sum(1 for found in results if not found)
            if passing == 0 or (junctor == "oneOf" and passing > 1):
                errors.extend(
                    results[0] if results[0] else [invalid_value(path, value, f"{path} in body must match {junctor}")]
                )


_FORMATS = {
    "date-time": lambda text: bool(datetime.fromisoformat(text.replace("Z", "+00:00"))),
    "date": lambda text: bool(datetime.strptime(text, "%Y-%m-%d")),
    "uuid": lambda text: bool(uuid.UUID(text)),
    "ipv4": lambda text: isinstance(ipaddress.ip_address(text), ipaddress.IPv4Address),
    "ipv6": lambda text: isinstance(ipaddress.ip_address(text), ipaddress.IPv6Address),
    "cidr": lambda text: bool(ipaddress.ip_network(text, strict=False)),
    "byte": lambda text: bool(base64.b64decode(text, validate=True) or True),
}


def _validate_string(value: str, schema: dict[str, Any], path: str, errors: list[FieldError]) -> None:
    if "maxLength" in schema and len(value) > int(schema["maxLength"]):
        errors.append(too_long(path, int(schema["maxLength"])))
    if "minLength" in schema and len(value) < int(schema["minLength"]):
        errors.append(invalid_value(path, value, f"{path} in body should be at least {schema['minLength']} chars long"))
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            matched = re.search(pattern, value) is not None
        except re.error:
            matched = True
        if not matched:
            errors.append(invalid_value(path, value, f"{path} in body should match '{pattern}'"))
    checker = _FORMATS.get(str(schema.get("format", "")))
    if checker is not None and value:
        try:
            ok = checker(value)
        except (ValueError, binascii.Error):
            ok = False
        if not ok:
            detail = f'{path} in body must be of type {schema["format"]}: "{value}"'
            errors.append(invalid_value(path, value, detail))


def _validate_number(value: float, schema: dict[str, Any], path: str, errors: list[FieldError]) -> None:
    shown: Any = int(value) if isinstance(value, float) and value.is_integer() else value
    if "minimum" in schema:
        limit = schema["minimum"]
        if value < limit or (schema.get("exclusiveMinimum") is True and value == limit):
            relation = "greater than" if schema.get("exclusiveMinimum") is True else "greater than or equal to"
            errors.append(invalid_value(path, shown, f"{path} in body should be {relation} {limit}"))
    if "maximum" in schema:
        limit = schema["maximum"]
        if value > limit or (schema.get("exclusiveMaximum") is True and value == limit):
            relation = "less than" if schema.get("exclusiveMaximum") is True else "less than or equal to"
            errors.append(invalid_value(path, shown, f"{path} in body should be {relation} {limit}"))


def _validate_array(value: list[Any], schema: dict[str, Any], path: str, errors: list[FieldError]) -> None:
    if "maxItems" in schema and len(value) > int(schema["maxItems"]):
        errors.append(too_many(path, len(value), int(schema["maxItems"])))
    if "minItems" in schema and len(value) < int(schema["minItems"]):
        errors.append(
            invalid_value(path, len(value), f"{path} in body should have at least {schema['minItems']} items")
        )
    list_type = schema.get("x-kubernetes-list-type")
    seen: list[Any] = []
    keys = schema.get("x-kubernetes-list-map-keys") or []
    for index, item in enumerate(value):
        _validate(item, schema.get("items"), f"{path}[{index}]", errors)
        identity = {key: item.get(key) for key in keys} if list_type == "map" and isinstance(item, dict) else item
        if list_type in ("map", "set"):
            if identity in seen:
                errors.append(duplicate(f"{path}[{index}]", identity))
            seen.append(identity)


def _validate_object(value: dict[str, Any], schema: dict[str, Any], path: str, errors: list[FieldError]) -> None:
    properties = schema.get("properties") or {}
    for name in schema.get("required") or []:
        if name not in value:
            errors.append(required(_child(path, name)))
    for name, inner in value.items():
        if name in properties:
            _validate(inner, properties[name], _child(path, name), errors)
        elif isinstance(schema.get("additionalProperties"), dict):
            _validate(inner, schema["additionalProperties"], _child(path, name), errors)
    if "maxProperties" in schema and len(value) > int(schema["maxProperties"]):
        errors.append(too_many(path, len(value), int(schema["maxProperties"])))
    if "minProperties" in schema and len(value) < int(schema["minProperties"]):
        detail = f"{path} in body should have at least {schema['minProperties']} properties"
        errors.append(invalid_value(path, len(value), detail))
