"""The sandbox Entra ID driven by azure-identity and MSAL: tokens per scope, credentials, and AADSTS error replies."""

from __future__ import annotations

import datetime
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import msal
import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import CertificateCredential, ClientSecretCredential
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from flux_azdo.sandbox.azure import AKS_SERVER_APP, AZURE_DEVOPS_APP
from flux_azdo.sandbox.runtime import Sandbox
from support.sandboxes import azure_credential_options, running_sandbox

ARM_SCOPE = "https://management.azure.com/.default"
JWT = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    with running_sandbox(tmp_path, azure=True) as running:
        yield running


def _azure(sandbox: Sandbox) -> Any:
    assert sandbox.azure is not None
    return sandbox.azure


def _verified_claims(sandbox: Sandbox, token: str, audience: str) -> dict[str, Any]:
    """Check a token as a resource would: the signing key from the tenant's discovery document (`jwks_uri`)."""
    azure = _azure(sandbox)
    configuration_url = f"{azure.authority_host}/{azure.tenant_id}/v2.0/.well-known/openid-configuration"
    configuration = requests.get(configuration_url, verify=str(azure.ca_file), timeout=10).json()
    keys = requests.get(configuration["jwks_uri"], verify=str(azure.ca_file), timeout=10).json()
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(jwt.PyJWK(k) for k in keys["keys"] if k["kid"] == kid)
    claims: dict[str, Any] = jwt.decode(token, key.key, algorithms=["RS256"], audience=audience)
    return claims


def _secret_credential(sandbox: Sandbox, **overrides: Any) -> ClientSecretCredential:
    values: dict[str, Any] = {
        "tenant_id": _azure(sandbox).tenant_id,
        "client_id": sandbox.deployer.client_id,
        "client_secret": sandbox.deployer.secret,
    }
    values |= overrides
    return ClientSecretCredential(**values, **azure_credential_options(sandbox))


def test_client_secret_token_for_arm_carries_the_principal(sandbox: Sandbox) -> None:
    token = _secret_credential(sandbox).get_token(ARM_SCOPE)
    claims = _verified_claims(sandbox, token.token, "https://management.azure.com/")
    assert claims["tid"] == _azure(sandbox).tenant_id
    assert claims["oid"] == claims["sub"] == sandbox.deployer.object_id
    assert claims["appid"] == sandbox.deployer.client_id
    assert claims["appidacr"] == "1"
    assert claims["exp"] > claims["iat"]
    assert token.expires_on == pytest.approx(claims["exp"], abs=120)


@pytest.mark.parametrize(
    ("scope", "audience"),
    [
        (f"{AKS_SERVER_APP}/.default", AKS_SERVER_APP),
        (f"{AZURE_DEVOPS_APP}/.default", AZURE_DEVOPS_APP),
        ("https://management.core.windows.net//.default", "https://management.core.windows.net/"),
    ],
)
def test_the_scope_decides_the_audience(sandbox: Sandbox, scope: str, audience: str) -> None:
    token = _secret_credential(sandbox).get_token(scope)
    assert _verified_claims(sandbox, token.token, audience)["aud"] == audience


def test_the_sandbox_arm_url_is_an_arm_resource_too(sandbox: Sandbox) -> None:
    """A client that derives the scope from the ARM endpoint (`<arm_url>.default`) gets an ARM token."""
    azure = _azure(sandbox)
    token = _secret_credential(sandbox).get_token(f"{azure.arm_url}.default")
    assert _verified_claims(sandbox, token.token, azure.arm_url)["aud"] == azure.arm_url


def test_certificate_credential_signs_an_assertion_the_tenant_verifies(sandbox: Sandbox) -> None:
    credential = CertificateCredential(
        _azure(sandbox).tenant_id,
        sandbox.deployer.client_id,
        str(sandbox.deployer.certificate_path),
        **azure_credential_options(sandbox),
    )
    token = credential.get_token(ARM_SCOPE)
    claims = _verified_claims(sandbox, token.token, "https://management.azure.com/")
    assert claims["appidacr"] == "2"
    assert claims["oid"] == sandbox.deployer.object_id


