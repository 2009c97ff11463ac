"""Project, repository and branch: whether they exist, may be created, or are out of this identity's reach.

Azure DevOps answers 404 both for what does not exist and for what the identity may not see. For a person that
usually means a typo or a missing membership; for a pipeline's job token it usually means the job authorization
scope or the repository protection of the pipeline, so the fix names those settings instead.
"""

from __future__ import annotations

from typing import Literal

from flux_azdo.azdo import fixes
from flux_azdo.azdo.errors import AuthenticationFailed
from flux_azdo.azdo.models import Caller, RepositoryInfo
from flux_azdo.azdo.preflight.facts import Facts, credential_kind, fix_of
from flux_azdo.azdo.preflight.report import CheckItem
from flux_azdo.azdo.preflight.request import PreflightRequest
from flux_azdo.azdo.security import GitPermission, project_token

BranchState = Literal["exists", "empty", "new", "missing", "new-repository"]
_AGAIN = "run flux-azdo check again; if it persists, the message above is Azure DevOps' own"


def branch_state(request: PreflightRequest, facts: Facts) -> BranchState | None:
    """What the push will do to the branch; None when that is not known (no repository, a failed lookup)."""
    repository = facts.found_repository
    if repository is None:
        missing = facts.repository is not None and facts.repository.ok
        if missing and request.create_repository and facts.found_project is not None:
            return "new-repository"
        return None
    head = facts.branch_head
    if repository.is_disabled or head is None or not head.ok:
        return None
    if head.value is not None:
        return "exists"
    if repository.default_branch is None:
        return "empty"
    return "new" if request.create_branch else "missing"


def decide_resources(request: PreflightRequest, facts: Facts) -> list[CheckItem]:
    return [*_project(request, facts), *_repository(request, facts), *_branch(request, facts)]


def _project_note(request: PreflightRequest) -> str:
    if request.url.project_in_url:
        return ""
    return " (the URL names no project: its name was taken from the repository name)"


def _not_reachable_by_job(
    request: PreflightRequest, caller: Caller, what: Literal["project", "repository"]
) -> CheckItem:
    """A project build service that gets 404/401 outside its project: the job's reach, not the name, is the cause
    to look at first."""
    url = request.url
    project, repository = url.project or "", url.repository or ""
    subject = f"project {project}" if what == "project" else f"repository {repository} in project {project}"
    return CheckItem(
        what,
        "fail",
        f"{subject} is not visible to {caller.display_name}: it does not exist, or the job token may not reach it",
        fix=fixes.job_scope_other_project(
            caller.display_name, project=project, repository=repository, organization=url.organization
        ),
    )


def _origin(request: PreflightRequest) -> str:
    return request.token.origin if request.token is not None else ""


def _project(request: PreflightRequest, facts: Facts) -> list[CheckItem]:
    answer, caller, url = facts.project, facts.who, request.url
    if answer is None or caller is None:
        return []
    kind = credential_kind(request.token, caller)
    error = answer.error
    if error is not None:
        if isinstance(error, AuthenticationFailed) and kind == "pat":
            # The scope line (pat_scopes) says what is missing; this one says what could not be checked.
            skipped = "project not checked: reading it needs the Project and Team (Read) scope"
            return [CheckItem("project", "skip", skipped)]
        if isinstance(error, AuthenticationFailed) and caller.kind == "build-service":
            return [_not_reachable_by_job(request, caller, "project")]
        if isinstance(error, AuthenticationFailed):
            return [
                CheckItem(
                    "project",
                    "fail",
                    error.message,
                    fix=fix_of(error, fixes.refused_token(kind, url.collection_url, _origin(request))),
                )
            ]
        return [CheckItem("project", "fail", error.message, fix=fix_of(error, _AGAIN))]
    project = answer.value
    if project is None:
        if caller.kind == "build-service":
            return [_not_reachable_by_job(request, caller, "project")]
        who = caller.display_name
        return [
            CheckItem(
                "project",
                "fail",
                f"project {url.project!r} does not exist in {url.collection_url}, or {who} may not see it "
                f"(404: VS800075 / TF200016){_project_note(request)}",
                fix=f"create the project at {url.collection_url}/_projects, fix the project in --url, "
                f"or add {who} to the project",
            )
        ]
    return [CheckItem("project", "ok", f"project {project.name} exists{_project_note(request)}")]


