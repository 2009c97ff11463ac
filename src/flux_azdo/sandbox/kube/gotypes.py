"""Field types of built-in objects, checked the way the apiserver's decoders check them.

A built-in object is decoded into Go structs, so `replicas: "2"` or a number among ConfigMap `data` never reaches
validation: create and update fail with Go's `json: cannot unmarshal string into Go struct field
DeploymentSpec.spec.replicas of type int32` (400), a JSON or merge patch that produces such an object fails with
the same text under `patch: Invalid value` (422), and server-side apply fails earlier, in structured-merge-diff
(`.spec.replicas: expected numeric (int or float), got string`, 500). The field types come from the protobuf
table (`protobuf_types`), which lists every field of the kinds a Flux install writes with its scalar type. Only
the first decoding error is reported, in document order, as Go's decoder does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from flux_azdo.sandbox.kube.fieldsets import path_text
from flux_azdo.sandbox.kube.protobuf import message_fields
from flux_azdo.sandbox.kube.typeinfo import LIST_MAP, TypeNode, item_key

_GO_SCALARS = {"string": "string", "bool": "bool", "int32": "int32", "int64": "int64", "double": "float64"}
_GO_SCALARS |= {"float": "float32", "bytes": "[]uint8"}
#: Types with their own JSON decoding (Time, Quantity, IntOrString, RawExtension, Duration): not checked here.
_OPAQUE = frozenset({"time", "quantity", "intstr", "raw", "duration"})
_INT_RANGE = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


@dataclass(frozen=True)
class _Field:
    """The declared type of one value: a message or scalar name, possibly repeated ("r") or a map ("m")."""

    type: str
    flag: str = ""

    def go(self) -> str:
        element = _GO_SCALARS.get(self.type) or f"v1.{self.type}"
        return {"r": "[]", "m": "map[string]"}.get(self.flag, "") + element

    def element(self) -> _Field:
        return _Field(self.type)


def known(kind: str) -> bool:
    return bool(message_fields(kind))


# ---------------------------------------------------------------------------------------- Go's JSON decoder


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _scalar_problem(value: Any, kind: str) -> str | None:
    """What Go's decoder calls `value` when it does not fit scalar `kind` (None when it fits)."""
    actual = _json_kind(value)
    if kind in ("string", "bytes"):
        return None if actual == "string" else actual
    if kind == "bool":
        return None if actual == "bool" else actual
    if actual != "number":
        return actual
    if kind in _INT_RANGE:
        low, high = _INT_RANGE[kind]
        if isinstance(value, float) or not low <= value <= high:
            return f"number {json.dumps(value)}"
    return None


def decode_error(kind: str, obj: dict[str, Any]) -> str | None:
    """Go's `json: cannot unmarshal ...` for the first value of `obj` that does not fit the `kind` struct."""
    for struct, stack, value_kind, go_type in _mismatches(kind, obj, []):
        field = ".".join(stack)
        return f"json: cannot unmarshal {value_kind} into Go struct field {struct}.{field} of type {go_type}"
    return None


def _mismatches(message: str, obj: dict[str, Any], stack: list[str]) -> Iterator[tuple[str, list[str], str, str]]:
    fields = message_fields(message)
    for name, value in obj.items():
        declared = fields.get(name)
        if declared is None or value is None:
            continue
        yield from _value_mismatches(message, [*stack, name], _Field(*declared), value)


def _value_mismatches(
    struct: str, stack: list[str], declared: _Field, value: Any
) -> Iterator[tuple[str, list[str], str, str]]:
    if declared.type in _OPAQUE:
        return
    if declared.flag == "r":
        if not isinstance(value, list):
            yield struct, stack, _json_kind(value), declared.go()
            return
        for item in value:
            if item is not None:
                yield from _value_mismatches(struct, stack, declared.element(), item)
        return
    if declared.flag == "m":
        if not isinstance(value, dict):
            yield struct, stack, _json_kind(value), declared.go()
            return
        for item in value.values():
            if item is not None:
                yield from _value_mismatches(struct, stack, declared.element(), item)
        return
    if declared.type in _GO_SCALARS:
        problem = _scalar_problem(value, declared.type)
        if problem is not None:
            yield struct, stack, problem, declared.go()
        return
    if not isinstance(value, dict):
        yield struct, stack, _json_kind(value), declared.go()
        return
    yield from _mismatches(declared.type, value, stack)


# ------------------------------------------------------------------------- the unstructured converter (SMP)


def _go_kind(value: Any) -> str:
    """Go's reflect.Kind of a decoded JSON value."""
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list):
        return "slice"
    return _go_type(value)


def convert_error(kind: str, obj: dict[str, Any]) -> str | None:
    """runtime.DefaultUnstructuredConverter's error turning `obj` into the `kind` struct (strategic merge patch).

    The converter walks the struct's fields in their declared order, not the document's.
    """
    fields = message_fields(kind)
    for name, declared in fields.items():
        value = obj.get(name)
        if value is not None:
            problem = _convert(_Field(*declared), value)
            if problem is not None:
                return problem
    return None


