"""`flux-azdo rotate-credentials`: give the cluster a new PAT or SSH key, tested first, and see Flux use it.

A PAT expires; an SSH key is replaced. Flux has no command for it: people edit the Secret by hand, and learn that
the new PAT lacks Code (Read) or that the key is not registered when the next fetch fails, minutes later. Here:

1. the GitRepository (`--namespace`/`--name`) says which repository, branch and Secret the cluster uses;
2. the new credential is refused if it cannot last (the pipeline's job token, known by SYSTEM_ACCESSTOKEN or, for
   Azure DevOps, by its identity being a build service), and **tested** with `git ls-remote` against that
   repository. Any failure stops the run before anything is written to the cluster;
3. the Secret gets the new credential (`cluster.secrets.apply_source_secret`, as bootstrap writes it); keys of the
   old credential that the new one does not have are removed in the same update (`password`, the old key's
   passphrase, would otherwise make source-controller try to decrypt an unencrypted new key with it);
4. a reconcile is requested (`reconcile.fluxcd.io/requestedAt`, as `flux reconcile source git`), and the run waits,
   by watch, until the GitRepository is Ready at the head of its branch, having handled that request: proof that
   source-controller fetched with the new credential.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flux_azdo.errors import UserError

if TYPE_CHECKING:
    from flux_azdo.azdo.access import AccessOptions
    from flux_azdo.azdo.preflight import PreflightRequest
    from flux_azdo.bootstrap import Reporter
    from flux_azdo.cluster.client import Cluster, ClusterAccess
    from flux_azdo.cluster.secrets import SecretAction
    from flux_azdo.console import TerminalReporter

SOURCE_API = "source.toolkit.fluxcd.io/v1"
REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
#: source-controller's branch when a GitRepository names no ref.
DEFAULT_BRANCH = "master"
CALL_TIMEOUT = 30.0


@dataclass(frozen=True)
class RotateOptions:
    """`access.url` empty: the GitRepository's own `spec.url`. `secret_name` None: its `spec.secretRef.name`."""

    cluster: ClusterAccess
    access: AccessOptions
    namespace: str = "flux-system"
    name: str | None = None
    secret_name: str | None = None
    known_hosts: str | None = None  # the text of --ssh-known-hosts
    timeout: float = 300.0

    def __post_init__(self) -> None:
        """A mistyped namespace stops here, whoever built the options (the CLI, the pipeline task)."""
        from flux_azdo.manifests.flags import validate_namespace

        validate_namespace(self.namespace)

    @property
    def object_name(self) -> str:
        return self.name or self.namespace


@dataclass(frozen=True)
class Target:
    """What the GitRepository fetches, and with which Secret."""

    url: str
    branch: str
    secret_name: str


@dataclass(frozen=True)
class RotateResult:
    secret: SecretAction
    removed_keys: tuple[str, ...]
    revision: str  # "<branch>@sha1:<sha>", what the GitRepository was waited for
    requested_at: str


def rotate_credentials(options: RotateOptions, reporter: Reporter) -> RotateResult:
    """Test, store and prove the new credential; UserError (nothing written) when it cannot be used."""
    from flux_azdo.azdo.access import preflight_request
    from flux_azdo.bootstrap_steps.credentials import cluster_source_secret
    from flux_azdo.cluster.client import Cluster
    from flux_azdo.cluster.secrets import apply_source_secret, removed_keys_note
    from flux_azdo.manifests.sync import SyncOptions

    deadline = time.monotonic() + options.timeout
    namespace, name = options.namespace, options.object_name
    with Cluster(options.cluster) as cluster:
        target = read_target(cluster, options)
        access = dataclasses.replace(options.access, url=target.url, branch=target.branch)
        request = preflight_request(access, warn=reporter.warning)
        if request.git_auth is None:
            needed = (
                "the new SSH key: pass --private-key-file"
                if request.url.transport == "ssh"
                else "the new PAT: set GIT_PASSWORD, or pipe it into --password-stdin"
            )
            raise UserError(f"rotate-credentials needs {needed}")
        sync = SyncOptions(
            url=target.url,
            branch=request.branch,
            namespace=namespace,
            name=name,
            secret_name=target.secret_name,
            username=access.username,
            allow_insecure_http=access.allow_insecure_http,
        )
        secret = cluster_source_secret(sync, request.git_auth, request.token, known_hosts=options.known_hosts)
        if secret is None:  # only with --provider azure, which this command does not take
            raise UserError("workload identity stores no credential: there is nothing to rotate")
        head = test_credential(request, reporter, min(CALL_TIMEOUT, options.timeout))
        revision = f"{request.branch}@sha1:{head}"

        where = f"{namespace}/{target.secret_name}"
        reporter.action(f'applying source secret "{where}"')
        change = apply_source_secret(cluster, secret)
        said = {
            "created": "created source secret with the new credential",
            "updated": "stored the new credential in source secret",
            "unchanged": "source secret already holds this credential",
        }
        reporter.success(f"{said[change.action]}{removed_keys_note(change.removed_keys)}")

        reporter.action(f'requesting a reconcile of GitRepository "{namespace}/{name}"')
        requested_at = request_reconcile(cluster, namespace, name)
        wait_until_ready(cluster, namespace, name, revision, deadline, requested_at, reporter)
    reporter.success("credentials rotated")
    return RotateResult(change.action, change.removed_keys, revision, requested_at)


