"""Workspace over HTTPS against the sandbox Azure DevOps: states, commits only on change, pushes, mapped errors."""

from __future__ import annotations

import os
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from git_checks import fresh_clone, git_out, job_auth, pat_auth, remote_heads

from flux_azdo.azdo.security import GitPermission, repository_token
from flux_azdo.errors import UserError
from flux_azdo.git import (
    Author,
    BranchNotFound,
    BranchPolicyRejected,
    Change,
    ChangeProducer,
    GitAuthenticationFailed,
    GitError,
    GitPermissionDenied,
    PushConflict,
    RepositoryNotFound,
    Workspace,
    git_environment,
    remote_state,
)
from flux_azdo.sandbox.runtime import Sandbox
from support.azdo_world import GitCli


def files(**content: str | None) -> list[Change]:
    return [Change("Add Flux sync manifests", {k.replace("__", "/"): v for k, v in content.items()})]


def producing(*changes: Change) -> ChangeProducer:
    return lambda root: list(changes)


def seed(sandbox: Sandbox, tmp: Path, content: dict[str, str | None], branch: str = "main") -> str:
    with Workspace(sandbox.repo_url, branch, pat_auth(sandbox), temp_parent=tmp) as workspace:
        result = workspace.publish(lambda root: [Change("seed", content)])
    assert result.pushed and result.head is not None
    return result.head


def test_empty_repository_first_push_creates_the_branch(azdo_sandbox: Sandbox, tmp_path: Path) -> None:
    with Workspace(azdo_sandbox.repo_url, "main", pat_auth(azdo_sandbox), temp_parent=tmp_path) as workspace:
        assert (workspace.state, workspace.head, workspace.default_branch) == ("empty", None, None)
        assert workspace.read("clusters/dev/flux-system/gotk-sync.yaml") is None
        message = "Add Flux sync manifests\n\n[skip ci]"
        result = workspace.publish(
            lambda root: [Change(message, {"clusters/dev/flux-system/gotk-sync.yaml": "kind: GitRepository\n"})]
        )
    assert result.pushed and result.created_branch and result.attempts == 1
    assert [c.message for c in result.commits] == [message]
    assert remote_heads(azdo_sandbox) == {"main": result.head}
    assert azdo_sandbox.repository.default_branch == "refs/heads/main"
    clone = fresh_clone(azdo_sandbox, tmp_path)
    assert (clone / "clusters/dev/flux-system/gotk-sync.yaml").read_text() == "kind: GitRepository\n"
    # Flux's default identity: name Flux, empty email, committer the same; the message kept byte for byte.
    assert git_out(clone, "log", "--format=%an <%ae>|%cn <%ce>|%B").strip() == f"Flux <>|Flux <>|{message}"


def test_existing_branch_commits_only_on_change(azdo_sandbox: Sandbox, tmp_path: Path) -> None:
    base = seed(azdo_sandbox, tmp_path, {"README.md": "fleet\n"})
    auth = pat_auth(azdo_sandbox)
    with Workspace(azdo_sandbox.repo_url, "main", auth, temp_parent=tmp_path) as workspace:
        assert (workspace.state, workspace.head, workspace.default_branch) == ("existing", base, "main")
        assert workspace.read("README.md") == "fleet\n"
        components = Change("Add Flux v2.6.0 component manifests", {"clusters/a/gotk-components.yaml": "c\n"})
        sync = Change("Add Flux sync manifests", {"clusters/a/gotk-sync.yaml": "s\n", "README.md": "fleet\n"})
        first = workspace.publish(lambda root: [components, sync])
        assert first.pushed and not first.created_branch
        assert [c.message for c in first.commits] == [components.message, sync.message]
        again = workspace.publish(lambda root: [components, sync])
        assert (again.pushed, again.commits, again.head) == (False, (), first.head)
    # A new run with the same content: nothing to commit, nothing pushed.
    with Workspace(azdo_sandbox.repo_url, "main", auth, temp_parent=tmp_path) as workspace:
        rerun = workspace.publish(lambda root: [components, sync])
    assert (rerun.pushed, rerun.commits, rerun.head) == (False, (), first.head)
    clone = fresh_clone(azdo_sandbox, tmp_path)
    assert git_out(clone, "rev-list", "--count", "HEAD").strip() == "3"


