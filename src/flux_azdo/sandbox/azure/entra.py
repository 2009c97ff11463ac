"""Microsoft Entra ID for one tenant: app registrations, their credentials, and the v2.0 token endpoint.

What azure-identity 1.27 and MSAL 1.39 ask for (read from their sources):

* MSAL (ClientSecretCredential, CertificateCredential) first reads `GET /{tenant}/v2.0/.well-known/openid-
  configuration` and takes `token_endpoint` from it; for an authority host it does not know it would first ask
  `https://login.microsoftonline.com/common/discovery/instance` unless the credential says
  `disable_instance_discovery=True` (MSAL's `instance_discovery=False`). That request would leave the machine, so
  sandbox clients must pass it; `/common/discovery/instance` is served here too for MSAL apps given this server's
  URL as their `instance_discovery` endpoint.
* Then `POST /{tenant}/oauth2/v2.0/token`, form-encoded, `grant_type=client_credentials`, `scope=<resource>/.default`
  and either `client_secret` or `client_assertion` + `client_assertion_type=urn:ietf:params:oauth:client-assertion-
  type:jwt-bearer`. azure-identity's certificate assertion is RS256 with a SHA-1 `x5t` (it hands MSAL a
  thumbprint); MSAL alone may send PS256 with `x5t#S256`: both are checked against the registered certificate.
  ClientAssertionCredential (so AzurePipelinesCredential) skips discovery and posts to the token endpoint at once,
  with the pipeline's OIDC token as the assertion: that one is matched against the app's federated identity
  credentials (issuer, then subject, case-sensitively, then audience) and its signature checked against the
  issuer's key, which the sandbox registers with `trust_issuer` (Entra would fetch it from the issuer's JWKS).

Errors have Entra's body: `error`, `error_description` (`AADSTSnnnn: text Trace ID: .. Correlation ID: ..
Timestamp: ..`), `error_codes`, `timestamp`, `trace_id`, `correlation_id` (the client's `client-request-id` when it
sent one), `error_uri`. Texts seen in real replies (GitHub issues): 90002 (tenant not found; `invalid_tenant` on
discovery), 700016 (unknown app, `unauthorized_client`), 7000215 (wrong secret, 401 `invalid_client`), 700024
(assertion outside its time range), 700213 / 7002138 (no federated credential for the subject / only a
case-insensitive match; like every federated-assertion failure a 401 `invalid_client`, as 70021 and 7002137 replies
show in external-secrets#2783 and microsoft/Agents#202), 700211 (issuer; text seen in public logs), 70025 (an app
with no federated credential at all, checked first: "The client '<id>'(<name>) has no configured federated identity
credentials.", seen in public reports). The others (700212 audience, 700027
certificate, 7000218 no credential, 50027 malformed, 50013 signature, 500011 unknown resource, 1002012 scope) follow
the same form; their exact texts are from memory (UNVERIFIED). Only the v2.0 endpoints are served (MSAL and
azure-identity use nothing else).

Federated assertions from the two pipeline issuers (`ids.py`) both match: the Entra-issued one carries `aud` = the
token exchange app id, which satisfies a credential listing `api://AzureADTokenExchange`.

Tokens: v1 access tokens (`ver` 1.0, `iss` https://sts.windows.net/<tenant>/) signed RS256 by this server's key
(published at `jwks_uri`), with `aud` from the scope (ARM, AKS server app, Azure DevOps), `tid`, `oid`, `sub`,
`appid`, `appidacr` (1 secret, 2 certificate or assertion), `iat`, `nbf`, `exp` (one hour).
"""

from __future__ import annotations

import datetime
import hashlib
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from flux_azdo.sandbox.azure import tokens
from flux_azdo.sandbox.azure.ids import AKS_SERVER_APP, AZURE_DEVOPS_APP, TOKEN_EXCHANGE_AUDIENCE, same_audience
from flux_azdo.sandbox.azure.replies import Reply

#: The audiences ARM accepts (its 401 InvalidAuthenticationTokenAudience lists them).
ARM_AUDIENCES = (
    "https://management.core.windows.net/",
    "https://management.core.windows.net",
    "https://management.azure.com/",
    "https://management.azure.com",
)
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

