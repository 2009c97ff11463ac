"""The sandbox's configured data: the organisation, its projects and repositories, and who may do what.

Everything the fake Azure DevOps (HTTP and SSH) decides comes from here, so tests set up a scenario by calling
these methods and then talk to the servers with real clients. The model follows the service:

* identities are users (PATs with scopes and an expiry, SSH keys), the project build service (whose job token is
  a bearer token that ends with the job: `revoke_job_token`), the project collection build service, and managed
  identities federated by client id (workload identity: `workload_token(client_id)` stands in for Entra ID
  issuing a token to the cluster: valid for an hour, and handed out again until it is close to expiry);
* permissions are ACEs (allow/deny bit masks) per identity on security tokens of the Git namespace, evaluated
  hierarchically as the service does (see `sandbox.azure_devops.security`);
* `project_rights` presets stand for membership of the project groups (Project Administrators, Contributors,
  Readers): their grants sit on `repoV2/<projectId>` for every project, now and later; the creator of a branch
  gets ForcePush and ManagePermissions on it (`grant_branch_creator`), as in the service;
* branch policies: a *required* policy on a branch rejects direct pushes with TF402455 unless PolicyExempt;
* SSH public keys per identity (`add_ssh_key`, `remove_ssh_key`): like the service's "SSH public keys" page, a
  change counts from the next connection on; the SSH endpoint follows it through `on_ssh_keys_changed`;
* disabled repositories (`disable_repository`): listed with `isDisabled: true`, refused for git and for the
  REST calls inside them, as the service does for a repository an administrator disabled;
* service connections (`add_service_connection`, `issuer="entra"` by default or `"vstoken"`) and the pipeline
  OIDC tokens issued for them (`issue_oidc_token`, RS256 with the world's key, `oidc_public_key` for whoever trusts
  the issuers): the Microsoft Entra issuer `https://login.microsoftonline.com/<tenant>/v2.0` with subject
  `/eid1/c/pub/t/<tenant>/a/<Azure DevOps app>/sc/<org id>/<connection id>` and `aud` the token exchange app, or
  the Azure DevOps issuer `https://vstoken.dev.azure.com/<org id>` with subject `sc://<org>/<project>/<name>` and
  `aud` `api://AzureADTokenExchange` (see `sandbox.azure.ids`); `oidc_issuer_for(connection)` and
  `oidc_subject(connection)` give what its federated credential must name;
* secure files (`add_secure_file`): bytes downloaded with the ticket the agent gets for the job;
* Microsoft Entra tokens for Azure DevOps (`set_entra_verifier`): an Entra token whose `appid` is federated
  (`federate`) is that identity, as a service principal added to the organisation is.

Two stand-ins for "Entra ID gives a workload a token for Azure DevOps": `workload_token(client_id)` is the cheap
one, for Flux's source-controller in the simulator (no Azure needed; the token is a random JWT only this world
knows). With `SandboxOptions(azure=True)`, real Entra tokens from the sandbox Entra ID (azure-identity,
`<499b84ac-...>/.default`) are accepted through `set_entra_verifier`: tests that drive azure-identity use those.

All ids are lowercase GUID strings. One re-entrant lock guards the whole world; servers read it from many
threads.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import shlex
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives.asymmetric import rsa

from flux_azdo.sandbox.azure import ids
from flux_azdo.sandbox.azure.tokens import process_key, sign, unsigned_jwt
from flux_azdo.sandbox.azure_devops import security

ProjectRights = Literal["admin", "contributor", "reader", "none"]
IdentityKind = Literal["user", "build", "managed"]
CredentialKind = Literal["pat", "job", "workload", "entra"]
#: `token -> claims` of a valid Microsoft Entra token for Azure DevOps, else None (see `World.set_entra_verifier`).
EntraVerifier = Callable[[str], Mapping[str, object] | None]

OidcIssuerKind = Literal["entra", "vstoken"]
OIDC_AUDIENCE = ids.TOKEN_EXCHANGE_AUDIENCE
#: How long a pipeline OIDC token is valid. UNVERIFIED: the service's lifetime is not documented; tokens seen in
#: public traces were good for minutes, not hours.
OIDC_TOKEN_SECONDS = 600

# Scope implications of PATs ("Code: Read, write & manage" includes "Read & write", which includes "Read").
_SCOPE_IMPLIES: dict[str, frozenset[str]] = {
    "vso.code_full": frozenset({"vso.code_manage", "vso.code_write", "vso.code", "vso.code_status"}),
    "vso.code_manage": frozenset({"vso.code_write", "vso.code", "vso.code_status"}),
    "vso.code_write": frozenset({"vso.code"}),
    "vso.project_manage": frozenset({"vso.project_write", "vso.project"}),
    "vso.project_write": frozenset({"vso.project"}),
}
FULL_ACCESS_SCOPE = "app_token"  # what a "Full access" PAT carries

_RIGHTS_BITS: dict[str, int] = {
    "admin": security.ADMIN_PERMISSIONS,
    "contributor": security.CONTRIBUTOR_PERMISSIONS,
    "reader": security.READER_PERMISSIONS,
    "none": 0,
}

# An Entra ID access token lives an hour; a workload asking again gets the same token until it nears expiry.
WORKLOAD_TOKEN_SECONDS = 3600.0
WORKLOAD_TOKEN_REFRESH_MARGIN = 300.0

#: Key types OpenSSH writes in front of the base64 blob; anything before one of these is an option list.
_KEY_TYPE_PREFIXES = ("ssh-", "ecdsa-sha2-", "sk-", "rsa-sha2-")

# Same git for every repository, whatever the user's ~/.gitconfig says (templates, init.defaultBranch, hooks).
_GIT_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_TERMINAL_PROMPT": "0"}

RECEIVE_HOOK = Path(__file__).resolve().parent / "azure_devops" / "receive_hook.py"


class AuthenticationFailed(Exception):
    """The Authorization header does not identify anybody.

    `reason` tells the servers which 401 to send: `missing` (no header), `invalid` (unknown token or
    malformed header), `expired` (a PAT past its expiry) or `revoked` (a job token after the job ended).
    """

    def __init__(self, message: str, reason: Literal["missing", "invalid", "expired", "revoked"] = "invalid") -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


@dataclass(eq=False)
class Project:
    id: str
    name: str
    description: str = ""
    last_update_time: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    revision: int = 1


@dataclass(eq=False)
class Repository:
    id: str
    name: str
    project: Project
    git_dir: Path
    default_branch: str | None = None  # "refs/heads/main" once the first branch was pushed
    # Project settings > Repositories > Disable repository: the data stays, nobody can read or push it.
    is_disabled: bool = False


@dataclass(eq=False)
class Identity:
    id: str
    display_name: str
    descriptor: str
    kind: IdentityKind
    subject_descriptor: str = ""
    unique_name: str = ""  # sign-in name (users), `Build\<projectId>` (build service), client id (managed)
    project_id: str | None = None  # the project of a build service identity
    # How TF401027 names the identity: `Build\<projectId>` (project build service), `Build\<collectionId>`
    # (collection build service), `<tenantId>\<sign-in name>` (users), `<tenantId>\<object id>` (managed).
    error_name: str = ""


@dataclass(frozen=True, eq=False)
class Credential:
    """A verified credential: whose it is and, for a PAT, which scopes it carries (None: not scope-limited)."""

    identity: Identity
    kind: CredentialKind
    scopes: frozenset[str] | None = None

    def has_scope(self, *accepted: str) -> bool:
        """True when the credential carries one of `accepted` (directly or through a broader scope)."""
        if self.scopes is None or FULL_ACCESS_SCOPE in self.scopes:
            return True
        held = set(self.scopes)
        for scope in self.scopes:
            held |= _SCOPE_IMPLIES.get(scope, frozenset())
        return any(scope in held for scope in accepted)


@dataclass(eq=False)
class ServiceConnection:
    """A service connection (service endpoint) of a project: `kind` is its type ("AzureRM", "kubernetes", ...);
    `data` and `authorization` (scheme + parameters) are what the agent hands a task as ENDPOINT_* variables."""

    id: str
    name: str
    project: Project
    kind: str = "AzureRM"
    data: dict[str, str] = field(default_factory=dict)
    authorization: dict[str, object] = field(default_factory=dict)
    #: Who issues its pipeline OIDC tokens: Microsoft Entra (the service's default since 2025) or Azure DevOps.
    issuer: OidcIssuerKind = "entra"


@dataclass(frozen=True, eq=False)
class SecureFile:
    id: str
    name: str
    project: Project
    data: bytes
    ticket: str


@dataclass(frozen=True, eq=False)
class _Pat:
    identity: Identity
    scopes: frozenset[str]
    expires: datetime | None


@dataclass(eq=False)
class BranchPolicy:
    """A branch policy configuration; `blocking` (required) policies reject direct pushes."""

    id: int
    repository: Repository
    ref_name: str
    blocking: bool
    created_by: Identity | None
    created_date: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    # "Minimum number of reviewers", the policy that most often protects a main branch.
    type_id: str = "fa4e907d-c16b-4a4c-9dfa-4906e5d171dd"
    type_display_name: str = "Minimum number of reviewers"


def new_id() -> str:
    return str(uuid.uuid4())


def public_key_entry(public_key_line: str) -> str:
    """`type blob` of an OpenSSH public key line (options in front and the comment dropped); ValueError if none.

    Two lines name the same key exactly when their entries are equal, whatever their comments.
    """
    words = public_key_line.split()
    for index, word in enumerate(words):
        if word.startswith(_KEY_TYPE_PREFIXES) and index + 1 < len(words):
            blob = words[index + 1]
            if blob.startswith("AAAA") and _is_base64(blob):
                return f"{word} {blob}"
    raise ValueError(f"not an OpenSSH public key line: {public_key_line[:60]!r}")


def _is_base64(text: str) -> bool:
    return text.isascii() and text.rstrip("=").replace("+", "").replace("/", "").isalnum()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", ".", text.lower()).strip(".") or "user"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _fake_jwt(claims: dict[str, object]) -> str:
    """A token that looks like the service's JWTs (header.payload.signature); only the world can verify it."""
    return unsigned_jwt(claims)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


