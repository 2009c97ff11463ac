"""The sandbox's Azure DevOps REST subset, driven by the real `azure-devops` SDK (and `requests` for raw wire checks)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.devops.connection import Connection
from azure.devops.exceptions import AzureDevOpsAuthenticationError, AzureDevOpsServiceError
from azure.devops.v7_0.core.models import TeamProjectReference
from azure.devops.v7_0.git.models import GitRepositoryCreateOptions
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
    assert created.size == 0 or created.size > 0
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
    assert "identity 'Carl Contributor'" in raised.value.message
    scenario.world.allow(scenario.contributor, f"repoV2/{scenario.project.id}", GitPermission.CREATE_REPOSITORY)
    assert git.create_repository(create_options(scenario, "granted"), project="Fleet Project").name == "granted"


def test_create_repository_needs_the_code_manage_scope(scenario: Scenario) -> None:
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
            for bit in (GitPermission.GENERIC_READ, GitPermission.GENERIC_CONTRIBUTE, GitPermission.CREATE_BRANCH)
        ],
    )
    answered = client.has_permissions_batch(batch)
    assert [e.value for e in answered.evaluations] == [True, False, False]  # build service default: Read only


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
    with pytest.raises(AzureDevOpsAuthenticationError, match="requires user authentication"):
        sdk(scenario, "not-a-real-token").get_core_client().get_project("Fleet Project")
    reply = requests.options(f"{scenario.server.org_url}/_apis", timeout=10)
    assert reply.status_code == 401
    assert reply.headers["WWW-Authenticate"].startswith("Basic realm=")


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
    unknown = requests.get(f"{scenario.server.org_url}/_apis/nothing/here", auth=auth, timeout=10)
    assert unknown.status_code == 404 and unknown.headers["Content-Type"].startswith("application/json")


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