def _repository(request: PreflightRequest, facts: Facts) -> list[CheckItem]:
    answer, caller, url = facts.repository, facts.who, request.url
    if answer is None or caller is None:
        return []
    kind = credential_kind(request.token, caller)
    error = answer.error
    if error is not None:
        if isinstance(error, AuthenticationFailed) and kind == "pat":
            return [CheckItem("repository", "skip", "repository not checked: reading it needs the Code (Read) scope")]
        if isinstance(error, AuthenticationFailed) and caller.kind == "build-service":
            return [_missing_for_job(request, facts, caller)]
        if isinstance(error, AuthenticationFailed):
            return [
                CheckItem(
                    "repository",
                    "fail",
                    error.message,
                    fix=fix_of(error, fixes.refused_token(kind, url.collection_url, _origin(request))),
                )
            ]
        return [CheckItem("repository", "fail", error.message, fix=fix_of(error, _AGAIN))]
    repository = answer.value
    if repository is not None:
        return [_existing(repository)]
    where = f"project {url.project}"
    if request.create_repository:
        return [
            CheckItem(
                "repository",
                "ok",
                f"repository {url.repository} does not exist in {where}: --create-repo will create it",
            )
        ]
    if caller.kind == "build-service":
        return [_missing_for_job(request, facts, caller)]
    return [
        CheckItem(
            "repository",
            "fail",
            f"repository {url.repository} does not exist in {where} (or {caller.display_name} may not read it: "
            "TF401019)",
            fix=_creation_fix(request, facts, caller),
        )
    ]


def _missing_for_job(request: PreflightRequest, facts: Facts, caller: Caller) -> CheckItem:
    """A job token that cannot see the repository: its own project's repository protection, or another project."""
    url, project = request.url, facts.found_project
    own = project is not None and (caller.build_scope_id or "").lower() == project.id.lower()
    if not own:
        return _not_reachable_by_job(request, caller, "repository")
    return CheckItem(
        "repository",
        "fail",
        f"repository {url.repository} is not visible to {caller.display_name} in project {url.project}: it does "
        "not exist, or the job token may not reach it",
        fix=fixes.job_scope_own_project(caller.display_name, repository=url.repository or ""),
    )


def _creation_fix(request: PreflightRequest, facts: Facts, caller: Caller) -> str:
    url, project = request.url, facts.found_project
    may_create = facts.allowed(project_token(project.id), GitPermission.CREATE_REPOSITORY) if project else None
    scope = None
    if facts.manage_scope is not None and facts.manage_scope.ok:
        scope = facts.manage_scope.value
    collection = url.collection_url or ""
    return fixes.create_repository_fix(
        may_create=may_create,
        scope=scope,
        identity=caller.display_name,
        project=url.project or "",
        page=fixes.new_repository_page(collection, url.project or ""),
        collection_url=url.collection_url,
    )


def _existing(repository: RepositoryInfo) -> CheckItem:
    if repository.is_disabled:
        return CheckItem(
            "repository",
            "fail",
            f"repository {repository.name} is disabled: git and the API refuse to use it",
            fix=fixes.enable_repository(repository.name),
        )
    state = f"default branch {repository.default_branch}" if repository.default_branch else "empty"
    where = f": {repository.web_url}" if repository.web_url else ""
    return CheckItem("repository", "ok", f"repository {repository.name} exists ({state}){where}")


def _branch(request: PreflightRequest, facts: Facts) -> list[CheckItem]:
    branch = request.branch
    state = branch_state(request, facts)
    if state == "new-repository":
        return [CheckItem("branch", "ok", f"the new repository will be empty: the first push creates {branch}")]
    repository, head = facts.found_repository, facts.branch_head
    if repository is None or head is None:
        return []
    if head.error is not None:
        return [CheckItem("branch", "fail", head.error.message, fix=fix_of(head.error, _AGAIN))]
    default = repository.default_branch
    if state == "exists" and head.value is not None:
        return [CheckItem("branch", "ok", f"branch {branch} exists (at {head.value[:7]})")]
    if state == "empty":
        message = f"repository {repository.name} is empty: the push creates {branch} (needs Create branch)"
        return [CheckItem("branch", "ok", message)]
    if state == "new":
        return [
            CheckItem(
                "branch",
                "ok",
                f"branch {branch} does not exist: --create-branch will create it from {default} (needs Create branch)",
            )
        ]
    return [
        CheckItem(
            "branch",
            "fail",
            f"branch {branch} does not exist in {repository.name} (its default branch is {default}); "
            "Flux would fail to clone it",
            fix=f"pass --create-branch to create {branch} from {default}, or pass --branch {default}",
        )
    ]
