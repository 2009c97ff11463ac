"""Git smart HTTP against the sandbox Azure DevOps, with the real `git` CLI: credentials, permissions, push rules."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from flux_azdo.sandbox.azure_devops.security import GitPermission, branch_token
from support.azdo_world import GitCli, Scenario, init_checkout, running_scenario


@pytest.fixture
def scenario(tmp_path: Path) -> Iterator[Scenario]:
    with running_scenario(tmp_path) as running:
        yield running


def seeded(scenario: Scenario) -> tuple[GitCli, str]:
    """The repo with `main` pushed by the admin; returns the admin's git and the commit."""
    git = scenario.git(scenario.admin_pat)
    init_checkout(git, "seed", scenario.server.repo_url(scenario.repo))
    commit = git.commit("seed", "README.md", "seed\n")
    pushed = git.push("seed", "HEAD:refs/heads/main")
    assert pushed.returncode == 0, pushed.stderr
    return git, commit


@pytest.mark.parametrize("protocol", ["2", "0"])
def test_clone_empty_repository_learns_no_default_branch(scenario: Scenario, protocol: str) -> None:
    git = scenario.git(scenario.contributor_pat)
    git.config("protocol.version", protocol)
    cloned = git.clone(scenario.server.repo_url(scenario.repo))
    assert "cloned an empty repository" in cloned.stderr
    # No unborn HEAD is advertised (Azure DevOps has no default branch yet): git keeps its own default name.
    assert git.run("symbolic-ref", "HEAD", cwd=git.tmp / "work", check=True).stdout.strip() == "refs/heads/work"
    assert git.run("ls-remote", "--symref", scenario.server.repo_url(scenario.repo), check=True).stdout == ""


def test_first_pushed_branch_becomes_the_default(scenario: Scenario) -> None:
    git = scenario.git(scenario.contributor_pat)
    git.clone(scenario.server.repo_url(scenario.repo))
    first = git.commit("work", "a.txt", "a\n")
    pushed = git.push("work", "HEAD:refs/heads/trunk")
    assert pushed.returncode == 0, pushed.stderr
    assert "[new branch]" in pushed.stderr
    assert scenario.repo.default_branch == "refs/heads/trunk"
    assert git.push("work", "HEAD:refs/heads/later").returncode == 0
    assert scenario.repo.default_branch == "refs/heads/trunk"
    again = scenario.git(scenario.admin_pat)
    again.clone(scenario.server.repo_url(scenario.repo), "again")
    assert again.run("symbolic-ref", "HEAD", cwd=again.tmp / "again", check=True).stdout.strip() == "refs/heads/trunk"
    assert again.run("rev-parse", "HEAD", cwd=again.tmp / "again", check=True).stdout.strip() == first


def test_url_forms_project_less_dot_git_and_any_case(scenario: Scenario) -> None:
    solo = scenario.world.add_project("solo")
    repo = scenario.world.create_repository(solo, "solo")
    git = scenario.git(scenario.admin_pat)
    init_checkout(git, "work", f"{scenario.server.org_url}/_git/solo")
    git.commit("work", "f", "x")
    assert git.push("work", "HEAD:refs/heads/main").returncode == 0
    url = f"{scenario.server.url}/SANDBOX-ORG/SOLO/_git/Solo.git"
    head = git.run("rev-parse", "HEAD", cwd=git.tmp / "work", check=True).stdout.strip()
    assert git.run("ls-remote", url, check=True).stdout.split() == [head, "HEAD", head, "refs/heads/main"]
    assert repo.default_branch == "refs/heads/main"


def test_large_push_is_chunked_and_accepted(scenario: Scenario) -> None:
    git, _ = seeded(scenario)
    git.config("http.postBuffer", str(1 << 20))
    big = git.commit("seed", "blob.bin", os.urandom(3 << 20), "3 MiB")
    pushed = git.push("seed", "HEAD:refs/heads/main")
    assert pushed.returncode == 0, pushed.stderr
    clone = scenario.git(scenario.contributor_pat)
    clone.clone(scenario.server.repo_url(scenario.repo), "copy")
    assert (clone.tmp / "copy" / "blob.bin").stat().st_size == 3 << 20
    assert clone.run("rev-parse", "HEAD", cwd=clone.tmp / "copy").stdout.strip() == big


