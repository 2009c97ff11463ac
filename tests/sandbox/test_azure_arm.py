"""The sandbox ARM driven by `requests` with azure-identity tokens: AKS clusters, credentials, roles, ARM's errors."""

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

from flux_azdo.sandbox.azure import AKS_CLIENT_APP, AKS_SERVER_APP, CLUSTER_ADMIN_ROLE, ServicePrincipal
from flux_azdo.sandbox.runtime import Sandbox
from support.sandboxes import azure_credential_options, running_sandbox

API = "api-version=2024-02-01"
PROVIDER = "providers/Microsoft.ContainerService/managedClusters"
KUBECTL = shutil.which("kubectl")


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    with running_sandbox(tmp_path, kube=True, azure=True) as running:
        yield running


def _azure(sandbox: Sandbox) -> Any:
    assert sandbox.azure is not None
    return sandbox.azure


def _token(sandbox: Sandbox, principal: ServicePrincipal | None = None, scope: str | None = None) -> str:
    principal = principal or sandbox.deployer
    credential = ClientSecretCredential(
        _azure(sandbox).tenant_id, principal.client_id, principal.secret or "", **azure_credential_options(sandbox)
    )
    return credential.get_token(scope or "https://management.azure.com/.default").token


def _url(sandbox: Sandbox, tail: str, resource_group: str = "flux-rg") -> str:
    azure = _azure(sandbox)
    return f"{azure.arm_url}subscriptions/{azure.subscription_id}/resourceGroups/{resource_group}/{PROVIDER}{tail}"


