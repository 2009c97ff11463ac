"""The preflight's decisions as plain functions of a request and the facts gathered for it.

Each case builds the facts a situation produces (real `Caller`, `RepositoryInfo`, error and `RemoteState`
values, no mocks, no network) and checks the lines a person would read. The sandbox tests in test_preflight.py
check that `gather` produces such facts from a live service; these pin down the wording and the rules,
including situations the sandbox cannot produce (an inconclusive probe, a TLS failure, a build service without
a subject descriptor).
"""

from __future__ import annotations

from dataclasses import replace

from flux_azdo.azdo.credentials import AzureDevOpsToken
from flux_azdo.azdo.errors import AuthenticationFailed, NotFound, Unavailable
from flux_azdo.azdo.models import BranchPolicy, Caller, ProjectInfo, RepositoryInfo
from flux_azdo.azdo.preflight import (
    Answer,
    Facts,
    PreflightRequest,
    credential_kind,
    decide,
    render_text,
)
from flux_azdo.azdo.preflight.git_access import plan_git
from flux_azdo.azdo.security import GitPermission, branch_token, project_token, repository_token
from flux_azdo.azdo.urls import parse_repository_url
from flux_azdo.git.auth import SshAuth
from flux_azdo.git.ssh import SshKeyInfo
from flux_azdo.git.workspace import RemoteState
from support.preflight import item, keys

ORG = "https://dev.azure.com/contoso"
HTTPS_URL = f"{ORG}/platform/_git/fleet-infra"
SSH_URL = "ssh://git@ssh.dev.azure.com/v3/contoso/platform/fleet-infra"
PROJECT = ProjectInfo("11111111-1111-1111-1111-111111111111", "platform")
OTHER_PROJECT_ID = "22222222-2222-2222-2222-222222222222"
COLLECTION_ID = "33333333-3333-3333-3333-333333333333"
REPOSITORY = RepositoryInfo(
    id="44444444-4444-4444-4444-444444444444",
    name="fleet-infra",
    project_id=PROJECT.id,
    project_name=PROJECT.name,
    default_branch="main",
    remote_url=HTTPS_URL,
    ssh_url="git@ssh.dev.azure.com:v3/contoso/platform/fleet-infra",
    web_url=HTTPS_URL,
    is_disabled=False,
)
ADMIN = Caller(
    id="a1",
    display_name="Ada Admin",
    descriptor="Microsoft.IdentityModel.Claims.ClaimsIdentity;tenant\\ada@contoso.com",
    subject_descriptor="aad.YWRh",
    unique_name="ada@contoso.com",
    kind="user",
    build_scope_id=None,
)
BUILD = Caller(
    id="b1",
    display_name="platform Build Service (contoso)",
    descriptor=f"Microsoft.TeamFoundation.ServiceIdentity;org:Build:{PROJECT.id}",
    subject_descriptor="svc.YnVpbGQ",
    unique_name=f"Build\\{PROJECT.id}",
    kind="build-service",
    build_scope_id=PROJECT.id,
)
APPS_BUILD = replace(
    BUILD,
    id="b2",
    display_name="apps Build Service (contoso)",
    build_scope_id=OTHER_PROJECT_ID,
    descriptor=f"Microsoft.TeamFoundation.ServiceIdentity;org:Build:{OTHER_PROJECT_ID}",
)
COLLECTION_BUILD = replace(
    BUILD,
    id="b3",
    display_name="Project Collection Build Service (contoso)",
    kind="collection-build-service",
    build_scope_id=COLLECTION_ID,
)
PAT = AzureDevOpsToken("p" * 52, "basic", "password", "GIT_PASSWORD")
API_PAT = AzureDevOpsToken("p" * 52, "basic", "environment", "AZURE_DEVOPS_EXT_PAT")
JOB = AzureDevOpsToken("j" * 60, "bearer", "job-token", "SYSTEM_ACCESSTOKEN")
ENTRA = AzureDevOpsToken("e" * 60, "bearer", "entra", "DefaultAzureCredential")
RSA = SshKeyInfo("rsa", 4096, "SHA256:abc")
ON_BRANCH = branch_token(PROJECT.id, REPOSITORY.id, "main")
ON_REPOSITORY = repository_token(PROJECT.id, REPOSITORY.id)
ON_PROJECT = project_token(PROJECT.id)
Grants = dict[tuple[str, int], bool]