def test_delete_and_custom_author(azdo_sandbox: Sandbox, tmp_path: Path) -> None:
    seed(azdo_sandbox, tmp_path, {"clusters/old/a.yaml": "a\n", "clusters/old/b.yaml": "b\n", "keep.txt": "k\n"})
    author = Author("Fleet Bot", "fleet-bot@example.com")
    with Workspace(
        azdo_sandbox.repo_url, "main", pat_auth(azdo_sandbox), author=author, temp_parent=tmp_path
    ) as workspace:
        result = workspace.publish(
            lambda root: [Change("Remove old cluster", {"clusters/old": None, "gone.txt": None, "new.txt": "n\n"})]
        )
    assert result.pushed and len(result.commits) == 1
    clone = fresh_clone(azdo_sandbox, tmp_path)
    assert not (clone / "clusters/old").exists()
    assert sorted(p.name for p in clone.iterdir() if p.name != ".git") == ["keep.txt", "new.txt"]
    assert git_out(clone, "log", "-1", "--format=%an <%ae>|%cn <%ce>").strip() == (
        "Fleet Bot <fleet-bot@example.com>|Fleet Bot <fleet-bot@example.com>"
    )


def test_missing_branch_without_create_branch_is_a_clear_error(azdo_sandbox: Sandbox, tmp_path: Path) -> None:
    seed(azdo_sandbox, tmp_path, {"README.md": "x\n"})
    with pytest.raises(BranchNotFound) as caught:
        Workspace(azdo_sandbox.repo_url, "flux", pat_auth(azdo_sandbox), temp_parent=tmp_path)
    assert caught.value.message == (
        f"branch 'flux' does not exist in {azdo_sandbox.repo_url}: pass --create-branch to create it from 'main'"
    )
    assert not list(tmp_path.glob("flux-azdo-*"))  # the checkout was removed with the error


def test_missing_branch_with_create_branch_starts_from_the_default(azdo_sandbox: Sandbox, tmp_path: Path) -> None:
    base = seed(azdo_sandbox, tmp_path, {"README.md": "from main\n"})
    with Workspace(
        azdo_sandbox.repo_url, "flux/bootstrap", pat_auth(azdo_sandbox), create_branch=True, temp_parent=tmp_path
    ) as workspace:
        assert (workspace.state, workspace.head, workspace.default_branch) == ("new-branch", base, "main")
        assert workspace.read("README.md") == "from main\n"
        result = workspace.publish(lambda root: files(clusters__a__sync="s\n"))
    assert result.pushed and result.created_branch
    heads = remote_heads(azdo_sandbox)
    assert heads["main"] == base and heads["flux/bootstrap"] == result.head
    clone = fresh_clone(azdo_sandbox, tmp_path, "flux/bootstrap")
    assert git_out(clone, "rev-parse", "HEAD~1").strip() == base


def test_new_branch_without_changes_is_still_created(azdo_sandbox: Sandbox, tmp_path: Path) -> None:
    base = seed(azdo_sandbox, tmp_path, {"README.md": "x\n"})
    with Workspace(
        azdo_sandbox.repo_url, "staging", pat_auth(azdo_sandbox), create_branch=True, temp_parent=tmp_path
    ) as workspace:
        result = workspace.publish(lambda root: [Change("nothing", {"README.md": "x\n"})])
    assert (result.pushed, result.created_branch, result.commits, result.head) == (True, True, (), base)
    assert remote_heads(azdo_sandbox) == {"main": base, "staging": base}


def test_remote_state_lists_default_branch_and_heads(azdo_sandbox: Sandbox, tmp_path: Path) -> None:
    assert remote_state(azdo_sandbox.repo_url, pat_auth(azdo_sandbox)).heads == {}
    head = seed(azdo_sandbox, tmp_path, {"a": "a"})
    state = remote_state(azdo_sandbox.repo_url, pat_auth(azdo_sandbox))
    assert (state.default_branch, dict(state.heads)) == ("main", {"main": head})


