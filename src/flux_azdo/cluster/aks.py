"""An AKS cluster's kubeconfig straight from Azure Resource Manager, for hosts without `az` or kubelogin.

`az aks get-credentials` is one ARM call, `listClusterUserCredential` (or `listClusterAdminCredential`), whose
answer is a base64 kubeconfig. For an Entra-integrated cluster that kubeconfig runs `kubelogin get-token
--server-id 6dae42f8-...` to get a token for the AKS server application; the same credential that called ARM can
ask Microsoft Entra for that token itself, so the `exec` entry (or the legacy `auth-provider: azure`) is replaced
by the token. The token lives about an hour: enough for one command, and a new one is fetched for each command.

The kubeconfig holds secrets (the token, or the admin's client key): `AksKubeconfig.secrets` lists them for
masking, `write_private_kubeconfig` writes the file 0600 into a private folder the caller removes, and no token
ever goes into an exception (errors are raised without their cause: azure-identity's may hold the HTTP exchange).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import yaml

from flux_azdo.cluster.azure_credentials import PUBLIC_ARM_URL, describe_authentication_error, scope_for
from flux_azdo.errors import UserError
from flux_azdo.files import write_private_file

if TYPE_CHECKING:
    import requests
    from azure.core.credentials import TokenCredential

#: "Azure Kubernetes Service AAD Server": the audience of Entra tokens for every AKS-managed Entra cluster.
AKS_SERVER_APP = "6dae42f8-4368-4678-94ff-3960e28e3630"
#: A stable (non-preview) Microsoft.ContainerService API version whose listClusterUserCredential takes `format`.
#: Not taken from azure-cli (each release pins its own version); ARM serves every published stable version.
API_VERSION = "2024-02-01"
USER_ROLE = "Azure Kubernetes Service Cluster User Role"
ADMIN_ROLE = "Azure Kubernetes Service Cluster Admin Role"
#: National clouds whose ARM tokens are issued for a resource id other than the ARM URL.
_ARM_RESOURCES = {
    "management.azure.com": "https://management.azure.com/",
    "management.chinacloudapi.cn": "https://management.core.chinacloudapi.cn/",
    "management.usgovcloudapi.net": "https://management.core.usgovcloudapi.net/",
}
_NAME = re.compile(r"^[^/\\?#%\s]+$")
#: The user fields that hold secrets. Not `client-certificate-data`: a certificate is public (the API server sends
#: its chain to anyone), and masking it would only hide harmless text.
_SECRET_FIELDS = ("token", "client-key-data", "password")


@dataclass(frozen=True)
class AksCluster:
    """Which managed cluster: subscription id, resource group and cluster name, as `az aks` takes them."""

    subscription: str
    resource_group: str
    name: str

    def __post_init__(self) -> None:
        for flag, value in (
            ("subscription", self.subscription),
            ("resource group", self.resource_group),
            ("cluster name", self.name),
        ):
            if not value or not _NAME.match(value):
                raise UserError(
                    f"the AKS {flag} {value!r} is not valid",
                    fix="give it as the Azure portal shows it (no spaces, '/', '?', '#' or '%')",
                )

    @property
    def resource_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.ContainerService/managedClusters/{self.name}"
        )

    def __str__(self) -> str:
        return f"{self.name} (resource group {self.resource_group}, subscription {self.subscription})"


@dataclass(frozen=True)
class AksKubeconfig:
    """A kubeconfig ready for the kubernetes client and kubectl (no exec plugin), and the secrets in it."""

    text: str = field(repr=False)
    #: Every value in `text` that must be masked: tokens, passwords and client keys (base64 and PEM forms).
    secrets: tuple[str, ...] = field(repr=False)
    server: str
    #: The user is an Entra token (the kubeconfig had a kubelogin exec entry or the azure auth-provider).
    entra: bool
    admin: bool


def aks_kubeconfig(
    cluster: AksCluster,
    credential: TokenCredential,
    *,
    admin: bool = False,
    arm_url: str = PUBLIC_ARM_URL,
    timeout: float = 30.0,
    arm_scope: str | None = None,
) -> AksKubeconfig:
    """The cluster's user (or admin) kubeconfig, with an Entra token in place of kubelogin.

    `arm_scope` is the scope of the ARM token (an AzureRM service connection's
    activeDirectoryServiceEndpointResourceId); by default the one of `arm_url`'s cloud.
    """
    base = arm_base_url(arm_url)
    scope = arm_scope or _default_arm_scope(base)
    arm_token = _token(credential, scope, "Azure Resource Manager")
    action = "listClusterAdminCredential" if admin else "listClusterUserCredential"
    query = f"api-version={API_VERSION}" + ("" if admin else "&format=exec")
    path = "".join(
        (
            f"subscriptions/{quote(cluster.subscription, safe='')}",
            f"/resourceGroups/{quote(cluster.resource_group, safe='')}",
            f"/providers/Microsoft.ContainerService/managedClusters/{quote(cluster.name, safe='')}",
        )
    )
    response = _post(f"{base}{path}/{action}?{query}", arm_token, base, timeout)
    if response.status_code != 200:
        raise _arm_error(response, cluster, admin, _principal(arm_token))
    return _ready(_kubeconfig_document(response, cluster), credential, admin)


def kubeconfig_with_entra_token(text: str, credential: TokenCredential, *, admin: bool = False) -> AksKubeconfig:
    """An AKS kubeconfig (as `az aks get-credentials` writes it) with each kubelogin `exec` user or legacy
    `auth-provider: azure` user replaced by a token from `credential`; other users are kept as they are."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        document = None
    if not isinstance(document, dict) or not document.get("clusters") or not document.get("users"):
        raise UserError("the kubeconfig is not valid: it needs clusters and users")
    return _ready(document, credential, admin)