def test_askpass_flow_answers_the_basic_challenge(scenario: Scenario) -> None:
    seeded(scenario)
    git = GitCli(scenario.tmp, scenario.contributor_pat, askpass=True)
    assert git.clone(scenario.server.repo_url(scenario.repo), "asked").returncode == 0


def test_wrong_token_fails_authentication(scenario: Scenario) -> None:
    git = scenario.git("wrong-token")
    cloned = git.clone(scenario.server.repo_url(scenario.repo), check=False)
    assert cloned.returncode == 128
    assert "remote: TF400813: Resource not available for anonymous access." in cloned.stderr
    assert "Authentication failed" in cloned.stderr


def test_expired_pat_is_reported_to_git(scenario: Scenario) -> None:
    expired = scenario.world.issue_pat(
        scenario.admin, ["vso.code"], expires=datetime.now(timezone.utc) - timedelta(seconds=1)
    )
    cloned = scenario.git(expired).clone(scenario.server.repo_url(scenario.repo), check=False)
    assert cloned.returncode == 128
    assert "remote: Access Denied: The Personal Access Token used has expired." in cloned.stderr


def test_job_token_reads_cannot_push_and_dies_with_the_job(scenario: Scenario) -> None:
    seeded(scenario)
    build = scenario.world.build_service(scenario.project)
    token = scenario.world.issue_job_token(build)
    git = scenario.git(token, bearer=True)
    assert git.clone(scenario.server.repo_url(scenario.repo)).returncode == 0
    git.commit("work", "b.txt", "b")
    pushed = git.push("work", "HEAD:refs/heads/main")
    assert pushed.returncode != 0
    # The service names a build service by its unique name, `Build\<projectId>` (agent#2257).
    assert (
        "remote: TF401027: You need the Git 'GenericContribute' permission to perform this action. "
        f"Details: identity 'Build\\{scenario.project.id}', scope 'repository'." in pushed.stderr
    )
    assert "403" in pushed.stderr
    scenario.world.allow(build, f"repoV2/{scenario.project.id}/{scenario.repo.id}", GitPermission.GENERIC_CONTRIBUTE)
    assert git.push("work", "HEAD:refs/heads/main").returncode == 0
    scenario.world.revoke_job_token(token)
    fetched = git.run("fetch", "origin", cwd=git.tmp / "work")
    assert fetched.returncode == 128 and "Authentication failed" in fetched.stderr


def test_reader_cannot_push(scenario: Scenario) -> None:
    seeded(scenario)
    _, pat = scenario.user("Rita Reader", "reader")
    git = scenario.git(pat)
    git.clone(scenario.server.repo_url(scenario.repo))
    git.commit("work", "r.txt", "r")
    pushed = git.push("work", "HEAD:refs/heads/main")
    assert pushed.returncode == 128
    # A user is named `<tenant>\<sign-in name>` in TF401027, not by display name.
    assert (
        "remote: TF401027: You need the Git 'GenericContribute' permission to perform this action. "
        f"Details: identity '{scenario.world.tenant_id}\\rita.reader@sandbox.example', scope 'repository'."
        in pushed.stderr
    )
    assert "The requested URL returned error: 403" in pushed.stderr


def test_no_read_permission_looks_like_a_missing_repository(scenario: Scenario) -> None:
    _, pat = scenario.user("Otto Outsider", "none")
    cloned = scenario.git(pat).clone(scenario.server.repo_url(scenario.repo), check=False)
    assert cloned.returncode == 128
    assert (
        "remote: TF401019: The Git repository with name or identifier fleet does not exist or you do not have permissions"
        in cloned.stderr
    )
    missing = scenario.git(scenario.admin_pat).clone(
        f"{scenario.server.org_url}/Fleet%20Project/_git/ghost", check=False
    )
    assert "TF401019: The Git repository with name or identifier ghost" in missing.stderr