@pytest.mark.parametrize("scheme", ["basic", "bearer"])
def test_job_token_pushes_once_the_build_service_may_contribute(
    azdo_sandbox: Sandbox, tmp_path: Path, scheme: str
) -> None:
    token = repository_token(azdo_sandbox.project.id, azdo_sandbox.repository.id)
    bits = GitPermission.GENERIC_CONTRIBUTE | GitPermission.CREATE_BRANCH
    azdo_sandbox.world.allow(azdo_sandbox.build_service, token, bits)
    with Workspace(azdo_sandbox.repo_url, "main", job_auth(azdo_sandbox, scheme), temp_parent=tmp_path) as workspace:
        result = workspace.publish(lambda root: files(clusters__ci__sync="ci\n"))
    assert result.pushed and remote_heads(azdo_sandbox) == {"main": result.head}


def test_job_token_without_contribute_names_the_permission(azdo_sandbox: Sandbox, tmp_path: Path) -> None:
    seed(azdo_sandbox, tmp_path, {"a": "a"})
    with (
        Workspace(azdo_sandbox.repo_url, "main", job_auth(azdo_sandbox), temp_parent=tmp_path) as workspace,
        pytest.raises(GitPermissionDenied) as caught,
    ):
        workspace.publish(lambda root: files(b="b"))
    assert caught.value.permission == "GenericContribute"
    assert "'Contribute' (GenericContribute)" in caught.value.message
    assert "Security" in caught.value.message and "Build Service" in caught.value.message
    assert caught.value.identity == f"Build\\{azdo_sandbox.project.id}"


def test_contribute_without_create_branch_names_create_branch(azdo_sandbox: Sandbox, tmp_path: Path) -> None:
    token = repository_token(azdo_sandbox.project.id, azdo_sandbox.repository.id)
    azdo_sandbox.world.allow(azdo_sandbox.build_service, token, GitPermission.GENERIC_CONTRIBUTE)
    with (
        Workspace(azdo_sandbox.repo_url, "main", job_auth(azdo_sandbox), temp_parent=tmp_path) as workspace,
        pytest.raises(GitPermissionDenied) as caught,
    ):
        workspace.publish(lambda root: files(b="b"))
    assert caught.value.permission == "CreateBranch" and "'Create branch'" in caught.value.message
    assert remote_heads(azdo_sandbox) == {}


def test_wrong_token_is_authentication_failed(azdo_sandbox: Sandbox, tmp_path: Path) -> None:
    wrong = "x" * 52
    with pytest.raises(GitAuthenticationFailed) as caught:
        Workspace(azdo_sandbox.repo_url, "main", pat_auth(azdo_sandbox, wrong), temp_parent=tmp_path)
    assert "the token was rejected: wrong, expired or revoked" in caught.value.message
    assert wrong not in str(caught.value) and "Basic" not in str(caught.value)
    assert not list(tmp_path.glob("flux-azdo-*"))


def test_expired_pat_and_revoked_job_token(azdo_sandbox: Sandbox, tmp_path: Path) -> None:
    world = azdo_sandbox.world
    expired = world.issue_pat(azdo_sandbox.user, ("vso.code_write",), expires=datetime.now(timezone.utc) - timedelta(1))
    with pytest.raises(GitAuthenticationFailed, match="the token has expired"):
        remote_state(azdo_sandbox.repo_url, pat_auth(azdo_sandbox, expired))
    world.revoke_job_token(azdo_sandbox.job_token)
    with pytest.raises(GitAuthenticationFailed, match="job token ends with its job"):
        remote_state(azdo_sandbox.repo_url, job_auth(azdo_sandbox))


def test_pat_without_code_write_scope_can_read_but_not_push(azdo_sandbox: Sandbox, tmp_path: Path) -> None:
    seed(azdo_sandbox, tmp_path, {"a": "a"})
    read_only = azdo_sandbox.world.issue_pat(azdo_sandbox.user, ("vso.code",))
    with (
        Workspace(azdo_sandbox.repo_url, "main", pat_auth(azdo_sandbox, read_only), temp_parent=tmp_path) as ws,
        pytest.raises(GitAuthenticationFailed, match=r"lacks the scope .*Code \(Read & write\)"),
    ):
        ws.publish(lambda root: files(b="b"))


def test_branch_policy_rejection_names_policy_exempt(azdo_sandbox: Sandbox, tmp_path: Path) -> None:
    head = seed(azdo_sandbox, tmp_path, {"a": "a"})
    azdo_sandbox.world.set_branch_policy(azdo_sandbox.repository, "main")
    with (
        Workspace(azdo_sandbox.repo_url, "main", pat_auth(azdo_sandbox), temp_parent=tmp_path) as workspace,
        pytest.raises(BranchPolicyRejected) as caught,
    ):
        workspace.publish(lambda root: files(b="b"))
    assert "TF402455" in caught.value.message
    assert "'Bypass policies when pushing' (PolicyExempt)" in caught.value.message
    assert "pull request" in caught.value.message
    assert remote_heads(azdo_sandbox) == {"main": head}


