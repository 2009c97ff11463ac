"""A small subset of CEL, enough for the `x-kubernetes-validations` rules of the Flux CRDs.

The apiserver evaluates each rule with `self` bound to the value at the rule's place in the schema (and `oldSelf`
to the previous value on an update, for transition rules) and rejects the write when a rule yields false:
`422 Invalid`, `spec: Invalid value: "object": <message>`. Supported here: field selection, `has()`, literals
(strings, integers, doubles, booleans, null, lists), `== != < <= > >= in`, `! && ||` with CEL's
error-absorbing logic, `? :`, `+`/`-` on numbers and strings, `size()` and the string methods `startsWith`,
`endsWith`, `contains` and `matches`.

Anything else (macros such as `all()`/`exists()`, other functions, `optionalOldSelf`, `messageExpression`) makes
the rule *unsupported*: it is skipped, never counted as failed, so this fake never rejects what a real cluster
would accept. A rule whose evaluation errs (selecting a field that is not set) is skipped for the same reason.
As with CRD validation ratcheting (on by default since 1.30), a value an update leaves unchanged is not checked
again.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flux_azdo.sandbox.kube.equality import same_value
from flux_azdo.sandbox.kube.errors import FieldError, forbidden_field, invalid_value, required

BLOCKED = FieldError(
    "FieldValueInvalid",
    "<nil>",
    'Invalid value: "null": some validation rules were not checked because the object was invalid; correct the '
    "existing errors to complete validation",
)
#: Schema errors that stop the CEL rules from running (apiextensions' hasBlockingErr).
BLOCKING_TYPES = ("FieldValueNotSupported", "FieldValueTypeInvalid")

_MISSING: Any = object()


class Unsupported(Exception):
    """The rule uses CEL this subset does not implement."""


class EvalError(Exception):
    """CEL's runtime error (no such key, bad operand types)."""


# ------------------------------------------------------------------------------------------------------- lexer

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>\d+\.\d+(?:[eE][+-]?\d+)?|\d+[uU]?)
  | (?P<string>[rR]?'(?:[^'\\]|\\.)*'|[rR]?"(?:[^"\\]|\\.)*")
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\|\||&&|==|!=|<=|>=|[!<>?:.,()\[\]{}+\-*/%])
    """,
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"'}


@dataclass(frozen=True)
class _Token:
    kind: str  # number, string, name, op, end
    text: str


def _tokens(source: str) -> list[_Token]:
    result: list[_Token] = []
    position = 0
    while position < len(source):
        match = _TOKEN.match(source, position)
        if match is None:
            raise Unsupported(f"unexpected character {source[position]!r}")
        position = match.end()
        kind = match.lastgroup or ""
        if kind != "space":
            result.append(_Token(kind, match.group()))
    result.append(_Token("end", ""))
    return result


def _string_value(text: str) -> str:
    raw = text[0] in "rR"
    body = text[2:-1] if raw else text[1:-1]
    if raw:
        return body
    out, index = [], 0
    while index < len(body):
        char = body[index]
        if char == "\\" and index + 1 < len(body):
            escaped = body[index + 1]
            if escaped not in _ESCAPES:
                raise Unsupported(f"escape \\{escaped}")
            out.append(_ESCAPES[escaped])
            index += 2
        else:
            out.append(char)
            index += 1
    return "".join(out)


# ------------------------------------------------------------------------------------------------------ parser

Node = tuple[Any, ...]


class _Parser:
    """Recursive descent over CEL's precedence levels: ?:, ||, &&, relations, + -, * / %, unary, member."""

    def __init__(self, source: str) -> None:
        self.tokens = _tokens(source)
        self.position = 0

    def peek(self) -> _Token:
        return self.tokens[self.position]

    def take(self) -> _Token:
        token = self.tokens[self.position]
        self.position += 1
        return token

    def expect(self, text: str) -> None:
        if self.take().text != text:
            raise Unsupported(f"expected {text!r}")

    def parse(self) -> Node:
        node = self.conditional()
        if self.peek().kind != "end":
            raise Unsupported(f"unexpected {self.peek().text!r}")
        return node

    def conditional(self) -> Node:
        condition = self.binary(0)
        if self.peek().text == "?":
            self.take()
            then = self.conditional()
            self.expect(":")
            return ("?", condition, then, self.conditional())
        return condition

    _LEVELS: tuple[tuple[str, ...], ...] = (
        ("||",),
        ("&&",),
        ("==", "!=", "<", "<=", ">", ">=", "in"),
        ("+", "-"),
        ("*", "/", "%"),
    )

    def binary(self, level: int) -> Node:
        if level == len(self._LEVELS):
            return self.unary()
        node = self.binary(level + 1)
        while self.peek().text in self._LEVELS[level] and self.peek().kind in ("op", "name"):
            operator = self.take().text
            node = (operator, node, self.binary(level + 1))
        return node

    def unary(self) -> Node:
        if self.peek().text in ("!", "-"):
            operator = self.take().text
            return ("unary" + operator, self.unary())
        return self.member()

    def member(self) -> Node:
        node = self.primary()
        while self.peek().text in (".", "["):
            if self.take().text == ".":
                name = self.take()
                if name.kind != "name":
                    raise Unsupported("field name expected")
                if self.peek().text == "(":
                    node = ("call", name.text, node, self.arguments())
                else:
                    node = ("select", node, name.text)
            else:
                index = self.conditional()
                self.expect("]")
                node = ("index", node, index)
        return node

    def arguments(self) -> list[Node]:
        self.expect("(")
        return self.items(")")

    def items(self, closer: str) -> list[Node]:
        """Comma-separated expressions up to `closer` (call arguments, list literals)."""
        found: list[Node] = []
        while self.peek().text != closer:
            if self.peek().kind == "end":
                raise Unsupported(f"expected {closer!r}")
            found.append(self.conditional())
            if self.peek().text == ",":
                self.take()
        self.take()
        return found

    def primary(self) -> Node:
        token = self.take()
        if token.kind == "number":
            text = token.text.rstrip("uU")
            return ("literal", float(text) if "." in text else int(text))
        if token.kind == "string":
            return ("literal", _string_value(token.text))
        if token.kind == "name":
            if token.text in ("true", "false"):
                return ("literal", token.text == "true")
            if token.text == "null":
                return ("literal", None)
            if self.peek().text == "(":
                return ("call", token.text, None, self.arguments())
            return ("name", token.text)
        if token.text == "(":
            node = self.conditional()
            self.expect(")")
            return node
        if token.text == "[":
            return ("list", self.items("]"))
        raise Unsupported(f"unexpected {token.text!r}")


