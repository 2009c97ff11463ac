"""The Azure DevOps REST calls a bootstrap needs, through the `azure-devops` SDK, with errors a user can act on.

The SDK (7.1.0b4 on msrest and requests) does the wire work: location discovery (`OPTIONS <org>/_apis`),
version negotiation, URL building and (de)serialisation. Around it, for a tool people run unattended:

* every SDK client gets one configuration: a timeout, bounded retries honouring `Retry-After`, and a hook that
  records the last reply (`sdk_connection`, `retry`);
* the SDK keeps its location cache in our cache folder (`sdk_cache`);
* failures leave as `flux_azdo.azdo.errors` types with a message and a fix (`error_translation`), raised
  without the SDK's exception attached: that one holds the request, `Authorization` header included;
* answers are small frozen values (`models`).

This module holds the calls themselves.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar

from flux_azdo import __version__
from flux_azdo.azdo.credentials import AzureDevOpsToken, token_from_azure_identity
from flux_azdo.azdo.error_translation import ErrorTranslator, Operation, Replies, scrub_secrets
from flux_azdo.azdo.errors import AuthenticationFailed, AzureDevOpsError, NotFound, Unavailable
from flux_azdo.azdo.models import (
    BranchPolicy,
    Caller,
    CallerKind,
    NameSource,
    ProjectInfo,
    RepositoryInfo,
    better_name,
    caller_from_connection_data,
    enabled_branch_policy,
    organization_name,
    repository_info,
)
from flux_azdo.azdo.retry import RepeatablePosts
from flux_azdo.azdo.sdk_cache import CACHE_ENVIRONMENT_VARIABLE, default_cache_dir, use_sdk_cache
from flux_azdo.azdo.sdk_connection import ClientSettings, close_client, open_connection
from flux_azdo.azdo.security import GIT_NAMESPACE_ID

__all__ = [
    "CACHE_ENVIRONMENT_VARIABLE",
    "AzureDevOpsClient",
    "BranchPolicy",
    "Caller",
    "CallerKind",
    "NameSource",
    "ProjectInfo",
    "RepositoryInfo",
    "default_cache_dir",
    "token_from_azure_identity",
    "use_sdk_cache",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

Area = Literal["location", "core", "git", "security"]


class AzureDevOpsClient:
    """The calls a bootstrap and its preflight need, for one organisation (collection) and one token.

    Reads return None for a missing (or invisible) project or repository; every other failure raises a
    `flux_azdo.azdo.errors` type. Use as a context manager (or call `close()`) to release connections.
    """

    def __init__(
        self,
        collection_url: str,
        token: AzureDevOpsToken,
        *,
        timeout: float = 30.0,
        retries: int = 4,
        max_retry_after: float = 30.0,
        cache_dir: Path | None = None,
        user_agent: str | None = None,
    ) -> None:
        if timeout <= 0 or retries < 0 or max_retry_after < 0:
            raise ValueError("timeout must be positive, retries and max_retry_after not negative")
        self.collection_url = collection_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.retries = retries
        self.max_retry_after = max_retry_after
        self.user_agent = user_agent or f"flux-azdo/{__version__}"
        self._replies = Replies()
        self._repeatable = RepeatablePosts()
        self._translator = ErrorTranslator(self.collection_url, token, timeout, retries)
        self._settings = ClientSettings(timeout, retries, max_retry_after, self._repeatable, self._replies.record)
        self._clients: list[Any] = []
        use_sdk_cache(cache_dir if cache_dir is not None else default_cache_dir())
        self._connection = open_connection(
            self.collection_url, token, user_agent=self.user_agent, configure=self._configure
        )

    # -- lifecycle --------------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the HTTP sessions of every SDK client created so far."""
        for client in self._clients:
            close_client(client)
        self._clients.clear()

    def __enter__(self) -> AzureDevOpsClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _configure(self, client: Any) -> None:
        self._settings.apply(client)
        self._clients.append(client)

    # -- calls ------------------------------------------------------------------------------------------------------

    def whoami(self) -> Caller:
        """The identity behind the token (`GET _apis/ConnectionData`, valid with any scope).

        A 404 here means the URL is not an organisation (or collection) URL. When the service names a build
        service by a bare GUID or not at all, the name Azure DevOps shows for it is built ("<Project> Build
        Service (<org>)", the project read by its id), else the sign-in name is used (`Caller.name_source`).
        """
        operation = Operation.on_organisation("read who the token belongs to", self.collection_url)
        data = self._call(operation, "location", lambda c: c.get_connection_data())
        caller = caller_from_connection_data(data)
        if caller is None:
            raise AzureDevOpsError(
                f"{self.collection_url} did not say who the token belongs to (ConnectionData without a user)",
                fix=f"is {self.collection_url} the organisation URL? It is https://dev.azure.com/<organisation> "
                "(Azure DevOps Server: https://<server>/<collection>)",
            )
        if caller.display_name:
            return caller
        project_name = None
        if caller.kind == "build-service" and caller.build_scope_id:
            project_name = self._project_name(caller.build_scope_id)
        return better_name(caller, organization_name(self.collection_url), project_name)

    def get_project(self, name_or_id: str) -> ProjectInfo | None:
        """The project, or None when it does not exist or this identity cannot see it (the service says 404)."""
        operation = Operation(f"read project '{name_or_id}'", "vso.project", f"project '{name_or_id}'")
        try:
            project = self._call(operation, "core", lambda core: core.get_project(name_or_id))
        except NotFound:
            return None
        return ProjectInfo(id=str(project.id), name=str(project.name))

    def get_repository(self, project: str, name_or_id: str) -> RepositoryInfo | None:
        """The repository (project by name or id), or None when it or its project is missing or invisible."""
        subject = f"repository '{name_or_id}' in project '{project}'"
        operation = Operation(f"read {subject}", "vso.code", subject, repository=name_or_id)
        try:
            repository = self._call(operation, "git", lambda git: git.get_repository(name_or_id, project=project))
        except NotFound:
            return None
        return repository_info(repository)

    def create_repository(self, project: ProjectInfo, name: str) -> RepositoryInfo:
        """Create an empty repository (needs the PAT scope vso.code_manage and CreateRepository on the project).

        The POST is not retried on a 5xx or a lost reply, since it may have been applied; instead the repository is
        looked up, and returned when it is there. A duplicate name is `Conflict` (409 TF400948).
        """
        from azure.devops.v7_0.core.models import TeamProjectReference
        from azure.devops.v7_0.git.models import GitRepositoryCreateOptions

        subject = f"repository '{name}' in project '{project.name}'"
        operation = Operation(f"create {subject}", "vso.code_manage", f"project '{project.name}'")
        options = GitRepositoryCreateOptions(name=name, project=TeamProjectReference(id=project.id))
        try:
            created = self._call(operation, "git", lambda git: git.create_repository(options, project=project.id))
        except Unavailable as failure:
            unavailable = failure
        else:
            return repository_info(created)
        existing = self._quietly(lambda: self.get_repository(project.id, name))
        if existing is None:
            raise unavailable
        log.info("Azure DevOps: the create request for %s failed, but the repository exists", subject)
        return existing

    def branch_head(self, repository: RepositoryInfo, branch: str) -> str | None:
        """The commit `refs/heads/<branch>` points at, None when the branch does not exist.

        The refs API's `filter` is a prefix (`heads/main` also lists `heads/main-old`), so names are compared
        exactly.
        """
        name = branch.removeprefix("refs/heads/")
        operation = self._on_repository("read the branches of", "vso.code", repository)
        refs = self._call(
            operation,
            "git",
            lambda git: git.get_refs(repository.id, project=repository.project_id, filter=f"heads/{name}"),
        )
        wanted = f"refs/heads/{name}"
        return next((str(ref.object_id) for ref in refs or [] if ref.name == wanted), None)

    def branch_policies(self, repository: RepositoryInfo, branch: str) -> list[BranchPolicy]:
        """The enabled policies that apply to `refs/heads/<branch>` (git policy configurations, every page)."""
        ref_name = f"refs/heads/{branch.removeprefix('refs/heads/')}"
        operation = self._on_repository("read the branch policies of", "vso.code", repository)
        policies: list[BranchPolicy] = []
        continuation: str | None = None
        for _ in range(100):  # a bound, in case a server keeps handing out the same continuation token
            request = functools.partial(
                _policy_page, repository=repository, ref_name=ref_name, continuation=continuation
            )
            page = self._call(operation, "git", request)
            for item in page.policy_configurations or []:
                policy = enabled_branch_policy(item)
                if policy is not None:
                    policies.append(policy)
            continuation = page.continuation_token or None
            if continuation is None:
                break
        return policies

    def has_permissions(self, checks: Sequence[tuple[str, int]]) -> list[bool]:
        """For each (Git security token, bits): whether the caller has all the bits there.

        One PermissionEvaluationBatch call, with `alwaysAllowAdministrators` false so an administrator's real
        ACL is reported (a bootstrap pushes with real permissions, not with an admin short-cut). It is a POST
        that only reads, so it is retried on 5xx like a GET (`retry.RepeatablePosts`).
        """
        if not checks:
            return []
        from azure.devops.v7_0.security.models import PermissionEvaluation, PermissionEvaluationBatch

        batch = PermissionEvaluationBatch(
            always_allow_administrators=False,
            evaluations=[
                PermissionEvaluation(security_namespace_id=GIT_NAMESPACE_ID, token=token, permissions=int(bits))
                for token, bits in checks
            ],
        )
        operation = Operation("evaluate Git permissions")
        result = self._call(operation, "security", lambda c: c.has_permissions_batch(batch), repeatable=True)
        values = [bool(evaluation.value) for evaluation in (result.evaluations or [])]
        if len(values) != len(checks):
            raise AzureDevOpsError(
                f"Azure DevOps at {self.collection_url} answered {len(values)} permission results for "
                f"{len(checks)} questions",
                fix="run again; if it keeps failing, report it with this message",
            )
        return values

    def can_write_code(self, repository: RepositoryInfo) -> bool | None:
        """Whether the token carries the PAT scope vso.code_write ("Code (Read & write)"), without writing.

        A PAT cannot read its own scopes: the service documents no scope introspection for PATs (the PAT
        lifecycle API takes Microsoft Entra user tokens only; azure-devops.md §6.3). So this sends an update of
        *no* refs (`POST .../refs` with `[]`), which changes nothing whatever the answer; see `_probe` for how
        the answer is read. Job and Entra tokens are not scope-limited: they pass.
        """
        operation = self._on_repository("update refs in", "vso.code_write", repository, probe=True)
        return self._probe(operation, lambda git: git.update_refs([], repository.id, project=repository.project_id))

    def can_manage_code(self, project: ProjectInfo) -> bool | None:
        """Whether the token carries vso.code_manage ("Code (Read, write, & manage)"), needed to create a repository.

        Same idea as `can_write_code`: `POST .../git/repositories` without a name creates nothing (the name is
        required).
        """
        from azure.devops.v7_0.core.models import TeamProjectReference
        from azure.devops.v7_0.git.models import GitRepositoryCreateOptions

        operation = Operation(
            f"create repositories in project '{project.name}' (a harmless probe)",
            "vso.code_manage",
            f"project '{project.name}'",
        )
        options = GitRepositoryCreateOptions(project=TeamProjectReference(id=project.id))
        return self._probe(operation, lambda git: git.create_repository(options, project=project.id))

    # -- plumbing ---------------------------------------------------------------------------------------------------

    def _probe(self, operation: Operation, call: Callable[[Any], object]) -> bool | None:
        """Read a scope probe's answer: True (scope there), False (scope missing), None (cannot tell).

        The service checks a PAT's scopes before anything else, so:

        * a 2xx or 400 (the empty request is invalid) means the request got past the scope check: True;
        * 403 TF401027 means it got past it to the ACL check (the identity lacks a Git permission, which the
          permission checks report on their own): True;
        * a 401 that is not an expired token (TF400813 in the sandbox; the real service's reply to a missing scope
          is not documented, azure-devops.md §6.2, §6.3) means the scope is missing: False. Callers have checked
          the token with `whoami` first, so a 401 here is about this call;
        * any other answer (another 403, 404, 405, 409, ...) says nothing about the scope: None, and the caller
          should say it could not tell rather than guess.

        Failures that are not answers about the scope still raise: an expired token or a sign-in page
        (`AuthenticationFailed`), and `Unavailable` (no answer at all: network, or 429/5xx after the retries,
        which a probe gets like a GET since repeating it changes nothing).
        """
        try:
            self._call(operation, "git", call, repeatable=True)
        except AuthenticationFailed as failure:
            if failure.reason in ("not-authorized", "invalid"):
                return False
            raise
        except Unavailable:
            raise
        except AzureDevOpsError as failure:
            if failure.status == 400:
                return True
            if failure.status == 403 and failure.code == "TF401027":
                return True
            log.info("Azure DevOps: the scope probe %r was inconclusive (%s)", operation.scope, failure.message)
            return None
        return True

    def _call(self, operation: Operation, area: Area, call: Callable[[Any], T], *, repeatable: bool = False) -> T:
        """Run one SDK call with the `area` client (`location`, `core`, `git`, `security`).

        Getting the client is inside: the first one of an area asks the server for resource areas and locations,
        which can fail like any call. Whatever we understand leaves as a `flux_azdo.azdo.errors` type, raised
        after the `except` block and `from None`: the SDK's exception (and the requests exception in it, which
        keeps the request with its `Authorization` header) must be neither its cause nor its context.
        `repeatable` marks a call whose POSTs only read, so they may be retried (`retry.RepeatablePosts`).
        """
        self._replies.last = None
        translated: AzureDevOpsError | None = None
        try:
            with self._repeatable.allowed(repeatable):
                return call(getattr(self._connection.clients, f"get_{area}_client")())
        except Exception as error:
            translated = self._translator.translate(error, operation, self._replies.last)
            if translated is None:
                raise
        raise scrub_secrets(translated, self.token) from None

    def _on_repository(self, what: str, scope: str, repository: RepositoryInfo, *, probe: bool = False) -> Operation:
        subject = f"repository '{repository.name}' in project '{repository.project_name}'"
        suffix = " (a harmless probe)" if probe else ""
        return Operation(f"{what} {subject}{suffix}", scope, subject, repository=repository.name)

    def _project_name(self, project_id: str) -> str | None:
        """The name of a project by id, None when it cannot be read (only used to name a build service)."""
        project = self._quietly(lambda: self.get_project(project_id))
        return project.name if project is not None else None

    @staticmethod
    def _quietly(read: Callable[[], T | None]) -> T | None:
        try:
            return read()
        except AzureDevOpsError:
            return None


def _policy_page(git: Any, *, repository: RepositoryInfo, ref_name: str, continuation: str | None) -> Any:
    return git.get_policy_configurations(
        repository.project_id, repository_id=repository.id, ref_name=ref_name, continuation_token=continuation
    )
