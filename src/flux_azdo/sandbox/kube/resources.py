"""What the server knows about each resource: names, scope, verbs, subresources and merge structure.

Built-in kinds come from `builtin_resources`; every established CRD adds one `ResourceType` for its group and
plural, serving all its served versions. The registry answers discovery and routes requests.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from flux_azdo.sandbox.kube.typeinfo import TypeNode, with_metadata

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
NO_COLLECTION_DELETE = ("create", "delete", "get", "list", "patch", "update", "watch")
SUBRESOURCE_VERBS = ("get", "patch", "update")

#: How `metadata.generation` moves: never present, bumped on a `spec` change, or on any change outside
#: metadata and status (custom resources).
GENERATION_NONE = "none"
GENERATION_SPEC = "spec"
GENERATION_CONTENT = "content"


@dataclass
class ResourceType:
    group: str
    versions: tuple[str, ...]
    storage_version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    verbs: tuple[str, ...] = ALL_VERBS
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    structure: TypeNode = field(default_factory=lambda: with_metadata(TypeNode(kind="map")))
    #: Per-version structure and openAPIV3Schema (custom resources); built-ins use `structure` for every version.
    version_structures: dict[str, TypeNode] = field(default_factory=dict)
    schemas: dict[str, dict[str, Any]] = field(default_factory=dict)
    printer_columns: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    custom: bool = False
    generation: str = GENERATION_NONE
    #: DELETE answers with the object (custom resources, namespaces, pods) instead of a `Status`.
    returns_object_on_delete: bool = False
    #: Only POST exists (SelfSubjectAccessReview and friends): nothing is stored.
    virtual: bool = False
    #: Called on every write with the new object (and the old one on update) to fill defaults in place.
    defaulter: Callable[[dict[str, Any], dict[str, Any] | None], None] | None = None

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def key(self) -> tuple[str, str]:
        return (self.group, self.plural)

    def api_version(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version

    def structure_for(self, version: str) -> TypeNode:
        return self.version_structures.get(version, self.structure)

    def has_status(self) -> bool:
        return "status" in self.subresources


_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Kube-aware version order, highest first when sorted ascending: v1 > v1beta2 > v1beta1 > v1alpha1 > other."""
    match = _VERSION.match(version)
    if not match:
        return (3, 0, 0, version)
    major, stage, minor = match.groups()
    rank = {None: 0, "beta": 1, "alpha": 2}[stage]
    return (rank, -int(major), -int(minor or 0), version)


class Registry:
    """Resource types by (group, plural), plus lookups by kind and short name for discovery and CRD checks."""

    def __init__(self) -> None:
        self._types: dict[tuple[str, str], ResourceType] = {}

    def add(self, resource: ResourceType) -> None:
        self._types[resource.key] = resource

    def remove(self, group: str, plural: str) -> None:
        self._types.pop((group, plural), None)

    def get(self, group: str, plural: str) -> ResourceType | None:
        return self._types.get((group, plural))

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        found = self._types.get((group, plural))
        if found is None or version not in found.versions:
            return None
        return found

    def by_kind(self, group: str, kind: str) -> ResourceType | None:
        return next((t for t in self._types.values() if t.group == group and t.kind == kind), None)

    def __iter__(self) -> Iterator[ResourceType]:
        return iter(list(self._types.values()))

    def groups(self) -> dict[str, list[str]]:
        """Group name -> served versions in preference order (the core group "" included)."""
        result: dict[str, set[str]] = {}
        for resource in self._types.values():
            result.setdefault(resource.group, set()).update(resource.versions)
        ordered = {group: sorted(versions, key=version_priority) for group, versions in result.items()}
        builtin_order = [t.group for t in self._types.values() if not t.custom]
        names = sorted(
            ordered, key=lambda g: (g not in builtin_order, builtin_order.index(g) if g in builtin_order else 0, g)
        )
        return {name: ordered[name] for name in names}

    def in_version(self, group: str, version: str) -> list[ResourceType]:
        return [t for t in self._types.values() if t.group == group and version in t.versions]
