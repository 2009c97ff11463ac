"""Decoding `application/vnd.kubernetes.protobuf` request bodies into the JSON form of the same object.

Since 1.32 client-go's typed clientsets send built-in objects as protobuf, and kubectl uses them for `create
namespace|secret|configmap|serviceaccount|deployment|...` and `auth can-i`. The body is the magic `k8s\\0`
followed by a `runtime.Unknown` envelope holding the type (apiVersion, kind) and the object's message bytes.
Answers stay JSON (clients accept it: they send `Accept: application/vnd.kubernetes.protobuf,application/json`).

Go's generated marshallers write every non-pointer field, zero or not; JSON omits zero values, so zero scalars
are dropped except for the pointer fields where zero is a real choice (`replicas: 0`, `immutable: false`, ...).
"""

from __future__ import annotations

import base64
import json
import struct
from datetime import datetime, timezone
from functools import cache
from typing import Any

from flux_azdo.sandbox.kube.errors import bad_request, unsupported_media_type
from flux_azdo.sandbox.kube.protobuf_types import MESSAGES

CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"

#: Pointer fields (in Go) whose zero value means something, so they survive the zero-dropping.
KEEP_ZERO = frozenset(
    {
        "replicas",
        "immutable",
        "automountServiceAccountToken",
        "terminationGracePeriodSeconds",
        "allowPrivilegeEscalation",
        "privileged",
        "readOnlyRootFilesystem",
        "runAsNonRoot",
        "runAsUser",
        "runAsGroup",
        "fsGroup",
        "controller",
        "blockOwnerDeletion",
        "gracePeriodSeconds",
        "orphanDependents",
        "optional",
        "defaultMode",
        "mode",
        "revisionHistoryLimit",
        "progressDeadlineSeconds",
        "activeDeadlineSeconds",
        "enableServiceLinks",
        "allocateLoadBalancerNodePorts",
        "leaseDurationSeconds",
        "leaseTransitions",
        "allowed",
    }
)


@cache
def _fields(message: str) -> dict[int, tuple[str, str, str]]:
    """Field number -> (json name, type, flag "" | "r" | "m") for one message."""
    spec = MESSAGES.get(message)
    if spec is None:
        return {}
    result = {}
    for entry in spec.split(";"):
        parts = entry.split()
        if len(parts) >= 3:
            result[int(parts[0])] = (parts[1], parts[2], parts[3] if len(parts) > 3 else "")
    return result


@cache
def message_fields(message: str) -> dict[str, tuple[str, str]]:
    """JSON field name -> (type, flag) for one message; empty for messages the table does not know."""
    return {name: (kind, flag) for name, kind, flag in _fields(message).values()}


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    def done(self) -> bool:
        return self.position >= len(self.data)

    def varint(self) -> int:
        result = shift = 0
        while True:
            if self.position >= len(self.data):
                raise bad_request("protobuf: truncated varint")
            byte = self.data[self.position]
            self.position += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7

    def take(self, size: int) -> bytes:
        if self.position + size > len(self.data):
            raise bad_request("protobuf: truncated field")
        chunk = self.data[self.position : self.position + size]
        self.position += size
        return chunk

    def fields(self) -> list[tuple[int, int, Any]]:
        """(number, wire type, raw value) for every field, in order."""
        found = []
        while not self.done():
            key = self.varint()
            number, wire = key >> 3, key & 7
            if wire == 0:
                value: Any = self.varint()
            elif wire == 1:
                value = self.take(8)
            elif wire == 2:
                value = self.take(self.varint())
            elif wire == 5:
                value = self.take(4)
            else:
                raise bad_request(f"protobuf: unsupported wire type {wire}")
            found.append((number, wire, value))
        return found


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


def _scalar(kind: str, wire: int, value: Any) -> Any:
    if kind == "string":
        return bytes(value).decode("utf-8")
    if kind == "bytes":
        return base64.b64encode(bytes(value)).decode()
    if kind == "bool":
        return bool(value)
    if kind in ("int64", "int32"):
        return _signed(int(value), 64)
    if kind == "double":
        return struct.unpack("<d", value)[0] if wire == 1 else float(value)
    if kind == "float":
        return struct.unpack("<f", value)[0] if wire == 5 else float(value)
    return value


def _special(kind: str, data: bytes) -> Any:
    fields = {number: value for number, _, value in _Reader(data).fields()}
    if kind == "time":
        if not fields:
            return None
        seconds = _signed(int(fields.get(1, 0)), 64)
        return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if kind == "quantity":
        return bytes(fields.get(1, b"")).decode()
    if kind == "intstr":
        if int(fields.get(1, 0)) == 1:
            return bytes(fields.get(3, b"")).decode()
        return _signed(int(fields.get(2, 0)), 64)
    if kind == "raw":
        raw = bytes(fields.get(1, b""))
        return json.loads(raw) if raw else None
    if kind == "duration":
        nanos = _signed(int(fields.get(1, 0)), 64)
        return f"{nanos / 1e9:g}s"
    return None


def _is_zero(value: Any) -> bool:
    return value is None or value == "" or value is False or (isinstance(value, (int, float)) and value == 0)


def decode_message(message: str, data: bytes) -> dict[str, Any]:
    spec = _fields(message)
    result: dict[str, Any] = {}
    for number, wire, raw in _Reader(data).fields():
        field = spec.get(number)
        if field is None:
            continue
        name, kind, flag = field
        if flag == "m":
            entry = {n: v for n, _, v in _Reader(raw).fields()}
            key = bytes(entry.get(1, b"")).decode()
            result.setdefault(name, {})[key] = _value(kind, 2, entry.get(2, b"" if kind != "bool" else 0))
            continue
        if flag == "r" and wire == 2 and kind in ("int64", "int32", "bool"):
            packed = _Reader(raw)
            while not packed.done():
                result.setdefault(name, []).append(_scalar(kind, 0, packed.varint()))
            continue
        value = _value(kind, wire, raw)
        if flag == "r":
            result.setdefault(name, []).append(value)
        elif not (_is_zero(value) and name not in KEEP_ZERO):
            result[name] = value
    return result


def _value(kind: str, wire: int, raw: Any) -> Any:
    if kind in ("string", "bytes", "bool", "int64", "int32", "double", "float"):
        return _scalar(kind, wire, raw)
    if kind in ("time", "quantity", "intstr", "raw", "duration"):
        return _special(kind, bytes(raw))
    return decode_message(kind, bytes(raw))


def decode(body: bytes) -> dict[str, Any]:
    """The JSON-shaped object in a protobuf request body (415 when the kind is not one we know)."""
    if not body.startswith(MAGIC):
        raise bad_request("protobuf: the body does not start with the Kubernetes magic number")
    envelope = {number: value for number, _, value in _Reader(body[len(MAGIC) :]).fields()}
    type_meta = {number: bytes(value).decode() for number, _, value in _Reader(bytes(envelope.get(1, b""))).fields()}
    api_version, kind = type_meta.get(1, ""), type_meta.get(2, "")
    if kind not in MESSAGES:
        raise unsupported_media_type(["application/json", "application/yaml"])
    obj = decode_message(kind, bytes(envelope.get(2, b"")))
    return {"apiVersion": api_version, "kind": kind, **obj}
