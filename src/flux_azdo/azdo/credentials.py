"""The secret this run talks to Azure DevOps with, in one value that knows how to hide itself.

A PAT and the pipeline job token both work as the password of HTTP basic auth (the user name is ignored);
an Entra token (or the job token, when a caller prefers) goes as a bearer token. Every form the secret can take
on the wire (raw, `base64(":t")`, `base64("user:t")`) is listed so loggers can mask all of them.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Literal, Protocol

from flux_azdo.errors import UserError

#: The Azure DevOps application in Microsoft Entra; tokens for it are accepted by the REST API and by git.
AZURE_DEVOPS_RESOURCE = "499b84ac-1321-427f-aa17-267ca6975798"
AZURE_DEVOPS_SCOPE = f"{AZURE_DEVOPS_RESOURCE}/.default"

Scheme = Literal["basic", "bearer"]
#: Where a token came from; it decides what we may do with it (the job token never goes into a cluster).
Source = Literal["password", "job-token", "entra", "environment"]


@dataclass(frozen=True)
class AzureDevOpsToken:
    secret: str = field(repr=False)
    scheme: Scheme = "basic"
    source: Source = "password"
    #: Where the user gave it, for messages: "--password", "GIT_PASSWORD", "stdin", "SYSTEM_ACCESSTOKEN", ...
    origin: str = ""

    def __post_init__(self) -> None:
        if not self.secret or self.secret != self.secret.strip() or "\n" in self.secret:
            raise ValueError("a token must be one line without surrounding spaces")

    def authorization_header(self) -> str:
        """The value of the `Authorization` header (without the name)."""
        if self.scheme == "bearer":
            return f"Bearer {self.secret}"
        return "Basic " + _b64(f":{self.secret}")

    def secret_forms(self) -> tuple[str, ...]:
        """Every text that reveals the secret: to mask in output and to look for in leak tests."""
        forms = [self.secret, _b64(f":{self.secret}")]
        forms += [_b64(f"{user}:{self.secret}") for user in ("pat", "git", "x-access-token", "PersonalAccessToken")]
        return tuple(forms)


class TokenCredential(Protocol):
    """What `azure-identity` credentials offer (`DefaultAzureCredential`, `AzurePipelinesCredential`, ...)."""

    def get_token(self, *scopes: str) -> object: ...


def entra_token(credential: TokenCredential, origin: str = "Microsoft Entra") -> AzureDevOpsToken:
    """A bearer token for Azure DevOps from an `azure-identity` credential."""
    access = credential.get_token(AZURE_DEVOPS_SCOPE)
    token = getattr(access, "token", None)
    if not isinstance(token, str) or not token:
        raise ValueError("the credential returned no access token")
    return AzureDevOpsToken(token, "bearer", "entra", origin)


def token_from_azure_identity(credential: TokenCredential, origin: str = "Microsoft Entra") -> AzureDevOpsToken:
    """A bearer token for Azure DevOps from an `azure-identity` credential, or a UserError saying how to get one.

    azure-identity reports "no credential here" and "sign-in failed" as `CredentialUnavailableError` /
    `ClientAuthenticationError` with several lines of detail; the first line is kept, the rest is noise. The
    UserError is raised without a cause or context: azure-identity's errors may hold the HTTP exchange with the
    identity provider (client assertions, tokens), which must not travel on with our error.
    """
    from azure.core.exceptions import ClientAuthenticationError

    failure: UserError
    try:
        return entra_token(credential, origin)
    except ClientAuthenticationError as error:
        detail = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        failure = UserError(
            f"could not get a Microsoft Entra token for Azure DevOps from {origin}: {detail}; run `az login`, "
            "or set up workload identity (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE), "
            "or use an Azure Resource Manager service connection in the pipeline"
        )
    except ValueError:
        failure = UserError(
            f"{origin} returned no usable access token for Azure DevOps: run `az login` again or check the "
            "workload identity federation"
        )
    raise failure from None


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")
