"""Watch streams: one JSON event per line, as long as the client listens or `timeoutSeconds` allows.

Without a resourceVersion (or with "0") the stream starts with a synthetic ADDED per existing object; with one,
it replays the history after it, or sends an ERROR event with `410 Expired` (`too old resource version`) when
that history is gone, which is what client-go's reflector and the kubernetes client's `Watch` expect. Objects
that start or stop matching a selector arrive as ADDED or DELETED, as from the apiserver's watch cache.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from flux_azdo.sandbox.kube.calls import Call, wants
from flux_azdo.sandbox.kube.errors import ApiError, bad_request
from flux_azdo.sandbox.kube.rendering import to_version
from flux_azdo.sandbox.kube.rest import Api
from flux_azdo.sandbox.kube.selectors import fields_match, labels_match, parse_field_selector, parse_label_selector
from flux_azdo.sandbox.kube.tables import table

#: How often an idle watch checks whether its client went away.
IDLE_CHECK_SECONDS = 1.0
DEFAULT_TIMEOUT_SECONDS = 1800.0


def stream(api: Api, call: Call, send: Callable[[bytes], None], client_gone: Callable[[], bool]) -> None:
    """Run one watch; `send` writes one event line (raises OSError when the client is gone)."""
    resource = call.resource
    labels = parse_label_selector(call.query.get("labelSelector"))
    fields = parse_field_selector(call.query.get("fieldSelector"), resource.kind)
    as_table = wants(call.accept, "Table")
    headers_sent = False
    store = api.store

    def matches(obj: dict[str, Any] | None) -> bool:
        if obj is None:
            return False
        namespace = obj["metadata"].get("namespace", "") or ""
        if call.namespace and namespace != call.namespace:
            return False
        if call.name and obj["metadata"]["name"] != call.name:
            return False
        return labels_match(labels, obj) and fields_match(fields, obj)

    def emit(kind: str, obj: dict[str, Any]) -> None:
        nonlocal headers_sent
        shown = to_version(resource, obj, call.version)
        if as_table:
            shown = table(
                resource,
                call.version,
                [shown],
                resource_version=str(shown["metadata"].get("resourceVersion", "")),
                include_object=call.query.get("includeObject", "Metadata"),
                headers=not headers_sent,
            )
            headers_sent = True
        send(json.dumps({"type": kind, "object": shown}, separators=(",", ":")).encode() + b"\n")

    def bookmark(revision: int, initial_end: bool) -> None:
        metadata: dict[str, Any] = {"resourceVersion": str(revision)}
        if initial_end:
            metadata["annotations"] = {"k8s.io/initial-events-end": "true"}
        obj = {"kind": resource.kind, "apiVersion": resource.api_version(call.version), "metadata": metadata}
        send(json.dumps({"type": "BOOKMARK", "object": obj}, separators=(",", ":")).encode() + b"\n")

    try:
        timeout = float(call.query.get("timeoutSeconds") or DEFAULT_TIMEOUT_SECONDS)
    except ValueError as error:
        raise bad_request(f"invalid timeoutSeconds: {error}") from error
    deadline = time.monotonic() + timeout
    requested = call.query.get("resourceVersion", "")
    initial_events = call.query.get("sendInitialEvents") == "true"
    bookmarks = call.query.get("allowWatchBookmarks") in ("true", "True", "1")
    with store.lock:
        if requested in ("", "0") or initial_events:
            cursor = store.revision
            initial = [obj for obj in store.objects(resource.key, call.namespace or None) if matches(obj)]
        else:
            try:
                cursor = int(requested)
            except ValueError as error:
                raise bad_request(f"resourceVersion: Invalid value: {requested!r}: must be an integer") from error
            initial = []
            try:
                store.check_watchable(cursor)
            except ApiError as expired:
                send(json.dumps({"type": "ERROR", "object": expired.status()}, separators=(",", ":")).encode() + b"\n")
                return
    for obj in initial:
        emit("ADDED", obj)
    if initial_events and bookmarks:
        bookmark(cursor, True)
    while True:
        with store.changed:
            while store.revision <= cursor and not store.closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                store.changed.wait(min(remaining, IDLE_CHECK_SECONDS))
                if client_gone():
                    return
            if store.closed:
                return
            try:
                events = store.events_after(cursor)
            except ApiError as expired:
                send(json.dumps({"type": "ERROR", "object": expired.status()}, separators=(",", ":")).encode() + b"\n")
                return
            cursor = store.revision
        for event in events:
            if event.resource != resource.key:
                continue
            now, before = matches(event.obj), matches(event.old)
            if event.type == "MODIFIED":
                if now and before:
                    emit("MODIFIED", event.obj)
                elif now:
                    emit("ADDED", event.obj)
                elif before:
                    emit("DELETED", event.obj)
            elif event.type == "ADDED" and now:
                emit("ADDED", event.obj)
            elif event.type == "DELETED" and (now or before):
                emit("DELETED", event.obj)
        if time.monotonic() >= deadline:
            return
