"""managedFields: who owns which field, updated by every write, and server-side apply with its conflicts.

This is the apiserver's field manager over structured-merge-diff: an `Update` (create, PUT, merge/JSON/strategic
patch) hands every changed field to the writer and takes it from everyone else; an `Apply` makes the applier own
exactly what it sent, prunes what it alone owned and no longer sends, and fails with `409 Conflict` when it would
change a value another manager owns, unless forced.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from flux_azdo.sandbox.kube.errors import ApiError
from flux_azdo.sandbox.kube.fieldsets import FieldSet, Path, path_text
from flux_azdo.sandbox.kube.structured import MISSING, Comparison, compare, merge, remove_path, to_fieldset
from flux_azdo.sandbox.kube.typeinfo import TypeNode

#: Paths the field manager never tracks (apimachinery's strip set, plus what only deletion sets).
_STRIPPED: tuple[Path, ...] = (
    ("f:apiVersion",),
    ("f:kind",),
    ("f:metadata",),
    ("f:metadata", "f:name"),
    ("f:metadata", "f:namespace"),
    ("f:metadata", "f:creationTimestamp"),
    ("f:metadata", "f:selfLink"),
    ("f:metadata", "f:uid"),
    ("f:metadata", "f:clusterName"),
    ("f:metadata", "f:generation"),
    ("f:metadata", "f:managedFields"),
    ("f:metadata", "f:resourceVersion"),
    ("f:metadata", "f:deletionTimestamp"),
    ("f:metadata", "f:deletionGracePeriodSeconds"),
)

#: Which part of the object an endpoint writes: everything, all but status (main endpoint of a kind with a
#: status subresource), or status only (the /status subresource).
SCOPE_ALL = "all"
SCOPE_MAIN = "main"
SCOPE_STATUS = "status"


def now_text() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Writer:
    """Who writes, through which endpoint: the manager name, the apiVersion it writes, the endpoint's scope and
    the subresource its entry is recorded under ("status" for /status, "scale" for /scale, "" otherwise)."""

    manager: str
    api_version: str
    scope: str
    subresource: str = ""

    @classmethod
    def of(cls, manager: str, api_version: str, scope: str, subresource: str | None = None) -> Writer:
        given = subresource if subresource is not None else ("status" if scope == SCOPE_STATUS else "")
        return cls(manager, api_version, scope, given)


@dataclass
class Manager:
    manager: str
    operation: str
    api_version: str
    time: str
    subresource: str
    fields: FieldSet

    def identity(self) -> tuple[str, str, str, str]:
        return (self.manager, self.operation, "" if self.operation == "Apply" else self.api_version, self.subresource)

    def identity_json(self) -> str:
        """apimachinery's manager identifier (the JSON it keys managers by): conflict messages sort by it."""
        entry: dict[str, str] = {"manager": self.manager, "operation": self.operation}
        if self.operation != "Apply":
            entry["apiVersion"] = self.api_version
        if self.subresource:
            entry["subresource"] = self.subresource
        return json.dumps(entry, separators=(",", ":"))

    def printed(self) -> str:
        text = json.dumps(self.manager)
        if self.subresource:
            text += f" with subresource {json.dumps(self.subresource)}"
        if self.operation == "Update":
            text += f" using {self.api_version}"
        return text

    def to_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": self.fields.to_fields_v1(),
        }
        if self.subresource:
            entry["subresource"] = self.subresource
        return entry

    @classmethod
    def from_entry(cls, entry: Any) -> Manager | None:
        if not isinstance(entry, dict):
            return None
        return cls(
            manager=str(entry.get("manager", "")),
            operation=str(entry.get("operation", "Update")),
            api_version=str(entry.get("apiVersion", "")),
            time=str(entry.get("time", "")),
            subresource=str(entry.get("subresource", "")),
            fields=FieldSet.from_fields_v1(entry.get("fieldsV1")),
        )


def decode(obj: dict[str, Any] | None) -> list[Manager]:
    if not obj:
        return []
    entries = (obj.get("metadata") or {}).get("managedFields") or []
    return [manager for manager in (Manager.from_entry(entry) for entry in entries) if manager is not None]


def encode(managers: list[Manager]) -> list[dict[str, Any]]:
    """Entries in the apiserver's order: Apply before Update, then by time, manager, apiVersion, subresource."""
    ordered = sorted(
        (manager for manager in managers if not manager.fields.empty()),
        key=lambda m: (m.operation, m.time, m.manager, m.api_version, m.subresource),
    )
    return [manager.to_entry() for manager in ordered]


def restrict(fields: FieldSet, scope: str) -> FieldSet:
    result = fields
    for path in _STRIPPED:
        if result.has(path):
            result = _drop_member(result, path)
    if scope == SCOPE_MAIN:
        result = result.without_prefix(("f:status",))
    elif scope == SCOPE_STATUS:
        result = result.only_prefix(("f:status",))
    return result


def _drop_member(fields: FieldSet, path: Path) -> FieldSet:
    single = FieldSet()
    single.insert(path)
    return fields.difference(single)


def _same_fields(left: FieldSet, right: FieldSet) -> bool:
    return left.difference(right).empty() and right.difference(left).empty()


