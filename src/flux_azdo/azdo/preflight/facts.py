"""Everything the preflight learns from Azure DevOps and git, gathered in one place: the only I/O of a preflight.

`gather` asks the REST API (who am I, project, repository, branch, policies, one permission batch, the scope
probes) and git (`ls-remote`), and keeps every answer, including every error, as a value in `Facts`. The
decision modules (`identity`, `resources`, `pat_scopes`, `permissions`, `git_access`, `cluster`) are then plain
functions of the request and these facts, which is what lets them be tested with constructed data.

What is asked depends on earlier answers (no repository lookup in a project that does not exist), but never
more than that: which permissions to evaluate is a fixed set per situation, and the decisions pick what matters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Generic, Literal, TypeVar

from flux_azdo.azdo.client import AzureDevOpsClient
from flux_azdo.azdo.credentials import AzureDevOpsToken
from flux_azdo.azdo.errors import AuthenticationFailed, AzureDevOpsError
from flux_azdo.azdo.models import BranchPolicy, Caller, ProjectInfo, RepositoryInfo
from flux_azdo.azdo.preflight.request import PreflightRequest
from flux_azdo.azdo.security import GitPermission, branch_token, project_token, repository_token
from flux_azdo.errors import UserError
from flux_azdo.git.workspace import RemoteState, remote_state

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

AZURE_KINDS = ("services", "legacy", "server")
BUILD_KINDS = ("build-service", "collection-build-service")

#: What the token is, decided once (`credential_kind`) for every message and rule that depends on it.
CredentialKind = Literal["pat", "job-token", "entra", "token"]

#: Asked on the branch and on the repository when the repository exists; the decisions use what applies.
REPOSITORY_BITS = (
    GitPermission.GENERIC_READ,
    GitPermission.GENERIC_CONTRIBUTE,
    GitPermission.CREATE_BRANCH,
    GitPermission.POLICY_EXEMPT,
)
#: Asked on the project when the repository does not exist: creating it, and what the new one inherits.
PROJECT_BITS = (
    GitPermission.CREATE_REPOSITORY,
    GitPermission.GENERIC_READ,
    GitPermission.GENERIC_CONTRIBUTE,
    GitPermission.CREATE_BRANCH,
)


@dataclass(frozen=True)
class Answer(Generic[T_co]):
    """What one call returned (`value`, which may itself be None: "missing") or the error it raised."""

    value: T_co | None = None
    error: UserError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Facts:
    """Each field is None when the call was not made (no token, nothing to ask about, an earlier failure)."""

    caller: Answer[Caller] | None = None
    project: Answer[ProjectInfo | None] | None = None  # value None: 404, missing or invisible to the caller
    repository: Answer[RepositoryInfo | None] | None = None  # value None: 404
    branch_head: Answer[str | None] | None = None  # value None: the branch does not exist
    policies: Answer[tuple[BranchPolicy, ...]] | None = None  # the enabled policies on the branch
    #: (security token, bit) -> allowed, for the tokens `permission_questions` lists.
    permissions: Answer[Mapping[tuple[str, int], bool]] | None = None
    write_scope: Answer[bool | None] | None = None  # PAT probe: value None means inconclusive
    manage_scope: Answer[bool | None] | None = None
    remote: Answer[RemoteState] | None = None  # git ls-remote

    @property
    def who(self) -> Caller | None:
        """The identity behind the token, when `whoami` answered."""
        return self.caller.value if self.caller is not None else None

    @property
    def found_project(self) -> ProjectInfo | None:
        return self.project.value if self.project is not None else None

    @property
    def found_repository(self) -> RepositoryInfo | None:
        return self.repository.value if self.repository is not None else None

    def allowed(self, token: str, bit: GitPermission) -> bool | None:
        """The Security API's answer for `bit` on `token`; None when it was not asked or the batch failed."""
        if self.permissions is None or self.permissions.value is None:
            return None
        return self.permissions.value.get((token, int(bit)))


def credential_kind(token: AzureDevOpsToken | None, caller: Caller | None) -> CredentialKind:
    """The one place that decides what the token is: it names the token in messages and picks the fixes.

    The source says what the user gave (the CLI marks `SYSTEM_ACCESSTOKEN` as a job token); the identity says
    what the service saw (a build service is a job token however it was passed). A password of a user is a PAT;
    a password of a service principal or managed identity is some other token.
    """
    if token is not None and token.source == "entra":
        return "entra"
    if (token is not None and token.source == "job-token") or (caller is not None and caller.kind in BUILD_KINDS):
        return "job-token"
    if caller is None or caller.kind == "user":
        return "pat"
    return "token"


