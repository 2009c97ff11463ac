"""The Azure DevOps REST calls a bootstrap needs, through the `azure-devops` SDK, with errors a user can act on.

The SDK (7.1.0b4 on msrest and requests) does the wire work: location discovery (`OPTIONS <org>/_apis`),
version negotiation, URL building and (de)serialisation. This module adds what it lacks for a tool people run
unattended:

* **One configuration for every call.** `Connection` builds each SDK client with its own msrest configuration
  (`connection.py` `_get_client_instance`), and looks up resource areas through a private `LocationClient` of
  its own. `_ConfiguredConnection` configures every client it hands out (timeout, retry policy, a response
  hook) and routes the resource-area lookup through such a client, so no request escapes the settings.
* **Timeouts and bounded retries.** Each request times out after `timeout` seconds (connect and read). 429 and
  5xx replies and refused connections are retried at most `retries` times, waiting what `Retry-After` asks but
  never more than `max_retry_after` per wait (`_BoundedRetry`; urllib3 alone would sleep whatever the server
  says). Timeouts are not retried: the user's `timeout` stays the bound of a call.
* **Errors.** The SDK loses the HTTP status of service errors; a response hook remembers the last reply of the
  current call so that `errors.ErrorTranslator` can map every failure to an error type with one actionable line.
  No message ever contains the token: messages are built there, and scrubbed of every form of the secret.
* **Bearer tokens that stay bearer tokens.** msrest's `BasicTokenAuthentication` lets requests replace the
  header with ~/.netrc credentials; `_bearer_class` closes that hole.
* **Its own disk cache.** See `use_sdk_cache`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from urllib3.exceptions import ConnectTimeoutError, InvalidHeader, NewConnectionError, ReadTimeoutError
from urllib3.util.retry import Retry

from flux_azdo import __version__
from flux_azdo.azdo.credentials import AzureDevOpsToken, TokenCredential, entra_token
from flux_azdo.azdo.errors import (
    AuthenticationFailed,
    AzureDevOpsError,
    ErrorTranslator,
    NotFound,
    Operation,
    Replies,
    Unavailable,
    scrub_secrets,
)
from flux_azdo.azdo.security import GIT_NAMESPACE_ID
from flux_azdo.errors import UserError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The SDK reads this variable once, when `azure.devops._file_cache` is first imported.
CACHE_ENVIRONMENT_VARIABLE = "AZURE_DEVOPS_CACHE_DIR"
_FILE_CACHE_MODULE = "azure.devops._file_cache"
_LOCATION_V7_1 = "azure.devops.v7_1.location.location_client.LocationClient"

CallerKind = Literal["user", "build-service", "collection-build-service", "other"]
Area = Literal["location", "core", "git", "security"]

_USER_DESCRIPTOR = "Microsoft.IdentityModel.Claims.ClaimsIdentity"
_SERVICE_DESCRIPTOR = "Microsoft.TeamFoundation.ServiceIdentity"


# ----- values ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    """Who the token is, as `ConnectionData` tells (the identity Git permissions are evaluated for)."""

    id: str
    display_name: str
    descriptor: str
    subject_descriptor: str | None
    unique_name: str | None
    kind: CallerKind
    #: The project id (build-service) or the collection id (collection-build-service); None otherwise.
    build_scope_id: str | None


@dataclass(frozen=True)
class ProjectInfo:
    id: str
    name: str


@dataclass(frozen=True)
class RepositoryInfo:
    id: str
    name: str
    project_id: str
    project_name: str
    #: "main" (without refs/heads/); None for an empty repository, which has no default branch yet.
    default_branch: str | None
    remote_url: str
    ssh_url: str | None
    web_url: str
    is_disabled: bool


@dataclass(frozen=True)
class BranchPolicy:
    id: int
    type_name: str
    #: A required policy: direct pushes are rejected (TF402455) unless the pusher has PolicyExempt.
    blocking: bool


# ----- the SDK's disk cache ----------------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """`AZURE_DEVOPS_CACHE_DIR` when set (the SDK's own knob), else `<user cache>/flux-azdo/azure-devops`."""
    configured = os.environ.get(CACHE_ENVIRONMENT_VARIABLE)
    if configured:
        return Path(configured)
    import platformdirs

    return Path(platformdirs.user_cache_dir("flux-azdo")) / "azure-devops"


def use_sdk_cache(directory: Path) -> None:
    """Make the SDK keep its location cache (`options.json`, `resources.json`) in `directory`.

    The SDK computes its cache folder once, when `azure.devops._file_cache` is imported: from
    `AZURE_DEVOPS_CACHE_DIR`, else `~/.azure-devops/python-sdk/cache`, which it creates right then. Two steps
    make the choice ours whatever was imported before:

    1. if the SDK is not imported yet, it is imported here with the variable pointing at `directory` (and the
       variable restored afterwards, so child processes such as `az` see the user's environment unchanged):
       the import then never creates `~/.azure-devops`;
    2. the two module-level `FileCache` objects are re-pointed in place (`file_name`, in-memory data dropped).
       In place matters: `client.py` and `connection.py` of the SDK imported them by name, so rebinding the
       module attributes would not reach them.

    The cache is process-wide: the last client created decides where it lives. A folder that cannot be created
    (a read-only home) means no disk cache rather than a failure.
    """
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        usable = True
    except OSError:
        usable = False  # no disk cache then (an empty file name); the SDK only needs a folder that exists
    if _FILE_CACHE_MODULE not in sys.modules:
        previous = os.environ.get(CACHE_ENVIRONMENT_VARIABLE)
        os.environ[CACHE_ENVIRONMENT_VARIABLE] = str(directory if usable else tempfile.gettempdir())
        try:
            import azure.devops._file_cache  # noqa: F401
        finally:
            if previous is None:
                os.environ.pop(CACHE_ENVIRONMENT_VARIABLE, None)
            else:
                os.environ[CACHE_ENVIRONMENT_VARIABLE] = previous
    module = sys.modules[_FILE_CACHE_MODULE]
    for name, cache in (("options", module.OPTIONS_CACHE), ("resources", module.RESOURCE_CACHE)):
        file_name = str(directory / f"{name}.json") if usable else ""
        if cache.file_name != file_name:
            cache.file_name = file_name
            cache.data = {}
            cache.initial_load_occurred = False


# ----- Microsoft Entra -----------------------------------------------------------------------------------------


def token_from_azure_identity(credential: TokenCredential, origin: str = "Microsoft Entra") -> AzureDevOpsToken:
    """A bearer token for Azure DevOps from an `azure-identity` credential, or a UserError saying how to get one.

    azure-identity reports "no credential here" and "sign-in failed" as `CredentialUnavailableError` /
    `ClientAuthenticationError` with several lines of detail; the first line is kept, the rest is noise.
    """
    from azure.core.exceptions import ClientAuthenticationError

    try:
        return entra_token(credential, origin)
    except ClientAuthenticationError as error:
        detail = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        raise UserError(
            f"could not get a Microsoft Entra token for Azure DevOps from {origin}: {detail}; run `az login`, "
            "or set up workload identity (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE), "
            "or use an Azure Resource Manager service connection in the pipeline"
        ) from error
    except ValueError as error:
        raise UserError(
            f"{origin} returned no usable access token for Azure DevOps: run `az login` again or check the "
            "workload identity federation"
        ) from error


# ----- retries -----------------------------------------------------------------------------------------------------


class _BoundedRetry(Retry):
    """urllib3's Retry with Azure DevOps' rules: what is retried, and how long one wait may be.

    * 429 is retried for every method: the service refused the request before doing anything (TF400733).
    * Other 5xx (not 501/505, which will not change) are retried for idempotent methods only. A POST is retried
      on 503 only when the reply carries `Retry-After` (load shedding before processing); anything else might
      have been applied already. `create_repository` therefore looks the repository up after a failed create
      instead of posting again.
    * Refused connections are retried (the request never left); read and connect timeouts are not, so a call
      never takes much longer than `timeout` when the server hangs.
    * Each wait is `Retry-After` (seconds or an HTTP date), else exponential backoff, and never more than
      `max_wait`. Every wait is logged at INFO, which is also how tests see it without timing anything.
    """

    max_wait: float = 30.0
    IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})

    @classmethod
    def create(cls, retries: int, max_wait: float) -> _BoundedRetry:
        retry = cls(
            total=None,
            connect=retries,
            read=retries,
            status=retries,
            other=0,
            redirect=None,
            allowed_methods=cls.IDEMPOTENT,
            backoff_factor=0.5,
            backoff_max=max_wait,
            raise_on_status=False,  # the last reply reaches the SDK, whose error then carries the service's text
            respect_retry_after_header=True,
        )
        retry.max_wait = max_wait
        return retry

    def new(self, **kw: Any) -> _BoundedRetry:
        retry = super().new(**kw)
        retry.max_wait = self.max_wait
        return retry

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if status_code == 429:
            return True
        if method.upper() in self.IDEMPOTENT:
            return status_code >= 500 and status_code not in (501, 505)
        return status_code == 503 and has_retry_after

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: TracebackType | None = None,
    ) -> _BoundedRetry:
        if isinstance(error, ReadTimeoutError) or (
            isinstance(error, ConnectTimeoutError) and not isinstance(error, NewConnectionError)
        ):
            raise error.with_traceback(_stacktrace)
        return super().increment(method, url, response, error, _pool, _stacktrace)

    def get_retry_after(self, response: Any) -> float | None:
        try:
            seconds = super().get_retry_after(response)
        except InvalidHeader:
            return None
        return None if seconds is None else min(float(seconds), self.max_wait)

    def sleep(self, response: Any = None) -> None:
        wait = self.get_retry_after(response) if response is not None else None
        if wait is None:
            wait = min(self.get_backoff_time(), self.max_wait)
        last = self.history[-1] if self.history else None
        if last is not None:
            cause = f"HTTP {last.status}" if last.status else type(last.error).__name__
            path = urlsplit(last.url or "").path
            log.info("Azure DevOps: %s on %s %s; retry %d in %.2f s", cause, last.method, path, len(self.history), wait)
        if wait > 0:
            time.sleep(wait)