def _ready(document: dict[str, Any], credential: TokenCredential, admin: bool) -> AksKubeconfig:
    entra = _inline_entra_tokens(document, credential)
    return AksKubeconfig(
        text=yaml.safe_dump(document, sort_keys=False),
        secrets=_secrets(document),
        server=_server(document),
        entra=entra,
        admin=admin,
    )


def write_private_kubeconfig(kubeconfig: AksKubeconfig | str, folder: Path) -> Path:
    """Write `<folder>/kubeconfig` with mode 0600 (the folder is made 0700 when it does not exist yet).

    The caller owns `folder` and removes it (a `flux_azdo.git.folders.PrivateFolder`, or a folder of its own under
    AGENT_TEMPDIRECTORY). `flux_azdo.files.write_private_file` writes it: never readable by others, not even for
    a moment, never through a link, never half written.
    """
    text = kubeconfig.text if isinstance(kubeconfig, AksKubeconfig) else kubeconfig
    folder = Path(folder)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return write_private_file(folder / "kubeconfig", text.encode("utf-8"))


# ---------------------------------------------------------------------------------------------- ARM


def arm_base_url(arm_url: str) -> str:
    """The ARM endpoint with one trailing slash; anything but an https:// URL is a UserError."""
    text = (arm_url or "").strip()
    parts = urlsplit(text)
    if parts.scheme != "https" or not parts.hostname:
        raise UserError(
            f"the Azure Resource Manager URL {text!r} is not an https:// URL",
            fix=f"pass the cloud's ARM endpoint, e.g. {PUBLIC_ARM_URL} "
            "(az cloud show --query endpoints.resourceManager)",
        )
    return text if text.endswith("/") else text + "/"


def _default_arm_scope(base: str) -> str:
    host = (urlsplit(base).hostname or "").lower()
    return scope_for(_ARM_RESOURCES.get(host, base))


def _token(credential: TokenCredential, scope: str, audience: str) -> str:
    """An access token for `scope`, or a UserError with the Entra reason (never the exchange itself).

    `AzureError` covers a request before the token request that got no answer (the pipeline's OIDC endpoint, a
    managed identity endpoint): azure-identity lets those through unwrapped."""
    from azure.core.exceptions import AzureError

    failure: UserError
    try:
        token = credential.get_token(scope).token
    except AzureError as error:
        reason, fix = describe_authentication_error(error)
        failure = UserError(f"could not get a Microsoft Entra token for {audience} ({scope}): {reason}", fix=fix)
    except ValueError as error:  # azure-identity's checks of scopes and tenants
        failure = UserError(f"could not get a Microsoft Entra token for {audience} ({scope}): {error}")
    else:
        if isinstance(token, str) and token:
            return token
        failure = UserError(f"the Azure credential returned no token for {audience} ({scope})")
    raise failure from None


