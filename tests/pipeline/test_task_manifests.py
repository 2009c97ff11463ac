"""`FluxBootstrap@1` on an air-gapped agent: the Flux manifests come from the `manifests` input, as `--manifests`.

The agent here has no cached Flux release and cannot reach any registry: every proxy variable points at a closed
port on 127.0.0.1 (the sandbox itself is NO_PROXY), so a pull from ghcr.io fails at once instead of leaving the
machine. The cluster cannot pull from ghcr.io either; the controller images come from the mirror in `registry`.
The components file is the sample distribution, checked into the job's sources folder and named by a path
relative to it. The tests run in order on one sandbox: the bootstrap, a plan with the same inputs, then the
mistakes (no `manifests` on this agent, a folder without the file), each one line naming the input.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from flux_azdo.sandbox import sample_distribution_path
from flux_azdo.sandbox.runtime import Sandbox
from support.agent import (
    SAMPLE_VERSION,
    Endpoint,
    SimulatedAgent,
    assert_clean_result,
    base_environment,
    pipeline_sandbox,
    task_step,
)
from support.task import staged_task_folder

PATH = "clusters/airgap"
MIRROR = "registry.airgap.example.test/fluxcd"
COMPONENTS = "flux/gotk-components.yaml"  # in the sources folder, as a repository would hold it
CLOSED_PROXY = "http://127.0.0.1:9"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with pipeline_sandbox(
        tmp_path_factory.mktemp("sandbox"),
        flux=True,
        deployment_ready_after=0.0,
        unpullable_images=("ghcr.io/",),  # the cluster is air-gapped too: only the mirror's images pull
    ) as running:
        yield running


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The agent's XDG_CACHE_HOME: empty, no Flux release was ever pulled on this agent."""
    return tmp_path_factory.mktemp("empty-cache")


@pytest.fixture(scope="module")
def agent(sandbox: Sandbox, cache: Path, tmp_path_factory: pytest.TempPathFactory) -> SimulatedAgent:
    folder = tmp_path_factory.mktemp("airgapped-agent")
    environ = base_environment(folder / "home", cache, sandbox)
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"):
        environ[name] = environ[name.lower()] = CLOSED_PROXY
    environ["NO_PROXY"] = environ["no_proxy"] = "127.0.0.1,localhost"
    airgapped = SimulatedAgent(staged_task_folder(tmp_path_factory), folder / "work", sandbox, base_env=environ)
    target = airgapped.sources / COMPONENTS
    target.parent.mkdir(parents=True)
    with sample_distribution_path() as path:
        shutil.copyfile(path, target)
    return airgapped


def step(sandbox: Sandbox, endpoint: Endpoint, **inputs: object) -> dict[str, object]:
    """No fluxVersion: without `manifests` the task would need ghcr.io's release of the tested version."""
    defaults = {"clusterPat": sandbox.pat, "path": PATH, "manifests": COMPONENTS, "registry": MIRROR, "timeout": "90s"}
    return task_step(sandbox, endpoint, **{**defaults, **inputs})


def git(sandbox: Sandbox, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(sandbox.repository.git_dir), *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1"},
    ).stdout


def test_bootstrap_renders_the_components_file_of_the_sources_folder_and_pulls_nothing(
    sandbox: Sandbox, agent: SimulatedAgent, endpoint: Endpoint, cluster_token: str, cache: Path
) -> None:
    run = agent.run(step(sandbox, endpoint), endpoints=[endpoint], secret_variables={"clusterPat": sandbox.pat})

    assert_clean_result(run, ("Succeeded", "changed"), sandbox.job_token, sandbox.pat, cluster_token)
    assert run.outputs["fluxVersion"] == SAMPLE_VERSION  # the file's own release
    assert "ghcr.io" not in run.stdout  # nothing pulled, nothing cached
    assert list(cache.iterdir()) == []
    components = git(sandbox, "show", f"main:{PATH}/flux-system/gotk-components.yaml")
    assert f"Flux Version: {SAMPLE_VERSION}" in components
    assert f"image: {MIRROR}/source-controller:{SAMPLE_VERSION}" in components
    assert "image: ghcr.io/" not in components


def test_plan_with_the_same_manifests_finds_nothing_to_change(
    sandbox: Sandbox, agent: SimulatedAgent, endpoint: Endpoint, cluster_token: str
) -> None:
    before = git(sandbox, "rev-parse", "refs/heads/main")

    run = agent.run(step(sandbox, endpoint, action="plan"), endpoints=[endpoint])

    assert_clean_result(run, ("Succeeded", "noChanges"), sandbox.job_token, sandbox.pat, cluster_token)
    assert run.outputs["fluxVersion"] == SAMPLE_VERSION
    assert git(sandbox, "rev-parse", "refs/heads/main") == before


@pytest.mark.parametrize(
    ("manifests", "expected"),
    [
        ("", "cannot reach the registry ghcr.io"),
        ("docs", "the folder holds neither gotk-components.yaml nor flux-system/gotk-components.yaml"),
    ],
    ids=["none-on-an-offline-agent", "a-folder-without-the-file"],
)
def test_a_missing_or_wrong_manifests_is_one_line_that_names_the_input(
    sandbox: Sandbox, agent: SimulatedAgent, endpoint: Endpoint, cluster_token: str, manifests: str, expected: str
) -> None:
    """The shared code words these for `--manifests`; the task's user reads the input's name instead. A relative
    folder is shown rooted at the sources folder, where it was looked for."""
    if manifests:
        (agent.sources / manifests).mkdir(exist_ok=True)
        (agent.sources / manifests / "README.md").write_text("not Flux\n", encoding="utf-8")

    run = agent.run(step(sandbox, endpoint, action="plan", manifests=manifests), endpoints=[endpoint])

    assert_clean_result(run, ("Failed", "failed"), sandbox.job_token, sandbox.pat, cluster_token)
    assert len(run.errors) == 1 and expected in run.errors[0], run.errors
    assert "--manifests" not in run.stdout + run.summary
    if manifests:
        assert run.errors[0].startswith(f"manifests {agent.sources / manifests}: ")
        assert "point manifests at the file itself" in run.errors[0]
    else:
        assert "pass manifests with a gotk-components.yaml" in run.errors[0]