def test_missing_repository(azdo_sandbox: Sandbox, tmp_path: Path) -> None:
    url = azdo_sandbox.repo_url.replace("fleet-infra", "no-such-repo")
    with pytest.raises(RepositoryNotFound, match="does not exist or this identity may not read it"):
        Workspace(url, "main", pat_auth(azdo_sandbox), temp_parent=tmp_path)


def test_concurrent_push_is_retried_on_top_of_the_other(azdo_sandbox: Sandbox, tmp_path: Path) -> None:
    seed(azdo_sandbox, tmp_path, {"clusters/shared.txt": "seed\n"})
    auth = pat_auth(azdo_sandbox)
    seen: list[str | None] = []

    def append(name: str):  # type: ignore[no-untyped-def]
        def produce(root: Path) -> list[Change]:
            current = (root / "clusters/shared.txt").read_text()
            seen.append(current)
            return [Change(f"add {name}", {"clusters/shared.txt": current + f"{name}\n", f"clusters/{name}": name})]

        return produce

    retries: list[tuple[int, str]] = []
    with (
        Workspace(azdo_sandbox.repo_url, "main", auth, temp_parent=tmp_path) as first,
        Workspace(azdo_sandbox.repo_url, "main", auth, temp_parent=tmp_path) as second,
    ):
        assert first.publish(append("one")).pushed
        result = second.publish(append("two"), on_retry=lambda n, why: retries.append((n, why)))
    assert result.pushed and result.attempts == 2
    assert [n for n, _ in retries] == [2] and "the branch moved" in retries[0][1]
    # The second writer produced again on the first one's work: nothing lost, nothing forced.
    assert seen == ["seed\n", "seed\n", "seed\none\n"]
    clone = fresh_clone(azdo_sandbox, tmp_path)
    assert (clone / "clusters/shared.txt").read_text() == "seed\none\ntwo\n"
    assert git_out(clone, "log", "--format=%s").split("\n")[:3] == ["add two", "add one", "seed"]


def test_two_writers_on_an_empty_repository(azdo_sandbox: Sandbox, tmp_path: Path) -> None:
    auth = pat_auth(azdo_sandbox)
    with (
        Workspace(azdo_sandbox.repo_url, "main", auth, temp_parent=tmp_path) as first,
        Workspace(azdo_sandbox.repo_url, "main", auth, temp_parent=tmp_path) as second,
    ):
        assert first.state == second.state == "empty"
        one = first.publish(lambda root: files(clusters__one="1\n"))
        two = second.publish(lambda root: files(clusters__two="2\n"))
    assert one.created_branch and not two.created_branch and two.attempts == 2
    clone = fresh_clone(azdo_sandbox, tmp_path)
    assert sorted(p.name for p in (clone / "clusters").iterdir()) == ["one", "two"]
    assert git_out(clone, "rev-list", "--count", "HEAD").strip() == "2"


def test_conflicts_beyond_max_attempts_end_in_push_conflict(azdo_sandbox: Sandbox, tmp_path: Path) -> None:
    seed(azdo_sandbox, tmp_path, {"a": "a"})
    auth = pat_auth(azdo_sandbox)
    with Workspace(azdo_sandbox.repo_url, "main", auth, temp_parent=tmp_path, max_attempts=1, retry_deadline=0) as late:
        seed(azdo_sandbox, tmp_path, {"b": "b"})
        with pytest.raises(PushConflict, match="rejected 1 time .*others keep pushing to it.*run the command again"):
            late.publish(lambda root: files(c="c"))


def test_conflicts_are_retried_past_max_attempts_until_the_deadline(azdo_sandbox: Sandbox, tmp_path: Path) -> None:
    """The budget is time with a floor: one attempt allowed, but the deadline still has room for a second."""
    seed(azdo_sandbox, tmp_path, {"a": "a"})
    auth = pat_auth(azdo_sandbox)
    with Workspace(azdo_sandbox.repo_url, "main", auth, temp_parent=tmp_path, max_attempts=1) as late:
        seed(azdo_sandbox, tmp_path, {"b": "b"})
        result = late.publish(lambda root: files(c="c"))
    assert result.pushed and result.attempts == 2


