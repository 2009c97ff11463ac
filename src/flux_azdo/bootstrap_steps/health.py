"""The end of a bootstrap: wait until the cluster runs what was pushed, or say why it does not.

Flux's order and lines (GitRepository at `<branch>@sha1:<pushed head>`, Kustomization at the same revision, then
the component Deployments, one line each, sorted), within what is left of the one `--timeout`. The waits watch
rather than poll (`cluster.waits`), and a `Ready=False` ends them at once with the controller's message. On any
failure the health report follows: each object that is not ready, its conditions, its recent Events and, for a
Deployment, why its containers wait.

Unlike Flux, a later commit counts when it has ours in its history (`IncludesOurs`): with two bootstraps (or a
person, or a pipeline) pushing to one branch, source-controller may fetch the other's commit on top of ours
before it ever sees ours alone, and Flux then waits for a revision that never comes until the timeout. The
cluster then runs what we pushed, and the success line says at which revision.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flux_azdo.bootstrap import BootstrapOptions, BootstrapResult, Deadline, Reporter
    from flux_azdo.cluster.client import Cluster
    from flux_azdo.cluster.waits import AcceptsRevision, ObjectHealth
    from flux_azdo.git.workspace import Workspace

#: A fetch made to answer `IncludesOurs` gets at most this long (and never more than what is left of --timeout).
FETCH_TIMEOUT = 60.0


class IncludesOurs:
    """`accepts` for the waits: whether a revision the cluster reports is a commit of our branch that has our
    pushed head in its history, answered from the still-open clone (`Workspace.includes`, which fetches the
    branch when the clone lacks that commit). Answers are kept per commit, so each revision costs at most one
    fetch; a fetch that fails is reported once, answered "no" and asked again on the object's next change."""

    def __init__(self, workspace: Workspace, branch: str, head: str, deadline: Deadline, reporter: Reporter) -> None:
        self._workspace = workspace
        self._branch = branch
        self._head = head
        self._deadline = deadline
        self._reporter = reporter
        self._answers: dict[str, bool] = {}
        self._warned = False

    def __call__(self, revision: str) -> bool:
        """`revision` is normalised: "<branch>@<algorithm>:<hex>" (a branch name may itself hold '@')."""
        from flux_azdo.git.errors import GitError

        branch, at, digest = revision.rpartition("@")
        sha = digest.partition(":")[2]
        if not at or branch != self._branch or not sha:
            return False
        if sha in self._answers:
            return self._answers[sha]
        left = self._deadline.at - time.monotonic()
        if left <= 0:
            return False
        try:
            answer = self._workspace.includes(self._head, sha, timeout=min(left, FETCH_TIMEOUT))
        except GitError as error:
            if not self._warned:
                self._warned = True
                self._reporter.warning(f"could not tell whether {revision} includes our commit: {error.message}")
            return False
        self._answers[sha] = answer
        return answer


def wait_until_healthy(
    options: BootstrapOptions,
    cluster: Cluster,
    revision: str,
    deadline: Deadline,
    reporter: Reporter,
    result: BootstrapResult,
    requested_at: str | None = None,
    accepts: AcceptsRevision | None = None,
) -> list[ObjectHealth]:
    """The health of the GitRepository, the Kustomization and each Deployment once all are ready.

    `requested_at`: the reconcile request made after this run's changes (a Ready=False older than it is ignored).
    `accepts`: whether a revision other than `revision` will do (`IncludesOurs`); None waits for `revision` only.
    """
    from flux_azdo.bootstrap import BootstrapFailed
    from flux_azdo.cluster.waits import (
        WaitFailed,
        wait_for_deployments,
        wait_for_kustomization,
        wait_for_source,
    )

    namespace, name = options.namespace, options.name
    where = f"{namespace}/{name}"
    components = options.install.selected_components()
    healthy: list[ObjectHealth] = []
    stage = "GitRepository"
    try:
        reporter.waiting(f'waiting for GitRepository "{where}" to be reconciled')
        source = wait_for_source(
            cluster, namespace, name, revision, deadline.at, requested_at=requested_at, accepts=accepts
        )
        healthy.append(source)
        reporter.success(_reconciled(source, revision))
        stage = "Kustomization"
        reporter.waiting(f'waiting for Kustomization "{where}" to be reconciled')
        applied = wait_for_kustomization(cluster, namespace, name, revision, deadline.at, accepts=accepts)
        healthy.append(applied)
        reporter.success(_reconciled(applied, revision))
        stage = "Deployment"
        reporter.action("confirming components are healthy")
        deployments = wait_for_deployments(cluster, namespace, components, deadline.at)
    except WaitFailed as error:
        health = list(error.health) or _report(options, cluster, components)
        if stage == "Deployment":
            _deployment_lines(health, reporter)
        reporter.failure(error.message)
        _print_report(health, reporter)
        partial = dataclasses.replace(result, health=tuple(health))
        raise BootstrapFailed(
            f"bootstrap failed: the {stage} health check did not pass; the changes are in place, the cluster has "
            "not caught up with them",
            fix="see the health report above; once the cause is fixed, run the command again",
            result=partial,
        ) from None
    _deployment_lines(deployments, reporter)
    reporter.success("all components are healthy")
    return healthy + list(deployments)


def _reconciled(item: ObjectHealth, revision: str) -> str:
    """Flux's success line; when the object is at a later commit than ours, which one."""
    from flux_azdo.cluster.health import same_revision

    line = f"{item.kind} reconciled successfully"
    if item.revision and not same_revision(item.revision, revision):
        line += f" (at {item.revision}, which includes ours)"
    return line


def _report(options: BootstrapOptions, cluster: Cluster, components: tuple[str, ...]) -> list[ObjectHealth]:
    from flux_azdo.cluster.waits import health_report

    sources = [("GitRepository", options.name), ("Kustomization", options.name)]
    return list(health_report(cluster, options.namespace, components, sources))


def _deployment_lines(health: list[ObjectHealth], reporter: Reporter) -> None:
    """Flux's per-Deployment lines, sorted by name."""
    for item in sorted((h for h in health if h.kind == "Deployment"), key=lambda h: h.name):
        if item.ready:
            reporter.success(f"{item.name}: deployment ready")
        elif not item.found:
            reporter.failure(f"{item.name}: deployment not found")
        else:
            reporter.failure(f"{item.name}: deployment not ready")


def _print_report(health: list[ObjectHealth], reporter: Reporter) -> None:
    from flux_azdo.cluster.waits import render_health

    text = render_health([h for h in health if not h.ready])
    if text.strip():
        reporter.detail(text)
