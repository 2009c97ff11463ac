"""`FluxBootstrap@1` as a pipeline runs it: node + the staged task + a simulated agent, against one sandbox.

The tests in this module run in order on one sandbox (Azure DevOps, the API server, the Flux simulator), as the
steps of a pipeline's life would: the first bootstrap with the job token pushing and a PAT for the cluster, its
re-run, a plan and checks of the bootstrapped cluster, a credential rotation, and the uninstall. Every run is
checked for secrets: the log masked with exactly what the task registered, and the summary file, must hold no form
of the job token, the PATs or the cluster token.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

from flux_azdo.cluster.client import Cluster, ClusterAccess
from flux_azdo.cluster.secrets import read_source_secret
from flux_azdo.sandbox.azure_devops.security import GitPermission, repository_token
from flux_azdo.sandbox.runtime import FULL_SCOPES, Sandbox
from support.agent import (
    SAMPLE_VERSION,
    Endpoint,
    SimulatedAgent,
    assert_clean_result,
    pipeline_sandbox,
    task_step,
)

SHA = re.compile(r"^[0-9a-f]{40}$")
PATH = "clusters/sandbox"
#: A command-line flag (`--provider`), as the shared code words its fixes for the CLI.
CLI_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with pipeline_sandbox(tmp_path_factory.mktemp("sandbox"), flux=True, deployment_ready_after=0.0) as running:
        yield running


def step(sandbox: Sandbox, endpoint: Endpoint, **inputs: object) -> dict[str, object]:
    """The YAML step's inputs (`clusterPat: $(clusterPat)` arrives expanded, as the agent expands macros)."""
    defaults = {"clusterPat": sandbox.pat, "path": PATH, "fluxVersion": SAMPLE_VERSION, "timeout": "90s"}
    return task_step(sandbox, endpoint, **{**defaults, **inputs})


def secret_of(sandbox: Sandbox) -> dict[str, str] | None:
    with Cluster(ClusterAccess(sandbox.kubeconfig_path)) as cluster:
        return read_source_secret(cluster, "flux-system", "flux-system")


def test_bootstrap_pushes_with_the_job_token_stores_the_pat_and_reruns_unchanged(
    sandbox: Sandbox, agent: SimulatedAgent, endpoint: Endpoint, cluster_token: str
) -> None:
    """As a new user writes the step: no pythonPath, so the launcher takes `python3` from PATH, where the venv's
    bin folder comes first (as after UsePythonVersion@0 or on an agent with Python installed)."""
    first = {name: value for name, value in step(sandbox, endpoint).items() if name != "pythonPath"}
    path = os.pathsep.join((os.path.dirname(sys.executable), os.environ.get("PATH", "/usr/bin:/bin")))
    run = agent.run(first, endpoints=[endpoint], secret_variables={"clusterPat": sandbox.pat}, agent_env={"PATH": path})

    assert_clean_result(run, ("Succeeded", "changed"), sandbox.job_token, sandbox.pat, cluster_token)
    outputs = run.outputs
    assert outputs["fluxVersion"] == SAMPLE_VERSION
    assert SHA.match(outputs["componentsCommit"]) and SHA.match(outputs["syncCommit"])
    assert outputs["repositoryUrl"] == sandbox.repo_url
    assert run.summary_path is not None and run.summary_path.parent == run.temp_directory
    assert re.fullmatch(r"flux-azdo-summary-bootstrap-[0-9a-f]{8}\.md", run.summary_path.name)
    assert "Flux bootstrap" in run.summary and f"{sandbox.repo_url}/commit/{outputs['syncCommit']}" in run.summary
    assert run.progress == sorted(run.progress) and run.progress[-1] == 100
    assert any(line.startswith("##[group]") for line in run.lines)
    # The cluster keeps the PAT; the job token, which dies with the job, is nowhere in it.
    assert secret_of(sandbox) == {"username": "git", "password": sandbox.pat}
    # The shared code's warning about the stored PAT and its fix, in the task's words: inputs and actions, no flag.
    warning = next(i for i, line in enumerate(run.lines) if "Flux stops syncing when it expires" in line)
    fix = run.lines[warning + 1]
    assert fix.startswith("    fix: use clusterAuth workloadIdentity (workload identity: nothing to expire)"), fix
    assert fix.endswith("(action rotateCredentials)"), fix
    assert "Flux stops syncing when it expires" in run.summary
    assert not CLI_FLAG.search(run.stdout + run.stderr + run.summary), CLI_FLAG.findall(run.stdout + run.summary)

    again = agent.run(step(sandbox, endpoint), endpoints=[endpoint], secret_variables={"clusterPat": sandbox.pat})

    assert_clean_result(again, ("Succeeded", "unchanged"), sandbox.job_token, sandbox.pat, cluster_token)
    assert again.summary_path != run.summary_path  # two bootstraps in one job keep a summary each
    assert again.outputs["componentsCommit"] == again.outputs["syncCommit"] == ""


