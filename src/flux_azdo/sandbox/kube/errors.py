"""`Status` failures with the codes, reasons and messages of the real API server.

Clients branch on `reason` and `code` (the kubernetes client raises `ApiException(status=409)`, kubectl prints
`message` after `Error from server (NotFound): `), so every builder here follows the apimachinery helper of the
same name, message text included.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

JsonObj = dict[str, Any]


def qualified(group: str, resource: str) -> str:
    """`deployments.apps`, or just `secrets` in the core group: how apimachinery prints a GroupResource."""
    return f"{resource}.{group}" if group else resource


@dataclass
class FieldError:
    """One `field.Error`: its type (FieldValueRequired...), the field path, and the text after the path."""

    type: str
    field: str
    body: str

    def __str__(self) -> str:
        return f"{self.field}: {self.body}"


def _go_value(value: Any) -> str:
    """How `field.Error` prints a bad value: strings quoted, numbers and booleans bare."""
    if value is None:
        return '"null"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return go_quote(value)
    return go_quote(str(value))


def go_quote(text: str) -> str:
    """Go's `%q` for the printable strings we meet (names, paths, values)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


def required(path: str, detail: str = "") -> FieldError:
    return FieldError("FieldValueRequired", path, "Required value" + (f": {detail}" if detail else ""))


def invalid_value(path: str, value: Any, detail: str) -> FieldError:
    return FieldError(
        "FieldValueInvalid", path, f"Invalid value: {_go_value(value)}" + (f": {detail}" if detail else "")
    )


def type_invalid(path: str, value: Any, detail: str) -> FieldError:
    return FieldError("FieldValueTypeInvalid", path, f"Invalid value: {_go_value(value)}: {detail}")


def not_supported(path: str, value: Any, allowed: list[Any]) -> FieldError:
    options = ", ".join(_go_value(item) for item in allowed)
    return FieldError(
        "FieldValueNotSupported", path, f"Unsupported value: {_go_value(value)}: supported values: {options}"
    )


def forbidden_field(path: str, detail: str) -> FieldError:
    return FieldError("FieldValueForbidden", path, f"Forbidden: {detail}")


def too_long(path: str, limit: int) -> FieldError:
    return FieldError("FieldValueTooLong", path, f"Too long: may not be more than {limit} bytes")


def too_many(path: str, actual: int, limit: int) -> FieldError:
    return FieldError("FieldValueTooMany", path, f"Too many: {actual}: must have at most {limit} items")


def duplicate(path: str, value: Any) -> FieldError:
    return FieldError("FieldValueDuplicate", path, f"Duplicate value: {_go_value(value)}")


@dataclass
class ApiError(Exception):
    """An error response: HTTP code, `reason`, `message` and optional `details`."""

    code: int
    reason: str
    message: str
    details: JsonObj | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def status(self) -> JsonObj:
        body: JsonObj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
        }
        if self.reason:
            body["reason"] = self.reason
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body


def _details(group: str, kind: str, name: str, causes: list[JsonObj] | None = None) -> JsonObj:
    details: JsonObj = {}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    if kind:
        details["kind"] = kind
    if causes:
        details["causes"] = causes
    return details


def not_found(group: str, resource: str, name: str) -> ApiError:
    return ApiError(
        404, "NotFound", f"{qualified(group, resource)} {go_quote(name)} not found", _details(group, resource, name)
    )


def no_route() -> ApiError:
    """A URL that names no resource the server knows."""
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def already_exists(group: str, resource: str, name: str) -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f"{qualified(group, resource)} {go_quote(name)} already exists",
        _details(group, resource, name),
    )


def conflict(group: str, resource: str, name: str, cause: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f"Operation cannot be fulfilled on {qualified(group, resource)} {go_quote(name)}: {cause}",
        _details(group, resource, name),
    )


MODIFIED = "the object has been modified; please apply your changes to the latest version and try again"


def modified_conflict(group: str, resource: str, name: str) -> ApiError:
    return conflict(group, resource, name, MODIFIED)


def invalid(group: str, kind: str, name: str, errors: list[FieldError]) -> ApiError:
    causes = [{"reason": error.type, "message": error.body, "field": error.field} for error in errors]
    text = str(errors[0]) if len(errors) == 1 else "[" + ", ".join(str(error) for error in errors) + "]"
    qualified_kind = f"{kind}.{group}" if group else kind
    return ApiError(
        422, "Invalid", f"{qualified_kind} {go_quote(name)} is invalid: {text}", _details(group, kind, name, causes)
    )


def forbidden(group: str, resource: str, name: str, reason: str) -> ApiError:
    if name:
        message = f"{qualified(group, resource)} {go_quote(name)} is forbidden: {reason}"
    elif resource:
        message = f"{qualified(group, resource)} is forbidden: {reason}"
    else:
        message = f"forbidden: {reason}"
    return ApiError(403, "Forbidden", message, _details(group, resource, name))


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def method_not_allowed() -> ApiError:
    return ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {})


def unsupported_media_type(accepted: list[str]) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: " + ", ".join(accepted),
    )


def not_acceptable(accepted: list[str]) -> ApiError:
    return ApiError(
        406, "NotAcceptable", "only the following media types are accepted: " + ", ".join(accepted), details=None
    )


def expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def internal(message: str) -> ApiError:
    return ApiError(500, "InternalError", f"Internal error occurred: {message}", {"causes": [{"message": message}]})


def status_success(group: str, resource: str, name: str, uid: str) -> JsonObj:
    """What DELETE answers for most built-in kinds once the object is gone."""
    details = _details(group, resource, name)
    details["uid"] = uid
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}