def https(token: AzureDevOpsToken | None = PAT, url: str = HTTPS_URL, **options: object) -> PreflightRequest:
    return PreflightRequest(url=parse_repository_url(url), token=token, **options)  # type: ignore[arg-type]


def ssh(token: AzureDevOpsToken | None, *, key: SshKeyInfo | None = RSA, url: str = SSH_URL) -> PreflightRequest:
    auth = SshAuth(b"key bytes", None, "ssh.dev.azure.com ssh-rsa AAAA\n") if key is not None else None
    return PreflightRequest(
        url=parse_repository_url(url), token=token, git_auth=auth, ssh_key=key, cluster_credential="ssh"
    )


def grants(*allowed: tuple[str, GitPermission], on: tuple[str, ...] = (ON_BRANCH, ON_REPOSITORY)) -> Grants:
    """Answers for every bit on `on`: True for the (token, bit) pairs in `allowed`."""
    bits = (
        GitPermission.GENERIC_READ,
        GitPermission.GENERIC_CONTRIBUTE,
        GitPermission.CREATE_BRANCH,
        GitPermission.POLICY_EXEMPT,
        GitPermission.CREATE_REPOSITORY,
    )
    wanted = {(token, int(bit)) for token, bit in allowed}
    return {(token, int(bit)): (token, int(bit)) in wanted for token in on for bit in bits}


READ_AND_CONTRIBUTE = grants(
    (ON_BRANCH, GitPermission.GENERIC_READ),
    (ON_REPOSITORY, GitPermission.GENERIC_READ),
    (ON_BRANCH, GitPermission.GENERIC_CONTRIBUTE),
    (ON_REPOSITORY, GitPermission.GENERIC_CONTRIBUTE),
)
READ_ONLY = grants((ON_BRANCH, GitPermission.GENERIC_READ), (ON_REPOSITORY, GitPermission.GENERIC_READ))


def existing(caller: Caller, granted: Grants, **changes: object) -> Facts:
    """The facts for an existing repository whose main branch exists."""
    facts = Facts(
        caller=Answer(caller),
        project=Answer(PROJECT),
        repository=Answer(REPOSITORY),
        branch_head=Answer("abcdef1234567"),
        policies=Answer(()),
        permissions=Answer(granted),
        remote=Answer(RemoteState("main", {"main": "abcdef1234567"})),
    )
    return replace(facts, **changes)  # type: ignore[arg-type]


# ----- what the token is -------------------------------------------------------------------------------------------


def test_the_token_kind_is_decided_from_its_source_and_its_identity() -> None:
    assert credential_kind(PAT, None) == "pat"
    assert credential_kind(PAT, ADMIN) == "pat"
    assert credential_kind(PAT, BUILD) == "job-token"  # a job token passed as GIT_PASSWORD
    assert credential_kind(JOB, None) == "job-token"
    assert credential_kind(ENTRA, ADMIN) == "entra"
    other = replace(ADMIN, kind="other")
    assert credential_kind(PAT, other) == "token"


# ----- nothing about the push checked (B4) -------------------------------------------------------------------------


