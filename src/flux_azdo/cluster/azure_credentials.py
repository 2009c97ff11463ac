"""Microsoft Entra credentials for reaching AKS: the CLI user's, and an Azure Resource Manager service connection's.

Both return `azure-identity` credentials; `flux_azdo.cluster.aks` asks them for an ARM token and, for an
Entra-integrated cluster, a token for the AKS server application, so neither `az` nor kubelogin is needed.

Authority hosts that are not one of Microsoft's public clouds (Azure Stack Hub, ADFS, a test server) have no entry
in Microsoft's instance discovery; MSAL would ask login.microsoftonline.com about them and refuse the answer. For
those, instance discovery is turned off and MSAL reads the authority's own OpenID configuration instead.

An AzureRM service connection arrives as the agent hands it to a task (reference §2.4): a scheme
(`WorkloadIdentityFederation`, `ServicePrincipal`, `ManagedServiceIdentity`), the authorization parameters
(`ENDPOINT_AUTH_PARAMETER_<id>_<NAME>`) and the data (`ENDPOINT_DATA_<id>_<NAME>`). The agent upper-cases the
names in the variable names, the task library reads them case-insensitively; so do we. The parameter names are
those Microsoft's AzureRM tasks read (azure-pipelines-tasks-common-packages, azure-arm-rest/azure-arm-endpoint.ts):
`serviceprincipalid`, `tenantid`, `authenticationType` (spnKey | spnCertificate), `serviceprincipalkey`,
`servicePrincipalCertificate` (PEM: certificate and private key); data `activeDirectoryAuthority` /
`environmentAuthorityUrl`, `activeDirectoryServiceEndpointResourceId`, `msiclientId`.

Every credential gets `timeout` as its connection and read timeout and few retries (`network_options`): azure-core's
defaults are 300 s and 10 retries, so an authority behind a silent firewall would hold a command for an hour.
The credentials own HTTP sessions: use them as context managers (`with cli_credential() as credential:`).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from flux_azdo.errors import UserError

if TYPE_CHECKING:
    from azure.core.credentials import AccessToken, AccessTokenInfo, TokenCredential, TokenRequestOptions

    class AzureCredential(TokenCredential, Protocol):
        """What the functions below return: a TokenCredential that owns an HTTP session, closed by `close` or by
        `with` (a type for the checker only: azure-core is not imported before a credential is made)."""

        def close(self) -> None: ...

        def __enter__(self) -> AzureCredential: ...

        def __exit__(
            self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
        ) -> Any: ...


#: Where Microsoft's public ARM lives, and the scope of its tokens.
PUBLIC_ARM_URL = "https://management.azure.com/"
#: The variable the agent sets (System.OidcRequestUri) and `AzurePipelinesCredential` reads at `get_token` time.
OIDC_REQUEST_URI_VARIABLE = "SYSTEM_OIDCREQUESTURI"
#: Seconds a token request may wait to connect, and then for each read (`timeout=` of the functions below).
DEFAULT_TIMEOUT = 30.0
#: Retries of a failed request (azure-core's RetryPolicy `retry_total`; its default is 10, with back-off).
RETRIES = 1
#: Microsoft's authority hosts that instance discovery knows (MSAL's own list, msal/authority.py, 1.39).
_KNOWN_AUTHORITY_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoft.com",
        "login.windows.net",
        "sts.windows.net",
        "login.chinacloudapi.cn",
        "login.partner.microsoftonline.cn",
        "login.microsoftonline.de",
        "login-us.microsoftonline.com",
        "login.microsoftonline.us",
        "login.usgovcloudapi.net",
        "login.sovcloud-identity.fr",
        "login.sovcloud-identity.de",
        "login.sovcloud-identity.sg",
    }
)
# azure-identity logs each failed get_token as a WARNING with Entra's whole answer (trace ids, timestamps). With no
# logging configured, Python would print it on stderr beside our one-line error; an application that configures
# logging still receives it.
logging.getLogger("azure.identity").addHandler(logging.NullHandler())

_AADSTS = re.compile(r"(AADSTS\d+):\s*(.*?)(?:\.(?=\s|$)|\r|\n|$)", re.DOTALL)
#: What to do about the Entra error codes a wrong or stale set-up gives.
_AADSTS_FIXES = {
    "AADSTS7000215": "renew the client secret (the secret's value, not its id) and store the new one",
    "AADSTS7000222": "the client secret has expired: create a new one and store it",
    "AADSTS700016": "check the client id and the tenant: the application is not registered in that tenant",
    "AADSTS90002": "check the tenant id (AZURE_TENANT_ID, or the service connection's tenant)",
    "AADSTS900023": "check the tenant id (AZURE_TENANT_ID, or the service connection's tenant)",
    "AADSTS700027": "upload the certificate's public part to the application registration",
    "AADSTS700213": "add a federated credential whose issuer and subject match the service connection",
    "AADSTS70021": "add a federated credential whose issuer and subject match the service connection",
    "AADSTS700024": "the federated token expired: run the job again",
    "AADSTS500011": "the resource is not known in the tenant: check the tenant and the cloud (authority host)",
    "AADSTS65001": "grant the application consent for the resource in the tenant",
}


def network_options(timeout: float) -> dict[str, Any]:
    """The azure-identity keyword arguments that bound a token request: `connection_timeout` and `read_timeout`
    (azure-core's RequestsTransport, which every credential's pipeline builds from its keyword arguments) and
    `retry_total` (its RetryPolicy)."""
    return {"connection_timeout": timeout, "read_timeout": timeout, "retry_total": RETRIES}


def is_known_authority(authority: str) -> bool:
    """Whether Microsoft's instance discovery knows this authority host (a public or national Azure cloud)."""
    text = authority.strip()
    host = urlsplit(text if "://" in text else f"https://{text}").hostname or ""
    return host.lower() in _KNOWN_AUTHORITY_HOSTS


