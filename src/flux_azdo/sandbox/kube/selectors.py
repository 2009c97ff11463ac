"""labelSelector and fieldSelector, parsed and matched as the apiserver does (errors are 400 BadRequest)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flux_azdo.sandbox.kube.errors import bad_request, go_quote
from flux_azdo.sandbox.kube.validation import label_value_problems, qualified_name_problems


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        if self.operator == "exists":
            return present
        if self.operator == "!":
            return not present
        if self.operator in ("=", "in"):
            return present and labels[self.key] in self.values
        # "!=" and "notin" match objects without the label too.
        return not present or labels[self.key] not in self.values


def _split_terms(text: str) -> list[str]:
    """Split on commas outside parentheses (`env in (a,b),tier=web`)."""
    terms, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    return [term.strip() for term in terms if term.strip()]


_INTEGER = re.compile(r"[+-]?[0-9]+")
_SET_TERM = re.compile(r"^(\S+)\s+(in|notin)\s*\((.*)\)$")


def parse_label_selector(text: str | None) -> list[Requirement]:
    if not text:
        return []
    requirements = []
    for term in _split_terms(text):
        match = _SET_TERM.match(term)
        if match:
            key, operator, values = match.groups()
            parsed = tuple(value.strip() for value in values.split(",") if value.strip())
            requirements.append(_checked(Requirement(key, operator, parsed), text))
        elif term.startswith("!"):
            requirements.append(_checked(Requirement(term[1:].strip(), "!"), text))
        elif "!=" in term:
            key, value = term.split("!=", 1)
            requirements.append(_checked(Requirement(key.strip(), "!=", (value.strip(),)), text))
        elif "==" in term:
            key, value = term.split("==", 1)
            requirements.append(_checked(Requirement(key.strip(), "=", (value.strip(),)), text))
        elif "=" in term:
            key, value = term.split("=", 1)
            requirements.append(_checked(Requirement(key.strip(), "=", (value.strip(),)), text))
        else:
            requirements.append(_checked(Requirement(term, "exists"), text))
    return requirements


def _checked(requirement: Requirement, text: str) -> Requirement:
    """labels.NewRequirement's checks: a qualified-name key and valid label values, with its field paths."""
    problems = qualified_name_problems(requirement.key)
    if problems:
        detail = "; ".join(problems)
        raise bad_request(f"unable to parse requirement: key: Invalid value: {go_quote(requirement.key)}: {detail}")
    for index, value in enumerate(requirement.values):
        problems = label_value_problems(value)
        if problems:
            where = f"values[{index}][{requirement.key}]"
            detail = "; ".join(problems)
            raise bad_request(f"unable to parse requirement: {where}: Invalid value: {go_quote(value)}: {detail}")
    return requirement


def parse_int_parameter(text: str | None) -> int | None:
    """An integer query parameter (`limit`, `timeoutSeconds`): None when absent, 400 with Go's text if malformed."""
    if text is None or text == "":
        return None
    if not _INTEGER.fullmatch(text):
        raise bad_request(f"strconv.ParseInt: parsing {go_quote(text)}: invalid syntax")
    return int(text, 10)


def labels_match(requirements: list[Requirement], obj: dict[str, Any]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(requirement.matches(labels) for requirement in requirements)


FieldGetter = Callable[[dict[str, Any]], Any]


def _path_getter(*path: str) -> FieldGetter:
    def get(obj: dict[str, Any]) -> Any:
        current: Any = obj
        for part in path:
            if not isinstance(current, dict):
                return ""
            current = current.get(part)
        return "" if current is None else current

    return get


_COMMON_FIELDS: dict[str, FieldGetter] = {
    "metadata.name": _path_getter("metadata", "name"),
    "metadata.namespace": _path_getter("metadata", "namespace"),
}

#: Field labels each kind supports beyond metadata.name and metadata.namespace (as registered in the apiserver).
KIND_FIELDS: dict[str, dict[str, FieldGetter]] = {
    "Pod": {
        "status.phase": _path_getter("status", "phase"),
        "spec.nodeName": _path_getter("spec", "nodeName"),
        "spec.restartPolicy": _path_getter("spec", "restartPolicy"),
        "spec.schedulerName": _path_getter("spec", "schedulerName"),
        "spec.serviceAccountName": _path_getter("spec", "serviceAccountName"),
        "status.podIP": _path_getter("status", "podIP"),
    },
    "Event": {
        **{
            f"involvedObject.{name}": _path_getter("involvedObject", name)
            for name in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")
        },
        "reason": _path_getter("reason"),
        "reportingComponent": _path_getter("reportingComponent"),
        "source": _path_getter("source", "component"),
        "type": _path_getter("type"),
    },
    "Namespace": {"status.phase": _path_getter("status", "phase")},
    "Secret": {"type": _path_getter("type")},
    "ReplicaSet": {"status.replicas": _path_getter("status", "replicas")},
}


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    negate: bool
    value: str
    getter: FieldGetter

    def matches(self, obj: dict[str, Any]) -> bool:
        actual = self.getter(obj)
        text = str(actual).lower() if isinstance(actual, bool) else str(actual)
        return (text == self.value) != self.negate


def parse_field_selector(text: str | None, kind: str) -> list[FieldRequirement]:
    if not text:
        return []
    supported = {**_COMMON_FIELDS, **KIND_FIELDS.get(kind, {})}
    requirements = []
    for term in _split_terms(text):
        if "!=" in term:
            name, value = term.split("!=", 1)
            negate = True
        elif "==" in term:
            name, value = term.split("==", 1)
            negate = False
        elif "=" in term:
            name, value = term.split("=", 1)
            negate = False
        else:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        name = name.strip()
        getter = supported.get(name)
        if getter is None:
            raise bad_request(f"field label not supported: {name}")
        requirements.append(FieldRequirement(name, negate, value.strip(), getter))
    return requirements


def fields_match(requirements: list[FieldRequirement], obj: dict[str, Any]) -> bool:
    return all(requirement.matches(obj) for requirement in requirements)
