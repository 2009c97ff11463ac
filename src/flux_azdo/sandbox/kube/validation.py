"""Validation of built-in objects: names, labels, and the few per-kind rules a bootstrap can trip over.

Texts are apimachinery's (`a lowercase RFC 1123 label must consist of ...`), so a client that shows the server's
message shows the one a real cluster would.
"""

from __future__ import annotations

import re
from typing import Any

from flux_azdo.sandbox.kube.errors import FieldError, forbidden_field, invalid_value, required, too_long

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_LABEL = re.compile(rf"^{_LABEL}$")
DNS1123_SUBDOMAIN = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")

LABEL_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end "
    "with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start "
    "and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
DNS1035_MESSAGE = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation "
    "is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
QUALIFIED_NAME_MESSAGE = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
LABEL_VALUE_MESSAGE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start "
    "and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for "
    "validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)

#: Kinds whose names must be DNS labels rather than subdomains.
LABEL_NAMED = {"Namespace"}
DNS1035_NAMED = {"Service"}


def validate_name(kind: str, name: str) -> list[FieldError]:
    if kind in LABEL_NAMED:
        if len(name) > 63:
            return [invalid_value("metadata.name", name, "must be no more than 63 characters")]
        if not DNS1123_LABEL.match(name):
            return [invalid_value("metadata.name", name, LABEL_MESSAGE)]
    elif kind in DNS1035_NAMED:
        if len(name) > 63:
            return [invalid_value("metadata.name", name, "must be no more than 63 characters")]
        if not DNS1035_LABEL.match(name):
            return [invalid_value("metadata.name", name, DNS1035_MESSAGE)]
    elif len(name) > 253:
        return [invalid_value("metadata.name", name, "must be no more than 253 characters")]
    elif not DNS1123_SUBDOMAIN.match(name):
        return [invalid_value("metadata.name", name, SUBDOMAIN_MESSAGE)]
    return []


def label_value_problems(value: str) -> list[str]:
    """apimachinery's IsValidLabelValue: the texts of what is wrong with a label value (empty when it is fine)."""
    problems = []
    if len(value) > 63:
        problems.append("must be no more than 63 characters")
    if not LABEL_VALUE.match(value):
        problems.append(LABEL_VALUE_MESSAGE)
    return problems


def qualified_name_problems(key: str) -> list[str]:
    """apimachinery's IsQualifiedName (label and annotation keys): the texts of what is wrong with `key`."""
    prefix, _, name = key.rpartition("/")
    problems = []
    if prefix and (len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)):
        problems.append("prefix part " + SUBDOMAIN_MESSAGE)
    if not name:
        problems.append("name part must be non-empty")
    elif len(name) > 63:
        problems.append("name part must be no more than 63 characters")
    if not QUALIFIED_NAME.match(name):
        problems.append(QUALIFIED_NAME_MESSAGE)
    return problems


def validate_metadata(metadata: dict[str, Any]) -> list[FieldError]:
    errors: list[FieldError] = []
    labels = metadata.get("labels")
    if labels is not None and not isinstance(labels, dict):
        return [invalid_value("metadata.labels", str(labels), "must be a map of strings")]
    for key, value in (labels or {}).items():
        errors += [invalid_value("metadata.labels", key, text) for text in qualified_name_problems(key)]
        if not isinstance(value, str):
            errors.append(invalid_value("metadata.labels", value, LABEL_VALUE_MESSAGE))
            continue
        errors += [invalid_value("metadata.labels", value, text) for text in label_value_problems(value)]
    annotations = metadata.get("annotations")
    for key, value in (annotations or {}).items() if isinstance(annotations, dict) else []:
        errors += [invalid_value("metadata.annotations", key, text) for text in qualified_name_problems(key)]
        if not isinstance(value, str):
            errors.append(invalid_value("metadata.annotations", str(value), "annotation values must be strings"))
    total = sum(len(k) + len(str(v)) for k, v in (annotations or {}).items()) if isinstance(annotations, dict) else 0
    if total > 256 * 1024:
        errors.append(too_long("metadata.annotations", 256 * 1024))
    return errors


def _pod_spec(spec: Any, path: str) -> list[FieldError]:
    if not isinstance(spec, dict):
        return [required(path)]
    containers = spec.get("containers")
    if not containers:
        return [required(f"{path}.containers")]
    errors = []
    names: set[str] = set()
    for index, container in enumerate(containers):
        where = f"{path}.containers[{index}]"
        if not isinstance(container, dict):
            errors.append(required(where))
            continue
        name = container.get("name")
        if not name:
            errors.append(required(f"{where}.name"))
        elif name in names:
            errors.append(invalid_value(f"{where}.name", name, "Duplicate value"))
        names.add(str(name or ""))
        if not container.get("image"):
            errors.append(required(f"{where}.image"))
    return errors


def _workload(obj: dict[str, Any]) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errors: list[FieldError] = []
    selector = spec.get("selector")
    template = spec.get("template") or {}
    if not isinstance(selector, dict) or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        errors.append(required("spec.selector"))
    else:
        labels = (template.get("metadata") or {}).get("labels") or {}
        wanted = selector.get("matchLabels") or {}
        if any(labels.get(key) != value for key, value in wanted.items()):
            shown = "map[string]string{" + ", ".join(f'"{k}":"{v}"' for k, v in sorted(labels.items())) + "}"
            errors.append(
                FieldError(
                    "FieldValueInvalid",
                    "spec.template.metadata.labels",
                    f"Invalid value: {shown}: `selector` does not match template `labels`",
                )
            )
    errors += _pod_spec(template.get("spec"), "spec.template.spec")
    if isinstance(spec.get("replicas"), int) and spec["replicas"] < 0:
        errors.append(invalid_value("spec.replicas", spec["replicas"], "must be greater than or equal to 0"))
    return errors


def validate_kind(kind: str, obj: dict[str, Any], old: dict[str, Any] | None) -> list[FieldError]:
    """Per-kind rules (built-in kinds only)."""
    if kind in ("Deployment", "ReplicaSet"):
        errors = _workload(obj)
        if old is not None and (old.get("spec") or {}).get("selector") != (obj.get("spec") or {}).get("selector"):
            errors.append(invalid_value("spec.selector", "", "field is immutable"))
        return errors
    if kind == "Pod":
        return _pod_spec(obj.get("spec"), "spec")
    if kind == "Secret" and old is not None:
        if old.get("type") != obj.get("type"):
            return [invalid_value("type", obj.get("type"), "field is immutable")]
        if old.get("immutable") and old.get("data") != obj.get("data"):
            return [forbidden_field("data", "field is immutable when `immutable` is set")]
    if kind == "ConfigMap" and old is not None and old.get("immutable") and old.get("data") != obj.get("data"):
        return [forbidden_field("data", "field is immutable when `immutable` is set")]
    if kind in ("RoleBinding", "ClusterRoleBinding"):
        if not isinstance(obj.get("roleRef"), dict):
            return [required("roleRef")]
        if old is not None and old.get("roleRef") != obj.get("roleRef"):
            return [invalid_value("roleRef", "", "cannot change roleRef")]
    return []
