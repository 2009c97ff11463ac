"""AKS kubeconfigs from the sandbox's Azure Resource Manager, with real azure-identity credentials.

The sandbox serves Microsoft Entra ID and ARM over HTTPS on 127.0.0.1 with its own CA (trusted here through
REQUESTS_CA_BUNDLE, as a user behind a TLS-inspecting proxy would), and its AKS clusters' API server is the sandbox
kube server, which accepts Entra tokens for the AKS server application like AKS's webhook does. Each kubeconfig is
then used with our `Cluster` and with kubectl, so "it works" means a real request was authorised.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from azure.identity import CertificateCredential, ClientSecretCredential

from flux_azdo.cluster.aks import (
    AKS_SERVER_APP,
    AksCluster,
    AksKubeconfig,
    aks_kubeconfig,
    kubeconfig_with_entra_token,
    write_private_kubeconfig,
)
from flux_azdo.cluster.azure_credentials import service_connection_arm, service_connection_credential
from flux_azdo.cluster.client import Cluster, ClusterAccess
from flux_azdo.errors import UserError
from flux_azdo.git.folders import PrivateFolder
from flux_azdo.sandbox.azure import CLUSTER_ADMIN_ROLE, CLUSTER_USER_ROLE
from flux_azdo.sandbox.runtime import Sandbox
from support.sandboxes import running_sandbox

ARM_SCOPE = "https://management.azure.com/.default"


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    with running_sandbox(tmp_path / "sandbox", kube=True, azure=True) as running:
        assert running.azure is not None
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(running.azure.ca_file))
        yield running


def _secret_credential(sandbox: Sandbox, client_id: str | None = None, secret: str | None = None) -> Any:
    assert sandbox.azure is not None
    return ClientSecretCredential(
        sandbox.azure.tenant_id,
        client_id or sandbox.deployer.client_id,
        secret or sandbox.deployer.secret,
        authority=sandbox.azure.authority_host,
        disable_instance_discovery=True,
    )


def _cluster(sandbox: Sandbox, name: str = "aks-sandbox", group: str | None = None) -> AksCluster:
    assert sandbox.azure is not None
    return AksCluster(sandbox.azure.subscription_id, group or sandbox.resource_group, name)


def _fetch(sandbox: Sandbox, credential: Any, cluster: AksCluster | None = None, **options: Any) -> AksKubeconfig:
    assert sandbox.azure is not None
    return aks_kubeconfig(cluster or _cluster(sandbox), credential, arm_url=sandbox.azure.arm_url, **options)


def _use(kubeconfig: AksKubeconfig, tmp_path: Path) -> tuple[str, str]:
    """(server version through our client, `kubectl get namespaces` output), from a private kubeconfig file."""
    folder = PrivateFolder("aks-test-", tmp_path)
    try:
        path = write_private_kubeconfig(kubeconfig, folder.path)
        with Cluster(ClusterAccess(path)) as cluster:
            version = cluster.server_version()
        kubectl = shutil.which("kubectl")
        assert kubectl is not None, "kubectl is needed (make system-deps installs it)"
        done = subprocess.run(
            [kubectl, "--kubeconfig", str(path), "get", "namespaces", "-o", "name"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return version, done.stdout
    finally:
        folder.remove()
        assert not folder_exists(folder)


def folder_exists(folder: PrivateFolder) -> bool:
    return folder.path.exists()


def test_an_entra_cluster_gets_the_token_inlined_and_it_is_accepted(sandbox: Sandbox, tmp_path: Path) -> None:
    kubeconfig = _fetch(sandbox, _secret_credential(sandbox))
    assert kubeconfig.entra and not kubeconfig.admin
    document = yaml.safe_load(kubeconfig.text)
    (user,) = document["users"]
    assert set(user["user"]) == {"token"}
    assert "exec" not in kubeconfig.text and "kubelogin" not in kubeconfig.text
    assert user["user"]["token"] in kubeconfig.secrets
    assert kubeconfig.server == document["clusters"][0]["cluster"]["server"]
    assert sandbox.kube is not None and kubeconfig.server.rstrip("/") == sandbox.kube.url.rstrip("/")
    version, listed = _use(kubeconfig, tmp_path)
    assert version.startswith("v1.")
    assert "namespace/default" in listed.split()
    assert "token" not in repr(kubeconfig) and user["user"]["token"] not in repr(kubeconfig)


def test_the_token_is_for_the_aks_server_application(sandbox: Sandbox) -> None:
    import base64
    import json

    token = yaml.safe_load(_fetch(sandbox, _secret_credential(sandbox)).text)["users"][0]["user"]["token"]
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["aud"] == AKS_SERVER_APP
    assert claims["oid"] == sandbox.deployer.object_id


def test_a_certificate_credential_works_too(sandbox: Sandbox, tmp_path: Path) -> None:
    assert sandbox.azure is not None and sandbox.deployer.certificate_path is not None
    credential = CertificateCredential(
        sandbox.azure.tenant_id,
        sandbox.deployer.client_id,
        certificate_path=str(sandbox.deployer.certificate_path),
        authority=sandbox.azure.authority_host,
        disable_instance_discovery=True,
    )
    assert _use(_fetch(sandbox, credential), tmp_path)[0].startswith("v1.")


def test_the_service_connection_with_workload_identity_federation(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the pipeline task does: AzurePipelinesCredential with the job token and the job's OIDC URI."""
    assert sandbox.azure is not None
    monkeypatch.delenv("SYSTEM_OIDCREQUESTURI", raising=False)
    connection = sandbox.arm_connection
    authorization = connection.authorization
    credential = service_connection_credential(
        authorization["scheme"],
        {k.upper(): v for k, v in authorization["parameters"].items()},  # as ENDPOINT_AUTH_PARAMETER_<id>_<NAME>
        {k.upper(): v for k, v in connection.data.items()},
        connection_id=connection.id,
        job_token=sandbox.job_token,
        oidc_request_uri=sandbox.oidc_request_uri(str(uuid.uuid4()), str(uuid.uuid4())),
        connection_name=connection.name,
    )
    arm_url, arm_scope = service_connection_arm(None, connection.data)
    assert (arm_url, arm_scope) == (sandbox.azure.arm_url, "https://management.core.windows.net/.default")
    kubeconfig = aks_kubeconfig(_cluster(sandbox), credential, arm_url=arm_url, arm_scope=arm_scope)
    assert kubeconfig.entra
    assert _use(kubeconfig, tmp_path)[0].startswith("v1.")


