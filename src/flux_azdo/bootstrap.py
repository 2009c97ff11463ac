"""`flux-azdo bootstrap`: the steps of `flux bootstrap git`, in its order and with its printed lines, plus ours.

This module only sequences: each step lives in `flux_azdo.bootstrap_steps` (checks, repository, cluster, health),
talks to git, Azure DevOps and the API server through the layers below, and reports through a `Reporter`. The
order is Flux's (reference flux-bootstrap.md section 2): clone, components (commit, push, install when the
Kustomization is missing or never applied), source secret, sync manifests (commit, push, apply every run), then
the waits. What we add, and why:

- the preflight (Azure DevOps permissions, the cluster's version, RBAC, an existing Flux, the path guard) runs
  first, so that a run that cannot succeed stops before it writes anything, not after it pushed;
- a user's kustomization.yaml lacking a patch the run needs is reported before anything is pushed;
- both pushes survive concurrent writers (`git.Workspace.publish`); one `--timeout` bounds the whole run;
- the pipeline's job token (and an Entra token) is never stored in the cluster (`bootstrap_steps.credentials`);
- after a push to an existing GitRepository, a reconcile is requested so the wait does not sit out `interval`;
- the waits take a later commit of the branch that has ours in its history as success (somebody pushed on top of
  ours before the cluster fetched); Flux waits for exactly its own head until the timeout. The clone stays open
  until the waits end, to answer that question.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from flux_azdo.errors import UserError
from flux_azdo.git.checkout import Author

if TYPE_CHECKING:
    from flux_azdo.azdo.credentials import AzureDevOpsToken
    from flux_azdo.azdo.urls import RepositoryUrl
    from flux_azdo.cluster.apply import ObjectChange
    from flux_azdo.cluster.client import ClusterAccess
    from flux_azdo.cluster.secrets import SecretAction
    from flux_azdo.cluster.waits import ObjectHealth
    from flux_azdo.git.auth import GitAuth
    from flux_azdo.git.ssh import SshKeyInfo
    from flux_azdo.manifests.install import InstallOptions
    from flux_azdo.manifests.repository import PlannedFile, WorkloadIdentity
    from flux_azdo.manifests.sourcesecret import SourceSecret
    from flux_azdo.manifests.sync import SyncOptions


class Reporter(Protocol):
    """Where the events go: `console.TerminalReporter` now, the pipeline reporter (logging commands) later."""

    def action(self, message: str) -> None: ...  # ►
    def generate(self, message: str) -> None: ...  # ✚
    def waiting(self, message: str) -> None: ...  # ◎
    def success(self, message: str) -> None: ...  # ✔
    def warning(self, message: str) -> None: ...  # ⚠️
    def failure(self, message: str) -> None: ...  # ✗
    def detail(self, text: str) -> None: ...  # an indented block (fixes, health report)


@dataclass(frozen=True)
class BootstrapOptions:
    """Everything a run needs, already resolved from flags and environment (the CLI builds it).

    `sync` carries the branch, path, namespace and name; `url` is the parsed `--url` git and the API use.
    `cluster_secret` is what the cluster stores (None with `--provider azure`): build it with
    `bootstrap_steps.credentials.cluster_source_secret`, which refuses short-lived tokens.
    """

    url: RepositoryUrl
    install: InstallOptions
    sync: SyncOptions
    manifests: str | None  # --manifests (None: the OCI release at install.version)
    git_auth: GitAuth
    api_token: AzureDevOpsToken | None
    cluster_secret: SourceSecret | None
    identity: WorkloadIdentity | None
    cluster: ClusterAccess
    kustomize: Path | None = None
    create_repository: bool = False
    create_branch: bool = False
    force: bool = False
    author: Author = field(default_factory=Author)
    commit_message_appendix: str = ""
    timeout: float = 300.0  # the whole run, as Flux's --timeout
    call_timeout: float = 30.0  # each call to Azure DevOps and each git command's connection
    ssh_key: SshKeyInfo | None = None  # what the preflight says about the SSH key

    @property
    def branch(self) -> str:
        return self.sync.branch

    @property
    def namespace(self) -> str:
        return self.sync.namespace

    @property
    def name(self) -> str:
        return self.sync.object_name


@dataclass(frozen=True)
class BootstrapResult:
    """What a run did, for `--output json` and for callers (the pipeline task, the demo)."""

    version: str
    components_commit: str | None
    sync_commit: str | None
    revision: str  # "<branch>@sha1:<sha>", what the cluster was waited for
    files: tuple[PlannedFile, ...]
    applied: tuple[ObjectChange, ...]
    secret: SecretAction | None
    health: tuple[ObjectHealth, ...]
    installed: bool = False  # the components were installed by this run (first install)
    reconcile_requested: bool = False
    #: The old credential's keys removed from the source Secret (names only), as rotate-credentials reports them.
    removed_keys: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        """Whether anything was committed or written to the cluster."""
        return bool(
            self.components_commit
            or self.sync_commit
            or self.installed
            or self.secret in ("created", "updated")
            or any(change.action != "unchanged" for change in self.applied)
            or self.reconcile_requested
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "revision": self.revision,
            "changed": self.changed,
            "commits": {"components": self.components_commit, "sync": self.sync_commit},
            "files": [{"path": f.path, "status": f.status} for f in self.files],
            "installed": self.installed,
            "applied": [
                {
                    "apiVersion": c.api_version,
                    "kind": c.kind,
                    "namespace": c.namespace,
                    "name": c.name,
                    "action": c.action,
                }
                for c in self.applied
            ],
            "secret": self.secret,
            "removedSecretKeys": list(self.removed_keys),
            "reconcileRequested": self.reconcile_requested,
            "health": [dataclasses.asdict(h) for h in self.health],
        }


class BootstrapFailed(UserError):
    """The run stopped; the details (failing checks, health report) are already reported, this is the summary.

    `result` is what was done before it stopped, when it got as far as the waits.
    """

    def __init__(self, message: str, *, fix: str | None = None, result: BootstrapResult | None = None) -> None:
        super().__init__(message, fix=fix)
        self.result = result


class Deadline:
    """The one `--timeout` for the run, as Flux has it: every later step gets what is left."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def remaining(self, at_most: float | None = None) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise UserError(
                f"the bootstrap did not finish within --timeout ({self.seconds:g}s)",
                fix="run it again with a longer --timeout; nothing done so far is undone, the next run continues",
            )
        return left if at_most is None else min(left, at_most)