ACCESS_TOKEN_SECONDS = 3599
#: Clock skew Entra tolerates on an assertion's `nbf`.
CLOCK_SKEW = 300
_RESERVED_SCOPES = frozenset({"openid", "profile", "offline_access"})
_FEDERATION_DOCS = "https://learn.microsoft.com/entra/workload-id/workload-identity-federation"


@dataclass(frozen=True)
class FederatedCredential:
    """A federated identity credential on an app registration (issuer + subject + audiences)."""

    name: str
    issuer: str
    subject: str
    audiences: tuple[str, ...] = (TOKEN_EXCHANGE_AUDIENCE,)


@dataclass(eq=False)
class ServicePrincipal:
    """An app registration and its service principal in the tenant.

    `client_id` is the application (client) id, `object_id` the service principal's object id: what role
    assignments name and what tokens carry as `oid` (and what AKS uses as the Kubernetes user name).
    `secret` is its first current client secret (None: none left); `certificate_path` a PEM file holding the
    private key and certificate, as CertificateCredential reads it (None: no certificate). Each principal's
    certificate has a key of its own.
    """

    display_name: str
    tenant_id: str
    client_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    object_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    certificate_path: Path | None = None
    secrets: list[str] = field(default_factory=list)
    certificates: list[x509.Certificate] = field(default_factory=list)
    federated_credentials: list[FederatedCredential] = field(default_factory=list)

    @property
    def secret(self) -> str | None:
        """The first client secret still registered (follows `add_secret` / `remove_secrets`)."""
        return self.secrets[0] if self.secrets else None


class TokenRejected(Exception):
    """An access token a resource refuses: `reason` invalid (bad form, signature, tenant), expired or audience."""

    def __init__(self, reason: Literal["invalid", "expired", "audience"], claims: Mapping[str, Any] | None = None):
        super().__init__(reason)
        self.reason = reason
        self.claims: Mapping[str, Any] = claims or {}


def _utc(seconds: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)


