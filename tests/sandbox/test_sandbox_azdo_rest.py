"""The sandbox's Azure DevOps REST subset, driven by the real `azure-devops` SDK (and `requests` for raw wire checks)."""

from __future__ import annotations

import base64
import http.client
import json
import socket
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.devops.connection import Connection
from azure.devops.exceptions import AzureDevOpsAuthenticationError, AzureDevOpsServiceError
from azure.devops.v7_0.core.models import TeamProjectReference
from azure.devops.v7_0.git.models import GitRefUpdate, GitRepositoryCreateOptions
from msrest.authentication import BasicAuthentication, BasicTokenAuthentication

from flux_azdo.sandbox.azure_devops.security import GIT_NAMESPACE_ID, GitPermission, branch_token
from support.azdo_world import Scenario, init_checkout, running_scenario

FACTORIES = ["clients", "clients_v7_1"]


@pytest.fixture
def scenario(tmp_path: Path) -> Iterator[Scenario]:
    with running_scenario(tmp_path) as running:
        yield running


def sdk(scenario: Scenario, token: str, factory: str = "clients", *, bearer: bool = False) -> Any:
    creds = BasicTokenAuthentication({"access_token": token}) if bearer else BasicAuthentication("", token)
    return getattr(Connection(base_url=scenario.server.org_url, creds=creds), factory)


def port(scenario: Scenario) -> int:
    return int(scenario.server.url.rsplit(":", 1)[1])


def create_options(scenario: Scenario, name: str) -> GitRepositoryCreateOptions:
    return GitRepositoryCreateOptions(name=name, project=TeamProjectReference(id=scenario.project.id))


@pytest.mark.parametrize("factory", FACTORIES)
def test_get_project_by_name_any_case_and_by_id(scenario: Scenario, factory: str) -> None:
    core = sdk(scenario, scenario.admin_pat, factory).get_core_client()
    by_name = core.get_project("FLEET project")
    by_id = core.get_project(scenario.project.id)
    assert (by_name.id, by_name.name, by_name.state, by_name.visibility) == (
        scenario.project.id,
        "Fleet Project",
        "wellFormed",
        "private",
    )
    assert by_id.name == "Fleet Project"


@pytest.mark.parametrize("factory", FACTORIES)
def test_missing_project_by_name_and_by_id(scenario: Scenario, factory: str) -> None:
    core = sdk(scenario, scenario.admin_pat, factory).get_core_client()
    with pytest.raises(
        AzureDevOpsServiceError, match="TF200016: The following project does not exist: nope"
    ) as by_name:
        core.get_project("nope")
    assert by_name.value.type_key == "ProjectDoesNotExistWithNameException"
    missing_id = "6ce954b1-ce1f-45d1-b94d-e6bf2464ba2c"
    with pytest.raises(
        AzureDevOpsServiceError,
        match=f"VS800075: The project with id 'vstfs:///Classification/TeamProject/{missing_id}'",
    ):
        core.get_project(missing_id)


@pytest.mark.parametrize("factory", FACTORIES)
def test_create_repository_then_list_and_get(scenario: Scenario, factory: str) -> None:
    git = sdk(scenario, scenario.admin_pat, factory).get_git_client()
    created = git.create_repository(create_options(scenario, "apps"), project="Fleet Project")
    assert created.name == "apps"
    assert created.project.id == scenario.project.id
    assert created.default_branch is None  # empty: no default branch yet
    assert created.size == 0
    assert (
        created.remote_url
        == f"http://{scenario.world.org}@{scenario.server.url.removeprefix('http://')}/sandbox-org/Fleet%20Project/_git/apps"
    )
    assert created.web_url == scenario.server.org_url + "/Fleet%20Project/_git/apps"
    assert created.ssh_url == "git@ssh.dev.azure.com:v3/sandbox-org/Fleet%20Project/apps"
    assert created.is_disabled is False
    names = sorted(r.name for r in git.get_repositories("Fleet Project"))
    assert names == ["apps", "fleet"]
    assert git.get_repository("APPS", "fleet project").id == created.id
    assert git.get_repository(created.id).name == "apps"
    assert scenario.world.find_repository(scenario.project, "apps") is not None


