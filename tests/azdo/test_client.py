"""AzureDevOpsClient against the sandbox Azure DevOps: identities, reads, creation, permissions, scope probes,
error mapping (a message and a fix, with no secret anywhere in the error or what it references) and the bounded
retries.

Retries are checked by counting what the sandbox served (`faults.served_failures`) and by the waits the client
logs, never by measuring time. Where the real service answers in ways the sandbox does not (a build service
without a display name, a 403 to a scope probe, a 404 for ConnectionData), a relay in front of the sandbox
rewrites the one reply the test is about.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import socket
import ssl
import subprocess
import sys
import threading
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import pytest
import requests
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import CredentialUnavailableError, EnvironmentCredential
from msrest.exceptions import ClientRequestError

from flux_azdo import __version__
from flux_azdo.azdo.client import AzureDevOpsClient, Caller, ProjectInfo, RepositoryInfo, token_from_azure_identity
from flux_azdo.azdo.credentials import AZURE_DEVOPS_SCOPE, AzureDevOpsToken
from flux_azdo.azdo.error_translation import ErrorTranslator, Operation, Reply, scrub_secrets
from flux_azdo.azdo.errors import (
    AuthenticationFailed,
    AzureDevOpsError,
    Conflict,
    NotFound,
    PermissionDenied,
    Unavailable,
)
from flux_azdo.azdo.security import GitPermission, branch_token, project_token, repository_token
from flux_azdo.errors import UserError
from flux_azdo.sandbox.kube.tls import generate_serving_material, server_context
from flux_azdo.sandbox.runtime import FULL_SCOPES, Sandbox
from support.azdo_world import GitCli, init_checkout

ClientFactory = Callable[..., AzureDevOpsClient]
#: A relay's reply editor: (method, path, status, body) -> (status, body).
Edit = Callable[[str, str, int, bytes], tuple[int, bytes]]


@pytest.fixture
def connect(azdo_sandbox: Sandbox) -> Iterator[ClientFactory]:
    """`connect(secret=None, scheme="basic", source="password", **options)`: a client on the sandbox organisation
    (the admin PAT by default); every client is closed after the test."""
    made: list[AzureDevOpsClient] = []

    def factory(
        secret: str | None = None, scheme: str = "basic", source: str = "password", **options: Any
    ) -> AzureDevOpsClient:
        token = AzureDevOpsToken(secret or azdo_sandbox.pat, scheme, source)  # type: ignore[arg-type]
        url = options.pop("url", azdo_sandbox.org_url)
        client = AzureDevOpsClient(url, token, **options)
        made.append(client)
        return client

    yield factory
    for client in made:
        client.close()


def assert_no_secret(error: BaseException, client: AzureDevOpsClient) -> None:
    """No form of the token in the error, anything it chains to or holds, or its printed traceback.

    The SDK's exceptions keep requests' exception, which keeps the request with its `Authorization` header; our
    errors must neither chain to them (`__cause__`, `__context__`) nor hold them (attributes, args).
    """
    assert error.__cause__ is None and error.__context__ is None
    texts = ["".join(traceback.format_exception(error))]
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        texts += [str(current), repr(current), repr(vars(current))]
        for name in ("request", "response", "inner_exception"):
            assert getattr(current, name, None) is None, f"{type(current).__name__} keeps its {name}"
        for value in (*current.args, *vars(current).values()):
            assert not isinstance(value, (BaseException, requests.PreparedRequest, requests.Response))
            assert not hasattr(value, "headers"), f"{type(current).__name__} holds {type(value).__name__}"
        pending += [link for link in (current.__cause__, current.__context__) if link is not None]
    joined = "\n".join(texts)
    for form in client.token.secret_forms():
        assert form not in joined
    assert "\n" not in str(error)


def assert_actionable(error: BaseException, client: AzureDevOpsClient) -> None:
    """One line saying what happened, one line saying what to do, the second not repeated in the first."""
    assert isinstance(error, AzureDevOpsError)
    assert error.message and "\n" not in error.message
    assert error.fix and "\n" not in error.fix
    assert error.fix not in error.message
    assert str(error).endswith(error.fix)
    assert_no_secret(error, client)


def pat_for(sandbox: Sandbox, name: str, rights: str = "contributor", scopes: tuple[str, ...] = FULL_SCOPES) -> str:
    identity = sandbox.world.add_user(name, project_rights=rights)  # type: ignore[arg-type]
    return sandbox.world.issue_pat(identity, scopes)


def push(sandbox: Sandbox, tmp_path: Path, *refs: str) -> str:
    """Commit once and push that commit to each of `refs` with the real git CLI; returns the commit id."""
    git = GitCli(tmp_path, sandbox.pat)
    if not (tmp_path / "work").exists():
        init_checkout(git, "work", sandbox.repo_url)
    sha = git.commit("work", "README.md", f"change for {refs}")
    for ref in refs:
        done = git.push("work", f"HEAD:{ref}")
        assert done.returncode == 0, done.stderr
    return sha


class _RelayHandler(BaseHTTPRequestHandler):
    """Forwards a request to the sandbox and lets the test's `edit` change the reply."""

    upstream: ClassVar[tuple[str, int]]
    own_url: ClassVar[str]
    upstream_url: ClassVar[str]
    edit: ClassVar[Edit]

    def _relay(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        skip = {"host", "connection", "accept-encoding", "content-length"}
        headers = {name: value for name, value in self.headers.items() if name.lower() not in skip}
        connection = http.client.HTTPConnection(*self.upstream, timeout=10)
        try:
            connection.request(self.command, self.path, body=body, headers=headers)
            reply = connection.getresponse()
            data, status, reply_headers = reply.read(), reply.status, reply.getheaders()
        finally:
            connection.close()
        # Resource areas and links name the sandbox's address: point them at the relay, so every call passes it.
        data = data.replace(self.upstream_url.encode(), self.own_url.encode())
        status, data = type(self).edit(self.command, self.path, status, data)
        self.send_response(status)
        for name, value in reply_headers:
            if name.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_OPTIONS = do_PATCH = do_PUT = do_DELETE = _relay

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def relay(sandbox: Sandbox, edit: Edit) -> Iterator[str]:
    """A relay in front of the sandbox's Azure DevOps; yields the organisation URL through it."""
    parts = urlsplit(sandbox.azdo.url)

    class Relay(_RelayHandler):
        pass

    Relay.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
    Relay.upstream_url = sandbox.azdo.url
    Relay.edit = staticmethod(edit)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Relay)
    Relay.own_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"{Relay.own_url}/{sandbox.world.org}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def wrapped_exception(message: str, type_key: str) -> bytes:
    """The service's error body (`WrappedException`), which the SDK turns into AzureDevOpsServiceError."""
    return json.dumps(
        {
            "$id": "1",
            "message": message,
            "typeName": f"{type_key}, Microsoft.TeamFoundation",
            "typeKey": type_key,
            "errorCode": 0,
            "eventId": 3000,
        }
    ).encode()