def _convert(declared: _Field, value: Any) -> str | None:
    if declared.type in _OPAQUE or (declared.type == "bytes" and declared.flag != "r"):
        return None
    if declared.flag in ("r", "m"):
        container = list if declared.flag == "r" else dict
        if not isinstance(value, container):
            what = "slice from" if declared.flag == "r" else "map from"
            return f"cannot restore {what} {_go_kind(value)}"
        items = value if isinstance(value, list) else list(value.values())
        return next((p for p in (_convert(declared.element(), i) for i in items if i is not None) if p), None)
    if declared.type in _GO_SCALARS:
        target = _GO_SCALARS[declared.type]
        source = _go_type(value)
        fits = (
            (declared.type == "string" and source == "string")
            or (declared.type == "bool" and source == "bool")
            or (declared.type in ("int32", "int64") and source == "int64")
            or (declared.type in ("double", "float") and source in ("int64", "float64"))
        )
        return None if fits else f"cannot convert {source} to {target}"
    if not isinstance(value, dict):
        return f"cannot restore struct from: {_go_kind(value)}"
    return convert_error(declared.type, value)


def go_text(value: Any) -> str:
    """Go's `%v` (and `%+v`) of a decoded JSON value: how a strategic merge patch appears in its error."""
    return _go_text(value)


# --------------------------------------------------------------------------------- structured-merge-diff


def _go_text(value: Any) -> str:
    """Go's `%v` of a decoded YAML value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "<nil>"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{key}:{_go_text(inner)}" for key, inner in sorted(value.items())) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_go_text(inner) for inner in value) + "]"
    return str(value)


def _go_type(value: Any) -> str:
    """Go's `%T` of a decoded YAML value."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "[]interface {}"
    return "map[string]interface {}"


def scalar_mismatch(value: Any, expected: str) -> str | None:
    """structured-merge-diff's text when `value` is not a scalar of `expected` (numeric, string or boolean)."""
    if value is None:
        return None
    if expected == "numeric":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return None
        return f"expected numeric (int or float), got {_go_type(value)}"
    if expected == "string":
        return (
            None
            if isinstance(value, str)
            else f"expected string, got &value.valueUnstructured{{Value:{_go_text(value)}}}"
        )
    if expected == "boolean":
        return None if isinstance(value, bool) else f"expected boolean, got &{{{_go_text(value)}}}"
    return None


def container_mismatch(value: Any, expected: str) -> str | None:
    """structured-merge-diff's text when a map or list is expected and something else is there."""
    if expected == "map" and not isinstance(value, dict):
        return f"expected map, got &{{{_go_text(value)}}}"
    if expected == "list" and not isinstance(value, list):
        return f"expected list, got &{{{_go_text(value)}}}"
    return None


_SMD_SCALARS = {"string": "string", "bytes": "string", "bool": "boolean", "time": "string"}
_SMD_SCALARS |= {"int32": "numeric", "int64": "numeric", "double": "numeric", "float": "numeric"}


def apply_errors(kind: str, obj: dict[str, Any], node: TypeNode) -> list[str]:
    """`<path>: <problem>` for each value of an applied built-in object that does not fit its type."""
    found: list[str] = []
    _typed_object(kind, obj, node, (), found)
    return found


def _typed_object(message: str, obj: dict[str, Any], node: TypeNode, path: tuple[str, ...], out: list[str]) -> None:
    fields = message_fields(message)
    for name, value in obj.items():
        declared = fields.get(name)
        if declared is not None and value is not None:
            _typed_value(_Field(*declared), value, node.child(name), (*path, "f:" + name), out)


def _typed_value(declared: _Field, value: Any, node: TypeNode, path: tuple[str, ...], out: list[str]) -> None:
    if declared.type in ("intstr", "quantity", "raw", "duration"):
        return
    if declared.flag == "r":
        problem = container_mismatch(value, "list")
        if problem is not None:
            out.append(f"{path_text(path)}: {problem}")
            return
        for index, item in enumerate(value):
            key = item_key(node, item) if node.kind == LIST_MAP else None
            element = (*path, key) if key is not None else (*path, f"i:{index}")
            _typed_value(declared.element(), item, node.item(), element, out)
        return
    if declared.flag == "m":
        problem = container_mismatch(value, "map")
        if problem is not None:
            out.append(f"{path_text(path)}: {problem}")
            return
        for key, item in value.items():
            _typed_value(declared.element(), item, node.child(key), (*path, "f:" + key), out)
        return
    expected = _SMD_SCALARS.get(declared.type)
    if expected is not None:
        problem = scalar_mismatch(value, expected)
        if problem is not None:
            out.append(f"{path_text(path)}: {problem}")
        return
    problem = container_mismatch(value, "map")
    if problem is not None:
        out.append(f"{path_text(path)}: {problem}")
        return
    _typed_object(declared.type, value, node, path, out)