def test_create_repository_answers_201_over_the_wire(scenario: Scenario) -> None:
    reply = requests.post(
        f"{scenario.server.org_url}/Fleet%20Project/_apis/git/repositories?api-version=7.1",
        json={"name": "wire", "project": {"id": scenario.project.id}},
        auth=("", scenario.admin_pat),
        timeout=10,
    )
    assert reply.status_code == 201
    assert reply.headers["Content-Type"].startswith("application/json")
    assert "defaultBranch" not in reply.json()


def test_duplicate_repository_is_409_tf400948(scenario: Scenario) -> None:
    git = sdk(scenario, scenario.admin_pat).get_git_client()
    with pytest.raises(
        AzureDevOpsServiceError, match="TF400948: A Git repository with the name fleet already exists."
    ) as raised:
        git.create_repository(create_options(scenario, "fleet"), project=scenario.project.id)
    assert raised.value.type_key == "GitRepositoryNameAlreadyExistsException"
    reply = requests.post(
        f"{scenario.server.org_url}/{scenario.project.id}/_apis/git/repositories?api-version=7.0",
        json={"name": "FLEET"},
        auth=("", scenario.admin_pat),
        timeout=10,
    )
    assert reply.status_code == 409
    assert "TF400948" in requests.utils.unquote(reply.headers["X-TFS-ServiceError"])


def test_create_repository_needs_create_repository_permission(scenario: Scenario) -> None:
    git = sdk(scenario, scenario.contributor_pat).get_git_client()
    with pytest.raises(
        AzureDevOpsServiceError, match="TF401027: You need the Git 'CreateRepository' permission"
    ) as raised:
        git.create_repository(create_options(scenario, "denied"), project="Fleet Project")
    assert raised.value.message.endswith(
        f"Details: identity '{scenario.world.tenant_id}\\carl.contributor@sandbox.example', scope 'project'."
    )
    scenario.world.allow(scenario.contributor, f"repoV2/{scenario.project.id}", GitPermission.CREATE_REPOSITORY)
    assert git.create_repository(create_options(scenario, "granted"), project="Fleet Project").name == "granted"


def test_create_repository_needs_the_code_manage_scope(scenario: Scenario) -> None:
    """UNVERIFIED body: the 401 TF400813 for a missing PAT scope is modelled, not captured from the service."""
    pat = scenario.world.issue_pat(scenario.admin, ["vso.code_write", "vso.project"])
    git = sdk(scenario, pat).get_git_client()
    assert [r.name for r in git.get_repositories("Fleet Project")] == ["fleet"]
    with pytest.raises(AzureDevOpsServiceError, match=f"TF400813: The user '{scenario.admin.id}' is not authorized"):
        git.create_repository(create_options(scenario, "nope"), project="Fleet Project")
    assert scenario.world.find_repository(scenario.project, "nope") is None


def test_project_read_needs_a_project_scope(scenario: Scenario) -> None:
    code_only = scenario.world.issue_pat(scenario.admin, ["vso.code"])
    with pytest.raises(AzureDevOpsServiceError, match="TF400813"):
        sdk(scenario, code_only).get_core_client().get_project("Fleet Project")
    assert sdk(scenario, code_only).get_git_client().get_repository("fleet", "Fleet Project").name == "fleet"


def test_missing_or_unreadable_repository_is_tf401019(scenario: Scenario) -> None:
    git = sdk(scenario, scenario.contributor_pat).get_git_client()
    with pytest.raises(
        AzureDevOpsServiceError, match="TF401019: The Git repository with name or identifier ghost does not exist"
    ) as raised:
        git.get_repository("ghost", "Fleet Project")
    assert raised.value.type_key == "GitRepositoryNotFoundException"
    hidden = scenario.world.create_repository(scenario.project, "hidden")
    scenario.world.deny(scenario.contributor, f"repoV2/{scenario.project.id}/{hidden.id}", GitPermission.GENERIC_READ)
    with pytest.raises(AzureDevOpsServiceError, match="TF401019"):
        git.get_repository("hidden", "Fleet Project")
    assert [r.name for r in git.get_repositories("Fleet Project")] == ["fleet"]
    assert sorted(
        r.name for r in sdk(scenario, scenario.admin_pat).get_git_client().get_repositories("Fleet Project")
    ) == ["fleet", "hidden"]