def test_push_needs_the_code_write_scope(scenario: Scenario) -> None:
    seeded(scenario)
    read_only = scenario.world.issue_pat(scenario.contributor, ["vso.code"])
    git = scenario.git(read_only)
    assert git.clone(scenario.server.repo_url(scenario.repo)).returncode == 0
    git.commit("work", "s.txt", "s")
    pushed = git.push("work", "HEAD:refs/heads/main")
    assert pushed.returncode == 128
    assert (
        f"remote: TF400813: The user '{scenario.contributor.id}' is not authorized to access this resource."
        in pushed.stderr
    )


def test_create_branch_can_be_denied(scenario: Scenario) -> None:
    seeded(scenario)
    git = scenario.git(scenario.contributor_pat)
    git.clone(scenario.server.repo_url(scenario.repo))
    git.commit("work", "c.txt", "c")
    scenario.world.deny(
        scenario.contributor, f"repoV2/{scenario.project.id}/{scenario.repo.id}", GitPermission.CREATE_BRANCH
    )
    pushed = git.push("work", "HEAD:refs/heads/feature/x")
    assert pushed.returncode == 1
    # A ref that does not exist yet is reported with scope 'repository' (as for `az repos ref create`).
    assert (
        " ! [remote rejected] HEAD -> feature/x (TF401027: You need the Git 'CreateBranch' permission to perform "
        f"this action. Details: identity '{scenario.contributor.error_name}', scope 'repository'.)" in pushed.stderr
    )
    # An explicit allow on the closer branch token wins over the repository-level deny.
    scenario.world.allow(
        scenario.contributor,
        branch_token(scenario.project.id, scenario.repo.id, "feature/x"),
        GitPermission.CREATE_BRANCH,
    )
    assert git.push("work", "HEAD:refs/heads/feature/x").returncode == 0
    assert git.push("work", "HEAD:refs/heads/main").returncode == 0  # updating needs Contribute only


def test_branch_policy_rejects_direct_pushes_unless_exempt(scenario: Scenario) -> None:
    seeded(scenario)
    scenario.world.set_branch_policy(scenario.repo, "main")
    scenario.world.set_branch_policy(scenario.repo, "dev", required=False)
    git = scenario.git(scenario.contributor_pat)
    git.clone(scenario.server.repo_url(scenario.repo))
    git.commit("work", "p.txt", "p")
    pushed = git.push("work", "HEAD:refs/heads/main")
    assert pushed.returncode == 1
    assert (
        " ! [remote rejected] HEAD -> main (TF402455: Pushes to this branch are not permitted; you must use a pull request to update this branch.)"
        in pushed.stderr
    )
    assert git.push("work", "HEAD:refs/heads/topic").returncode == 0  # other branches are not protected
    assert git.push("work", "HEAD:refs/heads/dev").returncode == 0  # an optional policy does not block
    # PolicyExempt on another branch does not help; on the protected branch's own token it does.
    topic = branch_token(scenario.project.id, scenario.repo.id, "topic")
    scenario.world.allow(scenario.contributor, topic, GitPermission.POLICY_EXEMPT)
    assert "TF402455" in git.push("work", "HEAD:refs/heads/main").stderr
    main = branch_token(scenario.project.id, scenario.repo.id, "main")
    scenario.world.allow(scenario.contributor, main, GitPermission.POLICY_EXEMPT)
    assert git.push("work", "HEAD:refs/heads/main").returncode == 0


def test_rewriting_or_deleting_needs_force_push(scenario: Scenario) -> None:
    admin_git, _ = seeded(scenario)
    admin_git.commit("seed", "second.txt", "2")
    assert admin_git.push("seed", "HEAD:refs/heads/main").returncode == 0
    git = scenario.git(scenario.contributor_pat)
    git.clone(scenario.server.repo_url(scenario.repo))
    rewind = git.push("work", "HEAD~1:refs/heads/main", "--force")
    assert (
        " ! [remote rejected] HEAD~1 -> main (TF401027: You need the Git 'ForcePush' permission to perform this "
        f"action. Details: identity '{scenario.contributor.error_name}', scope 'branch'.)" in rewind.stderr
    )
    deleted = git.push("work", ":refs/heads/main")
    assert "(TF401027: You need the Git 'ForcePush' permission" in deleted.stderr
    scenario.world.allow(scenario.contributor, f"repoV2/{scenario.project.id}", GitPermission.FORCE_PUSH)
    assert git.push("work", "HEAD~1:refs/heads/main", "--force").returncode == 0
    heads = git.run("ls-remote", "--heads", "origin", cwd=git.tmp / "work", check=True).stdout
    assert git.run("rev-parse", "HEAD~1", cwd=git.tmp / "work").stdout.strip() in heads