def test_a_cluster_without_entra_integration_keeps_its_static_credential(sandbox: Sandbox, tmp_path: Path) -> None:
    assert sandbox.azure is not None
    plain = sandbox.add_aks_cluster("plain", entra=False)
    sandbox.azure.resources.assign_role(sandbox.deployer.object_id, CLUSTER_USER_ROLE, plain.id)
    kubeconfig = _fetch(sandbox, _secret_credential(sandbox), _cluster(sandbox, "plain"))
    assert not kubeconfig.entra
    (user,) = yaml.safe_load(kubeconfig.text)["users"]
    assert user["user"]["token"] in kubeconfig.secrets
    assert _use(kubeconfig, tmp_path)[0].startswith("v1.")


def test_the_admin_credential_needs_the_admin_role(sandbox: Sandbox, tmp_path: Path) -> None:
    assert sandbox.azure is not None
    cluster = _cluster(sandbox)
    with pytest.raises(UserError) as caught:
        _fetch(sandbox, _secret_credential(sandbox), admin=True)
    text = str(caught.value)
    assert f"{sandbox.deployer.client_id} may not get the admin credential of AKS cluster aks-sandbox" in text
    assert (
        f'az role assignment create --assignee {sandbox.deployer.client_id} --role "{CLUSTER_ADMIN_ROLE}" '
        f"--scope {cluster.resource_id}"
    ) in text
    sandbox.azure.resources.assign_role(sandbox.deployer.object_id, CLUSTER_ADMIN_ROLE, sandbox.aks_cluster.id)
    kubeconfig = _fetch(sandbox, _secret_credential(sandbox), admin=True)
    assert kubeconfig.admin and not kubeconfig.entra
    assert _use(kubeconfig, tmp_path)[0].startswith("v1.")


def test_admin_on_a_cluster_with_local_accounts_disabled_says_to_use_the_user_credential(sandbox: Sandbox) -> None:
    assert sandbox.azure is not None
    locked = sandbox.add_aks_cluster("locked", local_accounts=False)
    sandbox.azure.resources.assign_role(sandbox.deployer.object_id, CLUSTER_ADMIN_ROLE, locked.id)
    with pytest.raises(UserError) as caught:
        _fetch(sandbox, _secret_credential(sandbox), _cluster(sandbox, "locked"), admin=True)
    assert str(caught.value) == (
        "AKS cluster 'locked' has local accounts disabled, so it has no admin credential: use the user credential "
        "(useClusterAdmin false / drop --aks-admin) with Kubernetes RBAC or Azure RBAC for Kubernetes"
    )
    assert _fetch(sandbox, _secret_credential(sandbox), _cluster(sandbox, "locked")).entra


def test_a_principal_without_a_role_is_told_which_role_and_command(sandbox: Sandbox) -> None:
    assert sandbox.azure is not None
    stranger = sandbox.azure.directory.register_application("stranger")
    assert stranger.secret is not None
    cluster = _cluster(sandbox)
    with pytest.raises(UserError) as caught:
        _fetch(sandbox, _secret_credential(sandbox, stranger.client_id, stranger.secret))
    text = str(caught.value)
    assert "(AuthorizationFailed: listClusterUserCredential is not allowed)" in text
    assert (
        f'az role assignment create --assignee {stranger.client_id} --role "{CLUSTER_USER_ROLE}" '
        f"--scope {cluster.resource_id}"
    ) in text
    assert stranger.secret not in text