def test_refs_follow_pushes_and_filter_is_a_prefix(scenario: Scenario) -> None:
    cli = scenario.git(scenario.admin_pat)
    init_checkout(cli, "work", scenario.server.repo_url(scenario.repo))
    main = cli.commit("work", "README.md", "hello")
    assert cli.push("work", "HEAD:refs/heads/main").returncode == 0
    assert cli.push("work", "HEAD:refs/heads/main-old").returncode == 0
    assert cli.push("work", "HEAD:refs/tags/v1").returncode == 0
    for factory in FACTORIES:
        git = sdk(scenario, scenario.admin_pat, factory).get_git_client()
        refs = git.get_refs("fleet", "Fleet Project", filter="heads/main")
        assert [(r.name, r.object_id) for r in refs] == [("refs/heads/main", main), ("refs/heads/main-old", main)]
        assert [r.name for r in git.get_refs(scenario.repo.id, scenario.project.id)] == [
            "refs/heads/main",
            "refs/heads/main-old",
            "refs/tags/v1",
        ]
        assert git.get_repository("fleet", "Fleet Project").default_branch == "refs/heads/main"


@pytest.mark.parametrize("factory", FACTORIES)
def test_connection_data_for_a_user_and_for_the_build_service(scenario: Scenario, factory: str) -> None:
    user = sdk(scenario, scenario.admin_pat, factory).get_location_client().get_connection_data()
    assert user.authenticated_user.id == scenario.admin.id
    assert user.authenticated_user.descriptor.startswith("Microsoft.IdentityModel.Claims.ClaimsIdentity;")
    assert user.authorized_user.provider_display_name == "Ada Admin"
    assert user.instance_id == scenario.world.org_id
    build = scenario.world.build_service(scenario.project)
    job_token = scenario.world.issue_job_token(build)
    data = sdk(scenario, job_token, factory, bearer=True).get_location_client().get_connection_data()
    assert data.authenticated_user.provider_display_name == "Fleet Project Build Service (sandbox-org)"
    assert data.authenticated_user.descriptor.startswith("Microsoft.TeamFoundation.ServiceIdentity;")
    assert data.authenticated_user.descriptor.endswith(f":Build:{scenario.project.id}")


@pytest.mark.parametrize("factory", FACTORIES)
def test_has_permissions_one_bool_per_token(scenario: Scenario, factory: str) -> None:
    security = sdk(scenario, scenario.contributor_pat, factory).get_security_client()
    project_token = f"repoV2/{scenario.project.id}"
    repo_token = f"{project_token}/{scenario.repo.id}"
    main_token = branch_token(scenario.project.id, scenario.repo.id, "main")
    scenario.world.deny(scenario.contributor, main_token, GitPermission.GENERIC_CONTRIBUTE)
    tokens = [project_token, repo_token, main_token]
    contribute = security.has_permissions(
        GIT_NAMESPACE_ID, 4, tokens=",".join(tokens), always_allow_administrators=False, delimiter=","
    )
    assert contribute == [True, True, False]
    semicolons = security.has_permissions(
        GIT_NAMESPACE_ID, 256, tokens=";".join(tokens), always_allow_administrators=False, delimiter=";"
    )
    assert semicolons == [False, False, False]
    admin = sdk(scenario, scenario.admin_pat, factory).get_security_client()
    assert admin.has_permissions(GIT_NAMESPACE_ID, 256, tokens=project_token, always_allow_administrators=False) == [
        True
    ]


@pytest.mark.parametrize("factory", FACTORIES)
def test_has_permissions_batch_fills_in_values(scenario: Scenario, factory: str) -> None:
    module = "v7_0" if factory == "clients" else "v7_1"
    models = __import__(f"azure.devops.{module}.security.models", fromlist=["PermissionEvaluation"])
    build = scenario.world.build_service(scenario.project)
    client = sdk(scenario, scenario.world.issue_job_token(build), factory, bearer=True).get_security_client()
    repo_token = f"repoV2/{scenario.project.id}/{scenario.repo.id}"
    batch = models.PermissionEvaluationBatch(
        always_allow_administrators=False,
        evaluations=[
            models.PermissionEvaluation(security_namespace_id=GIT_NAMESPACE_ID, token=repo_token, permissions=bit)
            for bit in (
                GitPermission.GENERIC_READ,
                GitPermission.GENERIC_CONTRIBUTE,
                GitPermission.CREATE_BRANCH,
                GitPermission.CREATE_TAG,
            )
        ],
    )
    answered = client.has_permissions_batch(batch)
    # The build service's default: Read and CreateTag (azure-devops-docs#6075), no Contribute or CreateBranch.
    assert [e.value for e in answered.evaluations] == [True, False, False, True]