def bootstrap(options: BootstrapOptions, reporter: Reporter) -> BootstrapResult:
    """Run the steps; returns what was done, raises BootstrapFailed (or another UserError) when it stops."""
    from flux_azdo.bootstrap_steps import checks, health, install, repository
    from flux_azdo.cluster.client import Cluster

    deadline = Deadline(options.timeout)
    options.install.selected_components()
    repository.validate(options)
    distribution = repository.load_distribution(options, reporter)
    with Cluster(options.cluster) as cluster:
        facts = checks.preflight(options, cluster, distribution.version, reporter)
        checks.create_repository_if_asked(options, facts, reporter)
        with repository.open_workspace(options, reporter, deadline) as workspace:
            planner = repository.Planner(options, distribution, workspace)
            planner.stop_on_findings(reporter)
            components = repository.publish_components(options, planner, workspace, reporter)
            installed = install.install_components(options, cluster, planner, workspace, reporter, deadline)
            stored = install.reconcile_source_secret(options, cluster, reporter)
            secret = None if stored is None else stored.action
            sync = repository.publish_sync(options, planner, workspace, reporter)
            applied = install.apply_sync(options, cluster, planner, workspace, reporter, deadline)
            head = workspace.head
            if head is None:
                raise BootstrapFailed(f'branch "{options.branch}" has no commit after the push: run the command again')
            pushed = components is not None or sync is not None or secret in ("created", "updated")
            requested_at = install.request_reconcile(options, cluster, applied, pushed)
            revision = f"{options.branch}@sha1:{head}"
            result = BootstrapResult(
                version=distribution.version,
                components_commit=components,
                sync_commit=sync,
                revision=revision,
                files=planner.files(),
                applied=tuple(applied),
                secret=secret,
                health=(),
                installed=installed,
                reconcile_requested=requested_at is not None,
                removed_keys=() if stored is None else stored.removed_keys,
            )
            later = health.IncludesOurs(workspace, options.branch, head, deadline, reporter)
            healthy = health.wait_until_healthy(
                options, cluster, revision, deadline, reporter, result, requested_at, accepts=later
            )
    return dataclasses.replace(result, health=tuple(healthy))
