"""The sandbox's Azure: Microsoft Entra ID and Azure Resource Manager (AKS) on one HTTPS port of 127.0.0.1.

Attribute names other helpers rely on (stable):

`Sandbox(directory, SandboxOptions(azure=True))` after `start()`:

* `sandbox.azure`: the `AzureServer`: `.authority_host` ("https://127.0.0.1:<port>", the azure-identity
  `authority`), `.arm_url` ("https://127.0.0.1:<port>/"), `.ca_file` (Path of the CA PEM to trust:
  REQUESTS_CA_BUNDLE or `connection_verify`), `.tenant_id`, `.subscription_id`, `.token_endpoint()`;
  `.directory` (Entra model: `register_application`, `add_federated_credential`, `add_secret`, `clock`) and
  `.resources` (ARM model: `add_resource_group`, `add_cluster`, `assign_role`, `remove_role`).
* `sandbox.resource_group`: "flux-rg".
* `sandbox.aks_cluster`: the `ManagedCluster` "aks-sandbox" (`.name`, `.resource_group`, `.id`, `.entra` True,
  `.local_accounts` True) whose API server is the sandbox kube server (else the `kubeconfig=` cluster's server,
  else `https://127.0.0.1:1`, a closed port).
* `sandbox.add_aks_cluster(name, *, entra=True, local_accounts=True, resource_group="flux-rg")` -> another
  `ManagedCluster` on the same kube server.
* `sandbox.deployer`: the `ServicePrincipal` "deployer": `.client_id`, `.object_id`, `.tenant_id`, `.secret` (the
  first current secret, None once `remove_secrets` ran), `.certificate_path` (PEM key + certificate, 0600; a key
  of its own); Cluster User role on `aks-sandbox`, cluster-admin in kube
  (bound to its object id), and a reader of the Azure DevOps organisation (`sandbox.deployer_identity`).
* `sandbox.arm_connection`: the AzureRM service connection (`.id`, `.name`, `.project`, `.data`,
  `.authorization`, `.issuer` "entra") federated to the deployer with the Microsoft Entra issuer
  (`https://login.microsoftonline.com/<tenant>/v2.0`, subject `/eid1/c/pub/t/<tenant>/a/<Azure DevOps app>/sc/
  <org id>/<connection id>`, audience `api://AzureADTokenExchange`); `world.add_service_connection(...,
  issuer="vstoken")` makes one with the Azure DevOps issuer (`https://vstoken.dev.azure.com/<org id>`, subject
  `sc://<org>/<project>/<name>`). `world.oidc_issuer_for(c)` / `world.oidc_subject(c)` give what a federated
  credential must name (`ids.py` has the forms and the shared well-known ids).
* `sandbox.oidc_request_uri(plan_id, job_id)` -> the SYSTEM_OIDCREQUESTURI for the job (AzurePipelinesCredential
  appends `?api-version=7.1&serviceConnectionId=...`); authenticate with `sandbox.job_token`.
* `sandbox.add_secure_file(name, data)` -> `(id, ticket)`; download with
  `GET {org_url}/{project}/_apis/distributedtask/securefiles/{id}?ticket=..` and the job token (Bearer, or Basic
  as task-lib sends it): the bytes whatever `download` says (`true` adds an attachment header); no ticket: the
  file's metadata.

Clients: azure-identity credentials need `authority=sandbox.azure.authority_host`,
`disable_instance_discovery=True` (MSAL would otherwise ask login.microsoftonline.com about the host) and the CA
(`connection_verify=str(sandbox.azure.ca_file)` or REQUESTS_CA_BUNDLE for one command; `sandbox.env` does not
export REQUESTS_CA_BUNDLE, which would replace the system CAs for a whole shell). Only 127.0.0.1 is ever
contacted. Entra errors: see `entra.py`; the v1 endpoints (`/oauth2/token`) are not served.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flux_azdo.sandbox.azure.arm import CLUSTER_ADMIN_ROLE, CLUSTER_USER_ROLE, ManagedCluster, ResourceManager
    from flux_azdo.sandbox.azure.entra import Directory, FederatedCredential, ServicePrincipal
    from flux_azdo.sandbox.azure.ids import (
        AKS_CLIENT_APP,
        AKS_SERVER_APP,
        ARM_RESOURCE,
        AZURE_DEVOPS_APP,
        TOKEN_EXCHANGE_APP,
        TOKEN_EXCHANGE_AUDIENCE,
    )
    from flux_azdo.sandbox.azure.server import AzureServer

# Imported on first use: `world.py` needs only `tokens`, and an Azure DevOps-only sandbox should not pay for the
# HTTPS server and ARM model.
_WHERE = {
    "CLUSTER_ADMIN_ROLE": "arm",
    "CLUSTER_USER_ROLE": "arm",
    "ManagedCluster": "arm",
    "ResourceManager": "arm",
    "AKS_CLIENT_APP": "ids",
    "AKS_SERVER_APP": "ids",
    "ARM_RESOURCE": "ids",
    "AZURE_DEVOPS_APP": "ids",
    "TOKEN_EXCHANGE_APP": "ids",
    "TOKEN_EXCHANGE_AUDIENCE": "ids",
    "Directory": "entra",
    "FederatedCredential": "entra",
    "ServicePrincipal": "entra",
    "AzureServer": "server",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "AKS_CLIENT_APP",
    "AKS_SERVER_APP",
    "ARM_RESOURCE",
    "AZURE_DEVOPS_APP",
    "CLUSTER_ADMIN_ROLE",
    "CLUSTER_USER_ROLE",
    "TOKEN_EXCHANGE_APP",
    "TOKEN_EXCHANGE_AUDIENCE",
    "AzureServer",
    "Directory",
    "FederatedCredential",
    "ManagedCluster",
    "ResourceManager",
    "ServicePrincipal",
]
