"""Watch streams: one JSON event per line, as long as the client listens or `timeoutSeconds` allows.

Without a resourceVersion (or with "0") the stream starts with a synthetic ADDED per existing object; with one,
it replays the kind's history after it, or sends an ERROR event with `410 Expired` (`too old resource version`)
when that history is gone, which is what client-go's reflector and the kubernetes client's `Watch` expect.
Objects that start or stop matching a selector arrive as ADDED or DELETED, as from the apiserver's watch cache.

Parameters are checked by `prepare` before the response starts, so a bad selector, resourceVersion or timeout is
a plain `400 BadRequest`, never a 200 stream carrying an error. An unset or non-positive `timeoutSeconds` means
the apiserver's default: a random time between 30 and 60 minutes (`--min-request-timeout` times 1 to 2). With
`allowWatchBookmarks=true` an idle watch gets a BOOKMARK with the current resourceVersion every
`bookmark_interval` seconds, so a client on a quiet kind can resume without relisting.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flux_azdo.sandbox.kube.calls import Call, wants
from flux_azdo.sandbox.kube.errors import ApiError, bad_request, go_quote
from flux_azdo.sandbox.kube.rendering import to_version
from flux_azdo.sandbox.kube.rest import Api
from flux_azdo.sandbox.kube.selectors import (
    FieldRequirement,
    Requirement,
    fields_match,
    labels_match,
    parse_field_selector,
    parse_int_parameter,
    parse_label_selector,
)
from flux_azdo.sandbox.kube.store import StoredEvent
from flux_azdo.sandbox.kube.tables import table

#: How often an idle watch checks whether its client went away.
IDLE_CHECK_SECONDS = 1.0
#: kube-apiserver's `--min-request-timeout` default; an unset watch timeout is 1 to 2 times this.
MIN_REQUEST_TIMEOUT_SECONDS = 1800.0
#: The apiserver sends bookmarks about once a minute to watchers that allow them.
DEFAULT_BOOKMARK_INTERVAL = 60.0
_TRUE = ("true", "True", "1")


@dataclass
class WatchPlan:
    """A watch request whose parameters passed every check."""

    call: Call
    labels: list[Requirement]
    fields: list[FieldRequirement]
    timeout: float
    #: The revision to replay after, or None to start with the current objects.
    since: int | None
    initial_events: bool
    bookmarks: bool

    def matches(self, obj: dict[str, Any] | None) -> bool:
        if obj is None:
            return False
        call = self.call
        namespace = obj["metadata"].get("namespace", "") or ""
        if call.namespace and namespace != call.namespace:
            return False
        if call.name and obj["metadata"]["name"] != call.name:
            return False
        return labels_match(self.labels, obj) and fields_match(self.fields, obj)


def prepare(call: Call) -> WatchPlan:
    """Check the watch's parameters; raises the apiserver's 400 before any byte of the stream is sent."""
    labels = parse_label_selector(call.query.get("labelSelector"))
    fields = parse_field_selector(call.query.get("fieldSelector"), call.resource.kind)
    given = parse_int_parameter(call.query.get("timeoutSeconds"))
    timeout = float(given) if given is not None and given > 0 else _default_timeout()
    requested = call.query.get("resourceVersion", "")
    initial_events = call.query.get("sendInitialEvents") in _TRUE
    since: int | None = None
    if requested not in ("", "0") and not initial_events:
        if not requested.isdigit():
            detail = f"strconv.ParseUint: parsing {go_quote(requested)}: invalid syntax"
            raise bad_request(f"resourceVersion: Invalid value: {go_quote(requested)}: {detail}")
        since = int(requested)
    bookmarks = call.query.get("allowWatchBookmarks") in _TRUE
    return WatchPlan(call, labels, fields, timeout, since, initial_events, bookmarks)


def _default_timeout() -> float:
    return MIN_REQUEST_TIMEOUT_SECONDS * (1.0 + random.random())


class _Sender:
    """Writes the events of one watch (objects in the requested version, or Table rows)."""

    def __init__(self, plan: WatchPlan, send: Callable[[bytes], None]) -> None:
        self.plan = plan
        self.send = send
        self.as_table = wants(plan.call.accept, "Table")
        self.headers_sent = False

    def line(self, kind: str, obj: dict[str, Any]) -> None:
        self.send(json.dumps({"type": kind, "object": obj}, separators=(",", ":")).encode() + b"\n")

    def event(self, kind: str, obj: dict[str, Any]) -> None:
        call = self.plan.call
        shown = to_version(call.resource, obj, call.version)
        if self.as_table:
            shown = table(
                call.resource,
                call.version,
                [shown],
                resource_version=str(shown["metadata"].get("resourceVersion", "")),
                include_object=call.query.get("includeObject", "Metadata"),
                headers=not self.headers_sent,
            )
            self.headers_sent = True
        self.line(kind, shown)

    def bookmark(self, revision: int, initial_end: bool = False) -> None:
        call = self.plan.call
        metadata: dict[str, Any] = {"resourceVersion": str(revision)}
        if initial_end:
            metadata["annotations"] = {"k8s.io/initial-events-end": "true"}
        obj = {"kind": call.resource.kind, "apiVersion": call.resource.api_version(call.version), "metadata": metadata}
        self.line("BOOKMARK", obj)

    def error(self, error: ApiError) -> None:
        self.line("ERROR", error.status())

    def changes(self, events: list[StoredEvent]) -> None:
        matches = self.plan.matches
        for event in events:
            now, before = matches(event.obj), matches(event.old)
            if event.type == "MODIFIED":
                if now and before:
                    self.event("MODIFIED", event.obj)
                elif now:
                    self.event("ADDED", event.obj)
                elif before:
                    self.event("DELETED", event.obj)
            elif event.type == "ADDED" and now:
                self.event("ADDED", event.obj)
            elif event.type == "DELETED" and (now or before):
                self.event("DELETED", event.obj)


def stream(
    api: Api,
    plan: WatchPlan,
    send: Callable[[bytes], None],
    client_gone: Callable[[], bool],
    bookmark_interval: float = DEFAULT_BOOKMARK_INTERVAL,
) -> None:
    """Run one watch; `send` writes one event line (raises OSError when the client is gone)."""
    call = plan.call
    key = call.resource.key
    store = api.store
    sender = _Sender(plan, send)
    deadline = time.monotonic() + plan.timeout
    with store.lock:
        if plan.since is None:
            cursor = store.revision
            initial = [obj for obj in store.objects(key, call.namespace or None) if plan.matches(obj)]
        else:
            cursor, initial = plan.since, []
            try:
                store.check_watchable(key, cursor)
            except ApiError as expired:
                sender.error(expired)
                return
    for obj in initial:
        sender.event("ADDED", obj)
    if plan.initial_events and plan.bookmarks:
        sender.bookmark(cursor, initial_end=True)
    next_bookmark = time.monotonic() + bookmark_interval
    while True:
        with store.changed:
            while store.revision <= cursor and not store.closed:
                now = time.monotonic()
                if now >= deadline:
                    return
                wait = min(deadline - now, IDLE_CHECK_SECONDS)
                if plan.bookmarks:
                    if now >= next_bookmark:
                        break
                    wait = min(wait, next_bookmark - now)
                store.changed.wait(wait)
                if client_gone():
                    return
            if store.closed:
                return
            try:
                events = store.events_after(key, cursor)
            except ApiError as expired:
                sender.error(expired)
                return
            cursor = store.revision
        sender.changes(events)
        if plan.bookmarks and time.monotonic() >= next_bookmark:
            sender.bookmark(cursor)
            next_bookmark = time.monotonic() + bookmark_interval
        if time.monotonic() >= deadline:
            return
