"""The cluster connection kinds of `FluxBootstrap@1`, each through node + the staged task + the simulated agent.

Each test runs `action: check` (it reads only, and its cluster half asks the API server for its version and the
rights a bootstrap needs), so the sandbox is shared. What each proves is who the API server saw: the requests
carry the user of the credential the connection stands for (the kubeconfig's user, or the Entra object id of the
service principal behind an Azure Resource Manager connection).
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from flux_azdo.sandbox.kube import AccessRule
from flux_azdo.sandbox.runtime import Sandbox
from support.agent import (
    SAMPLE_VERSION,
    AgentRun,
    Endpoint,
    SimulatedAgent,
    assert_clean,
    kubeconfig_endpoint,
    pipeline_sandbox,
)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with pipeline_sandbox(tmp_path_factory.mktemp("sandbox"), azure=True) as running:
        yield running


def check_step(sandbox: Sandbox, **inputs: object) -> dict[str, object]:
    return {
        "action": "check",
        "repositoryUrl": sandbox.repository.name,
        "allowInsecureHttp": True,
        "clusterPat": sandbox.pat,
        "fluxVersion": SAMPLE_VERSION,
        "pythonPath": sys.executable,
        **inputs,
    }


def kube_users(sandbox: Sandbox, since: int) -> set[str]:
    assert sandbox.kube is not None
    return {request.user for request in sandbox.kube.requests[since:]}


def request_count(sandbox: Sandbox) -> int:
    assert sandbox.kube is not None
    return len(sandbox.kube.requests)


def two_context_kubeconfig(sandbox: Sandbox, token: str) -> str:
    """A kubeconfig whose current context is a cluster nobody answers, and whose "sandbox" context works."""
    assert sandbox.kube is not None and sandbox.kube.ca_data is not None
    import base64

    ca = base64.b64encode(sandbox.kube.ca_data).decode()
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "sandbox", "cluster": {"server": sandbox.kube.url, "certificate-authority-data": ca}},
                {"name": "gone", "cluster": {"server": "https://127.0.0.1:9"}},
            ],
            "users": [{"name": "pipeline", "user": {"token": token}}],
            "contexts": [
                {"name": "sandbox", "context": {"cluster": "sandbox", "user": "pipeline"}},
                {"name": "gone", "context": {"cluster": "gone", "user": "pipeline"}},
            ],
            "current-context": "gone",
        }
    )


def assert_ready(run: AgentRun, *secrets: str, discovered: tuple[str, ...] = ()) -> None:
    assert_clean(run, *secrets, discovered=discovered)
    assert (run.result, run.outputs["result"]) == ("Succeeded", "ready"), run.stdout
    assert "Flux check: ready" in run.summary


def test_a_kubeconfig_file_from_the_repository_with_its_context(sandbox: Sandbox, agent: SimulatedAgent) -> None:
    token = sandbox.kube.add_user("file-user", [AccessRule(verbs=("*",))]) if sandbox.kube else ""
    (agent.sources / "deploy").mkdir(exist_ok=True)
    (agent.sources / "deploy" / "kubeconfig").write_text(two_context_kubeconfig(sandbox, token), encoding="utf-8")
    since = request_count(sandbox)

    run = agent.run(
        check_step(sandbox, connectionType="kubeconfigFile", kubeconfig="deploy/kubeconfig", kubeContext="sandbox")
    )

    assert_ready(run, sandbox.job_token, sandbox.pat, discovered=(token,))
    assert kube_users(sandbox, since) == {"file-user"}


def test_a_kubernetes_service_connection_of_kind_kubeconfig_uses_its_cluster_context(
    sandbox: Sandbox, agent: SimulatedAgent
) -> None:
    token = sandbox.kube.add_user("connection-user", [AccessRule(verbs=("*",))]) if sandbox.kube else ""
    endpoint = kubeconfig_endpoint(two_context_kubeconfig(sandbox, token), "sandbox")
    since = request_count(sandbox)

    run = agent.run(check_step(sandbox, kubernetesServiceConnection=endpoint.id), endpoints=[endpoint])

    assert_ready(run, sandbox.job_token, sandbox.pat, token)
    assert kube_users(sandbox, since) == {"connection-user"}


def test_a_kubernetes_service_connection_of_kind_azure_subscription_uses_its_service_account_token(
    sandbox: Sandbox, agent: SimulatedAgent
) -> None:
    """The Kubernetes connection made with "Azure Subscription" (an AKS cluster picked in the dialog): the server
    created a service account in the cluster and hands the job its token (`apiToken`, base64) and the cluster's CA
    (`serviceAccountCertificate`), with the API server as the URL; kubernetes-common builds the same kubeconfig as
    for "Service Account". The Azure data (subscription, cluster id) is not needed: ARM is never asked."""
    assert sandbox.kube is not None and sandbox.kube.ca_data is not None and sandbox.azure is not None
    import base64

    token = sandbox.kube.add_user("aks-service-account", [AccessRule(verbs=("*",))])
    encoded = base64.b64encode(token.encode()).decode()
    endpoint = Endpoint(
        str(uuid.uuid4()),
        sandbox.kube.url,
        "Kubernetes",
        {
            "azureTenantId": sandbox.azure.tenant_id,
            "apiToken": encoded,
            "serviceAccountCertificate": base64.b64encode(sandbox.kube.ca_data).decode(),
        },
        {
            "authorizationType": "AzureSubscription",
            "azureSubscriptionId": sandbox.azure.subscription_id,
            "azureSubscriptionName": "Sandbox Subscription",
            "clusterId": sandbox.aks_cluster.id,
            "namespace": "flux-system",
            "clusterAdmin": "false",
            "acceptUntrustedCerts": "false",
        },
    )
    since = request_count(sandbox)

    run = agent.run(check_step(sandbox, kubernetesServiceConnection=endpoint.id), endpoints=[endpoint])

    assert_ready(run, sandbox.job_token, sandbox.pat, encoded, token)
    assert kube_users(sandbox, since) == {"aks-service-account"}
    assert "Kubernetes service connection (AzureSubscription)" in run.stdout


def arm_endpoint(sandbox: Sandbox, scheme: str, parameters: dict[str, str]) -> Endpoint:
    """The AzureRM connection as the agent hands it over: URL = ARM, data = subscription and cloud."""
    assert sandbox.azure is not None
    connection = sandbox.arm_connection
    return Endpoint(connection.id, sandbox.azure.arm_url, scheme, parameters, dict(connection.data))


def aks_step(sandbox: Sandbox, connection_id: str) -> dict[str, object]:
    return check_step(
        sandbox,
        connectionType="azureResourceManager",
        azureSubscriptionConnection=connection_id,  # the YAML alias, as KubernetesManifest@1 users write it
        azureResourceGroup=sandbox.resource_group,
        kubernetesCluster=sandbox.aks_cluster.name,
    )


def test_azure_resource_manager_with_workload_identity_federation_gets_the_aks_kubeconfig_and_an_entra_token(
    sandbox: Sandbox, agent: SimulatedAgent
) -> None:
    """The OIDC token comes from the sandbox's pipeline endpoint with the job token, is exchanged at the sandbox
    Entra ID, the kubeconfig from ARM listClusterUserCredential, and the API server sees the deployer's object id."""
    parameters = dict(sandbox.arm_connection.authorization["parameters"])  # type: ignore[call-overload]
    endpoint = arm_endpoint(sandbox, "WorkloadIdentityFederation", parameters)
    since = request_count(sandbox)

    run = agent.run(aks_step(sandbox, endpoint.id), endpoints=[endpoint])

    assert_ready(run, sandbox.job_token, sandbox.pat)
    assert kube_users(sandbox, since) == {sandbox.deployer.object_id}
    assert "AKS cluster aks-sandbox (user credential)" in run.stdout


