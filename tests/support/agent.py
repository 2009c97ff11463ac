"""The simulated Azure Pipelines agent for the tests: `flux_azdo.sandbox.pipelines_agent` (what the agent hands a
task and how it reads the output: see that module), plus what the test modules build with it.

The names below are what tests/pipeline/test_task_*.py import; the simulation itself lives in the sandbox, where
`flux-azdo demo --task` uses it too.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from flux_azdo.demo import seed_sample_distribution
from flux_azdo.sandbox import SAMPLE_VERSION
from flux_azdo.sandbox.azure_devops.security import GitPermission, repository_token
from flux_azdo.sandbox.kube import AccessRule
from flux_azdo.sandbox.pipelines_agent import (
    AgentRun,
    Command,
    Endpoint,
    SimulatedAgent,
    endpoint_environment,
    kubeconfig_endpoint,
    parse_command,
    parse_run,
    secret_forms,
    service_account_endpoint,
    unescape,
)
from flux_azdo.sandbox.pipelines_agent import agent_process_environment as base_environment
from flux_azdo.sandbox.runtime import Sandbox
from support.sandboxes import running_sandbox

__all__ = [
    "PIPELINE_USER",
    "SAMPLE_VERSION",
    "AgentRun",
    "Command",
    "Endpoint",
    "SimulatedAgent",
    "assert_clean",
    "assert_clean_result",
    "base_environment",
    "cluster_user",
    "endpoint_environment",
    "kubeconfig_endpoint",
    "parse_command",
    "parse_run",
    "pipeline_sandbox",
    "secret_forms",
    "seed_distribution_cache",
    "service_account_endpoint",
    "simulated_agent",
    "task_step",
    "unescape",
]

#: The kube user of the Kubernetes service connection (the requests it makes carry this name).
PIPELINE_USER = "pipeline"


def seed_distribution_cache(cache_home: Path) -> None:
    """flux-azdo's OCI layer cache (XDG_CACHE_HOME) holding the sample distribution as ghcr.io's Flux manifests at
    SAMPLE_VERSION: the task finds it there and never reaches for the network, as on a warm offline agent."""
    seed_sample_distribution(cache_home)


def simulated_agent(tmp_path_factory: Any, sandbox: Any) -> SimulatedAgent:
    """An agent with folders of its own, the session's staged task and a warm distribution cache."""
    from support.task import staged_task_folder

    folder = tmp_path_factory.mktemp("agent")
    seed_distribution_cache(folder / "cache")
    environ = base_environment(folder / "home", folder / "cache", sandbox)
    return SimulatedAgent(staged_task_folder(tmp_path_factory), folder / "work", sandbox, base_env=environ)


def assert_clean(run: AgentRun, *secrets: str, discovered: Iterable[str] = ()) -> None:
    """Exit 0 (the result is in task.complete); no form of `secrets` (what the job hands over) or of `discovered`
    (credentials the task finds later, in a kubeconfig) readable; the job's secrets registered before any other
    line, and that first line says what runs; nothing of the run left in AGENT_TEMPDIRECTORY but its summary."""
    assert run.exit_code == 0, run.stderr
    assert run.leaks([*secrets, *discovered]) == []
    first_other = next(i for i, line in enumerate(run.lines) if "##vso[task.setsecret]" not in line)
    assert run.lines[first_other].startswith("flux-azdo ")
    early = {c.data for c in (parse_command(line) for line in run.lines[:first_other]) if c is not None}
    assert all(secret in early for secret in secrets)
    assert run.leftovers() == []
    assert run.result is not None


def assert_clean_result(
    run: AgentRun, expected: tuple[str, str], *secrets: str, discovered: Iterable[str] = ()
) -> None:
    """`assert_clean`, then the task's result and its `result` output variable (`expected`), e.g. ("Succeeded",
    "changed")."""
    assert_clean(run, *secrets, discovered=discovered)
    assert (run.result, run.outputs["result"]) == expected, run.stdout


@contextlib.contextmanager
def pipeline_sandbox(directory: Path, **options: Any) -> Iterator[Sandbox]:
    """A sandbox with the API server (`options` as `running_sandbox` takes them) where the project's build service
    may push and create the first branch: what a project admin grants it before the task's first run."""
    with running_sandbox(directory, kube=True, **options) as running:
        repo = repository_token(running.project.id, running.repository.id)
        bits = GitPermission.GENERIC_CONTRIBUTE | GitPermission.CREATE_BRANCH
        running.world.allow(running.build_service, repo, int(bits))
        yield running


def cluster_user(sandbox: Sandbox) -> str:
    """The token of PIPELINE_USER, who may do anything in the cluster (the service connection's account)."""
    assert sandbox.kube is not None
    return sandbox.kube.add_user(PIPELINE_USER, [AccessRule(verbs=("*",))])


def task_step(sandbox: Sandbox, endpoint: Endpoint, **inputs: object) -> dict[str, object]:
    """A YAML step's inputs as the agent hands them over (`clusterPat: $(clusterPat)` arrives expanded): the service
    connection, the sandbox's repository by name over its plain-HTTP server, this interpreter, then `inputs`."""
    return {
        "kubernetesServiceConnection": endpoint.id,
        "repositoryUrl": sandbox.repository.name,
        "allowInsecureHttp": True,
        "pythonPath": sys.executable,
        **inputs,
    }