def test_dropped_push_connection_is_retried_and_lands(azdo_sandbox: Sandbox, tmp_path: Path) -> None:
    seed(azdo_sandbox, tmp_path, {"a": "a"})
    retries: list[str] = []
    with Workspace(azdo_sandbox.repo_url, "main", pat_auth(azdo_sandbox), temp_parent=tmp_path) as workspace:
        azdo_sandbox.azdo.faults.drop_next_push()
        result = workspace.publish(lambda root: files(b="b"), on_retry=lambda n, why: retries.append(why))
    assert azdo_sandbox.azdo.faults.dropped_pushes == 1
    assert result.pushed and result.attempts == 2 and len(retries) == 1
    assert "the connection failed" in retries[0]
    assert remote_heads(azdo_sandbox)["main"] == result.head
    assert (fresh_clone(azdo_sandbox, tmp_path) / "b").read_text() == "b"


def count_commits(sandbox: Sandbox, tmp: Path, name: str) -> dict[str, int]:
    """Commit subject -> how many commits on main carry it."""
    subjects = git_out(fresh_clone(sandbox, tmp, name=name), "log", "--format=%s").splitlines()
    return {subject: subjects.count(subject) for subject in subjects}


def test_a_push_whose_reply_was_lost_is_reported_once_and_not_repeated(azdo_sandbox: Sandbox, tmp_path: Path) -> None:
    """The server applies the push and drops the connection before git reads the result (on an empty repository,
    so the push also created the branch)."""
    produced: list[str] = []

    def produce(root: Path) -> list[Change]:
        produced.append("once")
        return [Change("Add Flux sync manifests", {"clusters/dev/sync.yaml": "s\n"})]

    retries: list[str] = []
    with Workspace(azdo_sandbox.repo_url, "main", pat_auth(azdo_sandbox), temp_parent=tmp_path) as workspace:
        azdo_sandbox.azdo.faults.drop_after_next_push()
        result = workspace.publish(produce, on_retry=lambda n, why: retries.append(why))
        assert workspace.head == result.head
    assert azdo_sandbox.azdo.faults.dropped_push_replies == 1
    assert len(retries) == 1 and "the connection failed" in retries[0]
    assert (result.pushed, result.created_branch, result.attempts, len(produced)) == (True, True, 1, 1)
    assert [c.sha for c in result.commits] == [result.head] and remote_heads(azdo_sandbox) == {"main": result.head}
    assert count_commits(azdo_sandbox, tmp_path, "verify") == {"Add Flux sync manifests": 1}


def test_a_lost_reply_with_others_pushing_on_top_is_still_ours(azdo_sandbox: Sandbox, tmp_path: Path) -> None:
    """Before we look again, somebody pushes on top of our landed commit: it is in the history, not the head."""
    base = seed(azdo_sandbox, tmp_path, {"README.md": "fleet\n"})
    (tmp_path / "other").mkdir()
    other = GitCli(tmp_path / "other", azdo_sandbox.pat)
    clone = tmp_path / "other" / "work"

    def push_on_top(attempt: int, reason: str) -> None:
        other.run("clone", "--quiet", "--branch", "main", azdo_sandbox.repo_url, str(clone), check=True)
        (clone / "theirs.txt").write_text("theirs\n")
        other.run("add", "theirs.txt", cwd=clone, check=True)
        other.run("commit", "--quiet", "-m", "theirs", cwd=clone, check=True)
        other.run("push", "--quiet", "origin", "HEAD:refs/heads/main", cwd=clone, check=True)

    with Workspace(azdo_sandbox.repo_url, "main", pat_auth(azdo_sandbox), temp_parent=tmp_path) as workspace:
        azdo_sandbox.azdo.faults.drop_after_next_push()
        result = workspace.publish(lambda root: files(clusters__ours="ours\n"), on_retry=push_on_top)
        assert workspace.read("theirs.txt") == "theirs\n"  # the checkout follows the remote
    theirs = remote_heads(azdo_sandbox)["main"]
    assert result.pushed and not result.created_branch and result.attempts == 1
    assert result.head != theirs and [c.sha for c in result.commits] == [result.head]
    verify = fresh_clone(azdo_sandbox, tmp_path, name="verify")
    assert git_out(verify, "rev-list", "HEAD").split() == [theirs, result.head, base]