def connection_data_names(provider: str | None, *, project_found: bool = True) -> Edit:
    """An edit that removes the caller's display names from ConnectionData (`provider`: the one left, if any), and
    with `project_found=False` answers project reads with 404."""

    def edit(method: str, path: str, status: int, body: bytes) -> tuple[int, bytes]:
        if "/_apis/connectiondata" in path.lower() and status == 200:
            data = json.loads(body)
            data["authenticatedUser"].pop("customDisplayName", None)
            data["authenticatedUser"].pop("providerDisplayName", None)
            if provider is not None:
                data["authenticatedUser"]["providerDisplayName"] = provider
            return status, json.dumps(data).encode()
        if not project_found and "/_apis/projects/" in path.lower():
            missing = "TF200016: The following project does not exist: x. Verify that the name is correct."
            return 404, wrapped_exception(missing, "ProjectDoesNotExistException")
        return status, body

    return edit


# ----- who am I -----------------------------------------------------------------------------------------------------


def test_whoami_admin_pat_is_a_user(azdo_sandbox: Sandbox, connect: ClientFactory) -> None:
    me = connect().whoami()
    assert me == Caller(
        id=azdo_sandbox.user.id,
        display_name="Sandbox Admin",
        descriptor=azdo_sandbox.user.descriptor,
        subject_descriptor=azdo_sandbox.user.subject_descriptor,
        unique_name="sandbox.admin@sandbox.example",
        kind="user",
        build_scope_id=None,
    )


def test_whoami_second_user(azdo_sandbox: Sandbox, connect: ClientFactory) -> None:
    me = connect(pat_for(azdo_sandbox, "Dora Dev")).whoami()
    assert (me.display_name, me.unique_name, me.kind) == ("Dora Dev", "dora.dev@sandbox.example", "user")
    assert me.id != azdo_sandbox.user.id


@pytest.mark.parametrize("scheme", ["basic", "bearer"])
def test_whoami_job_token_is_the_project_build_service(
    azdo_sandbox: Sandbox, connect: ClientFactory, scheme: str
) -> None:
    me = connect(azdo_sandbox.job_token, scheme, "job-token").whoami()
    assert me.display_name == "platform Build Service (sandbox-org)"
    assert (me.kind, me.build_scope_id) == ("build-service", azdo_sandbox.project.id)
    assert me.unique_name == f"Build\\{azdo_sandbox.project.id}"


def test_whoami_collection_build_service(azdo_sandbox: Sandbox, connect: ClientFactory) -> None:
    world = azdo_sandbox.world
    token = world.issue_job_token(world.collection_build_service())
    me = connect(token, "bearer", "job-token").whoami()
    assert me.display_name == "Project Collection Build Service (sandbox-org)"
    assert (me.kind, me.build_scope_id) == ("collection-build-service", world.org_id)


def test_a_build_service_named_by_a_guid_gets_the_name_azure_devops_shows(
    azdo_sandbox: Sandbox, connect: ClientFactory
) -> None:
    project_id = azdo_sandbox.project.id
    with relay(azdo_sandbox, connection_data_names(project_id)) as org_url:
        me = connect(azdo_sandbox.job_token, "bearer", "job-token", url=org_url).whoami()
    assert (me.display_name, me.name_source) == ("platform Build Service (sandbox-org)", "derived")
    assert (me.kind, me.build_scope_id) == ("build-service", project_id)


def test_a_build_service_whose_project_cannot_be_read_keeps_its_account_name(
    azdo_sandbox: Sandbox, connect: ClientFactory
) -> None:
    with relay(azdo_sandbox, connection_data_names(None, project_found=False)) as org_url:
        me = connect(azdo_sandbox.job_token, "bearer", "job-token", url=org_url).whoami()
    assert (me.display_name, me.name_source) == (f"Build\\{azdo_sandbox.project.id}", "account")


def test_a_nameless_collection_build_service_and_user(azdo_sandbox: Sandbox, connect: ClientFactory) -> None:
    world = azdo_sandbox.world
    token = world.issue_job_token(world.collection_build_service())
    with relay(azdo_sandbox, connection_data_names(None)) as org_url:
        collection = connect(token, "bearer", "job-token", url=org_url).whoami()
        user = connect(url=org_url).whoami()
    assert (collection.display_name, collection.name_source) == (
        "Project Collection Build Service (sandbox-org)",
        "derived",
    )
    assert (user.display_name, user.name_source) == ("sandbox.admin@sandbox.example", "account")


