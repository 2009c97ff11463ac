"""The Git permissions this run needs, as the Security API grants them to the caller on the exact branch.

Read and Contribute always; Create branch when the push creates the branch; Bypass policies when a required
branch policy would reject a direct push; on the project, Create repository (and what the new repository
inherits) with --create-repo. Each one is evaluated on the branch token and on the repository token, so a Deny
on the branch itself is told apart from a missing Allow on the repository, and the fix names the right page.
"""

from __future__ import annotations

from flux_azdo.azdo import fixes
from flux_azdo.azdo.models import BranchPolicy, Caller, RepositoryInfo
from flux_azdo.azdo.preflight.facts import Facts, fix_of
from flux_azdo.azdo.preflight.report import CheckItem
from flux_azdo.azdo.preflight.request import PreflightRequest
from flux_azdo.azdo.preflight.resources import branch_state
from flux_azdo.azdo.security import GitPermission, branch_token, project_token, repository_token

_AGAIN = "run flux-azdo check again; if it persists, the message above is Azure DevOps' own"
#: (permission, token evaluated, parent token: a branch's repository, None on the project)
Wanted = tuple[GitPermission, str, str | None]


def decide_permissions(request: PreflightRequest, facts: Facts) -> list[CheckItem]:
    caller = facts.who
    if caller is None:
        return []
    items: list[CheckItem] = []
    policies: tuple[BranchPolicy, ...] = ()
    if facts.policies is not None:
        if facts.policies.error is not None:
            error = facts.policies.error
            items.append(CheckItem("policies", "fail", error.message, fix=fix_of(error, _AGAIN)))
        else:
            policies = tuple(policy for policy in facts.policies.value or () if policy.blocking)
    wanted = wanted_permissions(request, facts, policies)
    answer = facts.permissions
    if not wanted or answer is None:
        return items
    if answer.error is not None:
        items.append(CheckItem("permissions", "fail", answer.error.message, fix=fix_of(answer.error, _AGAIN)))
        return items
    for bit, token, parent in wanted:
        allowed = facts.allowed(token, bit)
        if allowed is None:
            continue
        parent_allowed = bool(facts.allowed(parent, bit)) if parent is not None else False
        items.append(_item(request, facts, caller, bit, token, parent, allowed, parent_allowed, policies))
    return items


def wanted_permissions(request: PreflightRequest, facts: Facts, policies: tuple[BranchPolicy, ...]) -> list[Wanted]:
    repository, state = facts.found_repository, branch_state(request, facts)
    if repository is not None and not repository.is_disabled:
        pid, rid = repository.project_id, repository.id
        on_branch, on_repository = branch_token(pid, rid, request.branch), repository_token(pid, rid)
        bits = [GitPermission.GENERIC_READ, GitPermission.GENERIC_CONTRIBUTE]
        if state in ("empty", "new"):
            bits.append(GitPermission.CREATE_BRANCH)
        if policies:
            bits.append(GitPermission.POLICY_EXEMPT)
        return [(bit, on_branch, on_repository) for bit in bits]
    project = facts.found_project
    if state == "new-repository" and project is not None:
        on_project = project_token(project.id)
        bits = [
            GitPermission.CREATE_REPOSITORY,
            GitPermission.GENERIC_READ,
            GitPermission.GENERIC_CONTRIBUTE,
            GitPermission.CREATE_BRANCH,
        ]
        return [(bit, on_project, None) for bit in bits]
    return []


def _where(request: PreflightRequest, facts: Facts, repository: RepositoryInfo | None) -> str:
    if repository is not None:
        return f"repository {repository.name}, branch {request.branch}"
    project = facts.found_project
    return f"project {project.name if project else request.url.project} (all repositories, inherited by the new one)"


def _item(
    request: PreflightRequest,
    facts: Facts,
    caller: Caller,
    bit: GitPermission,
    token: str,
    parent: str | None,
    allowed: bool,
    parent_allowed: bool,
    policies: tuple[BranchPolicy, ...],
) -> CheckItem:
    repository, branch, collection = facts.found_repository, request.branch, request.url.collection_url or ""
    label, who = fixes.permission_label(bit), caller.display_name
    key = f"permission:{bit.name}"
    where = _where(request, facts, repository)
    policy_names = ", ".join(sorted({f"'{policy.type_name}'" for policy in policies}))
    if allowed:
        if bit is GitPermission.POLICY_EXEMPT:
            return CheckItem(
                key, "ok", f"{who} has {label} on {where}: the policy {policy_names} does not block the push"
            )
        return CheckItem(key, "ok", f"{who} has {label} on {where}")
    consequence = {
        GitPermission.GENERIC_READ: "git cannot read the repository",
        GitPermission.GENERIC_CONTRIBUTE: "the push would be rejected (TF401027)",
        GitPermission.CREATE_BRANCH: f"the push cannot create branch {branch} (TF401027)",
        GitPermission.CREATE_REPOSITORY: f"--create-repo cannot create {request.url.repository} (TF401027)",
        GitPermission.POLICY_EXEMPT: f"branch {branch} is protected by the branch policy {policy_names}, "
        "so a direct push would be rejected (TF402455)",
    }[bit]
    level: fixes.Level
    if parent is not None and parent_allowed:
        # The repository allows it, so a Deny on the branch itself is what stops it.
        level, grant_on = "branch", token
    elif repository is not None:
        level, grant_on = "repository", parent or token
    else:
        level, grant_on = "project", token
    fix = fixes.security_path(bit, who, level=level, repository=repository.name if repository else None, branch=branch)
    if bit is GitPermission.POLICY_EXEMPT:
        fix = f"{fix}; {fixes.policy_alternative(branch)}"
    fix += _job_note(caller, repository)
    subject = fixes.az_subject(caller.subject_descriptor, caller.unique_name)
    command = (
        fixes.grant_command(bit, subject=subject, token=grant_on, collection_url=collection)
        if subject is not None
        else None
    )
    return CheckItem(key, "fail", f"{who} lacks {label} on {where}: {consequence}", fix=fix, command=command)


def _job_note(caller: Caller, repository: RepositoryInfo | None) -> str:
    """For job tokens: why this identity, and what else decides what the job may reach."""
    if caller.kind == "collection-build-service":
        return " " + fixes.collection_scope_note()
    other_project = repository is not None and (caller.build_scope_id or "").lower() != repository.project_id.lower()
    if caller.kind == "build-service" and other_project:
        return (
            f"; the job token is of another project, so also {fixes.REFERENCE_REPOSITORY}, which "
            f'"{fixes.PROTECT_REPOSITORIES}" requires'
        )
    return ""
