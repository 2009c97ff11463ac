"""The preflight behind `flux-azdo check`: what a bootstrap would need, and what is missing, before touching anything.

Flux learns about a missing permission from a failed push, after it has installed itself in the cluster. Here we
ask first: who the credential belongs to, whether the project, repository and branch exist (or may be created),
which Git permissions the Security API grants that identity on the exact branch token, whether a branch policy
blocks direct pushes, whether a PAT carries the scopes (a PAT cannot read its own scopes, so harmless calls probe
them), and whether git itself can read the repository over the chosen transport.

Everything here reads. The only POSTs are the permission batch (a read by design) and the scope probes, which
send bodies the service rejects before acting (400 means the scope is there, 401 that it is not).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from flux_azdo.azdo import fixes
from flux_azdo.azdo.client import AzureDevOpsClient, BranchPolicy, Caller, ProjectInfo, RepositoryInfo
from flux_azdo.azdo.credentials import AzureDevOpsToken
from flux_azdo.azdo.errors import AuthenticationFailed, AzureDevOpsError, NotFound, PermissionDenied, Unavailable
from flux_azdo.azdo.security import GitPermission, branch_token, project_token, repository_token
from flux_azdo.azdo.urls import RepositoryUrl
from flux_azdo.errors import UserError
from flux_azdo.git.auth import GitAuth, SshAuth, TokenAuth
from flux_azdo.git.errors import (
    BranchNotFound,
    GitAuthenticationFailed,
    GitPermissionDenied,
    HostKeyMismatch,
    KeyRejected,
    RepositoryNotFound,
)
from flux_azdo.git.ssh import SshKeyInfo, require_rsa
from flux_azdo.git.workspace import RemoteState, remote_state

Status = Literal["ok", "fail", "warn", "skip"]
ClusterCredential = Literal["token", "ssh", "workload-identity"]
BranchState = Literal["exists", "empty", "new", "missing", "new-repository"]

_AZURE_KINDS = ("services", "legacy", "server")
_BUILD_KINDS = ("build-service", "collection-build-service")
_KIND_WORDS = {
    "user": "user",
    "build-service": "project build service: a pipeline's job token",
    "collection-build-service": "project collection build service: a pipeline's job token",
    "other": "service principal or managed identity",
}
_T = TypeVar("_T")


@dataclass(frozen=True)
class CheckItem:
    key: str
    status: Status
    message: str
    fix: str | None = None
    command: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class CheckReport:
    url: str
    branch: str
    items: tuple[CheckItem, ...]
    caller: Caller | None
    repository: RepositoryInfo | None

    @property
    def can_proceed(self) -> bool:
        return all(item.status != "fail" for item in self.items)

    @property
    def verdict(self) -> Literal["ready", "blocked"]:
        return "ready" if self.can_proceed else "blocked"

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "branch": self.branch,
            "verdict": self.verdict,
            "caller": dataclasses.asdict(self.caller) if self.caller is not None else None,
            "repository": dataclasses.asdict(self.repository) if self.repository is not None else None,
            "checks": [item.to_json() for item in self.items],
        }


@dataclass(frozen=True)
class PreflightRequest:
    url: RepositoryUrl
    branch: str = "main"
    create_repository: bool = False
    create_branch: bool = False
    #: The REST API credential (None: only the git-level check runs).
    token: AzureDevOpsToken | None = None
    #: What git uses this run (None with an https URL and a token: the token).
    git_auth: GitAuth = None
    ssh_key: SshKeyInfo | None = None
    #: What the cluster will hold afterwards: decides the warnings about short-lived and expiring tokens.
    cluster_credential: ClusterCredential = "token"
    timeout: float = 30.0


def run_preflight(request: PreflightRequest) -> CheckReport:
    """Every check, in order; reads only, writes nothing. Failures become items, never exceptions."""
    return _Preflight(request).run()


_SYMBOLS: dict[Status, str] = {"ok": "✔", "fail": "✗", "warn": "⚠️ ", "skip": "–"}


def render_text(report: CheckReport) -> str:
    """One line per check, the fix (and command) indented below what is not ok, and a verdict line."""
    lines: list[str] = []
    for item in report.items:
        lines.append(f"{_SYMBOLS[item.status]} {item.message}")
        if item.status != "ok" and item.fix:
            lines.append(f"    fix: {item.fix}")
        if item.status != "ok" and item.command:
            lines.append(f"    or run: {item.command}")
    failures = sum(item.status == "fail" for item in report.items)
    if failures:
        problems = "1 problem" if failures == 1 else f"{failures} problems"
        lines.append(f"✗ blocked: fix the {problems} above, then run flux-azdo check again")
    else:
        notes = [
            f"{count} {word}{'s' if count > 1 and word == 'warning' else ''}"
            for word, status in (("warning", "warn"), ("skipped", "skip"))
            if (count := sum(item.status == status for item in report.items))
        ]
        noted = f" ({', '.join(notes)} above)" if notes else ""
        lines.append(f"✔ ready: nothing blocks a bootstrap of {report.url} on branch {report.branch}{noted}")
    return "\n".join(lines) + "\n"


class _Preflight:
    def __init__(self, request: PreflightRequest) -> None:
        self.request = request
        self.url = request.url
        self.branch = request.branch
        self.collection = request.url.collection_url
        self.head: list[CheckItem] = []  # token, identity
        self.scopes: list[CheckItem] = []
        self.resources: list[CheckItem] = []  # project, repository, branch
        self.permissions: list[CheckItem] = []
        self.git: list[CheckItem] = []
        self.warnings: list[CheckItem] = []
        self.client: AzureDevOpsClient | None = None
        self.caller: Caller | None = None
        self.project: ProjectInfo | None = None
        self.repository: RepositoryInfo | None = None
        self.branch_state: BranchState | None = None
        self.is_pat = False
        self.token_works = False
        self.repository_checked = False  # the REST API answered whether the repository exists

    # ----- orchestration -------------------------------------------------------------------------------------

    def run(self) -> CheckReport:
        try:
            self._azure_devops()
        finally:
            if self.client is not None:
                self.client.close()
        self._git_access()
        self._cluster_credential_warnings()
        items = (*self.head, *self.scopes, *self.resources, *self.permissions, *self.git, *self.warnings)
        return CheckReport(self.url.original, self.branch, items, self.caller, self.repository)

    def _call(self, bucket: list[CheckItem], key: str, call: Callable[[], _T]) -> tuple[bool, _T | None]:
        """Run one REST call; an error the service or network causes becomes a failing item with a fix."""
        try:
            return True, call()
        except AzureDevOpsError as exc:
            bucket.append(CheckItem(key, "fail", exc.message, fix=self._error_fix(exc)))
            return False, None

    def _error_fix(self, exc: AzureDevOpsError) -> str:
        if isinstance(exc, Unavailable):
            return f"check that {self.collection} is reachable from here, or allow more time with --timeout"
        if isinstance(exc, AuthenticationFailed):
            return fixes.regenerate_pat(self.collection)
        if isinstance(exc, NotFound):
            return "check the organisation, project and repository names in --url"
        if isinstance(exc, PermissionDenied):
            return "ask a project administrator for the permission the message names"
        return "run flux-azdo check again; if it persists, the message above is Azure DevOps' own"

    # ----- Azure DevOps (REST) -------------------------------------------------------------------------------

    def _azure_devops(self) -> None:
        url, token = self.url, self.request.token
        if url.kind not in _AZURE_KINDS:
            self.head.append(
                CheckItem(
                    "azure-devops",
                    "skip",
                    f"{url.host} is not an Azure DevOps host: only git access is checked (plain git, as flux "
                    "bootstrap git)",
                )
            )
            return
        if self.collection is None:
            self.head.append(
                CheckItem(
                    "token",
                    "skip",
                    "Azure DevOps checks skipped: the REST API address cannot be derived from this SSH URL",
                    fix="pass --organization with the collection URL, e.g. https://server/tfs/DefaultCollection",
                )
            )
            return
        if token is None:
            if url.transport == "ssh":
                self.head.append(
                    CheckItem(
                        "token",
                        "skip",
                        "Azure DevOps checks skipped (identity, repository, branch, permissions): no API token "
                        "for an SSH URL",
                        fix="set AZURE_DEVOPS_EXT_PAT to a PAT with Project and Team (Read) and Code (Read & write) "
                        "(or SYSTEM_ACCESSTOKEN in a pipeline), or pass --entra-auth",
                    )
                )
            else:
                self.head.append(
                    CheckItem(
                        "token",
                        "fail",
                        f"no token for {url.original}: an https URL needs a PAT or a job token",
                        fix="set GIT_PASSWORD, or pipe the token into --password-stdin, or pass --entra-auth",
                    )
                )
            return
        if not self._authenticate(token):
            return
        self._project_and_repository()
        self._branch()
        self._permissions()

    def _token_name(self, token: AzureDevOpsToken) -> str:
        if token.source == "job-token":
            return "the job token"
        if token.source == "entra":
            return "the Microsoft Entra token"
        return "the PAT"

    def _authenticate(self, token: AzureDevOpsToken) -> bool:
        assert self.collection is not None
        origin = f" from {token.origin}" if token.origin else ""
        try:
            self.client = AzureDevOpsClient(self.collection, token, timeout=self.request.timeout)
            self.caller = self.client.whoami()
        except AuthenticationFailed as exc:
            self.head.append(self._refused(token, exc))
            return False
        except AzureDevOpsError as exc:
            self.head.append(CheckItem("token", "fail", exc.message, fix=self._error_fix(exc)))
            return False
        except UserError as exc:
            self.head.append(CheckItem("token", "fail", exc.message, fix="check --url and --organization"))
            return False
        self.token_works = True
        caller = self.caller
        self.is_pat = token.source not in ("job-token", "entra") and caller.kind == "user"
        if self.is_pat:
            name = "the PAT"
        elif caller.kind in _BUILD_KINDS:
            name = "the job token"
        else:
            name = "the Microsoft Entra token" if token.source == "entra" else "the token"
        self.head.append(CheckItem("token", "ok", f"{name}{origin} works for {self.collection}"))
        self.head.append(
            CheckItem("identity", "ok", f"authenticated as {caller.display_name} ({_KIND_WORDS[caller.kind]})")
        )
        return True

    def _refused(self, token: AzureDevOpsToken, exc: AuthenticationFailed) -> CheckItem:
        name = self._token_name(token)
        tokens_page = fixes.tokens_page(self.collection or "")
        if token.source == "job-token":
            return CheckItem(
                "token",
                "fail",
                f"the job token was refused ({exc.reason}): it is valid only while the job that issued it runs",
                fix="pass $(System.AccessToken) of the running job (map it into the step's env), "
                "never a token saved from an earlier run",
            )
        if token.source == "entra":
            return CheckItem(
                "token",
                "fail",
                f"the Microsoft Entra token was refused ({exc.reason}): {exc.message}",
                fix="sign in again (az login, or the pipeline's workload identity service connection) and make sure "
                f"the identity was added to the organisation {self.collection}",
            )
        if exc.reason == "expired":
            return CheckItem("token", "fail", "the PAT has expired", fix=fixes.regenerate_pat(self.collection))
        if exc.reason == "sign-in":
            return CheckItem(
                "token",
                "fail",
                f"{self.collection} answered with a sign-in page instead of the API: the token was not accepted",
                fix=f"check that the URL is your organisation's and create a PAT for it at {tokens_page}",
            )
        if exc.reason == "not-authorized":
            return CheckItem(
                "token",
                "fail",
                f"{name} is valid but may not use {self.collection}: {exc.message}",
                fix="ask an organisation administrator to check the identity's access level and the "
                "Organization settings > Policies that block PATs or OAuth",
            )
        return CheckItem(
            "token",
            "fail",
            f"{self.collection} refused {name}: it is invalid, revoked, or belongs to another organisation",
            fix=f"create a PAT at {tokens_page} and pass it (GIT_PASSWORD or --password-stdin)",
        )

    def _scope(self, scope: str, present: bool) -> None:
        label = fixes.scope_label(scope)
        if present:
            self.scopes.append(CheckItem(f"scope:{scope}", "ok", f"the PAT has the {label}"))
        else:
            self.scopes.append(
                CheckItem(
                    f"scope:{scope}",
                    "fail",
                    f"the PAT lacks the {label}",
                    fix=fixes.missing_scope(scope, self.collection),
                )
            )

    def _project_and_repository(self) -> None:
        client, url = self.client, self.url
        assert client is not None and url.project is not None and url.repository is not None
        project_unknown = False
        try:
            self.project = client.get_project(url.project)
            if self.is_pat:
                self._scope("vso.project", True)
        except AuthenticationFailed as exc:
            project_unknown = True
            if self.is_pat:
                self._scope("vso.project", False)
            else:
                self.resources.append(
                    CheckItem("project", "fail", exc.message, fix=fixes.regenerate_pat(self.collection))
                )
        except AzureDevOpsError as exc:
            self.resources.append(CheckItem("project", "fail", exc.message, fix=self._error_fix(exc)))
            return
        if self.project is not None:
            self.resources.append(CheckItem("project", "ok", f"project {self.project.name} exists"))
        elif project_unknown and self.is_pat:
            self.resources.append(
                CheckItem("project", "skip", "project not checked: reading it needs the Project and Team (Read) scope")
            )
        elif not project_unknown:
            who = self.caller.display_name if self.caller else "this identity"
            self.resources.append(
                CheckItem(
                    "project",
                    "fail",
                    f"project {url.project!r} does not exist in {self.collection}, or {who} may not see it "
                    "(404: VS800075 / TF200016)",
                    fix=f"create the project at {self.collection}/_projects, fix the project in --url, "
                    f"or add {who} to the project",
                )
            )
            return

        try:
            self.repository = client.get_repository(url.project, url.repository)
            self.repository_checked = True
        except AuthenticationFailed as exc:
            if self.is_pat:
                self._scope("vso.code", False)
                self.resources.append(
                    CheckItem("repository", "skip", "repository not checked: reading it needs the Code (Read) scope")
                )
            else:
                self.resources.append(
                    CheckItem("repository", "fail", exc.message, fix=fixes.regenerate_pat(self.collection))
                )
            return
        except AzureDevOpsError as exc:
            self.resources.append(CheckItem("repository", "fail", exc.message, fix=self._error_fix(exc)))
            return
        if self.is_pat:
            self._scope("vso.code", True)
        repository = self.repository
        if repository is not None:
            self._existing_repository(repository)
            return
        where = f"project {url.project}"
        if self.request.create_repository:
            self.resources.append(
                CheckItem(
                    "repository",
                    "ok",
                    f"repository {url.repository} does not exist in {where}: --create-repo will create it",
                )
            )
            if self.is_pat and self.project is not None:
                project = self.project
                done, manage = self._call(self.scopes, "scope:vso.code_manage", lambda: client.can_manage_code(project))
                if done:
                    self._scope("vso.code_manage", bool(manage))
        else:
            self.resources.append(
                CheckItem(
                    "repository",
                    "fail",
                    f"repository {url.repository} does not exist in {where} "
                    "(or this identity may not read it: TF401019)",
                    fix=f"pass --create-repo, or create it at {self.collection}/{_path(url.project)}/_git, "
                    "or fix the repository name in --url",
                )
            )

    def _existing_repository(self, repository: RepositoryInfo) -> None:
        client = self.client
        assert client is not None
        if repository.is_disabled:
            self.resources.append(
                CheckItem(
                    "repository",
                    "fail",
                    f"repository {repository.name} is disabled: git and the API refuse to use it",
                    fix=fixes.enable_repository(repository.name),
                )
            )
            return
        state = f"default branch {repository.default_branch}" if repository.default_branch else "empty"
        self.resources.append(CheckItem("repository", "ok", f"repository {repository.name} exists ({state})"))
        if self.is_pat:
            done, write = self._call(self.scopes, "scope:vso.code_write", lambda: client.can_write_code(repository))
            if done:
                self._scope("vso.code_write", bool(write))

    def _branch(self) -> None:
        client, repository, branch = self.client, self.repository, self.branch
        if client is None:
            return
        if repository is None:
            if self.request.create_repository and self.project is not None and self.url.repository:
                self.branch_state = "new-repository"
                self.resources.append(
                    CheckItem("branch", "ok", f"the new repository will be empty: the first push creates {branch}")
                )
            return
        if repository.is_disabled:
            return
        done, head = self._call(self.resources, "branch", lambda: client.branch_head(repository, branch))
        if not done:
            return
        default = repository.default_branch
        if head is not None:
            self.branch_state = "exists"
            self.resources.append(CheckItem("branch", "ok", f"branch {branch} exists (at {head[:7]})"))
        elif default is None:
            self.branch_state = "empty"
            self.resources.append(
                CheckItem(
                    "branch",
                    "ok",
                    f"repository {repository.name} is empty: the push creates {branch} (needs Create branch)",
                )
            )
        elif self.request.create_branch:
            self.branch_state = "new"
            self.resources.append(
                CheckItem(
                    "branch",
                    "ok",
                    f"branch {branch} does not exist: --create-branch will create it from {default} "
                    "(needs Create branch)",
                )
            )
        else:
            self.branch_state = "missing"
            self.resources.append(
                CheckItem(
                    "branch",
                    "fail",
                    f"branch {branch} does not exist in {repository.name} (its default branch is {default}); "
                    "Flux would fail to clone it",
                    fix=f"pass --create-branch to create {branch} from {default}, or pass --branch {default}",
                )
            )

    # ----- Git permissions (Security API) --------------------------------------------------------------------

    def _permissions(self) -> None:
        client, caller, repository = self.client, self.caller, self.repository
        if client is None or caller is None:
            return
        # (permission, token to evaluate, parent token: tells a branch-level Deny from a missing repository Allow)
        wanted: list[tuple[GitPermission, str, str | None]] = []
        policies: list[BranchPolicy] = []
        if repository is not None and not repository.is_disabled:
            pid, rid = repository.project_id, repository.id
            on_branch, on_repository = branch_token(pid, rid, self.branch), repository_token(pid, rid)
            bits = [GitPermission.GENERIC_READ, GitPermission.GENERIC_CONTRIBUTE]
            if self.branch_state in ("empty", "new"):
                bits.append(GitPermission.CREATE_BRANCH)
            done, found = self._call(
                self.permissions, "policies", lambda: client.branch_policies(repository, self.branch)
            )
            if done and found:
                policies = [policy for policy in found if policy.blocking]
            if policies:
                bits.append(GitPermission.POLICY_EXEMPT)
            wanted = [(bit, on_branch, on_repository) for bit in bits]
        elif self.branch_state == "new-repository" and self.project is not None:
            on_project = project_token(self.project.id)
            bits = [
                GitPermission.CREATE_REPOSITORY,
                GitPermission.GENERIC_READ,
                GitPermission.GENERIC_CONTRIBUTE,
                GitPermission.CREATE_BRANCH,
            ]
            wanted = [(bit, on_project, None) for bit in bits]
        if not wanted:
            return
        checks: list[tuple[str, int]] = []
        for bit, token, parent in wanted:
            checks.append((token, int(bit)))
            if parent is not None:
                checks.append((parent, int(bit)))
        done, answers = self._call(self.permissions, "permissions", lambda: client.has_permissions(checks))
        if not done or answers is None:
            return
        results = iter(answers)
        for bit, token, parent in wanted:
            allowed = bool(next(results))
            parent_allowed = bool(next(results)) if parent is not None else False
            self.permissions.append(self._permission_item(bit, token, parent, allowed, parent_allowed, policies))

    def _permission_item(
        self,
        bit: GitPermission,
        token: str,
        parent: str | None,
        allowed: bool,
        parent_allowed: bool,
        policies: list[BranchPolicy],
    ) -> CheckItem:
        caller, repository, branch = self.caller, self.repository, self.branch
        assert caller is not None and self.collection is not None
        label = fixes.permission_label(bit)
        key = f"permission:{bit.name}"
        who = caller.display_name
        policy_names = ", ".join(sorted({f"'{p.type_name}'" for p in policies}))
        if repository is not None:
            where = f"repository {repository.name}, branch {branch}"
        else:
            project = self.project.name if self.project else self.url.project
            where = f"project {project} (all repositories, inherited by the new one)"
        if allowed:
            if bit is GitPermission.POLICY_EXEMPT:
                message = f"{who} has {label} on {where}: the policy {policy_names} does not block the push"
            else:
                message = f"{who} has {label} on {where}"
            return CheckItem(key, "ok", message)
        consequence = {
            GitPermission.GENERIC_READ: "git cannot read the repository",
            GitPermission.GENERIC_CONTRIBUTE: "the push would be rejected (TF401027)",
            GitPermission.CREATE_BRANCH: f"the push cannot create branch {branch} (TF401027)",
            GitPermission.CREATE_REPOSITORY: f"--create-repo cannot create {self.url.repository} (TF401027)",
            GitPermission.POLICY_EXEMPT: f"branch {branch} is protected by the branch policy {policy_names}, "
            "so a direct push would be rejected (TF402455)",
        }[bit]
        if parent is not None and parent_allowed:
            # The repository allows it, so a Deny on the branch itself is what stops it.
            level: fixes.Level = "branch"
            grant_on = token
        elif repository is not None:
            level, grant_on = "repository", parent or token
        else:
            level, grant_on = "project", token
        fix = fixes.security_path(
            bit, who, level=level, repository=repository.name if repository else None, branch=branch
        )
        if bit is GitPermission.POLICY_EXEMPT:
            fix = f"{fix}; {fixes.policy_alternative(branch)}"
        subject = caller.subject_descriptor or caller.unique_name or caller.descriptor
        command = fixes.grant_command(bit, subject=subject, token=grant_on, collection_url=self.collection)
        return CheckItem(key, "fail", f"{who} lacks {label} on {where}: {consequence}", fix=fix, command=command)

    # ----- git ------------------------------------------------------------------------------------------------

    def _git_access(self) -> None:
        url, request = self.url, self.request
        auth = request.git_auth
        if url.transport == "ssh":
            if not isinstance(auth, SshAuth) or request.ssh_key is None:
                self.git.append(
                    CheckItem(
                        "git",
                        "skip",
                        "git access over SSH not tried: no key",
                        fix="pass --private-key-file with the private key the bootstrap will use",
                    )
                )
                return
            if url.kind in _AZURE_KINDS and not self._rsa_key(request.ssh_key):
                return
        if self.repository_checked and (self.repository is None or self.repository.is_disabled):
            why = "does not exist yet" if self.repository is None else "is disabled"
            self.git.append(CheckItem("git", "skip", f"git access not tried: the repository {why}"))
            return
        if url.transport != "ssh":
            if auth is None and request.token is not None:
                auth = TokenAuth(request.token)
            if auth is None and url.kind in _AZURE_KINDS:
                self.git.append(CheckItem("git", "skip", "git access not tried: Azure Repos needs a token over HTTPS"))
                return
            if request.token is not None and self.client is not None and not self.token_works:
                self.git.append(CheckItem("git", "skip", "git access not tried: the token does not work (above)"))
                return
        try:
            state = remote_state(url.git_url, auth, timeout=request.timeout)
        except UserError as exc:
            self.git.append(CheckItem("git", "fail", exc.message, fix=self._git_fix(exc)))
            return
        over = {"ssh": "SSH", "https": "HTTPS", "http": "HTTP"}[url.transport]
        key = request.ssh_key
        detail = f" ({key.algorithm.upper()} {key.bits})" if url.transport == "ssh" and key and key.bits else ""
        self.git.append(CheckItem("git", "ok", f"git can read {url.original} over {over}{detail}{_summary(state)}"))
        if self.branch_state is None:
            self._branch_from_git(state)

    def _rsa_key(self, key: SshKeyInfo) -> bool:
        try:
            require_rsa(key, self.url.host)
        except UserError as exc:
            where = fixes.ssh_keys_page(self.collection) if self.collection else "User settings > SSH public keys"
            self.git.append(
                CheckItem(
                    "ssh-key",
                    "fail",
                    exc.message,
                    fix=f"create an RSA key (ssh-keygen -t rsa -b 4096 -f flux-azdo), add its .pub at {where}, "
                    "and pass it with --private-key-file",
                )
            )
            self.git.append(CheckItem("git", "skip", "git access over SSH not tried: Azure DevOps refuses this key"))
            return False
        size = f" {key.bits}" if key.bits else ""
        self.git.append(
            CheckItem(
                "ssh-key",
                "ok",
                f"the SSH key is RSA{size} ({key.fingerprint}): Azure DevOps accepts it with rsa-sha2-512/256 "
                "signatures",
            )
        )
        return True

    def _git_fix(self, exc: UserError) -> str:
        if isinstance(exc, KeyRejected):
            where = fixes.ssh_keys_page(self.collection) if self.collection else "the server's SSH keys page"
            return f"add the public key of --private-key-file at {where}"
        if isinstance(exc, HostKeyMismatch):
            return "check the server's host key and pass the right known_hosts file with --ssh-known-hosts"
        if isinstance(exc, GitAuthenticationFailed):
            return fixes.regenerate_pat(self.collection)
        if isinstance(exc, GitPermissionDenied):
            return "grant the permission the message names (see the permission checks above)"
        if isinstance(exc, (RepositoryNotFound, BranchNotFound)):
            return "check the repository in --url, or pass --create-repo"
        return "check --url and the credential, then run flux-azdo check again"

    def _branch_from_git(self, state: RemoteState) -> None:
        """Without the REST API (plain git, or SSH without an API token) the remote's refs still tell the branch."""
        branch = self.branch
        if branch in state.heads:
            self.git.append(CheckItem("branch", "ok", f"branch {branch} exists (at {state.heads[branch][:7]})"))
        elif not state.heads:
            self.git.append(CheckItem("branch", "ok", f"the repository is empty: the push creates {branch}"))
        elif self.request.create_branch:
            source = state.default_branch or "the default branch"
            self.git.append(
                CheckItem(
                    "branch", "ok", f"branch {branch} does not exist: --create-branch will create it from {source}"
                )
            )
        else:
            source = state.default_branch or next(iter(sorted(state.heads)))
            self.git.append(
                CheckItem(
                    "branch",
                    "fail",
                    f"branch {branch} does not exist (the default branch is {source}); Flux would fail to clone it",
                    fix=f"pass --create-branch to create {branch} from {source}, or pass --branch {source}",
                )
            )

    # ----- what the cluster will hold ------------------------------------------------------------------------

    def _cluster_credential_warnings(self) -> None:
        request, caller, token = self.request, self.caller, self.request.token
        if request.cluster_credential != "token" or token is None:
            return
        own_credential = (
            "give the cluster its own credential: a PAT (GIT_PASSWORD), an SSH key (an ssh:// URL with "
            "--private-key-file), or --provider azure (workload identity)"
        )
        if token.source == "job-token" or (caller is not None and caller.kind in _BUILD_KINDS):
            self.warnings.append(
                CheckItem(
                    "cluster-credential",
                    "warn",
                    "the job token is this run's credential only: it stops working when the job ends, so it must "
                    "not be the cluster's credential",
                    fix=own_credential,
                )
            )
        elif token.source == "entra":
            self.warnings.append(
                CheckItem(
                    "cluster-credential",
                    "warn",
                    "a Microsoft Entra token lives about an hour: it must not be the cluster's credential",
                    fix=own_credential,
                )
            )
        elif self.is_pat:
            self.warnings.append(
                CheckItem(
                    "pat-expiry",
                    "warn",
                    "the PAT will be stored in the cluster (Secret flux-system): Flux stops syncing when it expires",
                    fix="use --provider azure (workload identity: nothing to expire) or an SSH key; otherwise "
                    "renew the PAT before its expiry date and update the Secret",
                )
            )


def _summary(state: RemoteState) -> str:
    if not state.heads:
        return " (empty repository)"
    count = len(state.heads)
    return f" ({count} branch{'es' if count > 1 else ''})"


def _path(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")
