"""`--aks-*` on the cluster commands: an AKS cluster reached through Azure Resource Manager, as a user runs it."""

from __future__ import annotations

import os
import re
import signal
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from flux_azdo.cli import main
from flux_azdo.cluster.client import Cluster, ClusterAccess
from flux_azdo.sandbox.azure import CLUSTER_USER_ROLE
from flux_azdo.sandbox.runtime import Sandbox
from support.isolation import isolate_environment
from support.processes import silent_listener, started_cli
from support.sandboxes import running_sandbox

AKS = ("--aks-subscription", "sub", "--aks-resource-group", "flux-rg", "--aks-name", "aks-sandbox")
REPO = ("--url", "https://dev.azure.com/org/project/_git/repo")


@pytest.fixture(autouse=True)
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_environment(monkeypatch, tmp_path / "home", unset=("GIT_PASSWORD", "SYSTEM_ACCESSTOKEN", "KUBECONFIG"))


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """`flux-azdo <argv>` in this process: the exit code, stdout and stderr."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("argv", "expected_code", "message"),
    [
        (
            ["bootstrap", *REPO, "--aks-subscription", "sub"],
            2,
            "--aks-subscription needs --aks-resource-group and --aks-name: name the AKS cluster with all three",
        ),
        (  # plan's usage mistakes exit 1: its 2 means "changes to make"
            ["plan", *REPO, "--aks-name", "c", "--aks-resource-group", "g"],
            1,
            "--aks-resource-group needs --aks-subscription",
        ),
        (["bootstrap", *REPO, *AKS, "--kubeconfig", "k"], 2, "--kubeconfig and --aks-name both say which cluster"),
        (["check", *REPO, *AKS, "--context", "c"], 2, "--context and --aks-name both say which cluster"),
        (["uninstall", "--silent", *AKS, "--context", "c"], 2, "--context and --aks-name both say which cluster"),
        (["rotate-credentials", "--aks-admin"], 2, "--aks-admin applies to an AKS cluster"),
        (["bootstrap", *REPO, "--arm-url", "https://x/"], 2, "--arm-url applies to an AKS cluster"),
        (["uninstall", "--silent", "--arm-scope", "s"], 2, "--arm-scope applies to an AKS cluster"),
        (["bootstrap", *REPO, *AKS, "--arm-url", "http://x/"], 2, "URL 'http://x/' is not an https:// URL"),
        (["plan", *REPO, *AKS, "--arm-url", "http://x/"], 1, "URL 'http://x/' is not an https:// URL"),
    ],
)
def test_aks_flags_go_together_and_exclude_a_kubeconfig(
    capsys: pytest.CaptureFixture[str], argv: list[str], expected_code: int, message: str
) -> None:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == expected_code
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_every_cluster_command_has_the_aks_flags(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("bootstrap", "plan", "check", "uninstall", "rotate-credentials"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = capsys.readouterr().out
        for flag in (
            "--aks-subscription",
            "--aks-resource-group",
            "--aks-name",
            "--aks-admin",
            "--arm-url",
            "--arm-scope",
        ):
            assert flag in out, (command, flag)


def test_an_arm_url_that_is_not_https_is_a_usage_mistake_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["rotate-credentials", *AKS, "--arm-url", "http://127.0.0.1:1/"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == (
        "✗ the Azure Resource Manager URL 'http://127.0.0.1:1/' is not an https:// URL: pass the cloud's ARM "
        "endpoint, e.g. https://management.azure.com/ (az cloud show --query endpoints.resourceManager)"
    )


# ------------------------------------------------------------------------------------------------ on the sandbox

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}")


@pytest.fixture
def temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This process's temporary folder, to see what a run leaves behind."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    monkeypatch.setenv("TMPDIR", str(folder))
    return folder


@pytest.fixture
def aks_sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, temporary: Path) -> Iterator[Sandbox]:
    """The whole sandbox with Azure, DefaultAzureCredential fed the deployer through its environment, and the
    sandbox PAT in GIT_PASSWORD for the repository."""
    with running_sandbox(tmp_path / "sandbox", kube=True, flux=True, azure=True, deployment_ready_after=0.0) as box:
        for name, value in _azure_environment(box).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("GIT_PASSWORD", box.pat)
        yield box


def _azure_environment(sandbox: Sandbox) -> dict[str, str]:
    assert sandbox.azure is not None and sandbox.deployer.secret is not None
    return {
        "AZURE_CLIENT_ID": sandbox.deployer.client_id,
        "AZURE_CLIENT_SECRET": sandbox.deployer.secret,
        "AZURE_TENANT_ID": sandbox.azure.tenant_id,
        "AZURE_AUTHORITY_HOST": sandbox.azure.authority_host,
        "REQUESTS_CA_BUNDLE": str(sandbox.azure.ca_file),
        # Only the environment's service principal: no IMDS probe, no az, nothing beyond 127.0.0.1.
        "AZURE_TOKEN_CREDENTIALS": "EnvironmentCredential",
    }


def _aks_flags(sandbox: Sandbox, name: str = "aks-sandbox") -> list[str]:
    assert sandbox.azure is not None
    return [
        *("--aks-subscription", sandbox.azure.subscription_id),
        *("--aks-resource-group", sandbox.resource_group),
        *("--aks-name", name),
        *("--arm-url", sandbox.azure.arm_url),
    ]


def _check_flags(sandbox: Sandbox) -> list[str]:
    """`check` of the sandbox repository for a Flux release, on the AKS cluster."""
    return ["--url", sandbox.repo_url, "--allow-insecure-http", "--version", "v2.7.0", *_aks_flags(sandbox)]


def _assert_nothing_secret_left(sandbox: Sandbox, temporary: Path, *texts: str) -> None:
    """No token or secret in the output, no kubeconfig folder (or any file with a token) left behind."""
    secrets = [s for s in (sandbox.deployer.secret, sandbox.pat) if s]
    for text in texts:
        assert not JWT.search(text)
        for secret in secrets:
            assert secret not in text
    assert not [p for p in temporary.iterdir() if p.name.startswith("flux-azdo-aks-")]
    for path in temporary.rglob("*"):
        if path.is_file():
            content = path.read_bytes().decode("utf-8", "replace")
            assert not JWT.search(content), path


def test_check_with_aks_asks_the_cluster_through_arm(
    aks_sandbox: Sandbox, capsys: pytest.CaptureFixture[str], temporary: Path
) -> None:
    code, out, err = cli(capsys, "check", *_check_flags(aks_sandbox))
    assert code == 0, out + err
    assert aks_sandbox.kube is not None
    lines = out.splitlines()
    assert f"✔ the API server {aks_sandbox.kube.url} answers: Kubernetes v1.32.4" in lines
    assert any(line.startswith("✔ the kubeconfig's user may create CRDs") for line in lines)
    assert "✗" not in out
    assert aks_sandbox.kube is not None
    assert any(r.user == aks_sandbox.deployer.object_id for r in aks_sandbox.kube.requests)
    _assert_nothing_secret_left(aks_sandbox, temporary, out, err)


def test_check_without_the_role_is_blocked_with_the_role_to_assign(
    aks_sandbox: Sandbox, capsys: pytest.CaptureFixture[str], temporary: Path
) -> None:
    assert aks_sandbox.azure is not None
    aks_sandbox.azure.resources.remove_role(aks_sandbox.deployer.object_id)
    code, out, err = cli(capsys, "check", *_check_flags(aks_sandbox))
    assert code == 1
    assert "AuthorizationFailed" in out
    assert f'az role assignment create --assignee {aks_sandbox.deployer.client_id} --role "Azure Kubernetes ' in out
    _assert_nothing_secret_left(aks_sandbox, temporary, out, err)


def test_bootstrap_with_aks_and_default_azure_credential(
    aks_sandbox: Sandbox, sample_file: Path, capsys: pytest.CaptureFixture[str], temporary: Path
) -> None:
    code, out, err = cli(
        capsys,
        *("bootstrap", "--url", aks_sandbox.repo_url, "--allow-insecure-http", "--manifests", str(sample_file)),
        *("--path", "clusters/aks", "--timeout", "60s", *_aks_flags(aks_sandbox)),
    )
    assert code == 0, err
    lines = err.splitlines()
    assert lines[0] == "► getting the user credential of AKS cluster aks-sandbox from Azure Resource Manager"
    assert aks_sandbox.kube is not None
    assert lines[1] == f"✔ AKS cluster aks-sandbox at {aks_sandbox.kube.url}, with a Microsoft Entra token"
    assert "✔ all components are healthy" in lines
    writes = [r for r in aks_sandbox.kube.requests if r.user == aks_sandbox.deployer.object_id and r.is_write]
    assert writes, "the bootstrap's writes are the deployer's (its Entra token)"
    with Cluster(ClusterAccess(aks_sandbox.kubeconfig_path)) as cluster:
        repository = cluster.get("source.toolkit.fluxcd.io/v1", "GitRepository", "flux-system", "flux-system")
    assert repository is not None
    _assert_nothing_secret_left(aks_sandbox, temporary, out, err)


def test_a_wrong_cluster_name_is_one_line_and_nothing_is_written(
    aks_sandbox: Sandbox, sample_file: Path, capsys: pytest.CaptureFixture[str], temporary: Path
) -> None:
    assert aks_sandbox.azure is not None
    scope = aks_sandbox.azure.resources.subscription_scope
    aks_sandbox.azure.resources.assign_role(aks_sandbox.deployer.object_id, CLUSTER_USER_ROLE, scope)
    code, out, err = cli(
        capsys,
        *("plan", "--url", aks_sandbox.repo_url, "--allow-insecure-http", "--manifests", str(sample_file)),
        *_aks_flags(aks_sandbox, "no-such-cluster"),
    )
    assert code == 1
    assert err.splitlines()[-1] == (
        "✗ AKS cluster 'no-such-cluster' does not exist in resource group 'flux-rg' of subscription "
        f"{aks_sandbox.azure.subscription_id}: check the cluster name (az aks list -g flux-rg -o table lists them)"
    )
    _assert_nothing_secret_left(aks_sandbox, temporary, out, err)


def test_sigterm_removes_the_kubeconfig_folder(
    aks_sandbox: Sandbox, tmp_path: Path, temporary: Path, sample_file: Path
) -> None:
    """The kubeconfig (with its token) lives in a private folder for the run; a cancelled run removes it too."""
    env = {
        **os.environ,
        **_azure_environment(aks_sandbox),
        "GIT_PASSWORD": "a-token-for-a-server-that-never-answers",
        "HOME": str(tmp_path),
        "TMPDIR": str(temporary),
    }
    with silent_listener() as (hanging, port):  # Azure DevOps that never answers: the run is certainly going on
        url = f"http://127.0.0.1:{port}/org/project/_git/repo"
        with started_cli(
            *("bootstrap", "--allow-insecure-http", "--timeout", "60s", "--url", url, "--manifests", str(sample_file)),
            *_aks_flags(aks_sandbox),
            env=env,
        ) as process:
            hanging.settimeout(60)
            connection, _ = hanging.accept()
            (folder,) = [p for p in temporary.iterdir() if p.name.startswith("flux-azdo-aks-")]
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700
            assert stat.S_IMODE((folder / "kubeconfig").stat().st_mode) == 0o600
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=60)
            connection.close()
    assert process.returncode == 143, err
    assert err.strip().splitlines()[-1] == "✗ stopped by SIGTERM"
    _assert_nothing_secret_left(aks_sandbox, temporary, out, err)


def test_uninstall_and_rotate_credentials_reach_the_cluster_through_arm(
    aks_sandbox: Sandbox, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, temporary: Path
) -> None:
    assert aks_sandbox.kube is not None
    code = main(["uninstall", "--silent", *_aks_flags(aks_sandbox)])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = err.splitlines()
    assert lines[:2] == [
        "► getting the user credential of AKS cluster aks-sandbox from Azure Resource Manager",
        f"✔ AKS cluster aks-sandbox at {aks_sandbox.kube.url}, with a Microsoft Entra token",
    ]
    assert lines[-1] == "✔ uninstall finished"
    assert any(r.user == aks_sandbox.deployer.object_id for r in aks_sandbox.kube.requests)

    aks_sandbox.kube.reset_requests()
    monkeypatch.setenv("GIT_PASSWORD", aks_sandbox.pat)
    code = main(["rotate-credentials", *_aks_flags(aks_sandbox)])
    out2, err2 = capsys.readouterr()
    assert code == 1
    assert err2.splitlines()[-1].startswith("✗ Flux is not installed on this cluster (it has no GitRepository kind)")
    assert any(r.user == aks_sandbox.deployer.object_id for r in aks_sandbox.kube.requests)
    _assert_nothing_secret_left(aks_sandbox, temporary, out, err, out2, err2)


def test_a_wrong_client_secret_is_one_line_with_the_entra_code(
    aks_sandbox: Sandbox,
    sample_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    temporary: Path,
) -> None:
    wrong = "xyz8Q~" + "w" * 34
    monkeypatch.setenv("AZURE_CLIENT_SECRET", wrong)
    monkeypatch.setenv("GIT_PASSWORD", aks_sandbox.pat)
    argv = [
        *("plan", "--url", aks_sandbox.repo_url, "--allow-insecure-http", "--manifests", str(sample_file)),
        *_aks_flags(aks_sandbox),
    ]
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 1
    assert aks_sandbox.azure is not None
    assert err.splitlines() == [
        "► getting the user credential of AKS cluster aks-sandbox from Azure Resource Manager",
        f"✗ could not get a Microsoft Entra token for Azure Resource Manager ({aks_sandbox.azure.arm_url}.default): "
        "AADSTS7000215: Invalid client secret provided: renew the client secret (the secret's value, not its id) "
        "and store the new one",
    ]
    assert wrong not in out + err
    _assert_nothing_secret_left(aks_sandbox, temporary, out, err)