# ----- the connection ----------------------------------------------------------------------------------------------


@functools.cache
def _connection_class() -> type[Any]:
    """`Connection` that configures every SDK client it creates (built lazily: the SDK is imported on first use)."""
    from azure.devops import _file_cache
    from azure.devops.connection import Connection

    class _ConfiguredConnection(Connection):  # type: ignore[misc]
        _resource_areas: Any

        def __init__(self, configure: Callable[[Any], None], **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._configure = configure

        def _get_client_instance(self, client_class: Any) -> Any:
            client = super()._get_client_instance(client_class)
            self._configure(client)
            return client

        def _get_resource_areas(self, force: bool = False) -> Any:
            # The SDK would ask through a LocationClient of its own, with msrest's defaults (100 s timeout,
            # retries on 5xx with up to 90 s backoff, no hook); ask through a configured one instead, and store
            # the answer in the disk cache in the SDK's format. A cache hit is served by the SDK's code below.
            if self._resource_areas is None and not force:
                key = self.base_url.rstrip("/").lower()
                if not _file_cache.RESOURCE_CACHE.get(key):
                    areas = self.get_client(_LOCATION_V7_1).get_resource_areas() or []
                    self._resource_areas = areas
                    with contextlib.suppress(Exception):  # a cache that cannot be written costs one request
                        _file_cache.RESOURCE_CACHE[key] = [area.serialize() for area in areas]
            return super()._get_resource_areas(force)

    return _ConfiguredConnection


@functools.cache
def _bearer_class() -> type[Any]:
    """msrest's `BasicTokenAuthentication`, with the header set by a requests `auth` object instead.

    The original puts `Authorization: Bearer` into the session's headers and leaves `session.auth` empty, and
    requests then fills in credentials from ~/.netrc (or $NETRC) for the host, replacing the bearer token with
    whatever PAT a git user keeps there. With `session.auth` set, requests never looks at netrc.
    """
    import requests
    from msrest.authentication import BasicTokenAuthentication

    class _Bearer(requests.auth.AuthBase):
        def __init__(self, token: str) -> None:
            self._token = token

        def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
            request.headers["Authorization"] = f"Bearer {self._token}"
            return request

    class _BearerTokenAuthentication(BasicTokenAuthentication):
        def signed_session(self, session: requests.Session | None = None) -> requests.Session:
            session = super().signed_session(session)
            session.headers.pop("Authorization", None)
            session.auth = _Bearer(self.token["access_token"])
            return session

    return _BearerTokenAuthentication


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
        self._translator = ErrorTranslator(self.collection_url, token, timeout, retries)
        self._clients: list[Any] = []
        use_sdk_cache(cache_dir if cache_dir is not None else default_cache_dir())
        from msrest.authentication import BasicAuthentication

        creds: Any
        if token.scheme == "bearer":
            creds = _bearer_class()({"access_token": token.secret})
        else:
            creds = BasicAuthentication("", token.secret)
        self._connection = _connection_class()(
            self._configure, base_url=self.collection_url, creds=creds, user_agent=self.user_agent
        )

    # -- lifecycle --------------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the HTTP sessions of every SDK client created so far."""
        for client in self._clients:
            with contextlib.suppress(Exception):
                client.config.pipeline.__exit__()
        self._clients.clear()

    def __enter__(self) -> AzureDevOpsClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _configure(self, client: Any) -> None:
        """Timeout, retry policy and the reply hook for one SDK client, through its msrest configuration.

        msrest hands `retry_policy.policy` to requests' adapters when it starts a session, but the SDK client's
        first session starts in its constructor, before we get the client. So the policy is also put on the
        adapters of whatever session a request uses, from the per-request `session_configuration_callback`.
        """
        config = client.config
        retry = _BoundedRetry.create(self.retries, self.max_retry_after)
        config.connection.timeout = self.timeout
        config.retry_policy.policy = retry

        def use_our_retry(session: Any, global_config: Any, local_config: Any, **kwargs: Any) -> dict[str, Any]:
            for prefix in ("http://", "https://"):
                adapter = session.adapters.get(prefix)
                if adapter is not None and adapter.max_retries is not retry:
                    adapter.max_retries = retry
            return kwargs

        config.session_configuration_callback = use_our_retry
        config.hooks.append(self._replies.record)
        self._clients.append(client)

    # -- calls ------------------------------------------------------------------------------------------------------

    def whoami(self) -> Caller:
        """The identity behind the token (`GET _apis/ConnectionData`, valid with any scope)."""
        data = self._call(Operation("read who the token belongs to"), "location", lambda c: c.get_connection_data())
        user = getattr(data, "authenticated_user", None)
        if user is None:
            raise AzureDevOpsError(
                f"{self.collection_url} did not say who the token belongs to (ConnectionData without a user): "
                "check that the URL is an Azure DevOps organisation or collection"
            )
        descriptor = str(user.descriptor or "")
        kind, scope_id = _caller_kind(descriptor, str(data.instance_id or ""))
        return Caller(
            id=str(user.id),
            display_name=str(user.custom_display_name or user.provider_display_name or ""),
            descriptor=descriptor,
            subject_descriptor=user.subject_descriptor or None,
            unique_name=_account_name(user.properties),
            kind=kind,
            build_scope_id=scope_id,
        )

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
        operation = Operation(f"read {subject}", "vso.code", subject)
        try:
            repository = self._call(operation, "git", lambda git: git.get_repository(name_or_id, project=project))
        except NotFound:
            return None
        return _repository_info(repository)

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
        except Unavailable:
            try:
                existing = self.get_repository(project.id, name)
            except AzureDevOpsError:
                existing = None
            if existing is None:
                raise
            log.info("Azure DevOps: the create request for %s failed, but the repository exists", subject)
            return existing
        return _repository_info(created)

    def branch_head(self, repository: RepositoryInfo, branch: str) -> str | None:
        """The commit `refs/heads/<branch>` points at, None when the branch does not exist.

        The refs API's `filter` is a prefix (`heads/main` also lists `heads/main-old`), so names are compared
        exactly.
        """
        name = branch.removeprefix("refs/heads/")
        subject = f"repository '{repository.name}' in project '{repository.project_name}'"
        operation = Operation(f"read the branches of {subject}", "vso.code", subject)
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
        subject = f"repository '{repository.name}' in project '{repository.project_name}'"
        operation = Operation(f"read the branch policies of {subject}", "vso.code", subject)
        policies: list[BranchPolicy] = []
        continuation: str | None = None
        for _ in range(100):  # a bound, in case a server keeps handing out the same continuation token
            request = functools.partial(
                _policy_page, repository=repository, ref_name=ref_name, continuation=continuation
            )
            page = self._call(operation, "git", request)
            for item in page.policy_configurations or []:
                if item.is_enabled and not item.is_deleted:
                    type_name = str(getattr(item.type, "display_name", None) or getattr(item.type, "id", "") or "")
                    policies.append(BranchPolicy(id=int(item.id), type_name=type_name, blocking=bool(item.is_blocking)))
            continuation = page.continuation_token or None
            if continuation is None:
                break
        return policies

    def has_permissions(self, checks: Sequence[tuple[str, int]]) -> list[bool]:
        """For each (Git security token, bits): whether the caller has all the bits there.

        One PermissionEvaluationBatch call, with `alwaysAllowAdministrators` false so an administrator's real
        ACL is reported (a bootstrap pushes with real permissions, not with an admin short-cut).
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
        result = self._call(Operation("evaluate Git permissions"), "security", lambda c: c.has_permissions_batch(batch))
        values = [bool(evaluation.value) for evaluation in (result.evaluations or [])]
        if len(values) != len(checks):
            raise AzureDevOpsError(
                f"Azure DevOps at {self.collection_url} answered {len(values)} permission results for "
                f"{len(checks)} questions: run again, and report it if it persists"
            )
        return values

    def can_write_code(self, repository: RepositoryInfo) -> bool:
        """Whether the token carries the PAT scope vso.code_write ("Code (Read & write)"), without writing.

        A PAT cannot read its own scopes: the service documents no scope introspection for PATs (the PAT
        lifecycle API takes Microsoft Entra user tokens only; azure-devops.md §6.3). So this sends an update of
        *no* refs (`POST .../refs` with `[]`): the scope check comes first, so a 401 (TF400813 in the sandbox) means
        the scope is missing, while 400 (an empty list is invalid) or 403 (an ACL check) means the request got past
        it. The sandbox answers exactly so (`rest_refs.update_refs`); the real service's reply to a missing scope
        is not documented (azure-devops.md §6.2, §6.3), which is why the probe only distinguishes 401 from the rest.
        Nothing is changed either way. Job and Entra tokens are not scope-limited: they pass.
        """
        subject = f"repository '{repository.name}' in project '{repository.project_name}'"
        operation = Operation(f"update refs in {subject} (a harmless probe)", "vso.code_write", subject)
        return self._probe(operation, lambda git: git.update_refs([], repository.id, project=repository.project_id))

    def can_manage_code(self, project: ProjectInfo) -> bool:
        """Whether the token carries vso.code_manage ("Code (Read, write, & manage)"), needed to create a repository.

        Same idea as `can_write_code`: `POST .../git/repositories` without a name creates nothing; 401 TF400813
        means the scope is missing, 400 (the name is required) means it is there.
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

    def _probe(self, operation: Operation, call: Callable[[Any], object]) -> bool:
        """True when the request got past the scope check (400, 403 or success), False on a 401.

        Any 401 but an expired token counts as "scope missing": the service's reply to a missing scope is not
        documented (the sandbox sends TF400813), and callers have checked the token with `whoami` first.
        """
        try:
            self._call(operation, "git", call)
        except AuthenticationFailed as failure:
            if failure.reason in ("not-authorized", "invalid"):
                return False
            raise
        except AzureDevOpsError as failure:
            if failure.status in (400, 403):
                return True
            raise
        return True

    def _call(self, operation: Operation, area: Area, call: Callable[[Any], T]) -> T:
        """Run one SDK call with the `area` client (`location`, `core`, `git`, `security`).

        Getting the client is inside: the first one of an area asks the server for resource areas and locations,
        which can fail like any call. Whatever we understand leaves as a `flux_azdo.azdo.errors` type.
        """
        self._replies.last = None
        try:
            client = getattr(self._connection.clients, f"get_{area}_client")()
            return call(client)
        except Exception as error:
            translated = self._translator.translate(error, operation, self._replies.last)
            if translated is None:
                raise
            scrub_secrets(translated, self.token)
            raise translated from error


def _policy_page(git: Any, *, repository: RepositoryInfo, ref_name: str, continuation: str | None) -> Any:
    return git.get_policy_configurations(
        repository.project_id, repository_id=repository.id, ref_name=ref_name, continuation_token=continuation
    )


def _caller_kind(descriptor: str, instance_id: str) -> tuple[CallerKind, str | None]:
    """`ServiceIdentity;<host>:Build:<id>` is a build service: of the collection when <id> is the collection's
    own id (ConnectionData `instanceId`), else of the project <id>. `ClaimsIdentity;...` is a user."""
    kind, _, rest = descriptor.partition(";")
    if kind == _USER_DESCRIPTOR:
        return "user", None
    if kind == _SERVICE_DESCRIPTOR:
        parts = rest.split(":")
        if len(parts) >= 3 and parts[-2] == "Build" and parts[-1]:
            scope_id = parts[-1].lower()
            if instance_id and scope_id == instance_id.lower():
                return "collection-build-service", scope_id
            return "build-service", scope_id
    return "other", None


def _account_name(properties: Any) -> str | None:
    """The sign-in name from an Identity's properties (`{"Account": {"$type": ..., "$value": "..."}}`)."""
    if not isinstance(properties, dict):
        return None
    account = properties.get("Account")
    value = account.get("$value") if isinstance(account, dict) else account
    return str(value) if isinstance(value, str) and value else None


def _repository_info(repository: Any) -> RepositoryInfo:
    default = repository.default_branch
    project = repository.project
    return RepositoryInfo(
        id=str(repository.id),
        name=str(repository.name),
        project_id=str(project.id) if project is not None else "",
        project_name=str(project.name) if project is not None else "",
        default_branch=str(default).removeprefix("refs/heads/") if default else None,
        remote_url=str(repository.remote_url or ""),
        ssh_url=str(repository.ssh_url) if repository.ssh_url else None,
        web_url=str(repository.web_url or ""),
        is_disabled=bool(repository.is_disabled),
    )