def test_azure_resource_manager_with_a_service_principal_secret(sandbox: Sandbox, agent: SimulatedAgent) -> None:
    assert sandbox.deployer.secret is not None
    parameters = {
        "serviceprincipalid": sandbox.deployer.client_id,
        "serviceprincipalkey": sandbox.deployer.secret,
        "tenantid": sandbox.deployer.tenant_id,
        "authenticationType": "spnKey",
    }
    endpoint = arm_endpoint(sandbox, "ServicePrincipal", parameters)
    endpoint = Endpoint(str(uuid.uuid4()), endpoint.url, endpoint.scheme, endpoint.parameters, endpoint.data)
    since = request_count(sandbox)

    run = agent.run(aks_step(sandbox, endpoint.id), endpoints=[endpoint])

    assert_ready(run, sandbox.job_token, sandbox.pat, sandbox.deployer.secret)
    assert kube_users(sandbox, since) == {sandbox.deployer.object_id}


@pytest.fixture
def issued(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every token the sandbox issues during the test (pipeline OIDC, Entra access tokens for ARM and the AKS
    server app): credentials the task learns at run time, which the leak check must look for too."""
    assert sandbox.azure is not None
    tokens: list[str] = []
    for owner, name in ((sandbox.world, "issue_oidc_token"), (sandbox.azure.directory, "issue_access_token")):
        original = getattr(owner, name)

        def recording(*args: Any, _original: Any = original, **kwargs: Any) -> str:
            token = str(_original(*args, **kwargs))
            tokens.append(token)
            return token

        monkeypatch.setattr(owner, name, recording)
    return tokens


def test_aks_runs_mask_every_token_the_sandbox_issued(
    sandbox: Sandbox, agent: SimulatedAgent, issued: list[str]
) -> None:
    """Workload identity federation: the pipeline OIDC token, the ARM token and the Entra token for the AKS server
    app all pass through the task; none may show in the log or the summary."""
    parameters = dict(sandbox.arm_connection.authorization["parameters"])  # type: ignore[call-overload]
    endpoint = arm_endpoint(sandbox, "WorkloadIdentityFederation", parameters)

    run = agent.run(aks_step(sandbox, endpoint.id), endpoints=[endpoint], debug=True)

    assert len(issued) >= 3, "the OIDC, ARM and AKS server tokens"
    assert_ready(run, sandbox.job_token, sandbox.pat, discovered=tuple(issued))


def test_a_principal_without_the_cluster_user_role_fails_with_the_role_to_assign(
    sandbox: Sandbox, agent: SimulatedAgent, issued: list[str]
) -> None:
    """ARM answers AuthorizationFailed: the step fails with one line, and the summary says which role to assign."""
    assert sandbox.azure is not None
    principal = sandbox.azure.directory.register_application("no-role")
    assert principal.secret is not None
    parameters = {
        "serviceprincipalid": principal.client_id,
        "serviceprincipalkey": principal.secret,
        "tenantid": principal.tenant_id,
        "authenticationType": "spnKey",
    }
    connection = arm_endpoint(sandbox, "ServicePrincipal", parameters)
    endpoint = Endpoint(str(uuid.uuid4()), connection.url, connection.scheme, connection.parameters, connection.data)
    since = request_count(sandbox)

    run = agent.run(aks_step(sandbox, endpoint.id), endpoints=[endpoint])

    assert_clean(run, sandbox.job_token, sandbox.pat, principal.secret, discovered=tuple(issued))
    assert (run.result, run.outputs["result"]) == ("Failed", "failed"), run.stdout
    assert len(run.errors) == 1 and "AuthorizationFailed" in run.errors[0]
    assert "Azure Kubernetes Service Cluster User Role" in run.summary
    assert "az role assignment create" in run.summary
    assert request_count(sandbox) == since  # the cluster was never asked


EXEC_PLUGIN = """
import json, os, sys
with open(sys.argv[1], "w", encoding="utf-8") as names:
    names.write("\\n".join(sorted(os.environ)))
token = os.environ["SANDBOX_TOKEN"]
print(json.dumps({"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                  "status": {"token": token}}))
"""


def test_children_never_see_the_jobs_secret_variables(sandbox: Sandbox, agent: SimulatedAgent, tmp_path: Path) -> None:
    """A kubeconfig whose user is an exec credential plugin (as kubelogin or `aws eks get-token`): the plugin is a
    child of the task and writes the names of its environment. None of the variables that carry the job's secrets
    (ENDPOINT_AUTH*, INPUT_*, SECUREFILE_TICKET_*, SECRET_*, SYSTEM_ACCESSTOKEN) reaches it."""
    assert sandbox.kube is not None and sandbox.kube.ca_data is not None
    import base64

    token = sandbox.kube.add_user("exec-user", [AccessRule(verbs=("*",))])
    plugin = tmp_path / "plugin.py"
    plugin.write_text(EXEC_PLUGIN, encoding="utf-8")
    names = tmp_path / "names"
    ca = base64.b64encode(sandbox.kube.ca_data).decode()
    exec_user = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": sys.executable,
        "args": [str(plugin), str(names)],
        "env": [{"name": "SANDBOX_TOKEN", "value": token}],
        "interactiveMode": "Never",
    }
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "sandbox", "cluster": {"server": sandbox.kube.url, "certificate-authority-data": ca}}],
        "users": [{"name": "exec", "user": {"exec": exec_user}}],
        "contexts": [{"name": "sandbox", "context": {"cluster": "sandbox", "user": "exec"}}],
        "current-context": "sandbox",
    }
    (agent.sources / "exec-kubeconfig").write_text(yaml.safe_dump(kubeconfig), encoding="utf-8")
    file_id, ticket = sandbox.add_secure_file("unused.key", b"not read: clusterAuth is pat")
    since = request_count(sandbox)

    # sshKey names the secure file (so the agent hands over its ticket) although clusterAuth pat never reads it.
    run = agent.run(
        check_step(sandbox, connectionType="kubeconfigFile", kubeconfig="exec-kubeconfig", sshKey=file_id),
        secure_files={file_id: ("unused.key", ticket)},
        secret_variables={"clusterPat": sandbox.pat},
        agent_env={"SYSTEM_ACCESSTOKEN": sandbox.job_token},
    )

    assert_ready(run, sandbox.job_token, sandbox.pat, ticket, discovered=(token,))
    assert kube_users(sandbox, since) == {"exec-user"}
    seen = names.read_text(encoding="utf-8").split("\n")
    assert "SANDBOX_TOKEN" in seen and "PATH" in seen
    forbidden = ("ENDPOINT_AUTH", "INPUT_", "SECUREFILE_TICKET_", "SECRET_")
    assert [name for name in seen if name.upper().startswith(forbidden) or name == "SYSTEM_ACCESSTOKEN"] == []


def test_a_kubernetes_service_connection_ignores_the_kube_context_input(
    sandbox: Sandbox, agent: SimulatedAgent
) -> None:
    """kubeContext is for kubeconfig files (as in KubernetesManifest@1): a connection without clusterContext uses
    its kubeconfig's current context, whatever kubeContext says."""
    token = sandbox.kube.add_user("current-context-user", [AccessRule(verbs=("*",))]) if sandbox.kube else ""
    document = yaml.safe_load(two_context_kubeconfig(sandbox, token))
    document["current-context"] = "sandbox"
    endpoint = kubeconfig_endpoint(yaml.safe_dump(document))
    since = request_count(sandbox)

    run = agent.run(
        check_step(sandbox, kubernetesServiceConnection=endpoint.id, kubeContext="gone"), endpoints=[endpoint]
    )

    assert_ready(run, sandbox.job_token, sandbox.pat, token)
    assert kube_users(sandbox, since) == {"current-context-user"}
