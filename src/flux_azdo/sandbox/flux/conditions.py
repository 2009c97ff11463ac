"""Status conditions the way Flux's runtime (`fluxcd/pkg/runtime/conditions`) writes them.

Every condition carries the object's generation as `observedGeneration`; `lastTransitionTime` (UTC, whole
seconds) changes only when type, status, reason or message change; the list is ordered Stalled, Reconciling,
Ready, then the others by type. Tools such as `flux get` and kstatus read exactly these fields, so the simulator
keeps the same rules instead of writing ad-hoc dictionaries.
"""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from typing import Any

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"

#: Condition reasons shared by the toolkit (`fluxcd/pkg/apis/meta`).
SUCCEEDED = "Succeeded"
PROGRESSING = "Progressing"
PROGRESSING_WITH_RETRY = "ProgressingWithRetry"

_WEIGHTS = {STALLED: 0, RECONCILING: 1, READY: 2}
_MAX_MESSAGE = 32768


def now_rfc3339() -> str:
    """The API's timestamp form (`metav1.Time`): UTC, whole seconds, `Z` suffix."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Conditions:
    """A mutable copy of `status.conditions` for one object generation."""

    def __init__(self, existing: list[dict[str, Any]] | None, generation: int) -> None:
        self._items: list[dict[str, Any]] = copy.deepcopy(existing or [])
        self.generation = generation

    def get(self, kind: str) -> dict[str, Any] | None:
        for item in self._items:
            if item.get("type") == kind:
                return item
        return None

    def status(self, kind: str) -> str | None:
        item = self.get(kind)
        return None if item is None else str(item.get("status"))

    def is_true(self, kind: str) -> bool:
        return self.status(kind) == "True"

    def is_false(self, kind: str) -> bool:
        return self.status(kind) == "False"

    def has(self, kind: str) -> bool:
        return self.get(kind) is not None

    def set(self, kind: str, status: str, reason: str, message: str) -> None:
        if len(message) > _MAX_MESSAGE:
            message = message[: _MAX_MESSAGE - 3] + "..."
        new = {
            "type": kind,
            "status": status,
            "observedGeneration": self.generation,
            "lastTransitionTime": now_rfc3339(),
            "reason": reason,
            "message": message,
        }
        for index, old in enumerate(self._items):
            if old.get("type") != kind:
                continue
            same = (old.get("status"), old.get("reason"), old.get("message")) == (status, reason, message)
            if same:
                new["lastTransitionTime"] = old.get("lastTransitionTime", new["lastTransitionTime"])
            self._items[index] = new
            break
        else:
            self._items.append(new)
        self._sort()

    def mark_true(self, kind: str, reason: str, message: str) -> None:
        self.set(kind, "True", reason, message)

    def mark_false(self, kind: str, reason: str, message: str) -> None:
        self.set(kind, "False", reason, message)

    def mark_unknown(self, kind: str, reason: str, message: str) -> None:
        self.set(kind, "Unknown", reason, message)

    def delete(self, kind: str) -> None:
        self._items = [item for item in self._items if item.get("type") != kind]

    def progressive(self, message: str, *, drift: bool = False) -> None:
        """`ProgressiveStatus`: Reconciling=True, and Ready=Unknown unless a settled Ready should stay visible."""
        self.mark_true(RECONCILING, PROGRESSING, message)
        if drift or not self.has(READY) or self.status(READY) == "Unknown":
            self.mark_unknown(READY, PROGRESSING, message)

    def retrying(self) -> None:
        """A failed attempt leaves Reconciling=True with reason ProgressingWithRetry (kstatus: still in progress)."""
        item = self.get(RECONCILING)
        if item is not None and item.get("status") == "True":
            item["reason"] = PROGRESSING_WITH_RETRY

    def as_list(self) -> list[dict[str, Any]]:
        return copy.deepcopy(self._items)

    def _sort(self) -> None:
        def key(item: dict[str, Any]) -> tuple[int, int, str]:
            weight = _WEIGHTS.get(str(item.get("type")), len(_WEIGHTS))
            generation = int(item.get("observedGeneration") or 0)
            return (weight, -generation, str(item.get("type")))

        self._items.sort(key=key)
