"""Fixtures of the task runs (tests/pipeline/test_task_*.py): each module starts its own `sandbox` (module scope,
usually with `support.agent.pipeline_sandbox`); the service connection, its token and the agent follow from it.
`isolated` is for the tests that run the shared code in the test process itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from flux_azdo.sandbox.runtime import Sandbox
from support.agent import Endpoint, SimulatedAgent, cluster_user, service_account_endpoint, simulated_agent
from support.isolation import isolate_environment


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No credential or kubeconfig from the machine running the tests; a HOME of its own for git."""
    isolate_environment(monkeypatch, tmp_path / "home")


@pytest.fixture(scope="module")
def cluster_token(sandbox: Sandbox) -> str:
    return cluster_user(sandbox)


@pytest.fixture(scope="module")
def endpoint(sandbox: Sandbox, cluster_token: str) -> Endpoint:
    return service_account_endpoint(sandbox, cluster_token)


@pytest.fixture(scope="module")
def agent(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> SimulatedAgent:
    return simulated_agent(tmp_path_factory, sandbox)
