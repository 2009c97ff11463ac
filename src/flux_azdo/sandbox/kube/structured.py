"""Value-level server-side apply: field sets of objects, comparison, merge and removal, guided by TypeNodes.

These follow structured-merge-diff: a leaf (scalar, atomic list or map, empty map) is one member; an associative
list item is a member (`k:...`) with its own fields below it; a set list owns each value (`v:...`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from flux_azdo.sandbox.kube.fieldsets import FieldSet, Path
from flux_azdo.sandbox.kube.typeinfo import ATOMIC, LIST_MAP, LIST_SET, MAP, TypeNode, item_key, value_key

MISSING: Any = object()


def to_fieldset(obj: dict[str, Any], node: TypeNode) -> FieldSet:
    """Every field `obj` sets, as structured-merge-diff's ToFieldSet sees it."""
    result = FieldSet()
    for name, value in obj.items():
        _collect(value, node.child(name), ("f:" + name,), result)
    return result


def _collect(value: Any, node: TypeNode, path: Path, out: FieldSet) -> None:
    kind = node.effective(value)
    if kind == MAP and value:
        for name, inner in value.items():
            _collect(inner, node.child(name), (*path, "f:" + name), out)
    elif kind == LIST_MAP and value and _keyed(node, value):
        for item in value:
            key = item_key(node, item)
            assert key is not None  # _keyed checked every item
            out.insert((*path, key))
            for name, inner in item.items():
                _collect(inner, node.item().child(name), (*path, key, "f:" + name), out)
    elif kind == LIST_SET and value:
        for item in value:
            out.insert((*path, value_key(item)))
    else:
        out.insert(path)


@dataclass
class Comparison:
    added: FieldSet = field(default_factory=FieldSet)
    modified: FieldSet = field(default_factory=FieldSet)
    removed: FieldSet = field(default_factory=FieldSet)

    def changed(self) -> FieldSet:
        return self.added.union(self.modified)

    def empty(self) -> bool:
        return self.added.empty() and self.modified.empty() and self.removed.empty()


def compare(old: dict[str, Any] | None, new: dict[str, Any] | None, node: TypeNode) -> Comparison:
    """Which fields `new` adds, changes and removes relative to `old`."""
    result = Comparison()
    _compare_map(old or {}, new or {}, node, (), result)
    return result


def _compare(old: Any, new: Any, node: TypeNode, path: Path, out: Comparison) -> None:
    if old is MISSING and new is MISSING:
        return
    old_kind = node.effective(old) if old is not MISSING else None
    new_kind = node.effective(new) if new is not MISSING else None
    kind = new_kind or old_kind
    if old_kind is not None and new_kind is not None and old_kind != new_kind:
        kind = ATOMIC
    if kind == LIST_MAP and not (_keyed(node, old) and _keyed(node, new)):
        kind = ATOMIC
    if kind == ATOMIC:
        _leaf(old, new, path, out)
        return
    # An empty map or list is a leaf member of its own; a non-empty one owns only what lies below it.
    old_leaf = old is not MISSING and not old
    new_leaf = new is not MISSING and not new
    if old_leaf and not new_leaf:
        out.removed.insert(path)
    elif new_leaf and not old_leaf:
        out.added.insert(path)
    if kind == MAP:
        _compare_map(old if old is not MISSING else {}, new if new is not MISSING else {}, node, path, out)
    elif kind == LIST_MAP:
        old_items, new_items = _index(node, old), _index(node, new)
        for key in old_items.keys() | new_items.keys():
            before, after = old_items.get(key, MISSING), new_items.get(key, MISSING)
            item_path = (*path, key)
            if before is MISSING:
                out.added.insert(item_path)
            elif after is MISSING:
                out.removed.insert(item_path)
            before_map = before if isinstance(before, dict) else {}
            after_map = after if isinstance(after, dict) else {}
            _compare_map(before_map, after_map, node.item(), item_path, out)
    else:
        before_values = {value_key(item) for item in (old if old is not MISSING else [])}
        after_values = {value_key(item) for item in (new if new is not MISSING else [])}
        for value in after_values - before_values:
            out.added.insert((*path, value))
        for value in before_values - after_values:
            out.removed.insert((*path, value))


