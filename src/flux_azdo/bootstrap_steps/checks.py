"""The preflight of a bootstrap: everything that can be known before the first write, checked first.

Flux finds a missing permission when its push is rejected and a path conflict after it has pushed the
components. Here the Azure DevOps checks of `flux-azdo check` (when the URL is Azure DevOps and there is an API
token) and the cluster checks (version, RBAC, an existing Flux managed by something else, the path guard) run
before anything is written, and a failure stops the run with every problem and its fix. Short-lived tokens are
refused as the cluster's credential here too: the identity behind a token tells a job token apart even when it
was not passed as SYSTEM_ACCESSTOKEN.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from flux_azdo.azdo.preflight.report import CheckItem

if TYPE_CHECKING:
    from flux_azdo.azdo.preflight import ClusterCredential, Facts, PreflightRequest
    from flux_azdo.bootstrap import BootstrapOptions, Reporter
    from flux_azdo.cluster.client import Cluster

#: Preflight warnings that are failures for a bootstrap: `check` warns, bootstrap would store the credential.
BLOCKING_FOR_BOOTSTRAP = ("cluster-credential",)


def preflight_request(options: BootstrapOptions) -> PreflightRequest:
    from flux_azdo.azdo.preflight import PreflightRequest

    return PreflightRequest(
        url=options.url,
        branch=options.branch,
        create_repository=options.create_repository,
        create_branch=options.create_branch,
        token=options.api_token,
        git_auth=options.git_auth,
        ssh_key=options.ssh_key,
        cluster_credential=cluster_credential(options),
        timeout=options.call_timeout,
    )


def cluster_credential(options: BootstrapOptions) -> ClusterCredential:
    """What the cluster will store, read from the Secret bootstrap writes: the push may use another credential
    (the pipeline task pushes with the job token and gives the cluster a PAT or an SSH key of its own)."""
    if options.sync.provider == "azure":
        return "workload-identity"
    secret = options.cluster_secret
    if secret is None:
        return "ssh" if options.url.transport == "ssh" else "token"
    if "identity" in secret.string_data:
        return "ssh"
    token = options.api_token
    if token is not None and secret.string_data.get("password") != token.secret:
        return "separate-token"
    return "token"


def preflight(options: BootstrapOptions, cluster: Cluster, version: str, reporter: Reporter) -> Facts | None:
    """Run the checks; report what is not ok; BootstrapFailed when anything fails. The Azure DevOps facts, if asked."""
    from flux_azdo.azdo.preflight import decide, gather
    from flux_azdo.bootstrap import BootstrapFailed
    from flux_azdo.cluster.checks import cluster_checks
    from flux_azdo.manifests.paths import repository_path

    reporter.action("checking the repository and the cluster before any change")
    items: list[CheckItem] = []
    facts = None
    if options.url.is_azure_devops and options.api_token is not None:
        request = preflight_request(options)
        facts = gather(request)
        items += decide(request, facts).items
    items += cluster_checks(
        cluster,
        namespace=options.namespace,
        name=options.name,
        path=repository_path(options.sync.path),
        flux_version=version,
        force=options.force,
    )
    items = [_for_bootstrap(item) for item in items]
    for item in items:
        _report(item, reporter)
    failed = sum(item.status == "fail" for item in items)
    if failed:
        problems = "a problem" if failed == 1 else f"{failed} problems"
        raise BootstrapFailed(
            f"bootstrap stopped before changing anything: {problems} above",
            fix="fix what is listed, then run the command again",
        )
    warnings = sum(item.status == "warn" for item in items)
    noted = f" ({warnings} warning{'s' if warnings != 1 else ''} above)" if warnings else ""
    reporter.success(f"preflight checks passed{noted}")
    return facts


def _for_bootstrap(item: CheckItem) -> CheckItem:
    if item.status == "warn" and item.key in BLOCKING_FOR_BOOTSTRAP:
        return dataclasses.replace(item, status="fail")
    return item


def _report(item: CheckItem, reporter: Reporter) -> None:
    if item.status in ("ok", "skip"):
        return
    (reporter.failure if item.status == "fail" else reporter.warning)(item.message)
    lines = [f"fix: {item.fix}"] if item.fix else []
    if item.command:
        lines.append(f"or run: {item.command}")
    if lines:
        reporter.detail("\n".join(lines))


def create_repository_if_asked(options: BootstrapOptions, facts: Facts | None, reporter: Reporter) -> None:
    """`--create-repo`: create the repository the preflight found missing (and allowed to be created)."""
    from flux_azdo.azdo.client import AzureDevOpsClient
    from flux_azdo.errors import UserError

    if not options.create_repository:
        return
    if facts is not None and facts.found_repository is not None:
        return
    url = options.url
    if facts is None or options.api_token is None or url.collection_url is None:
        raise UserError(
            "--create-repo needs the Azure DevOps API: an Azure DevOps URL and a token "
            "(GIT_PASSWORD for https; AZURE_DEVOPS_EXT_PAT or --entra-auth with an SSH URL)"
        )
    project = facts.found_project
    if project is None or url.repository is None:
        raise UserError(f"--create-repo: project {url.project!r} was not found, so the repository cannot be created")
    reporter.action(f'creating repository "{url.repository}" in project "{project.name}"')
    with AzureDevOpsClient(url.collection_url, options.api_token, timeout=options.call_timeout) as client:
        client.create_repository(project, url.repository)
    reporter.success("created repository")