class _StaticCredential:
    """What an azure-identity credential looks like from outside: `get_token(*scopes)` -> AccessToken."""

    def __init__(self, token: str | None, failure: Exception | None = None) -> None:
        self.token, self.failure, self.scopes = token, failure, ()

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes = scopes
        if self.failure is not None:
            raise self.failure
        return AccessToken(self.token or "", 2_000_000_000)


def test_entra_token_from_a_credential_reaches_the_api_as_bearer(azdo_sandbox: Sandbox, connect: ClientFactory) -> None:
    credential = _StaticCredential(azdo_sandbox.world.workload_token(azdo_sandbox.workload_client_id))
    token = token_from_azure_identity(credential, "workload identity")
    assert credential.scopes == (AZURE_DEVOPS_SCOPE,)
    assert (token.scheme, token.source) == ("bearer", "entra")
    client = connect(token.secret, token.scheme, token.source)
    me = client.whoami()
    assert (me.display_name, me.kind, me.build_scope_id) == ("flux-source-controller", "other", None)
    assert client.get_project("platform") == ProjectInfo(azdo_sandbox.project.id, "platform")


@pytest.mark.parametrize(
    "failure",
    [
        CredentialUnavailableError(
            "EnvironmentCredential authentication unavailable.\nEnvironment variables are not fully configured."
        ),
        ClientAuthenticationError("AADSTS700016: Application not found in the directory."),
    ],
)
def test_azure_identity_failures_become_user_errors(failure: Exception) -> None:
    with pytest.raises(UserError, match="could not get a Microsoft Entra token") as raised:
        token_from_azure_identity(_StaticCredential(None, failure))
    assert "az login" in str(raised.value) and "workload identity" in str(raised.value)
    assert "\n" not in str(raised.value)
    # azure-identity's errors may hold the exchange with the identity provider: not attached to ours.
    assert raised.value.__cause__ is None and raised.value.__context__ is None


