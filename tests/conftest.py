"""Shared fixtures: the bundled sample distribution, and the Flux corpus in ../shared when present."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# The azure-devops SDK reads its on-disk location cache directory when it is first imported, and would
# otherwise share ~/.azure-devops between runs; every test run gets its own, before anything imports it.
_SDK_CACHE = os.environ["AZURE_DEVOPS_CACHE_DIR"] = tempfile.mkdtemp(prefix="flux-azdo-sdk-cache-")

import shutil
from collections.abc import Iterator

import pytest

from flux_azdo.manifests.distribution import Distribution, parse_distribution
from flux_azdo.sandbox import sample_distribution_path
from flux_azdo.sandbox.keys import write_rsa_key
from flux_azdo.sandbox.runtime import Sandbox
from support.corpus import corpus_dir
from support.leftovers import live_pids, wait_for_cleanup
from support.sandboxes import running_sandbox

_PIDS_AT_START: set[int] = set()


def pytest_sessionstart(session: pytest.Session) -> None:
    _PIDS_AT_START.update(live_pids())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when a test left a server listening or a process running: every test must stop what it starts."""
    shutil.rmtree(_SDK_CACHE, ignore_errors=True)
    workspace = str(session.config._tmp_path_factory.getbasetemp())  # type: ignore[attr-defined]
    processes, sockets = wait_for_cleanup(_PIDS_AT_START, workspace)
    if processes or sockets:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        lines = ["left running after the suite:", *processes, *(f"still listening: {s}" for s in sockets)]
        if reporter is not None:
            reporter.write_line("\n".join(lines), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def sample_text() -> str:
    with sample_distribution_path() as path:
        return path.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def sample(sample_text: str) -> Distribution:
    return parse_distribution(sample_text, "sample")


@pytest.fixture(scope="session")
def sample_file(tmp_path_factory: pytest.TempPathFactory, sample_text: str) -> Path:
    path = tmp_path_factory.mktemp("sample") / "gotk-components.yaml"
    path.write_text(sample_text, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def corpus() -> Path:
    path = corpus_dir()
    if path is None:
        pytest.skip("golden data ../shared/flux-corpus is not next to this checkout (set FLUX_CORPUS_DIR to use it)")
    return path


@pytest.fixture(scope="session")
def ssh_host_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RSA generation is the slowest part of a sandbox start, so keys are made once per session."""
    path = tmp_path_factory.mktemp("host-key") / "ssh_host_rsa_key"
    write_rsa_key(path, comment="sandbox-host")
    return path


@pytest.fixture(scope="session")
def user_ssh_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("user-key") / "id_rsa"
    write_rsa_key(path)
    return path


@pytest.fixture
def azdo_sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    """A fresh sandbox organisation (REST + git over HTTP) per test: tests may change its permissions freely."""
    with running_sandbox(tmp_path / "sandbox") as sandbox:
        yield sandbox


@pytest.fixture
def ssh_sandbox(tmp_path: Path, ssh_host_key: Path, user_ssh_key: Path) -> Iterator[Sandbox]:
    """The same with OpenSSH's sshd as the SSH endpoint (skipped, saying why, where sshd is missing)."""
    with running_sandbox(
        tmp_path / "sandbox", ssh=True, ssh_host_key=ssh_host_key, user_ssh_key=user_ssh_key
    ) as sandbox:
        yield sandbox


@pytest.fixture
def cluster_sandbox(tmp_path: Path, ssh_host_key: Path, user_ssh_key: Path) -> Iterator[Sandbox]:
    """The whole sandbox: Azure DevOps, its SSH endpoint (when sshd is installed), the Kubernetes API server and
    the Flux controller simulator, with Deployments becoming available at once."""
    with running_sandbox(
        tmp_path / "sandbox",
        ssh="auto",
        kube=True,
        flux=True,
        ssh_host_key=ssh_host_key,
        user_ssh_key=user_ssh_key,
        deployment_ready_after=0.0,
    ) as sandbox:
        yield sandbox
