"""The Markdown the run's summary page shows (`##vso[task.uploadsummary]`): what the task did, in one screen.

Pure functions from the result objects of each action to a Markdown string. Everything that comes from elsewhere
(URLs, paths, object names, condition messages, warnings) is escaped: for a table cell (`|`, line breaks), for HTML
(`&`, `<`, `>`) and for Markdown (so a message cannot become a link, an image or a heading).

The agent does not mask attachments, so secrets are masked here, before escaping: each builder takes `mask` (the
run's `Masker.mask`) and applies it to every untrusted value first, because a secret with `_`, `*`, `<` or `|` in
it is no longer itself once escaped. `PipelineReporter.write_summary` masks the whole text again, with the escaped
forms of every secret (`escaped_forms`), for a caller that did not pass `mask`.
Commit links are `<repository web URL>/commit/<sha>`, which Azure Repos serves for `.../_git/<repo>` URLs.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit, urlunsplit

from flux_azdo.redaction import redact_url

if TYPE_CHECKING:
    from flux_azdo.azdo.preflight.report import CheckReport, Status
    from flux_azdo.bootstrap import BootstrapResult
    from flux_azdo.cluster.health import ObjectHealth
    from flux_azdo.plan import PlanResult
    from flux_azdo.rotate import RotateResult
    from flux_azdo.uninstall import UninstallResult

#: Lines of each file's diff the plan summary shows (the page is for reading, the log has the rest).
DIFF_LINES = 100
#: Objects listed one by one per group before "and N more".
LIST_LIMIT = 50
ACTION_NAMES = {
    "bootstrap": "bootstrap",
    "plan": "plan",
    "check": "check",
    "uninstall": "uninstall",
    "rotateCredentials": "credential rotation",
}

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#!|~])")
# What starts a block only at the start of a line: a list item (`-`, `+`, `1.`, `1)`), a thematic break.
_BLOCK_START = re.compile(r"^([-+=]|\d+(?=[.)]))")
_SAFE_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/@:+-]*")
_SHA = re.compile(r"[0-9a-f]{7,64}")
_STATUS = {"ok": "✔", "fail": "✗", "warn": "⚠️", "skip": "–"}

#: What hides secrets in a text (the run's `Masker.mask`).
Mask = Callable[[str], str]


def unmasked(value: str) -> str:
    """The default `mask`: the text as it is (for callers with no secrets, and tests)."""
    return value


# -- escaping ---------------------------------------------------------------------------------------------------


def _inline(value: str) -> str:
    """One line, HTML and Markdown escaped, as it reads anywhere but at the start of a line."""
    flat = " ".join(value.split())
    flat = flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MARKDOWN_SPECIAL.sub(r"\\\1", flat)


def text(value: object, mask: Mask = unmasked) -> str:
    """Untrusted text for a paragraph, list item or table cell: masked, then one line, HTML and Markdown escaped."""
    escaped = _inline(mask(str(value)))
    match = _BLOCK_START.match(escaped)
    if match is None:
        return escaped
    if match.group(1)[0].isdigit():
        end = match.end()
        return f"{escaped[:end]}\\{escaped[end:]}"
    return f"\\{escaped}"


def code(value: object, mask: Mask = unmasked) -> str:
    """A short token (version, sha, path), masked, in a code span when it is plain enough to need no escape; else
    `text`."""
    token = mask(str(value))
    return f"`{token}`" if _SAFE_TOKEN.fullmatch(token) else text(token)


def escaped_forms(value: str) -> tuple[str, ...]:
    """How `text` can write `value` in the summary (inside a line, and at a line's start): what to mask in a
    summary that was escaped before it was masked."""
    return tuple(dict.fromkeys(form for form in (_inline(value), text(value)) if form != value))


def web_url(url: str) -> str | None:
    """An http(s) URL without user info, query or fragment, safe as a Markdown link target; None otherwise."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    try:
        port = parts.port
    except ValueError:
        return None
    netloc = f"{host}:{port}" if port else host
    path = quote(parts.path.rstrip("/"), safe="/%-._~!$&'*+,;=:@")
    return urlunsplit((parts.scheme.lower(), netloc, path, "", ""))


def link(label: str, url: str | None, mask: Mask = unmasked) -> str:
    """`[label](url)` when the URL is a web URL; the label alone otherwise. `label` must already be Markdown."""
    target = web_url(mask(url)) if url else None
    return f"[{label}]({target})" if target else label


def commit_link(repository_url: str | None, sha: str, mask: Mask = unmasked) -> str:
    short = code(sha[:7], mask) if _SHA.fullmatch(sha) else text(sha, mask)
    if not _SHA.fullmatch(sha) or not repository_url:
        return short
    base = web_url(mask(repository_url))
    return f"[{short}]({base}/commit/{sha})" if base else short


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _limited(items: Sequence[str], mask: Mask, limit: int = LIST_LIMIT) -> list[str]:
    lines = [f"- {text(item, mask)}" for item in items[:limit]]
    if len(items) > limit:
        lines.append(f"- … and {len(items) - limit} more")
    return lines


def _warnings(warnings: Iterable[str], mask: Mask) -> list[str]:
    found = list(warnings)
    if not found:
        return []
    return ["", f"### Warnings ({len(found)})", "", *(f"- ⚠️ {text(w, mask)}" for w in found)]


def _join(lines: list[str]) -> str:
    return "\n".join(lines).rstrip("\n") + "\n"


# -- health -------------------------------------------------------------------------------------------------------


def health_message(item: ObjectHealth) -> str:
    """What to say about one object: why it is not ready, else its Ready condition's message or revision."""
    if not item.found:
        return "not found"
    if not item.ready:
        return item.detail or "not ready"
    ready = next((c for c in item.conditions if c.type == "Ready"), None)
    if ready is not None and ready.message:
        return ready.message
    return f"at {item.revision}" if item.revision else "ready"


def health_table(health: Sequence[ObjectHealth], mask: Mask = unmasked) -> list[str]:
    if not health:
        return []
    rows = [
        (
            text(item.kind, mask),
            text(f"{item.namespace}/{item.name}" if item.namespace else item.name, mask),
            "✔ yes" if item.ready else "✗ no",
            text(health_message(item), mask),
        )
        for item in health
    ]
    return ["", "### Health", "", *_table(("Kind", "Name", "Ready", "Message"), rows)]


# -- bootstrap ----------------------------------------------------------------------------------------------------


def _bootstrap_details(result: BootstrapResult, url: str | None, mask: Mask) -> list[str]:
    lines = ["", "### Commits", ""]
    for label, sha in (("Components", result.components_commit), ("Sync", result.sync_commit)):
        lines.append(f"- {label}: {commit_link(url, sha, mask) if sha else 'no new commit (already up to date)'}")
    if result.files:
        lines += ["", "### Files", ""]
        word = {"create": "created", "update": "updated", "unchanged": "unchanged", "keep": "kept (yours)"}
        rows = ((text(f.path, mask), word.get(f.status) or text(f.status, mask)) for f in result.files)
        lines += _table(("File", "Change"), rows)
    lines += ["", "### Cluster", ""]
    lines.append(
        "- Components: installed by this run" if result.installed else "- Components: already installed, not re-applied"
    )
    counts = Counter(change.action for change in result.applied)
    if result.applied:
        parts = [f"{counts[a]} {a}" for a in ("created", "configured", "unchanged") if counts[a]]
        lines.append(f"- Objects applied: {_plural(len(result.applied), 'object')} ({', '.join(parts)})")
        changed = [c for c in result.applied if c.action != "unchanged"]
        lines += [f"  - {text(c.action, mask)} {text(c.ref, mask)}" for c in changed[:LIST_LIMIT]]
    else:
        lines.append("- Objects applied: none")
    secret = {
        "created": "created",
        "updated": "updated with the new credential",
        "unchanged": "unchanged",
        None: "none (workload identity: no credential is stored)",
    }.get(result.secret) or text(result.secret, mask)
    if result.removed_keys:
        secret += f" (old keys removed: {', '.join(code(key, mask) for key in result.removed_keys)})"
    lines.append(f"- Source secret: {secret}")
    if result.reconcile_requested:
        lines.append("- Reconcile requested (the cluster fetches the new commit now, not at the next interval)")
    lines += health_table(result.health, mask)
    return lines


def bootstrap_summary(
    result: BootstrapResult,
    *,
    url: str,
    branch: str,
    path: str,
    flux_version: str = "",
    warnings: Iterable[str] = (),
    mask: Mask = unmasked,
) -> str:
    """`url`: the repository's https URL (commit links); `flux_version`: what was asked ("" = the tested release);
    `mask`: the run's `Masker.mask`, applied to every value before it is escaped."""
    title = "changes made" if result.changed else "nothing to change, the cluster was already in sync"
    asked = f" (asked for {code(flux_version, mask)})" if flux_version and flux_version != result.version else ""
    lines = [
        f"## ✔ Flux bootstrap: {title}",
        "",
        *_table(
            ("", ""),
            (
                ("Repository", link(text(redact_url(url), mask), url, mask)),
                ("Branch", code(branch, mask)),
                ("Path", code(path, mask) if path else "(repository root)"),
                ("Flux", f"{code(result.version, mask)}{asked}"),
                ("Revision", code(result.revision, mask)),
            ),
        ),
        *_bootstrap_details(result, url, mask),
        *_warnings(warnings, mask),
    ]
    return _join(lines)


# -- plan ---------------------------------------------------------------------------------------------------------


def _fenced(body: str) -> list[str]:
    """A code block whose fence is longer than any run of backticks inside, so the text cannot close it."""
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}diff", body.rstrip("\n"), fence]