def test_an_unconfigured_real_credential_says_how_to_sign_in(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AZURE_USERNAME", raising=False)
    with pytest.raises(UserError, match="EnvironmentCredential.*run `az login`"):
        token_from_azure_identity(EnvironmentCredential(), "EnvironmentCredential")


def test_a_credential_without_a_token_is_a_user_error() -> None:
    with pytest.raises(UserError, match="returned no usable access token"):
        token_from_azure_identity(_StaticCredential(""))


# ----- projects and repositories -----------------------------------------------------------------------------------


def test_get_project_by_name_and_id_and_missing(azdo_sandbox: Sandbox, connect: ClientFactory) -> None:
    client = connect()
    expected = ProjectInfo(azdo_sandbox.project.id, "platform")
    assert client.get_project("platform") == expected
    assert client.get_project("PLATFORM") == expected
    assert client.get_project(azdo_sandbox.project.id) == expected
    assert client.get_project("nope") is None
    assert client.get_project("6ce954b1-ce1f-45d1-b94d-e6bf2464ba2c") is None


def test_a_project_the_user_cannot_see_is_none(azdo_sandbox: Sandbox, connect: ClientFactory) -> None:
    client = connect(pat_for(azdo_sandbox, "Otto Outsider", rights="none"))
    assert client.whoami().kind == "user"
    assert client.get_project("platform") is None
    assert client.get_project(azdo_sandbox.project.id) is None


def test_get_repository_hit_and_misses(azdo_sandbox: Sandbox, connect: ClientFactory, tmp_path: Path) -> None:
    client = connect()
    project, repository = azdo_sandbox.project, azdo_sandbox.repository
    found = client.get_repository("platform", "fleet-infra")
    assert found == RepositoryInfo(
        id=repository.id,
        name="fleet-infra",
        project_id=project.id,
        project_name="platform",
        default_branch=None,
        # Like the service: the organisation as user name, which git ignores once it has a credential.
        remote_url=f"http://sandbox-org@{urlsplit(azdo_sandbox.azdo.url).netloc}/sandbox-org/platform/_git/fleet-infra",
        ssh_url="git@ssh.dev.azure.com:v3/sandbox-org/platform/fleet-infra",
        web_url=azdo_sandbox.repo_url,
        is_disabled=False,
    )
    assert client.get_repository(project.id, repository.id) == found
    assert client.get_repository("platform", "nope") is None
    assert client.get_repository("no-such-project", "fleet-infra") is None
    push(azdo_sandbox, tmp_path, "refs/heads/main")
    again = client.get_repository("platform", "fleet-infra")
    assert again is not None and again.default_branch == "main"


def test_a_repository_the_user_may_not_read_is_none(azdo_sandbox: Sandbox, connect: ClientFactory) -> None:
    world = azdo_sandbox.world
    identity = world.add_user("Rita Restricted", project_rights="contributor")
    world.deny(
        identity, repository_token(azdo_sandbox.project.id, azdo_sandbox.repository.id), GitPermission.GENERIC_READ
    )
    client = connect(world.issue_pat(identity, FULL_SCOPES))
    assert client.get_project("platform") is not None
    assert client.get_repository("platform", "fleet-infra") is None


def test_create_repository_then_conflict(azdo_sandbox: Sandbox, connect: ClientFactory) -> None:
    client = connect()
    project = ProjectInfo(azdo_sandbox.project.id, "platform")
    created = client.create_repository(project, "apps")
    assert (created.name, created.project_id, created.default_branch) == ("apps", project.id, None)
    assert client.get_repository("platform", "apps") == created
    with pytest.raises(Conflict, match="TF400948: A Git repository with the name apps already exists") as raised:
        client.create_repository(project, "apps")
    assert (raised.value.status, raised.value.code) == (409, "TF400948")
    assert raised.value.fix == "use the existing repository (without --create-repo) or choose another name"
    assert_actionable(raised.value, client)


def test_create_repository_without_the_permission_is_denied(azdo_sandbox: Sandbox, connect: ClientFactory) -> None:
    world = azdo_sandbox.world
    reader = world.add_user("Rex Reader", project_rights="reader")
    client = connect(world.issue_pat(reader, ("vso.code_manage", "vso.project")))
    with pytest.raises(PermissionDenied) as raised:
        client.create_repository(ProjectInfo(azdo_sandbox.project.id, "platform"), "apps")
    denied = raised.value
    assert (denied.status, denied.code, denied.permission, denied.identity) == (
        403,
        "TF401027",
        "CreateRepository",
        reader.error_name,
    )
    assert denied.message == (
        f"could not create repository 'apps' in project 'platform' (TF401027): identity '{reader.error_name}' needs "
        "the Git permission 'CreateRepository' (\"Create repository\") at project level"
    )
    assert denied.fix == (
        "a project administrator can allow it: Project settings > Repositories > Security (all repositories) > "
        f'"{reader.error_name}" > Create repository: Allow'
    )
    assert_actionable(denied, client)
    assert [r.name for r in world.repositories(azdo_sandbox.project)] == ["fleet-infra"]


def test_a_missing_repository_behind_a_call_is_not_found(azdo_sandbox: Sandbox, connect: ClientFactory) -> None:
    client = connect()
    repository = client.get_repository("platform", "fleet-infra")
    assert repository is not None
    gone = replace(repository, id=str(uuid.uuid4()), name="gone")
    with pytest.raises(NotFound) as raised:
        client.branch_head(gone, "main")
    assert (raised.value.status, raised.value.code) == (404, "TF401019")
    assert raised.value.message.startswith("repository 'gone' in project 'platform' was not found on ")
    assert "is this the organisation URL" not in raised.value.message
    assert raised.value.fix is not None and "--url" in raised.value.fix
    assert_actionable(raised.value, client)


# ----- branches, policies, permissions -----------------------------------------------------------------------------


def test_branch_head_empty_then_exact_names_only(azdo_sandbox: Sandbox, connect: ClientFactory, tmp_path: Path) -> None:
    client = connect()
    repository = client.get_repository("platform", "fleet-infra")
    assert repository is not None
    assert client.branch_head(repository, "main") is None
    old = push(azdo_sandbox, tmp_path, "refs/heads/main-old")
    # The refs filter is a prefix: `heads/main` lists main-old, which must not pass for main.
    assert client.branch_head(repository, "main") is None
    assert client.branch_head(repository, "main-old") == old
    main = push(azdo_sandbox, tmp_path, "refs/heads/main")
    assert main != old
    assert client.branch_head(repository, "main") == main
    assert client.branch_head(repository, "refs/heads/main") == main
    assert client.branch_head(repository, "mai") is None


def test_branch_policies_enabled_and_blocking(azdo_sandbox: Sandbox, connect: ClientFactory) -> None:
    client = connect()
    repository = client.get_repository("platform", "fleet-infra")
    assert repository is not None
    assert client.branch_policies(repository, "main") == []
    azdo_sandbox.world.set_branch_policy(azdo_sandbox.repository, "main")
    azdo_sandbox.world.set_branch_policy(azdo_sandbox.repository, "release", required=False)
    [main] = client.branch_policies(repository, "main")
    assert (main.type_name, main.blocking) == ("Minimum number of reviewers", True)
    [release] = client.branch_policies(repository, "refs/heads/release")
    assert release.blocking is False and release.id != main.id
    assert client.branch_policies(repository, "feature") == []


def test_has_permissions_for_the_caller_with_a_branch_level_deny(azdo_sandbox: Sandbox, connect: ClientFactory) -> None:
    world, project_id, repo_id = azdo_sandbox.world, azdo_sandbox.project.id, azdo_sandbox.repository.id
    repo, main = repository_token(project_id, repo_id), branch_token(project_id, repo_id, "main")
    admin = connect()
    assert admin.has_permissions([]) == []
    checks = [
        (repo, GitPermission.GENERIC_READ | GitPermission.GENERIC_CONTRIBUTE),
        (repo, GitPermission.FORCE_PUSH),  # not even Project Administrators have it by default
        (main, GitPermission.POLICY_EXEMPT),
        (project_token(project_id), GitPermission.CREATE_REPOSITORY),
    ]
    assert admin.has_permissions(checks) == [True, False, False, True]
    dora = world.add_user("Dora Dev", project_rights="contributor")
    world.deny(dora, main, GitPermission.GENERIC_CONTRIBUTE)
    contributor = connect(world.issue_pat(dora, FULL_SCOPES))
    contribute = GitPermission.GENERIC_CONTRIBUTE
    assert contributor.has_permissions(
        [(repo, contribute), (main, contribute), (branch_token(project_id, repo_id, "feature/x"), contribute)]
    ) == [True, False, True]
    build = connect(azdo_sandbox.job_token, "bearer", "job-token")
    assert build.has_permissions([(repo, GitPermission.GENERIC_READ), (repo, contribute)]) == [True, False]


def test_permission_evaluation_is_retried_on_503_although_it_is_a_post(
    azdo_sandbox: Sandbox, connect: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """PermissionEvaluationBatch only reads, so it is retried like a GET, with or without Retry-After."""
    caplog.set_level(logging.INFO, logger="flux_azdo.azdo.retry")
    client = connect(max_retry_after=0.01)
    repo = repository_token(azdo_sandbox.project.id, azdo_sandbox.repository.id)
    faults = azdo_sandbox.azdo.faults
    faults.fail_next(2, 503, retry_after=None, method="POST", path_contains="PermissionEvaluationBatch")
    assert client.has_permissions([(repo, GitPermission.GENERIC_READ)]) == [True]
    assert faults.served_failures == 2
    assert [w for w in _waits(caplog) if "HTTP 503 on POST" in w and "PermissionEvaluationBatch" in w]
    # ... and it still gives up after the bounded retries.
    faults.fail_next(10, 503, retry_after=None, method="POST", path_contains="PermissionEvaluationBatch")
    with pytest.raises(Unavailable) as raised:
        connect(retries=2, max_retry_after=0.01).has_permissions([(repo, GitPermission.GENERIC_READ)])
    assert faults.served_failures == 2 + 3
    assert_actionable(raised.value, client)


# ----- scope probes ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scopes", "write", "manage"),
    [
        (FULL_SCOPES, True, True),
        (("vso.code_manage",), True, True),
        (("vso.code_write", "vso.project"), True, False),
        (("vso.code", "vso.project"), False, False),
    ],
)
def test_scope_probes(
    azdo_sandbox: Sandbox, connect: ClientFactory, scopes: tuple[str, ...], write: bool, manage: bool
) -> None:
    admin = connect()
    repository = admin.get_repository("platform", "fleet-infra")
    assert repository is not None
    project = ProjectInfo(azdo_sandbox.project.id, "platform")
    client = connect(azdo_sandbox.world.issue_pat(azdo_sandbox.user, scopes))
    assert client.can_write_code(repository) is write
    assert client.can_manage_code(project) is manage
    # Harmless: nothing was created or moved.
    assert [r.name for r in azdo_sandbox.world.repositories(azdo_sandbox.project)] == ["fleet-infra"]
    assert admin.branch_head(repository, "main") is None


def test_scope_probes_are_retried_on_503(azdo_sandbox: Sandbox, connect: ClientFactory) -> None:
    """A probe changes nothing, so repeating it is safe: a 503 without Retry-After is retried, unlike a create."""
    client = connect(max_retry_after=0.01)
    repository = client.get_repository("platform", "fleet-infra")
    assert repository is not None
    faults = azdo_sandbox.azdo.faults
    faults.fail_next(2, 503, retry_after=None, method="POST", path_contains="/refs")
    assert client.can_write_code(repository) is True
    assert faults.served_failures == 2


def test_a_probe_on_something_gone_is_inconclusive(azdo_sandbox: Sandbox, connect: ClientFactory) -> None:
    client = connect()
    repository = client.get_repository("platform", "fleet-infra")
    assert repository is not None
    assert client.can_write_code(replace(repository, id=str(uuid.uuid4()))) is None
    assert client.can_manage_code(ProjectInfo(str(uuid.uuid4()), "gone")) is None


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        # Past the scope check, stopped by the ACL: the scope is there.
        (
            403,
            wrapped_exception(
                "TF401027: You need the Git 'GenericContribute' permission to perform this action. Details: "
                "identity 'x', scope 'repository'.",
                "GitNeedsPermissionException",
            ),
            True,
        ),
        # A 403 of another kind, or a method the server does not allow, says nothing about the scope.
        (403, wrapped_exception("VS403403: Access denied by an organisation policy.", "AccessDeniedException"), None),
        (405, b"", None),
    ],
)
def test_probe_answers_the_sandbox_does_not_give(
    azdo_sandbox: Sandbox, connect: ClientFactory, status: int, body: bytes, expected: bool | None
) -> None:
    def edit(method: str, path: str, reply_status: int, reply_body: bytes) -> tuple[int, bytes]:
        if method == "POST" and "/refs" in path:
            return status, body
        return reply_status, reply_body

    with relay(azdo_sandbox, edit) as org_url:
        client = connect(url=org_url)
        repository = client.get_repository("platform", "fleet-infra")
        assert repository is not None
        assert client.can_write_code(repository) is expected


