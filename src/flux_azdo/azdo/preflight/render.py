"""The report as a person reads it: one line per check, the fix under what is not ok, and a verdict line.

The verdict never claims more than was checked: when checks were skipped (an SSH URL without an API token, a
host that is not Azure DevOps) it says "ready as far as checked", with how many were skipped.
"""

from __future__ import annotations

from flux_azdo.azdo.preflight.report import CheckReport, Status

_SYMBOLS: dict[Status, str] = {"ok": "✔", "fail": "✗", "warn": "⚠️ ", "skip": "–"}


def render_text(report: CheckReport) -> str:
    lines: list[str] = []
    for item in report.items:
        lines.append(f"{_SYMBOLS[item.status]} {item.message}")
        if item.status != "ok" and item.fix:
            lines.append(f"    fix: {item.fix}")
        if item.status != "ok" and item.command:
            lines.append(f"    or run: {item.command}")
    lines.append(verdict_line(report))
    return "\n".join(lines) + "\n"


def verdict_line(report: CheckReport) -> str:
    failures = report.count("fail")
    if failures:
        return f"✗ blocked: fix the {_plural(failures, 'problem')} above, then run flux-azdo check again"
    warnings = report.count("warn")
    noted = f" ({_plural(warnings, 'warning')} above)" if warnings else ""
    skipped = report.count("skip")
    target = f"a bootstrap of {report.url} on branch {report.branch}"
    if skipped:
        return f"✔ ready as far as checked ({_plural(skipped, 'check')} skipped): nothing found blocks {target}{noted}"
    return f"✔ ready: nothing blocks {target}{noted}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"