def plan_summary(result: PlanResult, *, mask: Mask = unmasked) -> str:
    """`mask`: the run's `Masker.mask`, applied to every value (and each diff) before it is escaped."""
    from flux_azdo.plan import summary_line

    title = "changes to make" if result.changed else "no changes"
    where = {
        "existing": "existing branch",
        "empty": "empty repository: the first push creates the branch",
        "new-branch": "the branch would be created from the default branch",
        "new-repository": "the repository would be created",
    }.get(result.repository) or text(result.repository, mask)
    lines = [
        f"## Flux plan: {title}",
        "",
        text(summary_line(result), mask),
        "",
        *_table(
            ("", ""),
            (
                ("Repository", link(text(redact_url(result.url), mask), result.url, mask)),
                ("Branch", f"{code(result.branch, mask)} ({where})"),
                ("Cluster", text(result.cluster, mask)),
                (
                    "Flux",
                    code(result.version, mask)
                    + (" (first install: bootstrap installs the components)" if result.install else ""),
                ),
            ),
        ),
        "",
        "### Files",
        "",
        *_table(
            ("File", "Change", "Lines"),
            (
                (text(f.path, mask), text(f.status, mask), f"+{f.added} −{f.removed}" if f.changed else "")
                for f in result.files
            ),
        ),
    ]
    counts = result.summary()["objects"]
    lines += ["", "### Cluster objects", ""]
    lines.append(f"{counts['create']} to create, {counts['update']} to update, {counts['unchanged']} unchanged.")
    changed = [o for o in result.objects if o.action != "unchanged"]
    if changed:
        rows = ((text(o.ref, mask), text(o.action, mask)) for o in changed[:LIST_LIMIT])
        lines += ["", *_table(("Object", "Change"), rows)]
        if len(changed) > LIST_LIMIT:
            lines.append(f"… and {len(changed) - LIST_LIMIT} more")
    for s in result.secrets:
        what = "source secret" if s.purpose == "source" else "image pull secret"
        lines.append(f"- {what} {text(f'{s.namespace}/{s.name}', mask)}: {text(s.action, mask)} (values never shown)")
    for f in result.files:
        if not f.diff:
            continue
        diff = mask(f.diff).rstrip("\n").split("\n")
        shown = diff[:DIFF_LINES]
        more = f" (first {DIFF_LINES} of {len(diff)} lines; the log has all of it)" if len(diff) > DIFF_LINES else ""
        lines += [
            "",
            f"<details><summary>{text(f.path, mask)}{more}</summary>",
            "",
            *_fenced("\n".join(shown)),
            "",
            "</details>",
        ]
    return _join(lines)