def read_target(cluster: Cluster, options: RotateOptions) -> Target:
    """The GitRepository's URL, branch and Secret, checked against what the flags say."""
    from flux_azdo.cluster.client import UnknownKind

    namespace, name = options.namespace, options.object_name
    where = f"{namespace}/{name}"
    try:
        repository = cluster.get(SOURCE_API, "GitRepository", name, namespace)
    except UnknownKind:
        raise UserError(
            "Flux is not installed on this cluster (it has no GitRepository kind)",
            fix="bootstrap it first (flux-azdo bootstrap), or pass the --kubeconfig/--context of the cluster",
        ) from None
    if repository is None:
        raise UserError(
            f"there is no GitRepository {where}",
            fix="pass the --namespace and --name of the GitRepository whose credential to rotate "
            "(kubectl get gitrepositories -A lists them)",
        )
    spec = repository.get("spec") or {}
    url = str(spec.get("url") or "")
    secret = (spec.get("secretRef") or {}).get("name")
    if spec.get("provider") == "azure":
        raise UserError(
            f"GitRepository {where} signs in with workload identity (provider: azure): there is no credential to rotate"
        )
    if not secret:
        raise UserError(
            f"GitRepository {where} uses no Secret (spec.secretRef), so the cluster has no credential to rotate",
            fix="add secretRef to its manifest in the repository (flux-azdo bootstrap writes it), then run this again",
        )
    if options.secret_name and options.secret_name != secret:
        raise UserError(
            f"GitRepository {where} reads Secret {secret}, not {options.secret_name}",
            fix=f"drop --secret-name, or pass --secret-name {secret}",
        )
    if options.access.url and not _same_url(options.access.url, url, options.access.username):
        raise UserError(
            f"GitRepository {where} fetches {url}, not {options.access.url}: the new credential must be tested "
            "against the repository the cluster reads",
            fix="drop --url (the GitRepository's URL is used), or pass --namespace/--name of the right GitRepository",
        )
    ref = spec.get("ref") or {}
    if not ref.get("branch") and any(ref.get(key) for key in ("tag", "semver", "commit", "name")):
        raise UserError(
            f"GitRepository {where} follows a tag or commit, not a branch: this command checks the cluster against "
            "the head of a branch",
            fix=f"update Secret {namespace}/{secret} yourself, then `flux reconcile source git {name} -n {namespace}`",
        )
    return Target(url=url, branch=str(ref.get("branch") or DEFAULT_BRANCH), secret_name=str(secret))


def _same_url(given: str, live: str, username: str) -> bool:
    from flux_azdo.azdo.access import with_ssh_user
    from flux_azdo.azdo.urls import parse_repository_url

    def normal(text: str) -> str:
        try:
            return parse_repository_url(with_ssh_user(text, username), allow_insecure_http=True).git_url.rstrip("/")
        except UserError:
            return text.strip().rstrip("/")

    return normal(given) == normal(live)


def test_credential(request: PreflightRequest, reporter: Reporter, timeout: float) -> str:
    """`git ls-remote` with the new credential, as source-controller will fetch; the branch's head. For Azure
    DevOps over https, the token's identity too: a build service's token is the job token, however it came."""
    from flux_azdo.git.workspace import remote_state

    url, branch = request.url, request.branch
    reporter.action(f'checking the new credential against "{url.original}"')
    try:
        state = remote_state(url.git_url, request.git_auth, timeout=timeout)
    except UserError as error:
        raise UserError(
            f"the new credential cannot read {url.original}, so the cluster could not either: {error.message}",
            fix=error.fix or "nothing was changed in the cluster; fix the credential and run the command again",
        ) from None
    head = state.heads.get(branch)
    if head is None:
        raise UserError(
            f'branch "{branch}" does not exist in {url.original}, and the GitRepository follows it',
            fix="push the branch (flux-azdo bootstrap does), or fix spec.ref.branch of the GitRepository",
        )
    _refuse_build_identity(request, reporter, timeout)
    reporter.success(f'the new credential reads branch "{branch}" ({head})')
    return head


