"""Well-known Microsoft Entra ids and OIDC names the sandbox's Azure and Azure DevOps parts share (one place).

Kept free of heavy imports: `world.py` (Azure DevOps) needs them even when no Azure runs.

Pipeline OIDC tokens come from one of two issuers (learn.microsoft.com, "Convert service connections to use the
Microsoft Entra issuer"): the Azure DevOps issuer `https://vstoken.dev.azure.com/<organisation id>` with subject
`sc://<org>/<project>/<service connection name>`, and the Microsoft Entra issuer
`https://login.microsoftonline.com/<tenant>/v2.0` (the default for new connections) with subject
`/eid1/c/pub/t/<tenant>/a/<Azure DevOps app id>/sc/<organisation id>/<service connection id>`, where tenant and app
id are base64url (no padding) of the GUID's bytes in .NET order (`uuid.UUID(...).bytes_le`), as in the subjects
published for real connections ("rISbSSETf0KqFyZ8ppdXmA" is 499b84ac-...). A token from the Entra issuer carries
`aud` = the token exchange app id (fb60f99c-...) while the federated credential lists `api://AzureADTokenExchange`
(both seen for one connection in public traces): Entra treats the two as the same audience.
"""

from __future__ import annotations

import base64
import uuid

#: Azure DevOps' resource (application) id: the audience of Entra tokens for Azure DevOps.
AZURE_DEVOPS_APP = "499b84ac-1321-427f-aa17-267ca6975798"
#: The audience federated identity credentials name for token exchange.
TOKEN_EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
#: The app id behind `api://AzureADTokenExchange` (the `aud` of Entra-issued pipeline OIDC tokens).
TOKEN_EXCHANGE_APP = "fb60f99c-7a34-4190-8149-302f77469936"
#: The "Azure Kubernetes Service AAD Server" application: the audience of tokens for Entra-integrated clusters.
AKS_SERVER_APP = "6dae42f8-4368-4678-94ff-3960e28e3630"
#: The well-known client kubelogin's device-code login uses (the `--client-id` AKS writes into kubeconfigs).
AKS_CLIENT_APP = "80faf920-1908-4b52-b5ef-a8e7bedfc67a"
ARM_RESOURCE = "https://management.azure.com/"
ENTRA_AUTHORITY = "https://login.microsoftonline.com"


def entra_issuer(tenant_id: str) -> str:
    """The Microsoft Entra issuer of a tenant's v2.0 tokens (and of Entra-issued pipeline OIDC tokens)."""
    return f"{ENTRA_AUTHORITY}/{tenant_id.lower()}/v2.0"


def vstoken_issuer(org_id: str) -> str:
    """The Azure DevOps issuer of an organisation's pipeline OIDC tokens."""
    return f"https://vstoken.dev.azure.com/{org_id.lower()}"


def guid_b64url(guid: str) -> str:
    """base64url (no padding) of a GUID's bytes in .NET (little-endian) order, as `/eid1/` subjects write them."""
    return base64.urlsafe_b64encode(uuid.UUID(guid).bytes_le).decode().rstrip("=")


def entra_pipeline_subject(tenant_id: str, org_id: str, connection_id: str) -> str:
    """The subject of an Entra-issued pipeline OIDC token for a service connection."""
    return (
        f"/eid1/c/pub/t/{guid_b64url(tenant_id)}/a/{guid_b64url(AZURE_DEVOPS_APP)}/sc/{org_id.lower()}/"
        f"{connection_id.lower()}"
    )


def same_audience(presented: str, registered: str) -> bool:
    """Whether an assertion's `aud` satisfies a federated credential's audience (the exchange app id counts as
    `api://AzureADTokenExchange`)."""
    if presented == registered:
        return True
    return presented.lower() == TOKEN_EXCHANGE_APP and registered == TOKEN_EXCHANGE_AUDIENCE