def _msal_app(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, credential: object, **options: Any
) -> msal.ConfidentialClientApplication:
    # requests lets REQUESTS_CA_BUNDLE override a session's `verify` (MSAL's `verify=` is one), so a machine with
    # that variable set must name the sandbox CA there.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(_azure(sandbox).ca_file))
    return msal.ConfidentialClientApplication(
        sandbox.deployer.client_id,
        client_credential=credential,
        authority=f"{_azure(sandbox).authority_host}/{_azure(sandbox).tenant_id}",
        verify=str(_azure(sandbox).ca_file),
        **options,
    )


def test_msal_ps256_assertion_with_the_sha256_thumbprint(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """MSAL alone, given the public certificate, signs PS256 with `x5t#S256`: accepted as well."""
    assert sandbox.deployer.certificate_path is not None
    pem = sandbox.deployer.certificate_path.read_text()
    certificate = pem[pem.index("-----BEGIN CERTIFICATE-----") :]
    app = _msal_app(
        sandbox, monkeypatch, {"private_key": pem, "public_certificate": certificate}, instance_discovery=False
    )
    result = app.acquire_token_for_client([ARM_SCOPE])
    assert "access_token" in result, result


def test_msal_instance_discovery_against_the_sandbox(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """MSAL's instance discovery, pointed at the sandbox's own endpoint, leads to the tenant's metadata."""
    discovery = f"{_azure(sandbox).authority_host}/common/discovery/instance"
    app = _msal_app(sandbox, monkeypatch, sandbox.deployer.secret, instance_discovery=discovery)
    result = app.acquire_token_for_client([ARM_SCOPE])
    assert "access_token" in result, result


def _raw_token_request(sandbox: Sandbox, tenant: str | None = None, **form: str) -> requests.Response:
    azure = _azure(sandbox)
    data = {"grant_type": "client_credentials", "client_id": sandbox.deployer.client_id, "scope": ARM_SCOPE}
    data |= form
    return requests.post(
        azure.token_endpoint(tenant),
        data=data,
        headers={"client-request-id": "11111111-2222-3333-4444-555555555555"},
        verify=str(azure.ca_file),
        timeout=10,
    )


def test_wrong_secret_is_entra_s_invalid_client_reply(sandbox: Sandbox) -> None:
    reply = _raw_token_request(sandbox, client_secret="not-the-secret")
    assert reply.status_code == 401
    body = reply.json()
    assert body["error"] == "invalid_client"
    assert body["error_codes"] == [7000215]
    assert body["error_description"].startswith(
        "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client "
        f"secret value, not the client secret ID, for a secret added to app '{sandbox.deployer.client_id}'."
    )
    assert body["correlation_id"] == "11111111-2222-3333-4444-555555555555"
    assert f"Trace ID: {body['trace_id']} Correlation ID: {body['correlation_id']}" in body["error_description"]
    datetime.datetime.strptime(body["timestamp"], "%Y-%m-%d %H:%M:%SZ")
    assert body["error_uri"] == "https://login.microsoftonline.com/error?code=7000215"

    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        _secret_credential(sandbox, client_secret="not-the-secret").get_token(ARM_SCOPE)


def test_unknown_application_is_700016(sandbox: Sandbox) -> None:
    stranger = str(uuid.uuid4())
    reply = _raw_token_request(sandbox, client_id=stranger, client_secret="x")
    assert reply.status_code == 400
    assert reply.json()["error"] == "unauthorized_client"
    assert reply.json()["error_description"].startswith(
        f"AADSTS700016: Application with identifier '{stranger}' was not found in the directory"
    )
    with pytest.raises(ClientAuthenticationError, match="AADSTS700016"):
        _secret_credential(sandbox, client_id=stranger).get_token(ARM_SCOPE)


def test_unknown_tenant_is_90002(sandbox: Sandbox) -> None:
    stranger = str(uuid.uuid4())
    azure = _azure(sandbox)
    discovery = requests.get(
        f"{azure.authority_host}/{stranger}/v2.0/.well-known/openid-configuration",
        verify=str(azure.ca_file),
        timeout=10,
    )
    assert discovery.status_code == 400
    assert discovery.json()["error"] == "invalid_tenant"
    assert discovery.json()["error_description"].startswith(f"AADSTS90002: Tenant '{stranger}' not found.")
    token = _raw_token_request(sandbox, tenant=stranger, client_secret=sandbox.deployer.secret or "")
    assert token.status_code == 400
    assert token.json()["error"] == "invalid_request"
    assert token.json()["error_codes"] == [90002]
    assert token.json()["error_description"].startswith(
        f"AADSTS90002: Tenant '{stranger}' not found. Check to make sure you have the correct tenant ID and are "
        "signing into the correct cloud. Check with your subscription administrator, this may happen if there are no "
        "active subscriptions for the tenant. Trace ID: "
    )
    # MSAL fails on the discovery document and says so; azure-identity passes the error on.
    authority = re.escape(f"{azure.authority_host}/{stranger}")
    with pytest.raises(ClientAuthenticationError, match=f"Unable to get authority configuration for {authority}\\."):
        _secret_credential(sandbox, tenant_id=stranger).get_token(ARM_SCOPE)


def test_unregistered_certificate_is_700027(sandbox: Sandbox, tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "impostor")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "impostor.pem"
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        + certificate.public_bytes(serialization.Encoding.PEM)
    )
    credential = CertificateCredential(
        _azure(sandbox).tenant_id, sandbox.deployer.client_id, str(path), **azure_credential_options(sandbox)
    )
    with pytest.raises(ClientAuthenticationError, match="AADSTS700027: The certificate with identifier used to sign"):
        credential.get_token(ARM_SCOPE)


def _assertion(principal_id: str, audience: str, key: rsa.RSAPrivateKey, x5t: str) -> str:
    now = int(time.time())
    claims = {"aud": audience, "iss": principal_id, "sub": principal_id, "jti": str(uuid.uuid4())}
    claims |= {"nbf": now, "exp": now + 600}
    return jwt.encode(claims, key, algorithm="RS256", headers={"x5t": x5t})


def test_another_principal_s_key_with_the_registered_thumbprint_is_700027(sandbox: Sandbox) -> None:
    """Each principal's certificate has its own key: a second principal cannot sign for the deployer by naming the
    deployer's certificate thumbprint (the signature check fails)."""
    azure = _azure(sandbox)
    other = azure.directory.register_application("other", certificate_folder=azure.folder / "other")
    assert sandbox.deployer.certificate_path is not None and other.certificate_path is not None
    deployer_pem = sandbox.deployer.certificate_path.read_bytes()
    other_pem = other.certificate_path.read_bytes()
    certificate = x509.load_pem_x509_certificate(deployer_pem)
    x5t = jwt.utils.base64url_encode(certificate.fingerprint(hashes.SHA1())).decode()  # the SHA-1 thumbprint: x5t
    foreign = serialization.load_pem_private_key(other_pem, password=None)
    own = serialization.load_pem_private_key(deployer_pem, password=None)
    assert isinstance(foreign, rsa.RSAPrivateKey) and isinstance(own, rsa.RSAPrivateKey)
    assert foreign.private_numbers() != own.private_numbers()
    endpoint = azure.token_endpoint()
    accepted = _raw_token_request(
        sandbox, client_assertion=_assertion(sandbox.deployer.client_id, endpoint, own, x5t), client_assertion_type=JWT
    )
    assert accepted.status_code == 200, accepted.text
    refused = _raw_token_request(
        sandbox,
        client_assertion=_assertion(sandbox.deployer.client_id, endpoint, foreign, x5t),
        client_assertion_type=JWT,
    )
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"
    assert refused.json()["error_description"].startswith(
        "AADSTS700027: Client assertion failed signature validation. [Reason - The provided signature value did not "
        "match the expected signature value., Thumbprint of key used by client: '"
    )


def test_unknown_resource_and_bad_scope(sandbox: Sandbox) -> None:
    unknown = _raw_token_request(sandbox, client_secret=sandbox.deployer.secret or "", scope="api://nothing/.default")
    assert unknown.status_code == 400
    assert unknown.json()["error"] == "invalid_resource"
    assert unknown.json()["error_description"].startswith("AADSTS500011: The resource principal named api://nothing")
    not_default = _raw_token_request(
        sandbox, client_secret=sandbox.deployer.secret or "", scope="https://management.azure.com/user_impersonation"
    )
    assert not_default.status_code == 400
    assert not_default.json()["error"] == "invalid_scope"
    assert not_default.json()["error_codes"] == [1002012]


def test_a_removed_secret_stops_working(sandbox: Sandbox) -> None:
    """Rotation in the portal: a new secret works, the old one is refused once deleted."""
    azure = _azure(sandbox)
    old = sandbox.deployer.secret
    azure.directory.remove_secrets(sandbox.deployer)
    assert sandbox.deployer.secret is None
    new = azure.directory.add_secret(sandbox.deployer)
    assert sandbox.deployer.secret == new
    assert _secret_credential(sandbox, client_secret=new).get_token(ARM_SCOPE).token
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        _secret_credential(sandbox, client_secret=old).get_token(ARM_SCOPE)


def test_tenant_ids_are_case_insensitive(sandbox: Sandbox) -> None:
    reply = _raw_token_request(sandbox, tenant=_azure(sandbox).tenant_id.upper(), client_secret=sandbox.deployer.secret)
    assert reply.status_code == 200, reply.text
    assert jwt.decode(reply.json()["access_token"], options={"verify_signature": False})["tid"] == (
        _azure(sandbox).tenant_id
    )


def test_the_v1_token_endpoint_is_not_served(sandbox: Sandbox) -> None:
    azure = _azure(sandbox)
    form = {"grant_type": "client_credentials", "client_id": sandbox.deployer.client_id}
    form |= {"client_secret": sandbox.deployer.secret or "", "resource": "https://management.azure.com/"}
    reply = requests.post(
        f"{azure.authority_host}/{azure.tenant_id}/oauth2/token", data=form, verify=str(azure.ca_file), timeout=10
    )
    assert reply.status_code == 404


def test_a_chunked_body_is_read(sandbox: Sandbox) -> None:
    azure = _azure(sandbox)
    form = f"grant_type=client_credentials&client_id={sandbox.deployer.client_id}&scope={ARM_SCOPE}"
    form += f"&client_secret={sandbox.deployer.secret}"
    pieces = iter([form[:20].encode(), form[20:].encode()])  # a generator body: requests sends it chunked
    reply = requests.post(
        azure.token_endpoint(),
        data=pieces,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        verify=str(azure.ca_file),
        timeout=10,
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["token_type"] == "Bearer"


def test_an_oversized_body_gets_a_400_reply(sandbox: Sandbox) -> None:
    """The body is read and dropped first, so the client sees the reply rather than a reset connection."""
    azure = _azure(sandbox)
    with requests.Session() as session:
        reply = session.post(azure.token_endpoint(), data=b"x" * (2 << 20), verify=str(azure.ca_file), timeout=30)
        assert reply.status_code == 400
        assert reply.json()["error"] == "invalid_request"
        assert reply.headers.get("Connection") != "close"
        # The connection stays usable: the next request on it is answered.
        form = {"grant_type": "client_credentials", "client_id": sandbox.deployer.client_id, "scope": ARM_SCOPE}
        form["client_secret"] = sandbox.deployer.secret or ""
        again = session.post(azure.token_endpoint(), data=form, verify=str(azure.ca_file), timeout=10)
        assert again.status_code == 200, again.text