def test_plan_with_another_interval_shows_the_change_and_writes_nothing(
    sandbox: Sandbox, agent: SimulatedAgent, endpoint: Endpoint, cluster_token: str
) -> None:
    before = head_of_main(sandbox)

    run = agent.run(step(sandbox, endpoint, action="plan", interval="5m0s"), endpoints=[endpoint])

    assert_clean_result(run, ("Succeeded", "changes"), sandbox.job_token, sandbox.pat, cluster_token)
    assert "gotk-sync.yaml" in run.summary
    assert "interval: 5m0s" in run.stdout  # the diff is in the log
    assert head_of_main(sandbox) == before


def test_check_is_ready_then_blocked_with_the_fix_when_the_build_service_may_not_push(
    sandbox: Sandbox, agent: SimulatedAgent, endpoint: Endpoint, cluster_token: str
) -> None:
    ready = agent.run(step(sandbox, endpoint, action="check"), endpoints=[endpoint])

    assert_clean_result(ready, ("Succeeded", "ready"), sandbox.job_token, sandbox.pat, cluster_token)

    repo = repository_token(sandbox.project.id, sandbox.repository.id)
    sandbox.world.deny(sandbox.build_service, repo, int(GitPermission.GENERIC_CONTRIBUTE))
    try:
        blocked = agent.run(step(sandbox, endpoint, action="check"), endpoints=[endpoint])
    finally:
        sandbox.world.clear(sandbox.build_service, repo, int(GitPermission.GENERIC_CONTRIBUTE))
        sandbox.world.allow(sandbox.build_service, repo, int(GitPermission.GENERIC_CONTRIBUTE))

    assert_clean_result(blocked, ("Failed", "blocked"), sandbox.job_token, sandbox.pat, cluster_token)
    assert "Contribute" in blocked.summary and "blocked" in blocked.summary
    assert any("blocked" in message for message in blocked.errors)


def test_rotate_credentials_stores_a_new_pat(
    sandbox: Sandbox, agent: SimulatedAgent, endpoint: Endpoint, cluster_token: str
) -> None:
    new_pat = sandbox.world.issue_pat(sandbox.user, FULL_SCOPES)

    run = agent.run(step(sandbox, endpoint, action="rotateCredentials", clusterPat=new_pat), endpoints=[endpoint])

    assert_clean_result(run, ("Succeeded", "rotated"), sandbox.job_token, new_pat, cluster_token)
    assert secret_of(sandbox) == {"username": "git", "password": new_pat}
    assert "rotated" in run.summary


def test_rotate_credentials_with_an_ssh_key_for_an_https_source_names_the_inputs_and_changes_nothing(
    sandbox: Sandbox, agent: SimulatedAgent, endpoint: Endpoint, cluster_token: str
) -> None:
    """rotateCredentials with clusterAuth sshKey: the key comes from the secure file (downloaded with the job
    token, masked), and the GitRepository's URL is https, which an SSH key cannot fetch: the step fails naming the
    inputs (sshKey, repositoryUrl), never the CLI's flags, and the cluster keeps its PAT."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    file_id, ticket = sandbox.add_secure_file("rotate.key", private)
    before = secret_of(sandbox)

    run = agent.run(
        step(sandbox, endpoint, action="rotateCredentials", clusterAuth="sshKey", sshKey=file_id),
        endpoints=[endpoint],
        secure_files={file_id: ("rotate.key", ticket)},
    )

    assert_clean_result(
        run, ("Failed", "failed"), sandbox.job_token, ticket, cluster_token, discovered=(private.decode(),)
    )
    assert len(run.errors) == 1 and run.errors[0].startswith("sshKey applies to SSH URLs only, and repositoryUrl is")
    assert not re.search(r"--(url|private-key-file)\b", run.stdout + run.summary)
    assert secret_of(sandbox) == before


def test_uninstall_removes_flux_and_its_manifests(
    sandbox: Sandbox, agent: SimulatedAgent, endpoint: Endpoint, cluster_token: str
) -> None:
    run = agent.run(step(sandbox, endpoint, action="uninstall", removeManifests=True), endpoints=[endpoint])

    assert_clean_result(run, ("Succeeded", "uninstalled"), sandbox.job_token, sandbox.pat, cluster_token)
    assert secret_of(sandbox) is None
    with Cluster(ClusterAccess(sandbox.kubeconfig_path)) as cluster:
        assert cluster.get("v1", "Namespace", "flux-system") is None
    assert files_on_main(sandbox) == []  # <path>/flux-system/ removed in a commit pushed with the job token
    assert "Flux uninstall: done" in run.summary and "Manifests removed from the repository" in run.summary


def files_on_main(sandbox: Sandbox) -> list[str]:
    listing = subprocess.run(
        ["git", "--git-dir", str(sandbox.repository.git_dir), "ls-tree", "-r", "--name-only", "refs/heads/main"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1"},
    )
    return [name for name in listing.stdout.splitlines() if name.startswith(PATH)]


def head_of_main(sandbox: Sandbox) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(sandbox.repository.git_dir), "rev-parse", "refs/heads/main"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1"},
    ).stdout.strip()
