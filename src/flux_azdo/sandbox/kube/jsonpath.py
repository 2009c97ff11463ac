"""The JSONPath subset CRD printer columns use (`.status.conditions[?(@.type=="Ready")].status`)."""

from __future__ import annotations

import re
from typing import Any

_STEP = re.compile(
    r"\.([A-Za-z0-9_\-]+)|\[\?\(@\.([A-Za-z0-9_.\-]+)\s*==\s*['\"]([^'\"]*)['\"]\)\]|\[(\d+|\*)\]|\['([^']+)'\]"
)


def jsonpath(obj: Any, expression: str) -> list[Any]:
    """The simple JSONPath subset CRD printer columns use: `.a.b`, `[0]`, `[*]`, `['x']`, `[?(@.k=="v")]`."""
    text = expression.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    text = text.lstrip("$")
    current = [obj]
    position = 0
    while position < len(text):
        match = _STEP.match(text, position)
        if match is None:
            return []
        field, filter_path, filter_value, index, quoted = match.groups()
        following: list[Any] = []
        for value in current:
            if field is not None or quoted is not None:
                name = field if field is not None else quoted
                if isinstance(value, dict) and name in value:
                    following.append(value[name])
            elif filter_path is not None:
                for item in value if isinstance(value, list) else []:
                    probe: Any = item
                    for part in filter_path.split("."):
                        probe = probe.get(part) if isinstance(probe, dict) else None
                    if probe is not None and str(probe) == filter_value:
                        following.append(item)
            elif index == "*":
                following.extend(
                    value if isinstance(value, list) else value.values() if isinstance(value, dict) else []
                )
            elif index is not None and isinstance(value, list) and int(index) < len(value):
                following.append(value[int(index)])
        current = following
        position = match.end()
    return current
