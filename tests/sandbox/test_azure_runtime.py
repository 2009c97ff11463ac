"""The sandbox runtime with `azure=True`: what it sets up, what `env()` holds, and that it leaves nothing behind."""

from __future__ import annotations

import socket
import stat
import threading
from pathlib import Path

import pytest
import requests
from azure.identity import ClientSecretCredential

from flux_azdo.sandbox.azure import AzureServer
from flux_azdo.sandbox.kube import KubeApiServer
from flux_azdo.sandbox.runtime import Sandbox, SandboxOptions
from support.sandboxes import running_sandbox


def _refuses(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


def test_defaults_and_env(tmp_path: Path) -> None:
    with running_sandbox(tmp_path, kube=True, azure=True) as sandbox:
        azure = sandbox.azure
        assert azure is not None
        assert azure.authority_host.startswith("https://127.0.0.1:")
        assert azure.arm_url == azure.authority_host + "/"
        assert azure.tenant_id == sandbox.world.tenant_id
        assert sandbox.resource_group == "flux-rg"
        assert (sandbox.aks_cluster.name, sandbox.aks_cluster.entra, sandbox.aks_cluster.local_accounts) == (
            "aks-sandbox",
            True,
            True,
        )
        assert sandbox.arm_connection.name and sandbox.arm_connection.id
        assert sandbox.arm_connection.authorization["scheme"] == "WorkloadIdentityFederation"
        certificate = sandbox.deployer.certificate_path
        assert certificate is not None and stat.S_IMODE(certificate.stat().st_mode) == 0o600
        assert stat.S_IMODE(certificate.parent.stat().st_mode) == 0o700
        env = sandbox.env()
        assert env["AZURE_AUTHORITY_HOST"] == azure.authority_host
        assert env["AZURE_CLIENT_ID"] == sandbox.deployer.client_id
        assert env["AZURE_CA_FILE"] == str(azure.ca_file)
        assert env["AKS_CLUSTER"] == "aks-sandbox"
        assert sandbox.oidc_request_uri("p", "j").startswith(f"{sandbox.org_url}/{sandbox.project.id}/_apis/")
        ca_file, folder = azure.ca_file, certificate.parent
    assert not ca_file.exists()
    assert not folder.exists()


def test_without_azure_nothing_changes(tmp_path: Path) -> None:
    with Sandbox(tmp_path, SandboxOptions(ssh=False, kube=False, flux=False)) as sandbox:
        assert sandbox.azure is None
        assert not any(name.startswith(("AZURE_", "AKS_")) for name in sandbox.env())
        assert not (tmp_path / "azure").exists()


def test_requests_ca_bundle_is_enough_for_azure_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without `connection_verify`, azure-identity (requests underneath) trusts what REQUESTS_CA_BUNDLE names."""
    with running_sandbox(tmp_path, azure=True) as sandbox:
        assert sandbox.azure is not None
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(sandbox.azure.ca_file))
        credential = ClientSecretCredential(
            sandbox.azure.tenant_id,
            sandbox.deployer.client_id,
            sandbox.deployer.secret or "",
            authority=sandbox.azure.authority_host,
            disable_instance_discovery=True,
        )
        assert credential.get_token("https://management.azure.com/.default").token.count(".") == 2


def test_stop_closes_the_port_and_ends_the_server_threads(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    with running_sandbox(tmp_path, azure=True) as sandbox:
        assert sandbox.azure is not None
        port, ca_file = sandbox.azure.port, str(sandbox.azure.ca_file)
        with requests.Session() as session:  # a kept-alive connection: its handler thread must end too
            url = f"{sandbox.azure.authority_host}/{sandbox.azure.tenant_id}/v2.0/.well-known/openid-configuration"
            assert session.get(url, verify=ca_file, timeout=10).status_code == 200
            started = [t for t in threading.enumerate() if t not in before]
            assert any(t.name == "azure-sandbox" for t in started)
    assert _refuses(port)
    assert [t.name for t in started if t.is_alive()] == []


def test_without_a_cluster_the_aks_server_is_a_closed_local_port(tmp_path: Path) -> None:
    """No kube server and no kubeconfig: the AKS API server URL never names a real Azure host."""
    with running_sandbox(tmp_path, azure=True) as sandbox:
        assert sandbox.aks_cluster.server_url == "https://127.0.0.1:1"
        assert _refuses(1)


def test_with_a_kubeconfig_the_aks_server_is_that_cluster(tmp_path: Path) -> None:
    with KubeApiServer() as kube:
        kubeconfig = tmp_path / "cluster.kubeconfig"
        kube.write_kubeconfig(kubeconfig)
        options = SandboxOptions(ssh=False, kube=False, flux=False, kubeconfig=kubeconfig, azure=True)
        with Sandbox(tmp_path / "sandbox", options) as sandbox:
            assert sandbox.aks_cluster.server_url == kube.url
            assert sandbox.aks_cluster.ca_pem == kube.ca_data
            assert sandbox.aks_cluster.static_token == kube.admin_token


def test_the_env_file_says_how_to_trust_the_azure_ca(tmp_path: Path) -> None:
    with running_sandbox(tmp_path / "sandbox", azure=True) as sandbox:
        path = tmp_path / "sandbox.env"
        sandbox.write_env_file(path)
        text = path.read_text()
    assert "REQUESTS_CA_BUNDLE=$AZURE_CA_FILE" in text
    assert "export REQUESTS_CA_BUNDLE" not in text


def test_upper_case_tenant_and_subscription_ids(tmp_path: Path) -> None:
    """Azure compares these GUIDs without regard to case; so does the sandbox."""
    tenant, subscription = "A1B2C3D4-0000-4000-8000-00000000000A", "B1B2C3D4-0000-4000-8000-00000000000B"
    with AzureServer(tmp_path / "azure", tenant_id=tenant, subscription_id=subscription) as azure:
        assert (azure.tenant_id, azure.subscription_id) == (tenant.lower(), subscription.lower())
        principal = azure.directory.register_application("reader")
        azure.resources.add_resource_group("rg")
        azure.resources.assign_role(principal.object_id, "Reader", f"/subscriptions/{subscription}")
        credential = ClientSecretCredential(
            tenant,
            principal.client_id,
            principal.secret or "",
            authority=azure.authority_host,
            disable_instance_discovery=True,
            connection_verify=str(azure.ca_file),
        )
        token = credential.get_token("https://management.azure.com/.default").token
        url = (
            f"{azure.arm_url}subscriptions/{subscription}/resourceGroups/rg/providers/"
            "Microsoft.ContainerService/managedClusters?api-version=2024-02-01"
        )
        reply = requests.get(url, headers={"Authorization": f"Bearer {token}"}, verify=str(azure.ca_file), timeout=10)
        assert reply.status_code == 200, reply.text
        assert reply.json() == {"value": []}