def _refuse_build_identity(request: PreflightRequest, reporter: Reporter, timeout: float) -> None:
    from flux_azdo.azdo.client import AzureDevOpsClient
    from flux_azdo.azdo.preflight import credential_kind
    from flux_azdo.bootstrap_steps.credentials import OWN_CREDENTIAL

    url, token = request.url, request.token
    if token is None or url.transport == "ssh" or not url.is_azure_devops or url.collection_url is None:
        return
    try:
        with AzureDevOpsClient(url.collection_url, token, timeout=timeout, retries=1) as client:
            caller = client.whoami()
    except UserError as error:
        reporter.warning(f"could not ask Azure DevOps whose token this is ({error.message}); going ahead")
        return
    if credential_kind(token, caller) == "job-token":
        raise UserError(
            f"the token belongs to {caller.display_name}, a pipeline's build service: it is a job token, which stops "
            "working when its job ends, and Flux would then fail every fetch",
            fix=OWN_CREDENTIAL,
        )


def request_reconcile(cluster: Cluster, namespace: str, name: str) -> str:
    """`flux reconcile source git`'s annotation; its value (the wait ignores any answer older than it)."""
    now = datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")
    resource = cluster.resource(SOURCE_API, "GitRepository")
    with cluster.errors(f"request a reconcile of GitRepository {namespace}/{name}"):
        cluster.dynamic.patch(
            resource,
            body={"metadata": {"annotations": {REQUESTED_AT: now}}},
            name=name,
            namespace=namespace,
            content_type="application/merge-patch+json",
            _request_timeout=cluster.access.timeout,
        )
    return now


def wait_until_handled(cluster: Cluster, namespace: str, name: str, requested_at: str, deadline: float) -> None:
    """Until source-controller reports it handled our request (`status.lastHandledReconcileAt`), set at the end
    of a reconcile, failed or not: only then does its Ready say anything about the new credential.

    `wait_for_source` alone would take a Ready=True left from before the rotation as the answer. Returns at the
    deadline too (or when the object is suspended or gone): `wait_for_source` then reports why.
    """
    from flux_azdo.uninstall import Kind, watch_objects

    kind = Kind("GitRepository", SOURCE_API, "gitrepositories", True)

    def settled(obj: dict[str, Any]) -> bool:
        if obj.get("metadata", {}).get("name") != name:
            return False
        handled = (obj.get("status") or {}).get("lastHandledReconcileAt") == requested_at
        return handled or (obj.get("spec") or {}).get("suspend") is True

    def listed(items: list[dict[str, Any]]) -> bool:
        return not any(item.get("metadata", {}).get("name") == name for item in items) or any(map(settled, items))

    def changed(event: str, obj: dict[str, Any]) -> bool:
        return (event == "DELETED" and obj.get("metadata", {}).get("name") == name) or settled(obj)

    watch_objects(cluster, kind, deadline, listed, changed, namespace=namespace, field_selector=f"metadata.name={name}")


def wait_until_ready(
    cluster: Cluster,
    namespace: str,
    name: str,
    revision: str,
    deadline: float,
    requested_at: str,
    reporter: Reporter,
) -> None:
    from flux_azdo.cluster.waits import WaitFailed, render_health, wait_for_source

    reporter.waiting(f'waiting for GitRepository "{namespace}/{name}" to be reconciled')
    wait_until_handled(cluster, namespace, name, requested_at, deadline)
    try:
        wait_for_source(cluster, namespace, name, revision, deadline, requested_at=requested_at)
    except WaitFailed as error:
        reporter.failure(error.message)
        text = render_health([h for h in error.health if not h.ready])
        if text.strip():
            reporter.detail(text)
        raise UserError(
            "the new credential is stored, but source-controller has not fetched with it successfully",
            fix=error.fix or "see the health report above; fix the cause and run the command again",
        ) from None
    reporter.success("GitRepository reconciled successfully")