@pytest.mark.parametrize("factory", FACTORIES)
def test_policy_configurations_for_a_branch(scenario: Scenario, factory: str) -> None:
    scenario.world.set_branch_policy(scenario.repo, "main")
    other = scenario.world.create_repository(scenario.project, "other")
    scenario.world.set_branch_policy(other, "release", required=False)
    clients = sdk(scenario, scenario.admin_pat, factory)
    answer = clients.get_git_client().get_policy_configurations(
        "Fleet Project", repository_id=scenario.repo.id, ref_name="refs/heads/main"
    )
    assert len(answer.policy_configurations) == 1
    policy = answer.policy_configurations[0]
    assert policy.is_blocking is True and policy.is_enabled is True
    assert policy.settings["scope"] == [
        {"refName": "refs/heads/main", "matchKind": "Exact", "repositoryId": scenario.repo.id}
    ]
    assert policy.type.display_name == "Minimum number of reviewers"
    none = clients.get_git_client().get_policy_configurations(
        "Fleet Project", repository_id=scenario.repo.id, ref_name="refs/heads/dev"
    )
    assert none.policy_configurations == []
    listed = clients.get_policy_client().get_policy_configurations("Fleet Project")
    assert sorted((p.settings["scope"][0]["refName"], p.is_blocking) for p in listed) == [
        ("refs/heads/main", True),
        ("refs/heads/release", False),
    ]
    assert clients.get_policy_client().get_policy_configuration("Fleet Project", policy.id).id == policy.id
    # Scopes match exactly: a repository without a branch matches no branch policy (vsts-rest-api-specs#395).
    repo_only = clients.get_git_client().get_policy_configurations("Fleet Project", repository_id=scenario.repo.id)
    assert repo_only.policy_configurations == []


def test_policy_configurations_need_a_guid_repository_id(scenario: Scenario) -> None:
    url = f"{scenario.server.org_url}/Fleet%20Project/_apis/git/policy/configurations"
    reply = requests.get(url, params={"repositoryId": "fleet"}, auth=("", scenario.admin_pat), timeout=10)
    assert reply.status_code == 400
    assert reply.json()["typeName"] == "System.ArgumentException, mscorlib"


def test_expired_pat_is_401_access_check_exception(scenario: Scenario) -> None:
    expired = scenario.world.issue_pat(
        scenario.admin, ["vso.code"], expires=datetime.now(timezone.utc) - timedelta(minutes=1)
    )
    with pytest.raises(
        AzureDevOpsServiceError, match="Access Denied: The Personal Access Token used has expired."
    ) as raised:
        sdk(scenario, expired).get_git_client().get_repositories("Fleet Project")
    assert raised.value.type_key == "AccessCheckException"
    reply = requests.get(f"{scenario.server.org_url}/_apis/projects", auth=("", expired), timeout=10)
    assert reply.status_code == 401
    assert (
        requests.utils.unquote(reply.headers["X-TFS-ServiceError"])
        == "Access Denied: The Personal Access Token used has expired."
    )
    fresh = scenario.world.issue_pat(
        scenario.admin, ["vso.code"], expires=datetime.now(timezone.utc) + timedelta(days=1)
    )
    assert [r.name for r in sdk(scenario, fresh).get_git_client().get_repositories("Fleet Project")] == ["fleet"]


def test_wrong_token_is_an_authentication_error(scenario: Scenario) -> None:
    """The anonymous `OPTIONS _apis` 401 (empty body, Basic challenge) is UNVERIFIED against the service.

    It is the answer for clients that send `X-TFS-FedAuthRedirect: Suppress`, as the SDK does; without the header
    the request is sent to the sign-in page (test_sandbox_sign_in.py).
    """
    with pytest.raises(AzureDevOpsAuthenticationError, match="requires user authentication"):
        sdk(scenario, "not-a-real-token").get_core_client().get_project("Fleet Project")
    suppress = {"X-TFS-FedAuthRedirect": "Suppress"}
    reply = requests.options(f"{scenario.server.org_url}/_apis", headers=suppress, timeout=10)
    assert reply.status_code == 401
    assert reply.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert reply.content == b""