# -- check --------------------------------------------------------------------------------------------------------


def check_summary(report: CheckReport, *, mask: Mask = unmasked) -> str:
    """`mask`: the run's `Masker.mask`, applied to every value before it is escaped."""
    from flux_azdo.azdo.preflight.render import verdict_line

    head = "✔ Flux check: ready" if report.can_proceed else "✗ Flux check: blocked"
    rows: list[tuple[str, str]] = [
        ("Repository", link(text(redact_url(report.url), mask), report.url, mask)),
        ("Branch", code(report.branch, mask)),
    ]
    if report.caller is not None:
        rows.append(("Identity", text(f"{report.caller.display_name} ({report.caller.kind})", mask)))
    tallies: tuple[tuple[Status, str], ...] = (
        ("ok", "ok"),
        ("fail", "failed"),
        ("warn", "warnings"),
        ("skip", "skipped"),
    )
    counts = ", ".join(f"{report.count(status)} {word}" for status, word in tallies if report.count(status))
    lines = [
        f"## {head}",
        "",
        text(verdict_line(report).lstrip("✔✗ "), mask),
        "",
        *_table(("", ""), rows),
        "",
        f"### Checks ({counts or 'none'})",
        "",
        *_table(
            ("", "Check", "Result", "Fix"),
            (
                (
                    _STATUS.get(item.status) or text(item.status, mask),
                    code(item.key, mask),
                    text(item.message, mask),
                    text(item.fix, mask) if item.fix and item.status != "ok" else "",
                )
                for item in report.items
            ),
        ),
    ]
    return _join(lines)