def test_scope_probes_pass_for_tokens_without_scopes(azdo_sandbox: Sandbox, connect: ClientFactory) -> None:
    client = connect(azdo_sandbox.job_token, "bearer", "job-token")
    repository = client.get_repository("platform", "fleet-infra")
    assert repository is not None
    assert client.can_write_code(repository) is True
    assert client.can_manage_code(ProjectInfo(azdo_sandbox.project.id, "platform")) is True


def test_probe_with_an_expired_pat_raises_instead_of_answering(azdo_sandbox: Sandbox, connect: ClientFactory) -> None:
    repository = connect().get_repository("platform", "fleet-infra")
    assert repository is not None
    past = datetime.now(timezone.utc) - timedelta(days=1)
    client = connect(azdo_sandbox.world.issue_pat(azdo_sandbox.user, FULL_SCOPES, expires=past))
    with pytest.raises(AuthenticationFailed) as raised:
        client.can_write_code(repository)
    assert raised.value.reason == "expired"
    assert_actionable(raised.value, client)


# ----- authentication failures --------------------------------------------------------------------------------------


def test_expired_pat(azdo_sandbox: Sandbox, connect: ClientFactory) -> None:
    past = datetime.now(timezone.utc) - timedelta(days=1)
    client = connect(azdo_sandbox.world.issue_pat(azdo_sandbox.user, FULL_SCOPES, expires=past))
    with pytest.raises(AuthenticationFailed, match="has expired") as raised:
        client.whoami()
    assert (raised.value.reason, raised.value.status) == ("expired", 401)
    assert raised.value.message == f"the Azure DevOps token for {azdo_sandbox.org_url} has expired"
    assert raised.value.fix == (
        f"create a new PAT at {azdo_sandbox.org_url}/_usersSettings/tokens (or regenerate this one there) and pass it"
    )
    assert_actionable(raised.value, client)


