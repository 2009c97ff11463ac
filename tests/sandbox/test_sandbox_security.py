"""Security of the sandbox Azure DevOps: token formats, ACL evaluation (seen through the SDK), and the internal
`/_sandbox/git-access` endpoint the SSH forced command relies on (exercised with `requests` and real git)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.devops.connection import Connection
from msrest.authentication import BasicAuthentication

from flux_azdo.sandbox.azure_devops import security
from flux_azdo.sandbox.azure_devops.security import (
    GIT_NAMESPACE_ID,
    GitPermission,
    branch_token,
    ref_token,
    repository_token,
)
from support.azdo_world import GitCli, Scenario, init_checkout, running_scenario


@pytest.fixture
def scenario(tmp_path: Path) -> Iterator[Scenario]:
    with running_scenario(tmp_path) as running:
        yield running


def check(
    scenario: Scenario, pat: str, bits: int, *tokens: str, always_allow_administrators: bool = False
) -> list[bool]:
    client = Connection(
        base_url=scenario.server.org_url, creds=BasicAuthentication("", pat)
    ).clients.get_security_client()
    answer: list[bool] = client.has_permissions(
        GIT_NAMESPACE_ID,
        bits,
        tokens=",".join(tokens),
        always_allow_administrators=always_allow_administrators,
        delimiter=",",
    )
    return answer


def test_branch_tokens_encode_each_name_component_as_utf16le_hex() -> None:
    assert branch_token("p", "r", "main") == "repoV2/p/r/refs/heads/6d00610069006e00/"
    assert branch_token("p", "r", "refs/heads/master") == "repoV2/p/r/refs/heads/6d0061007300740065007200/"
    assert branch_token("p", "r", "feature/x") == "repoV2/p/r/refs/heads/6600650061007400750072006500/7800/"
    assert ref_token("p", "r", "refs/tags/v1") == "repoV2/p/r/refs/tags/76003100/"
    assert repository_token("p", "r") == "repoV2/p/r"


def test_preset_values_are_the_documented_ones() -> None:
    """Microsoft's "Default Git repository and branch permissions": ForcePush, PolicyExempt and
    PullRequestBypassPolicy are not set for any group, so Project Administrators hold 65534 minus those."""
    assert security.ADMIN_PERMISSIONS == 32630
    assert security.READER_PERMISSIONS == GitPermission.GENERIC_READ | GitPermission.PULL_REQUEST_CONTRIBUTE
    assert security.BUILD_SERVICE_PERMISSIONS == GitPermission.GENERIC_READ | GitPermission.CREATE_TAG


def test_project_group_presets(scenario: Scenario) -> None:
    project = f"repoV2/{scenario.project.id}"
    repo = f"{project}/{scenario.repo.id}"
    main = branch_token(scenario.project.id, scenario.repo.id, "main")
    admin_allowed = [GitPermission.CREATE_REPOSITORY, GitPermission.MANAGE_PERMISSIONS, GitPermission.EDIT_POLICIES]
    assert [check(scenario, scenario.admin_pat, bit, project)[0] for bit in admin_allowed] == [True] * 3
    admin_not_set = [GitPermission.FORCE_PUSH, GitPermission.POLICY_EXEMPT, GitPermission.PULL_REQUEST_BYPASS_POLICY]
    assert [check(scenario, scenario.admin_pat, bit, main)[0] for bit in admin_not_set] == [False] * 3
    contributor = [
        check(scenario, scenario.contributor_pat, bit, main)[0]
        for bit in (
            GitPermission.GENERIC_READ,
            GitPermission.GENERIC_CONTRIBUTE,
            GitPermission.CREATE_BRANCH,
            GitPermission.CREATE_TAG,
        )
    ]
    assert contributor == [True] * 4
    assert check(scenario, scenario.contributor_pat, GitPermission.FORCE_PUSH, repo, main) == [False, False]
    assert check(scenario, scenario.contributor_pat, GitPermission.CREATE_REPOSITORY, project) == [False]
    _, reader_pat = scenario.user("Rita Reader", "reader")
    assert check(scenario, reader_pat, GitPermission.GENERIC_READ, repo) == [True]
    assert check(scenario, reader_pat, GitPermission.PULL_REQUEST_CONTRIBUTE, repo) == [True]
    assert check(scenario, reader_pat, GitPermission.GENERIC_CONTRIBUTE, repo) == [False]
    _, outsider_pat = scenario.user("Otto Outsider", "none")
    assert check(scenario, outsider_pat, GitPermission.GENERIC_READ, "repoV2", project, repo) == [False, False, False]
    # Several bits at once: all of them must be allowed.
    assert check(
        scenario, scenario.contributor_pat, GitPermission.GENERIC_READ | GitPermission.GENERIC_CONTRIBUTE, repo
    ) == [True]
    assert check(scenario, scenario.contributor_pat, GitPermission.GENERIC_READ | GitPermission.FORCE_PUSH, repo) == [
        False
    ]


def test_deny_beats_allow_at_the_same_level_and_is_inherited(scenario: Scenario) -> None:
    project = f"repoV2/{scenario.project.id}"
    repo = f"{project}/{scenario.repo.id}"
    # The Contributors grant and this user's own deny sit on the same token: the deny wins, and repos inherit it.
    scenario.world.deny(scenario.contributor, project, GitPermission.GENERIC_CONTRIBUTE)
    assert check(scenario, scenario.contributor_pat, GitPermission.GENERIC_CONTRIBUTE, project, repo) == [False, False]
    assert check(scenario, scenario.contributor_pat, GitPermission.GENERIC_READ, repo) == [True]


def test_the_closest_explicit_entry_wins(scenario: Scenario) -> None:
    repo = repository_token(scenario.project.id, scenario.repo.id)
    main = branch_token(scenario.project.id, scenario.repo.id, "main")
    users = branch_token(scenario.project.id, scenario.repo.id, "users/carl")
    other = branch_token(scenario.project.id, scenario.repo.id, "other")
    scenario.world.deny(scenario.contributor, repo, GitPermission.GENERIC_CONTRIBUTE)
    scenario.world.allow(scenario.contributor, main, GitPermission.GENERIC_CONTRIBUTE)
    assert check(scenario, scenario.contributor_pat, GitPermission.GENERIC_CONTRIBUTE, repo, main, other) == [
        False,
        True,
        False,
    ]
    # A branch folder (`users/`) carries permissions for everything below it.
    folder = branch_token(scenario.project.id, scenario.repo.id, "users")
    scenario.world.allow(scenario.contributor, folder, GitPermission.GENERIC_CONTRIBUTE)
    assert check(scenario, scenario.contributor_pat, GitPermission.GENERIC_CONTRIBUTE, users) == [True]
    scenario.world.clear(scenario.contributor, repo, GitPermission.GENERIC_CONTRIBUTE)
    assert check(scenario, scenario.contributor_pat, GitPermission.GENERIC_CONTRIBUTE, other) == [True]


def test_always_allow_administrators_short_circuits(scenario: Scenario) -> None:
    repo = repository_token(scenario.project.id, scenario.repo.id)
    scenario.world.deny(scenario.admin, repo, GitPermission.FORCE_PUSH)
    assert check(scenario, scenario.admin_pat, GitPermission.FORCE_PUSH, repo) == [False]
    assert check(scenario, scenario.admin_pat, GitPermission.FORCE_PUSH, repo, always_allow_administrators=True) == [
        True
    ]
    assert check(
        scenario, scenario.contributor_pat, GitPermission.FORCE_PUSH, repo, always_allow_administrators=True
    ) == [False]


def test_unknown_security_namespace_is_404(scenario: Scenario) -> None:
    reply = requests.get(
        f"{scenario.server.org_url}/_apis/permissions/52d39943-cb85-4d7f-8fa8-c6baac873819/1?tokens=x",
        auth=("", scenario.admin_pat),
        timeout=10,
    )
    assert reply.status_code == 404


# ----- /_sandbox/git-access (the SSH side's authorisation) ---------------------------------------------------


def git_access(
    scenario: Scenario, identity_id: str, path: str, service: str, secret: str | None = None
) -> requests.Response:
    document: dict[str, Any] = {
        "secret": scenario.server.internal_secret if secret is None else secret,
        "identity": identity_id,
        "path": path,
        "service": service,
    }
    return requests.post(f"{scenario.server.url}/_sandbox/git-access", json=document, timeout=10)


@pytest.mark.parametrize(
    "path",
    [
        "v3/sandbox-org/Fleet%20Project/fleet",
        "/v3/sandbox-org/Fleet Project/fleet",
        "'/v3/SANDBOX-ORG/fleet%20project/FLEET.git'",
    ],
)
def test_git_access_accepts_the_ssh_path_forms(scenario: Scenario, path: str) -> None:
    reply = git_access(scenario, scenario.contributor.id, path, "git-upload-pack")
    assert reply.status_code == 200, reply.text
    assert reply.json()["gitDir"] == str(scenario.repo.git_dir)


def test_git_access_refusals_carry_azure_devops_texts(scenario: Scenario) -> None:
    path = "v3/sandbox-org/Fleet%20Project/fleet"
    assert git_access(scenario, scenario.admin.id, path, "git-upload-pack", secret="guess").status_code == 403
    assert git_access(scenario, "0d6a4f8e-0000-0000-0000-000000000000", path, "git-upload-pack").status_code == 401
    missing = git_access(scenario, scenario.admin.id, "v3/sandbox-org/Fleet%20Project/ghost", "git-upload-pack")
    assert missing.status_code == 404
    assert missing.json()["message"].startswith(
        "TF401019: The Git repository with name or identifier ghost does not exist"
    )
    outsider, _ = scenario.user("Otto Outsider", "none")
    hidden = git_access(scenario, outsider.id, path, "git-upload-pack")
    assert hidden.status_code == 404 and hidden.json()["message"].startswith("TF401019")
    reader, _ = scenario.user("Rita Reader", "reader")
    assert git_access(scenario, reader.id, path, "git-upload-pack").status_code == 200
    denied = git_access(scenario, reader.id, path, "git-receive-pack")
    assert denied.status_code == 403
    assert denied.json()["message"] == (
        "TF401027: You need the Git 'GenericContribute' permission to perform this action. "
        f"Details: identity '{scenario.world.tenant_id}\\rita.reader@sandbox.example', scope 'repository'."
    )
    assert git_access(scenario, scenario.admin.id, path, "git-upload-archive").status_code == 400
    # Contribute on one branch is enough to start a push (the hook decides per ref).
    scenario.world.allow(
        reader, branch_token(scenario.project.id, scenario.repo.id, "main"), GitPermission.GENERIC_CONTRIBUTE
    )
    assert git_access(scenario, reader.id, path, "git-receive-pack").status_code == 200
    # The collection build service reads every repository by default and is named `Build\<collectionId>`.
    collection = scenario.world.collection_build_service()
    assert git_access(scenario, collection.id, path, "git-upload-pack").status_code == 200
    refused = git_access(scenario, collection.id, path, "git-receive-pack").json()["message"]
    assert f"identity 'Build\\{scenario.world.org_id}', scope 'repository'." in refused


def test_git_access_ticket_drives_the_push_rules(scenario: Scenario) -> None:
    """Push the way the SSH forced command does: git-receive-pack on gitDir with the returned env."""
    path = "v3/sandbox-org/Fleet%20Project/fleet"

    def grant() -> dict[str, Any]:
        reply = git_access(scenario, scenario.contributor.id, path, "git-receive-pack")
        assert reply.status_code == 200
        granted: dict[str, Any] = reply.json()
        git.env.update(granted["env"])
        return granted

    git = GitCli(scenario.tmp, None)
    git.config("protocol.ext.allow", "always")
    work = scenario.tmp / "work"
    git.run("init", "--quiet", str(work), check=True)
    git.commit("work", "f.txt", "f")
    url = f"ext::git %s {grant()['gitDir']}"
    assert scenario.server.live_tickets == 1
    pushed = git.run("push", url, "HEAD:refs/heads/main", cwd=work)
    assert pushed.returncode == 0, pushed.stderr
    assert scenario.repo.default_branch == "refs/heads/main"
    assert scenario.server.live_tickets == 0  # used up by the push
    reused = git.run("push", url, "HEAD:refs/heads/again", cwd=work)
    assert "[remote rejected] HEAD -> again" in reused.stderr
    scenario.world.deny(
        scenario.contributor, repository_token(scenario.project.id, scenario.repo.id), GitPermission.CREATE_BRANCH
    )
    grant()
    rejected = git.run("push", url, "HEAD:refs/heads/topic", cwd=work)
    assert "[remote rejected] HEAD -> topic (TF401027: You need the Git 'CreateBranch' permission" in rejected.stderr
    grant()
    git.env.update({key: "forged" for key in git.env if "TICKET" in key})
    refused = git.run("push", url, "HEAD:refs/heads/other", cwd=work)
    assert "[remote rejected]" in refused.stderr


def test_receive_recomputes_fast_forward_and_sweeps_tickets(scenario: Scenario) -> None:
    """The hook's word on fast-forwards is not trusted: a forged `fastForward` still needs ForcePush."""
    git = scenario.git(scenario.admin_pat)
    init_checkout(git, "seed", scenario.server.repo_url(scenario.repo))
    first = git.commit("seed", "a.txt", "a")
    second = git.commit("seed", "b.txt", "b")
    assert git.push("seed", "HEAD:refs/heads/main").returncode == 0
    receive = f"{scenario.server.url}/_sandbox/receive"
    rewind = {"old": second, "new": first, "ref": "refs/heads/main", "fastForward": True}
    ticket = scenario.server.issue_ticket(scenario.contributor, scenario.repo)
    answer = requests.post(receive, json={"ticket": ticket, "commands": [rewind]}, timeout=10).json()
    assert answer["results"][0]["ok"] is False
    assert "TF401027: You need the Git 'ForcePush' permission" in answer["results"][0]["reason"]
    again = requests.post(receive, json={"ticket": ticket, "commands": [rewind]}, timeout=10)
    assert again.status_code == 403  # one push per ticket
    malformed = requests.post(receive, json={"ticket": "x", "commands": [{"old": 1}]}, timeout=10)
    assert malformed.status_code == 400
    scenario.server.issue_ticket(scenario.contributor, scenario.repo, lifetime=-1.0)
    assert scenario.server.live_tickets == 0  # expired tickets are swept


def test_workload_tokens_last_an_hour_and_are_reused_until_near_expiry(scenario: Scenario) -> None:
    client_id = "11111111-2222-3333-4444-555555555555"
    identity = scenario.world.add_managed_identity("flux-source-controller", project_rights="reader")
    scenario.world.federate(identity, client_id)
    now = [1_700_000_000.0]
    scenario.world.clock = lambda: now[0]

    def who(token: str) -> int:
        url = f"{scenario.server.org_url}/_apis/ConnectionData"
        # Suppress, as API clients send it: a refused token is then a 401 rather than the sign-in redirect.
        headers = {"Authorization": f"Bearer {token}", "X-TFS-FedAuthRedirect": "Suppress"}
        return requests.get(url, headers=headers, timeout=10).status_code

    first = scenario.world.workload_token(client_id)
    assert first is not None and scenario.world.workload_token(client_id) == first
    payload = first.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["exp"] - claims["iat"] == 3600
    assert who(first) == 200
    now[0] += 3600 - 120  # inside the refresh margin: a new token, the old one still valid
    second = scenario.world.workload_token(client_id)
    assert second is not None and second != first and who(first) == 200
    now[0] += 200  # past the first token's expiry
    assert who(first) == 401 and who(second) == 200
