"""Disabled repositories (`World.disable_repository`), through the `azure-devops` SDK and the `git` CLI.

As on the service: still listed and shown with `isDisabled: true` (renovate#25104 filters them out of the list
for that reason), but git and the calls inside the repository answer TF401019 as for a missing repository
(renovate#13013, BroomBot#28). SSH: test_sandbox_ssh.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.devops.connection import Connection
from azure.devops.exceptions import AzureDevOpsServiceError
from azure.devops.v7_0.git.models import GitRefUpdate
from msrest.authentication import BasicAuthentication

from support.azdo_world import Scenario, init_checkout, running_scenario

TF401019 = "TF401019: The Git repository with name or identifier {} does not exist or you do not have permissions"


@pytest.fixture
def scenario(tmp_path: Path) -> Iterator[Scenario]:
    with running_scenario(tmp_path) as running:
        yield running


def git_client(scenario: Scenario, factory: str = "clients") -> Any:
    connection = Connection(base_url=scenario.server.org_url, creds=BasicAuthentication("", scenario.admin_pat))
    return getattr(connection, factory).get_git_client()


def seed(scenario: Scenario) -> str:
    git = scenario.git(scenario.admin_pat)
    init_checkout(git, "seed", scenario.server.repo_url(scenario.repo))
    head = git.commit("seed", "README.md", "seed\n")
    assert git.push("seed", "HEAD:refs/heads/main").returncode == 0
    return head


@pytest.mark.parametrize("factory", ["clients", "clients_v7_1"])
def test_disabled_repository_is_listed_and_shown_as_disabled(scenario: Scenario, factory: str) -> None:
    seed(scenario)
    client = git_client(scenario, factory)
    assert client.get_repository("fleet", "Fleet Project").is_disabled is False
    scenario.world.disable_repository(scenario.repo)
    shown = client.get_repository("fleet", "Fleet Project")
    assert shown.is_disabled is True and shown.default_branch == "refs/heads/main"
    assert client.get_repository(scenario.repo.id).is_disabled is True  # the project-less form, by id
    assert [(r.name, r.is_disabled) for r in client.get_repositories("Fleet Project")] == [("fleet", True)]
    scenario.world.enable_repository(scenario.repo)
    assert client.get_repository("fleet", "Fleet Project").is_disabled is False


def test_calls_inside_a_disabled_repository_are_tf401019(scenario: Scenario) -> None:
    head = seed(scenario)
    client = git_client(scenario)
    scenario.world.disable_repository(scenario.repo)
    with pytest.raises(AzureDevOpsServiceError, match=TF401019.format("fleet")) as raised:
        client.get_refs("fleet", "Fleet Project", filter="heads/main")
    assert raised.value.type_key == "GitRepositoryNotFoundException"
    with pytest.raises(AzureDevOpsServiceError, match=TF401019.format(scenario.repo.id)):
        client.get_branch(scenario.repo.id, "main", "Fleet Project")
    update = GitRefUpdate(name="refs/heads/topic", old_object_id="0" * 40, new_object_id=head)
    with pytest.raises(AzureDevOpsServiceError, match="TF401019"):
        client.update_refs([update], "fleet", "Fleet Project")
    scenario.world.enable_repository(scenario.repo)
    assert [r.object_id for r in client.get_refs("fleet", "Fleet Project", filter="heads/main")] == [head]


def test_git_cannot_fetch_or_push_a_disabled_repository(scenario: Scenario) -> None:
    seed(scenario)
    scenario.world.disable_repository(scenario.repo)
    url = scenario.server.repo_url(scenario.repo)
    git = scenario.git(scenario.admin_pat)
    cloned = git.clone(url, "copy", check=False)
    assert cloned.returncode == 128
    assert f"remote: {TF401019.format('fleet')}" in cloned.stderr
    assert f"fatal: repository '{url}/' not found" in cloned.stderr
    pushed = scenario.git(scenario.admin_pat)
    init_checkout(pushed, "push", url)
    pushed.commit("push", "x.txt", "x\n")
    refused = pushed.push("push", "HEAD:refs/heads/other")
    assert refused.returncode == 128 and "remote: TF401019" in refused.stderr
    scenario.world.enable_repository(scenario.repo)
    assert git.clone(url, "copy").returncode == 0
    assert pushed.push("push", "HEAD:refs/heads/other").returncode == 0


def test_ssh_authorisation_and_a_push_under_way_are_refused(scenario: Scenario) -> None:
    """The internal endpoints behind SSH and the push hook: git-access says TF401019 (as over HTTP), and a push
    whose repository was disabled between its start and its ref updates changes nothing."""
    head = seed(scenario)
    ticket = scenario.server.issue_ticket(scenario.admin, scenario.repo, transport="http")
    scenario.world.disable_repository(scenario.repo)
    access = requests.post(
        f"{scenario.server.url}/_sandbox/git-access",
        json={
            "secret": scenario.server.internal_secret,
            "identity": scenario.admin.id,
            "path": "v3/sandbox-org/Fleet%20Project/fleet",
            "service": "git-upload-pack",
        },
        timeout=10,
    )
    assert access.status_code == 404 and access.json()["message"].startswith(TF401019.format("fleet"))
    command = {"old": "0" * 40, "new": head, "ref": "refs/heads/late"}
    answer = requests.post(
        f"{scenario.server.url}/_sandbox/receive", json={"ticket": ticket, "commands": [command]}, timeout=10
    ).json()
    assert answer["results"][0]["ok"] is False
    assert answer["results"][0]["reason"].startswith(TF401019.format("fleet"))
    scenario.world.enable_repository(scenario.repo)
    assert git_client(scenario).get_refs("fleet", "Fleet Project", filter="heads/late") == []
