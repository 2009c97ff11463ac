"""The bootstrap events as the agent reads them: secrets registered first and never printed, one group per step,
progress that only moves forward, issues for warnings and failures, output variables and the result.

Each output is read with the independent parser of `test_commands` and checked by `check_log`, which plays the
agent's part: it fails on a line it would take for a command we did not mean, on a group opened inside a group,
on progress going backwards, and on any registered form of a secret outside a setsecret line.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from test_commands import HOSTILE, agent_lines, keyword_free, parse_line

from flux_azdo.bootstrap import Reporter
from flux_azdo.pipeline.masking import Masker
from flux_azdo.pipeline.reporter import PipelineReporter
from flux_azdo.sandbox.runtime import Sandbox
from support.bootstrap import bootstrap_with_pipeline_reporter

PAT = "7hq2kz9m4n5p6r7s8t9u0v1w2x3y4z5a6b7c8d9e0f1g2h3i4j5k"
OURS = {
    "task.setsecret",
    "task.setprogress",
    "task.logissue",
    "task.setvariable",
    "task.complete",
    "task.uploadsummary",
}


@dataclass
class Log:
    """What the agent made of the output."""

    secrets: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    progress: list[int] = field(default_factory=list)
    issues: list[tuple[str, str]] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    results: list[tuple[str, str]] = field(default_factory=list)
    summaries: list[str] = field(default_factory=list)
    plain: list[str] = field(default_factory=list)
    group_open: bool = False


def check_log(output: str, forms: Sequence[str] = ()) -> Log:
    log = Log()
    registering = True
    for line in agent_lines(output):
        parsed = parse_line(line)
        if parsed is not None and parsed.name == "task.setsecret":
            assert registering, f"setsecret after other output: {line}"
            log.secrets.append(parsed.data)
            continue
        registering = False
        for form in forms:
            assert form not in line, f"a secret form is printed: {line!r}"
        if line.startswith("##[group]"):
            assert not log.group_open, "a group opened inside a group"
            assert keyword_free(line[len("##[group]") :])
            log.groups.append(line[len("##[group]") :])
            log.group_open = True
        elif line == "##[endgroup]":
            assert log.group_open, "endgroup without a group"
            log.group_open = False
        elif parsed is not None:
            assert parsed.name in OURS, line
            assert line.startswith("##vso["), line
            # An output variable's data is its value, unchanged: the agent reads the line as this command from its
            # start, so a "##vso[" further on is data. Every other command's data is our (defused) text.
            assert parsed.name == "task.setvariable" or keyword_free(parsed.data), line
            assert all(keyword_free(value) for value in parsed.properties.values()), line
            if parsed.name == "task.setprogress":
                value = int(parsed.properties["value"])
                assert 0 <= value <= 100
                assert not log.progress or value >= log.progress[-1], "progress went backwards"
                assert value < 100 or not log.group_open
                log.progress.append(value)
            elif parsed.name == "task.logissue":
                log.issues.append((parsed.properties["type"], parsed.data))
            elif parsed.name == "task.setvariable":
                assert parsed.properties["isoutput"] == "true"
                log.outputs[parsed.properties["variable"]] = parsed.data
            elif parsed.name == "task.complete":
                log.results.append((parsed.properties["result"], parsed.data))
            elif parsed.name == "task.uploadsummary":
                log.summaries.append(parsed.data)
        else:
            assert keyword_free(line), line
            log.plain.append(line)
    return log


def reporter_and_output(total_steps: int = 4) -> tuple[PipelineReporter, Masker, io.StringIO]:
    out = io.StringIO()
    masker = Masker(out)
    masker.register(PAT, usernames=["git"])
    return PipelineReporter(out, masker, total_steps=total_steps), masker, out


def test_it_is_a_bootstrap_reporter() -> None:
    reporter: Reporter = reporter_and_output()[0]
    assert reporter is not None


def test_a_rewrite_changes_the_words_of_messages_before_they_are_masked_and_neutralised() -> None:
    """The task passes `in_input_terms`: warnings, failures, details and successes name inputs, not flags; what
    the rewrite produces is still masked and neutralised (it cannot reveal a secret or form a command)."""
    out = io.StringIO()
    masker = Masker(out)
    masker.register(PAT, usernames=["git"])

    def rewrite(text: str) -> str:
        return text.replace("--provider azure", "clusterAuth workloadIdentity").replace("SECRET", PAT + " ##vso[x]")

    reporter = PipelineReporter(out, masker, total_steps=2, rewrite=rewrite)
    reporter.action("checking")
    reporter.success("use --provider azure")
    reporter.detail("fix: use --provider azure")
    reporter.warning("use --provider azure SECRET")
    reporter.failure("use --provider azure")
    text = out.getvalue()
    log = check_log(text, sorted(masker.forms))  # no secret form, no command but ours
    assert "--provider" not in text
    assert "✔ use clusterAuth workloadIdentity" in log.plain
    assert "    fix: use clusterAuth workloadIdentity" in log.plain
    assert reporter.warnings == ["use clusterAuth workloadIdentity *** #_#vso[x]"]
    assert reporter.errors == ["use clusterAuth workloadIdentity"]
    assert [issue for issue in log.issues] == [("warning", reporter.warnings[0]), ("error", reporter.errors[0])]


def test_each_action_is_a_group_of_its_own_with_its_lines_inside() -> None:
    reporter, masker, out = reporter_and_output()
    reporter.action("cloning branch main")
    reporter.success("cloned repository")
    reporter.action("generating component manifests")
    reporter.generate("generated component manifests")
    reporter.waiting("waiting for GitRepository")
    reporter.detail("first\n  second\n")
    reporter.close()
    reporter.close()
    text = out.getvalue()
    log = check_log(text, sorted(masker.forms))
    assert log.groups == ["cloning branch main", "generating component manifests"]
    assert not log.group_open
    after_secrets = [line for line in agent_lines(text) if not line.startswith("##vso[task.setsecret]")]
    assert after_secrets == [
        "##vso[task.setprogress value=0;]cloning branch main",
        "##[group]cloning branch main",
        "✔ cloned repository",
        "##[endgroup]",
        "##vso[task.setprogress value=25;]generating component manifests",
        "##[group]generating component manifests",
        "✚ generated component manifests",
        "◎ waiting for GitRepository",
        "    first",
        "      second",
        "##[endgroup]",
    ]


def test_progress_only_moves_forward_and_stays_below_100_until_complete() -> None:
    reporter, _, out = reporter_and_output(total_steps=3)
    for step in range(6):
        reporter.action(f"step {step}")
    reporter.progress(150, "over the top")
    reporter.progress(10, "backwards")
    reporter.progress(-5, "negative")
    log = check_log(out.getvalue())
    assert log.progress == [0, 33, 66, 99, 99, 99, 99, 99, 99]
    reporter.complete("Succeeded", "bootstrap finished")
    log = check_log(out.getvalue())
    assert log.progress[-1] == 100
    assert log.results == [("Succeeded", "bootstrap finished")]
    assert not log.group_open


def test_a_failure_closes_the_group_so_the_error_is_not_folded_away() -> None:
    reporter, _, out = reporter_and_output()
    reporter.action("installing components")
    reporter.detail("applied 12 objects")
    reporter.failure("the Kustomization health check did not pass")
    lines = [line for line in agent_lines(out.getvalue()) if not line.startswith("##vso[task.setsecret]")]
    assert lines[-3:] == [
        "    applied 12 objects",
        "##[endgroup]",
        "##vso[task.logissue type=error;]the Kustomization health check did not pass",
    ]
    assert not check_log(out.getvalue()).group_open


def test_a_failed_run_completes_without_claiming_progress() -> None:
    reporter, _, out = reporter_and_output()
    reporter.action("installing components")
    reporter.failure("the Kustomization health check did not pass")
    reporter.complete("Failed", "bootstrap failed")
    log = check_log(out.getvalue())
    assert log.progress == [0]
    assert log.issues == [("error", "the Kustomization health check did not pass")]
    assert log.results == [("Failed", "bootstrap failed")]
    assert reporter.errors == ["the Kustomization health check did not pass"]


def test_warnings_and_failures_are_issues_and_are_kept() -> None:
    reporter, _, out = reporter_and_output()
    reporter.warning("the PAT is stored in the cluster")
    reporter.failure("push rejected")
    log = check_log(out.getvalue())
    assert log.issues == [("warning", "the PAT is stored in the cluster"), ("error", "push rejected")]
    assert reporter.warnings == ["the PAT is stored in the cluster"]
    assert reporter.errors == ["push rejected"]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_messages_never_become_commands_groups_or_secrets(hostile: str) -> None:
    reporter, masker, out = reporter_and_output()
    message = f"{hostile} token={PAT}"
    reporter.action(message)
    reporter.generate(message)
    reporter.waiting(message)
    reporter.success(message)
    reporter.warning(message)
    reporter.failure(message)
    reporter.detail(message)
    reporter.line(message)
    reporter.progress(50, message)
    if "\n" in message or "\r" in message:
        with pytest.raises(ValueError, match="the output variable result cannot hold a line break"):
            reporter.set_output("result", message)
    else:
        reporter.set_output("result", message)
    reporter.complete("SucceededWithIssues", message)
    log = check_log(out.getvalue(), sorted(masker.forms))
    assert len(log.groups) == 1
    assert log.results[0][0] == "SucceededWithIssues"
    if "result" in log.outputs:
        assert log.outputs["result"] == message.replace(PAT, "***")  # the value itself, masked, nothing rewritten
    assert all("***" in data for _, data in log.issues)


def test_every_registered_form_is_masked_in_every_kind_of_line() -> None:
    reporter, masker, out = reporter_and_output()
    forms = sorted(masker.forms)
    for form in forms:
        reporter.action(f"a {form} b")
        reporter.detail(f"header: {form}")
        reporter.warning(form)
        reporter.set_output("x", form)
    reporter.complete("Succeeded", forms[0])
    check_log(out.getvalue(), forms)


def test_a_secret_hidden_by_an_ignorable_character_is_masked_after_neutralising() -> None:
    reporter, masker, out = reporter_and_output()
    reporter.success(f"##vso[x.y] {PAT[:10]}\u00ad{PAT[10:]}")
    check_log(out.getvalue(), sorted(masker.forms))
    assert "***" in out.getvalue().splitlines()[-1]


def test_a_secret_too_short_to_mask_is_a_warning_by_name_before_the_next_line() -> None:
    reporter, masker, out = reporter_and_output()
    masker.register("pw1", name="the input clusterPat")
    reporter.line("flux-azdo: bootstrap")
    reporter.success("done")
    log = check_log(out.getvalue(), sorted(masker.forms))
    warning = "the input clusterPat is shorter than 4 characters and cannot be masked in the log"
    assert log.issues == [("warning", warning)]
    assert reporter.warnings == [warning]
    assert log.plain == ["flux-azdo: bootstrap", "✔ done"]
    assert "pw1" not in out.getvalue()
    assert "pw1" not in log.secrets


def test_output_variables_come_back_exactly_as_set() -> None:
    reporter, _, out = reporter_and_output()
    values = {
        "syncCommit": "0123456789abcdef0123456789abcdef01234567",
        "repositoryUrl": "https://dev.azure.com/org/My%20Project/_git/fleet;x]y",
        "note": "a ##vso[task.complete result=Failed;]x and ##[group]y and 100% and a_b*c",
    }
    for name, value in values.items():
        reporter.set_output(name, value)
    reporter.set_output("token", f"Bearer {PAT}")
    log = check_log(out.getvalue())
    assert log.outputs == {**values, "token": "Bearer ***"}
    assert log.results == [] and log.groups == []  # the data stayed data
    before = out.getvalue()
    for value in ("two\nlines", "carriage\rreturn", "crlf\r\n"):
        with pytest.raises(ValueError, match="the output variable result cannot hold a line break"):
            reporter.set_output("result", value)
    assert out.getvalue() == before
    for bad in ("", "a b", "a;b", "x]", "a=b"):
        with pytest.raises(ValueError):
            reporter.set_output(bad, "v")


def test_complete_takes_only_results_the_agent_parses() -> None:
    reporter, _, out = reporter_and_output()
    before = out.getvalue()
    for bad in ("succeeded", "Cancelled", "Skipped", ""):
        with pytest.raises(ValueError):
            reporter.complete(bad, "x")  # type: ignore[arg-type]
    assert out.getvalue() == before


def test_the_summary_is_written_masked_and_uploaded_by_absolute_path(tmp_path: Path) -> None:
    reporter, masker, out = reporter_and_output()
    path = tmp_path / "flux-azdo-summary-bootstrap.md"
    reporter.write_summary(path, f"## Summary\n\nthe token {PAT} must not show\n")
    assert PAT not in path.read_text(encoding="utf-8")
    assert "the token *** must not show" in path.read_text(encoding="utf-8")
    log = check_log(out.getvalue(), sorted(masker.forms))
    assert log.summaries == [str(path)]
    relative = Path(os.path.relpath(path))
    reporter.upload_summary(relative)
    assert check_log(out.getvalue()).summaries[-1] == str(path)
    with pytest.raises(ValueError):
        reporter.upload_summary(tmp_path / "a\nb.md")


# -- a real bootstrap ------------------------------------------------------------------------------------------


def test_a_real_bootstrap_through_the_pipeline_reporter(
    isolated: None, cluster_sandbox: Sandbox, sample_file: Path, tmp_path: Path
) -> None:
    run = bootstrap_with_pipeline_reporter(
        cluster_sandbox, sample_file, tmp_path, path="clusters/pipeline", total_steps=8
    )
    result, reporter, masker, out = run.result, run.reporter, run.masker, run.output
    reporter.set_output("syncCommit", result.sync_commit or "")
    reporter.complete("Succeeded", "bootstrap finished")

    output = out.getvalue()
    log = check_log(output, sorted(masker.forms))
    assert cluster_sandbox.pat in log.secrets
    assert output.count(cluster_sandbox.pat) == 1  # its own setsecret line, nowhere else
    assert len(log.groups) >= 4
    assert log.groups[0] == "checking the repository and the cluster before any change"
    assert any(group.startswith("cloning branch") for group in log.groups)
    assert log.progress[-1] == 100 and log.progress[-2] < 100
    assert ("warning", reporter.warnings[0]) in log.issues  # the PAT stored in the cluster, the sample
    assert log.outputs == {"syncCommit": result.sync_commit}
    assert any(line.startswith("✔ ") for line in log.plain)
    assert log.results == [("Succeeded", "bootstrap finished")]