def test_a_failing_fetch_between_attempts_is_retried(azdo_sandbox: Sandbox, tmp_path: Path) -> None:
    """The branch moved, and the fetch of its new head meets a 503 once: fetched again, published on top."""
    seed(azdo_sandbox, tmp_path, {"a": "a"})
    with Workspace(azdo_sandbox.repo_url, "main", pat_auth(azdo_sandbox), temp_parent=tmp_path) as workspace:
        moved = seed(azdo_sandbox, tmp_path, {"b": "b"})
        azdo_sandbox.azdo.faults.fail_next(1, 503, retry_after=None, path_contains="git-upload-pack", method="POST")
        result = workspace.publish(lambda root: files(c="c"))
    assert azdo_sandbox.azdo.faults.served_failures == 1
    assert result.pushed and result.attempts == 2
    verify = fresh_clone(azdo_sandbox, tmp_path, name="verify")
    assert git_out(verify, "rev-parse", "HEAD~1").strip() == moved


def test_a_server_that_keeps_failing_ends_the_run_saying_so(azdo_sandbox: Sandbox, tmp_path: Path) -> None:
    seed(azdo_sandbox, tmp_path, {"a": "a"})
    retries: list[int] = []
    with Workspace(azdo_sandbox.repo_url, "main", pat_auth(azdo_sandbox), temp_parent=tmp_path) as workspace:
        azdo_sandbox.azdo.faults.fail_next(50, 503, retry_after=None, path_contains="git-receive-pack")
        with pytest.raises(GitError) as caught:
            workspace.publish(lambda root: files(c="c"), on_retry=lambda n, why: retries.append(n))
    azdo_sandbox.azdo.faults.reset()
    assert type(caught.value) is GitError and caught.value.transient
    assert retries == [2, 3, 4, 5]  # five failures in a row, then the server is deemed down
    assert "failed 5 times, and the server failed 5 times in a row" in caught.value.message
    assert "check the server's status" in caught.value.message


def test_a_branch_the_server_cannot_update_is_not_called_a_conflict(azdo_sandbox: Sandbox, tmp_path: Path) -> None:
    """A lock file left in the server's repository: every push is rejected as a conflict (TF401028), yet the branch
    never moves. That ends after five tries as a server fault, not after the whole retry deadline."""
    head = seed(azdo_sandbox, tmp_path, {"a": "a"})
    (azdo_sandbox.repository.git_dir / "refs" / "heads" / "main.lock").write_text("")
    retries: list[str] = []
    with (
        Workspace(azdo_sandbox.repo_url, "main", pat_auth(azdo_sandbox), temp_parent=tmp_path) as workspace,
        pytest.raises(GitError) as caught,
    ):
        workspace.publish(lambda root: files(b="b"), on_retry=lambda n, why: retries.append(why))
    assert type(caught.value) is GitError and len(retries) == 5
    assert all("the branch moved" in why and "TF401028" in why for why in retries)
    message = caught.value.message
    assert "failed 5 times: the server rejected the update as a conflict, but the branch did not move" in message
    assert "a fault on the server, not a conflict" in message
    assert remote_heads(azdo_sandbox) == {"main": head}


def test_paths_outside_the_checkout_are_refused(azdo_sandbox: Sandbox, tmp_path: Path) -> None:
    with Workspace(azdo_sandbox.repo_url, "main", pat_auth(azdo_sandbox), temp_parent=tmp_path) as workspace:
        for bad in ("../escape", "/etc/passwd", ".git/config", "a/../../b", "sub/.GIT/hooks/x", ""):
            with pytest.raises(UserError):
                workspace.publish(producing(Change("bad", {bad: "x"})))
        (workspace.root / "link").symlink_to(tmp_path)
        with pytest.raises(UserError, match="symbolic link"):
            workspace.publish(lambda root: [Change("bad", {"link/x": "x"})])
    assert not (tmp_path / "escape").exists() and not (tmp_path / "x").exists()
    assert remote_heads(azdo_sandbox) == {}


