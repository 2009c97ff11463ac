"""The three classic PATCH formats: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge patch.

Strategic merge patch merges lists by their patch merge key (containers by `name`, ...) and understands the
`$patch`, `$retainKeys`, `$deleteFromPrimitiveList/...` and `$setElementOrder/...` directives; the merge keys
come from the same TypeNodes as server-side apply.
"""

from __future__ import annotations

import copy
from typing import Any

from flux_azdo.sandbox.kube.equality import same_value
from flux_azdo.sandbox.kube.errors import ApiError, bad_request
from flux_azdo.sandbox.kube.typeinfo import LIST_MAP, LIST_SET, TypeNode


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value)
    return result


class _PatchFailed(Exception):
    pass


def json_patch(document: Any, operations: Any) -> Any:
    """Apply RFC 6902 operations; a failed operation is the apiserver's 422 with its generic text."""
    if not isinstance(operations, list):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    result = copy.deepcopy(document)
    try:
        for operation in operations:
            if not isinstance(operation, dict) or "op" not in operation:
                raise bad_request("Unexpected kind: " + repr(operation))
            result = _apply_operation(result, operation)
    except _PatchFailed as failure:
        raise ApiError(
            422, "Invalid", "the server rejected our request due to an error in our request", {}
        ) from failure
    return result


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise _PatchFailed(f"invalid path {path!r}")
    if path == "":
        return []
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _resolve(document: Any, parts: list[str]) -> Any:
    current = document
    for part in parts:
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            raise _PatchFailed("path not found")
    return current


def _apply_operation(document: Any, operation: dict[str, Any]) -> Any:
    op = operation["op"]
    parts = _pointer(operation.get("path"))
    if op == "test":
        if not same_value(_resolve(document, parts), operation.get("value")):
            raise _PatchFailed("test failed")
        return document
    if op in ("move", "copy"):
        source = _pointer(operation.get("from"))
        value = copy.deepcopy(_resolve(document, source))
        if op == "move":
            document = _remove(document, source)
        return _add(document, parts, value)
    if op == "add":
        if "value" not in operation:
            raise _PatchFailed("missing value")
        return _add(document, parts, copy.deepcopy(operation["value"]))
    if op == "remove":
        return _remove(document, parts)
    if op == "replace":
        if "value" not in operation:
            raise _PatchFailed("missing value")
        _resolve(document, parts)
        document = _remove(document, parts)
        return _add(document, parts, copy.deepcopy(operation["value"]))
    raise _PatchFailed(f"unexpected op {op}")


def _add(document: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    parent = _resolve(document, parts[:-1])
    last = parts[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent):
            parent.insert(int(last), value)
        else:
            raise _PatchFailed("index out of range")
    else:
        raise _PatchFailed("parent is not a container")
    return document


def _remove(document: Any, parts: list[str]) -> Any:
    if not parts:
        raise _PatchFailed("cannot remove the root")
    parent = _resolve(document, parts[:-1])
    last = parts[-1]
    if isinstance(parent, dict) and last in parent:
        del parent[last]
    elif isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        del parent[int(last)]
    else:
        raise _PatchFailed("path not found")
    return document


def strategic_merge_patch(target: Any, patch: Any, node: TypeNode) -> Any:
    if not isinstance(patch, dict):
        raise bad_request("the body of a strategic merge patch must be a JSON object")
    return _smp_map(target if isinstance(target, dict) else {}, patch, node)


def _smp_map(target: dict[str, Any], patch: dict[str, Any], node: TypeNode) -> Any:
    directive = patch.get("$patch")
    if directive == "replace":
        return {name: copy.deepcopy(value) for name, value in patch.items() if name != "$patch"}
    if directive == "delete":
        return None
    result = copy.deepcopy(target)
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        result = {name: value for name, value in result.items() if name in retain}
    for name, value in patch.items():
        if name in ("$patch", "$retainKeys") or name.startswith("$setElementOrder/"):
            continue
        if name.startswith("$deleteFromPrimitiveList/"):
            field = name.split("/", 1)[1]
            if isinstance(result.get(field), list) and isinstance(value, list):
                result[field] = [item for item in result[field] if item not in value]
            continue
        child = node.child(name)
        current = result.get(name)
        if value is None:
            result.pop(name, None)
        elif isinstance(value, dict):
            merged = _smp_map(current if isinstance(current, dict) else {}, value, child)
            if merged is None:
                result.pop(name, None)
            else:
                result[name] = merged
        elif isinstance(value, list) and child.kind == LIST_MAP and child.keys:
            result[name] = _smp_list(current if isinstance(current, list) else [], value, child)
        elif isinstance(value, list) and child.kind == LIST_SET:
            existing = current if isinstance(current, list) else []
            result[name] = existing + [item for item in value if item not in existing]
        else:
            result[name] = copy.deepcopy(value)
    return result


def _smp_list(target: list[Any], patch: list[Any], node: TypeNode) -> list[Any]:
    merge_key = node.keys[0]
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [copy.deepcopy(item) for item in patch if not (isinstance(item, dict) and "$patch" in item)]
    result = [copy.deepcopy(item) for item in target]
    for item in patch:
        if not isinstance(item, dict) or merge_key not in item:
            result.append(copy.deepcopy(item))
            continue
        position = next(
            (
                i
                for i, existing in enumerate(result)
                if isinstance(existing, dict) and existing.get(merge_key) == item[merge_key]
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if position is not None:
                del result[position]
            continue
        if position is None:
            result.append({name: copy.deepcopy(value) for name, value in item.items() if name != "$patch"})
        else:
            merged = _smp_map(result[position], item, node.item())
            result[position] = merged
    return result
