"""Lost replies: requests the sandbox Azure DevOps applies and then fails to answer (`FaultInjector`).

`drop_after_next_push` (git over HTTP here; SSH in test_sandbox_ssh.py) and `fail_after_handling` (REST), seen
through the real `git` CLI, the `azure-devops` SDK and `requests`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.devops.connection import Connection
from azure.devops.exceptions import AzureDevOpsServiceError
from azure.devops.v7_0.core.models import TeamProjectReference
from azure.devops.v7_0.git.models import GitRefUpdate, GitRepositoryCreateOptions
from msrest.authentication import BasicAuthentication
from msrest.exceptions import ClientRequestError

from support.azdo_world import GitCli, Scenario, init_checkout, running_scenario

NULL = "0" * 40


@pytest.fixture
def scenario(tmp_path: Path) -> Iterator[Scenario]:
    with running_scenario(tmp_path) as running:
        yield running


def git_client(scenario: Scenario) -> Any:
    creds = BasicAuthentication("", scenario.admin_pat)
    return Connection(base_url=scenario.server.org_url, creds=creds).clients.get_git_client()


def create(scenario: Scenario, name: str) -> Any:
    options = GitRepositoryCreateOptions(name=name, project=TeamProjectReference(id=scenario.project.id))
    return git_client(scenario).create_repository(options, project="Fleet Project")


def remote_main(git: GitCli, checkout: str) -> str | None:
    listed = git.run("ls-remote", "origin", "refs/heads/main", cwd=git.tmp / checkout, check=True).stdout.split()
    return listed[0] if listed else None


# ----- git push: applied, then the connection drops ------------------------------------------------------------


def test_push_applied_then_connection_dropped_over_http(scenario: Scenario) -> None:
    git = scenario.git(scenario.admin_pat)
    init_checkout(git, "work", scenario.server.repo_url(scenario.repo))
    head = git.commit("work", "a.txt", "a\n")
    scenario.server.faults.drop_after_next_push()
    pushed = git.push("work", "HEAD:refs/heads/main")
    assert pushed.returncode != 0
    assert "Empty reply from server" in pushed.stderr
    assert "[new branch]" not in pushed.stderr
    assert scenario.server.faults.dropped_push_replies == 1
    # It landed: the ref, the default branch and the creator's rights are there, as after any first push.
    assert remote_main(git, "work") == head
    assert scenario.repo.default_branch == "refs/heads/main"
    assert scenario.server.live_tickets == 0
    # The client's retry finds the work done; the next real change goes through normally.
    assert "Everything up-to-date" in git.push("work", "HEAD:refs/heads/main").stderr
    second = git.commit("work", "b.txt", "b\n")
    assert git.push("work", "HEAD:refs/heads/main").returncode == 0
    assert remote_main(git, "work") == second


def test_rejected_push_still_loses_its_reply(scenario: Scenario) -> None:
    """The drop follows the ref decisions whatever they were: here the branch policy rejected the update."""
    git = scenario.git(scenario.admin_pat)
    init_checkout(git, "work", scenario.server.repo_url(scenario.repo))
    first = git.commit("work", "a.txt", "a\n")
    assert git.push("work", "HEAD:refs/heads/main").returncode == 0
    scenario.world.set_branch_policy(scenario.repo, "main")
    git.commit("work", "b.txt", "b\n")
    scenario.server.faults.drop_after_next_push()
    pushed = git.push("work", "HEAD:refs/heads/main")
    assert pushed.returncode != 0 and "TF402455" not in pushed.stderr
    assert remote_main(git, "work") == first


def test_nothing_to_push_does_not_use_up_the_fault(scenario: Scenario) -> None:
    git = scenario.git(scenario.admin_pat)
    init_checkout(git, "work", scenario.server.repo_url(scenario.repo))
    git.commit("work", "a.txt", "a\n")
    assert git.push("work", "HEAD:refs/heads/main").returncode == 0
    scenario.server.faults.drop_after_next_push()
    assert git.push("work", "HEAD:refs/heads/main").returncode == 0  # up to date: no ref update
    assert scenario.server.faults.dropped_push_replies == 0
    git.commit("work", "b.txt", "b\n")
    assert git.push("work", "HEAD:refs/heads/main").returncode != 0
    assert scenario.server.faults.dropped_push_replies == 1


def test_drop_before_and_after_the_update_differ(scenario: Scenario) -> None:
    """`drop_next_push` loses the push itself; `drop_after_next_push` only its reply; `reset` clears both."""
    git = scenario.git(scenario.admin_pat)
    init_checkout(git, "work", scenario.server.repo_url(scenario.repo))
    head = git.commit("work", "a.txt", "a\n")
    scenario.server.faults.drop_next_push()
    assert git.push("work", "HEAD:refs/heads/main").returncode != 0
    assert remote_main(git, "work") is None
    scenario.server.faults.drop_after_next_push()
    assert git.push("work", "HEAD:refs/heads/main").returncode != 0
    assert remote_main(git, "work") == head
    scenario.server.faults.drop_next_push()
    scenario.server.faults.drop_after_next_push()
    scenario.server.faults.reset()
    assert not scenario.server.faults.push_drop_pending
    git.commit("work", "b.txt", "b\n")
    assert git.push("work", "HEAD:refs/heads/main").returncode == 0
    assert (scenario.server.faults.dropped_pushes, scenario.server.faults.dropped_push_replies) == (1, 1)


# ----- REST: handled, then the reply is lost --------------------------------------------------------------------


def test_created_repository_whose_reply_is_a_503(scenario: Scenario) -> None:
    scenario.server.faults.fail_after_handling(1, status=503, path_contains="/_apis/git/repositories", method="POST")
    with pytest.raises(AzureDevOpsServiceError, match="TF400898") as raised:
        create(scenario, "landed")
    assert raised.value.type_key == "ServiceUnavailableException"
    assert scenario.server.faults.lost_replies == 1
    assert scenario.world.find_repository(scenario.project, "landed") is not None
    # A blind retry meets its own first attempt.
    with pytest.raises(AzureDevOpsServiceError, match="TF400948: A Git repository with the name landed already"):
        create(scenario, "landed")
    assert create(scenario, "other").name == "other"


def test_lost_reply_as_a_500(scenario: Scenario) -> None:
    scenario.server.faults.fail_after_handling(status=500, method="POST")
    reply = requests.post(
        f"{scenario.server.org_url}/Fleet%20Project/_apis/git/repositories?api-version=7.1",
        json={"name": "five-hundred"},
        auth=("", scenario.admin_pat),
        timeout=10,
    )
    assert reply.status_code == 500
    body = reply.json()
    assert body["message"].startswith("TF400898: An Internal Error Occurred. Activity Id: ")
    assert body["typeName"] == "System.Exception, mscorlib"
    assert scenario.world.find_repository(scenario.project, "five-hundred") is not None


def test_lost_reply_as_a_dropped_connection(scenario: Scenario) -> None:
    """Ref updates applied, no reply at all: the SDK (msrest) does not retry a POST and reports the broken call."""
    git = scenario.git(scenario.admin_pat)
    init_checkout(git, "work", scenario.server.repo_url(scenario.repo))
    head = git.commit("work", "a.txt", "a\n")
    assert git.push("work", "HEAD:refs/heads/main").returncode == 0
    client = git_client(scenario)
    assert client.get_repository("fleet", "Fleet Project").name == "fleet"  # locations cached
    scenario.server.faults.fail_after_handling(status=None, path_contains="/refs", method="POST")
    update = GitRefUpdate(name="refs/heads/topic", old_object_id=NULL, new_object_id=head)
    with pytest.raises(ClientRequestError):
        client.update_refs([update], "fleet", "Fleet Project")
    refs = client.get_refs("fleet", "Fleet Project", filter="heads/topic")
    assert [(r.name, r.object_id) for r in refs] == [("refs/heads/topic", head)]
    assert scenario.server.faults.lost_replies == 1


def test_lost_replies_match_method_and_path_and_never_git(scenario: Scenario) -> None:
    auth = ("", scenario.admin_pat)
    scenario.server.faults.fail_after_handling(2, status=503, path_contains="/_apis/projects", method="GET")
    repositories = f"{scenario.server.org_url}/Fleet%20Project/_apis/git/repositories"
    assert requests.get(repositories, auth=auth, timeout=10).status_code == 200  # other path
    git = scenario.git(scenario.admin_pat)
    assert git.clone(scenario.server.repo_url(scenario.repo)).returncode == 0  # git is never matched
    projects = f"{scenario.server.org_url}/_apis/projects"
    statuses = [requests.get(projects, auth=auth, timeout=10).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    assert scenario.server.faults.lost_replies == 2
    scenario.server.faults.fail_after_handling(status=503, retry_after=4)
    reply = requests.get(projects, auth=auth, timeout=10)
    assert reply.status_code == 503 and reply.headers["Retry-After"] == "4"
    with pytest.raises(ValueError, match="500, 503 or None"):
        scenario.server.faults.fail_after_handling(status=429)
    scenario.server.faults.fail_after_handling(status=None)
    scenario.server.faults.reset()
    assert requests.get(projects, auth=auth, timeout=10).status_code == 200