def test_ssh_without_an_api_token_is_ready_only_as_far_as_checked() -> None:
    report = decide(ssh(None, key=None), Facts())
    assert report.can_proceed and report.verdict == "ready"
    assert keys(report, "skip") == ["token", "git"]
    warning = item(report, "push-permissions")
    assert warning.status == "warn"
    assert warning.message == (
        "push permissions not verified: no API token for Azure DevOps (git uses the SSH key; the API needs a token)"
    )
    assert warning.fix == (
        "set AZURE_DEVOPS_EXT_PAT to a PAT of the SSH key's owner with Project and Team (Read) and Code (Read & write), "
        "or pass --entra-auth signed in as that owner"
    )
    assert render_text(report).splitlines()[-1] == (
        f"✔ ready as far as checked (2 checks skipped): nothing found blocks a bootstrap of {SSH_URL} on branch main "
        "(1 warning above)"
    )
    assert report.to_json()["skipped"] == 2


def test_ssh_to_a_server_without_organization_asks_for_it() -> None:
    url = "ssh://git@tfs.example.com:22/DefaultCollection/platform/_git/fleet-infra"
    report = decide(ssh(API_PAT, url=url), Facts(remote=Answer(RemoteState(None, {}))))
    warning = item(report, "push-permissions")
    assert warning.status == "warn" and "the REST API address cannot be derived" in warning.message
    assert warning.fix == "pass --organization with the collection URL, e.g. https://server/tfs/DefaultCollection"


def test_a_ready_verdict_with_everything_checked_says_plainly_ready() -> None:
    report = decide(https(), existing(ADMIN, READ_AND_CONTRIBUTE, write_scope=Answer(True)))
    assert keys(report, "skip") == [] and keys(report, "fail") == []
    assert render_text(report).splitlines()[-1] == (
        f"✔ ready: nothing blocks a bootstrap of {HTTPS_URL} on branch main (1 warning above)"
    )


# ----- whose permissions (B3) --------------------------------------------------------------------------------------


def test_over_ssh_a_user_token_speaks_for_the_key_owner_and_says_so() -> None:
    report = decide(ssh(API_PAT), existing(ADMIN, READ_ONLY, write_scope=Answer(True)))
    note = item(report, "ssh-identity")
    assert note.status == "ok"
    assert note.message == (
        "the permissions below are those of Ada Admin, the owner of AZURE_DEVOPS_EXT_PAT; the push uses the SSH key, "
        "which must belong to Ada Admin"
    )
    assert item(report, "permission:GENERIC_CONTRIBUTE").status == "fail"  # Ada is assumed to push: it blocks
    assert not report.can_proceed


def test_over_ssh_a_job_token_cannot_speak_for_the_key_owner() -> None:
    report = decide(ssh(JOB), existing(BUILD, READ_ONLY))
    assert report.can_proceed, render_text(report)
    note = item(report, "ssh-identity")
    assert note.status == "warn"
    assert note.message == (
        "the permissions below are those of platform Build Service (contoso), the owner of SYSTEM_ACCESSTOKEN, but the "
        "push uses the SSH key, which a build service cannot own: what the key's owner may do is not checked"
    )
    contribute = item(report, "permission:GENERIC_CONTRIBUTE")
    assert contribute.status == "warn"
    assert contribute.message.startswith("platform Build Service (contoso) lacks Contribute (GenericContribute)")
    assert contribute.message.endswith(
        "; not a blocker: the push uses the SSH key, and platform Build Service (contoso) cannot be its owner "
        "(a build service has no SSH keys)"
    )
    assert contribute.command is None  # the command would grant the wrong identity
    assert "SSH key's owner" in (contribute.fix or "") and "AZURE_DEVOPS_EXT_PAT" in (contribute.fix or "")


def test_over_ssh_a_job_token_that_cannot_see_the_project_still_lets_git_decide() -> None:
    facts = Facts(caller=Answer(APPS_BUILD), project=Answer(None))
    request = ssh(JOB)
    assert plan_git(request, facts).run  # the key's owner may well see it
    report = decide(request, replace(facts, remote=Answer(RemoteState("main", {"main": "abcdef1"}))))
    assert item(report, "project").status == "warn"
    assert item(report, "git").status == "ok"
    assert report.can_proceed


