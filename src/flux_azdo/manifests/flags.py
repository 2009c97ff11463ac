"""Validation shared by the install and sync flags: Kubernetes names and free text.

Kept in one place so both generators reject the same inputs with the same words.
"""

from __future__ import annotations

import re

from flux_azdo.errors import UserError

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def reject_control_characters(value: str, flag: str) -> None:
    """A newline or tab pasted into a flag would end up inside YAML; say so instead."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise UserError(f"{flag} contains a control character (a newline or tab?): retype the value")


def validate_namespace(namespace: str) -> None:
    if len(namespace) > 63 or not DNS1123_LABEL.match(namespace):
        raise UserError(
            f"namespace must be a valid DNS label: {namespace!r}; use lower-case letters, digits and '-', "
            "e.g. flux-system"
        )


def validate_object_name(value: str, flag: str) -> None:
    if len(value) > 253 or not DNS1123_SUBDOMAIN.match(value):
        raise UserError(f"{flag}={value!r} is not a valid Kubernetes name: use lower-case letters, digits, '-' and '.'")