def apply_conflict(conflicts: list[tuple[Manager, Path]]) -> ApiError:
    """409 with apimachinery's text: one conflict inline, several grouped per manager."""
    causes = [
        {"reason": "FieldManagerConflict", "message": f"conflict with {manager.printed()}", "field": path_text(path)}
        for manager, path in conflicts
    ]
    if len(conflicts) == 1:
        manager, path = conflicts[0]
        message = f"Apply failed with 1 conflict: conflict with {manager.printed()}: {path_text(path)}"
    else:
        grouped: dict[str, tuple[Manager, list[Path]]] = {}
        for manager, path in conflicts:
            grouped.setdefault(manager.identity_json(), (manager, []))[1].append(path)
        lines: list[str] = []
        for identity in sorted(grouped):
            manager, paths = grouped[identity]
            lines.append(f"conflicts with {manager.printed()}:")
            lines += [f"- {path_text(path)}" for path in paths]
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return ApiError(409, "Conflict", message, {"causes": causes})


def _changes(
    live: dict[str, Any] | None, new: dict[str, Any], node: TypeNode, scope: str
) -> tuple[Comparison, FieldSet, FieldSet]:
    """The comparison of `live` and `new`, and the changed and removed fields the endpoint's scope may touch."""
    comparison = compare(live, new, node)
    return comparison, restrict(comparison.changed(), scope), restrict(comparison.removed, scope)


def _without(others: list[Manager], changed: FieldSet, removed: FieldSet) -> list[Manager]:
    """Other managers lose the fields a write changed or removed; those left with nothing go."""
    for other in others:
        other.fields = other.fields.difference(changed).difference(removed)
    return [other for other in others if not other.fields.empty()]


def apply(
    live: dict[str, Any] | None, config: dict[str, Any], node: TypeNode, writer: Writer, *, force: bool, typed: bool
) -> tuple[dict[str, Any], list[Manager]]:
    """Server-side apply of `config` onto `live`: the merged object and the new managers (raises on conflict).

    `typed` is False for custom objects: fields pruned away leave their emptied maps behind.
    """
    managers = decode(live)
    manager, scope, subresource = writer.manager, writer.scope, writer.subresource
    mine = next(
        (m for m in managers if m.manager == manager and m.operation == "Apply" and m.subresource == subresource), None
    )
    others = [m for m in managers if m is not mine]
    config = _scoped_config(config, scope)
    config_set = restrict(to_fieldset(config, node), scope)
    merged = merge(live if live is not None else MISSING, config, node)
    if not isinstance(merged, dict):
        merged = {}
    if mine is not None:
        owned_by_others = FieldSet()
        for other in others:
            owned_by_others = owned_by_others.union(other.fields)
        for path in mine.fields.difference(config_set).paths():
            if owned_by_others.has(path) or owned_by_others.has_below(path) or _is_item_key(path):
                continue
            remove_path(merged, path, node, drop_emptied=typed)
    comparison, changed, removed = _changes(live, merged, node, scope)
    conflicts: list[tuple[Manager, Path]] = []
    for other in others:
        overlap = other.fields.intersection(changed)
        conflicts += [(other, path) for path in overlap.paths()]
    if conflicts and not force:
        raise apply_conflict(conflicts)
    others = _without(others, changed, removed)
    unchanged = mine is not None and comparison.empty() and _same_fields(mine.fields, config_set)
    time = mine.time if unchanged and mine is not None else now_text()
    applied = Manager(manager, "Apply", writer.api_version, time, subresource, config_set)
    return merged, [*others, applied]


def _is_item_key(path: Path) -> bool:
    """A key field of an associative list item (`name` under `k:{"name":...}`): it goes only with its item."""
    if len(path) < 2 or not path[-2].startswith("k:") or not path[-1].startswith("f:"):
        return False
    return path[-1][2:] in json.loads(path[-2][2:])


def _scoped_config(config: dict[str, Any], scope: str) -> dict[str, Any]:
    if scope == SCOPE_MAIN:
        return {name: value for name, value in config.items() if name != "status"}
    if scope == SCOPE_STATUS:
        kept: dict[str, Any] = {name: config[name] for name in ("apiVersion", "kind", "status") if name in config}
        metadata = config.get("metadata") or {}
        kept["metadata"] = {name: metadata[name] for name in ("name", "namespace") if name in metadata}
        return kept
    return config


def update(live: dict[str, Any] | None, new: dict[str, Any], node: TypeNode, writer: Writer) -> list[Manager]:
    """The managers after a non-apply write by `writer` turned `live` into `new`."""
    managers = decode(live)
    _, changed, removed = _changes(live, new, node, writer.scope)
    identity = (writer.manager, "Update", writer.api_version, writer.subresource)
    mine = next((m for m in managers if m.identity() == identity), None)
    result = _without([other for other in managers if other is not mine], changed, removed)
    if mine is None:
        mine = Manager(writer.manager, "Update", writer.api_version, now_text(), writer.subresource, FieldSet())
    elif not (changed.empty() and removed.empty()):
        mine.time = now_text()
    mine.fields = mine.fields.difference(removed).union(changed)
    if not mine.fields.empty():
        result.append(mine)
    return result