# ----- job tokens: the fix is the job's reach, not a PAT (I1) -------------------------------------------------------


def test_a_job_token_of_another_project_gets_the_job_scope_fix_and_no_git_line_contradicting_it() -> None:
    facts = Facts(caller=Answer(APPS_BUILD), project=Answer(None))
    request = https(JOB)
    assert not plan_git(request, facts).run
    report = decide(request, facts)
    project = item(report, "project")
    assert project.status == "fail"
    assert project.message == (
        "project platform is not visible to apps Build Service (contoso): it does not exist, or the job token may "
        "not reach it"
    )
    fix = project.fix or ""
    assert fix.startswith(
        'grant "apps Build Service (contoso)" access in project platform (Project settings > Repositories > '
        'fleet-infra > Security > "apps Build Service (contoso)" > Read and Contribute: Allow)'
    )
    assert '"Protect access to repositories in YAML pipelines"' in fix
    assert '"Limit job authorization scope to current project for non-release pipelines"' in fix
    assert '"Limit job authorization scope to current project for release pipelines"' in fix
    assert '"Project Collection Build Service (contoso)"' in fix
    git = item(report, "git")
    assert (git.status, git.message) == ("skip", "git access not tried: the project is not there (above)")
    text = render_text(report)
    assert "regenerate" not in text and "--create-repo" not in text


def test_a_job_token_that_cannot_see_a_repository_of_its_own_project_is_told_to_reference_it() -> None:
    facts = Facts(caller=Answer(BUILD), project=Answer(PROJECT), repository=Answer(None))
    report = decide(https(JOB), facts)
    repository = item(report, "repository")
    assert repository.status == "fail"
    assert repository.message == (
        "repository fleet-infra is not visible to platform Build Service (contoso) in project platform: it does not "
        "exist, or the job token may not reach it"
    )
    assert (repository.fix or "").startswith(
        "if it exists, reference the repository in the pipeline (a `checkout:` step or `uses: repositories:`): with "
        '"Protect access to repositories in YAML pipelines" on'
    )
    assert item(report, "git").status == "skip"


def test_a_401_for_a_job_token_or_an_entra_token_never_says_regenerate_the_pat() -> None:
    refused = AuthenticationFailed("refused", "not-authorized", fix="regenerate the PAT (wrong for this token)")
    facts = Facts(caller=Answer(APPS_BUILD), project=Answer(error=refused), repository=Answer(error=refused))
    report = decide(https(JOB), facts)
    assert "Limit job authorization scope" in (item(report, "project").fix or "")
    entra = decide(
        https(ENTRA),
        Facts(caller=Answer(ADMIN), project=Answer(error=AuthenticationFailed("no access", "not-authorized"))),
    )
    project = item(entra, "project")
    assert project.status == "fail" and "PAT" not in (project.fix or "") and "sign in again" in (project.fix or "")


def test_the_collection_build_service_fix_names_it_and_the_scope_setting() -> None:
    report = decide(https(JOB), existing(COLLECTION_BUILD, READ_ONLY))
    contribute = item(report, "permission:GENERIC_CONTRIBUTE")
    assert contribute.fix == (
        'Project settings > Repositories > fleet-infra > Security > "Project Collection Build Service (contoso)" > '
        "Contribute: Allow (the job runs as the collection's build service because \"Limit job authorization scope "
        'to current project for non-release pipelines" is off; with it on, grant "<Project> Build Service '
        '(<organization>)" instead)'
    )


def test_a_build_service_of_another_project_lacking_contribute_is_also_told_to_reference_the_repository() -> None:
    report = decide(https(JOB), existing(APPS_BUILD, READ_ONLY))
    fix = item(report, "permission:GENERIC_CONTRIBUTE").fix or ""
    assert fix.startswith('Project settings > Repositories > fleet-infra > Security > "apps Build Service (contoso)"')
    assert fix.endswith(
        "; the job token is of another project, so also reference the repository in the pipeline (a `checkout:` step "
        'or `uses: repositories:`), which "Protect access to repositories in YAML pipelines" requires'
    )