def _authority_options(authority: str | None) -> dict[str, Any]:
    if not authority or not authority.strip():
        return {}
    options: dict[str, Any] = {"authority": authority.strip()}
    if not is_known_authority(authority):
        options["disable_instance_discovery"] = True
    return options


def cli_credential(environ: Mapping[str, str] | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> AzureCredential:
    """`DefaultAzureCredential` for a person or a job running the CLI: environment (AZURE_CLIENT_ID +
    AZURE_CLIENT_SECRET / AZURE_CLIENT_CERTIFICATE_PATH + AZURE_TENANT_ID), workload identity, managed identity,
    then `az login`. AZURE_AUTHORITY_HOST picks the cloud; a host outside Microsoft's clouds works too.

    `timeout` bounds each token request's connection and each read (the HTTP ones; `az` keeps its own limit).
    """
    from azure.identity import DefaultAzureCredential

    variables = os.environ if environ is None else environ
    options = {**_authority_options(variables.get("AZURE_AUTHORITY_HOST")), **network_options(timeout)}
    try:
        return DefaultAzureCredential(**options)
    except ValueError as error:  # AZURE_TOKEN_CREDENTIALS or AZURE_AUTHORITY_HOST that azure-identity refuses
        reason = " ".join(str(error).split()).split(". ")[0].rstrip(".")
        raise UserError(
            f"the Azure sign-in settings cannot be used: {reason}",
            fix="correct or unset AZURE_AUTHORITY_HOST / AZURE_TOKEN_CREDENTIALS",
        ) from None


class _Lookup:
    """A case-insensitive view of the parameters or data of a service connection."""

    def __init__(self, values: Mapping[str, str] | None) -> None:
        self._values = {str(k).lower(): str(v) for k, v in (values or {}).items() if v is not None}

    def get(self, *names: str) -> str:
        for name in names:
            value = self._values.get(name.lower(), "").strip()
            if value:
                return value
        return ""


def service_connection_credential(
    scheme: str,
    parameters: Mapping[str, str],
    data: Mapping[str, str] | None = None,
    *,
    connection_id: str,
    job_token: str | None = None,
    oidc_request_uri: str | None = None,
    connection_name: str = "",
    timeout: float = DEFAULT_TIMEOUT,
) -> AzureCredential:
    """The credential of an AzureRM service connection, from what the agent put in the environment.

    `parameters`/`data` are the connection's authorization parameters and data (names in any case);
    `connection_id` is its GUID (the `azureSubscription` input's value); `job_token` is System.AccessToken
    (ENDPOINT_AUTH_PARAMETER_SYSTEMVSSCONNECTION_ACCESSTOKEN), needed by workload identity federation, as is
    `oidc_request_uri` (SYSTEM_OIDCREQUESTURI; taken from the environment when not given). `timeout` bounds each
    token request's connection and each read. Missing values are UserErrors naming the connection; no secret is
    put in any message.
    """
    label = f"Azure Resource Manager service connection {connection_name or connection_id}"
    params = _Lookup(parameters)
    details = _Lookup(data)
    authority = {
        **_authority_options(details.get("activeDirectoryAuthority", "environmentAuthorityUrl")),
        **network_options(timeout),
    }
    kind = (scheme or "ServicePrincipal").strip()

    def required(name: str, what: str) -> str:
        value = params.get(name)
        if not value:
            raise UserError(
                f"the {label} (scheme {kind}) has no {what} ({name})",
                fix="edit the service connection in Project settings > Service connections, or create it again",
            )
        return value

    try:
        if kind.lower() == "workloadidentityfederation":
            tenant = required("tenantid", "tenant id")
            client = required("serviceprincipalid", "service principal (client) id")
            return _pipelines_credential(
                tenant, client, connection_id, job_token, oidc_request_uri, params.get("idToken"), label, authority
            )
        if kind.lower() == "serviceprincipal":
            tenant = required("tenantid", "tenant id")
            client = required("serviceprincipalid", "service principal (client) id")
            if params.get("authenticationType").lower() == "spncertificate":
                from azure.identity import CertificateCredential

                pem = required("servicePrincipalCertificate", "certificate")
                # In memory: the certificate and its key never touch the disk.
                return CertificateCredential(tenant, client, certificate_data=pem.encode("utf-8"), **authority)
            from azure.identity import ClientSecretCredential

            secret = required("serviceprincipalkey", "client secret")
            return ClientSecretCredential(tenant, client, secret, **authority)
        if kind.lower() == "managedserviceidentity":
            from azure.identity import ManagedIdentityCredential

            client_id = details.get("msiclientId") or None
            network = network_options(timeout)
            if client_id:
                return ManagedIdentityCredential(client_id=client_id, **network)
            return ManagedIdentityCredential(**network)
    except ValueError as error:
        # azure-identity's own checks (tenant id characters, a certificate that does not parse): their words
        # name the problem and hold no secret, but only the first sentence is useful.
        reason = str(error).split(". ")[0].strip().rstrip(".")
        raise UserError(
            f"the {label} cannot be used: {reason}",
            fix="edit the service connection in Project settings > Service connections, or create it again",
        ) from None
    raise UserError(
        f"the {label} uses the authentication scheme {kind!r}, which flux-azdo cannot use",
        fix="use workload identity federation (recommended), a service principal with a secret or certificate, "
        "or a managed identity",
    )


def _pipelines_credential(
    tenant: str,
    client: str,
    connection_id: str,
    job_token: str | None,
    oidc_request_uri: str | None,
    id_token: str,
    label: str,
    authority: dict[str, Any],
) -> AzureCredential:
    uri = (oidc_request_uri or os.environ.get(OIDC_REQUEST_URI_VARIABLE, "")).strip()
    if uri and job_token:
        from azure.identity import AzurePipelinesCredential

        credential = AzurePipelinesCredential(
            tenant_id=tenant,
            client_id=client,
            service_connection_id=connection_id,
            system_access_token=job_token,
            **authority,
        )
        return _WithOidcRequestUri(credential, uri)
    if id_token:
        # The agent's late-bound id token (pipeline feature EnableLateBoundIdToken): usable as the assertion.
        from azure.identity import ClientAssertionCredential

        return ClientAssertionCredential(tenant, client, lambda: id_token, **authority)
    missing = "the job's access token (System.AccessToken)" if uri else f"{OIDC_REQUEST_URI_VARIABLE}"
    raise UserError(
        f"the {label} uses workload identity federation, and {missing} is not available to the task",
        fix="run the task in an Azure Pipelines job (agent 3.227 or later), with the connection authorised "
        "for this pipeline",
    )


class _WithOidcRequestUri:
    """`AzurePipelinesCredential` with the job's OIDC request URI in place.

    azure-identity reads SYSTEM_OIDCREQUESTURI from `os.environ` itself, at each `get_token` (it takes no argument
    for it), so the URI the caller gave is put there, once, when the credential is made: a caller that read its
    environment into a mapping and scrubbed os.environ still gets tokens. It is a URL of the job, not a secret.
    """

    def __init__(self, credential: Any, uri: str) -> None:
        self._credential = credential
        os.environ[OIDC_REQUEST_URI_VARIABLE] = uri

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        token: AccessToken = self._credential.get_token(
            *scopes, claims=claims, tenant_id=tenant_id, enable_cae=enable_cae, **kwargs
        )
        return token

    def get_token_info(self, *scopes: str, options: TokenRequestOptions | None = None) -> AccessTokenInfo:
        info: AccessTokenInfo = self._credential.get_token_info(*scopes, options=options)
        return info

    def close(self) -> None:
        self._credential.close()

    def __enter__(self) -> _WithOidcRequestUri:
        self._credential.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._credential.__exit__(kind, error, traceback)


def service_connection_arm(url: str | None, data: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(ARM URL, token scope) of an AzureRM service connection: its ENDPOINT_URL, else its data's
    `resourceManagerUrl`, else the public cloud; the scope for `activeDirectoryServiceEndpointResourceId` when the
    connection names one, else for the URL."""
    arm_url = (url or "").strip() or _Lookup(data).get("resourceManagerUrl") or PUBLIC_ARM_URL
    if not arm_url.endswith("/"):
        arm_url += "/"
    resource = _Lookup(data).get("activeDirectoryServiceEndpointResourceId") or arm_url
    return arm_url, scope_for(resource)


def scope_for(resource: str) -> str:
    """The `.default` scope of a resource URL or application id ("https://management.azure.com/.default")."""
    text = resource.strip()
    if text.endswith("/.default"):
        return text
    if "://" in text:
        return text.rstrip("/") + "/.default"
    return f"{text}/.default"


def describe_authentication_error(error: BaseException) -> tuple[str, str | None]:
    """(reason, fix) for an azure-identity failure, without trace ids, timestamps or anything from the exchange.

    An Entra answer keeps its AADSTS code and first sentence. A request that got no answer (refused, timed out, a
    TLS certificate not trusted, a name that does not resolve) says which host could not be reached and why.
    `DefaultAzureCredential` with nothing configured says so in one line.
    """
    text = str(getattr(error, "message", None) or error)
    match = _AADSTS.search(text)
    if match:
        code, sentence = match[1], " ".join(match[2].split())
        return f"{code}: {sentence}", _AADSTS_FIXES.get(code)
    network = _network_failure(error, text)
    if network is not None:
        return network
    first = (text.strip().splitlines() or [type(error).__name__])[0].strip()
    if first.startswith("DefaultAzureCredential failed to retrieve a token"):
        return (
            "no Azure credential is available",
            "sign in with `az login`, or set AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET (or "
            "AZURE_CLIENT_CERTIFICATE_PATH, or workload identity's AZURE_FEDERATED_TOKEN_FILE)",
        )
    for noise in (" Trace ID:", " Correlation ID:", " Timestamp:"):
        first = first.split(noise)[0]
    return first[:300].rstrip(" .") or type(error).__name__, None


#: urllib3's words for the failures of a request that got no HTTP answer, and what to say instead.
_NETWORK_REASONS = (
    (("CERTIFICATE_VERIFY_FAILED",), "its TLS certificate is not trusted"),
    (("SSLError", "[SSL", "SSL:"), "the TLS handshake failed"),
    (
        ("NameResolutionError", "Name or service not known", "Temporary failure in name resolution", "getaddrinfo"),
        "its name does not resolve",
    ),
    (("ProxyError", "Unable to connect to proxy"), "the proxy did not connect to it"),
    (("Connection refused",), "connection refused"),
    (("timed out", "Timeout"), "no answer in time"),
    (("Connection reset", "Connection aborted", "RemoteDisconnected"), "the connection was closed"),
    (("Failed to establish a new connection", "Max retries exceeded"), "cannot connect"),
)
_HOST = re.compile(r"host='([^']+)', port=(\d+)")
_TIMEOUT = re.compile(r"(?:read|connect) timeout=([0-9.]+)")


def _failed_host(text: str, urls: list[str], *, tls: bool) -> str | None:
    """`host[:port]` of the request that failed: urllib3's words name it, else the request's URL. A TLS failure
    names neither when `DefaultAzureCredential` reports it (its message is all that is left): its credentials
    asked AZURE_AUTHORITY_HOST, or Microsoft's public authority."""
    match = _HOST.search(text)
    if match is not None:
        return match[1] if match[2] == "443" else f"{match[1]}:{match[2]}"
    for url in urls:
        parts = urlsplit(url)
        if parts.hostname:
            return parts.netloc.rsplit("@", 1)[-1].removesuffix(":443")
    if tls and text.startswith("DefaultAzureCredential failed"):
        authority = os.environ.get("AZURE_AUTHORITY_HOST", "").strip() or "https://login.microsoftonline.com"
        parts = urlsplit(authority if "://" in authority else f"https://{authority}")
        return parts.netloc.removesuffix(":443") or None
    return None


def _network_failure(error: BaseException, text: str) -> tuple[str, str] | None:
    """(reason, fix) when the request never got an answer; None for anything else."""
    from azure.core.exceptions import ClientAuthenticationError

    chain = [text]
    urls: list[str] = []
    cause: BaseException | None = error
    while cause is not None and len(chain) < 8:
        chain.append(str(cause))
        for failure in (cause, getattr(cause, "inner_exception", None)):  # requests' errors keep their request
            url = getattr(getattr(failure, "request", None), "url", None)
            if isinstance(url, str):
                urls.append(url)
        cause = cause.__cause__ or cause.__context__
    everything = "\n".join(chain)
    reason = next((said for words, said in _NETWORK_REASONS if any(w in everything for w in words)), None)
    if reason is None:
        return None
    host = _failed_host(everything, urls, tls="TLS" in reason)
    if host is None:  # urllib3 names the host of each of these failures: without one, it is something else
        return None
    waited = _TIMEOUT.search(everything)
    if reason == "no answer in time" and waited is not None:
        reason = f"no answer within {float(waited[1]):g}s"
    # A ClientAuthenticationError comes from the token request itself; anything else from a request before it (the
    # pipeline's OIDC token endpoint, a managed identity endpoint).
    what = "the Microsoft Entra authority" if isinstance(error, ClientAuthenticationError) else "the token endpoint"
    if "TLS" in reason:
        fix = (
            "if a proxy inspects TLS, point REQUESTS_CA_BUNDLE at its CA bundle; else check the authority host "
            "(AZURE_AUTHORITY_HOST, or the service connection's environment)"
        )
    else:
        fix = (
            "check the network path and the proxy (HTTPS_PROXY, NO_PROXY) to it, and the authority host "
            "(AZURE_AUTHORITY_HOST, or the service connection's environment)"
        )
    return f"cannot reach {what} {host}: {reason}", fix
