"""The credential an AzureRM service connection (or the CLI's environment) becomes, proven by a real token from the
sandbox's Microsoft Entra ID; its mistakes, and an authority that cannot be reached, as one line each.

The connection arrives as the agent hands it to a task: scheme, authorization parameters and data with the names
upper-cased (ENDPOINT_AUTH_PARAMETER_<id>_<NAME>). test_aks.py takes these credentials on to ARM and the cluster.
"""

from __future__ import annotations

import base64
import datetime
import io
import json
import os
import signal
import socket
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import requests
import yaml
from azure.identity import ClientSecretCredential
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from flux_azdo.cluster.aks import (
    AksCluster,
    AksKubeconfig,
    aks_kubeconfig,
    kubeconfig_with_entra_token,
    write_private_kubeconfig,
)
from flux_azdo.cluster.azure_credentials import (
    OIDC_REQUEST_URI_VARIABLE,
    cli_credential,
    is_known_authority,
    scope_for,
    service_connection_arm,
    service_connection_credential,
)
from flux_azdo.errors import UserError
from flux_azdo.pipeline.masking import Masker
from flux_azdo.sandbox.runtime import Sandbox
from support.sandboxes import running_sandbox

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT = "0e6f4c1a-8d2b-4e0f-9c55-5a3f1c2b7d10"
CONNECTION = "5e7d9b1c-2a4f-4c3e-8b6d-9f0a1e2c3b4d"
SECRET = "sv~8Q~not-a-real-secret-0123456789abcdef"
ARM_SCOPE = "https://management.azure.com/.default"
#: Never reached: each failure below happens while getting the ARM token.
UNREACHED_ARM = "https://127.0.0.1:9/"


def _pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "deployer")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return (certificate.public_bytes(serialization.Encoding.PEM) + key_pem).decode()


@pytest.fixture(scope="module")
def azure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """One sandbox with Azure for the module: the tests only ask Entra ID for tokens."""
    with running_sandbox(tmp_path_factory.mktemp("sandbox"), azure=True) as sandbox:
        yield sandbox


@pytest.fixture
def trusted(azure: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """The sandbox, with its CA trusted the way a user behind a TLS-inspecting proxy does it."""
    assert azure.azure is not None
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(azure.azure.ca_file))
    return azure


@pytest.fixture
def guard() -> Iterator[None]:
    """A generous limit for the tests against servers that never answer: a hang fails the test, not the run."""

    def expire(_number: int, _frame: FrameType | None) -> None:
        raise AssertionError("the token request was not bounded by the timeout")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(120)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


def _deployer_parameters(sandbox: Sandbox, **extra: str) -> dict[str, str]:
    assert sandbox.azure is not None
    return {"SERVICEPRINCIPALID": sandbox.deployer.client_id, "TENANTID": sandbox.azure.tenant_id, **extra}


def _authority_data(sandbox: Sandbox) -> dict[str, str]:
    assert sandbox.azure is not None
    return {"ENVIRONMENTAUTHORITYURL": sandbox.azure.authority_host}


def _arm_token_for_the_deployer(sandbox: Sandbox, credential: Any) -> None:
    with credential:
        claims = _claims(credential.get_token(ARM_SCOPE).token)
    assert claims["aud"] == "https://management.azure.com/"
    assert claims["oid"] == sandbox.deployer.object_id


def test_a_service_principal_with_a_secret_gets_a_token(trusted: Sandbox) -> None:
    assert trusted.deployer.secret is not None
    parameters = _deployer_parameters(trusted, AUTHENTICATIONTYPE="spnKey", SERVICEPRINCIPALKEY=trusted.deployer.secret)
    credential = service_connection_credential(
        "ServicePrincipal", parameters, _authority_data(trusted), connection_id=CONNECTION
    )
    _arm_token_for_the_deployer(trusted, credential)


def test_a_service_principal_with_a_certificate_gets_a_token(trusted: Sandbox) -> None:
    assert trusted.deployer.certificate_path is not None
    pem = trusted.deployer.certificate_path.read_text(encoding="utf-8")
    parameters = _deployer_parameters(trusted, AUTHENTICATIONTYPE="spnCertificate", SERVICEPRINCIPALCERTIFICATE=pem)
    credential = service_connection_credential(
        "ServicePrincipal", parameters, _authority_data(trusted), connection_id=CONNECTION
    )
    _arm_token_for_the_deployer(trusted, credential)