def test_invalid_branch_names_fail_before_any_process(azdo_sandbox: Sandbox, tmp_path: Path) -> None:
    for bad in ("", "-x", "a..b", "a b", "x.lock", "a/", "/a", "a~1", "@", "HEAD", "a/.b", "a:b", "a\\b"):
        with pytest.raises(UserError, match="not a valid branch name"):
            Workspace(azdo_sandbox.repo_url, bad, pat_auth(azdo_sandbox), temp_parent=tmp_path)
    assert not list(tmp_path.glob("flux-azdo-*"))
    with pytest.raises(UserError, match="author needs a name"):
        Workspace(azdo_sandbox.repo_url, "main", pat_auth(azdo_sandbox), author=Author("", "x@example.com"))


def test_users_git_configuration_and_environment_do_not_apply(
    azdo_sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ~/.gitconfig or GIT_* variables could send the token elsewhere or act on another repository."""
    home = tmp_path / "home"
    home.mkdir()
    decoy = tmp_path / "decoy"
    (home / ".gitconfig").write_text(
        f'[url "{decoy}/"]\n\tinsteadOf = {azdo_sandbox.org_url}/\n[credential]\n\thelper = store\n'
        "[user]\n\tname = Someone Else\n"
    )
    other = tmp_path / "other-repo"
    other.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(other))
    monkeypatch.setenv("GIT_INDEX_FILE", str(other / "index"))
    monkeypatch.setenv("GIT_CONFIG_PARAMETERS", f"'url.{decoy}/.insteadof'='{azdo_sandbox.org_url}/'")
    monkeypatch.setenv("GIT_TRACE_CURL", str(tmp_path / "curl-trace"))
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Someone Else")
    with Workspace(azdo_sandbox.repo_url, "main", pat_auth(azdo_sandbox), temp_parent=tmp_path) as workspace:
        result = workspace.publish(lambda root: files(a="a\n"))
    assert result.pushed
    assert not decoy.exists() and not (tmp_path / "curl-trace").exists() and not (home / ".git-credentials").exists()
    assert list(other.iterdir()) == []
    for name in ("HOME", "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_CONFIG_PARAMETERS", "GIT_TRACE_CURL"):
        monkeypatch.delenv(name)
    clone = fresh_clone(azdo_sandbox, tmp_path)
    assert git_out(clone, "log", "-1", "--format=%an").strip() == "Flux"


def test_proxy_variables_still_reach_git(
    azdo_sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Users behind a proxy set HTTPS_PROXY/http_proxy; those are kept (here: a proxy that is not there)."""
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    with pytest.raises(UserError) as caught:
        remote_state(azdo_sandbox.repo_url, pat_auth(azdo_sandbox), timeout=20)
    assert "cannot reach the server" in caught.value.message
    assert "Failed to connect to 127.0.0.1 port 9 " in caught.value.message  # the proxy, not the sandbox
    assert os.environ["http_proxy"] == "http://127.0.0.1:9"


def test_token_goes_to_this_repository_only(azdo_sandbox: Sandbox, tmp_path: Path) -> None:
    """The header is scoped to the repository's URL: the same server under another name, and another repository
    on the same server (one the token could read), get no credentials."""
    sibling = azdo_sandbox.world.create_repository(azdo_sandbox.project, "fleet-infra-2")
    assert sibling.name == "fleet-infra-2"
    another_host = azdo_sandbox.repo_url.replace("127.0.0.1", "localhost")
    another_repository = azdo_sandbox.repo_url + "-2"
    with git_environment(azdo_sandbox.repo_url, pat_auth(azdo_sandbox)) as env:
        keys = [env[f"GIT_CONFIG_KEY_{i}"] for i in range(int(env["GIT_CONFIG_COUNT"]))]

        def ls_remote(url: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(["git", "ls-remote", url], env=env, capture_output=True, text=True)

        same, host, repository = (ls_remote(u) for u in (azdo_sandbox.repo_url, another_host, another_repository))
    assert f"http.{azdo_sandbox.repo_url}.extraHeader" in keys
    assert not any(key.lower() == "http.extraheader" for key in keys)
    assert same.returncode == 0, same.stderr
    assert host.returncode == 128 and "Authentication failed" in host.stderr
    assert repository.returncode == 128 and "Authentication failed" in repository.stderr
    # The control: with the header, the sibling repository is readable.
    assert GitCli(tmp_path, azdo_sandbox.pat).run("ls-remote", another_repository).returncode == 0