def _post(url: str, token: str, base: str, timeout: float) -> requests.Response:
    import requests

    host = urlsplit(base).netloc
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json", "Content-Length": "0"}
    failure: UserError
    try:
        return requests.post(url, headers=headers, timeout=timeout, allow_redirects=False)
    except requests.exceptions.SSLError:
        failure = UserError(
            f"cannot reach Azure Resource Manager at {host}: its TLS certificate is not trusted",
            fix="if a proxy inspects TLS, point REQUESTS_CA_BUNDLE at its CA bundle; else check --arm-url",
        )
    except requests.exceptions.Timeout:
        failure = UserError(
            f"Azure Resource Manager at {host} did not answer within {timeout:g}s",
            fix="check the network path and proxy (HTTPS_PROXY) to Azure, then run the command again",
        )
    except requests.exceptions.RequestException as error:
        refused = "refused" in str(error).lower()
        failure = UserError(
            f"cannot connect to Azure Resource Manager at {host}" + (" (connection refused)" if refused else ""),
            fix="check the network path and proxy (HTTPS_PROXY, NO_PROXY) to Azure, and --arm-url",
        )
    raise failure from None


def _arm_error(response: requests.Response, cluster: AksCluster, admin: bool, principal: str) -> UserError:
    """One line for ARM's error answer: what failed, and what to do about it."""
    code, message = _arm_message(response)
    status = response.status_code
    action = "listClusterAdminCredential" if admin else "listClusterUserCredential"
    role = ADMIN_ROLE if admin else USER_ROLE
    lowered = message.lower()
    if code in ("AuthorizationFailed", "LinkedAuthorizationFailed") or (status == 403 and not code):
        assignee = principal or "<app id or user>"
        return UserError(
            f"{principal or 'the Azure identity'} may not get the {'admin' if admin else 'user'} credential of AKS "
            f"cluster {cluster} ({code or status}: {action} is not allowed)",
            fix=f"assign it the {role!r} on the cluster: az role assignment create --assignee {assignee} "
            f'--role "{role}" --scope {cluster.resource_id} (new assignments take a few minutes to apply; ARM '
            "also answers AuthorizationFailed for a mistyped resource group or cluster name)",
        )
    if code == "ResourceGroupNotFound":
        return UserError(
            f"resource group {cluster.resource_group!r} does not exist in subscription {cluster.subscription}"
            " (or this identity cannot see it)",
            fix="check the resource group and the subscription (az aks list -o table lists the clusters you can see)",
        )
    if code in ("ResourceNotFound", "NotFound") or (status == 404 and "managedclusters" in lowered):
        return UserError(
            f"AKS cluster {cluster.name!r} does not exist in resource group {cluster.resource_group!r} of "
            f"subscription {cluster.subscription}",
            fix=f"check the cluster name (az aks list -g {cluster.resource_group} -o table lists them)",
        )
    if code in ("SubscriptionNotFound", "InvalidSubscriptionId") or ("subscription" in lowered and status == 404):
        return UserError(
            f"subscription {cluster.subscription!r} was not found (or this identity has no access to it)",
            fix="check the subscription id (az account list -o table), and that the identity has a role on it",
        )
    if "disable local accounts" in lowered or ("local account" in lowered and status == 400):
        return UserError(
            f"AKS cluster {cluster.name!r} has local accounts disabled, so it has no admin credential",
            fix="use the user credential (useClusterAdmin false / drop --aks-admin) with Kubernetes RBAC or Azure "
            "RBAC for Kubernetes",
        )
    if code == "InvalidAuthenticationTokenAudience":
        return UserError(
            "Azure Resource Manager did not accept the token: it was issued for another audience "
            "(InvalidAuthenticationTokenAudience)",
            fix="ask for a token of the ARM's own resource (--arm-scope; in a pipeline, the service connection's "
            "activeDirectoryServiceEndpointResourceId)",
        )
    if status == 401:
        wrong_tenant = code == "InvalidAuthenticationTokenTenant" or "wrong issuer" in lowered
        return UserError(
            f"Azure Resource Manager did not accept the token ({code or '401 Unauthorized'}"
            + (": it is from another tenant than the subscription's)" if wrong_tenant else ")"),
            fix="sign in to the tenant of the subscription (AZURE_TENANT_ID, az login --tenant)"
            if wrong_tenant
            else "check the cloud: the ARM URL (--arm-url) and the authority (AZURE_AUTHORITY_HOST, the service "
            "connection's environment) must belong to the same one",
        )
    detail = _first_sentence(message) or response.reason or "no message"
    return UserError(
        f"Azure Resource Manager answered {status} ({code or 'no code'}) to {action} of AKS cluster "
        f"{cluster.name!r}: {detail}"
    )


