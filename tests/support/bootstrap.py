"""A real bootstrap into the sandbox reported by the task's `PipelineReporter`: what the reporter and summary
tests read (the log the agent would get, the warnings for the summary), without node and the simulated agent."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from flux_azdo.bootstrap import BootstrapResult, bootstrap
from flux_azdo.demo import add_bootstrap_user, bootstrap_options
from flux_azdo.pipeline.masking import Masker
from flux_azdo.pipeline.reporter import PipelineReporter
from flux_azdo.sandbox.runtime import Sandbox


@dataclass
class ReportedBootstrap:
    """The bootstrap's result, the reporter (still open: a test may set outputs and complete it), its masker, and
    everything written so far (`output`)."""

    result: BootstrapResult
    reporter: PipelineReporter
    masker: Masker
    output: io.StringIO


def bootstrap_with_pipeline_reporter(
    sandbox: Sandbox, sample_file: Path, folder: Path, *, path: str, total_steps: int
) -> ReportedBootstrap:
    """Bootstraps the sample distribution into `path` of the sandbox repository, as a user of its own (kubeconfig
    in `folder`), with the sandbox PAT registered with the masker first, as the task registers its secrets."""
    out = io.StringIO()
    masker = Masker(out)
    masker.register(sandbox.pat, usernames=["git"], name="the sandbox PAT")
    reporter = PipelineReporter(out, masker, total_steps=total_steps)
    kubeconfig = add_bootstrap_user(sandbox, folder / "pipeline.kubeconfig")
    options = bootstrap_options(sandbox, kubeconfig, sample_file, path=path)
    return ReportedBootstrap(bootstrap(options, reporter), reporter, masker, out)