def _leaf(old: Any, new: Any, path: Path, out: Comparison) -> None:
    if old is MISSING and new is MISSING:
        return
    if old is MISSING:
        out.added.insert(path)
    elif new is MISSING:
        out.removed.insert(path)
    elif old != new or type(old) is not type(new):
        out.modified.insert(path)


def _compare_map(old: dict[str, Any], new: dict[str, Any], node: TypeNode, path: Path, out: Comparison) -> None:
    for name in old.keys() | new.keys():
        _compare(old.get(name, MISSING), new.get(name, MISSING), node.child(name), (*path, "f:" + name), out)


def _keyed(node: TypeNode, value: Any) -> bool:
    return value is MISSING or (isinstance(value, list) and all(item_key(node, item) is not None for item in value))


def _index(node: TypeNode, value: Any) -> dict[str, Any]:
    if value is MISSING:
        return {}
    result: dict[str, Any] = {}
    for item in value:
        key = item_key(node, item)
        if key is not None:
            result[key] = item
    return result


def merge(live: Any, config: Any, node: TypeNode) -> Any:
    """`config` laid over `live`: maps per key, associative lists per item, sets per value, the rest replaced.

    Neither input is modified: `live` is copied once and the copy merged in place.
    """
    if config is MISSING:
        return copy.deepcopy(live)
    if live is MISSING or live is None:
        return _drop_nulls(copy.deepcopy(config))
    return _merge_into(copy.deepcopy(live), config, node)


def _merge_into(target: Any, config: Any, node: TypeNode) -> Any:
    if target is MISSING or target is None:
        return _drop_nulls(copy.deepcopy(config))
    kind = node.effective(config)
    if kind != node.effective(target):
        return _drop_nulls(copy.deepcopy(config))
    if kind == MAP:
        for name, value in config.items():
            if value is None:
                target.pop(name, None)
            else:
                target[name] = _merge_into(target.get(name, MISSING), value, node.child(name))
        return target
    if kind == LIST_MAP and _keyed(node, target) and _keyed(node, config):
        positions = {item_key(node, item): index for index, item in enumerate(target)}
        for item in config:
            key = item_key(node, item)
            if key in positions:
                position = positions[key]
                target[position] = _merge_into(target[position], item, node.item())
            else:
                positions[key] = len(target)
                target.append(_drop_nulls(copy.deepcopy(item)))
        return target
    if kind == LIST_SET:
        for item in config:
            if item not in target:
                target.append(copy.deepcopy(item))
        return target
    return _drop_nulls(copy.deepcopy(config))


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {name: _drop_nulls(inner) for name, inner in value.items() if inner is not None}
    if isinstance(value, list):
        return [_drop_nulls(inner) for inner in value]
    return value


def remove_path(obj: dict[str, Any], path: Path, node: TypeNode, *, drop_emptied: bool) -> None:
    """Delete the value at `path` (a member of some field set) from `obj`.

    With `drop_emptied` (typed objects, whose empty maps and lists the Go encoder omits, and metadata everywhere)
    a map or list the removal empties goes too; custom objects keep them, as structured-merge-diff does.
    """
    drop_emptied = drop_emptied or path[:1] == ("f:metadata",)
    trail: list[tuple[Any, Any]] = []  # (container, key-or-index) pairs leading to the target
    current: Any = obj
    current_node = node
    for element in path:
        kind, rest = element[:1], element[2:]
        if kind == "f" and isinstance(current, dict) and rest in current:
            trail.append((current, rest))
            current_node = current_node.child(rest)
            current = current[rest]
        elif kind == "k" and isinstance(current, list):
            position = next((i for i, item in enumerate(current) if item_key(current_node, item) == element), None)
            if position is None:
                return
            trail.append((current, position))
            current_node = current_node.item()
            current = current[position]
        elif kind == "v" and isinstance(current, list):
            position = next((i for i, item in enumerate(current) if value_key(item) == element), None)
            if position is None:
                return
            trail.append((current, position))
            current = current[position]
        else:
            return
    while trail:
        container, key = trail.pop()
        del container[key]
        if container or not trail or not drop_emptied:
            return
