"""The repository side of a bootstrap: the distribution, the checkout, and the two commits Flux makes.

Both commits go through `Workspace.publish`, whose producer runs again on top of whatever others pushed
meanwhile; so the files are planned from the checkout as it is at each attempt (`Planner.plan(root)`), never
from a copy taken at clone time. A user's kustomization.yaml is kept byte for byte, as Flux keeps it, and what it
lacks for this run (the Azure DevOps SSH patch, the workload identity patch, a resource) stops the run before
anything is pushed.
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from flux_azdo.manifests.distribution import COMPONENTS_FILE
from flux_azdo.manifests.kustomization import KUSTOMIZATION_FILE, SYNC_FILE

if TYPE_CHECKING:
    from flux_azdo.bootstrap import BootstrapOptions, Deadline, Reporter
    from flux_azdo.git.workspace import Change, ChangeProducer, PublishResult, Workspace
    from flux_azdo.manifests.distribution import Distribution
    from flux_azdo.manifests.repository import BootstrapFiles, PlannedFile

#: Git commands get at most this long each (the run's --timeout still bounds them all together).
GIT_COMMAND_TIMEOUT = 120.0
SYNC_MESSAGE = "Add Flux sync manifests"


def validate(options: BootstrapOptions) -> None:
    """Every sync flag, before anything is downloaded or connected."""
    from flux_azdo.errors import UserError
    from flux_azdo.manifests.sync import validate_sync

    validate_sync(options.sync)
    if options.install.namespace != options.sync.namespace:
        raise UserError("the install and sync namespaces differ: pass one --namespace")


def load_distribution(options: BootstrapOptions, reporter: Reporter) -> Distribution:
    from flux_azdo.sources import resolve_distribution

    return resolve_distribution(options.manifests, options.install.version, progress=reporter.action)


def commit_message(title: str, appendix: str) -> str:
    """Flux's message, with `--commit-message-appendix` after a blank line (`[skip ci]`, say)."""
    return f"{title}\n\n{appendix}" if appendix else title


def open_workspace(options: BootstrapOptions, reporter: Reporter, deadline: Deadline) -> OpenWorkspace:
    """The clone, for `with`: removed (with its credential files) when the block ends."""
    return OpenWorkspace(options, reporter, deadline)


class OpenWorkspace:
    """`with open_workspace(...) as workspace:`. A class, not a generator: `contextlib.contextmanager` leaves a gap
    after the generator yields in which an interrupt leaves the open clone to the garbage collector; here the
    clone is closed before the exception leaves `__enter__`, or by `__exit__`."""

    def __init__(self, options: BootstrapOptions, reporter: Reporter, deadline: Deadline) -> None:
        self.options = options
        self.reporter = reporter
        self.deadline = deadline
        self.workspace: Workspace | None = None

    def __enter__(self) -> Workspace:
        from flux_azdo.git.workspace import RETRY_DEADLINE, Workspace

        options, reporter = self.options, self.reporter
        reporter.action(f'cloning branch "{options.branch}" from Git repository "{options.url.original}"')
        try:
            # An interrupt between the constructor returning and this assignment drops the Workspace unclosed:
            # its folder goes as it is collected, which CPython does as the exception leaves this frame.
            self.workspace = workspace = Workspace(
                options.url.git_url,
                options.branch,
                options.git_auth,
                create_branch=options.create_branch,
                author=options.author,
                timeout=self.deadline.remaining(GIT_COMMAND_TIMEOUT),
                retry_deadline=self.deadline.remaining(RETRY_DEADLINE),
            )
            if workspace.state == "empty":
                reporter.success(f'cloned repository (empty: the first push creates branch "{options.branch}")')
            elif workspace.state == "new-branch":
                reporter.success(
                    f'cloned repository (branch "{options.branch}" starts from "{workspace.default_branch}")'
                )
            else:
                reporter.success("cloned repository")
            return workspace
        except BaseException:
            self.close()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self.workspace is not None:
            self.workspace.close()


