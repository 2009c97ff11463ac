"""`FluxBootstrap@1` stopping: one clear line as an error issue, a Failed result, the failure summary, exit code
0 (the result is the task's, not node's), no secret readable, and nothing written: no commit, no request that
changes the cluster, no file of the run left in the agent's temporary folder."""

from __future__ import annotations

import contextlib
import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from flux_azdo.sandbox.runtime import Sandbox
from support.agent import (
    PIPELINE_USER,
    SAMPLE_VERSION,
    AgentRun,
    Endpoint,
    SimulatedAgent,
    assert_clean_result,
    parse_run,
    pipeline_sandbox,
    task_step,
)
from support.processes import silent_listener, started


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with pipeline_sandbox(tmp_path_factory.mktemp("sandbox")) as running:
        yield running


def step(sandbox: Sandbox, endpoint: Endpoint, **inputs: object) -> dict[str, object]:
    return task_step(sandbox, endpoint, **{"clusterPat": sandbox.pat, "fluxVersion": SAMPLE_VERSION, **inputs})


def assert_failed_without_writes(run: AgentRun, sandbox: Sandbox, *secrets: str) -> str:
    """The one error line (returned), and that nothing was written anywhere."""
    assert_clean_result(run, ("Failed", "failed"), sandbox.job_token, *secrets)
    assert len(run.errors) == 1, run.errors
    assert "\n" not in run.errors[0] and "Traceback" not in run.stdout + run.stderr
    assert run.summary.startswith("## ✗ Flux")
    assert sandbox.repository.git_dir.exists()
    assert not any(r.user == PIPELINE_USER and r.is_write for r in sandbox.kube.requests) if sandbox.kube else True
    return run.errors[0]


def head_of_main(sandbox: Sandbox) -> str | None:
    ref = sandbox.repository.git_dir / "refs" / "heads" / "main"
    return ref.read_text(encoding="utf-8").strip() if ref.exists() else None


def test_the_job_token_as_the_clusters_pat_is_refused_before_anything_is_written(
    sandbox: Sandbox, agent: SimulatedAgent, endpoint: Endpoint
) -> None:
    """`clusterPat: $(System.AccessToken)`: it would stop working when the job ends."""
    run = agent.run(step(sandbox, endpoint, clusterPat=sandbox.job_token), endpoints=[endpoint])

    line = assert_failed_without_writes(run, sandbox)
    assert line.startswith('the pipeline\'s job token (from input "clusterPat") cannot be stored in the cluster')
    assert head_of_main(sandbox) is None


def test_a_missing_required_input_names_its_label_and_key(
    sandbox: Sandbox, agent: SimulatedAgent, endpoint: Endpoint
) -> None:
    run = agent.run(step(sandbox, endpoint, repositoryUrl=""), endpoints=[endpoint])

    line = assert_failed_without_writes(run, sandbox, sandbox.pat)
    assert line.startswith('input "Repository" (repositoryUrl) is required for action bootstrap: set repositoryUrl')


def test_a_pick_list_value_outside_its_options_lists_them(
    sandbox: Sandbox, agent: SimulatedAgent, endpoint: Endpoint
) -> None:
    run = agent.run(step(sandbox, endpoint, connectionType="aks"), endpoints=[endpoint])

    line = assert_failed_without_writes(run, sandbox, sandbox.pat)
    assert line == (
        "input \"Cluster connection type\" (connectionType) is 'aks', which is not one of its values: set "
        "connectionType to one of: kubernetesServiceConnection, azureResourceManager, kubeconfigFile"
    )


def test_a_secure_file_with_a_wrong_ticket_fails_with_the_permission_fix(
    sandbox: Sandbox, agent: SimulatedAgent, endpoint: Endpoint
) -> None:
    file_id, _ = sandbox.add_secure_file("deploy.key", b"not used: the ticket is wrong")

    run = agent.run(
        step(
            sandbox,
            endpoint,
            action="plan",
            clusterAuth="sshKey",
            sshKey=file_id,
            sshRepositoryUrl="ssh://git@127.0.0.1:2/o/p/r",
        ),
        endpoints=[endpoint],
        secure_files={file_id: ("deploy.key", "a-wrong-ticket")},
    )

    line = assert_failed_without_writes(run, sandbox, sandbox.pat, "a-wrong-ticket")
    assert line.startswith("secure file deploy.key could not be downloaded (HTTP 404)")
    assert "Pipeline permissions" in line


def test_a_cancel_removes_the_runs_files_and_exits_with_the_signal(
    sandbox: Sandbox, agent: SimulatedAgent, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The agent cancels a step with SIGTERM to node, which passes it on: the run's private folder (kubeconfigs,
    the secure file) is removed and the exit code is 128 + 15. The cluster here is a port that accepts connections
    and never answers, so the cancel lands while the task waits on the API server."""
    with silent_listener() as (silent, port), contextlib.ExitStack() as held:
        folder = tmp_path_factory.mktemp("silent")
        kubeconfig = folder / "kubeconfig"
        kubeconfig.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                    "users": [{"name": "u", "user": {"token": "a-token-nobody-checks"}}],
                    "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                    "current-context": "c",
                }
            ),
            encoding="utf-8",
        )
        environ, temp = agent.environment(
            step(
                sandbox,
                Endpoint("x", "", "", {}),
                action="check",
                connectionType="kubeconfigFile",
                kubeconfig=str(kubeconfig),
            )
        )
        with started(agent.command(), cwd=agent.sources, env=environ) as process:
            assert process.stdout is not None
            lines = []
            for line in process.stdout:  # until the task asks the cluster (the Azure DevOps checks come first)
                lines.append(line)
                if "##[group]checking the repository" in line:
                    break
            assert any(p.name.startswith("flux-azdo-") for p in temp.iterdir())  # the run's private folder
            silent.settimeout(60)
            # The task's request to the API server, which never gets an answer (closed after the process ended).
            held.enter_context(silent.accept()[0])
            process.send_signal(signal.SIGTERM)
            rest, err = process.communicate(timeout=60)

    run = parse_run(process.returncode, "".join(lines) + rest, err, temp)
    assert run.exit_code == 143, run.stdout + run.stderr
    assert list(temp.iterdir()) == []
    assert run.leaks([sandbox.job_token, sandbox.pat]) == []
    assert "stopped by SIGTERM" in run.stdout


def test_the_simulated_agent_masks_a_line_only_with_secrets_registered_before_it(tmp_path: Path) -> None:
    """As the agent: `task.setsecret` masks what follows it, so a secret printed before its registration leaks."""
    secret = "a-secret-value-0123456789"
    early = f"flux-azdo: {secret}\n##vso[task.setsecret]{secret}\n"
    late = f"##vso[task.setsecret]{secret}\nflux-azdo: {secret}\n"

    assert parse_run(0, early, "", tmp_path).leaks([secret]) != []
    assert parse_run(0, late, "", tmp_path).leaks([secret]) == []