def test_unknown_group_and_cluster_name_what_was_checked(sandbox: Sandbox) -> None:
    assert sandbox.azure is not None
    subscription = sandbox.azure.resources.subscription_scope
    sandbox.azure.resources.assign_role(sandbox.deployer.object_id, CLUSTER_USER_ROLE, subscription)
    credential = _secret_credential(sandbox)
    with pytest.raises(UserError) as caught:
        _fetch(sandbox, credential, _cluster(sandbox, group="no-such-rg"))
    assert str(caught.value).startswith(
        f"resource group 'no-such-rg' does not exist in subscription {sandbox.azure.subscription_id}"
    )
    assert "check the resource group and the subscription" in str(caught.value)
    with pytest.raises(UserError) as caught:
        _fetch(sandbox, credential, _cluster(sandbox, "no-such-cluster"))
    assert str(caught.value).startswith(
        "AKS cluster 'no-such-cluster' does not exist in resource group 'flux-rg' of subscription "
        f"{sandbox.azure.subscription_id}"
    )
    assert str(caught.value).endswith("check the cluster name (az aks list -g flux-rg -o table lists them)")


def test_a_wrong_secret_keeps_the_aadsts_code_and_first_sentence_only(sandbox: Sandbox) -> None:
    wrong = "abc8Q~" + "x" * 34
    with pytest.raises(UserError) as caught:
        _fetch(sandbox, _secret_credential(sandbox, secret=wrong))
    text = str(caught.value)
    assert sandbox.azure is not None
    assert text == (
        f"could not get a Microsoft Entra token for Azure Resource Manager ({sandbox.azure.arm_url}.default): "
        "AADSTS7000215: Invalid client secret provided: renew the client secret (the secret's value, not its id) "
        "and store the new one"
    )
    assert "Trace ID" not in text and "Correlation ID" not in text and "Timestamp" not in text
    assert wrong not in text
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_a_scope_entra_does_not_know_and_a_token_arm_does_not_take(sandbox: Sandbox) -> None:
    assert sandbox.azure is not None
    with pytest.raises(UserError) as caught:
        _fetch(sandbox, _secret_credential(sandbox), arm_scope="https://management.invalid/.default")
    assert str(caught.value).startswith(
        "could not get a Microsoft Entra token for Azure Resource Manager (https://management.invalid/.default): "
        "AADSTS500011: The resource principal named https://management.invalid was not found in the tenant"
    )
    with pytest.raises(UserError) as caught:
        _fetch(sandbox, _secret_credential(sandbox), arm_scope=f"{AKS_SERVER_APP}/.default")
    assert "InvalidAuthenticationTokenAudience" in str(caught.value) and "--arm-scope" in str(caught.value)


def test_an_untrusted_arm_certificate_and_a_closed_port(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    assert sandbox.azure is not None
    credential = ClientSecretCredential(
        sandbox.azure.tenant_id,
        sandbox.deployer.client_id,
        sandbox.deployer.secret,
        authority=sandbox.azure.authority_host,
        disable_instance_discovery=True,
        connection_verify=str(sandbox.azure.ca_file),
    )
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    host = sandbox.azure.arm_url.split("//")[1].rstrip("/")
    with pytest.raises(UserError) as caught:
        _fetch(sandbox, credential)
    assert str(caught.value).startswith(f"cannot reach Azure Resource Manager at {host}: its TLS certificate")
    with pytest.raises(UserError) as caught:
        aks_kubeconfig(_cluster(sandbox), credential, arm_url="https://127.0.0.1:9/", arm_scope=ARM_SCOPE)
    assert str(caught.value).startswith("cannot connect to Azure Resource Manager at 127.0.0.1:9 (connection refused)")


def test_the_legacy_azure_auth_provider_is_replaced_too(sandbox: Sandbox, tmp_path: Path) -> None:
    """`format=azure` (what AKS answered before kubelogin, and still does when asked): `auth-provider: azure`."""
    import base64

    import requests

    assert sandbox.azure is not None
    credential = _secret_credential(sandbox)
    arm_token = credential.get_token(f"{sandbox.azure.arm_url}.default").token
    response = requests.post(
        f"{sandbox.azure.arm_url.rstrip('/')}{_cluster(sandbox).resource_id}/listClusterUserCredential",
        params={"api-version": "2024-02-01", "format": "azure"},
        headers={"Authorization": f"Bearer {arm_token}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    text = base64.b64decode(response.json()["kubeconfigs"][0]["value"]).decode()
    assert "auth-provider" in text
    kubeconfig = kubeconfig_with_entra_token(text, credential)
    assert kubeconfig.entra and "auth-provider" not in kubeconfig.text
    assert _use(kubeconfig, tmp_path)[0].startswith("v1.")


def test_a_kubeconfig_without_an_entra_user_is_kept(sandbox: Sandbox) -> None:
    plain = yaml.safe_dump(
        {
            "apiVersion": "v1",
            "clusters": [{"name": "c", "cluster": {"server": "https://h"}}],
            "users": [{"name": "u", "user": {"token": "t0k3n"}}],
        }
    )
    kubeconfig = kubeconfig_with_entra_token(plain, _secret_credential(sandbox))
    assert not kubeconfig.entra and kubeconfig.secrets == ("t0k3n",) and kubeconfig.server == "https://h"
    with pytest.raises(UserError, match="needs clusters and users"):
        kubeconfig_with_entra_token("kind: Config\n", _secret_credential(sandbox))