class Planner:
    """The three files under `<path>/<namespace>/`, planned from a checkout as it is now."""

    def __init__(self, options: BootstrapOptions, distribution: Distribution, workspace: Workspace) -> None:
        from flux_azdo.manifests.paths import manifests_dir, repository_path

        self.options = options
        self.distribution = distribution
        self.workspace = workspace
        self.directory = manifests_dir(repository_path(options.sync.path), options.namespace)
        self.first: BootstrapFiles | None = None  # as found at clone time: what this run changes

    def path(self, name: str) -> str:
        return posixpath.join(self.directory, name)

    def plan(self, root: Path | None = None) -> BootstrapFiles:
        from flux_azdo.files import read_manifests_folder
        from flux_azdo.git.paths import checkout_path
        from flux_azdo.manifests.repository import plan_bootstrap_files

        root = self.workspace.root if root is None else root
        folder = checkout_path(root, self.path(KUSTOMIZATION_FILE)).parent  # refuses symbolic links on the way
        existing = read_manifests_folder(folder, (COMPONENTS_FILE, SYNC_FILE, KUSTOMIZATION_FILE))
        options = self.options
        plan = plan_bootstrap_files(self.distribution, options.install, options.sync, existing, options.identity)
        if self.first is None:
            self.first = plan
        return plan

    def file(self, plan: BootstrapFiles, name: str) -> PlannedFile:
        wanted = self.path(name)
        return next(f for f in plan.files if f.path == wanted)

    def files(self) -> tuple[PlannedFile, ...]:
        return self.first.files if self.first is not None else ()

    def stop_on_findings(self, reporter: Reporter, plan: BootstrapFiles | None = None) -> None:
        """What a user's kustomization.yaml lacks, said before anything is pushed (never fixed behind their back)."""
        from flux_azdo.bootstrap import BootstrapFailed

        plan = self.plan() if plan is None else plan
        if not plan.findings:
            return
        for finding in plan.findings:
            problem = finding.problem.removeprefix(KUSTOMIZATION_FILE)
            reporter.failure(f"{self.path(KUSTOMIZATION_FILE)}{problem}; add:")
            reporter.detail(finding.fix)
        raise BootstrapFailed(
            f"{self.path(KUSTOMIZATION_FILE)} is yours and is kept as it is, but this bootstrap cannot work with it: "
            "nothing was pushed",
            fix="add what is shown above to the file, commit it, and run the command again",
        )


def _publish(
    workspace: Workspace, produce: ChangeProducer, what: str, reporter: Reporter
) -> tuple[PublishResult, str | None]:
    """Publish, and print Flux's lines for it: committed + pushing, or up to date."""

    def retrying(attempt: int, reason: str) -> None:
        reporter.waiting(f"git conflict detected, retrying on top of the new head (attempt {attempt}: {reason})")

    result = workspace.publish(produce, on_retry=retrying)
    sha = result.commits[-1].sha if result.commits else None
    branch, url = workspace.branch, workspace.url
    if sha is not None and result.pushed:
        reporter.success(f'committed {what} to "{branch}" ("{sha}")')
        reporter.action(f'pushing {what} to "{url}"')
    elif result.created_branch:
        reporter.success(f'created branch "{branch}" in "{url}"')
    else:
        reporter.success(f"{what} are up to date")
    return result, sha if result.pushed else None


def publish_components(
    options: BootstrapOptions, planner: Planner, workspace: Workspace, reporter: Reporter
) -> str | None:
    """Commit and push gotk-components.yaml when it changed; the commit's sha, or None."""
    from flux_azdo.git.workspace import Change

    reporter.action("generating component manifests")
    planner.file(planner.plan(), COMPONENTS_FILE)
    reporter.success("generated component manifests")
    message = commit_message(
        f"Add Flux {planner.distribution.version} component manifests", options.commit_message_appendix
    )

    def produce(root: Path) -> list[Change]:
        plan = planner.plan(root)
        planner.stop_on_findings(reporter, plan)
        components = planner.file(plan, COMPONENTS_FILE)
        return [Change(message, {components.path: components.content})]

    return _publish(workspace, produce, "component manifests", reporter)[1]


def publish_sync(options: BootstrapOptions, planner: Planner, workspace: Workspace, reporter: Reporter) -> str | None:
    """Commit and push gotk-sync.yaml (and kustomization.yaml, new or ours) when they changed; the sha, or None."""
    from flux_azdo.git.workspace import Change

    reporter.action("generating sync manifests")
    planner.plan()
    reporter.success("generated sync manifests")
    message = commit_message(SYNC_MESSAGE, options.commit_message_appendix)

    def produce(root: Path) -> list[Change]:
        plan = planner.plan(root)
        planner.stop_on_findings(reporter, plan)
        sync = planner.file(plan, SYNC_FILE)
        files: dict[str, str | None] = {sync.path: sync.content}
        kustomization = planner.file(plan, KUSTOMIZATION_FILE)
        if kustomization.status in ("create", "update"):
            files[kustomization.path] = kustomization.content
        return [Change(message, files)]

    return _publish(workspace, produce, "sync manifests", reporter)[1]