# -- uninstall, rotate ----------------------------------------------------------------------------------------------


def _uninstall_details(result: UninstallResult, url: str | None, mask: Mask) -> list[str]:
    lines: list[str] = []
    for title, items in (
        ("Suspended", result.suspended),
        ("Finalizers removed", result.finalizers_removed),
        ("Deleted", result.deleted),
    ):
        if items:
            lines += ["", f"### {title} ({len(items)})", "", *_limited(items, mask)]
    if result.commit:
        lines += ["", f"Manifests removed from the repository in {commit_link(url, result.commit, mask)}."]
    return lines


def uninstall_summary(result: UninstallResult, *, url: str | None = None, mask: Mask = unmasked) -> str:
    """`url`: the repository's https URL, for the link to the commit that removed the manifests; `mask`: the run's
    `Masker.mask`, applied to every value before it is escaped."""
    if not (result.deleted or result.suspended or result.finalizers_removed):
        return _join(["## Flux uninstall: nothing to remove", "", "No Flux components and no Flux objects were found."])
    lines = [
        "## ✔ Flux uninstall: done",
        "",
        f"{_plural(len(result.deleted), 'object')} deleted, {len(result.suspended)} suspended first, "
        f"finalizers removed from {_plural(len(result.finalizers_removed), 'object')}. "
        "What Flux deployed keeps running.",
        *_uninstall_details(result, url, mask),
    ]
    return _join(lines)


def rotate_summary(result: RotateResult, *, mask: Mask = unmasked) -> str:
    """`mask`: the run's `Masker.mask`, applied to every value before it is escaped."""
    said = {
        "created": "created with the new credential",
        "updated": "updated with the new credential",
        "unchanged": "already held this credential",
    }.get(result.secret) or text(result.secret, mask)
    removed = ", ".join(code(key, mask) for key in result.removed_keys) or "none"
    lines = [
        "## ✔ Flux credentials rotated" if result.secret != "unchanged" else "## ✔ Flux credentials: unchanged",
        "",
        *_table(
            ("", ""),
            (
                ("Source secret", said),
                ("Old keys removed", removed),
                ("Fetched with it", code(result.revision, mask)),
                ("Reconcile requested at", code(result.requested_at, mask)),
            ),
        ),
    ]
    return _join(lines)


# -- failures -------------------------------------------------------------------------------------------------------


def failure_summary(
    action: str,
    message: str,
    fix: str | None,
    partial: BootstrapResult | UninstallResult | None = None,
    warnings: Iterable[str] = (),
    *,
    url: str | None = None,
    mask: Mask = unmasked,
) -> str:
    """The run stopped: what went wrong, the fix, and what was done before it stopped (`partial`, when known).

    `mask`: the run's `Masker.mask`, applied to every value before it is escaped (an error message may quote
    anything a server or the user said)."""
    from flux_azdo.bootstrap import BootstrapResult
    from flux_azdo.uninstall import UninstallResult

    name = ACTION_NAMES.get(action, action)
    lines = [f"## ✗ Flux {text(name, mask)} failed", "", text(message, mask)]
    if fix:
        lines += ["", f"**Fix:** {text(fix, mask)}"]
    if isinstance(partial, BootstrapResult):
        lines += ["", "### What was done before it stopped"]
        lines += [
            "",
            f"Flux {code(partial.version, mask)}, revision {code(partial.revision, mask)}: the changes below are in "
            "place; running the task again continues from here.",
        ]
        lines += _bootstrap_details(partial, url, mask)
    elif isinstance(partial, UninstallResult) and (partial.deleted or partial.suspended or partial.finalizers_removed):
        lines += ["", "### What was done before it stopped", *_uninstall_details(partial, url, mask)]
    lines += _warnings(warnings, mask)
    return _join(lines)
