"""The preflight against the sandbox for the identities and failures that need a fix other than "grant it":
job tokens of another project or of the collection, an API token that is not the SSH key's owner, an SSH key the
server does not know, and an outage of the permission API. Nothing of our own is mocked.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from flux_azdo.azdo.credentials import AzureDevOpsToken
from flux_azdo.azdo.preflight import render_text, run_preflight
from flux_azdo.sandbox.runtime import Sandbox
from support.preflight import BUILD_SERVICE, https_request, item, job_token, keys, ssh_request


def test_a_job_token_of_another_project_gets_the_job_scope_fix(azdo_sandbox: Sandbox) -> None:
    world = azdo_sandbox.world
    apps = world.add_project("apps")
    token = world.issue_job_token(world.build_service(apps))
    report = run_preflight(https_request(azdo_sandbox, job_token(token)))
    assert not report.can_proceed
    assert item(report, "identity").message == (
        "authenticated as apps Build Service (sandbox-org) (project build service: a pipeline's job token)"
    )
    assert keys(report, "fail") == ["project"]
    project = item(report, "project")
    assert project.message == (
        "project platform is not visible to apps Build Service (sandbox-org): it does not exist, or the job token may "
        "not reach it"
    )
    fix = project.fix or ""
    assert fix.startswith('grant "apps Build Service (sandbox-org)" access in project platform')
    assert '"Limit job authorization scope to current project for non-release pipelines"' in fix
    assert '"Protect access to repositories in YAML pipelines"' in fix
    assert '"Project Collection Build Service (sandbox-org)"' in fix
    # git would only fail again, with a fix that contradicts this one (--create-repo): it is not asked.
    assert item(report, "git").message == "git access not tried: the project is not there (above)"
    text = render_text(report)
    assert "--create-repo" not in text and "regenerate" not in text


def test_the_collection_build_service_lacking_contribute_is_named(azdo_sandbox: Sandbox) -> None:
    world = azdo_sandbox.world
    token = world.issue_job_token(world.collection_build_service())
    report = run_preflight(https_request(azdo_sandbox, job_token(token)))
    assert not report.can_proceed
    caller = report.caller
    assert caller is not None and caller.kind == "collection-build-service"
    contribute = item(report, "permission:GENERIC_CONTRIBUTE")
    assert contribute.status == "fail"
    assert (contribute.fix or "").startswith(
        'Project settings > Repositories > fleet-infra > Security > "Project Collection Build Service (sandbox-org)" '
        "> Contribute: Allow (the job runs as the collection's build service"
    )
    assert "--subject svc." in (contribute.command or "")


def test_ssh_with_a_job_token_checks_the_wrong_identity_and_says_so(ssh_sandbox: Sandbox) -> None:
    """The key is the admin's; SYSTEM_ACCESSTOKEN is the build service's: its missing rights do not block."""
    assert ssh_sandbox.ssh_key_path is not None
    key = ssh_sandbox.ssh_key_path.read_bytes()
    report = run_preflight(ssh_request(ssh_sandbox, key, api_token=job_token(ssh_sandbox.job_token)))
    assert report.can_proceed, render_text(report)
    note = item(report, "ssh-identity")
    assert note.status == "warn"
    assert note.message == (
        f"the permissions below are those of {BUILD_SERVICE}, the owner of SYSTEM_ACCESSTOKEN, but the push uses the "
        "SSH key, which a build service cannot own: what the key's owner may do is not checked"
    )
    assert keys(report, "fail") == []
    for key_name in ("permission:GENERIC_CONTRIBUTE", "permission:CREATE_BRANCH"):
        warning = item(report, key_name)
        assert warning.status == "warn"
        assert warning.message.startswith(f"{BUILD_SERVICE} lacks ")
        assert f"the push uses the SSH key, and {BUILD_SERVICE} cannot be its owner" in warning.message
        assert warning.command is None
        assert "SSH key's owner" in (warning.fix or "")
    assert item(report, "git").status == "ok"  # the key itself reads the repository


def test_an_unregistered_rsa_key_points_to_the_ssh_keys_page(ssh_sandbox: Sandbox) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    report = run_preflight(ssh_request(ssh_sandbox, stranger, api_token=None))
    assert not report.can_proceed
    assert item(report, "ssh-key").status == "ok"
    git = item(report, "git")
    assert git.status == "fail" and "refused the SSH key" in git.message
    assert git.fix == (
        f"add the public key of --private-key-file (its .pub) at {ssh_sandbox.org_url}/_usersSettings/keys, signed in "
        "as the account that should push"
    )


def test_a_503_on_the_permission_batch_is_retried(azdo_sandbox: Sandbox) -> None:
    azdo_sandbox.azdo.faults.fail_next(1, retry_after=0, path_contains="PermissionEvaluationBatch")
    pat = AzureDevOpsToken(azdo_sandbox.pat, "basic", "password", "GIT_PASSWORD")
    report = run_preflight(https_request(azdo_sandbox, pat))
    assert azdo_sandbox.azdo.faults.served_failures == 1
    assert report.can_proceed, render_text(report)
    assert item(report, "permission:GENERIC_CONTRIBUTE").status == "ok"


def test_a_permission_api_that_stays_down_is_one_clear_failure(azdo_sandbox: Sandbox) -> None:
    azdo_sandbox.azdo.faults.fail_next(20, retry_after=0, path_contains="PermissionEvaluationBatch")
    pat = AzureDevOpsToken(azdo_sandbox.pat, "basic", "password", "GIT_PASSWORD")
    report = run_preflight(https_request(azdo_sandbox, pat))
    assert not report.can_proceed
    assert keys(report, "fail") == ["permissions"]
    failure = item(report, "permissions")
    assert "503" in failure.message and "evaluate Git permissions" in failure.message
    assert failure.fix and "--timeout" not in failure.fix
    assert item(report, "repository").status == "ok" and item(report, "git").status == "ok"
