"""The task's inputs turned into the option objects the CLI builds from its flags, run, and summed up.

Nothing is validated twice: the repository URL, tokens and branch go through `flux_azdo.azdo.access` as the CLI's
flags do, the cluster's credential through `bootstrap_steps.credentials.cluster_source_secret` (which refuses the
job token), and the Flux options through the same `InstallOptions`/`SyncOptions` checks. What a pipeline adds:

- the repository may be a bare name: `{collection}{project}/_git/{name}` of the pipeline's own project;
- the push and the cluster have separate credentials: the push uses the job token (default) or a PAT, the
  cluster stores a PAT, an SSH key from a secure file, or nothing (workload identity). The job token is always
  marked as such, so it can never become the cluster's credential, whichever input it was put in;
- the run ends in an `Outcome`: the task result, the `result` output and the other output variables, and the
  Markdown summary, for main to print.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote

from flux_azdo.errors import UserError

if TYPE_CHECKING:
    from flux_azdo.azdo.access import AccessOptions
    from flux_azdo.azdo.credentials import AzureDevOpsToken
    from flux_azdo.azdo.preflight import CheckItem, ClusterCredential, PreflightRequest
    from flux_azdo.azdo.urls import RepositoryUrl
    from flux_azdo.bootstrap import BootstrapOptions
    from flux_azdo.git.auth import SshAuth
    from flux_azdo.manifests.install import InstallOptions
    from flux_azdo.manifests.sourcesecret import SourceSecret
    from flux_azdo.manifests.sync import SyncOptions
    from flux_azdo.pipeline.agent import AgentContext
    from flux_azdo.pipeline.connections import ConnectedCluster
    from flux_azdo.pipeline.inputs import TaskInputs
    from flux_azdo.pipeline.reporter import PipelineReporter

TaskResult = Literal["Succeeded", "SucceededWithIssues", "Failed"]
#: Each call to Azure DevOps, git's connection and the API server (as the CLI's bootstrap: min(timeout, 30 s)).
CALL_TIMEOUT = 30.0
JOB_TOKEN_ORIGIN = "the job token (System.AccessToken)"
#: Steps the progress bar counts per action (the reporter's `action()` calls of a typical run).
TOTAL_STEPS = {"bootstrap": 14, "plan": 8, "check": 3, "uninstall": 8, "rotateCredentials": 5}


@dataclass(frozen=True)
class Outcome:
    """How the run ended, for main to report: task result, output variables (`result` among them), summary."""

    task_result: TaskResult
    result: str
    message: str
    summary: str
    outputs: Mapping[str, str] = field(default_factory=dict)


@dataclass
class RunFiles:
    """Files this run writes for itself (the secure file, a known_hosts): all inside the private `folder`.

    `register` hands a secret found on the way (the secure file's key) to the masker before anything uses it.
    """

    folder: Path
    environ: Mapping[str, str]
    register: Callable[[str], None]
    ssh_key_path: Path | None = None
    known_hosts_path: Path | None = None

    def secure_key(self, agent: AgentContext, file_id: str) -> tuple[Path, str]:
        """The `sshKey` secure file, downloaded once (0600 in `folder`) and masked; its path and name."""
        from flux_azdo.pipeline.securefiles import download_secure_file, secure_file_ref

        ref = secure_file_ref(self.environ, file_id, input_name="sshKey")
        if self.ssh_key_path is None:
            path = download_secure_file(agent, ref, self.folder)
            try:
                text = path.read_bytes().decode("utf-8")
            except UnicodeDecodeError:
                text = ""
            if text.strip():
                self.register(text)
            self.ssh_key_path = path
        return self.ssh_key_path, ref.name

    def known_hosts(self, text: str) -> Path | None:
        """The `sshKnownHosts` input as a file (written once, 0600), for ssh and the checks that read one."""
        from flux_azdo.files import write_private_file

        if not text.strip():
            return None
        if self.known_hosts_path is None:
            data = (text.strip() + "\n").encode("utf-8")
            self.known_hosts_path = write_private_file(self.folder / "known_hosts", data)
        return self.known_hosts_path


# ----- repository and credentials ----------------------------------------------------------------------------------


def repository_url(value: str, agent: AgentContext) -> str:
    """A URL as given; a bare name is a repository of this pipeline's project."""
    text = value.strip()
    if "://" in text or "@" in text or ":" in text:
        return text
    if "/" in text or "\\" in text:
        raise UserError(
            f"input repositoryUrl {text!r} is neither a repository name nor a URL",
            fix="give the name of a repository in this project, or its full https:// or ssh:// URL",
        )
    return f"{agent.collection_uri}{quote(agent.project, safe='')}/_git/{quote(text, safe='')}"


def call_timeout(inputs: TaskInputs) -> float:
    """What each call gets within the run's timeout."""
    return min(inputs.timeout_seconds, CALL_TIMEOUT)


def _push_password(inputs: TaskInputs, agent: AgentContext) -> tuple[str, str]:
    if inputs.git_auth == "pat":
        return inputs.git_pat, 'input "gitPat"'
    return agent.require_job_token("gitAuth jobToken (the push)"), JOB_TOKEN_ORIGIN


def _job_environ(agent: AgentContext) -> dict[str, str]:
    """What `flux_azdo.azdo.access` reads to tell the job token apart: it is marked wherever it was put."""
    return {"SYSTEM_ACCESSTOKEN": agent.job_token} if agent.job_token else {}


def push_access(inputs: TaskInputs, agent: AgentContext) -> AccessOptions:
    """The push's AccessOptions over https (an ssh:// repositoryUrl of Azure DevOps is pushed to over https)."""
    from flux_azdo.azdo.access import AccessOptions

    password, origin = _push_password(inputs, agent)
    url = https_url(repository_url(inputs.repository_url, agent), inputs.allow_insecure_http)
    return AccessOptions(
        url=url,
        branch=inputs.branch,
        create_repository=inputs.create_repository,
        create_branch=inputs.create_branch,
        password=password,
        from_command_line=False,
        password_origin=origin,
        allow_insecure_http=inputs.allow_insecure_http,
        timeout=f"{call_timeout(inputs)}s",
    )


def https_url(url: str, allow_insecure_http: bool) -> str:
    """The https form of an Azure DevOps ssh:// URL (the push always uses a token); other URLs as given."""
    from flux_azdo.azdo.access import with_ssh_user
    from flux_azdo.azdo.urls import parse_repository_url

    parsed = parse_repository_url(with_ssh_user(url, "git"), allow_insecure_http=allow_insecure_http)
    if parsed.transport != "ssh":
        return url
    if parsed.https_url is None:
        raise UserError(
            f"input repositoryUrl {parsed.original} is an SSH URL whose https form is not known",
            fix="set repositoryUrl to the https URL (the push uses a token) and sshRepositoryUrl to the SSH URL",
        )
    return parsed.https_url


def push_request(inputs: TaskInputs, agent: AgentContext, reporter: PipelineReporter) -> PreflightRequest:
    from flux_azdo.azdo.access import preflight_request

    return preflight_request(push_access(inputs, agent), environ=_job_environ(agent), warn=reporter.warning)


def cluster_token(inputs: TaskInputs, agent: AgentContext) -> AzureDevOpsToken:
    """clusterPat as a token; the job token put there is known as the job token (and refused by the caller)."""
    from flux_azdo.azdo.access import make_token

    secret = inputs.cluster_pat.strip()
    if agent.job_token and secret == agent.job_token:
        return make_token(secret, "job-token", 'input "clusterPat"')
    return make_token(secret, "password", 'input "clusterPat"')


def refuse_job_token_for_cluster(inputs: TaskInputs, agent: AgentContext) -> None:
    """Before anything connects: the job token (or any secret equal to it) is never the cluster's credential."""
    from flux_azdo.bootstrap_steps.credentials import refuse_short_lived

    if inputs.cluster_auth == "pat" and inputs.cluster_pat:
        refuse_short_lived(cluster_token(inputs, agent))


def ssh_sync_url(inputs: TaskInputs, request: PreflightRequest) -> str:
    if inputs.ssh_repository_url:
        return inputs.ssh_repository_url
    if request.url.ssh_url is None:
        raise UserError(
            f"no SSH URL is known for {request.url.original}",
            fix="set sshRepositoryUrl to the repository's SSH clone URL",
        )
    return request.url.ssh_url


def ssh_url(inputs: TaskInputs, url: str) -> RepositoryUrl:
    """`sshRepositoryUrl` (or the SSH form derived from repositoryUrl), which must be an SSH URL: checked before the
    key is downloaded."""
    from flux_azdo.azdo.access import AccessOptions, parse_access_url

    try:
        parsed = parse_access_url(AccessOptions(url=url, allow_insecure_http=inputs.allow_insecure_http))
    except UserError as error:  # worded for --url, the CLI's one URL: here it is the SSH one
        message = error.message.replace("--url", "sshRepositoryUrl")
        raise UserError(message, fix=error.fix) from None
    if parsed.transport != "ssh":
        raise UserError(
            f"input sshRepositoryUrl {parsed.original} is not an SSH URL",
            fix="give the ssh:// URL (or leave it empty for the Azure DevOps SSH URL of repositoryUrl)",
        )
    return parsed


def ssh_access(inputs: TaskInputs, agent: AgentContext, files: RunFiles, url: str) -> tuple[AccessOptions, str]:
    """The `sshKey` secure file (downloaded once) as the CLI's SSH access flags, and the file's name; `url` empty:
    the cluster's own (rotateCredentials)."""
    from flux_azdo.azdo.access import AccessOptions

    if url:
        ssh_url(inputs, url)
    path, name = files.secure_key(agent, inputs.ssh_key)
    access = AccessOptions(
        url=url,
        password=inputs.ssh_key_passphrase or None,
        from_command_line=False,
        password_origin='input "sshKeyPassphrase"',
        private_key_file=path,
        private_key_origin=f"secure file {name} (input sshKey)",
        ssh_known_hosts=files.known_hosts(inputs.ssh_known_hosts),
        ssh_hostkey_algos=inputs.ssh_host_key_algorithms,
        allow_insecure_http=inputs.allow_insecure_http,
        timeout=f"{call_timeout(inputs)}s",
    )
    return access, name


def ssh_auth(inputs: TaskInputs, agent: AgentContext, files: RunFiles, url: str) -> tuple[SshAuth, str]:
    """The SSH key of the `sshKey` secure file, opened with its passphrase, its pinned host keys, the file's name."""
    from flux_azdo.azdo.access import ssh_key_from_options
    from flux_azdo.git.auth import SshAuth

    parsed = ssh_url(inputs, url)
    access, name = ssh_access(inputs, agent, files, url)
    key = ssh_key_from_options(access, parsed, {})
    assert key is not None and isinstance(key.auth, SshAuth)  # private_key_file is always set
    return key.auth, name


def sync_options(inputs: TaskInputs, url: str, branch: str) -> SyncOptions:
    from flux_azdo.manifests.sync import SyncOptions

    provider = "azure" if inputs.cluster_auth == "workloadIdentity" else "generic"
    sync = SyncOptions(
        url=url,
        branch=branch,
        path=inputs.path,
        interval=inputs.interval,
        namespace=inputs.namespace,
        name=inputs.name or None,
        provider=provider,
        allow_insecure_http=inputs.allow_insecure_http,
    )
    # An empty secretName is Flux's default name, which SyncOptions knows.
    return dataclasses.replace(sync, secret_name=inputs.secret_name) if inputs.secret_name else sync


def cluster_secret(
    inputs: TaskInputs, agent: AgentContext, files: RunFiles, request: PreflightRequest
) -> tuple[SyncOptions, SourceSecret | None]:
    """What the cluster syncs from and stores, per clusterAuth."""
    from flux_azdo.bootstrap_steps.credentials import cluster_source_secret
    from flux_azdo.git.auth import TokenAuth

    if inputs.cluster_auth == "sshKey":
        url = ssh_sync_url(inputs, request)
        auth, name = ssh_auth(inputs, agent, files, url)
        sync = sync_options(inputs, url, request.branch)
        known = inputs.ssh_known_hosts.strip() or None
        return sync, cluster_source_secret(sync, auth, None, known_hosts=known, key_origin=f"secure file {name}")
    sync = sync_options(inputs, request.url.https_url or request.url.git_url, request.branch)
    if inputs.cluster_auth == "workloadIdentity":
        return sync, None
    token = cluster_token(inputs, agent)
    return sync, cluster_source_secret(sync, TokenAuth(token), token)


def bootstrap_options(
    inputs: TaskInputs,
    agent: AgentContext,
    cluster: ConnectedCluster,
    files: RunFiles,
    reporter: PipelineReporter,
) -> BootstrapOptions:
    """As `cli._bootstrap_options`: every mistake found here writes nothing."""
    from flux_azdo.bootstrap import BootstrapOptions
    from flux_azdo.git.workspace import Author
    from flux_azdo.manifests.repository import WorkloadIdentity

    timeout = inputs.timeout_seconds
    install = install_options(inputs)
    install.selected_components()
    refuse_job_token_for_cluster(inputs, agent)
    request = push_request(inputs, agent, reporter)
    sync, secret = cluster_secret(inputs, agent, files, request)
    identity = None
    if inputs.cluster_auth == "workloadIdentity":
        from flux_azdo.manifests.kustomization import workload_identity_patch

        identity = WorkloadIdentity(
            inputs.workload_identity_client_id or None, inputs.workload_identity_tenant_id or None
        )
        workload_identity_patch(identity.client_id, identity.tenant_id)  # the ids are GUIDs: said before connecting
    return BootstrapOptions(
        url=request.url,
        install=install,
        sync=sync,
        manifests=inputs.manifests,
        git_auth=request.git_auth,
        api_token=request.token,
        cluster_secret=secret,
        identity=identity,
        cluster=dataclasses.replace(cluster.access, timeout=call_timeout(inputs)),
        create_repository=inputs.create_repository,
        create_branch=inputs.create_branch,
        force=inputs.force,
        author=Author(inputs.author_name, inputs.author_email),
        commit_message_appendix=inputs.commit_message_appendix,
        timeout=timeout,
        call_timeout=call_timeout(inputs),
    )


def install_options(inputs: TaskInputs) -> InstallOptions:
    from flux_azdo.manifests.install import InstallOptions

    return InstallOptions(
        version=inputs.flux_version or None,
        components=inputs.components,
        components_extra=inputs.components_extra,
        namespace=inputs.namespace,
        registry=inputs.registry,
        image_pull_secret=inputs.image_pull_secret,
        registry_creds=inputs.registry_credentials,
        network_policy=inputs.network_policy,
        watch_all_namespaces=inputs.watch_all_namespaces,
        log_level=inputs.log_level,
        cluster_domain=inputs.cluster_domain,
        toleration_keys=inputs.toleration_keys,
    )


# ----- the actions -------------------------------------------------------------------------------------------------


def run_action(
    inputs: TaskInputs,
    agent: AgentContext,
    cluster: ConnectedCluster,
    files: RunFiles,
    reporter: PipelineReporter,
) -> Outcome:
    """Run `inputs.action`; a UserError (BootstrapFailed with what was done) leaves for main to summarise."""
    runners = {
        "bootstrap": _bootstrap,
        "plan": _plan,
        "check": _check,
        "uninstall": _uninstall,
        "rotateCredentials": _rotate,
    }
    return runners[inputs.action](inputs, agent, cluster, files, reporter)


def _public_url(options: BootstrapOptions) -> str:
    return options.url.https_url or options.url.original


def _bootstrap(
    inputs: TaskInputs, agent: AgentContext, cluster: ConnectedCluster, files: RunFiles, reporter: PipelineReporter
) -> Outcome:
    from flux_azdo.bootstrap import bootstrap
    from flux_azdo.pipeline.summary import bootstrap_summary

    options = bootstrap_options(inputs, agent, cluster, files, reporter)
    result = bootstrap(options, reporter)
    url = _public_url(options)
    word = "changed" if result.changed else "unchanged"
    summary = bootstrap_summary(
        result,
        url=url,
        branch=options.branch,
        path=options.sync.path,
        flux_version=result.version,
        warnings=tuple(reporter.warnings),
        mask=reporter.masker.mask,
    )
    outputs = {
        "fluxVersion": result.version,
        "componentsCommit": result.components_commit or "",
        "syncCommit": result.sync_commit or "",
        "repositoryUrl": url,
        "result": word,
    }
    message = f"Flux {result.version} is running and in sync ({word})"
    return Outcome("Succeeded", word, message, summary, outputs)


def _plan(
    inputs: TaskInputs, agent: AgentContext, cluster: ConnectedCluster, files: RunFiles, reporter: PipelineReporter
) -> Outcome:
    from flux_azdo.pipeline.summary import plan_summary
    from flux_azdo.plan import plan, render_plan, summary_line

    options = bootstrap_options(inputs, agent, cluster, files, reporter)
    result = plan(options, reporter)
    reporter.detail(render_plan(result))
    word = "changes" if result.changed else "noChanges"
    outputs = {"fluxVersion": result.version, "repositoryUrl": _public_url(options), "result": word}
    return Outcome("Succeeded", word, summary_line(result), plan_summary(result, mask=reporter.masker.mask), outputs)


def _check(
    inputs: TaskInputs, agent: AgentContext, cluster: ConnectedCluster, files: RunFiles, reporter: PipelineReporter
) -> Outcome:
    """`flux-azdo check` with the cluster: the push credential's access, the cluster credential, the cluster."""
    from flux_azdo.azdo.preflight import render_text, run_preflight
    from flux_azdo.pipeline.summary import check_summary

    reporter.action("checking the repository, the credentials and the cluster (nothing is changed)")
    request = push_request(inputs, agent, reporter)
    request = dataclasses.replace(request, cluster_credential=_cluster_credential_kind(inputs, request))
    report = run_preflight(request)
    own = _cluster_credential_items(inputs, agent, request, files)
    items = [*report.items, *own, *_cluster_items(inputs, cluster)]
    report = dataclasses.replace(report, items=tuple(_in_input_terms(item) for item in items))
    reporter.detail(render_text(report))
    word = report.verdict
    outputs = {"repositoryUrl": request.url.https_url or request.url.original, "result": word}
    summary = check_summary(report, mask=reporter.masker.mask)
    if report.can_proceed:
        reporter.success("ready: a bootstrap with these inputs can proceed")
        return Outcome("Succeeded", word, "ready for a bootstrap", summary, outputs)
    failed = report.count("fail")
    message = f"blocked: {failed} problem{'s' if failed != 1 else ''} to fix before a bootstrap"
    reporter.failure(message)
    return Outcome("Failed", word, message, summary, outputs)


def _in_input_terms(item: CheckItem) -> CheckItem:
    """A check's words name the CLI's flags (`--create-repo`): the task's user sets inputs."""
    from flux_azdo.pipeline.inputs import in_input_terms

    fix = in_input_terms(item.fix) if item.fix else item.fix
    return dataclasses.replace(item, message=in_input_terms(item.message), fix=fix)


def _cluster_credential_kind(inputs: TaskInputs, request: PreflightRequest) -> ClusterCredential:
    if inputs.cluster_auth == "sshKey":
        return "ssh"
    if inputs.cluster_auth == "workloadIdentity":
        return "workload-identity"
    same = request.token is not None and inputs.cluster_pat.strip() == request.token.secret
    # A PAT of its own for the cluster: the push token's warnings do not apply to it (`_cluster_credential_items`
    # checks the PAT).
    return "token" if same else "separate-token"


def _cluster_credential_items(
    inputs: TaskInputs, agent: AgentContext, request: PreflightRequest, files: RunFiles
) -> list[CheckItem]:
    """The cluster's own credential, when it is not the push token: the job token is refused; an SSH key's secure
    file must download and open with its passphrase."""
    from flux_azdo.azdo.preflight import CheckItem
    from flux_azdo.pipeline.inputs import missing_cluster_credential, required_error

    missing = missing_cluster_credential(inputs)
    if missing is not None:  # the cluster would get no credential: a bootstrap stops on it, so check says so
        error = required_error(missing, f"with clusterAuth {inputs.cluster_auth}")
        return [CheckItem("cluster-credential", "fail", error.message, fix=error.fix)]
    try:
        if inputs.cluster_auth == "sshKey":
            _, name = ssh_auth(inputs, agent, files, ssh_sync_url(inputs, request))
            return [CheckItem("cluster-credential", "ok", f"the SSH key of secure file {name} opens")]
        if inputs.cluster_auth != "pat" or not inputs.cluster_pat:
            return []
        if request.token is not None and inputs.cluster_pat.strip() == request.token.secret:
            return []  # the push token itself: the preflight's own cluster-credential check covers it
        refuse_job_token_for_cluster(inputs, agent)
    except UserError as error:
        return [CheckItem("cluster-credential", "fail", error.message, fix=error.fix)]
    return []


def _cluster_items(inputs: TaskInputs, cluster: ConnectedCluster) -> list[CheckItem]:
    """`flux-azdo check --kubeconfig`'s cluster half, for the bootstrap these inputs describe."""
    from flux_azdo.cluster.checks import bootstrap_target, bootstrap_target_checks

    target = bootstrap_target(inputs.namespace, inputs.name, inputs.path, inputs.flux_version)
    return bootstrap_target_checks(lambda: cluster.access, target, force=inputs.force)


def _uninstall(
    inputs: TaskInputs, agent: AgentContext, cluster: ConnectedCluster, files: RunFiles, reporter: PipelineReporter
) -> Outcome:
    from flux_azdo.git.workspace import Author
    from flux_azdo.pipeline.summary import uninstall_summary
    from flux_azdo.uninstall import RemoveManifests, UninstallOptions, uninstall

    manifests = None
    if inputs.remove_manifests:
        request = push_request(inputs, agent, reporter)
        manifests = RemoveManifests(
            url=request.url,
            branch=request.branch,
            path=inputs.path or None,
            git_auth=request.git_auth,
            author=Author(inputs.author_name, inputs.author_email),
            commit_message_appendix=inputs.commit_message_appendix,
        )
    options = UninstallOptions(
        cluster=dataclasses.replace(cluster.access, timeout=call_timeout(inputs)),
        namespace=inputs.namespace,
        keep_crds=inputs.keep_crds,
        keep_namespace=inputs.keep_namespace,
        force=inputs.force,
        timeout=inputs.timeout_seconds,
        manifests=manifests,
    )
    result = uninstall(options, reporter)
    url = manifests.url.https_url if manifests is not None else None
    summary = uninstall_summary(result, url=url, mask=reporter.masker.mask)
    return Outcome("Succeeded", "uninstalled", "Flux was removed", summary, {"result": "uninstalled"})


def rotate_access(inputs: TaskInputs, agent: AgentContext, files: RunFiles) -> tuple[AccessOptions, str | None]:
    """The new credential as the CLI's rotate-credentials takes it; the known_hosts text, if given."""
    from flux_azdo.azdo.access import AccessOptions

    refuse_job_token_for_cluster(inputs, agent)
    if inputs.cluster_auth == "sshKey":
        access, _ = ssh_access(inputs, agent, files, inputs.ssh_repository_url)
        return access, inputs.ssh_known_hosts.strip() or None
    # A PAT is sent over https: an Azure DevOps ssh:// repositoryUrl becomes its https form, as for the push.
    url = inputs.repository_url and https_url(repository_url(inputs.repository_url, agent), inputs.allow_insecure_http)
    access = AccessOptions(
        url=url,
        password=inputs.cluster_pat,
        from_command_line=False,
        password_origin='input "clusterPat"',
        allow_insecure_http=inputs.allow_insecure_http,
        timeout=f"{call_timeout(inputs)}s",
    )
    return access, None


def _rotate(
    inputs: TaskInputs, agent: AgentContext, cluster: ConnectedCluster, files: RunFiles, reporter: PipelineReporter
) -> Outcome:
    from flux_azdo.pipeline.summary import rotate_summary
    from flux_azdo.rotate import RotateOptions, rotate_credentials

    access, known_hosts = rotate_access(inputs, agent, files)
    options = RotateOptions(
        cluster=dataclasses.replace(cluster.access, timeout=call_timeout(inputs)),
        access=access,
        namespace=inputs.namespace,
        name=inputs.name or None,
        secret_name=inputs.secret_name or None,
        known_hosts=known_hosts,
        timeout=inputs.timeout_seconds,
    )
    result = rotate_credentials(options, reporter)
    word = "unchanged" if result.secret == "unchanged" else "rotated"
    message = "the cluster already had this credential" if word == "unchanged" else "the new credential is in use"
    return Outcome("Succeeded", word, message, rotate_summary(result, mask=reporter.masker.mask), {"result": word})


def failure_outcome(action: str, error: UserError, reporter: PipelineReporter, *, url: str | None = None) -> Outcome:
    """A run that stopped: the failure summary, with what was done before (BootstrapFailed.result)."""
    from flux_azdo.bootstrap import BootstrapFailed
    from flux_azdo.pipeline.summary import failure_summary

    partial = error.result if isinstance(error, BootstrapFailed) else None
    summary = failure_summary(
        action,
        error.message,
        error.fix,
        partial=partial,
        warnings=tuple(reporter.warnings),
        url=url,
        mask=reporter.masker.mask,
    )
    return Outcome("Failed", "failed", error.message, summary, {"result": "failed"})