# ----- errors carry their own fix (I2) ------------------------------------------------------------------------------


def test_an_error_s_own_fix_is_used() -> None:
    tls = Unavailable(
        "the TLS connection to https://dev.azure.com/contoso failed while trying to evaluate Git permissions",
        fix="set REQUESTS_CA_BUNDLE to the CA certificate of the TLS-inspecting proxy",
    )
    report = decide(https(), existing(ADMIN, {}, permissions=Answer(error=tls), write_scope=Answer(True)))
    permissions = item(report, "permissions")
    assert (permissions.status, permissions.message, permissions.fix) == ("fail", tls.message, tls.fix)
    assert "--timeout" not in render_text(report)


# ----- a missing repository (I3) ------------------------------------------------------------------------------------


def missing_repository(caller: Caller, may_create: bool, scope: bool | None = True) -> Facts:
    return Facts(
        caller=Answer(caller),
        project=Answer(PROJECT),
        repository=Answer(None),
        manage_scope=Answer(scope),
        permissions=Answer(
            grants(*([(ON_PROJECT, GitPermission.CREATE_REPOSITORY)] if may_create else []), on=(ON_PROJECT,))
        ),
    )


def test_a_missing_repository_says_whether_you_may_create_it() -> None:
    may = item(decide(https(), missing_repository(ADMIN, True)), "repository")
    assert may.status == "fail"
    assert may.fix == "pass --create-repo (you may create it), or fix the repository name in --url"
    may_not = item(decide(https(), missing_repository(ADMIN, False)), "repository")
    assert may_not.fix == (
        f'ask a project administrator of platform to create it at {ORG}/platform/_git, or to grant "Ada Admin" '
        "Create repository (Project settings > Repositories > Security); or fix the repository name in --url"
    )
    no_scope = item(decide(https(), missing_repository(ADMIN, True, scope=False)), "repository")
    assert no_scope.fix == (
        "pass --create-repo (you may create it) after choosing Custom defined > Code > Read, write, & manage on the "
        f"PAT at {ORG}/_usersSettings/tokens, or fix the repository name in --url"
    )


# ----- scope probes (I5) --------------------------------------------------------------------------------------------


def test_an_inconclusive_scope_probe_is_a_warning() -> None:
    report = decide(https(), existing(ADMIN, READ_AND_CONTRIBUTE, write_scope=Answer(None)))
    scope = item(report, "scope:vso.code_write")
    assert scope.status == "warn"
    assert scope.message.startswith(
        "could not tell whether the PAT has the 'Code (Read & write)' scope (vso.code_write)"
    )
    assert scope.fix == (
        f"check the PAT at {ORG}/_usersSettings/tokens: Custom defined > Code > Read & write must be chosen"
    )
    assert report.can_proceed


# ----- the az command (I6) ------------------------------------------------------------------------------------------


def test_the_az_command_uses_the_subject_descriptor_or_a_sign_in_name_or_nothing() -> None:
    with_descriptor = decide(https(JOB), existing(BUILD, READ_ONLY))
    assert "--subject svc.YnVpbGQ " in (item(with_descriptor, "permission:GENERIC_CONTRIBUTE").command or "")
    by_mail = decide(https(), existing(replace(ADMIN, subject_descriptor=None), READ_ONLY, write_scope=Answer(True)))
    assert "--subject ada@contoso.com " in (item(by_mail, "permission:GENERIC_CONTRIBUTE").command or "")
    nameless = decide(https(JOB), existing(replace(BUILD, subject_descriptor=None), READ_ONLY))
    contribute = item(nameless, "permission:GENERIC_CONTRIBUTE")
    assert contribute.status == "fail" and contribute.command is None and contribute.fix
    assert "Microsoft.TeamFoundation" not in render_text(nameless)