TOKEN_NAMES: dict[CredentialKind, str] = {
    "pat": "the PAT",
    "job-token": "the job token",
    "entra": "the Microsoft Entra token",
    "token": "the token",
}


def permission_questions(request: PreflightRequest, facts: Facts) -> list[tuple[str, int]]:
    """The (token, bit) pairs to evaluate, given what is known about the repository."""
    repository = facts.found_repository
    if repository is not None and not repository.is_disabled:
        pid, rid = repository.project_id, repository.id
        tokens = (branch_token(pid, rid, request.branch), repository_token(pid, rid))
        return [(token, int(bit)) for bit in REPOSITORY_BITS for token in tokens]
    project = facts.found_project
    if facts.repository is not None and facts.repository.ok and repository is None and project is not None:
        return [(project_token(project.id), int(bit)) for bit in PROJECT_BITS]
    return []


def gather(request: PreflightRequest) -> Facts:
    """Ask everything the decisions need; reads only (the POSTs are the permission batch and harmless probes)."""
    facts = _rest(request)
    from flux_azdo.azdo.preflight.git_access import plan_git

    plan = plan_git(request, facts)
    if plan.run:
        facts = replace(
            facts, remote=_answer(lambda: remote_state(request.url.git_url, plan.auth, timeout=request.timeout))
        )
    return facts


def _answer(call: Callable[[], T]) -> Answer[T]:
    try:
        return Answer(call())
    except UserError as error:
        return Answer(error=error)


def _rest(request: PreflightRequest) -> Facts:
    url, token = request.url, request.token
    if url.kind not in AZURE_KINDS or url.collection_url is None or token is None:
        return Facts()
    collection = url.collection_url
    try:
        client = AzureDevOpsClient(collection, token, timeout=request.timeout)
    except UserError as error:
        return Facts(caller=Answer(error=error))
    try:
        return _ask(request, client)
    finally:
        client.close()


def _ask(request: PreflightRequest, client: AzureDevOpsClient) -> Facts:
    url = request.url
    facts = Facts(caller=_answer(client.whoami))
    caller = facts.who
    if caller is None or url.project is None or url.repository is None:
        return facts
    is_pat = credential_kind(request.token, caller) == "pat"
    project_name, repository_name = url.project, url.repository
    facts = replace(facts, project=_answer(lambda: client.get_project(project_name)))
    assert facts.project is not None
    # A 401 on the project (a PAT without vso.project) does not stop the repository lookup: it needs vso.code only.
    if not facts.project.ok and not isinstance(facts.project.error, AuthenticationFailed):
        return facts
    if facts.project.ok and facts.project.value is None:
        return facts
    facts = replace(facts, repository=_answer(lambda: client.get_repository(project_name, repository_name)))
    repository = facts.found_repository
    if repository is not None and not repository.is_disabled:
        found = repository
        facts = replace(
            facts,
            branch_head=_answer(lambda: client.branch_head(found, request.branch)),
            policies=_answer(lambda: tuple(client.branch_policies(found, request.branch))),
        )
        if is_pat:
            facts = replace(facts, write_scope=_answer(lambda: client.can_write_code(found)))
    project = facts.found_project
    missing = repository is None and facts.repository is not None and facts.repository.ok
    if missing and project is not None and is_pat:
        known = project
        facts = replace(facts, manage_scope=_answer(lambda: client.can_manage_code(known)))
    questions = permission_questions(request, facts)
    if questions:
        facts = replace(facts, permissions=_answer(lambda: _evaluate(client, questions)))
    return facts


def _evaluate(client: AzureDevOpsClient, questions: list[tuple[str, int]]) -> Mapping[tuple[str, int], bool]:
    return dict(zip(questions, client.has_permissions(questions), strict=True))


def fix_of(error: UserError, fallback: str) -> str:
    """The error's own one-line action (`AzureDevOpsError.fix`), else `fallback`: the message says what happened,
    the fix what to do, and the error knows best what applies to it (a TLS failure is not fixed by more time)."""
    if isinstance(error, AzureDevOpsError) and error.fix:
        return error.fix
    return fallback