def test_revoked_job_token_is_invalid(azdo_sandbox: Sandbox, connect: ClientFactory) -> None:
    client = connect(azdo_sandbox.job_token, "bearer", "job-token")
    assert client.whoami().kind == "build-service"
    azdo_sandbox.world.revoke_job_token(azdo_sandbox.job_token)
    with pytest.raises(AuthenticationFailed, match="job token .* was rejected \\(401\\)") as raised:
        client.get_project("platform")
    assert raised.value.reason == "invalid"
    assert raised.value.fix == "pass $(System.AccessToken) of the running job (map it into the step's env)"
    assert_actionable(raised.value, client)


def test_unknown_pat_is_invalid_and_names_the_pat_page(azdo_sandbox: Sandbox, connect: ClientFactory) -> None:
    client = connect("abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrst")
    with pytest.raises(AuthenticationFailed) as raised:
        client.whoami()
    assert raised.value.reason == "invalid"
    assert raised.value.message == (
        f"the Azure DevOps token was rejected (401) by {azdo_sandbox.org_url}: it is wrong, revoked or for another "
        "organisation"
    )
    assert raised.value.fix == f"create a PAT at {azdo_sandbox.org_url}/_usersSettings/tokens and pass it"
    assert str(raised.value) == f"{raised.value.message}: {raised.value.fix}"
    assert_actionable(raised.value, client)


def test_missing_scope_is_not_authorized_and_names_the_scope(azdo_sandbox: Sandbox, connect: ClientFactory) -> None:
    client = connect(azdo_sandbox.world.issue_pat(azdo_sandbox.user, ("vso.code",)))
    assert client.whoami().kind == "user"  # ConnectionData needs no scope
    with pytest.raises(AuthenticationFailed) as raised:
        client.get_project("platform")
    failure = raised.value
    assert (failure.reason, failure.code) == ("not-authorized", "TF400813")
    assert failure.message.endswith("(TF400813): the PAT lacks the scope Project and Team (Read) (vso.project)")
    assert failure.fix == (
        f"edit the PAT at {azdo_sandbox.org_url}/_usersSettings/tokens and select "
        "Custom defined > Project and Team > Read"
    )
    assert_actionable(failure, client)
    repository = client.get_repository("platform", "fleet-infra")
    assert repository is not None  # vso.code is there


@pytest.mark.parametrize("call", ["whoami", "get_project"])
def test_wrong_organisation_is_not_a_missing_project(azdo_sandbox: Sandbox, connect: ClientFactory, call: str) -> None:
    """The location service (OPTIONS <url>/_apis), asked before anything else, answers 404 for no organisation."""
    url = f"{azdo_sandbox.azdo.url}/other-org"
    client = connect(url=url)
    with pytest.raises(AzureDevOpsError) as raised:
        client.whoami() if call == "whoami" else client.get_project("platform")
    failure = raised.value
    assert not isinstance(failure, NotFound)
    assert failure.status == 404
    assert failure.message == (
        f"{url} is not an Azure DevOps organisation or collection URL (its location service answered HTTP 404)"
    )
    assert failure.fix == (
        f"is {url} the organisation URL? It is https://dev.azure.com/<organisation> (Azure DevOps Server: "
        "https://<server>/<collection>): correct --url, or pass --organization"
    )
    assert_actionable(failure, client)


def test_connection_data_404_means_not_an_organisation(azdo_sandbox: Sandbox, connect: ClientFactory) -> None:
    """Locations known (here: served), but no ConnectionData: still not an organisation URL, not a missing thing."""

    def edit(method: str, path: str, status: int, body: bytes) -> tuple[int, bytes]:
        return (404, b"") if "/_apis/connectiondata" in path.lower() else (status, body)

    with relay(azdo_sandbox, edit) as org_url:
        client = connect(url=org_url)
        with pytest.raises(AzureDevOpsError) as raised:
            client.whoami()
    failure = raised.value
    assert not isinstance(failure, NotFound) and failure.status == 404
    assert failure.message == f"{org_url} is not an Azure DevOps organisation or collection URL (ConnectionData " + (
        "answered HTTP 404)"
    )
    assert failure.fix is not None and failure.fix.startswith(f"is {org_url} the organisation URL?")
    assert_actionable(failure, client)


class _SignInPage(BaseHTTPRequestHandler):
    """A server that answers like Azure DevOps without sign-in suppression: 203 and an HTML page."""

    seen: ClassVar[list[dict[str, str]]] = []

    def _answer(self) -> None:
        type(self).seen.append(dict(self.headers))
        body = b"<html><body>Sign in to your account</body></html>"
        self.send_response(203)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_OPTIONS = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_sign_in_page_and_the_headers_we_send(connect: ClientFactory) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SignInPage)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        client = connect("a-pat-for-the-sign-in-test", url=f"http://127.0.0.1:{server.server_address[1]}/contoso")
        with pytest.raises(AuthenticationFailed, match="answered with a sign-in page") as raised:
            client.whoami()
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert raised.value.reason == "sign-in"
    assert raised.value.fix is not None and raised.value.fix.startswith("check that http://127.0.0.1:")
    assert_actionable(raised.value, client)
    headers = _SignInPage.seen[0]
    assert f"flux-azdo/{__version__}" in headers["User-Agent"]
    assert headers["X-TFS-FedAuthRedirect"] == "Suppress"
    assert headers["Authorization"] == client.token.authorization_header()


def test_scrub_secrets_removes_every_form() -> None:
    token = AzureDevOpsToken("s3cr3t-token-value")
    error = AzureDevOpsError(f"server said {token.secret} and {token.secret_forms()[1]}", fix=f"not {token.secret}")
    scrub_secrets(error, token)
    assert (error.message, error.fix) == ("server said *** and ***", "not ***")


