"""The end of a bootstrap: wait until the cluster runs what was pushed, or say why it does not.

Flux's order and lines (GitRepository at `<branch>@sha1:<pushed head>`, Kustomization at the same revision, then
the component Deployments, one line each, sorted), within what is left of the one `--timeout`. The waits watch
rather than poll (`cluster.waits`), and a `Ready=False` ends them at once with the controller's message. On any
failure the health report follows: each object that is not ready, its conditions, its recent Events and, for a
Deployment, why its containers wait.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flux_azdo.bootstrap import BootstrapOptions, BootstrapResult, Deadline, Reporter
    from flux_azdo.cluster.client import Cluster
    from flux_azdo.cluster.waits import ObjectHealth


def wait_until_healthy(
    options: BootstrapOptions,
    cluster: Cluster,
    revision: str,
    deadline: Deadline,
    reporter: Reporter,
    result: BootstrapResult,
    requested_at: str | None = None,
) -> list[ObjectHealth]:
    """The health of the GitRepository, the Kustomization and each Deployment once all are ready.

    `requested_at`: the reconcile request made after this run's changes (a Ready=False older than it is ignored).
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
        healthy.append(wait_for_source(cluster, namespace, name, revision, deadline.at, requested_at=requested_at))
        reporter.success("GitRepository reconciled successfully")
        stage = "Kustomization"
        reporter.waiting(f'waiting for Kustomization "{where}" to be reconciled')
        healthy.append(wait_for_kustomization(cluster, namespace, name, revision, deadline.at))
        reporter.success("Kustomization reconciled successfully")
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