def test_injected_503_fails_git_once_then_the_retry_works(scenario: Scenario) -> None:
    seeded(scenario)
    scenario.server.faults.fail_next(1, status=503, retry_after=1, path_contains="/_git/")
    git = scenario.git(scenario.contributor_pat)
    failed = git.clone(scenario.server.repo_url(scenario.repo), check=False)
    assert failed.returncode == 128 and "503" in failed.stderr
    assert git.clone(scenario.server.repo_url(scenario.repo), "second").returncode == 0
    assert scenario.server.faults.served_failures == 1


def test_dropped_push_connection_is_a_git_error(scenario: Scenario) -> None:
    git, _ = seeded(scenario)
    new = git.commit("seed", "d.txt", "d")
    scenario.server.faults.drop_next_push()
    dropped = git.push("seed", "HEAD:refs/heads/main")
    assert dropped.returncode != 0
    assert scenario.server.faults.dropped_pushes == 1
    assert git.run("ls-remote", "--heads", "origin", "main", cwd=git.tmp / "seed", check=True).stdout.split()[0] != new
    assert git.push("seed", "HEAD:refs/heads/main").returncode == 0
    assert git.run("ls-remote", "--heads", "origin", "main", cwd=git.tmp / "seed", check=True).stdout.split()[0] == new


def test_atomic_pushes_are_refused_by_the_client_and_no_gc_runs(scenario: Scenario) -> None:
    """Azure Repos does not support atomic pushes (appsmith#33054): git must refuse before sending anything."""
    git, commit = seeded(scenario)
    git.commit("seed", "atomic.txt", "a")
    atomic = git.push("seed", "HEAD:refs/heads/main", "--atomic")
    assert atomic.returncode != 0
    assert "the receiving end does not support --atomic push" in atomic.stderr
    heads = git.run("ls-remote", "--heads", "origin", cwd=git.tmp / "seed", check=True).stdout
    assert heads.split() == [commit, "refs/heads/main"]
    config = git.run("config", "--file", str(scenario.repo.git_dir / "config"), "--list", check=True).stdout
    assert {"receive.autogc=false", "gc.auto=0", "receive.advertiseatomic=false"} <= set(config.split())
    assert scenario.server.live_tickets == 0  # the seeding push's ticket ended with its request


def test_branch_level_contribute_is_enough_to_push_that_branch(scenario: Scenario) -> None:
    seeded(scenario)
    reader, pat = scenario.user("Rita Reader", "reader")
    main = branch_token(scenario.project.id, scenario.repo.id, "main")
    scenario.world.allow(reader, main, GitPermission.GENERIC_CONTRIBUTE)
    git = scenario.git(pat)
    git.clone(scenario.server.repo_url(scenario.repo))
    new = git.commit("work", "r.txt", "r")
    pushed = git.push("work", "HEAD:refs/heads/main")
    assert pushed.returncode == 0, pushed.stderr
    assert git.run("ls-remote", "origin", "refs/heads/main", cwd=git.tmp / "work").stdout.split()[0] == new
    # Other refs are still decided one by one: no CreateBranch for the reader.
    other = git.push("work", "HEAD:refs/heads/other")
    assert "(TF401027: You need the Git 'CreateBranch' permission" in other.stderr