@contextlib.contextmanager
def tls_server(handler: type[BaseHTTPRequestHandler], context: ssl.SSLContext) -> Iterator[int]:
    """An HTTPS server on 127.0.0.1 (its certificate signed by a CA nobody trusts); yields the port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_an_untrusted_certificate_names_requests_ca_bundle_and_that_fixes_it(
    connect: ClientFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    material = generate_serving_material("127.0.0.1")
    ca_bundle = tmp_path / "ca.pem"
    ca_bundle.write_bytes(material.ca_pem)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    with tls_server(_SignInPage, server_context(material)) as port:
        url = f"https://127.0.0.1:{port}/contoso"
        client = connect("a-pat-for-the-tls-test", url=url, retries=0, cache_dir=tmp_path / "cache")
        with pytest.raises(Unavailable) as raised:
            client.whoami()
        failure = raised.value
        assert failure.message.startswith(
            f"the TLS connection to {url} failed while trying to read who the token belongs to: the server's "
            "certificate is not trusted"
        )
        assert failure.fix is not None and failure.fix.startswith("set REQUESTS_CA_BUNDLE to your CA bundle")
        assert_actionable(failure, client)
        # Doing what the fix says gets through TLS (to the server's sign-in page).
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_bundle))
        with pytest.raises(AuthenticationFailed) as signed:
            connect("a-pat-for-the-tls-test", url=url, retries=0, cache_dir=tmp_path / "cache").whoami()
        assert signed.value.reason == "sign-in"


def test_the_service_status_page_is_named_for_azure_devops_services_only() -> None:
    """Azure DevOps Services has a status page; a server of one's own does not (only the URL decides)."""
    token = AzureDevOpsToken("a-pat")
    reply = Reply(503, "GET", "https://x/_apis/projects", "application/json", "")
    for url, page in (("https://dev.azure.com/contoso", True), ("https://tfs.contoso.example/tfs/Main", False)):
        translated = ErrorTranslator(url, token, 30, 4).translate(
            ClientRequestError("Operation returned a 503 status code."), Operation("read project 'p'"), reply
        )
        assert isinstance(translated, Unavailable) and translated.fix is not None
        assert ("https://status.dev.azure.com" in translated.fix) is page
        assert translated.fix.startswith("Azure DevOps is unavailable; try again later" if page else "the Azure")


# ----- retries and timeouts -----------------------------------------------------------------------------------------


def _waits(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "flux_azdo.azdo.retry" and "retry" in r.getMessage()]


def test_503_twice_then_success(
    azdo_sandbox: Sandbox, connect: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="flux_azdo.azdo.retry")
    client = connect()
    azdo_sandbox.azdo.faults.fail_next(2, 503, retry_after=0)
    assert client.whoami().kind == "user"
    assert azdo_sandbox.azdo.faults.served_failures == 2
    assert len(_waits(caplog)) == 2


def test_429_retry_after_is_honoured(
    azdo_sandbox: Sandbox, connect: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="flux_azdo.azdo.retry")
    client = connect()
    assert client.get_project("platform") is not None
    azdo_sandbox.azdo.faults.fail_next(1, 429, retry_after=1)
    assert client.get_project("platform") is not None
    assert azdo_sandbox.azdo.faults.served_failures == 1
    [wait] = _waits(caplog)
    assert "HTTP 429 on GET" in wait and wait.endswith("retry 1 in 1.00 s")


def test_retry_after_is_capped_by_max_retry_after(
    azdo_sandbox: Sandbox, connect: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="flux_azdo.azdo.retry")
    client = connect(max_retry_after=0.05)
    azdo_sandbox.azdo.faults.fail_next(1, 429, retry_after=3600)
    assert client.whoami().kind == "user"
    assert azdo_sandbox.azdo.faults.served_failures == 1
    [wait] = _waits(caplog)
    assert wait.endswith("in 0.05 s")


@pytest.mark.parametrize(("status", "retries"), [(503, 0), (503, 4), (429, 2)])
def test_persistent_503_or_429_is_unavailable_after_the_bounded_retries(
    azdo_sandbox: Sandbox, connect: ClientFactory, status: int, retries: int
) -> None:
    client = connect(retries=retries, max_retry_after=0.01)
    azdo_sandbox.azdo.faults.fail_next(10, status, retry_after=0)
    with pytest.raises(Unavailable) as raised:
        client.whoami()
    failure = raised.value
    assert failure.status == status
    assert f"HTTP {status}" in failure.message and f"after {retries} retries" in failure.message
    # The sandbox is a server of its own (not dev.azure.com): no Azure DevOps Services status page.
    assert failure.fix == "the Azure DevOps server is unavailable; try again later, or ask its administrators"
    assert azdo_sandbox.azdo.faults.served_failures == retries + 1
    assert_actionable(failure, client)


def test_latency_beyond_the_timeout_is_unavailable_and_not_retried(
    azdo_sandbox: Sandbox, connect: ClientFactory
) -> None:
    client = connect(timeout=0.25)
    assert client.whoami().kind == "user"
    azdo_sandbox.azdo.faults.latency(1.0)
    try:
        with pytest.raises(Unavailable, match="did not answer within 0.25 s") as raised:
            client.whoami()
    finally:
        azdo_sandbox.azdo.faults.latency(0)
    assert raised.value.status is None
    assert raised.value.fix == "allow more time with --timeout, or check the network (proxy, firewall)"
    assert azdo_sandbox.azdo.faults.delayed_requests == 1
    assert_actionable(raised.value, client)


def test_connection_refused_is_unavailable(connect: ClientFactory) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/org"
    client = connect("a-pat", url=url, retries=1, max_retry_after=0.01)
    with pytest.raises(Unavailable) as raised:
        client.whoami()
    failure = raised.value
    assert failure.message == (
        f"could not connect to {url} (connection refused, after 1 retries) while trying to read who the token "
        "belongs to"
    )
    assert failure.fix == "check the URL (--url, --organization) and the network or proxy (HTTPS_PROXY, NO_PROXY)"
    assert failure.status is None
    assert_actionable(failure, client)


