"""The run summary pages, built from the result objects the actions return: what was done, commit links, the
health table, warnings, the fix of a failure; untrusted text escaped for tables, HTML and Markdown."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from flux_azdo.azdo.models import Caller
from flux_azdo.azdo.preflight.report import CheckItem, CheckReport
from flux_azdo.bootstrap import BootstrapResult
from flux_azdo.cluster.apply import ObjectChange
from flux_azdo.cluster.health import Condition, ObjectHealth
from flux_azdo.manifests.repository import PlannedFile
from flux_azdo.pipeline.masking import Masker
from flux_azdo.pipeline.reporter import PipelineReporter
from flux_azdo.pipeline.summary import (
    bootstrap_summary,
    check_summary,
    failure_summary,
    plan_summary,
    rotate_summary,
    text,
    uninstall_summary,
)
from flux_azdo.plan import FilePlan, ObjectPlan, PlanResult, SecretPlan
from flux_azdo.rotate import RotateResult
from flux_azdo.sandbox.runtime import Sandbox
from flux_azdo.uninstall import UninstallResult
from support.bootstrap import bootstrap_with_pipeline_reporter

URL = "https://dev.azure.com/contoso/Platform/_git/fleet-infra"
COMPONENTS = "94d751f9a2d3d8f23606c67ea85461693bffbc9e"
SYNC = "0b0d332162016a9d84e25bed05786b48350ae173"
HOSTILE = "a | b\n<script>alert(1)</script> [x](javascript:alert(1)) ![i](http://evil/x.png) **bold** `tick` #12 &amp;"


def ready(kind: str, name: str, message: str, revision: str = "") -> ObjectHealth:
    return ObjectHealth(
        kind=kind,
        namespace="flux-system",
        name=name,
        ready=True,
        conditions=(Condition("Ready", "True", "Succeeded", message),),
        events=(),
        waiting=(),
        revision=revision,
    )


def result(**changes: object) -> BootstrapResult:
    values: dict[str, object] = {
        "version": "v2.4.0",
        "components_commit": COMPONENTS,
        "sync_commit": SYNC,
        "revision": f"main@sha1:{SYNC}",
        "files": (
            PlannedFile("clusters/prod/flux-system/gotk-components.yaml", "...", "create"),
            PlannedFile("clusters/prod/flux-system/gotk-sync.yaml", "...", "create"),
            PlannedFile("clusters/prod/flux-system/kustomization.yaml", "...", "keep"),
        ),
        "applied": (
            ObjectChange("v1", "Namespace", None, "flux-system", "unchanged"),
            ObjectChange("source.toolkit.fluxcd.io/v1", "GitRepository", "flux-system", "flux-system", "created"),
            ObjectChange("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "flux-system", "flux-system", "created"),
            ObjectChange("apps/v1", "Deployment", "flux-system", "source-controller", "configured"),
        ),
        "secret": "created",
        "health": (
            ready(
                "GitRepository", "flux-system", f"stored artifact for revision 'main@sha1:{SYNC}'", f"main@sha1:{SYNC}"
            ),
            ready("Kustomization", "flux-system", f"Applied revision: main@sha1:{SYNC}"),
            ObjectHealth("Deployment", "flux-system", "source-controller", True, (), (), ()),
        ),
        "installed": True,
        "reconcile_requested": False,
    }
    values.update(changes)
    return BootstrapResult(**values)  # type: ignore[arg-type]


def table_rows(markdown: str, header_start: str) -> list[list[str]]:
    """The cells of the table whose header row starts with `header_start`, split at unescaped pipes."""
    lines = markdown.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]])
    width = len(rows[0])
    assert all(len(row) == width for row in rows), rows
    return rows[2:]


def assert_inert(markdown: str) -> None:
    """No untrusted HTML, link, image or emphasis survived."""
    assert "<script" not in markdown
    assert "](javascript" not in markdown
    assert "![i](" not in markdown
    assert "**bold**" not in markdown


def test_a_first_bootstrap_says_what_was_done_with_commit_links_and_health() -> None:
    md = bootstrap_summary(
        result(), url=URL, branch="main", path="clusters/prod", flux_version="", warnings=["the PAT will expire"]
    )
    assert md.startswith("## ✔ Flux bootstrap: changes made\n")
    assert f"[`94d751f`]({URL}/commit/{COMPONENTS})" in md
    assert f"[`0b0d332`]({URL}/commit/{SYNC})" in md
    assert "| Flux | `v2.4.0` |" in md
    assert "| Path | `clusters/prod` |" in md
    files = table_rows(md, "| File |")
    assert files == [
        ["clusters/prod/flux-system/gotk-components.yaml", "created"],
        ["clusters/prod/flux-system/gotk-sync.yaml", "created"],
        ["clusters/prod/flux-system/kustomization.yaml", "kept (yours)"],
    ]
    assert "- Components: installed by this run" in md
    assert "- Objects applied: 4 objects (2 created, 1 configured, 1 unchanged)" in md
    assert "- Source secret: created" in md
    health = table_rows(md, "| Kind |")
    assert [row[:3] for row in health] == [
        ["GitRepository", "flux-system/flux-system", "✔ yes"],
        ["Kustomization", "flux-system/flux-system", "✔ yes"],
        ["Deployment", "flux-system/source-controller", "✔ yes"],
    ]
    assert health[1][3] == f"Applied revision: main@sha1:{SYNC}"
    assert "### Warnings (1)\n\n- ⚠️ the PAT will expire" in md


def test_a_re_run_says_nothing_changed() -> None:
    md = bootstrap_summary(
        result(components_commit=None, sync_commit=None, installed=False, secret="unchanged", applied=()),
        url=URL,
        branch="main",
        path="",
        flux_version="v2.4.0",
    )
    assert md.startswith("## ✔ Flux bootstrap: nothing to change")
    assert md.count("no new commit (already up to date)") == 2
    assert "(repository root)" in md
    assert "Warnings" not in md


def test_a_switch_of_credential_names_the_old_keys_removed() -> None:
    md = bootstrap_summary(
        result(secret="updated", removed_keys=("username", "password")), url=URL, branch="main", path=""
    )
    assert "- Source secret: updated with the new credential (old keys removed: `username`, `password`)" in md


def test_untrusted_text_is_escaped_everywhere_it_appears() -> None:
    broken = ObjectHealth("Kustomization", "flux-system", "flux-system", False, (), (), (), detail=HOSTILE)
    md = bootstrap_summary(
        result(health=(broken,), files=(PlannedFile(f"clusters/{HOSTILE}.yaml", "", "create"),)),
        url="https://user:s3cr3t-pat@dev.azure.com/contoso/P/_git/r?x=1#frag",
        branch="main",
        path="clusters/a|b",
        flux_version="v2.4.0 <b>",
        warnings=[HOSTILE],
    )
    assert_inert(md)
    assert "s3cr3t-pat" not in md
    assert f"(https://dev.azure.com/contoso/P/_git/r/commit/{SYNC})" in md
    health = table_rows(md, "| Kind |")
    assert health[0][2] == "✗ no"
    assert "&lt;script&gt;" in health[0][3] and "a \\| b" in health[0][3]
    assert "&amp;amp;" in health[0][3]
    table_rows(md, "| File |")
    assert "`clusters/a|b`" not in md and "clusters/a\\|b" in md


def test_escaping_keeps_the_text_readable() -> None:
    assert text("a|b\nc <d> [e](f) #1 flux-system") == "a\\|b c &lt;d&gt; \\[e\\]\\(f\\) \\#1 flux-system"
    assert text("- not a list") == "\\- not a list"
    assert text("12. not a list") == "12\\. not a list"
    assert text("+ x") == "\\+ x"


def test_a_link_needs_a_web_url() -> None:
    md = bootstrap_summary(result(), url="ssh://git@ssh.dev.azure.com/v3/contoso/P/r", branch="main", path="x")
    assert "/commit/" not in md
    assert "`94d751f`" in md
    md = bootstrap_summary(result(), url="javascript:alert(1)//dev.azure.com", branch="main", path="x")
    assert "](javascript" not in md and "/commit/" not in md


def test_a_failed_bootstrap_gives_the_fix_and_what_was_done() -> None:
    stuck = ObjectHealth(
        "Kustomization",
        "flux-system",
        "flux-system",
        False,
        (Condition("Ready", "False", "BuildFailed", "kustomize build failed"),),
        ("Warning BuildFailed: kustomize build failed",),
        (),
        detail="BuildFailed: kustomize build failed",
    )
    partial = result(health=(result().health[0], stuck))
    md = failure_summary(
        "bootstrap",
        "bootstrap failed: the Kustomization health check did not pass",
        "see the health report above; once the cause is fixed, run the command again",
        partial,
        ["the PAT will expire"],
        url=URL,
    )
    assert md.startswith("## ✗ Flux bootstrap failed\n")
    assert "**Fix:** see the health report above; once the cause is fixed, run the command again" in md
    assert "### What was done before it stopped" in md
    assert f"({URL}/commit/{SYNC})" in md
    rows = table_rows(md, "| Kind |")
    assert rows[1] == ["Kustomization", "flux-system/flux-system", "✗ no", "BuildFailed: kustomize build failed"]
    assert "- ⚠️ the PAT will expire" in md


def test_a_failure_without_a_partial_result() -> None:
    md = failure_summary("rotateCredentials", f"git ls-remote failed: {HOSTILE}", None)
    assert md.startswith("## ✗ Flux credential rotation failed\n")
    assert "Fix" not in md and "What was done" not in md
    assert_inert(md)
    md = failure_summary("uninstall", "timed out", "run it again", UninstallResult(suspended=["GitRepository/a/b"]))
    assert "### Suspended (1)" in md and "- GitRepository/a/b" in md


#: A secret made of what the summary escapes: Markdown, HTML and table characters, a backslash, a leading `-`.
MARKUP_SECRET = "-s3_cr*et<x>|y\\z&[q](u)#!~`w{1}"
MARKUP_SECRETS = (MARKUP_SECRET, "12.ab_cd*ef<g>h", "p@ss_w0rd*2")


def _leaks(markdown: str, secret: str) -> list[str]:
    """Where a secret (or its escaped form) is still in the page."""
    return [form for form in (secret, text(secret), text(f"x {secret}")[2:]) if form in markdown]


@pytest.mark.parametrize("secret", MARKUP_SECRETS)
@pytest.mark.parametrize("pass_mask", [True, False], ids=["mask-passed", "write_summary-only"])
def test_a_secret_full_of_markup_never_reaches_the_summary_file(secret: str, pass_mask: bool, tmp_path: Path) -> None:
    out = io.StringIO()
    masker = Masker(out)
    masker.register(secret, name="the input gitPat")
    reporter = PipelineReporter(out, masker, total_steps=1)
    message = f"git push failed: fatal: Authentication failed for 'https://pat:{secret}@dev.azure.com/o/p/_git/r'"
    options = {"mask": masker.mask} if pass_mask else {}
    markdown = failure_summary(
        "bootstrap", message, f"check the PAT {secret}", None, [secret, f"token {secret}"], url=URL, **options
    )
    if pass_mask:
        assert not _leaks(markdown, secret) and "\\*\\*\\*" in markdown  # masked first, then escaped
    else:
        assert _leaks(markdown, secret)  # escaped, not masked: the case write_summary must still catch
    path = tmp_path / "flux-azdo-summary-bootstrap.md"
    reporter.write_summary(path, markdown)
    written = path.read_text(encoding="utf-8")
    assert not _leaks(written, secret), written
    assert "git push failed" in written and "check the PAT" in written


def test_every_builder_masks_before_escaping() -> None:
    masker = Masker(io.StringIO())
    masker.register(MARKUP_SECRET)
    health = ObjectHealth("Kustomization", "flux-system", MARKUP_SECRET, False, (), (), (), detail=MARKUP_SECRET)
    pages = [
        bootstrap_summary(
            result(health=(health,), files=(PlannedFile(f"clusters/{MARKUP_SECRET}.yaml", "", "create"),)),
            url=URL,
            branch=MARKUP_SECRET,
            path=MARKUP_SECRET,
            flux_version=MARKUP_SECRET,
            warnings=[MARKUP_SECRET],
            mask=masker.mask,
        ),
        uninstall_summary(UninstallResult(deleted=[MARKUP_SECRET]), mask=masker.mask),
        failure_summary("bootstrap", MARKUP_SECRET, MARKUP_SECRET, None, mask=masker.mask),
    ]
    for page in pages:
        assert not _leaks(page, MARKUP_SECRET), page


def test_a_plan_summary_lists_files_objects_and_diffs() -> None:
    diff = "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-old\n+new ``` fence\n"
    plan = PlanResult(
        url=URL,
        branch="main",
        version="v2.4.0",
        cluster="https://aks.example:443",
        repository="existing",
        files=(
            FilePlan("clusters/prod/flux-system/gotk-sync.yaml", "update", diff, 1, 1),
            FilePlan("clusters/prod/flux-system/kustomization.yaml", "unchanged", "", 0, 0),
        ),
        objects=(
            ObjectPlan("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "flux-system", "flux-system", "update"),
            ObjectPlan("v1", "Namespace", None, "flux-system", "unchanged"),
        ),
        secrets=(SecretPlan("flux-system", "flux-system", "source", "unchanged"),),
        install=False,
    )
    md = plan_summary(plan)
    assert md.startswith("## Flux plan: changes to make\n")
    assert table_rows(md, "| File |")[0] == ["clusters/prod/flux-system/gotk-sync.yaml", "update", "+1 −1"]
    assert table_rows(md, "| Object |") == [["Kustomization/flux-system/flux-system", "update"]]
    assert "0 to create, 1 to update, 1 unchanged." in md
    assert "values never shown" in md
    # the diff's own ``` cannot close the block it is in
    assert "````diff\n--- a/x" in md and "+new ``` fence\n````" in md


def test_a_check_summary_shows_each_check_and_the_verdict() -> None:
    caller = Caller("id", "Platform Build Service (contoso)", "d", None, None, "build-service", "p")
    report = CheckReport(
        url=URL,
        branch="main",
        items=(
            CheckItem("repository", "ok", "repository fleet-infra exists"),
            CheckItem("permission:GenericContribute", "fail", f"cannot push: {HOSTILE}", fix="grant Contribute"),
            CheckItem("pat:expiry", "warn", "the PAT expires in 5 days", fix="renew it"),
            CheckItem("ssh", "skip", "no SSH key given"),
        ),
        caller=caller,
        repository=None,
    )
    md = check_summary(report)
    assert md.startswith("## ✗ Flux check: blocked\n")
    rows = table_rows(md, "|  | Check |")
    assert [row[0] for row in rows] == ["✔", "✗", "⚠️", "–"]
    assert rows[1][3] == "grant Contribute" and rows[0][3] == ""
    assert "### Checks (1 ok, 1 failed, 1 warnings, 1 skipped)" in md
    assert "Platform Build Service \\(contoso\\) \\(build-service\\)" in md
    assert_inert(md)
    ok = CheckReport(URL, "main", (CheckItem("repository", "ok", "exists"),), None, None)
    assert check_summary(ok).startswith("## ✔ Flux check: ready\n")


def test_uninstall_and_rotate_summaries() -> None:
    done = UninstallResult(
        suspended=["GitRepository/flux-system/flux-system"],
        deleted=["Deployment/flux-system/source-controller", "Namespace/flux-system"],
        finalizers_removed=["GitRepository/flux-system/flux-system"],
        commit=SYNC,
    )
    md = uninstall_summary(done, url=URL)
    assert md.startswith("## ✔ Flux uninstall: done\n")
    assert "2 objects deleted, 1 suspended first" in md
    assert f"({URL}/commit/{SYNC})" in md
    assert uninstall_summary(UninstallResult()).startswith("## Flux uninstall: nothing to remove")
    many = UninstallResult(deleted=[f"ConfigMap/ns/c{i}" for i in range(60)])
    assert "- … and 10 more" in uninstall_summary(many)

    md = rotate_summary(RotateResult("updated", ("password",), f"main@sha1:{SYNC}", "2026-11-26T12:00:00Z"))
    assert md.startswith("## ✔ Flux credentials rotated\n")
    assert "| Source secret | updated with the new credential |" in md
    assert "| Old keys removed | `password` |" in md
    assert rotate_summary(RotateResult("unchanged", (), "main@sha1:x", "t")).startswith(
        "## ✔ Flux credentials: unchanged"
    )


# -- from a real run -------------------------------------------------------------------------------------------


def test_the_summary_of_a_real_bootstrap(
    isolated: None, cluster_sandbox: Sandbox, sample_file: Path, tmp_path: Path
) -> None:
    run = bootstrap_with_pipeline_reporter(
        cluster_sandbox, sample_file, tmp_path, path="clusters/summary", total_steps=12
    )
    done, reporter = run.result, run.reporter
    md = bootstrap_summary(
        done, url=cluster_sandbox.repo_url, branch="main", path="clusters/summary", warnings=reporter.warnings
    )
    path = tmp_path / "flux-azdo-summary-bootstrap.md"
    reporter.write_summary(path, md)
    written = path.read_text(encoding="utf-8")

    assert cluster_sandbox.pat not in written
    assert done.components_commit and done.sync_commit
    assert f"({cluster_sandbox.repo_url}/commit/{done.sync_commit})" in written
    assert f"({cluster_sandbox.repo_url}/commit/{done.components_commit})" in written
    assert [row[0] for row in table_rows(written, "| File |")] == [text(f.path) for f in done.files]
    health = table_rows(written, "| Kind |")
    assert len(health) == len(done.health) >= 3
    assert all(row[2] == "✔ yes" for row in health)
    assert {row[0] for row in health} >= {"GitRepository", "Kustomization", "Deployment"}
    assert f"### Warnings ({len(reporter.warnings)})" in written
    assert f"| Flux | `{done.version}` |" in written
