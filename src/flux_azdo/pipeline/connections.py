"""The cluster the task works on, from its `connectionType`: a Kubernetes service connection, an Azure Resource
Manager service connection and an AKS cluster, or a kubeconfig file from the repository or an earlier step.

Whatever the kind, the result is a `ClusterAccess` on a kubeconfig file the rest of flux-azdo reads as it reads
the CLI's `--kubeconfig`. Kubeconfigs built here are written 0600 into the run's private folder under
AGENT_TEMPDIRECTORY (which main removes at the end), and every credential in them is handed to `register` (the
masker) before the file is written or anything else can print it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from flux_azdo.errors import UserError

if TYPE_CHECKING:
    from flux_azdo.cluster.client import ClusterAccess
    from flux_azdo.pipeline.agent import AgentContext
    from flux_azdo.pipeline.inputs import TaskInputs


@dataclass(frozen=True)
class ConnectedCluster:
    """How to reach the cluster, and how the summary names it."""

    access: ClusterAccess
    description: str


def connect_cluster(
    inputs: TaskInputs,
    agent: AgentContext,
    environ: Mapping[str, str],
    folder: Path,
    register: Callable[[str], None],
) -> ConnectedCluster:
    """The cluster of `inputs.connection_type`; `folder` is private (0700) and removed by the caller."""
    from flux_azdo.pipeline.actions import call_timeout

    timeout = call_timeout(inputs)
    if inputs.connection_type == "kubeconfigFile":
        return _kubeconfig_file(inputs, agent, register, timeout)
    if inputs.connection_type == "azureResourceManager":
        return _azure_resource_manager(inputs, agent, environ, folder, register, timeout)
    return _kubernetes_service_connection(inputs, environ, folder, register, timeout)


def _kubeconfig_file(
    inputs: TaskInputs, agent: AgentContext, register: Callable[[str], None], timeout: float
) -> ConnectedCluster:
    from flux_azdo.cluster.client import ClusterAccess
    from flux_azdo.pipeline.endpoints import kubeconfig_secrets

    path = inputs.kubeconfig
    assert path is not None  # read_inputs requires it with this connectionType
    if not path.is_absolute() and agent.sources_directory is not None:
        path = agent.sources_directory / path
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise UserError(
            f"kubeconfig file {path} cannot be read ({reason})",
            fix="set kubeconfig to the path of a kubeconfig file on the agent (a secure file downloaded by "
            "DownloadSecureFile@1, or a file written by an earlier step)",
        ) from None
    for secret in kubeconfig_secrets(text):
        register(secret)
    context = inputs.kube_context or None
    return ConnectedCluster(ClusterAccess(path, context, timeout), f"kubeconfig file {path.name}")


def _kubernetes_service_connection(
    inputs: TaskInputs,
    environ: Mapping[str, str],
    folder: Path,
    register: Callable[[str], None],
    timeout: float,
) -> ConnectedCluster:
    from flux_azdo.cluster.aks import write_private_kubeconfig
    from flux_azdo.cluster.client import ClusterAccess
    from flux_azdo.pipeline.endpoints import kubernetes_connection, read_endpoint

    endpoint = read_endpoint(environ, inputs.kubernetes_service_connection, input_name="kubernetesServiceConnection")
    for secret in endpoint.secrets():
        register(secret)
    connection = kubernetes_connection(endpoint)
    for secret in connection.secrets:
        register(secret)
    path = write_private_kubeconfig(connection.kubeconfig, folder / "kubernetes")
    # kubeContext is for kubeconfig files: a connection names its own context (clusterContext), as for
    # KubernetesManifest@1.
    context = connection.context
    described = f"Kubernetes service connection ({connection.kind})"
    return ConnectedCluster(ClusterAccess(path, context, timeout), described)


def _azure_resource_manager(
    inputs: TaskInputs,
    agent: AgentContext,
    environ: Mapping[str, str],
    folder: Path,
    register: Callable[[str], None],
    timeout: float,
) -> ConnectedCluster:
    from flux_azdo.cluster.aks import AksCluster, aks_kubeconfig, write_private_kubeconfig
    from flux_azdo.cluster.azure_credentials import service_connection_arm, service_connection_credential
    from flux_azdo.cluster.client import ClusterAccess
    from flux_azdo.pipeline.endpoints import read_endpoint

    endpoint = read_endpoint(environ, inputs.azure_subscription, input_name="azureSubscription")
    for secret in endpoint.secrets():
        register(secret)
    subscription = endpoint.datum("subscriptionId")
    if not subscription:
        raise UserError(
            f"the Azure Resource Manager service connection {endpoint.id} names no subscription",
            fix="use a connection scoped to the subscription of the AKS cluster",
        )
    arm_url, scope = service_connection_arm(endpoint.url, endpoint.data)
    cluster = AksCluster(subscription, inputs.azure_resource_group, inputs.kubernetes_cluster)
    with service_connection_credential(
        endpoint.scheme,
        endpoint.parameters,
        endpoint.data,
        connection_id=endpoint.id,
        job_token=agent.job_token,
        oidc_request_uri=agent.oidc_request_uri or None,
        connection_name=endpoint.datum("name") or "",
        timeout=timeout,
    ) as credential:  # its HTTP sessions are closed once the tokens are in the kubeconfig
        kubeconfig = aks_kubeconfig(
            cluster, credential, admin=inputs.use_cluster_admin, arm_url=arm_url, arm_scope=scope, timeout=timeout
        )
    for secret in kubeconfig.secrets:
        register(secret)
    path = write_private_kubeconfig(kubeconfig, folder / "aks")
    who = "admin" if inputs.use_cluster_admin else "user"
    return ConnectedCluster(ClusterAccess(path, None, timeout), f"AKS cluster {cluster.name} ({who} credential)")