# ------------------------------------------------------------------------------------------------ command line


def register(commands: Any) -> None:
    """Add `rotate-credentials` to the CLI's subcommands (`commands` is what `add_subparsers` returned)."""
    from flux_azdo.cli import _add_bool, _add_cluster_flags

    parser = commands.add_parser(
        "rotate-credentials",
        help="replace the cluster's Git credential (a new PAT or SSH key), tested first",
        description="Test a new PAT or SSH key against the repository the GitRepository fetches, refuse the "
        "pipeline's job token, then replace the credential in the GitRepository's Secret, request a reconcile and "
        "wait until source-controller has fetched the branch's head with it. Nothing is written when the new "
        "credential does not work. The PAT comes from GIT_PASSWORD, --password-stdin or --password.",
    )
    group = parser.add_argument_group("cluster")
    _add_cluster_flags(group)
    group.add_argument(
        "-n",
        "--namespace",
        default=None,
        help="namespace of the GitRepository (default flux-system, or $FLUX_SYSTEM_NAMESPACE)",
    )
    group.add_argument("--name", default=None, help="name of the GitRepository (default: the namespace)")
    group.add_argument(
        "--secret-name", default=None, help="the Secret to update (default: the GitRepository's spec.secretRef)"
    )
    group.add_argument(
        "--timeout", default="5m", metavar="DURATION", help="time limit of the whole run, wait included (default 5m)"
    )
    creds = parser.add_argument_group("the new credential")
    creds.add_argument(
        "--url",
        default=None,
        help="the repository URL, checked against the one the cluster fetches (default: the GitRepository's spec.url)",
    )
    creds.add_argument(
        "--password",
        default=None,
        help="https: the new PAT; ssh: the passphrase of --private-key-file (default: $GIT_PASSWORD; visible "
        "in `ps`: prefer GIT_PASSWORD or --password-stdin)",
    )
    creds.add_argument("--password-stdin", action="store_true", help="read --password's value from stdin")
    creds.add_argument("--private-key-file", type=Path, metavar="FILE", help="the new SSH private key (ssh:// URLs)")
    creds.add_argument(
        "--ssh-known-hosts", type=Path, metavar="FILE", help="known_hosts for the SSH host (Azure DevOps' is built in)"
    )
    creds.add_argument("--ssh-hostkey-algos", action="append", metavar="LIST", help="host key algorithms for SSH")
    creds.add_argument(
        "-u", "--username", default="git", help="https: the user name stored with the PAT; ssh: the URL's user"
    )
    _add_bool(creds, "--allow-insecure-http", False, "allow an http:// URL (test servers only)")
    parser.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace) -> int:
    from flux_azdo.console import TerminalReporter

    reporter = TerminalReporter()
    rotate_credentials(options_from_args(args, reporter), reporter)
    return 0


def options_from_args(args: argparse.Namespace, reporter: TerminalReporter) -> RotateOptions:
    from flux_azdo.azdo.access import AccessOptions, parse_timeout
    from flux_azdo.cli import _aks_cluster, _cluster_access, _csv, _namespace, _read_text
    from flux_azdo.errors import UsageError
    from flux_azdo.manifests.flags import validate_namespace

    _aks_cluster(args)  # a partial or conflicting set of --aks-* flags is a usage mistake, found first
    timeout = parse_timeout(args.timeout)
    namespace = _namespace(args, reporter)
    validate_namespace(namespace)  # before --aks-* asks Azure for the cluster (the options check it too)
    if args.password is not None and args.password_stdin:
        raise UsageError("pass either --password or --password-stdin, not both")
    known_hosts = _read_text(args.ssh_known_hosts, "--ssh-known-hosts") if args.ssh_known_hosts else None
    access = AccessOptions(
        url=args.url or "",
        password=args.password,
        password_stdin=args.password_stdin,
        private_key_file=args.private_key_file,
        ssh_known_hosts=args.ssh_known_hosts,
        ssh_hostkey_algos=_csv(args.ssh_hostkey_algos),
        username=args.username,
        allow_insecure_http=args.allow_insecure_http,
        timeout=f"{min(timeout, CALL_TIMEOUT)}s",
    )
    return RotateOptions(
        cluster=_cluster_access(args, min(timeout, CALL_TIMEOUT), reporter),
        access=access,
        namespace=namespace,
        name=args.name,
        secret_name=args.secret_name,
        known_hosts=known_hosts,
        timeout=timeout,
    )
