"""Equality of JSON values as the apiserver sees it: by type as well as by value.

Python says `True == 1` and `{"a": True} == {"a": 1}`; Go's `reflect.DeepEqual` over decoded JSON (and
structured-merge-diff, and the JSON patch `test` operation) does not. Deciding "nothing changed, keep the
resourceVersion" with Python's `==` would swallow a write that turns `1` into `true`. Numbers compare by value
across int and float (`1` and `1.0` are the same JSON number).
"""

from __future__ import annotations

from typing import Any


def same_value(left: Any, right: Any) -> bool:
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, (int, float)) and isinstance(right, (int, float)):
        return left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(same_value(value, right[key]) for key, value in left.items())
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(same_value(a, b) for a, b in zip(left, right, strict=True))
    if type(left) is not type(right):
        return False
    return bool(left == right)
