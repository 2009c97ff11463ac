"""How each part of an object merges: the little of a schema that server-side apply and strategic merge need.

structured-merge-diff tracks ownership per field, per list item of an associative list (`x-kubernetes-list-type:
map`, items named by their keys such as `name`), per value of a set list, and as one whole for atomic lists and
maps. A `TypeNode` records exactly that. Built-in kinds declare the non-default parts by hand (containers by
`name`, ports by `containerPort`+`protocol`, ...); custom resources get theirs from the CRD's openAPIV3Schema.
Anything undeclared is "deduced" as structured-merge-diff does for unknown types: maps merge per key, lists are
atomic.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

MAP = "map"  # a struct or a map: merged and owned per key
ATOMIC = "atomic"  # replaced and owned as a whole (scalars too)
LIST_MAP = "list-map"  # associative list: items identified by key fields
LIST_SET = "list-set"  # list of scalars, owned per value
DEDUCED = "deduced"  # unknown: decided by the value's own shape


@dataclass
class TypeNode:
    kind: str = DEDUCED
    fields: dict[str, TypeNode] = field(default_factory=dict)
    #: The type of map values (additionalProperties) or of list items.
    elem: TypeNode | None = None
    keys: tuple[str, ...] = ()
    #: Defaults of key fields, so `{containerPort: 80}` and `{containerPort: 80, protocol: TCP}` are one item.
    key_defaults: dict[str, Any] = field(default_factory=dict)

    def child(self, name: str) -> TypeNode:
        if self.kind == MAP:
            found = self.fields.get(name)
            if found is not None:
                return found
            return self.elem if self.elem is not None else UNKNOWN
        return UNKNOWN

    def item(self) -> TypeNode:
        return self.elem if self.elem is not None else UNKNOWN

    def effective(self, value: Any) -> str:
        """The kind that applies to `value`: deduced nodes follow the value (dict -> map, anything else atomic)."""
        if self.kind == DEDUCED:
            return MAP if isinstance(value, dict) else ATOMIC
        if self.kind == MAP and not isinstance(value, dict):
            return ATOMIC
        if self.kind in (LIST_MAP, LIST_SET) and not isinstance(value, list):
            return ATOMIC
        return self.kind


UNKNOWN = TypeNode()
ATOMIC_NODE = TypeNode(kind=ATOMIC)
SET_NODE = TypeNode(kind=LIST_SET)


def struct(**fields: TypeNode) -> TypeNode:
    return TypeNode(kind=MAP, fields=dict(fields))


def list_map(*keys: str, item: TypeNode | None = None, defaults: dict[str, Any] | None = None) -> TypeNode:
    return TypeNode(kind=LIST_MAP, elem=item or struct(), keys=keys, key_defaults=dict(defaults or {}))


METADATA = struct(finalizers=SET_NODE, ownerReferences=list_map("uid"))


def with_metadata(root: TypeNode) -> TypeNode:
    """The root of an object: every kind shares ObjectMeta's merge rules."""
    fields = dict(root.fields)
    fields.setdefault("metadata", METADATA)
    return TypeNode(kind=MAP, fields=fields, elem=root.elem)


def item_key(node: TypeNode, item: Any) -> str | None:
    """The FieldsV1 element (`k:{"name":"x"}`) naming `item` of an associative list, or None if it has no key."""
    if not isinstance(item, dict):
        return None
    key: dict[str, Any] = {}
    for name in node.keys:
        if name in item:
            key[name] = item[name]
        elif name in node.key_defaults:
            key[name] = node.key_defaults[name]
    if not key:
        return None
    return "k:" + json.dumps(dict(sorted(key.items())), separators=(",", ":"), ensure_ascii=False)


def value_key(value: Any) -> str:
    return "v:" + json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def from_openapi(schema: Any) -> TypeNode:
    """A TypeNode from a CRD's structural openAPIV3Schema (lists are atomic unless declared otherwise)."""
    if not isinstance(schema, dict):
        return UNKNOWN
    if schema.get("x-kubernetes-int-or-string"):
        return ATOMIC_NODE
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        if schema.get("x-kubernetes-map-type") == "atomic":
            return ATOMIC_NODE
        properties = schema.get("properties") or {}
        fields = {name: from_openapi(sub) for name, sub in properties.items()}
        elem = None
        additional = schema.get("additionalProperties")
        if isinstance(additional, dict):
            elem = from_openapi(additional)
        elif not properties and (schema.get("x-kubernetes-preserve-unknown-fields") or additional is True):
            elem = UNKNOWN
        if schema.get("x-kubernetes-embedded-resource"):
            fields.setdefault("metadata", METADATA)
        return TypeNode(kind=MAP, fields=fields, elem=elem)
    if kind == "array":
        list_type = schema.get("x-kubernetes-list-type", "atomic")
        item = from_openapi(schema.get("items"))
        if list_type == "map":
            keys = tuple(schema.get("x-kubernetes-list-map-keys") or ())
            items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
            props = items.get("properties", {}) if isinstance(items, dict) else {}
            defaults = {
                key: props[key]["default"]
                for key in keys
                if isinstance(props.get(key), dict) and "default" in props[key]
            }
            return TypeNode(kind=LIST_MAP, elem=item, keys=keys, key_defaults=defaults)
        if list_type == "set":
            return SET_NODE
        return ATOMIC_NODE
    if kind is None and schema.get("x-kubernetes-preserve-unknown-fields"):
        return UNKNOWN
    return ATOMIC_NODE