# ----- the details a person needs ------------------------------------------------------------------------------------


def test_a_project_less_url_says_where_the_project_name_came_from() -> None:
    url = f"{ORG}/_git/platform"
    repository = replace(REPOSITORY, name="platform")
    facts = existing(ADMIN, {}, repository=Answer(repository), permissions=None, write_scope=Answer(True))
    report = decide(https(url=url), facts)
    assert item(report, "project").message == (
        "project platform exists (the URL names no project: its name was taken from the repository name)"
    )


def test_the_repository_line_shows_the_default_branch_and_the_web_address() -> None:
    report = decide(https(), existing(ADMIN, READ_AND_CONTRIBUTE, write_scope=Answer(True)))
    assert item(report, "repository").message == f"repository fleet-infra exists (default branch main): {HTTPS_URL}"


def test_a_blocking_policy_asks_for_bypass_on_the_branch() -> None:
    policy = BranchPolicy(1, "Minimum number of reviewers", True)
    report = decide(https(), existing(ADMIN, READ_AND_CONTRIBUTE, policies=Answer((policy,)), write_scope=Answer(True)))
    exempt = item(report, "permission:POLICY_EXEMPT")
    assert exempt.status == "fail" and "'Minimum number of reviewers'" in exempt.message


def test_git_is_not_asked_when_the_token_was_refused() -> None:
    refused = AuthenticationFailed("the token was rejected", "invalid")
    facts = Facts(caller=Answer(error=refused))
    assert not plan_git(https(), facts).run
    report = decide(https(), facts)
    token = item(report, "token")
    assert (
        token.message == f"{ORG} refused the token from GIT_PASSWORD: it is wrong, revoked, or for another organisation"
    )
    assert token.fix == f"create a PAT at {ORG}/_usersSettings/tokens and pass it (GIT_PASSWORD or --password-stdin)"
    assert item(report, "git").message == "git access not tried: the token does not work (above)"


def test_a_missing_project_for_a_person_names_who_may_not_see_it() -> None:
    report = decide(https(), Facts(caller=Answer(ADMIN), project=Answer(None)))
    project = item(report, "project")
    assert project.message == (
        f"project 'platform' does not exist in {ORG}, or Ada Admin may not see it (404: VS800075 / TF200016)"
    )
    assert item(report, "git").status == "skip"


def test_not_found_errors_are_shown_with_their_fix() -> None:
    lost = NotFound("the branches could not be read", fix="check that the repository still exists")
    report = decide(
        https(), existing(ADMIN, READ_AND_CONTRIBUTE, branch_head=Answer(error=lost), write_scope=Answer(True))
    )
    branch = item(report, "branch")
    assert (branch.status, branch.fix) == ("fail", "check that the repository still exists")


def test_a_name_the_service_did_not_give_is_flagged() -> None:
    derived = replace(BUILD, name_source="derived")
    report = decide(https(JOB), existing(derived, READ_AND_CONTRIBUTE))
    assert item(report, "identity").message == (
        "authenticated as platform Build Service (contoso) (project build service: a pipeline's job token); the "
        "service gave no name: this is how Azure DevOps names build services"
    )


def test_over_ssh_a_service_principal_token_cannot_speak_for_the_key_owner_either() -> None:
    principal = replace(ADMIN, kind="other", display_name="flux-bootstrap-sp")
    report = decide(ssh(ENTRA), existing(principal, READ_ONLY))
    assert report.can_proceed
    contribute = item(report, "permission:GENERIC_CONTRIBUTE")
    assert contribute.status == "warn"
    assert "(a service principal or managed identity has no SSH keys)" in contribute.message
    assert item(report, "ssh-identity").message.startswith(
        "the permissions below are those of flux-bootstrap-sp, the identity signed in through DefaultAzureCredential"
    )
