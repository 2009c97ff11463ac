"""Sets of field paths, the currency of server-side apply, and their `FieldsV1` wire form.

A path is a tuple of FieldsV1 elements: `f:spec`, `k:{"name":"manager"}` (an associative list item),
`v:"finalizer"` (a set value) or `i:0`. A set holds "member" paths (owned) in a prefix tree; in FieldsV1 a member
that also has members below it carries `".": {}`, exactly as managedFields shows it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

Path = tuple[str, ...]


class FieldSet:
    __slots__ = ("children", "members")

    def __init__(self) -> None:
        self.members: set[str] = set()
        self.children: dict[str, FieldSet] = {}

    def child(self, element: str) -> FieldSet:
        found = self.children.get(element)
        if found is None:
            found = self.children[element] = FieldSet()
        return found

    def insert(self, path: Path) -> None:
        node = self
        for element in path[:-1]:
            node = node.child(element)
        node.members.add(path[-1])

    def has(self, path: Path) -> bool:
        node: FieldSet | None = self
        for element in path[:-1]:
            node = node.children.get(element) if node is not None else None
        return node is not None and path[-1] in node.members

    def has_below(self, path: Path) -> bool:
        """Whether some member lies strictly under `path`."""
        node: FieldSet | None = self
        for element in path:
            node = node.children.get(element) if node is not None else None
        return node is not None and not node.empty()

    def empty(self) -> bool:
        return not self.members and all(child.empty() for child in self.children.values())

    def copy(self) -> FieldSet:
        return self.union(FieldSet())

    def union(self, other: FieldSet) -> FieldSet:
        result = FieldSet()
        result.members = self.members | other.members
        for element in self.children.keys() | other.children.keys():
            mine, theirs = self.children.get(element), other.children.get(element)
            if mine is None:
                merged = theirs.copy() if theirs is not None else FieldSet()
            elif theirs is None:
                merged = mine.copy()
            else:
                merged = mine.union(theirs)
            if not merged.empty():
                result.children[element] = merged
        return result

    def difference(self, other: FieldSet) -> FieldSet:
        result = FieldSet()
        result.members = self.members - other.members
        for element, mine in self.children.items():
            theirs = other.children.get(element)
            rest = mine.copy() if theirs is None else mine.difference(theirs)
            if not rest.empty():
                result.children[element] = rest
        return result

    def intersection(self, other: FieldSet) -> FieldSet:
        result = FieldSet()
        result.members = self.members & other.members
        for element, mine in self.children.items():
            theirs = other.children.get(element)
            if theirs is not None:
                both = mine.intersection(theirs)
                if not both.empty():
                    result.children[element] = both
        return result

    def without_prefix(self, prefix: Path) -> FieldSet:
        """A copy without the member `prefix` and everything under it."""
        result = self.copy()
        node: FieldSet | None = result
        for element in prefix[:-1]:
            node = node.children.get(element) if node is not None else None
        if node is not None:
            node.members.discard(prefix[-1])
            node.children.pop(prefix[-1], None)
        return result

    def only_prefix(self, prefix: Path) -> FieldSet:
        """A copy holding only `prefix` and what lies under it."""
        result = FieldSet()
        source: FieldSet | None = self
        target = result
        for element in prefix[:-1]:
            source = source.children.get(element) if source is not None else None
            target = target.child(element)
        if source is not None:
            if prefix[-1] in source.members:
                target.members.add(prefix[-1])
            below = source.children.get(prefix[-1])
            if below is not None:
                target.children[prefix[-1]] = below.copy()
        return result

    def paths(self, prefix: Path = ()) -> Iterator[Path]:
        """Member paths in the order structured-merge-diff iterates them (sorted per level)."""
        for element in sorted(self.members | self.children.keys(), key=_sort_key):
            if element in self.members:
                yield (*prefix, element)
            below = self.children.get(element)
            if below is not None:
                yield from below.paths((*prefix, element))

    def to_fields_v1(self) -> dict[str, Any]:
        encoded: dict[str, Any] = {}
        for element in sorted(self.members | self.children.keys(), key=_sort_key):
            below = self.children.get(element)
            if below is not None and not below.empty():
                inner = below.to_fields_v1()
                if element in self.members:
                    inner = {".": {}, **inner}
                encoded[element] = inner
            else:
                encoded[element] = {}
        return encoded

    @classmethod
    def from_fields_v1(cls, encoded: Any) -> FieldSet:
        result = cls()
        if not isinstance(encoded, dict):
            return result
        for element, inner in encoded.items():
            if element == ".":
                continue
            if not isinstance(inner, dict) or not inner:
                result.members.add(element)
                continue
            if "." in inner:
                result.members.add(element)
            below = cls.from_fields_v1(inner)
            if not below.empty():
                result.children[element] = below
        return result


def _sort_key(element: str) -> tuple[int, str]:
    order = {"f": 0, "k": 1, "v": 2, "i": 3}
    return (order.get(element[:1], 4), element)


def path_text(path: Path) -> str:
    """A path as structured-merge-diff prints it in conflict messages: `.spec.containers[name="app"].image`."""
    parts = []
    for element in path:
        kind, rest = element[:1], element[2:]
        if kind == "f":
            parts.append("." + rest)
        elif kind == "k":
            key = json.loads(rest)
            parts.append("[" + ",".join(f"{name}={_value_text(value)}" for name, value in key.items()) + "]")
        elif kind == "v":
            parts.append(f"[={_value_text(json.loads(rest))}]")
        else:
            parts.append(f"[{rest}]")
    return "".join(parts)


def _value_text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