def test_revoked_job_token_is_refused(scenario: Scenario) -> None:
    build = scenario.world.build_service(scenario.project)
    token = scenario.world.issue_job_token(build)
    git = sdk(scenario, token, bearer=True).get_git_client()
    assert [r.name for r in git.get_repositories("Fleet Project")] == ["fleet"]
    scenario.world.revoke_job_token(token)
    with pytest.raises(AzureDevOpsAuthenticationError):
        sdk(scenario, token, bearer=True).get_git_client().get_repositories("Fleet Project")


def test_workload_identity_token_for_a_federated_client_id(scenario: Scenario) -> None:
    identity = scenario.world.add_managed_identity("flux-source-controller", project_rights="reader")
    scenario.world.federate(identity, "11111111-2222-3333-4444-555555555555")
    assert scenario.world.workload_token("99999999-2222-3333-4444-555555555555") is None
    token = scenario.world.workload_token("11111111-2222-3333-4444-555555555555")
    assert token is not None
    data = sdk(scenario, token, bearer=True).get_location_client().get_connection_data()
    assert data.authenticated_user.id == identity.id
    assert data.authenticated_user.descriptor.startswith("Microsoft.VisualStudio.Services.Claims.AadServicePrincipal;")


def test_ssh_url_follows_the_local_sshd(scenario: Scenario) -> None:
    scenario.server.ssh_host, scenario.server.ssh_port, scenario.server.ssh_user = "127.0.0.1", 2222, "tester"
    repo = sdk(scenario, scenario.admin_pat).get_git_client().get_repository("fleet", "Fleet Project")
    assert repo.ssh_url == "ssh://tester@127.0.0.1:2222/v3/sandbox-org/Fleet%20Project/fleet"


def test_paths_are_case_insensitive_and_deployment_options_exist(scenario: Scenario) -> None:
    auth = ("", scenario.admin_pat)
    upper = requests.get(
        f"{scenario.server.url}/SANDBOX-ORG/FLEET%20PROJECT/_APIS/GIT/REPOSITORIES/FLEET", auth=auth, timeout=10
    )
    assert upper.status_code == 200 and upper.json()["id"] == scenario.repo.id
    deployment = requests.options(f"{scenario.server.url}/_apis", auth=auth, timeout=10)
    assert deployment.status_code == 200
    assert any(item["resourceName"] == "ConnectionData" for item in deployment.json()["value"])
    areas = requests.get(f"{scenario.server.url}/_apis/ResourceAreas", auth=auth, timeout=10)
    assert areas.status_code == 200 and areas.json()["count"] > 0
    # Nothing that needs an organisation is served at deployment level.
    assert requests.get(f"{scenario.server.url}/_apis/projects", auth=auth, timeout=10).status_code == 404
    unknown = requests.get(f"{scenario.server.org_url}/_apis/nothing/here", auth=auth, timeout=10)
    assert unknown.status_code == 404 and unknown.headers["Content-Type"].startswith("application/json")
    other_org = requests.get(f"{scenario.server.url}/other-org/_apis/projects", auth=auth, timeout=10)
    assert other_org.status_code == 404 and "other-org" in other_org.json()["message"]


@pytest.mark.parametrize("status", [503, 429])
def test_sdk_retries_injected_throttling(scenario: Scenario, status: int) -> None:
    git = sdk(scenario, scenario.admin_pat).get_git_client()
    assert git.get_repository("fleet", "Fleet Project").name == "fleet"  # locations now cached
    # One failure: urllib3 (under msrest) retries at once; a second one would add 1.6 s of backoff.
    scenario.server.faults.fail_next(1, status=status, retry_after=0, path_contains="/_apis/git/")
    assert [r.name for r in git.get_repositories("Fleet Project")] == ["fleet"]
    assert scenario.server.faults.served_failures == 1
    scenario.server.faults.fail_next(1, status=status, retry_after=7)
    reply = requests.get(f"{scenario.server.org_url}/_apis/projects", auth=("", scenario.admin_pat), timeout=10)
    assert reply.status_code == status and reply.headers["Retry-After"] == "7"