class World:
    """The organisation and everything configured in it. Thread-safe (one RLock)."""

    def __init__(self, org: str, repos_root: Path) -> None:
        self.org = org
        self.org_id = new_id()
        self.deployment_id = new_id()
        self.tenant_id = new_id()
        self.repos_root = Path(repos_root)
        self.repos_root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._projects: dict[str, Project] = {}
        self._repositories: dict[str, Repository] = {}
        self._identities: dict[str, Identity] = {}
        self._rights: dict[str, ProjectRights] = {}
        self._build_services: dict[str, Identity] = {}
        self._pats: dict[str, _Pat] = {}
        self._job_tokens: dict[str, Identity] = {}
        self._revoked_job_tokens: set[str] = set()
        self._federations: dict[str, Identity] = {}
        # token -> (identity, expiry on `clock`), and the token currently handed out per client id
        self._workload_tokens: dict[str, tuple[Identity, float]] = {}
        self._workload_token_by_client: dict[str, str] = {}
        self._collection_build_service: Identity | None = None
        # Seconds since the epoch; tests replace it to move time forward (workload token expiry).
        self.clock: Callable[[], float] = time.time
        self._ssh_keys: list[tuple[Identity, str]] = []
        self._ssh_key_listeners: list[Callable[[], None]] = []
        # identity id -> normalized token -> [allow, deny]; explicit ACEs and project-group presets are kept
        # apart so that an explicit allow/deny on repoV2/<projectId> does not erase the group's grant.
        self._aces: dict[str, dict[str, list[int]]] = {}
        self._preset_aces: dict[str, dict[str, list[int]]] = {}
        self._policies: dict[int, BranchPolicy] = {}
        self._next_policy_id = 1
        self._connections: dict[str, ServiceConnection] = {}
        self._secure_files: dict[str, SecureFile] = {}
        self._entra_verifier: EntraVerifier | None = None
        # The object id of Azure DevOps' service principal in the tenant (the `oid` of Entra-issued OIDC tokens).
        self._azure_devops_principal = new_id()

    # ----- projects and repositories -----------------------------------------------------------------------

    def add_project(self, name: str, *, description: str = "") -> Project:
        with self._lock:
            if self.find_project(name) is not None:
                raise ValueError(f"project {name!r} already exists")
            project = Project(id=new_id(), name=name, description=description)
            self._projects[project.id] = project
            for identity_id, rights in self._rights.items():
                self._grant_preset(identity_id, project, rights)
            return project

    def projects(self) -> list[Project]:
        with self._lock:
            return list(self._projects.values())

    def create_repository(self, project: Project, name: str) -> Repository:
        """A new empty repository: a bare git repository with the push hook, no branches, no default branch."""
        with self._lock:
            if self.find_repository(project, name) is not None:
                raise ValueError(f"repository {name!r} already exists in {project.name!r}")
            repository_id = new_id()
            repository = Repository(repository_id, name, project, self.repos_root / f"{repository_id}.git")
            _init_bare(repository.git_dir)
            self._repositories[repository.id] = repository
            return repository

    def repositories(self, project: Project | None = None) -> list[Repository]:
        with self._lock:
            return [r for r in self._repositories.values() if project is None or r.project is project]

    def find_project(self, name_or_id: str) -> Project | None:
        """By id, or by name case-insensitively (as the service resolves `{project}` route values)."""
        with self._lock:
            key = name_or_id.strip()
            found = self._projects.get(key.lower())
            if found is not None:
                return found
            folded = key.casefold()
            return next((p for p in self._projects.values() if p.name.casefold() == folded), None)

    def find_repository(self, project: Project | None, name_or_id: str) -> Repository | None:
        """By id (anywhere, or inside `project`), or by name inside `project`, case-insensitively."""
        with self._lock:
            key = name_or_id.strip()
            found = self._repositories.get(key.lower())
            if found is not None and (project is None or found.project is project):
                return found
            if project is None:
                return None
            folded = key.casefold()
            return next(
                (r for r in self._repositories.values() if r.project is project and r.name.casefold() == folded),
                None,
            )

    def disable_repository(self, repository: Repository) -> None:
        """Disable a repository (Project settings > Repositories > Disable repository).

        It keeps its data and still shows in the repository list (REST `isDisabled: true`), but git fetches and
        pushes (HTTP and SSH) and the REST calls inside it (refs, branch stats, ref updates) are answered like
        a missing repository, TF401019 (renovate#13013 shows `git clone` of a disabled repository failing with
        it; BroomBot#28 the REST calls).
        """
        with self._lock:
            repository.is_disabled = True

    def enable_repository(self, repository: Repository) -> None:
        """Undo `disable_repository`: everything works again as before."""
        with self._lock:
            repository.is_disabled = False

    def set_default_branch(self, repository: Repository, ref: str | None) -> None:
        """Point HEAD (and the REST `defaultBranch`) at `ref`; None: the repository has no default branch.

        None is what deleting the default branch leads to: HEAD is left pointing at the missing ref, which git
        does not advertise, and REST stops reporting `defaultBranch`.
        """
        with self._lock:
            if ref is not None:
                _git(repository.git_dir, "symbolic-ref", "HEAD", ref)
            repository.default_branch = ref

    # ----- identities and credentials ---------------------------------------------------------------------

    def add_user(self, display_name: str, *, project_rights: ProjectRights = "contributor") -> Identity:
        """A user (Entra ID account); `project_rights` stands for membership of a project group in every project."""
        email = f"{_slug(display_name)}@sandbox.example"
        identity = Identity(
            id=new_id(),
            display_name=display_name,
            descriptor=f"Microsoft.IdentityModel.Claims.ClaimsIdentity;{self.tenant_id}\\{email}",
            kind="user",
            subject_descriptor="aad." + _b64(new_id().encode()).rstrip("="),
            unique_name=email,
            error_name=f"{self.tenant_id}\\{email}",
        )
        return self._register(identity, project_rights)

    def add_managed_identity(self, display_name: str, *, project_rights: ProjectRights = "contributor") -> Identity:
        """A managed identity (service principal) added to the organisation, usable through `federate`."""
        object_id = new_id()
        identity = Identity(
            id=new_id(),
            display_name=display_name,
            descriptor=f"Microsoft.VisualStudio.Services.Claims.AadServicePrincipal;{self.tenant_id}\\{object_id}",
            kind="managed",
            subject_descriptor="aadsp." + _b64(object_id.encode()).rstrip("="),
            unique_name=object_id,
            error_name=f"{self.tenant_id}\\{object_id}",
        )
        return self._register(identity, project_rights)

    def build_service(self, project: Project) -> Identity:
        """`<Project> Build Service (<org>)`, created on first use with the service's default: Read and CreateTag.

        Read is "Allow (system)" in the service's repository security page, CreateTag "Allow"
        (azure-devops-docs#6075); Contribute, CreateBranch and the rest are not set.
        """
        with self._lock:
            existing = self._build_services.get(project.id)
            if existing is not None:
                return existing
            identity = Identity(
                id=new_id(),
                display_name=f"{project.name} Build Service ({self.org})",
                descriptor=f"Microsoft.TeamFoundation.ServiceIdentity;{self.org_id}:Build:{project.id}",
                kind="build",
                subject_descriptor="svc." + _b64(f"{self.org_id}:Build:{project.id}".encode()).rstrip("="),
                unique_name=f"Build\\{project.id}",
                project_id=project.id,
                error_name=f"Build\\{project.id}",
            )
            self._identities[identity.id] = identity
            self._build_services[project.id] = identity
            self._add_ace(
                self._preset_aces,
                identity,
                security.project_token(project.id),
                security.BUILD_SERVICE_PERMISSIONS,
                0,
            )
            return identity

    def collection_build_service(self) -> Identity:
        """`Project Collection Build Service (<org>)`: pipelines whose job scope is the whole organisation.

        Created on first use, with the same default as a project build service on every repository
        (`repoV2`), and member of every project.
        """
        with self._lock:
            if self._collection_build_service is not None:
                return self._collection_build_service
            identity = Identity(
                id=new_id(),
                display_name=f"Project Collection Build Service ({self.org})",
                descriptor=f"Microsoft.TeamFoundation.ServiceIdentity;{self.org_id}:Build:{self.org_id}",
                kind="build",
                subject_descriptor="svc." + _b64(f"{self.org_id}:Build:{self.org_id}".encode()).rstrip("="),
                unique_name=f"Build\\{self.org_id}",
                error_name=f"Build\\{self.org_id}",
            )
            self._identities[identity.id] = identity
            self._collection_build_service = identity
            self._add_ace(self._preset_aces, identity, security.ROOT_TOKEN, security.BUILD_SERVICE_PERMISSIONS, 0)
            return identity

    def identity(self, identity_id: str) -> Identity | None:
        with self._lock:
            return self._identities.get(identity_id.lower())

    def identities(self) -> list[Identity]:
        with self._lock:
            return list(self._identities.values())

    def issue_pat(self, identity: Identity, scopes: Iterable[str], *, expires: datetime | None = None) -> str:
        """A personal access token for `identity` (52 characters of base32, like the service's classic PATs)."""
        alphabet = "abcdefghijklmnopqrstuvwxyz234567"
        token = "".join(secrets.choice(alphabet) for _ in range(52))
        with self._lock:
            self._pats[token] = _Pat(identity, frozenset(scopes), None if expires is None else _aware(expires))
        return token

    def issue_job_token(self, identity: Identity) -> str:
        """A job access token (System.AccessToken) for a build service identity: a bearer JWT."""
        token = _fake_jwt(
            {"nameid": identity.id, "scp": "app_token", "aui": new_id(), "iss": "app.vstoken.visualstudio.com"}
        )
        with self._lock:
            self._job_tokens[token] = identity
        return token

    def revoke_job_token(self, token: str) -> None:
        """The job ended: the token is refused from now on (401)."""
        with self._lock:
            if self._job_tokens.pop(token, None) is not None:
                self._revoked_job_tokens.add(token)

    def add_ssh_key(self, identity: Identity, public_key_line: str) -> None:
        """Register a public key for `identity`; running SSH endpoints accept it from the next connection on.

        The line must hold an OpenSSH public key (`ssh-rsa AAAA... comment`; ValueError otherwise, as the
        service's key page refuses what it cannot parse). Keys of every type are kept, ed25519 included: the
        SSH endpoint then refuses them for their signature algorithm, as Azure DevOps does.
        """
        public_key_entry(public_key_line)
        with self._lock:
            self._ssh_keys.append((identity, public_key_line.strip()))
        self._ssh_keys_changed()

    def remove_ssh_key(self, identity: Identity, public_key_line: str) -> bool:
        """Delete `identity`'s registration of this key (compared by type and blob, not comment).

        False when it was not registered for `identity`. Connections already open keep running; the next
        one with this key is refused (`Permission denied (publickey)`).
        """
        entry = public_key_entry(public_key_line)
        with self._lock:
            kept = [(i, line) for i, line in self._ssh_keys if i is not identity or public_key_entry(line) != entry]
            removed = len(kept) != len(self._ssh_keys)
            self._ssh_keys = kept
        if removed:
            self._ssh_keys_changed()
        return removed

    def ssh_keys(self) -> list[tuple[Identity, str]]:
        with self._lock:
            return list(self._ssh_keys)

    def on_ssh_keys_changed(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener` after every change of the SSH keys; returns the function that unsubscribes it.

        Listeners run in the thread that made the change, after the change and outside the world's lock, so
        `add_ssh_key` returns only once every listener is done (an SSH endpoint has rewritten its
        authorized_keys): the next connection sees the change. A listener reads `ssh_keys()` itself, so
        concurrent changes need no ordering here: whichever listener call runs last reads them all.
        """
        with self._lock:
            self._ssh_key_listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._ssh_key_listeners:
                    self._ssh_key_listeners.remove(listener)

        return unsubscribe

    def _ssh_keys_changed(self) -> None:
        with self._lock:
            listeners = list(self._ssh_key_listeners)
        for listener in listeners:
            listener()

    def federate(self, identity: Identity, client_id: str) -> None:
        """Trust workload-identity tokens for `client_id` as `identity` (a federated credential on the app)."""
        with self._lock:
            self._federations[client_id.strip().lower()] = identity

    def workload_token(self, client_id: str) -> str | None:
        """A bearer token for a federated client id (what Entra ID would hand the workload), else None.

        Like Entra ID's token cache, the same token comes back until it is within five minutes of its one-hour
        expiry; expired tokens are forgotten, so a long-running sandbox does not accumulate them.
        """
        key = client_id.strip().lower()
        with self._lock:
            identity = self._federations.get(key)
            if identity is None:
                return None
            now = self.clock()
            for token in [t for t, (_, expires) in self._workload_tokens.items() if expires <= now]:
                del self._workload_tokens[token]
            current = self._workload_token_by_client.get(key)
            if current is not None and current in self._workload_tokens:
                owner, expires = self._workload_tokens[current]
                if owner is identity and expires - now > WORKLOAD_TOKEN_REFRESH_MARGIN:
                    return current
            expires = now + WORKLOAD_TOKEN_SECONDS
            claims: dict[str, object] = {
                "aud": ids.AZURE_DEVOPS_APP,
                "appid": client_id,
                "oid": identity.id,
                "iat": int(now),
                "exp": int(expires),
            }
            token = _fake_jwt(claims)
            self._workload_tokens[token] = (identity, expires)
            self._workload_token_by_client[key] = token
            return token

    def authenticate(self, authorization_header: str | None) -> Identity:
        """The identity behind an Authorization header; raises AuthenticationFailed."""
        return self.authenticate_credential(authorization_header).identity

    def authenticate_credential(self, authorization_header: str | None) -> Credential:
        """Like `authenticate`, with the credential's kind and scopes (the servers check scopes per call).

        Basic: any user name, the password is a PAT or a job token (pipelines also send the job token that
        way). Bearer: a job token or a workload-identity token.
        """
        if not authorization_header or not authorization_header.strip():
            raise AuthenticationFailed("No credentials were supplied.", "missing")
        scheme, _, value = authorization_header.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(value, validate=True).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                raise AuthenticationFailed("The Authorization header is malformed.") from None
            _, _, token = decoded.partition(":")
            return self._verify_token(token, allow_pat=True)
        if scheme.lower() == "bearer":
            return self._verify_token(value, allow_pat=False)
        raise AuthenticationFailed(f"Unsupported authorization scheme {scheme!r}.")

    def _verify_token(self, token: str, *, allow_pat: bool) -> Credential:
        with self._lock:
            pat = self._pats.get(token) if allow_pat else None
            if pat is not None:
                if pat.expires is not None and pat.expires <= datetime.now(timezone.utc):
                    raise AuthenticationFailed("Access Denied: The Personal Access Token used has expired.", "expired")
                return Credential(pat.identity, "pat", pat.scopes)
            job = self._job_tokens.get(token)
            if job is not None:
                return Credential(job, "job")
            workload = self._workload_tokens.get(token)
            if workload is not None and token.count(".") == 2:
                identity, expires = workload
                if expires <= self.clock():
                    raise AuthenticationFailed("The access token has expired.", "invalid")
                return Credential(identity, "workload")
            if token in self._revoked_job_tokens:
                raise AuthenticationFailed("The access token is no longer valid: the job has ended.", "revoked")
            verifier = self._entra_verifier
        if verifier is not None and not allow_pat and token.count(".") == 2:
            claims = verifier(token)
            if claims is not None:
                with self._lock:
                    federated = self._federations.get(str(claims.get("appid", "")).lower())
                if federated is not None:
                    return Credential(federated, "entra")
        raise AuthenticationFailed("The token is not valid.", "invalid")

    def set_entra_verifier(self, verifier: EntraVerifier | None) -> None:
        """Accept bearer Microsoft Entra tokens for Azure DevOps: `verifier(token)` returns their claims when the
        token is valid (signature, audience, expiry); the identity federated (`federate`) with the token's `appid`
        is the caller. Tokens of principals the organisation does not know are refused (401)."""
        with self._lock:
            self._entra_verifier = verifier

    # ----- service connections, pipeline OIDC tokens, secure files ----------------------------------------

    @property
    def oidc_issuer(self) -> str:
        """The Azure DevOps issuer of this organisation's pipeline OIDC tokens (connections with `issuer="vstoken"`)."""
        return ids.vstoken_issuer(self.org_id)

    @property
    def entra_oidc_issuer(self) -> str:
        """The Microsoft Entra issuer of pipeline OIDC tokens (connections with `issuer="entra"`, the default)."""
        return ids.entra_issuer(self.tenant_id)

    def oidc_issuer_for(self, connection: ServiceConnection) -> str:
        """The `iss` of `connection`'s OIDC tokens: what its federated identity credential names as issuer."""
        return self.entra_oidc_issuer if connection.issuer == "entra" else self.oidc_issuer

    @property
    def _oidc_key(self) -> rsa.RSAPrivateKey:
        # Made on first use (tens of milliseconds), shared by the process's worlds.
        return process_key("azure-devops-oidc")

    @property
    def oidc_public_key(self) -> rsa.RSAPublicKey:
        """The key an identity provider trusting `oidc_issuer` checks pipeline OIDC tokens with."""
        return self._oidc_key.public_key()

    def add_service_connection(
        self,
        project: Project,
        name: str,
        kind: str = "AzureRM",
        *,
        data: Mapping[str, str] | None = None,
        authorization: Mapping[str, object] | None = None,
        issuer: OidcIssuerKind = "entra",
    ) -> ServiceConnection:
        """A service connection of `project`; `issuer` says who issues its pipeline OIDC tokens ("entra", the
        Microsoft Entra issuer, or "vstoken", the older Azure DevOps issuer)."""
        if issuer not in ("entra", "vstoken"):
            raise ValueError(f"issuer must be 'entra' or 'vstoken', not {issuer!r}")
        with self._lock:
            if any(c.project is project and c.name.casefold() == name.casefold() for c in self._connections.values()):
                raise ValueError(f"service connection {name!r} already exists in {project.name!r}")
            connection = ServiceConnection(
                new_id(), name, project, kind, dict(data or {}), dict(authorization or {}), issuer
            )
            self._connections[connection.id] = connection
            return connection

    def service_connection(self, connection_id: str) -> ServiceConnection | None:
        with self._lock:
            return self._connections.get(connection_id.strip().lower())

    def oidc_subject(self, connection: ServiceConnection) -> str:
        """The `sub` of `connection`'s OIDC tokens (its issuer's form)."""
        if connection.issuer == "entra":
            return ids.entra_pipeline_subject(self.tenant_id, self.org_id, connection.id)
        return f"sc://{self.org}/{connection.project.name}/{connection.name}"

    def issue_oidc_token(
        self, connection: ServiceConnection, *, issued_at: float | None = None, lifetime: float = OIDC_TOKEN_SECONDS
    ) -> str:
        """A pipeline OIDC token for `connection`, signed RS256 with the organisation's key, in its issuer's form
        (the Entra one with the claims seen in real Entra-issued tokens: `azp` Azure DevOps, `tid`, `ver` 2.0)."""
        now = self.clock() if issued_at is None else issued_at
        claims: dict[str, object] = {
            "sub": self.oidc_subject(connection),
            "iss": self.oidc_issuer_for(connection),
            "nbf": int(now),
            "exp": int(now + lifetime),
            "iat": int(now),
        }
        if connection.issuer == "entra":
            claims |= {
                "aud": ids.TOKEN_EXCHANGE_APP,
                "azp": ids.AZURE_DEVOPS_APP,
                "azpacr": "2",
                "idtyp": "app",
                "oid": self._azure_devops_principal,
                "tid": self.tenant_id,
                "uti": secrets.token_urlsafe(16),
                "ver": "2.0",
            }
        else:
            claims |= {"jti": new_id(), "aud": OIDC_AUDIENCE}
        return sign(claims, self._oidc_key)

    def add_secure_file(self, project: Project, name: str, data: bytes) -> tuple[str, str]:
        """Upload a secure file (Pipelines > Library): returns its id and the download ticket a job gets."""
        with self._lock:
            if any(f.project is project and f.name.casefold() == name.casefold() for f in self._secure_files.values()):
                raise ValueError(f"secure file {name!r} already exists in {project.name!r}")
            secure_file = SecureFile(new_id(), name, project, bytes(data), secrets.token_urlsafe(32))
            self._secure_files[secure_file.id] = secure_file
            return secure_file.id, secure_file.ticket

    def secure_file(self, file_id: str) -> SecureFile | None:
        with self._lock:
            return self._secure_files.get(file_id.strip().lower())

    # ----- permissions -------------------------------------------------------------------------------------

    def allow(self, identity: Identity, token: str, bits: int) -> None:
        """An explicit allow ACE (clears a deny of the same bits on that token, as the service does)."""
        with self._lock:
            self._add_ace(self._aces, identity, token, int(bits), 0)

    def deny(self, identity: Identity, token: str, bits: int) -> None:
        """An explicit deny ACE (clears an allow of the same bits on that token)."""
        with self._lock:
            self._add_ace(self._aces, identity, token, 0, int(bits))

    def clear(self, identity: Identity, token: str, bits: int) -> None:
        """Back to "not set" (inherit) for these bits on that token."""
        with self._lock:
            entry = self._aces.get(identity.id, {}).get(security.normalize_token(token))
            if entry is not None:
                entry[0] &= ~int(bits)
                entry[1] &= ~int(bits)

    def has_permission(self, identity: Identity, token: str, bits: int) -> bool:
        """Effective permission of `identity` for all of `bits` on `token` (hierarchical evaluation)."""
        with self._lock:
            return security.evaluate(self._entries(identity), token, int(bits))

    def has_permission_at_or_below(self, identity: Identity, token: str, bits: int) -> bool:
        """`bits` allowed on `token` or on any token below it (e.g. Contribute on at least one branch)."""
        with self._lock:
            return security.allowed_at_or_below(self._entries(identity), token, int(bits))

    def grant_branch_creator(self, identity: Identity, repository: Repository, ref: str) -> None:
        """The creator of a branch gets ForcePush and ManagePermissions on it, as the service grants them.

        The entry stays when the branch is deleted (the service keeps a branch's ACL by name); whether it does
        exactly that has not been verified.
        """
        token = security.ref_token(repository.project.id, repository.id, ref)
        self.allow(identity, token, security.BRANCH_CREATOR_PERMISSIONS)

    def _entries(self, identity: Identity) -> dict[str, tuple[int, int]]:
        entries: dict[str, tuple[int, int]] = {}
        for table in (self._preset_aces, self._aces):
            for level, (allow, deny) in table.get(identity.id, {}).items():
                old_allow, old_deny = entries.get(level, (0, 0))
                entries[level] = (old_allow | allow, old_deny | deny)
        return entries

    def is_administrator(self, identity: Identity, token: str) -> bool:
        """Member of Project Administrators for the project the token belongs to (or of every project)."""
        with self._lock:
            return self._rights.get(identity.id) == "admin"

    def is_member(self, identity: Identity, project: Project) -> bool:
        """Whether `identity` can see `project` at all (the service hides other projects: TF200016/VS800075).

        Members are the project's groups (any `project_rights` but "none"), its build service, and anybody
        granted something explicitly inside the project (an ACE on `repoV2/<projectId>/...`).
        """
        with self._lock:
            if identity.project_id == project.id or self._rights.get(identity.id, "none") != "none":
                return True
            if identity is self._collection_build_service:
                return True
            prefix = security.normalize_token(security.project_token(project.id))
            return any(
                (level == prefix or level.startswith(prefix + "/")) and allow
                for level, (allow, _) in self._aces.get(identity.id, {}).items()
            )

    def _register(self, identity: Identity, rights: ProjectRights) -> Identity:
        with self._lock:
            self._identities[identity.id] = identity
            self._rights[identity.id] = rights
            for project in self._projects.values():
                self._grant_preset(identity.id, project, rights)
            return identity

    def _grant_preset(self, identity_id: str, project: Project, rights: ProjectRights) -> None:
        bits = _RIGHTS_BITS[rights]
        if bits:
            table = self._preset_aces.setdefault(identity_id, {})
            table[security.normalize_token(security.project_token(project.id))] = [bits, 0]

    @staticmethod
    def _add_ace(
        tables: dict[str, dict[str, list[int]]], identity: Identity, token: str, allow: int, deny: int
    ) -> None:
        entry = tables.setdefault(identity.id, {}).setdefault(security.normalize_token(token), [0, 0])
        entry[0] = (entry[0] | allow) & ~deny
        entry[1] = (entry[1] | deny) & ~allow

    # ----- branch policies ---------------------------------------------------------------------------------

    def set_branch_policy(self, repo: Repository, branch: str, required: bool = True) -> None:
        """Protect a branch (`main` or `refs/heads/main`); `required=False` is an optional (non-blocking) policy."""
        ref = branch if branch.startswith("refs/") else f"refs/heads/{branch}"
        with self._lock:
            for policy in self._policies.values():
                if policy.repository is repo and policy.ref_name == ref:
                    policy.blocking = required
                    return
            policy = BranchPolicy(self._next_policy_id, repo, ref, required, None)
            self._policies[policy.id] = policy
            self._next_policy_id += 1

    def branch_policies(
        self, project: Project, repository: Repository | None = None, ref_name: str | None = None
    ) -> list[BranchPolicy]:
        """Policies of a project, optionally of one repository and one exact ref name (policies here are all
        `matchKind: Exact`, so exact matching is what the service's scope match does for them)."""
        with self._lock:
            return [
                p
                for p in self._policies.values()
                if p.repository.project is project
                and (repository is None or p.repository is repository)
                and (ref_name is None or p.ref_name == ref_name)
            ]

    def is_protected(self, repo: Repository, ref: str) -> bool:
        """A required policy applies to `ref`: direct pushes are rejected unless PolicyExempt."""
        return any(p.blocking for p in self.branch_policies(repo.project, repo, ref))


def _git(git_dir: Path, *args: str) -> str:
    env = {**os.environ, **_GIT_ENV, "GIT_DIR": str(git_dir)}
    done = subprocess.run(["git", *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def _init_bare(git_dir: Path) -> None:
    """`git init --bare` plus the settings that make it behave like an Azure Repos repository.

    * `receive.procReceiveRefs = refs/`: every pushed ref goes through the proc-receive hook, which asks the
      server for the per-ref decision (CreateBranch, ForcePush, branch policies);
    * `lsrefs.unborn = ignore`: an empty repository has no default branch in Azure DevOps, so clients must not
      learn an unborn HEAD from protocol v2;
    * `http.receivepack`: pushes over HTTP are authorised by the server, not by http-backend's REMOTE_USER rule;
    * `receive.advertiseAtomic = false`: Azure Repos does not support atomic pushes, so `git push --atomic`
      fails in the client before anything is sent, as it does against the service;
    * `receive.autogc = false`, `gc.auto = 0`: no detached `git gc` that could outlive the server.
    """
    env = {**os.environ, **_GIT_ENV}
    subprocess.run(
        ["git", "init", "--bare", "--quiet", "--template=", "--initial-branch=main", str(git_dir)],
        env=env,
        check=True,
        capture_output=True,
    )
    settings = {
        "receive.procReceiveRefs": "refs/",
        "lsrefs.unborn": "ignore",
        "http.receivepack": "true",
        "http.uploadpack": "true",
        "uploadpack.allowFilter": "true",
        "core.logAllRefUpdates": "false",
        "receive.advertiseAtomic": "false",
        "receive.autogc": "false",
        "gc.auto": "0",
    }
    config = git_dir / "config"
    with config.open("a", encoding="utf-8") as handle:
        sections: dict[str, list[tuple[str, str]]] = {}
        for key, value in settings.items():
            section, _, name = key.partition(".")
            sections.setdefault(section, []).append((name, value))
        for section, pairs in sections.items():
            handle.write(f"[{section}]\n")
            for name, value in pairs:
                handle.write(f"\t{name} = {value}\n")
    hooks = git_dir / "hooks"
    hooks.mkdir(exist_ok=True)
    hook = hooks / "proc-receive"
    # -I: the hook sees neither PYTHONPATH nor user site-packages; it needs the standard library only.
    hook.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -I {shlex.quote(str(RECEIVE_HOOK))}\n")
    hook.chmod(0o755)