def test_create_is_not_posted_again_after_a_503_without_retry_after(
    azdo_sandbox: Sandbox, connect: ClientFactory
) -> None:
    client = connect(max_retry_after=0.01)
    project = ProjectInfo(azdo_sandbox.project.id, "platform")
    faults = azdo_sandbox.azdo.faults
    faults.fail_next(5, 503, retry_after=None, method="POST", path_contains="/git/repositories")
    with pytest.raises(Unavailable, match="HTTP 503") as raised:
        client.create_repository(project, "apps")
    assert faults.served_failures == 1
    assert_actionable(raised.value, client)  # raised again after the look-up: still nothing attached
    faults.reset()
    assert client.get_repository("platform", "apps") is None


def test_a_failed_create_returns_the_repository_when_it_exists(azdo_sandbox: Sandbox, connect: ClientFactory) -> None:
    client = connect(max_retry_after=0.01)
    project = ProjectInfo(azdo_sandbox.project.id, "platform")
    # The sandbox fails requests before handling them; a repository that appears anyway stands for a create whose
    # reply was lost after the service applied it.
    azdo_sandbox.world.create_repository(azdo_sandbox.project, "apps")
    azdo_sandbox.azdo.faults.fail_next(1, 503, retry_after=None, method="POST")
    created = client.create_repository(project, "apps")
    assert (created.name, created.project_id) == ("apps", project.id)
    assert azdo_sandbox.azdo.faults.served_failures == 1


@pytest.mark.parametrize(("status", "retry_after"), [(503, 1), (429, 0)])
def test_create_is_retried_when_the_service_refused_it_before_processing(
    azdo_sandbox: Sandbox, connect: ClientFactory, status: int, retry_after: int
) -> None:
    client = connect(max_retry_after=0.01)
    azdo_sandbox.azdo.faults.fail_next(2, status, retry_after=retry_after, method="POST")
    created = client.create_repository(ProjectInfo(azdo_sandbox.project.id, "platform"), "apps")
    assert created.name == "apps"
    assert azdo_sandbox.azdo.faults.served_failures == 2


# ----- the SDK's disk cache -----------------------------------------------------------------------------------------


def test_cache_dir_receives_the_sdk_location_cache(
    azdo_sandbox: Sandbox, connect: ClientFactory, tmp_path: Path
) -> None:
    before = os.environ.get("AZURE_DEVOPS_CACHE_DIR")
    cache = tmp_path / "sdk-cache"
    assert connect(cache_dir=cache).get_project("platform") is not None
    key = azdo_sandbox.org_url.lower()
    assert key in json.loads((cache / "options.json").read_text())
    assert key in json.loads((cache / "resources.json").read_text())
    assert os.environ.get("AZURE_DEVOPS_CACHE_DIR") == before
    # A new connection finds the resource areas on disk: a ResourceAreas request would meet the fault and,
    # without retries, fail.
    azdo_sandbox.azdo.faults.fail_next(1, 503, retry_after=0, path_contains="/ResourceAreas")
    assert connect(cache_dir=cache, retries=0).get_project("platform") is not None
    assert azdo_sandbox.azdo.faults.served_failures == 0


def test_a_cache_dir_that_cannot_be_created_only_disables_the_cache(connect: ClientFactory, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert connect(cache_dir=blocker / "cache").whoami().kind == "user"
    assert blocker.read_text() == "not a folder"


def test_a_fresh_process_keeps_the_cache_out_of_the_users_home(azdo_sandbox: Sandbox, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    script = (
        "import os, sys\n"
        "from flux_azdo.azdo.client import AzureDevOpsClient\n"
        "from flux_azdo.azdo.credentials import AzureDevOpsToken\n"
        "client = AzureDevOpsClient(sys.argv[1], AzureDevOpsToken(os.environ['TEST_PAT']))\n"
        "print(client.whoami().display_name)\n"
        "print(os.environ.get('AZURE_DEVOPS_CACHE_DIR', 'unset'))\n"
    )
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "TEST_PAT": azdo_sandbox.pat,
        "NO_PROXY": "127.0.0.1",
    }
    done = subprocess.run(
        [sys.executable, "-c", script, azdo_sandbox.org_url], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["Sandbox Admin", "unset"]
    assert not (home / ".azure-devops").exists()
    cache = home / ".cache" / "flux-azdo" / "azure-devops"
    assert (cache / "options.json").is_file() and not (cache / "resources.json").exists()  # whoami needs no area


def test_a_netrc_entry_does_not_replace_a_bearer_token(
    azdo_sandbox: Sandbox, connect: ClientFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """requests fills in ~/.netrc credentials when a session has no `auth`; git users often keep a PAT there."""
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login me password {azdo_sandbox.pat}\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert connect(azdo_sandbox.job_token, "bearer", "job-token").whoami().kind == "build-service"
    assert connect(azdo_sandbox.job_token, "basic", "job-token").whoami().kind == "build-service"


def test_a_sign_in_page_from_the_sandbox_is_an_authentication_failure(
    azdo_sandbox: Sandbox, connect: ClientFactory
) -> None:
    """A proxy that strips X-TFS-FedAuthRedirect makes the service answer 203 with HTML instead of a 401."""
    azdo_sandbox.azdo.sign_in_page = True
    client = connect("not-a-token-of-this-organisation")
    with pytest.raises(AuthenticationFailed) as raised:
        client.get_project("platform")
    assert raised.value.reason == "sign-in"
    assert_actionable(raised.value, client)