def test_projects_are_hidden_from_non_members(scenario: Scenario) -> None:
    outsider = scenario.world.add_user("Otto Outsider", project_rights="none")
    pat = scenario.world.issue_pat(outsider, ["vso.code", "vso.project"])
    with pytest.raises(AzureDevOpsServiceError, match="TF200016"):
        sdk(scenario, pat).get_core_client().get_project("Fleet Project")
    scenario.world.allow(outsider, f"repoV2/{scenario.project.id}/{scenario.repo.id}", GitPermission.GENERIC_READ)
    assert sdk(scenario, pat).get_core_client().get_project("Fleet Project").id == scenario.project.id
    assert [r.name for r in sdk(scenario, pat).get_git_client().get_repositories("Fleet Project")] == ["fleet"]


def test_invalid_repository_name_is_400(scenario: Scenario) -> None:
    reply = requests.post(
        f"{scenario.server.org_url}/{scenario.project.id}/_apis/git/repositories?api-version=7.1",
        json={"name": "a/b"},
        auth=("", scenario.admin_pat),
        timeout=10,
    )
    assert reply.status_code == 400
    assert reply.json()["message"].startswith("TF401025")


def test_stop_ends_keep_alive_connections_and_their_threads(tmp_path: Path) -> None:
    import threading

    with running_scenario(tmp_path) as running, requests.Session() as session:
        session.auth = ("", running.admin_pat)
        assert session.get(f"{running.server.org_url}/_apis/projects", timeout=10).status_code == 200
        assert any(t.name == "azdo-sandbox-conn" for t in threading.enumerate())  # the kept-alive connection
        url = running.server.url
    assert not any(t.name.startswith("azdo-sandbox") for t in threading.enumerate())
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=2)
    running.server.stop()  # idempotent


def test_n_failures_then_success_and_latency(scenario: Scenario) -> None:
    url = f"{scenario.server.org_url}/_apis/projects"
    auth = ("", scenario.admin_pat)
    scenario.server.faults.fail_next(2, status=503, retry_after=0)
    assert [requests.get(url, auth=auth, timeout=10).status_code for _ in range(3)] == [503, 503, 200]
    assert scenario.server.faults.served_failures == 2
    scenario.server.faults.latency(0.01)
    assert sdk(scenario, scenario.admin_pat).get_core_client().get_project("Fleet Project").name == "Fleet Project"
    assert scenario.server.faults.delayed_requests > 0
    scenario.server.faults.latency(0)


# ----- api-version -------------------------------------------------------------------------------------------


def test_api_version_is_required_for_writes_checked_and_echoed(scenario: Scenario) -> None:
    auth = ("", scenario.admin_pat)
    repos = f"{scenario.server.org_url}/Fleet%20Project/_apis/git/repositories"
    missing = requests.post(repos, json={"name": "nover"}, auth=auth, timeout=10)
    assert missing.status_code == 400
    assert missing.json()["typeKey"] == "VssVersionNotSpecifiedException"
    assert missing.json()["message"] == (
        'No api-version was supplied for the "POST" request. The version must be supplied either as part of the '
        'Accept header (e.g. "application/json; api-version=1.0") or as a query parameter (e.g. "?api-version=1.0").'
    )
    assert scenario.world.find_repository(scenario.project, "nover") is None
    headers = {"Accept": "application/json; api-version=7.1"}
    created = requests.post(repos, json={"name": "withver"}, headers=headers, auth=auth, timeout=10)
    assert created.status_code == 201
    assert created.headers["Content-Type"] == "application/json; charset=utf-8; api-version=7.1"
    listed = requests.get(repos, auth=auth, timeout=10)  # GET may leave the version out
    assert listed.status_code == 200 and "api-version=" in listed.headers["Content-Type"]

    def get(path: str, version: str) -> requests.Response:
        url = f"{scenario.server.org_url}/_apis/{path}"
        return requests.get(url, params={"api-version": version}, auth=auth, timeout=10)

    preview_only = get("ConnectionData", "7.1")
    assert preview_only.status_code == 400
    assert preview_only.json()["typeKey"] == "VssInvalidPreviewVersionException"
    assert preview_only.json()["message"] == (
        'The requested version "7.1" of the resource is under preview. The -preview flag must be supplied in the '
        'api-version for such requests. For example: "7.1-preview"'
    )
    preview = get("ConnectionData", "7.1-preview.1")
    assert preview.status_code == 200
    assert preview.headers["Content-Type"].endswith("; api-version=7.1-preview.1")
    assert get("projects", "7.2").json()["typeKey"] == "VssInvalidPreviewVersionException"  # above released 7.1
    assert get("projects", "7.2-preview.4").status_code == 200
    too_new = get("projects", "8.0")
    assert too_new.status_code == 400
    assert too_new.json()["message"] == (
        "The requested REST API version of 8.0 is out of range for this server. "
        "The latest REST API version this server supports is 7.2."
    )
    assert get("projects", "latest").json()["typeKey"] == "VssInvalidApiResourceVersionException"