def _iso7(seconds: float) -> str:
    """Entra's time form in AADSTS700024: `2024-10-02T22:05:03.6755165Z`."""
    moment = _utc(seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0Z"


class EntraError(Exception):
    def __init__(self, status: int, error: str, code: int, text: str) -> None:
        super().__init__(f"AADSTS{code}: {text}")
        self.status, self.error, self.code, self.text = status, error, code, text


class _Assertion(NamedTuple):
    """A client assertion as `tokens.decode` splits it: what it says, and the signature over what it says."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes

    def signed_by(self, key: rsa.RSAPublicKey) -> bool:
        return tokens.signature_valid(self.header, self.signing_input, self.signature, key)


class Directory:
    """One Microsoft Entra tenant. Thread-safe; `clock` gives seconds since the epoch (tests may replace it)."""

    def __init__(self, tenant_id: str | None = None, *, display_name: str = "Sandbox Directory") -> None:
        self.tenant_id = (tenant_id or str(uuid.uuid4())).lower()
        self.display_name = display_name
        self.domain = "sandbox.onmicrosoft.com"
        self.clock: Callable[[], float] = time.time
        self.authority_host = ""  # set by the server once it has a port
        #: Resource ids that mean ARM (its 401 lists them); the server adds its own URL, as a sovereign cloud's ARM
        #: endpoint is also its resource id: a client that asks for `<arm_url>.default` gets an ARM token.
        self.arm_audiences: list[str] = list(ARM_AUDIENCES)
        self._signing_key = tokens.process_key("entra-signing")
        self._lock = threading.RLock()
        self._apps: dict[str, ServicePrincipal] = {}
        self._issuers: dict[str, list[rsa.RSAPublicKey]] = {}

    # ----- configuration ------------------------------------------------------------------------------------

    def register_application(
        self,
        display_name: str,
        *,
        secret: bool = True,
        certificate_folder: Path | None = None,
        client_id: str | None = None,
    ) -> ServicePrincipal:
        """An app registration with its service principal; a client secret unless `secret=False`; a certificate
        (key and certificate PEM written 0600 into `certificate_folder`) when a folder is given."""
        principal = ServicePrincipal(display_name, self.tenant_id)
        if client_id is not None:
            principal.client_id = client_id
        if secret:
            self.add_secret(principal)
        if certificate_folder is not None:
            principal.certificate_path = self.add_certificate(principal, certificate_folder)
        with self._lock:
            self._apps[principal.client_id.lower()] = principal
        return principal

    def add_secret(self, principal: ServicePrincipal) -> str:
        """A new client secret (40 characters, like the portal's `abc8Q~...` values)."""
        value = os.urandom(30).hex()[:3] + "8Q~" + tokens.b64url(os.urandom(28))[:34].replace("-", "_")
        with self._lock:
            principal.secrets.append(value)
        return value

    def remove_secrets(self, principal: ServicePrincipal) -> None:
        with self._lock:
            principal.secrets.clear()

    def add_certificate(self, principal: ServicePrincipal, folder: Path) -> Path:
        """A self-signed RSA certificate with a key of its own, registered on the app; returns its key+certificate
        PEM file (0600). A fresh key per certificate: a shared one would let any principal's key sign for another."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, principal.display_name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=365))
            .sign(key, hashes.SHA256())
        )
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = folder / f"{principal.display_name}-{principal.client_id[:8]}.pem"
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ) + certificate.public_bytes(serialization.Encoding.PEM)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as stream:
            stream.write(pem)
        with self._lock:
            principal.certificates.append(certificate)
        return path

    def add_federated_credential(
        self,
        principal: ServicePrincipal,
        *,
        issuer: str,
        subject: str,
        audiences: Sequence[str] = (TOKEN_EXCHANGE_AUDIENCE,),
        name: str | None = None,
    ) -> FederatedCredential:
        credential = FederatedCredential(
            name or f"fic-{len(principal.federated_credentials) + 1}", issuer, subject, tuple(audiences)
        )
        with self._lock:
            principal.federated_credentials.append(credential)
        return credential

    def trust_issuer(self, issuer: str, public_key: rsa.RSAPublicKey) -> None:
        """The signing key of an external OIDC issuer (what Entra would read from the issuer's `jwks_uri`)."""
        with self._lock:
            self._issuers.setdefault(issuer, []).append(public_key)

    def application(self, client_id: str) -> ServicePrincipal | None:
        with self._lock:
            return self._apps.get(client_id.strip().lower())

    def knows_tenant(self, tenant: str) -> bool:
        return tenant.lower() in (self.tenant_id, self.domain)

    # ----- tokens -------------------------------------------------------------------------------------------

    def issue_access_token(self, principal: ServicePrincipal, audience: str, *, appidacr: str = "1") -> str:
        now = int(self.clock())
        issuer = f"https://sts.windows.net/{self.tenant_id}/"
        claims = {
            "aud": audience,
            "iss": issuer,
            "iat": now,
            "nbf": now,
            "exp": now + ACCESS_TOKEN_SECONDS + 1,
            "aio": tokens.b64url(os.urandom(24)),
            "appid": principal.client_id,
            "appidacr": appidacr,
            "idp": issuer,
            "idtyp": "app",
            "oid": principal.object_id,
            "rh": tokens.b64url(os.urandom(16)) + ".",
            "sub": principal.object_id,
            "tid": self.tenant_id,
            "uti": tokens.b64url(os.urandom(16)),
            "ver": "1.0",
        }
        return tokens.sign(claims, self._signing_key)

    def verify_access_token(self, token: str, audiences: Sequence[str]) -> dict[str, Any]:
        """The claims of a token this tenant issued for one of `audiences`; TokenRejected otherwise."""
        try:
            header, claims, signing_input, signature = tokens.decode(token)
        except tokens.MalformedToken:
            raise TokenRejected("invalid") from None
        if not tokens.signature_valid(header, signing_input, signature, self._signing_key.public_key()):
            raise TokenRejected("invalid", claims)
        if claims.get("tid") != self.tenant_id:
            raise TokenRejected("invalid", claims)
        if claims.get("aud") not in audiences:
            raise TokenRejected("audience", claims)
        exp = claims.get("exp")
        if not isinstance(exp, int) or exp <= self.clock():
            raise TokenRejected("expired", claims)
        return claims

    def jwks(self) -> dict[str, Any]:
        return {"keys": [tokens.jwk(self._signing_key.public_key())]}

    # ----- HTTP ---------------------------------------------------------------------------------------------

    def openid_configuration(self, tenant: str, correlation_id: str | None) -> Reply:
        """The v2.0 discovery document (`/{tenant}/v2.0/.well-known/openid-configuration`)."""
        if not self.knows_tenant(tenant):
            return self._error(EntraError(400, "invalid_tenant", 90002, _tenant_not_found(tenant)), correlation_id)
        base = f"{self.authority_host}/{self.tenant_id}"
        suffix = "/v2.0"
        document = {
            "token_endpoint": f"{base}/oauth2{suffix}/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": f"{base}/discovery{suffix}/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
            "authorization_endpoint": f"{base}/oauth2{suffix}/authorize",
            "device_authorization_endpoint": f"{base}/oauth2{suffix}/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2{suffix}/logout",
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "nonce", "tid", "ver"],
            "kerberos_endpoint": f"{base}/kerberos",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }
        return Reply(200, document, _no_store())

    def keys(self, tenant: str, correlation_id: str | None) -> Reply:
        if not self.knows_tenant(tenant):
            return self._error(EntraError(400, "invalid_tenant", 90002, _tenant_not_found(tenant)), correlation_id)
        return Reply(200, self.jwks())

    def instance_discovery(self, query: Mapping[str, str]) -> Reply:
        """`GET /common/discovery/instance?authorization_endpoint=https://host/<tenant>/oauth2/v2.0/authorize`."""
        # MSAL names the host without its port (`https://127.0.0.1/<tenant>/...`): only the path counts.
        endpoint = urlsplit(query.get("authorization_endpoint", ""))
        host = self.authority_host.removeprefix("https://")
        tenant = endpoint.path.strip("/").split("/")[0] or "common"
        return Reply(
            200,
            {
                "tenant_discovery_endpoint": f"{self.authority_host}/{tenant}/v2.0/.well-known/openid-configuration",
                "api-version": "1.1",
                "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
            },
        )

    def token(self, tenant: str, form: Mapping[str, str], correlation_id: str | None) -> Reply:
        """`POST /{tenant}/oauth2/v2.0/token` for the client credentials grant (the only endpoint and grant served)."""
        try:
            principal, appidacr, audience = self._grant(tenant, form)
        except EntraError as error:
            return self._error(error, correlation_id)
        token = self.issue_access_token(principal, audience, appidacr=appidacr)
        document = {
            "token_type": "Bearer",
            "expires_in": ACCESS_TOKEN_SECONDS,
            "ext_expires_in": ACCESS_TOKEN_SECONDS,
            "access_token": token,
        }
        return Reply(200, document, _no_store())

    def _grant(self, tenant: str, form: Mapping[str, str]) -> tuple[ServicePrincipal, str, str]:
        if not self.knows_tenant(tenant):
            raise EntraError(400, "invalid_request", 90002, _tenant_not_found(tenant))
        grant_type = form.get("grant_type", "")
        if not grant_type:
            raise EntraError(400, "invalid_request", 900144, _missing("grant_type"))
        if grant_type != "client_credentials":
            raise EntraError(
                400, "unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{grant_type}'."
            )
        client_id = form.get("client_id", "").strip()
        if not client_id:
            raise EntraError(400, "invalid_request", 900144, _missing("client_id"))
        if not form.get("scope", "").strip():
            raise EntraError(400, "invalid_request", 900144, _missing("scope"))
        principal = self.application(client_id)
        if principal is None:
            raise EntraError(
                400,
                "unauthorized_client",
                700016,
                (
                    f"Application with identifier '{client_id}' was not found in the directory '{self.display_name}'. "
                    "This can happen if the application has not been installed by the administrator of the tenant or "
                    "consented to by any user in the tenant. You may have sent your authentication request to the "
                    "wrong tenant."
                ),
            )
        appidacr = self._authenticate_client(tenant, principal, form)
        return principal, appidacr, self._audience(form["scope"])

    def _authenticate_client(self, tenant: str, principal: ServicePrincipal, form: Mapping[str, str]) -> str:
        secret = form.get("client_secret")
        assertion = form.get("client_assertion")
        if secret:
            with self._lock:
                known = list(principal.secrets)
            if secret not in known:
                raise EntraError(
                    401,
                    "invalid_client",
                    7000215,
                    (
                        "Invalid client secret provided. Ensure the secret being sent in the request is the client "
                        f"secret value, not the client secret ID, for a secret added to app '{principal.client_id}'."
                    ),
                )
            return "1"
        if not assertion:
            raise EntraError(
                401,
                "invalid_client",
                7000218,
                ("The request body must contain the following parameter: 'client_assertion' or 'client_secret'."),
            )
        if form.get("client_assertion_type") != JWT_BEARER:
            raise EntraError(400, "invalid_request", 900144, _missing("client_assertion_type"))
        try:
            decoded = _Assertion(*tokens.decode(assertion))
        except tokens.MalformedToken:
            raise EntraError(401, "invalid_client", 50027, "JWT token is invalid or malformed.") from None
        claims = decoded.claims
        if claims.get("iss") == principal.client_id and claims.get("sub") == principal.client_id:
            self._check_certificate_assertion(tenant, principal, decoded)
        else:
            self._check_federated_assertion(principal, decoded)
        return "2"

    def _check_certificate_assertion(self, tenant: str, principal: ServicePrincipal, assertion: _Assertion) -> None:
        header, claims = assertion.header, assertion.claims
        thumbprint = str(header.get("x5t#S256") or header.get("x5t") or "").rstrip("=")
        with self._lock:
            certificates = list(principal.certificates)
        found = next((c for c in certificates if thumbprint in _thumbprints(c)), None)
        shown = tokens.b64url_decode(thumbprint).hex().upper() if thumbprint else ""
        if found is None:
            raise EntraError(
                401,
                "invalid_client",
                700027,
                (
                    "The certificate with identifier used to sign the client assertion is not registered on "
                    f"application. [Reason - The key was not found., Thumbprint of key used by client: '{shown}', "
                    "Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for "
                    f"app Id '{principal.client_id}'.]"
                ),
            )
        public_key = found.public_key()
        assert isinstance(public_key, rsa.RSAPublicKey)
        if not assertion.signed_by(public_key):
            raise EntraError(
                401,
                "invalid_client",
                700027,
                (
                    "Client assertion failed signature validation. [Reason - The provided signature value did not "
                    f"match the expected signature value., Thumbprint of key used by client: '{shown}']"
                ),
            )
        audience = str(claims.get("aud", "")).lower()
        if not any(
            audience.endswith(f"/{t}/oauth2/v2.0/token") or audience.endswith(f"/{t}/oauth2/token")
            for t in (tenant.lower(), self.tenant_id, self.domain)
        ):
            raise EntraError(401, "invalid_client", 50027, "JWT token is invalid or malformed.")
        self._check_time(claims)

    def _check_federated_assertion(self, principal: ServicePrincipal, assertion: _Assertion) -> None:
        claims = assertion.claims
        issuer, subject = str(claims.get("iss", "")), str(claims.get("sub", ""))
        audiences = claims.get("aud")
        presented = [str(a) for a in audiences] if isinstance(audiences, list) else [str(audiences or "")]
        with self._lock:
            configured = list(principal.federated_credentials)
            keys = list(self._issuers.get(issuer, []))
        if not configured:
            text = (
                f"The client '{principal.client_id}'({principal.display_name}) has no configured federated identity "
                "credentials."
            )
            raise EntraError(401, "invalid_client", 70025, text)
        candidates = [c for c in configured if c.issuer == issuer]
        if not candidates:
            raise _no_federated_record(
                700211,
                f"No matching federated identity record found for presented assertion issuer '{issuer}'. Please "
                "check your federated identity credential Subject, Audience and Issuer against the presented "
                f"assertion. {_FEDERATION_DOCS}",
            )
        if not any(assertion.signed_by(key) for key in keys):
            text = "Assertion failed signature validation. [Reason - The key was not found.]"
            raise EntraError(401, "invalid_client", 50013, text)
        self._check_time(claims)
        matching = [c for c in candidates if c.subject == subject]
        if not matching:
            if any(c.subject.casefold() == subject.casefold() for c in candidates):
                raise _no_federated_record(
                    7002138,
                    f"No matching federated identity record found for presented assertion subject '{subject}'. The "
                    "subject matches with case-insensitive comparison, but not with case-sensitive comparison. Check "
                    "your federated identity credential Subject, Audience and Issuer against the presented "
                    f"assertion. {_FEDERATION_DOCS}",
                )
            raise _no_federated_record(
                700213,
                f"No matching federated identity record found for presented assertion subject '{subject}'. Check "
                "your federated identity credential Subject, Audience and Issuer against the presented assertion. "
                f"{_FEDERATION_DOCS}",
            )
        if not any(same_audience(a, r) for c in matching for r in c.audiences for a in presented):
            shown = ",".join(presented)
            raise _no_federated_record(
                700212,
                f"No matching federated identity record found for presented assertion audience '{shown}'. Please "
                "check your federated identity credential Subject, Audience and Issuer against the presented "
                f"assertion. {_FEDERATION_DOCS}",
            )

    def _check_time(self, claims: Mapping[str, Any]) -> None:
        now = self.clock()
        exp = claims.get("exp")
        nbf = claims.get("nbf", 0)
        if not isinstance(exp, (int, float)) or not isinstance(nbf, (int, float)):
            raise EntraError(401, "invalid_client", 50027, "JWT token is invalid or malformed.")
        if exp <= now or nbf > now + CLOCK_SKEW:
            raise EntraError(
                401,
                "invalid_client",
                700024,
                (
                    f"Client assertion is not within its valid time range. Current time: {_iso7(now)}, assertion "
                    f"valid from {_iso7(nbf)}, expiry time of assertion {_iso7(exp)}. Review the documentation at "
                    "https://learn.microsoft.com/entra/identity-platform/certificate-credentials ."
                ),
            )

    def _audience(self, scope_text: str) -> str:
        scopes = [s for s in scope_text.split() if s not in _RESERVED_SCOPES]
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            shown = " ".join(scopes) or scope_text
            raise EntraError(
                400,
                "invalid_scope",
                1002012,
                (
                    f"The provided value for scope {shown} is not valid. Client credential flows must have a scope "
                    "value with /.default suffixed to the resource identifier (application ID URI)."
                ),
            )
        resource = scopes[0].removesuffix(".default")
        bare = resource.rstrip("/")
        if bare in (a.rstrip("/") for a in self.arm_audiences):
            return bare + "/"
        if bare.lower() in (AKS_SERVER_APP, AZURE_DEVOPS_APP):
            return bare.lower()
        raise EntraError(
            400,
            "invalid_resource",
            500011,
            (
                f"The resource principal named {bare} was not found in the tenant named {self.display_name}. This can "
                "happen if the application has not been installed by the administrator of the tenant or consented to "
                "by any user in the tenant. You might have sent your authentication request to the wrong tenant."
            ),
        )

    def _error(self, error: EntraError, correlation_id: str | None) -> Reply:
        trace = str(uuid.uuid4())
        correlation = correlation_id or str(uuid.uuid4())
        stamp = _utc(self.clock()).strftime("%Y-%m-%d %H:%M:%SZ")
        description = (
            f"AADSTS{error.code}: {error.text} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {stamp}"
        )
        document = {
            "error": error.error,
            "error_description": description,
            "error_codes": [error.code],
            "timestamp": stamp,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": f"https://login.microsoftonline.com/error?code={error.code}",
        }
        return Reply(error.status, document, {**_no_store(), "x-ms-request-id": trace})


def _no_federated_record(code: int, text: str) -> EntraError:
    """The family of replies for an assertion no federated identity credential matches (401 invalid_client)."""
    return EntraError(401, "invalid_client", code, text)


def _thumbprints(certificate: x509.Certificate) -> tuple[str, str]:
    der = certificate.public_bytes(serialization.Encoding.DER)
    return (
        tokens.b64url(hashlib.sha1(der, usedforsecurity=False).digest()),
        tokens.b64url(hashlib.sha256(der).digest()),
    )


def _tenant_not_found(tenant: str) -> str:
    return (
        f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the "
        "correct cloud. Check with your subscription administrator, this may happen if there are no active "
        "subscriptions for the tenant."
    )


def _missing(parameter: str) -> str:
    return f"The request body must contain the following parameter: '{parameter}'."


def _no_store() -> dict[str, str]:
    return {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}
