"""What a preflight found: one item per check, and the report that says whether a bootstrap may go ahead.

These are the values the CLI prints (`render.py`) and `--output json` serialises; a later `bootstrap` reads the
same report to decide whether to start. They hold no behaviour beyond the verdict, so decisions stay testable
with plain data.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from flux_azdo.azdo.models import Caller, RepositoryInfo

Status = Literal["ok", "fail", "warn", "skip"]
Verdict = Literal["ready", "blocked"]


@dataclass(frozen=True)
class CheckItem:
    """One check: `key` is stable for scripts (`permission:GENERIC_CONTRIBUTE`), `message` says what was found,
    `fix` what to change (for `fail` and `warn`), `command` the `az devops` command doing the same, if any."""

    key: str
    status: Status
    message: str
    fix: str | None = None
    command: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class CheckReport:
    url: str
    branch: str
    items: tuple[CheckItem, ...]
    caller: Caller | None
    repository: RepositoryInfo | None

    @property
    def can_proceed(self) -> bool:
        """Nothing failed: warnings and skipped checks do not block a bootstrap."""
        return all(item.status != "fail" for item in self.items)

    @property
    def verdict(self) -> Verdict:
        return "ready" if self.can_proceed else "blocked"

    def count(self, status: Status) -> int:
        return sum(item.status == status for item in self.items)

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "branch": self.branch,
            "verdict": self.verdict,
            # "ready" with skipped checks means "ready as far as checked": scripts can tell the two apart.
            "skipped": self.count("skip"),
            "caller": dataclasses.asdict(self.caller) if self.caller is not None else None,
            "repository": dataclasses.asdict(self.repository) if self.repository is not None else None,
            "checks": [item.to_json() for item in self.items],
        }