def _arm_message(response: requests.Response) -> tuple[str, str]:
    """(code, message) of an ARM error body `{"error": {"code", "message"}}`."""
    try:
        body = response.json()
    except ValueError:
        return "", " ".join(response.text.split())[:300]
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", ""
    return str(error.get("code") or ""), " ".join(str(error.get("message") or "").split())


def _first_sentence(text: str) -> str:
    sentence = re.split(r"(?<=\.)\s", text, maxsplit=1)[0]
    return sentence[:300]


def _principal(token: str) -> str:
    """Who the ARM token is for (app id of a service principal, or a user's sign-in name), for the role fix.

    Only the claims are read (the payload is base64 JSON); the token itself goes nowhere.
    """
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error):
        return ""
    if not isinstance(claims, dict):
        return ""
    for name in ("upn", "unique_name", "appid", "azp", "oid"):
        value = claims.get(name)
        if isinstance(value, str) and value and _NAME.match(value):
            return value
    return ""


# ---------------------------------------------------------------------------------------------- kubeconfig


def _kubeconfig_document(response: requests.Response, cluster: AksCluster) -> dict[str, Any]:
    wrong = UserError(
        f"Azure Resource Manager's answer for AKS cluster {cluster.name!r} holds no kubeconfig",
        fix="check --arm-url: it must be the Azure Resource Manager endpoint of the cluster's cloud",
    )
    try:
        body = response.json()
        entries = body["kubeconfigs"]
        encoded = next(str(entry["value"]) for entry in entries if entry.get("value"))
        document = yaml.safe_load(base64.b64decode(encoded, validate=True).decode("utf-8"))
    except (ValueError, KeyError, TypeError, StopIteration, AttributeError, binascii.Error, yaml.YAMLError):
        raise wrong from None
    if not isinstance(document, dict) or not document.get("clusters") or not document.get("users"):
        raise wrong
    return document


def _server_id(user: dict[str, Any]) -> str | None:
    """The Entra application the user's kubelogin entry asks tokens for, or None when it is no Entra user."""
    exec_config = user.get("exec")
    if isinstance(exec_config, dict):
        command = str(exec_config.get("command") or "")
        args = [str(a) for a in exec_config.get("args") or []]
        if os.path.basename(command).startswith("kubelogin") or "--server-id" in args:
            for index, arg in enumerate(args):
                if arg == "--server-id" and index + 1 < len(args):
                    return args[index + 1]
                if arg.startswith("--server-id="):
                    return arg.split("=", 1)[1]
            return AKS_SERVER_APP
    provider = user.get("auth-provider")
    if isinstance(provider, dict) and provider.get("name") == "azure":
        config = provider.get("config") or {}
        return str(config.get("apiserver-id") or AKS_SERVER_APP)
    return None


def _inline_entra_tokens(document: dict[str, Any], credential: TokenCredential) -> bool:
    """Replace each kubelogin/azure user by a bearer token from `credential`; True when there was one."""
    tokens: dict[str, str] = {}
    for entry in document.get("users") or []:
        user = entry.get("user") if isinstance(entry, dict) else None
        if not isinstance(user, dict):
            continue
        server_id = _server_id(user)
        if server_id is None:
            continue
        if server_id not in tokens:
            tokens[server_id] = _token(credential, scope_for(server_id), "the AKS cluster's API server")
        entry["user"] = {"token": tokens[server_id]}
    return bool(tokens)


def _secrets(document: dict[str, Any]) -> tuple[str, ...]:
    found: list[str] = []
    for entry in document.get("users") or []:
        user = entry.get("user") if isinstance(entry, dict) else None
        if not isinstance(user, dict):
            continue
        for name in _SECRET_FIELDS:
            value = user.get(name)
            if not isinstance(value, str) or not value:
                continue
            found.append(value)
            if name.endswith("-data"):
                with contextlib.suppress(ValueError, binascii.Error):
                    found.append(base64.b64decode(value).decode("utf-8"))
    return tuple(dict.fromkeys(found))


def _server(document: dict[str, Any]) -> str:
    contexts = {c.get("name"): c.get("context") or {} for c in document.get("contexts") or [] if isinstance(c, dict)}
    clusters = {c.get("name"): c.get("cluster") or {} for c in document.get("clusters") or [] if isinstance(c, dict)}
    current = contexts.get(document.get("current-context")) or next(iter(contexts.values()), {})
    cluster = clusters.get(current.get("cluster")) or next(iter(clusters.values()), {})
    return str(cluster.get("server") or "")