def _pipeline_oidc_token(sandbox: Sandbox) -> str:
    """What the agent's late-bound id token is: the job's OIDC token for the service connection."""
    uri = sandbox.oidc_request_uri(str(uuid.uuid4()), str(uuid.uuid4()))
    response = requests.post(
        uri,
        params={"serviceConnectionId": sandbox.arm_connection.id, "api-version": "7.1"},
        headers={"Authorization": f"Bearer {sandbox.job_token}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["oidcToken"]
    return token


def test_workload_identity_federation_sets_the_oidc_uri_once_and_closes(
    trusted: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(OIDC_REQUEST_URI_VARIABLE, "restored after the test")
    monkeypatch.delenv(OIDC_REQUEST_URI_VARIABLE)
    uri = trusted.oidc_request_uri(str(uuid.uuid4()), str(uuid.uuid4()))
    credential = service_connection_credential(
        "WorkloadIdentityFederation",
        _deployer_parameters(trusted),
        _authority_data(trusted),
        connection_id=trusted.arm_connection.id,
        job_token=trusted.job_token,
        oidc_request_uri=uri,
    )
    assert os.environ[OIDC_REQUEST_URI_VARIABLE] == uri
    _arm_token_for_the_deployer(trusted, credential)
    credential.close()  # a second close, outside `with`, is harmless


def test_the_late_bound_id_token_without_an_oidc_uri_gets_a_token(
    trusted: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(OIDC_REQUEST_URI_VARIABLE, raising=False)
    parameters = _deployer_parameters(trusted, IDTOKEN=_pipeline_oidc_token(trusted))
    credential = service_connection_credential(
        "WorkloadIdentityFederation", parameters, _authority_data(trusted), connection_id=trusted.arm_connection.id
    )
    _arm_token_for_the_deployer(trusted, credential)


def test_the_cli_credential_takes_the_environment(trusted: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    assert trusted.azure is not None and trusted.deployer.secret is not None
    environment = {
        "AZURE_CLIENT_ID": trusted.deployer.client_id,
        "AZURE_CLIENT_SECRET": trusted.deployer.secret,
        "AZURE_TENANT_ID": trusted.azure.tenant_id,
        "AZURE_AUTHORITY_HOST": trusted.azure.authority_host,
        "AZURE_TOKEN_CREDENTIALS": "EnvironmentCredential",
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    _arm_token_for_the_deployer(trusted, cli_credential(timeout=10))


# ------------------------------------------------------------------------------------ an authority out of reach


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never says a word (a firewall that drops, a stuck proxy)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield server.getsockname()[1]


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _client_secret_environment(monkeypatch: pytest.MonkeyPatch, authority: str) -> None:
    for name, value in {
        "AZURE_CLIENT_ID": CLIENT,
        "AZURE_CLIENT_SECRET": SECRET,
        "AZURE_TENANT_ID": TENANT,
        "AZURE_AUTHORITY_HOST": authority,
        "AZURE_TOKEN_CREDENTIALS": "EnvironmentCredential",
    }.items():
        monkeypatch.setenv(name, value)


def _failure(credential: Any) -> UserError:
    with credential, pytest.raises(UserError) as caught:
        aks_kubeconfig(AksCluster("s", "rg", "c"), credential, arm_url=UNREACHED_ARM, arm_scope=ARM_SCOPE)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert SECRET not in str(caught.value)
    return caught.value


def test_an_authority_that_never_answers_fails_within_the_timeout(
    guard: None, silent_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    authority = f"https://127.0.0.1:{silent_port}"
    _client_secret_environment(monkeypatch, authority)
    expected = (
        f"could not get a Microsoft Entra token for Azure Resource Manager ({ARM_SCOPE}): cannot reach the "
        f"Microsoft Entra authority 127.0.0.1:{silent_port}: no answer within 1s"
    )
    error = _failure(cli_credential(timeout=1))
    assert error.message == expected
    assert error.fix is not None and "HTTPS_PROXY" in error.fix and "AZURE_AUTHORITY_HOST" in error.fix
    parameters = {"tenantid": TENANT, "serviceprincipalid": CLIENT, "serviceprincipalkey": SECRET}
    credential = service_connection_credential(
        "ServicePrincipal", parameters, {"environmentAuthorityUrl": authority}, connection_id=CONNECTION, timeout=1
    )
    assert _failure(credential).message == expected


def test_a_refused_connection_names_the_authority_and_the_fix(
    guard: None, closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    _client_secret_environment(monkeypatch, f"https://127.0.0.1:{closed_port}")
    error = _failure(cli_credential(timeout=5))
    assert str(error) == (
        f"could not get a Microsoft Entra token for Azure Resource Manager ({ARM_SCOPE}): cannot reach the "
        f"Microsoft Entra authority 127.0.0.1:{closed_port}: connection refused: check the network path and the "
        "proxy (HTTPS_PROXY, NO_PROXY) to it, and the authority host (AZURE_AUTHORITY_HOST, or the service "
        "connection's environment)"
    )


def test_an_untrusted_authority_certificate_says_requests_ca_bundle(
    azure: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert azure.azure is not None
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    _client_secret_environment(monkeypatch, azure.azure.authority_host)
    error = _failure(cli_credential(timeout=10))
    host = azure.azure.authority_host.removeprefix("https://")
    assert error.message.endswith(
        f"cannot reach the Microsoft Entra authority {host}: its TLS certificate is not trusted"
    )
    assert error.fix is not None and error.fix.startswith("if a proxy inspects TLS, point REQUESTS_CA_BUNDLE")
    assert azure.deployer.secret is not None
    parameters = _deployer_parameters(azure, SERVICEPRINCIPALKEY=azure.deployer.secret)
    credential = service_connection_credential(
        "ServicePrincipal", parameters, _authority_data(azure), connection_id=CONNECTION, timeout=10
    )
    assert _failure(credential).message.endswith(
        f"cannot reach the Microsoft Entra authority {host}: its TLS certificate is not trusted"
    )


def test_an_oidc_endpoint_that_refuses_is_one_line_too(
    trusted: Sandbox, closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(OIDC_REQUEST_URI_VARIABLE, "restored after the test")
    credential = service_connection_credential(
        "WorkloadIdentityFederation",
        _deployer_parameters(trusted),
        _authority_data(trusted),
        connection_id=trusted.arm_connection.id,
        job_token=trusted.job_token,
        oidc_request_uri=f"http://127.0.0.1:{closed_port}/org/project/_apis/distributedtask/hubs/build/plans/p/"
        "jobs/j/oidctoken",
        timeout=5,
    )
    error = _failure(credential)
    assert f"cannot reach the token endpoint 127.0.0.1:{closed_port}: connection refused" in error.message
    assert trusted.job_token not in str(error)


def test_workload_identity_without_the_oidc_uri_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYSTEM_OIDCREQUESTURI", raising=False)
    with pytest.raises(UserError) as caught:
        service_connection_credential(
            "WorkloadIdentityFederation",
            {"tenantid": TENANT, "serviceprincipalid": CLIENT},
            connection_id=CONNECTION,
            job_token="job-token-value",
            connection_name="prod-subscription",
        )
    text = str(caught.value)
    assert "prod-subscription" in text and "SYSTEM_OIDCREQUESTURI" in text
    assert "job-token-value" not in text


def test_a_certificate_that_does_not_parse_is_one_line_without_it() -> None:
    garbage = "-----BEGIN PRIVATE KEY-----\nnot-a-key-at-all-secret-bits\n-----END PRIVATE KEY-----\n"
    with pytest.raises(UserError) as caught:
        service_connection_credential(
            "ServicePrincipal",
            {
                "serviceprincipalid": CLIENT,
                "tenantid": TENANT,
                "authenticationType": "spnCertificate",
                "servicePrincipalCertificate": garbage,
            },
            connection_id=CONNECTION,
            connection_name="prod",
        )
    assert "service connection prod cannot be used" in str(caught.value)
    assert "secret-bits" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


@pytest.mark.parametrize(
    ("scheme", "parameters", "expected"),
    [
        ("ServicePrincipal", {"tenantid": TENANT}, "has no service principal (client) id (serviceprincipalid)"),
        ("ServicePrincipal", {"serviceprincipalid": CLIENT}, "has no tenant id (tenantid)"),
        ("ServicePrincipal", {"serviceprincipalid": CLIENT, "tenantid": TENANT}, "has no client secret"),
        (
            "ServicePrincipal",
            {"serviceprincipalid": CLIENT, "tenantid": TENANT, "authenticationType": "spnCertificate"},
            "has no certificate (servicePrincipalCertificate)",
        ),
        ("WorkloadIdentityFederation", {"tenantid": TENANT}, "has no service principal (client) id"),
        ("PublishProfile", {}, "uses the authentication scheme 'PublishProfile', which flux-azdo cannot use"),
    ],
)
def test_missing_parameters_name_the_connection(scheme: str, parameters: dict[str, str], expected: str) -> None:
    with pytest.raises(UserError) as caught:
        service_connection_credential(scheme, parameters, connection_id=CONNECTION, connection_name="prod-sub")
    assert "Azure Resource Manager service connection prod-sub" in str(caught.value)
    assert expected in str(caught.value)
    assert caught.value.fix


def test_the_arm_url_and_scope_of_a_connection() -> None:
    assert service_connection_arm(None) == ("https://management.azure.com/", "https://management.azure.com/.default")
    data = {"ACTIVEDIRECTORYSERVICEENDPOINTRESOURCEID": "https://management.core.chinacloudapi.cn/"}
    assert service_connection_arm("https://management.chinacloudapi.cn", data) == (
        "https://management.chinacloudapi.cn/",
        "https://management.core.chinacloudapi.cn/.default",
    )
    assert scope_for("6dae42f8-4368-4678-94ff-3960e28e3630") == "6dae42f8-4368-4678-94ff-3960e28e3630/.default"


def test_known_authorities() -> None:
    assert is_known_authority("https://login.microsoftonline.com/")
    assert is_known_authority("login.chinacloudapi.cn")
    assert not is_known_authority("https://127.0.0.1:8443")
    assert not is_known_authority("https://adfs.contoso.com/adfs")


@pytest.mark.parametrize(
    ("subscription", "group", "name"), [("", "rg", "c"), ("s", "r g", "c"), ("s", "rg", "a/b"), ("s", "rg", "x?y")]
)
def test_cluster_names_that_cannot_be_in_a_resource_id(subscription: str, group: str, name: str) -> None:
    with pytest.raises(UserError, match="is not valid"):
        AksCluster(subscription, group, name)


def test_the_kubeconfig_is_written_0600_in_a_0700_folder(tmp_path: Path) -> None:
    folder = tmp_path / "private"
    kubeconfig = AksKubeconfig("apiVersion: v1\n", ("t",), "https://x", entra=True, admin=False)
    path = write_private_kubeconfig(kubeconfig, folder)
    assert path == folder / "kubeconfig" and path.read_text() == "apiVersion: v1\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    again = write_private_kubeconfig("apiVersion: v1\nkind: Config\n", folder)
    assert again == path and "kind: Config" in path.read_text()
    assert sorted(os.listdir(folder)) == ["kubeconfig"]
    assert "apiVersion" not in repr(kubeconfig)  # the text and the secrets stay out of reprs (and tracebacks)


def test_a_client_key_is_a_secret_and_its_certificate_is_not() -> None:
    pem = _pem()
    certificate, key = pem[: pem.index("-----BEGIN PRIVATE KEY-----")], pem[pem.index("-----BEGIN PRIVATE KEY-----") :]
    encoded = {name: base64.b64encode(value.encode()).decode() for name, value in (("c", certificate), ("k", key))}
    text = yaml.safe_dump(
        {
            "apiVersion": "v1",
            "clusters": [{"name": "aks", "cluster": {"server": "https://aks.example:443"}}],
            "users": [
                {"name": "admin", "user": {"client-certificate-data": encoded["c"], "client-key-data": encoded["k"]}}
            ],
        }
    )
    credential = ClientSecretCredential(TENANT, CLIENT, SECRET)  # never asked: there is no Entra user
    kubeconfig = kubeconfig_with_entra_token(text, credential, admin=True)
    assert kubeconfig.secrets == (encoded["k"], key)
    masker = Masker(io.StringIO())
    for secret in kubeconfig.secrets:
        masker.register(secret)
    assert masker.mask(certificate) == certificate  # the armour and body of a certificate stay readable
    assert "MII" not in masker.mask(key)