# ----- HTTP framing ------------------------------------------------------------------------------------------


def test_head_is_get_without_a_body_and_wrong_methods_are_405(scenario: Scenario) -> None:
    auth = ("", scenario.admin_pat)
    url = f"{scenario.server.org_url}/_apis/projects"
    got = requests.get(url, auth=auth, timeout=10)
    head = requests.head(url, auth=auth, timeout=10)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Length"] == got.headers["Content-Length"]
    put = requests.put(url, json={}, params={"api-version": "7.1"}, auth=auth, timeout=10)
    assert put.status_code == 405 and put.headers["Allow"] == "GET, HEAD"
    assert put.json()["message"] == "The requested resource does not support http method 'PUT'."
    upload_pack = f"{scenario.server.repo_url(scenario.repo)}/git-upload-pack"
    assert requests.get(upload_pack, auth=auth, timeout=10).status_code == 405


def test_bad_input_is_400_never_500(scenario: Scenario) -> None:
    auth = ("", scenario.admin_pat)
    batch = f"{scenario.server.org_url}/_apis/security/permissionevaluationbatch?api-version=7.1"

    def post(body: bytes) -> requests.Response:
        headers = {"Content-Type": "application/json"}
        return requests.post(batch, data=body, headers=headers, auth=auth, timeout=10)

    evaluation = {"securityNamespaceId": GIT_NAMESPACE_ID, "token": "repoV2", "permissions": 2}
    for body in (
        b"{not json",
        b"[]",
        json.dumps({"evaluations": "all"}).encode(),
        json.dumps({"evaluations": [{**evaluation, "permissions": "two"}]}).encode(),
        json.dumps({"evaluations": [{**evaluation, "token": 7}]}).encode(),
    ):
        reply = post(body)
        assert reply.status_code == 400, (body, reply.text)
        assert reply.json()["typeName"] in (
            "System.ArgumentException, mscorlib",
            "System.ArgumentNullException, mscorlib",
        )
    refs = f"{scenario.server.org_url}/Fleet%20Project/_apis/git/repositories/fleet/refs?api-version=7.1"
    assert (
        requests.post(refs, json=[{"name": "refs/heads/x", "oldObjectId": 1}], auth=auth, timeout=10).status_code == 400
    )
    # An unframed request cannot be answered on a kept-alive connection: 400, then the server hangs up.
    with socket.create_connection(("127.0.0.1", port(scenario)), timeout=10) as raw:
        raw.sendall(b"POST /sandbox-org/_apis/projects HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
        answer = b""
        while chunk := raw.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 ") and b"Connection: close" in answer


def test_keep_alive_survives_request_bodies_on_any_method(scenario: Scenario) -> None:
    token = base64.b64encode(f":{scenario.admin_pat}".encode()).decode()
    headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
    connection = http.client.HTTPConnection("127.0.0.1", port(scenario), timeout=10)
    try:
        for method, path, expected in (
            ("GET", "/sandbox-org/_apis/projects", 200),
            ("DELETE", "/sandbox-org/_apis/projects", 405),
            ("OPTIONS", "/sandbox-org/_apis", 200),
            ("GET", "/sandbox-org/Fleet%20Project/_apis/git/repositories/fleet", 200),
        ):
            connection.request(method, path, body=b'{"ignored": "body"}' * 100, headers=headers)
            reply = connection.getresponse()
            reply.read()
            assert reply.status == expected, (method, path)
            assert reply.getheader("Connection") != "close"
    finally:
        connection.close()


# ----- branch stats and ref updates --------------------------------------------------------------------------


def test_branch_stats(scenario: Scenario) -> None:
    cli = scenario.git(scenario.admin_pat)
    init_checkout(cli, "work", scenario.server.repo_url(scenario.repo))
    main = cli.commit("work", "README.md", "hello", "first line\n\nbody")
    assert cli.push("work", "HEAD:refs/heads/main").returncode == 0
    topic = cli.commit("work", "t.txt", "t", "topic work")
    assert cli.push("work", "HEAD:refs/heads/topic").returncode == 0
    for factory in FACTORIES:
        git = sdk(scenario, scenario.contributor_pat, factory).get_git_client()
        stats = git.get_branch("fleet", "main", "Fleet Project")
        assert (stats.name, stats.commit.commit_id, stats.is_base_version) == ("main", main, True)
        assert (stats.ahead_count, stats.behind_count) == (0, 0)
        assert stats.commit.author.email == "test@sandbox.example" and stats.commit.author.date is not None
        ahead = git.get_branch(scenario.repo.id, "topic")  # the project-less route
        assert (ahead.commit.commit_id, ahead.ahead_count, ahead.behind_count) == (topic, 1, 0)
        assert ahead.commit.comment == "topic work" and ahead.is_base_version is False
        assert sorted(b.name for b in git.get_branches("fleet", "Fleet Project")) == ["main", "topic"]
        with pytest.raises(AzureDevOpsServiceError) as missing:
            git.get_branch("fleet", "nope", "Fleet Project")
        assert missing.value.message == (
            "TF401175:The version descriptor <Branch: nope > could not be resolved to a version in the repository fleet"
        )
        assert missing.value.type_key == "GitUnresolvableToCommitException"


def test_update_refs_follows_the_push_rules(scenario: Scenario) -> None:
    cli = scenario.git(scenario.admin_pat)
    init_checkout(cli, "work", scenario.server.repo_url(scenario.repo))
    first = cli.commit("work", "a.txt", "a")
    second = cli.commit("work", "b.txt", "b")
    assert cli.push("work", "HEAD:refs/heads/main").returncode == 0
    null = "0" * 40

    def update(token: str, *changes: tuple[str, str, str]) -> list[Any]:
        git = sdk(scenario, token).get_git_client()
        updates = [GitRefUpdate(name=name, old_object_id=old, new_object_id=new) for name, old, new in changes]
        return list(git.update_refs(updates, "fleet", "Fleet Project"))

    created, stale, rewind, deleted = update(
        scenario.contributor_pat,
        ("refs/heads/feature", null, first),
        ("refs/heads/main", first, second),  # main is at `second`, not `first`
        ("refs/heads/main", second, first),
        ("refs/heads/main", second, null),
    )
    assert (created.success, created.update_status) == (True, "succeeded")
    assert (stale.success, stale.update_status) == (False, "staleOldObjectId")
    assert (rewind.success, rewind.update_status) == (False, "forcePushRequired")
    assert (deleted.success, deleted.update_status) == (False, "forcePushRequired")
    assert created.repository_id == scenario.repo.id and created.rejected_by is None
    # The creator may rewrite their branch; a reader may not create one.
    (own,) = update(scenario.contributor_pat, ("refs/heads/feature", first, second))
    assert own.success is True
    _, reader_pat = scenario.user("Rita Reader", "reader")
    (denied,) = update(reader_pat, ("refs/heads/reader", null, first))
    assert denied.update_status == "createBranchPermissionRequired"
    scenario.world.set_branch_policy(scenario.repo, "feature")
    (blocked,) = update(scenario.contributor_pat, ("refs/heads/feature", second, first))
    assert blocked.update_status == "rejectedByPolicy" and blocked.custom_message.startswith("TF402455")
    # The admin created main, so may delete it; the repository then has no default branch.
    (gone,) = update(scenario.admin_pat, ("refs/heads/main", second, null))
    assert gone.success is True
    assert (
        sdk(scenario, scenario.admin_pat).get_git_client().get_repository("fleet", "Fleet Project").default_branch
        is None
    )
    refs = sdk(scenario, scenario.admin_pat).get_git_client().get_refs("fleet", "Fleet Project")
    assert [(r.name, r.object_id) for r in refs] == [("refs/heads/feature", second)]
    read_only = scenario.world.issue_pat(scenario.contributor, ["vso.code"])
    with pytest.raises(AzureDevOpsServiceError, match="TF400813"):
        update(read_only, ("refs/heads/x", null, first))