def _call(sandbox: Sandbox, method: str, url: str, token: str | None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return requests.request(method, url, headers=headers, verify=str(_azure(sandbox).ca_file), timeout=10)


def _kubeconfig(reply: requests.Response) -> dict[str, Any]:
    assert reply.status_code == 200, reply.text
    entries = reply.json()["kubeconfigs"]
    assert len(entries) == 1
    document: dict[str, Any] = yaml.safe_load(base64.b64decode(entries[0]["value"]))
    return document


def _principal_with(sandbox: Sandbox, role: str, scope: str) -> ServicePrincipal:
    azure = _azure(sandbox)
    principal: ServicePrincipal = azure.directory.register_application(f"{role.split()[0].lower()}-principal")
    azure.resources.assign_role(principal.object_id, role, scope)
    return principal


def test_get_cluster_with_the_cluster_user_role(sandbox: Sandbox) -> None:
    reply = _call(sandbox, "GET", _url(sandbox, f"/aks-sandbox?{API}"), _token(sandbox))
    assert reply.status_code == 200, reply.text
    document = reply.json()
    assert document["id"] == sandbox.aks_cluster.id
    assert document["name"] == "aks-sandbox"
    assert document["type"] == "Microsoft.ContainerService/ManagedClusters"
    assert document["properties"]["aadProfile"]["managed"] is True
    assert document["properties"]["aadProfile"]["tenantID"] == _azure(sandbox).tenant_id
    assert document["properties"]["disableLocalAccounts"] is False


def test_list_clusters_needs_read_on_the_resource_group(sandbox: Sandbox) -> None:
    group_scope = f"/subscriptions/{_azure(sandbox).subscription_id}/resourceGroups/flux-rg"
    denied = _call(sandbox, "GET", _url(sandbox, f"?{API}"), _token(sandbox))
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "AuthorizationFailed"
    reader = _principal_with(sandbox, "Reader", group_scope)
    listed = _call(sandbox, "GET", _url(sandbox, f"?{API}"), _token(sandbox, reader))
    assert listed.status_code == 200, listed.text
    assert [c["name"] for c in listed.json()["value"]] == ["aks-sandbox"]


def test_user_credential_of_an_entra_cluster_is_the_kubelogin_exec_entry(sandbox: Sandbox) -> None:
    assert sandbox.kube is not None and sandbox.kube.ca_data is not None
    config = _kubeconfig(
        _call(
            sandbox, "POST", _url(sandbox, f"/aks-sandbox/listClusterUserCredential?{API}&format=exec"), _token(sandbox)
        )
    )
    assert config["current-context"] == "aks-sandbox"
    cluster = config["clusters"][0]
    assert cluster["name"] == "aks-sandbox"
    assert cluster["cluster"]["server"] == sandbox.kube.url
    assert base64.b64decode(cluster["cluster"]["certificate-authority-data"]) == sandbox.kube.ca_data
    user = config["users"][0]
    assert user["name"] == "clusterUser_flux-rg_aks-sandbox"
    assert user["user"]["exec"] == {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "args": [
            "get-token",
            "--environment",
            "AzurePublicCloud",
            "--server-id",
            AKS_SERVER_APP,
            "--client-id",
            AKS_CLIENT_APP,
            "--tenant-id",
            _azure(sandbox).tenant_id,
            "--login",
            "devicecode",
        ],
        "command": "kubelogin",
        "env": None,
        "installHint": "\nkubelogin is not installed which is required to connect to AAD enabled cluster.\n\n"
        "To learn more, please go to https://aka.ms/aks/kubelogin\n",
        "provideClusterInfo": False,
    }
    # Without `format` the answer is the same (exec is the default of current API versions).
    default = _kubeconfig(
        _call(sandbox, "POST", _url(sandbox, f"/aks-sandbox/listClusterUserCredential?{API}"), _token(sandbox))
    )
    assert default["users"] == config["users"]


def test_user_credential_in_the_legacy_azure_format(sandbox: Sandbox) -> None:
    config = _kubeconfig(
        _call(
            sandbox,
            "POST",
            _url(sandbox, f"/aks-sandbox/listClusterUserCredential?{API}&format=azure"),
            _token(sandbox),
        )
    )
    provider = config["users"][0]["user"]["auth-provider"]
    assert provider["name"] == "azure"
    assert provider["config"]["apiserver-id"] == AKS_SERVER_APP
    assert provider["config"]["tenant-id"] == _azure(sandbox).tenant_id


def test_admin_credential_needs_the_admin_role(sandbox: Sandbox) -> None:
    azure = _azure(sandbox)
    reply = _call(sandbox, "POST", _url(sandbox, f"/aks-sandbox/listClusterAdminCredential?{API}"), _token(sandbox))
    assert reply.status_code == 403
    assert reply.json() == {
        "error": {
            "code": "AuthorizationFailed",
            "message": (
                f"The client '{sandbox.deployer.client_id}' with object id '{sandbox.deployer.object_id}' does not "
                "have authorization to perform action "
                "'Microsoft.ContainerService/managedClusters/listClusterAdminCredential/action' over scope "
                f"'/subscriptions/{azure.subscription_id}/resourceGroups/flux-rg/providers/"
                "Microsoft.ContainerService/managedClusters/aks-sandbox' or the scope is invalid. If access was "
                "recently granted, please refresh your credentials."
            ),
        }
    }


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
def test_admin_credential_is_a_static_cluster_admin_kubectl_can_use(sandbox: Sandbox, tmp_path: Path) -> None:
    admin = _principal_with(sandbox, CLUSTER_ADMIN_ROLE, sandbox.aks_cluster.id)
    config = _kubeconfig(
        _call(sandbox, "POST", _url(sandbox, f"/aks-sandbox/listClusterAdminCredential?{API}"), _token(sandbox, admin))
    )
    assert config["current-context"] == "aks-sandbox-admin"
    assert config["users"][0]["name"] == "clusterAdmin_flux-rg_aks-sandbox"
    assert "token" in config["users"][0]["user"]
    path = tmp_path / "admin.kubeconfig"
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


def test_local_accounts_disabled_refuses_the_admin_credential(sandbox: Sandbox) -> None:
    cluster = sandbox.add_aks_cluster("aks-entra-only", local_accounts=False)
    admin = _principal_with(sandbox, CLUSTER_ADMIN_ROLE, cluster.id)
    reply = _call(
        sandbox, "POST", _url(sandbox, f"/aks-entra-only/listClusterAdminCredential?{API}"), _token(sandbox, admin)
    )
    assert reply.status_code == 400
    assert reply.json()["error"] == {
        "code": "BadRequest",
        "message": "Getting static credential is not allowed because this cluster is set to disable local accounts.",
    }
    user = _kubeconfig(
        _call(
            sandbox, "POST", _url(sandbox, f"/aks-entra-only/listClusterUserCredential?{API}"), _token(sandbox, admin)
        )
    )
    assert "exec" in user["users"][0]["user"]


def test_a_cluster_without_entra_gives_a_static_user_credential(sandbox: Sandbox) -> None:
    cluster = sandbox.add_aks_cluster("aks-local", entra=False)
    _azure(sandbox).resources.assign_role(
        sandbox.deployer.object_id, "Azure Kubernetes Service Cluster User Role", cluster.id
    )
    config = _kubeconfig(
        _call(
            sandbox, "POST", _url(sandbox, f"/aks-local/listClusterUserCredential?{API}&format=exec"), _token(sandbox)
        )
    )
    user = config["users"][0]
    assert user["name"] == "clusterUser_flux-rg_aks-local"
    assert set(user["user"]) == {"token"}
    document = _call(sandbox, "GET", _url(sandbox, f"/aks-local?{API}"), _token(sandbox)).json()
    assert "aadProfile" not in document["properties"]


def test_missing_group_and_cluster_where_the_principal_may_read(sandbox: Sandbox) -> None:
    subscription = f"/subscriptions/{_azure(sandbox).subscription_id}"
    reader = _token(sandbox, _principal_with(sandbox, "Reader", subscription))
    group = _call(sandbox, "GET", _url(sandbox, f"/aks-sandbox?{API}", resource_group="nope-rg"), reader)
    assert group.status_code == 404
    assert group.json()["error"] == {
        "code": "ResourceGroupNotFound",
        "message": "Resource group 'nope-rg' could not be found.",
    }
    cluster = _call(sandbox, "GET", _url(sandbox, f"/aks-nope?{API}"), reader)
    assert cluster.status_code == 404
    assert cluster.json()["error"] == {
        "code": "ResourceNotFound",
        "message": "The Resource 'Microsoft.ContainerService/managedClusters/aks-nope' under resource group "
        "'flux-rg' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
    }


def test_a_mistyped_name_is_403_for_a_cluster_scoped_role(sandbox: Sandbox) -> None:
    """ARM authorises on the requested scope before looking anything up."""
    reply = _call(
        sandbox,
        "POST",
        _url(sandbox, f"/aks-sandbox/listClusterUserCredential?{API}", resource_group="flux-rgg"),
        _token(sandbox),
    )
    assert reply.status_code == 403
    assert (
        "'Microsoft.ContainerService/managedClusters/listClusterUserCredential/action'"
        in reply.json()["error"]["message"]
    )
    assert "/resourceGroups/flux-rgg/" in reply.json()["error"]["message"]


def test_authentication_errors(sandbox: Sandbox) -> None:
    url = _url(sandbox, f"/aks-sandbox?{API}")
    missing = _call(sandbox, "GET", url, None)
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "AuthenticationFailed"
    assert missing.headers["WWW-Authenticate"].startswith("Bearer authorization_uri=")
    garbage = _call(sandbox, "GET", url, "not-a-token")
    assert garbage.status_code == 401
    assert garbage.json()["error"] == {"code": "InvalidAuthenticationToken", "message": "The access token is invalid."}
    aks = _call(sandbox, "GET", url, _token(sandbox, scope=f"{AKS_SERVER_APP}/.default"))
    assert aks.status_code == 401
    assert aks.json()["error"]["code"] == "InvalidAuthenticationTokenAudience"
    assert aks.json()["error"]["message"].startswith(
        f"The access token has been obtained for wrong audience or resource '{AKS_SERVER_APP}'."
    )


def test_an_expired_token_is_401_expired(sandbox: Sandbox) -> None:
    token = _token(sandbox)
    clock = sandbox.world.clock
    sandbox.world.clock = lambda: clock() + 7200
    reply = _call(sandbox, "GET", _url(sandbox, f"/aks-sandbox?{API}"), token)
    assert reply.status_code == 401
    assert reply.json()["error"]["code"] == "ExpiredAuthenticationToken"
    assert reply.json()["error"]["message"].startswith("The access token expiry UTC time '")
    assert "is earlier than current UTC time" in reply.json()["error"]["message"]


def test_api_version_is_required(sandbox: Sandbox) -> None:
    reply = _call(sandbox, "GET", _url(sandbox, "/aks-sandbox"), _token(sandbox))
    assert reply.status_code == 400
    assert reply.json()["error"]["code"] == "MissingApiVersionParameter"
