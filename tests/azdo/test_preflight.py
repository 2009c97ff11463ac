"""The preflight against the sandbox: each situation a bootstrap meets, the verdict, and the fix it names.

Every case sets the sandbox up as the service would be (PAT scopes, ACLs, policies, branches) and checks the
report a person reads; nothing of our own is mocked.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from flux_azdo.azdo.credentials import AzureDevOpsToken
from flux_azdo.azdo.preflight import CheckReport, PreflightRequest, render_text, run_preflight
from flux_azdo.azdo.security import GitPermission, branch_token, project_token, repository_token
from flux_azdo.azdo.urls import parse_repository_url
from flux_azdo.sandbox.runtime import FULL_SCOPES, Sandbox
from flux_azdo.sandbox.world import Repository
from support.preflight import BUILD_SERVICE, https_request, item, job_token, keys, pat_token, ssh_request

NAMESPACE = "2e9eb7ed-3c0a-47d4-87c1-0ffdd275fd87"


def assert_every_failure_names_a_fix(report: CheckReport) -> None:
    for check in report.items:
        if check.status in ("fail", "warn"):
            assert check.fix, f"{check.key}: {check.message} has no fix"


def seed_branch(repository: Repository, sandbox: Sandbox, branch: str = "main") -> str:
    """One commit on `branch`, written straight into the bare repository, which then has a default branch."""
    env = {
        **os.environ,
        "GIT_DIR": str(repository.git_dir),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_AUTHOR_NAME": "Seed",
        "GIT_AUTHOR_EMAIL": "seed@example.com",
        "GIT_COMMITTER_NAME": "Seed",
        "GIT_COMMITTER_EMAIL": "seed@example.com",
    }

    def git(*args: str, stdin: str | None = None) -> str:
        done = subprocess.run(["git", *args], env=env, input=stdin, capture_output=True, text=True, check=True)
        return done.stdout.strip()

    blob = git("hash-object", "-w", "--stdin", stdin="hello\n")
    tree = git("mktree", stdin=f"100644 blob {blob}\tREADME.md\n")
    commit = git("commit-tree", tree, "-m", "seed")
    git("update-ref", f"refs/heads/{branch}", commit)
    sandbox.world.set_default_branch(repository, f"refs/heads/{branch}")
    return commit


# ----- PATs -----------------------------------------------------------------------------------------------------


def test_a_pat_with_every_right_is_ready(azdo_sandbox: Sandbox) -> None:
    report = run_preflight(https_request(azdo_sandbox, pat_token(azdo_sandbox.pat)))
    assert report.can_proceed and report.verdict == "ready", render_text(report)
    assert keys(report, "fail") == []
    assert item(report, "token").status == "ok"
    assert item(report, "identity").message == "authenticated as Sandbox Admin (user)"
    for scope in ("vso.project", "vso.code", "vso.code_write"):
        assert item(report, f"scope:{scope}").status == "ok"
    assert item(report, "repository").message == f"repository fleet-infra exists (empty): {azdo_sandbox.repo_url}"
    assert "the push creates main" in item(report, "branch").message
    for permission in ("GENERIC_READ", "GENERIC_CONTRIBUTE", "CREATE_BRANCH"):
        assert item(report, f"permission:{permission}").status == "ok"
    assert item(report, "git").message == f"git can read {azdo_sandbox.repo_url} over HTTP (empty repository)"
    # The PAT is going to be the cluster's credential (https, provider generic): it expires.
    expiry = item(report, "pat-expiry")
    assert expiry.status == "warn" and "--provider azure" in (expiry.fix or "")
    assert report.caller is not None and report.caller.display_name == "Sandbox Admin"
    assert report.repository is not None and report.repository.name == "fleet-infra"
    text = render_text(report)
    assert text.splitlines()[-1].startswith("✔ ready: nothing blocks a bootstrap of")


def test_a_pat_without_code_write_fails_naming_the_scope_and_the_page(azdo_sandbox: Sandbox) -> None:
    pat = azdo_sandbox.world.issue_pat(azdo_sandbox.user, ("vso.project", "vso.code"))
    report = run_preflight(https_request(azdo_sandbox, pat_token(pat)))
    assert not report.can_proceed
    assert keys(report, "fail") == ["scope:vso.code_write"]
    scope = item(report, "scope:vso.code_write")
    assert scope.message == "the PAT lacks the 'Code (Read & write)' scope (vso.code_write)"
    assert scope.fix == (
        f"edit the PAT at {azdo_sandbox.org_url}/_usersSettings/tokens and choose Custom defined > Code > Read & write"
    )
    # Reading still works, so everything else is checked and shown.
    assert item(report, "permission:GENERIC_CONTRIBUTE").status == "ok"
    assert item(report, "git").status == "ok"
    assert render_text(report).splitlines()[-1] == "✗ blocked: fix the 1 problem above, then run flux-azdo check again"


def test_a_pat_without_project_read_is_explained_and_the_repository_still_checked(azdo_sandbox: Sandbox) -> None:
    pat = azdo_sandbox.world.issue_pat(azdo_sandbox.user, ("vso.code_write",))
    report = run_preflight(https_request(azdo_sandbox, pat_token(pat)))
    assert keys(report, "fail") == ["scope:vso.project"]
    assert item(report, "scope:vso.project").fix == (
        f"edit the PAT at {azdo_sandbox.org_url}/_usersSettings/tokens and choose Custom defined > Project and Team > "
        "Read"
    )
    assert item(report, "project").status == "skip"
    assert item(report, "repository").status == "ok"


def test_an_expired_pat_fails_with_where_to_regenerate_it(azdo_sandbox: Sandbox) -> None:
    yesterday = datetime.now(timezone.utc) - timedelta(days=1)
    pat = azdo_sandbox.world.issue_pat(azdo_sandbox.user, FULL_SCOPES, expires=yesterday)
    report = run_preflight(https_request(azdo_sandbox, pat_token(pat)))
    assert not report.can_proceed
    token = item(report, "token")
    assert (token.status, token.message) == ("fail", "the PAT has expired")
    assert f"{azdo_sandbox.org_url}/_usersSettings/tokens" in (token.fix or "")
    assert item(report, "git").status == "skip"
    assert report.caller is None
    assert_every_failure_names_a_fix(report)


def test_an_unknown_token_is_refused(azdo_sandbox: Sandbox) -> None:
    report = run_preflight(https_request(azdo_sandbox, pat_token("not-a-real-token")))
    token = item(report, "token")
    assert (token.status, token.message) == (
        "fail",
        f"{azdo_sandbox.org_url} refused the token from GIT_PASSWORD: it is wrong, revoked, or for another organisation",
    )
    assert token.fix == (
        f"create a PAT at {azdo_sandbox.org_url}/_usersSettings/tokens and pass it (GIT_PASSWORD or --password-stdin)"
    )
    assert item(report, "git").message == "git access not tried: the token does not work (above)"


def test_no_token_for_an_https_url_fails_with_how_to_pass_one(azdo_sandbox: Sandbox) -> None:
    report = run_preflight(https_request(azdo_sandbox, None))
    token = item(report, "token")
    assert token.status == "fail" and "GIT_PASSWORD" in (token.fix or "")
    assert not report.can_proceed
    assert item(report, "git").status == "skip"  # one failure for one cause


# ----- the job token (build service) -----------------------------------------------------------------------------


def test_a_job_token_lacking_contribute_names_the_build_service_setting_and_command(azdo_sandbox: Sandbox) -> None:
    report = run_preflight(https_request(azdo_sandbox, job_token(azdo_sandbox.job_token)))
    assert not report.can_proceed
    assert item(report, "identity").message == (
        f"authenticated as {BUILD_SERVICE} (project build service: a pipeline's job token)"
    )
    assert not [i for i in report.items if i.key.startswith("scope:")]  # job tokens carry no PAT scopes
    assert keys(report, "fail") == ["permission:GENERIC_CONTRIBUTE", "permission:CREATE_BRANCH"]
    contribute = item(report, "permission:GENERIC_CONTRIBUTE")
    assert contribute.message.startswith(
        f"{BUILD_SERVICE} lacks Contribute (GenericContribute) on repository fleet-infra"
    )
    assert contribute.fix == (
        f'Project settings > Repositories > fleet-infra > Security > "{BUILD_SERVICE}" > Contribute: Allow'
    )
    project, repository = azdo_sandbox.project, azdo_sandbox.repository
    caller = report.caller
    assert caller is not None and caller.kind == "build-service" and caller.subject_descriptor
    assert contribute.command == (
        f"az devops security permission update --id {NAMESPACE} --subject {caller.subject_descriptor} "
        f"--token repoV2/{project.id}/{repository.id} --allow-bit 4 --org {azdo_sandbox.org_url}"
    )
    create_branch = item(report, "permission:CREATE_BRANCH")
    assert '"platform Build Service (sandbox-org)" > Create branch: Allow' in (create_branch.fix or "")
    assert "--allow-bit 16" in (create_branch.command or "")
    assert item(report, "permission:GENERIC_READ").status == "ok"
    assert item(report, "git").status == "ok"  # reading is allowed by default
    assert_every_failure_names_a_fix(report)


def test_the_command_a_failure_prints_is_the_grant_that_fixes_it(azdo_sandbox: Sandbox) -> None:
    """Apply exactly the token and bit the az command names, in the sandbox: the check then passes."""
    world, service = azdo_sandbox.world, azdo_sandbox.build_service
    before = run_preflight(https_request(azdo_sandbox, job_token(azdo_sandbox.job_token)))
    for key in ("permission:GENERIC_CONTRIBUTE", "permission:CREATE_BRANCH"):
        command = item(before, key).command or ""
        token = re.search(r"--token (\S+)", command)
        bit = re.search(r"--allow-bit (\d+)", command)
        assert token and bit
        world.allow(service, token.group(1), int(bit.group(1)))
    after = run_preflight(https_request(azdo_sandbox, job_token(azdo_sandbox.job_token)))
    assert after.can_proceed, render_text(after)


def test_a_job_token_granted_contribute_and_create_branch_is_ready_but_not_for_the_cluster(
    azdo_sandbox: Sandbox,
) -> None:
    world, project, repository = azdo_sandbox.world, azdo_sandbox.project, azdo_sandbox.repository
    world.allow(
        azdo_sandbox.build_service,
        repository_token(project.id, repository.id),
        GitPermission.GENERIC_CONTRIBUTE | GitPermission.CREATE_BRANCH,
    )
    report = run_preflight(https_request(azdo_sandbox, job_token(azdo_sandbox.job_token)))
    assert report.can_proceed, render_text(report)
    warning = item(report, "cluster-credential")
    assert warning.status == "warn"
    assert "must not be the cluster's credential" in warning.message
    assert (
        "PAT" in (warning.fix or "") and "SSH key" in (warning.fix or "") and "--provider azure" in (warning.fix or "")
    )
    # With workload identity for the cluster there is nothing to warn about.
    quiet = run_preflight(
        https_request(azdo_sandbox, job_token(azdo_sandbox.job_token), cluster_credential="workload-identity")
    )
    assert keys(quiet, "warn") == []


def test_a_revoked_job_token_says_the_job_has_ended(azdo_sandbox: Sandbox) -> None:
    azdo_sandbox.world.revoke_job_token(azdo_sandbox.job_token)
    report = run_preflight(https_request(azdo_sandbox, job_token(azdo_sandbox.job_token)))
    token = item(report, "token")
    assert token.status == "fail" and "while the job that issued it runs" in token.message
    assert "System.AccessToken" in (token.fix or "")


def test_a_branch_level_deny_is_fixed_on_the_branch(azdo_sandbox: Sandbox) -> None:
    world, project, repository = azdo_sandbox.world, azdo_sandbox.project, azdo_sandbox.repository
    branch = branch_token(project.id, repository.id, "main")
    world.deny(azdo_sandbox.user, branch, GitPermission.GENERIC_CONTRIBUTE)
    report = run_preflight(https_request(azdo_sandbox, pat_token(azdo_sandbox.pat)))
    contribute = item(report, "permission:GENERIC_CONTRIBUTE")
    assert contribute.status == "fail"
    assert "Branch security" in (contribute.fix or "") and '"Sandbox Admin" > Contribute: Allow' in (
        contribute.fix or ""
    )
    assert f"--token {branch} " in (contribute.command or "")


# ----- repositories ----------------------------------------------------------------------------------------------


def new_repository_url(sandbox: Sandbox, name: str = "new-fleet") -> str:
    return f"{sandbox.org_url}/platform/_git/{name}"


def test_a_missing_repository_with_create_repo_is_ready_for_the_admin(azdo_sandbox: Sandbox) -> None:
    request = https_request(
        azdo_sandbox, pat_token(azdo_sandbox.pat), url=new_repository_url(azdo_sandbox), create_repository=True
    )
    report = run_preflight(request)
    assert report.can_proceed, render_text(report)
    assert item(report, "repository").message == (
        "repository new-fleet does not exist in project platform: --create-repo will create it"
    )
    assert item(report, "scope:vso.code_manage").status == "ok"
    create = item(report, "permission:CREATE_REPOSITORY")
    assert create.status == "ok" and "project platform" in create.message
    assert report.repository is None
    # git cannot read a repository that is not there yet, so it is not asked to.
    assert item(report, "git").status == "skip"


def test_a_missing_repository_with_create_repo_fails_for_a_contributor(azdo_sandbox: Sandbox) -> None:
    world, project = azdo_sandbox.world, azdo_sandbox.project
    carl = world.add_user("Carl Contributor", project_rights="contributor")
    world.deny(carl, project_token(project.id), GitPermission.CREATE_REPOSITORY)
    pat = world.issue_pat(carl, FULL_SCOPES)
    request = https_request(azdo_sandbox, pat_token(pat), url=new_repository_url(azdo_sandbox), create_repository=True)
    report = run_preflight(request)
    assert not report.can_proceed
    create = item(report, "permission:CREATE_REPOSITORY")
    assert create.status == "fail"
    assert create.message.startswith("Carl Contributor lacks Create repository (CreateRepository) on project platform")
    assert create.fix == (
        'Project settings > Repositories > Security (all repositories) > "Carl Contributor" > Create repository: Allow'
    )
    assert f"--token repoV2/{project.id} --allow-bit 256" in (create.command or "")
    assert_every_failure_names_a_fix(report)


def test_a_pat_without_code_manage_cannot_create_the_repository(azdo_sandbox: Sandbox) -> None:
    pat = azdo_sandbox.world.issue_pat(azdo_sandbox.user, ("vso.project", "vso.code_write"))
    request = https_request(azdo_sandbox, pat_token(pat), url=new_repository_url(azdo_sandbox), create_repository=True)
    report = run_preflight(request)
    manage = item(report, "scope:vso.code_manage")
    assert manage.status == "fail"
    assert manage.message == "the PAT lacks the 'Code (Read, write, & manage)' scope (vso.code_manage)"
    assert (manage.fix or "").endswith("and choose Custom defined > Code > Read, write, & manage")


def test_a_missing_repository_without_create_repo_fails(azdo_sandbox: Sandbox) -> None:
    report = run_preflight(
        https_request(azdo_sandbox, pat_token(azdo_sandbox.pat), url=new_repository_url(azdo_sandbox))
    )
    assert not report.can_proceed
    repository = item(report, "repository")
    assert repository.status == "fail"
    assert repository.message == (
        "repository new-fleet does not exist in project platform (or Sandbox Admin may not read it: TF401019)"
    )
    # The admin may create it, and the PAT has the scope: the fix says so.
    assert repository.fix == "pass --create-repo (you may create it), or fix the repository name in --url"
    assert keys(report, "fail") == ["repository"]  # one cause, one line: git is not asked as well
    assert item(report, "git").message == "git access not tried: the repository is not there (above)"
    assert_every_failure_names_a_fix(report)


def test_a_missing_repository_without_create_repo_for_a_reader_says_who_can_create_it(azdo_sandbox: Sandbox) -> None:
    world = azdo_sandbox.world
    rita = world.add_user("Rita Reader", project_rights="reader")
    pat = world.issue_pat(rita, FULL_SCOPES)
    report = run_preflight(https_request(azdo_sandbox, pat_token(pat), url=new_repository_url(azdo_sandbox)))
    assert not report.can_proceed
    repository = item(report, "repository")
    assert repository.fix == (
        f"ask a project administrator of platform to create it at {azdo_sandbox.org_url}/platform/_git, or to grant "
        '"Rita Reader" Create repository (Project settings > Repositories > Security); or fix the repository name '
        "in --url"
    )
    assert "--create-repo" not in render_text(report)


def test_a_missing_project_fails_with_the_reason(azdo_sandbox: Sandbox) -> None:
    url = f"{azdo_sandbox.org_url}/nowhere/_git/fleet-infra"
    report = run_preflight(https_request(azdo_sandbox, pat_token(azdo_sandbox.pat), url=url))
    project = item(report, "project")
    assert project.status == "fail" and "'nowhere' does not exist" in project.message and "404" in project.message
    assert "_projects" in (project.fix or "")


# ----- branches and policies -------------------------------------------------------------------------------------


def test_a_protected_branch_needs_policy_exempt_then_passes_once_allowed(azdo_sandbox: Sandbox) -> None:
    world, project, repository = azdo_sandbox.world, azdo_sandbox.project, azdo_sandbox.repository
    seed_branch(repository, azdo_sandbox)
    world.set_branch_policy(repository, "main")
    report = run_preflight(https_request(azdo_sandbox, pat_token(azdo_sandbox.pat)))
    assert not report.can_proceed
    exempt = item(report, "permission:POLICY_EXEMPT")
    assert exempt.status == "fail"
    assert "'Minimum number of reviewers'" in exempt.message and "TF402455" in exempt.message
    assert '"Sandbox Admin" > Bypass policies when pushing: Allow' in (exempt.fix or "")
    assert "pull request" in (exempt.fix or "")
    assert "--allow-bit 128" in (exempt.command or "")
    world.allow(azdo_sandbox.user, repository_token(project.id, repository.id), GitPermission.POLICY_EXEMPT)
    allowed = run_preflight(https_request(azdo_sandbox, pat_token(azdo_sandbox.pat)))
    assert allowed.can_proceed, render_text(allowed)
    assert item(allowed, "permission:POLICY_EXEMPT").status == "ok"


def test_an_optional_policy_does_not_ask_for_policy_exempt(azdo_sandbox: Sandbox) -> None:
    azdo_sandbox.world.set_branch_policy(azdo_sandbox.repository, "main", required=False)
    report = run_preflight(https_request(azdo_sandbox, pat_token(azdo_sandbox.pat)))
    assert report.can_proceed
    assert not [i for i in report.items if i.key == "permission:POLICY_EXEMPT"]


def test_a_missing_branch_in_a_non_empty_repository(azdo_sandbox: Sandbox) -> None:
    commit = seed_branch(azdo_sandbox.repository, azdo_sandbox)
    without = run_preflight(https_request(azdo_sandbox, pat_token(azdo_sandbox.pat), branch="clusters"))
    assert not without.can_proceed
    branch = item(without, "branch")
    assert branch.status == "fail"
    assert branch.message.startswith("branch clusters does not exist in fleet-infra (its default branch is main)")
    assert branch.fix == "pass --create-branch to create clusters from main, or pass --branch main"
    with_flag = run_preflight(
        https_request(azdo_sandbox, pat_token(azdo_sandbox.pat), branch="clusters", create_branch=True)
    )
    assert with_flag.can_proceed, render_text(with_flag)
    assert "--create-branch will create it from main" in item(with_flag, "branch").message
    assert item(with_flag, "permission:CREATE_BRANCH").status == "ok"
    existing = run_preflight(https_request(azdo_sandbox, pat_token(azdo_sandbox.pat)))
    assert item(existing, "branch").message == f"branch main exists (at {commit[:7]})"
    assert "permission:CREATE_BRANCH" not in [i.key for i in existing.items]


# ----- SSH -------------------------------------------------------------------------------------------------------


def test_ssh_with_the_sandbox_rsa_key_is_ready(ssh_sandbox: Sandbox) -> None:
    assert ssh_sandbox.ssh_key_path is not None
    key = ssh_sandbox.ssh_key_path.read_bytes()
    api = AzureDevOpsToken(ssh_sandbox.pat, "basic", "environment", "AZURE_DEVOPS_EXT_PAT")
    report = run_preflight(ssh_request(ssh_sandbox, key, api_token=api))
    assert report.can_proceed, render_text(report)
    assert item(report, "ssh-key").message.startswith("the SSH key is RSA 3072 (SHA256:")
    assert item(report, "git").message == f"git can read {ssh_sandbox.ssh_url} over SSH (RSA 3072) (empty repository)"
    assert item(report, "ssh-identity").message == (
        "the permissions below are those of Sandbox Admin, the owner of AZURE_DEVOPS_EXT_PAT; the push uses the SSH "
        "key, which must belong to Sandbox Admin"
    )
    assert keys(report, "warn") == []  # the cluster gets the SSH key, not the PAT


def test_ssh_without_an_api_token_skips_the_rest_checks_and_still_reads_with_git(ssh_sandbox: Sandbox) -> None:
    assert ssh_sandbox.ssh_key_path is not None
    report = run_preflight(ssh_request(ssh_sandbox, ssh_sandbox.ssh_key_path.read_bytes(), api_token=None))
    assert report.can_proceed, render_text(report)
    assert item(report, "token").status == "skip"
    warning = item(report, "push-permissions")
    assert warning.status == "warn" and warning.message.startswith("push permissions not verified: ")
    assert "AZURE_DEVOPS_EXT_PAT" in (warning.fix or "")
    assert item(report, "git").status == "ok"
    assert item(report, "branch").message == "the repository is empty: the push creates main"
    assert render_text(report).splitlines()[-1] == (
        f"✔ ready as far as checked (1 check skipped): nothing found blocks a bootstrap of {ssh_sandbox.ssh_url} on "
        "branch main (1 warning above)"
    )


def test_an_ed25519_key_fails_before_connecting(ssh_sandbox: Sandbox) -> None:
    key = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    api = AzureDevOpsToken(ssh_sandbox.pat, "basic", "environment", "AZURE_DEVOPS_EXT_PAT")
    report = run_preflight(ssh_request(ssh_sandbox, key, api_token=api))
    assert not report.can_proceed
    ssh_key = item(report, "ssh-key")
    assert ssh_key.status == "fail" and "ssh-keygen -t rsa" in (ssh_key.fix or "")
    git = item(report, "git")
    assert (git.status, git.message) == ("skip", "git access over SSH not tried: Azure DevOps refuses this key")


# ----- reads only ------------------------------------------------------------------------------------------------


def snapshot(sandbox: Sandbox) -> dict[str, Any]:
    """Everything a preflight could change: repositories, their refs, ACLs, policies, PATs that still work."""
    world = sandbox.world
    state: dict[str, Any] = {}
    for repository in world.repositories():
        refs = subprocess.run(
            ["git", "for-each-ref", "--format=%(refname) %(objectname)"],
            env={**os.environ, "GIT_DIR": str(repository.git_dir)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        state[f"repo {repository.project.name}/{repository.name}"] = (repository.default_branch, refs)
    bits = [int(bit) for bit in GitPermission]
    for identity in world.identities():
        for project in world.projects():
            tokens = [project_token(project.id)]
            for repository in world.repositories(project):
                tokens += [
                    repository_token(project.id, repository.id),
                    branch_token(project.id, repository.id, "main"),
                ]
            state[f"acl {identity.display_name} {project.name}"] = [
                world.has_permission(identity, token, bit) for token in tokens for bit in bits
            ]
    for project in world.projects():
        state[f"policies {project.name}"] = [(p.id, p.blocking) for p in world.branch_policies(project)]
    return state


def harmless_posts(lines: list[str]) -> list[str]:
    """POSTs that are not a permission evaluation, a scope probe or a git fetch (upload-pack)."""
    allowed = (
        re.compile(r"/_apis/Security/PermissionEvaluationBatch$", re.I),
        re.compile(r"/_apis/git/repositories/[^/]+/refs$", re.I),
        re.compile(r"/_apis/git/repositories/?$", re.I),
        re.compile(r"/git-upload-pack$"),
    )
    return [line for line in lines if line.startswith("POST ") and not any(p.search(line) for p in allowed)]


@pytest.mark.parametrize("scenario", ["admin", "job-token", "create-repo", "protected"])
def test_check_writes_nothing(azdo_sandbox: Sandbox, scenario: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="flux_azdo.sandbox.azure_devops.server")
    world = azdo_sandbox.world
    if scenario == "protected":
        seed_branch(azdo_sandbox.repository, azdo_sandbox)
        world.set_branch_policy(azdo_sandbox.repository, "main")
    before = snapshot(azdo_sandbox)
    if scenario == "job-token":
        request = https_request(azdo_sandbox, job_token(azdo_sandbox.job_token))
    elif scenario == "create-repo":
        request = https_request(
            azdo_sandbox, pat_token(azdo_sandbox.pat), url=new_repository_url(azdo_sandbox), create_repository=True
        )
    else:
        request = https_request(azdo_sandbox, pat_token(azdo_sandbox.pat))
    run_preflight(request)
    assert snapshot(azdo_sandbox) == before
    lines = [
        f"{m.group(1)} {m.group(2).split('?')[0]}"
        for m in (re.search(r'"([A-Z]+) (\S+) HTTP', r.getMessage()) for r in caplog.records)
        if m
    ]
    assert any(line.startswith("GET ") for line in lines), lines  # the log does show the traffic
    assert harmless_posts(lines) == [], lines
    assert not [line for line in lines if line.split()[0] in ("PUT", "PATCH", "DELETE")]
    assert not [line for line in lines if "git-receive-pack" in line]


def test_a_disabled_repository_blocks_with_the_setting_to_change(azdo_sandbox: Sandbox) -> None:
    azdo_sandbox.world.disable_repository(azdo_sandbox.repository)
    token = AzureDevOpsToken(azdo_sandbox.pat, "basic", "password", "GIT_PASSWORD")
    request = PreflightRequest(url=parse_repository_url(azdo_sandbox.repo_url, allow_insecure_http=True), token=token)
    report = run_preflight(request)
    repository = next(item for item in report.items if item.key == "repository")
    assert repository.status == "fail" and "disabled" in repository.message
    assert repository.fix is not None and "fleet-infra" in repository.fix
    assert not report.can_proceed