def test_branch_creators_may_delete_their_branches_only(scenario: Scenario) -> None:
    seeded(scenario)
    carl = scenario.git(scenario.contributor_pat)
    carl.clone(scenario.server.repo_url(scenario.repo))
    carl.commit("work", "c.txt", "c")
    assert carl.push("work", "HEAD:refs/heads/carl-topic").returncode == 0
    dora, dora_pat = scenario.user("Dora Contributor")
    (scenario.tmp / "dora").mkdir()
    other = GitCli(scenario.tmp / "dora", dora_pat)
    other.clone(scenario.server.repo_url(scenario.repo))
    assert other.push("work", "HEAD:refs/heads/dora-topic").returncode == 0
    refused = other.push("work", ":refs/heads/carl-topic")
    assert (
        f"(TF401027: You need the Git 'ForcePush' permission to perform this action. Details: identity "
        f"'{dora.error_name}', scope 'branch'.)" in refused.stderr
    )
    assert other.push("work", ":refs/heads/dora-topic").returncode == 0  # her own branch
    assert carl.push("work", "HEAD~1:refs/heads/carl-topic", "--force").returncode == 0  # his own: rewrite too
    heads = carl.run("ls-remote", "--heads", "origin", cwd=carl.tmp / "work", check=True).stdout
    assert "refs/heads/dora-topic" not in heads and "refs/heads/carl-topic" in heads


def test_deleting_the_default_branch_leaves_none(scenario: Scenario) -> None:
    git, _ = seeded(scenario)  # the admin created main, so may delete it
    assert git.push("seed", "HEAD:refs/heads/other").returncode == 0
    assert scenario.repo.default_branch == "refs/heads/main"
    deleted = git.push("seed", ":refs/heads/main")
    assert deleted.returncode == 0, deleted.stderr
    assert scenario.repo.default_branch is None
    listed = git.run("ls-remote", "--symref", "origin", cwd=git.tmp / "seed", check=True).stdout
    assert "HEAD" not in listed and "refs/heads/other" in listed


def test_protected_branches_cannot_be_deleted_even_with_force_push(scenario: Scenario) -> None:
    git, _ = seeded(scenario)
    scenario.world.set_branch_policy(scenario.repo, "main")
    refused = git.push("seed", ":refs/heads/main")  # the admin holds ForcePush on main as its creator
    assert "[remote rejected] main (TF402455: Pushes to this branch are not permitted" in refused.stderr
    assert scenario.repo.default_branch == "refs/heads/main"


def test_tags_need_create_tag_and_moving_them_needs_force_push(scenario: Scenario) -> None:
    seeded(scenario)
    git = scenario.git(scenario.contributor_pat)
    git.clone(scenario.server.repo_url(scenario.repo))
    repo_token = f"repoV2/{scenario.project.id}/{scenario.repo.id}"
    scenario.world.deny(scenario.contributor, repo_token, GitPermission.CREATE_TAG)
    denied = git.push("work", "HEAD:refs/tags/v1")
    assert "[remote rejected] HEAD -> v1 (TF401027: You need the Git 'CreateTag' permission" in denied.stderr
    scenario.world.clear(scenario.contributor, repo_token, GitPermission.CREATE_TAG)
    assert git.push("work", "HEAD:refs/tags/v1").returncode == 0
    git.commit("work", "t.txt", "t")
    moved = git.push("work", "HEAD:refs/tags/v1", "--force")
    assert "[remote rejected] HEAD -> v1 (TF401027: You need the Git 'ForcePush' permission" in moved.stderr


def test_throttled_git_request_fails_with_429(scenario: Scenario) -> None:
    seeded(scenario)
    scenario.server.faults.fail_next(1, status=429, retry_after=1, path_contains="/_git/")
    git = scenario.git(scenario.contributor_pat)
    failed = git.clone(scenario.server.repo_url(scenario.repo), check=False)
    assert failed.returncode == 128 and "429" in failed.stderr
    assert git.clone(scenario.server.repo_url(scenario.repo), "second").returncode == 0


def test_project_less_url_needs_a_project_named_like_the_repository(scenario: Scenario) -> None:
    seeded(scenario)
    # `fleet` lives in project `Fleet Project`, so `/<org>/_git/fleet` names a project `fleet` that is not there.
    cloned = scenario.git(scenario.admin_pat).clone(f"{scenario.server.org_url}/_git/fleet", check=False)
    assert cloned.returncode == 128
    assert "TF401019: The Git repository with name or identifier fleet does not exist" in cloned.stderr