# --------------------------------------------------------------------------------------------------- evaluator


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise EvalError("no such overload")
    return value


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _compare(operator: str, left: Any, right: Any) -> bool:
    if operator == "==":
        return same_value(left, right)
    if operator == "!=":
        return not same_value(left, right)
    if operator == "in":
        if isinstance(right, list):
            return any(same_value(left, item) for item in right)
        if isinstance(right, dict):
            return left in right
        raise EvalError("no such overload")
    comparable = (_number(left) and _number(right)) or (isinstance(left, str) and isinstance(right, str))
    if not comparable:
        raise EvalError("no such overload")
    return bool({"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[operator])


def _arithmetic(operator: str, left: Any, right: Any) -> Any:
    if operator == "+" and (
        (_number(left) and _number(right))
        or (isinstance(left, str) and isinstance(right, str))
        or (isinstance(left, list) and isinstance(right, list))
    ):
        return left + right
    if operator == "-" and _number(left) and _number(right):
        return left - right
    raise Unsupported(f"operator {operator}")


def _size(value: Any) -> int:
    if isinstance(value, (str, list, dict)):
        return len(value)
    raise EvalError("no such overload")


def _method(name: str, target: Any, arguments: list[Any]) -> Any:
    if name == "size" and not arguments:
        return _size(target)
    if isinstance(target, str) and len(arguments) == 1 and isinstance(arguments[0], str):
        methods: dict[str, Callable[[str, str], bool]] = {
            "startsWith": str.startswith,
            "endsWith": str.endswith,
            "contains": lambda text, part: part in text,
            "matches": lambda text, pattern: re.search(pattern, text) is not None,
        }
        if name in methods:
            return methods[name](target, arguments[0])
    raise Unsupported(f"function {name}")


class _Evaluator:
    def __init__(self, variables: dict[str, Any]) -> None:
        self.variables = variables

    def outcome(self, node: Node) -> Any:
        """The value of `node`, or the EvalError it raises (CEL's `||`/`&&` absorb errors)."""
        try:
            return self.eval(node)
        except EvalError as error:
            return error

    def logical(self, operator: str, left_node: Node, right_node: Node) -> bool:
        decisive: bool = operator == "||"  # the value that decides the result on its own
        left = self.outcome(left_node)
        right = None if left is decisive else self.outcome(right_node)
        if left is decisive or right is decisive:
            return operator == "||"
        for side in (left, right):
            if isinstance(side, EvalError):
                raise side
            _bool(side)
        return not decisive

    def eval(self, node: Node) -> Any:
        kind = node[0]
        if kind == "literal":
            return node[1]
        if kind == "name":
            if node[1] not in self.variables:
                raise Unsupported(f"identifier {node[1]}")
            return self.variables[node[1]]
        if kind == "list":
            return [self.eval(item) for item in node[1]]
        if kind == "select":
            target = self.eval(node[1])
            if not isinstance(target, dict) or node[2] not in target:
                raise EvalError(f"no such key: {node[2]}")
            return target[node[2]]
        if kind == "index":
            return self._index(self.eval(node[1]), self.eval(node[2]))
        if kind in ("||", "&&"):
            return self.logical(kind, node[1], node[2])
        if kind == "unary!":
            return not _bool(self.eval(node[1]))
        if kind == "unary-":
            value = self.eval(node[1])
            if not _number(value):
                raise EvalError("no such overload")
            return -value
        if kind == "?":
            return self.eval(node[2]) if _bool(self.eval(node[1])) else self.eval(node[3])
        if kind in ("==", "!=", "<", "<=", ">", ">=", "in"):
            return _compare(kind, self.eval(node[1]), self.eval(node[2]))
        if kind in ("+", "-", "*", "/", "%"):
            return _arithmetic(kind, self.eval(node[1]), self.eval(node[2]))
        if kind == "call":
            return self._call(node[1], node[2], node[3])
        raise Unsupported(str(kind))

    @staticmethod
    def _index(target: Any, key: Any) -> Any:
        if isinstance(target, list) and isinstance(key, int) and not isinstance(key, bool):
            if 0 <= key < len(target):
                return target[key]
            raise EvalError("index out of range")
        if isinstance(target, dict) and isinstance(key, str):
            if key in target:
                return target[key]
            raise EvalError(f"no such key: {key}")
        raise EvalError("no such overload")

    def _call(self, name: str, target: Node | None, arguments: list[Node]) -> Any:
        if target is None and name == "has":
            if len(arguments) != 1 or arguments[0][0] != "select":
                raise Unsupported("has() needs a field selection")
            owner = self.eval(arguments[0][1])
            if not isinstance(owner, dict):
                raise EvalError("has() on a non-object")
            return arguments[0][2] in owner
        if target is None and name == "size" and len(arguments) == 1:
            return _size(self.eval(arguments[0]))
        if target is None:
            raise Unsupported(f"function {name}")
        return _method(name, self.eval(target), [self.eval(argument) for argument in arguments])


def evaluate(rule: str, value: Any, old: Any = _MISSING) -> bool | None:
    """True/False when the subset can decide `rule` for `value`; None when it is unsupported or errs."""
    variables = {"self": value}
    if old is not _MISSING:
        variables["oldSelf"] = old
    try:
        result = _Evaluator(variables).eval(_Parser(rule).parse())
    except (Unsupported, EvalError, RecursionError):
        return None
    return result if isinstance(result, bool) else None


# ----------------------------------------------------------------------------------------------- schema walk


def validate(obj: dict[str, Any], schema: dict[str, Any], old: dict[str, Any] | None) -> list[FieldError]:
    """The failures of every decidable rule in `schema` for `obj` (an update passes the stored `old`)."""
    errors: list[FieldError] = []
    _walk(obj, _MISSING if old is None else old, schema, "", errors)
    return errors


def _walk(value: Any, old: Any, schema: Any, path: str, errors: list[FieldError]) -> None:
    if not isinstance(schema, dict) or value is None:
        return
    if old is not _MISSING and same_value(value, old):
        return  # ratcheting: an unchanged value is not checked again
    for rule in schema.get("x-kubernetes-validations") or []:
        if isinstance(rule, dict):
            failure = _check(rule, value, old, path, schema)
            if failure is not None:
                errors.append(failure)
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        previous = old if isinstance(old, dict) else {}
        for name, inner in value.items():
            sub = properties.get(name) if name in properties else additional
            if path == "" and name in ("apiVersion", "kind", "metadata"):
                continue
            where = f"{path}.{name}" if path and name in properties else (name if not path else f"{path}[{name}]")
            _walk(inner, previous.get(name, _MISSING), sub, where, errors)
    elif isinstance(value, list):
        items = schema.get("items")
        keys = schema.get("x-kubernetes-list-map-keys") or []
        correlated = schema.get("x-kubernetes-list-type") == "map" and isinstance(old, list) and keys
        for index, item in enumerate(value):
            before = _MISSING
            if correlated and isinstance(item, dict):
                before = next(
                    (o for o in old if isinstance(o, dict) and all(same_value(o.get(k), item.get(k)) for k in keys)),
                    _MISSING,
                )
            _walk(item, before, items, f"{path}[{index}]", errors)


def _check(rule: dict[str, Any], value: Any, old: Any, path: str, schema: dict[str, Any]) -> FieldError | None:
    text = str(rule.get("rule", ""))
    transition = re.search(r"\boldSelf\b", text) is not None
    if transition and (old is _MISSING or rule.get("optionalOldSelf")):
        return None
    if evaluate(text, value, old if transition else _MISSING) is not False:
        return None
    message = str(rule.get("message") or "") or f"failed rule: {text.strip()}"
    where = path or "<nil>"
    extra = str(rule.get("fieldPath") or "")
    if extra.startswith(".") and re.fullmatch(r"(\.[A-Za-z_][A-Za-z0-9_]*)+", extra):
        where = (path + extra) if path else extra[1:]
    reason = rule.get("reason") or "FieldValueInvalid"
    if reason == "FieldValueForbidden":
        return forbidden_field(where, message)
    if reason == "FieldValueRequired":
        return required(where, message)
    return invalid_value(where, str(schema.get("type") or "object"), message)
