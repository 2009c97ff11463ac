"""AKS-style Entra authentication on the sandbox kube API server, driven by kubectl with azure-identity tokens."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from azure.identity import ClientSecretCredential

from flux_azdo.sandbox.azure import AKS_SERVER_APP, ServicePrincipal
from flux_azdo.sandbox.kube import AccessRule
from flux_azdo.sandbox.runtime import Sandbox
from support.sandboxes import azure_credential_options, running_sandbox

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed (apt-get install kubernetes-client)")
AKS_SCOPE = f"{AKS_SERVER_APP}/.default"


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    with running_sandbox(tmp_path / "sandbox", kube=True, azure=True) as running:
        yield running


def _azure(sandbox: Sandbox) -> Any:
    assert sandbox.azure is not None
    return sandbox.azure


def _token(sandbox: Sandbox, principal: ServicePrincipal | None = None, scope: str = AKS_SCOPE) -> str:
    principal = principal or sandbox.deployer
    credential = ClientSecretCredential(
        _azure(sandbox).tenant_id, principal.client_id, principal.secret or "", **azure_credential_options(sandbox)
    )
    return credential.get_token(scope).token


def _kubectl(sandbox: Sandbox, home: Path, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    assert KUBECTL is not None
    command = [KUBECTL, "--kubeconfig", str(sandbox.kubeconfig_path), "--token", token, *args]
    env = {"PATH": os.environ["PATH"], "HOME": str(home)}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def test_the_deployer_is_its_object_id_and_cluster_admin(sandbox: Sandbox, tmp_path: Path) -> None:
    token = _token(sandbox)
    whoami = _kubectl(sandbox, tmp_path, token, "auth", "whoami", "-o", "json")
    assert whoami.returncode == 0, whoami.stderr
    assert yaml.safe_load(whoami.stdout)["status"]["userInfo"]["username"] == sandbox.deployer.object_id
    created = _kubectl(sandbox, tmp_path, token, "create", "namespace", "flux-system")
    assert created.returncode == 0, created.stderr


def test_a_token_for_another_audience_is_unauthorized(sandbox: Sandbox, tmp_path: Path) -> None:
    arm = _token(sandbox, scope="https://management.azure.com/.default")
    done = _kubectl(sandbox, tmp_path, arm, "get", "namespaces")
    assert done.returncode != 0
    assert "Unauthorized" in done.stderr or "provide credentials" in done.stderr


def test_an_expired_token_is_unauthorized(sandbox: Sandbox, tmp_path: Path) -> None:
    token = _token(sandbox)
    clock = sandbox.world.clock
    sandbox.world.clock = lambda: clock() + 7200
    done = _kubectl(sandbox, tmp_path, token, "get", "namespaces")
    assert done.returncode != 0
    assert "Unauthorized" in done.stderr or "provide credentials" in done.stderr


def test_a_principal_gets_the_rules_bound_to_its_name(sandbox: Sandbox, tmp_path: Path) -> None:
    assert sandbox.kube is not None
    viewer: ServicePrincipal = _azure(sandbox).directory.register_application("viewer")
    token = _token(sandbox, viewer)
    denied = _kubectl(sandbox, tmp_path, token, "get", "namespaces")
    assert denied.returncode != 0
    assert f'User "{viewer.object_id}" cannot list resource "namespaces"' in denied.stderr
    sandbox.kube.bind(
        viewer.object_id, [AccessRule(verbs=("get", "list"), api_groups=("",), resources=("namespaces",))]
    )
    listed = _kubectl(sandbox, tmp_path, token, "get", "namespaces", "-o", "name")
    assert listed.returncode == 0, listed.stderr
    assert "namespace/default" in listed.stdout.split()
    can = _kubectl(sandbox, tmp_path, token, "auth", "can-i", "create", "namespaces")
    assert can.stdout.strip() == "no"


def test_the_arm_user_kubeconfig_works_once_kubelogin_is_replaced_by_a_token(sandbox: Sandbox, tmp_path: Path) -> None:
    """What the product does for an Entra cluster: the exec user becomes `token: <Entra token for AKS>`."""
    azure = _azure(sandbox)
    arm = _token(sandbox, scope="https://management.azure.com/.default")
    url = (
        f"{azure.arm_url}subscriptions/{azure.subscription_id}/resourceGroups/flux-rg/providers/"
        "Microsoft.ContainerService/managedClusters/aks-sandbox/listClusterUserCredential?api-version=2024-02-01"
    )
    reply = requests.post(url, headers={"Authorization": f"Bearer {arm}"}, verify=str(azure.ca_file), timeout=10)
    assert reply.status_code == 200, reply.text
    config = yaml.safe_load(base64.b64decode(reply.json()["kubeconfigs"][0]["value"]))
    config["users"][0]["user"] = {"token": _token(sandbox)}
    path = tmp_path / "aks.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    assert KUBECTL is not None
    done = subprocess.run(
        [KUBECTL, "--kubeconfig", str(path), "get", "namespaces", "-o", "name"],
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "namespace/kube-system" in done.stdout.split()
