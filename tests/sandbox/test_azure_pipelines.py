"""Pipeline identity in the sandbox: the job's OIDC token, workload identity federation through Entra ID
(AzurePipelinesCredential), secure file downloads, and Entra tokens accepted by the sandbox Azure DevOps."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.devops.connection import Connection
from azure.devops.exceptions import AzureDevOpsAuthenticationError
from azure.identity import AzurePipelinesCredential, ClientAssertionCredential, ClientSecretCredential
from msrest.authentication import BasicTokenAuthentication

from flux_azdo.sandbox.azure import AZURE_DEVOPS_APP, TOKEN_EXCHANGE_APP, TOKEN_EXCHANGE_AUDIENCE, ServicePrincipal
from flux_azdo.sandbox.runtime import Sandbox
from support.sandboxes import azure_credential_options, running_sandbox

ARM_SCOPE = "https://management.azure.com/.default"


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    with running_sandbox(tmp_path, azure=True) as running:
        yield running


@pytest.fixture
def job(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> str:
    """A running job: SYSTEM_OIDCREQUESTURI set as the agent sets it; returns the URI."""
    uri = sandbox.oidc_request_uri(str(uuid.uuid4()), str(uuid.uuid4()))
    monkeypatch.setenv("SYSTEM_OIDCREQUESTURI", uri)
    return uri


def _azure(sandbox: Sandbox) -> Any:
    assert sandbox.azure is not None
    return sandbox.azure


def _pipelines_credential(
    sandbox: Sandbox, *, client_id: str | None = None, connection_id: str | None = None, token: str | None = None
) -> AzurePipelinesCredential:
    return AzurePipelinesCredential(
        tenant_id=_azure(sandbox).tenant_id,
        client_id=client_id or sandbox.deployer.client_id,
        service_connection_id=connection_id or sandbox.arm_connection.id,
        system_access_token=token or sandbox.job_token,
        **azure_credential_options(sandbox),
    )


def test_azure_pipelines_credential_exchanges_the_job_s_oidc_token(sandbox: Sandbox, job: str) -> None:
    token = _pipelines_credential(sandbox).get_token(ARM_SCOPE)
    claims = jwt.decode(token.token, options={"verify_signature": False})
    assert claims["oid"] == sandbox.deployer.object_id
    assert claims["appid"] == sandbox.deployer.client_id
    assert claims["appidacr"] == "2"
    assert claims["aud"] == "https://management.azure.com/"


def _oidc_claims(sandbox: Sandbox, job: str, connection_id: str, audience: str) -> dict[str, Any]:
    reply = requests.post(
        f"{job}?api-version=7.1&serviceConnectionId={connection_id}",
        headers={"Authorization": f"Bearer {sandbox.job_token}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert reply.status_code == 200, reply.text
    token = reply.json()["oidcToken"]
    claims: dict[str, Any] = jwt.decode(token, sandbox.world.oidc_public_key, algorithms=["RS256"], audience=audience)
    assert claims["exp"] > claims["iat"]
    return claims


def _guid_b64url(guid: str) -> str:
    return base64.urlsafe_b64encode(uuid.UUID(guid).bytes_le).decode().rstrip("=")


def test_the_oidc_token_of_an_entra_issuer_connection(sandbox: Sandbox, job: str) -> None:
    """The default: the Microsoft Entra issuer, an `/eid1/` subject naming the organisation and connection ids
    ("rISbSSETf0KqFyZ8ppdXmA" is Azure DevOps' app id as published subjects show it), aud the exchange app."""
    connection = sandbox.arm_connection
    claims = _oidc_claims(sandbox, job, connection.id, TOKEN_EXCHANGE_APP)
    tenant = sandbox.world.tenant_id
    assert claims["iss"] == f"https://login.microsoftonline.com/{tenant}/v2.0"
    assert claims["sub"] == (
        f"/eid1/c/pub/t/{_guid_b64url(tenant)}/a/rISbSSETf0KqFyZ8ppdXmA/sc/{sandbox.world.org_id}/{connection.id}"
    )
    assert (claims["azp"], claims["tid"]) == (AZURE_DEVOPS_APP, tenant)
    parameters = connection.authorization["parameters"]
    assert isinstance(parameters, dict)
    assert parameters["workloadIdentityFederationIssuer"] == claims["iss"]
    assert parameters["workloadIdentityFederationSubject"] == claims["sub"]


def test_the_oidc_token_of_an_azure_devops_issuer_connection(sandbox: Sandbox, job: str) -> None:
    """The older issuer: vstoken.dev.azure.com/<org id>, subject sc://org/project/name; federated, it works too."""
    legacy = sandbox.world.add_service_connection(sandbox.project, "legacy-arm", issuer="vstoken")
    claims = _oidc_claims(sandbox, job, legacy.id, TOKEN_EXCHANGE_AUDIENCE)
    assert claims["iss"] == f"https://vstoken.dev.azure.com/{sandbox.world.org_id}"
    assert claims["sub"] == f"sc://{sandbox.world.org}/{sandbox.project.name}/legacy-arm"
    _azure(sandbox).directory.add_federated_credential(
        sandbox.deployer, issuer=sandbox.world.oidc_issuer_for(legacy), subject=sandbox.world.oidc_subject(legacy)
    )
    token = _pipelines_credential(sandbox, connection_id=legacy.id).get_token(ARM_SCOPE)
    assert jwt.decode(token.token, options={"verify_signature": False})["oid"] == sandbox.deployer.object_id


def test_the_sdk_s_create_oidc_token(sandbox: Sandbox) -> None:
    connection = Connection(
        base_url=sandbox.org_url, creds=BasicTokenAuthentication({"access_token": sandbox.job_token})
    )
    client = connection.clients_v7_1.get_task_client()
    answer = client.create_oidc_token(
        {}, sandbox.project.id, "build", str(uuid.uuid4()), str(uuid.uuid4()), sandbox.arm_connection.id
    )
    assert jwt.decode(answer.oidc_token, options={"verify_signature": False})["iss"] == sandbox.world.entra_oidc_issuer


def test_only_the_job_token_may_ask_for_an_oidc_token(sandbox: Sandbox, job: str) -> None:
    reply = requests.post(
        f"{job}?api-version=7.1&serviceConnectionId={sandbox.arm_connection.id}",
        auth=("", sandbox.pat),
        headers={"X-TFS-FedAuthRedirect": "Suppress"},
        timeout=10,
    )
    assert reply.status_code == 401
    with pytest.raises(ClientAuthenticationError, match="Unexpected response from OIDC token endpoint"):
        _pipelines_credential(sandbox, token=sandbox.pat).get_token(ARM_SCOPE)


def test_an_unknown_service_connection(sandbox: Sandbox, job: str) -> None:
    stranger = str(uuid.uuid4())
    reply = requests.post(
        f"{job}?api-version=7.1&serviceConnectionId={stranger}",
        headers={"Authorization": f"Bearer {sandbox.job_token}", "X-TFS-FedAuthRedirect": "Suppress"},
        timeout=10,
    )
    assert reply.status_code == 400
    assert reply.json()["message"].startswith(f"There is no explicit reference to service connection {stranger}")
    with pytest.raises(ClientAuthenticationError):
        _pipelines_credential(sandbox, connection_id=stranger).get_token(ARM_SCOPE)


def test_a_connection_without_a_federated_credential_is_700213(sandbox: Sandbox, job: str) -> None:
    other = sandbox.world.add_service_connection(sandbox.project, "not-federated")
    with pytest.raises(ClientAuthenticationError) as failure:
        _pipelines_credential(sandbox, connection_id=other.id).get_token(ARM_SCOPE)
    subject = sandbox.world.oidc_subject(other)
    assert (
        f"AADSTS700213: No matching federated identity record found for presented assertion subject '{subject}'. "
        "Check your federated identity credential Subject, Audience and Issuer against the presented assertion."
    ) in str(failure.value)


def test_an_app_without_any_federated_credential_is_70025(sandbox: Sandbox, job: str) -> None:
    """Checked before the issuer: an app that trusts no issuer at all."""
    bare: ServicePrincipal = _azure(sandbox).directory.register_application("bare-app", secret=False)
    with pytest.raises(ClientAuthenticationError) as failure:
        _pipelines_credential(sandbox, client_id=bare.client_id).get_token(ARM_SCOPE)
    assert (
        f"AADSTS70025: The client '{bare.client_id}'(bare-app) has no configured federated identity credentials."
    ) in str(failure.value)


def _app_with_credential(sandbox: Sandbox, *, issuer: str, subject: str, audience: str) -> ServicePrincipal:
    directory = _azure(sandbox).directory
    principal: ServicePrincipal = directory.register_application("federated-app", secret=False)
    directory.add_federated_credential(principal, issuer=issuer, subject=subject, audiences=[audience])
    return principal


def test_a_subject_that_differs_in_case_only(sandbox: Sandbox, job: str) -> None:
    subject = sandbox.world.oidc_subject(sandbox.arm_connection).upper()
    issuer = sandbox.world.oidc_issuer_for(sandbox.arm_connection)
    app = _app_with_credential(sandbox, issuer=issuer, subject=subject, audience=TOKEN_EXCHANGE_AUDIENCE)
    with pytest.raises(ClientAuthenticationError, match="AADSTS7002138: .*case-insensitive comparison"):
        _pipelines_credential(sandbox, client_id=app.client_id).get_token(ARM_SCOPE)


def test_another_issuer_and_another_audience(sandbox: Sandbox, job: str) -> None:
    subject = sandbox.world.oidc_subject(sandbox.arm_connection)
    elsewhere = _app_with_credential(
        sandbox, issuer="https://token.actions.githubusercontent.com", subject=subject, audience=TOKEN_EXCHANGE_AUDIENCE
    )
    with pytest.raises(ClientAuthenticationError, match="AADSTS700211: .*assertion issuer"):
        _pipelines_credential(sandbox, client_id=elsewhere.client_id).get_token(ARM_SCOPE)
    other_audience = _app_with_credential(
        sandbox,
        issuer=sandbox.world.oidc_issuer_for(sandbox.arm_connection),
        subject=subject,
        audience="api://SomethingElse",
    )
    with pytest.raises(ClientAuthenticationError, match="AADSTS700212: .*assertion audience"):
        _pipelines_credential(sandbox, client_id=other_audience.client_id).get_token(ARM_SCOPE)


def test_an_expired_assertion_is_700024(sandbox: Sandbox) -> None:
    stale = sandbox.world.issue_oidc_token(sandbox.arm_connection, issued_at=sandbox.world.clock() - 3600)
    credential = ClientAssertionCredential(
        _azure(sandbox).tenant_id, sandbox.deployer.client_id, lambda: stale, **azure_credential_options(sandbox)
    )
    with pytest.raises(ClientAuthenticationError, match="AADSTS700024: Client assertion is not within its valid time"):
        credential.get_token(ARM_SCOPE)


def test_a_forged_assertion_fails_signature_validation(sandbox: Sandbox) -> None:
    real = sandbox.world.issue_oidc_token(sandbox.arm_connection)
    header, payload, signature = real.split(".")
    forged = f"{header}.{payload}.{signature[::-1]}"
    credential = ClientAssertionCredential(
        _azure(sandbox).tenant_id, sandbox.deployer.client_id, lambda: forged, **azure_credential_options(sandbox)
    )
    with pytest.raises(ClientAuthenticationError, match="AADSTS50013"):
        credential.get_token(ARM_SCOPE)


def _secure_file_url(sandbox: Sandbox, file_id: str, ticket: str, download: str = "true") -> str:
    return (
        f"{sandbox.org_url}/{sandbox.project.name}/_apis/distributedtask/securefiles/{file_id}"
        f"?ticket={ticket}&download={download}&api-version=7.1"
    )


def test_secure_file_download_as_task_lib_asks_for_it(sandbox: Sandbox) -> None:
    """SecureFileHelpers: `downloadSecureFile(project, id, ticket, false)` with the job token as a PAT (Basic) and
    the version in the Accept header; the bytes come back although `download` is false."""
    data = b"secure bytes \x00\xff"
    file_id, ticket = sandbox.add_secure_file("node-style", data)
    url = (
        f"{sandbox.org_url}/{sandbox.project.name}/_apis/distributedtask/securefiles/{file_id}"
        f"?ticket={ticket}&download=false"
    )
    headers = {"Accept": "application/octet-stream;api-version=7.1-preview.1"}
    reply = requests.get(url, auth=("PAT", sandbox.job_token), headers=headers, timeout=10)
    assert reply.status_code == 200, reply.text
    assert reply.headers["Content-Type"] == "application/octet-stream"
    assert "Content-Disposition" not in reply.headers
    assert reply.content == data
    attachment = requests.get(_secure_file_url(sandbox, file_id, ticket), auth=("PAT", sandbox.job_token), timeout=10)
    assert attachment.content == data
    assert attachment.headers["Content-Disposition"].startswith("attachment;")
    metadata_url = (
        f"{sandbox.org_url}/{sandbox.project.name}/_apis/distributedtask/securefiles/{file_id}?api-version=7.1"
    )
    metadata = requests.get(metadata_url, auth=("PAT", sandbox.job_token), timeout=10)
    assert metadata.status_code == 200
    assert metadata.json()["name"] == "node-style"


def test_secure_file_download_with_the_job_token(sandbox: Sandbox) -> None:
    data = b"-----BEGIN OPENSSH PRIVATE KEY-----\nnot really\n-----END OPENSSH PRIVATE KEY-----\n"
    file_id, ticket = sandbox.add_secure_file("flux-deploy-key", data)
    headers = {"Authorization": f"Bearer {sandbox.job_token}", "Accept": "application/octet-stream"}
    reply = requests.get(_secure_file_url(sandbox, file_id, ticket), headers=headers, timeout=10)
    assert reply.status_code == 200, reply.text
    assert reply.headers["Content-Type"] == "application/octet-stream"
    assert reply.content == data
    wrong_ticket = requests.get(_secure_file_url(sandbox, file_id, "nope"), headers=headers, timeout=10)
    assert wrong_ticket.status_code == 404
    assert wrong_ticket.json()["typeKey"] == "SecureFileNotFoundException"
    wrong_id = requests.get(_secure_file_url(sandbox, str(uuid.uuid4()), ticket), headers=headers, timeout=10)
    assert wrong_id.status_code == 404
    anonymous = requests.get(
        _secure_file_url(sandbox, file_id, ticket), headers={"X-TFS-FedAuthRedirect": "Suppress"}, timeout=10
    )
    assert anonymous.status_code == 401


def _entra_token(sandbox: Sandbox, scope: str) -> str:
    credential = ClientSecretCredential(
        _azure(sandbox).tenant_id,
        sandbox.deployer.client_id,
        sandbox.deployer.secret or "",
        **azure_credential_options(sandbox),
    )
    return credential.get_token(scope).token


def test_azure_devops_accepts_an_entra_token_of_a_known_principal(sandbox: Sandbox) -> None:
    token = _entra_token(sandbox, f"{AZURE_DEVOPS_APP}/.default")
    connection = Connection(base_url=sandbox.org_url, creds=BasicTokenAuthentication({"access_token": token}))
    projects = connection.clients_v7_1.get_core_client().get_projects()
    assert [p.name for p in projects] == [sandbox.project.name]
    me = connection.clients_v7_1.get_location_client().get_connection_data()
    assert me.authenticated_user.id == sandbox.deployer_identity.id


def test_azure_devops_refuses_other_audiences_and_unknown_principals(sandbox: Sandbox) -> None:
    arm = _entra_token(sandbox, ARM_SCOPE)
    connection = Connection(base_url=sandbox.org_url, creds=BasicTokenAuthentication({"access_token": arm}))
    with pytest.raises(AzureDevOpsAuthenticationError):
        connection.clients_v7_1.get_core_client().get_projects()
    directory = _azure(sandbox).directory
    stranger = directory.register_application("stranger")
    credential = ClientSecretCredential(
        _azure(sandbox).tenant_id, stranger.client_id, stranger.secret or "", **azure_credential_options(sandbox)
    )
    token = credential.get_token(f"{AZURE_DEVOPS_APP}/.default").token
    connection = Connection(base_url=sandbox.org_url, creds=BasicTokenAuthentication({"access_token": token}))
    with pytest.raises(AzureDevOpsAuthenticationError):
        connection.clients_v7_1.get_core_client().get_projects()
