"""The `flux-azdo` command line.

Flag names and defaults mirror `flux install` and `flux bootstrap git`, so commands
people already run keep working. Only argparse and our own light modules are imported
at start-up; everything heavy is imported inside the command that needs it, which keeps
`flux-azdo --help` instant.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from flux_azdo import __version__
from flux_azdo.errors import UsageError, UserError

if TYPE_CHECKING:
    from flux_azdo.azdo.access import AccessOptions
    from flux_azdo.azdo.preflight import CheckItem
    from flux_azdo.bootstrap import BootstrapOptions
    from flux_azdo.cluster.aks import AksCluster
    from flux_azdo.cluster.checks import BootstrapTarget
    from flux_azdo.cluster.client import ClusterAccess
    from flux_azdo.console import TerminalReporter
    from flux_azdo.manifests.install import InstallOptions
    from flux_azdo.manifests.repository import BootstrapFiles
    from flux_azdo.manifests.sync import SyncOptions

DEFAULT_COMPONENTS = "source-controller,kustomize-controller,helm-controller,notification-controller"
#: Seconds each call to Azure DevOps, git's connection and the API server may take within bootstrap's --timeout.
_CALL_TIMEOUT = 30.0
_STATUS_WORDS = {"create": "created", "update": "updated", "unchanged": "unchanged", "keep": "kept"}
#: `plan --diff-lines` default (flux_azdo.plan.DEFAULT_DIFF_LINES; repeated here to keep start-up light).
DEFAULT_DIFF_LINES = 200
#: Commands whose exit code 2 means "something would change" (`plan`): their usage mistakes exit 1 instead.
_EXIT_2_MEANS_CHANGES = frozenset({"flux-azdo plan"})


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        error = UsageError(f"{message} (see '{self.prog} --help')")
        if self.prog in _EXIT_2_MEANS_CHANGES:
            error.exit_code = 1
        raise error


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes", "t"):
        return True
    if lowered in ("false", "0", "no", "f"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean: use true or false")


def _add_bool(parser: argparse._ActionsContainer, flag: str, default: bool, help_text: str) -> None:
    parser.add_argument(flag, nargs="?", const=True, default=default, type=_bool, metavar="BOOL", help=help_text)


def _csv(values: list[str] | None) -> tuple[str, ...]:
    """Comma-separated and/or repeated flags, as cobra's StringSlice reads them."""
    return tuple(item.strip() for value in values or () for item in value.split(",") if item.strip())


def _add_install_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Flux components (as `flux install`)")
    group.add_argument("-v", "--version", help="Flux version, e.g. v2.9.4 or 'latest' (default: the tested release)")
    group.add_argument(
        "--manifests",
        metavar="SOURCE",
        help="distribution to render from: a gotk-components.yaml, a folder or .tar.gz holding it, or "
        "oci://registry/repository (default oci://ghcr.io/fluxcd/flux-manifests)",
    )
    group.add_argument(
        "--components",
        action="append",
        metavar="LIST",
        help=f"controllers to install (default {DEFAULT_COMPONENTS})",
    )
    group.add_argument(
        "--components-extra",
        action="append",
        metavar="LIST",
        help="more controllers: image-reflector-controller,image-automation-controller,source-watcher",
    )
    group.add_argument(
        "-n",
        "--namespace",
        default=None,
        help="namespace Flux runs in (default flux-system, or $FLUX_SYSTEM_NAMESPACE)",
    )
    group.add_argument(
        "--registry",
        default="ghcr.io/fluxcd",
        help="container registry the controller images come from (default ghcr.io/fluxcd)",
    )
    group.add_argument("--image-pull-secret", default="", help="Secret the controllers pull their images with")
    group.add_argument(
        "--registry-creds",
        default="",
        metavar="USER:PASSWORD",
        help="credentials for --image-pull-secret (stored in the cluster, never in Git)",
    )
    _add_bool(group, "--network-policy", True, "deny ingress from other namespaces (default true)")
    _add_bool(group, "--watch-all-namespaces", True, "watch objects in every namespace (default true)")
    group.add_argument("--log-level", default="info", help="controller log level: debug, info or error (default info)")
    group.add_argument("--cluster-domain", default="cluster.local", help="cluster DNS domain (default cluster.local)")
    group.add_argument("--toleration-keys", action="append", metavar="LIST", help="taint keys the controllers tolerate")


def _add_sync_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("repository and sync (as `flux bootstrap git`)")
    group.add_argument(
        "--url",
        required=True,
        help="Git repository URL: https://dev.azure.com/<org>/<project>/_git/<repo> or ssh://git@ssh.dev.azure.com/v3/<org>/<project>/<repo>",
    )
    group.add_argument("--branch", default="main", help="branch Flux follows (default main)")
    group.add_argument(
        "--path",
        default="",
        help="folder of this cluster in the repository, e.g. clusters/prod (default: the root)",
    )
    group.add_argument("--interval", default="1m", help="how often Flux fetches the repository (default 1m)")
    group.add_argument(
        "--name", default=None, help="name of the GitRepository and Kustomization (default: the namespace)"
    )
    group.add_argument(
        "--secret-name",
        default="flux-system",
        help="Secret with the cluster's Git credentials (default flux-system)",
    )
    group.add_argument(
        "--provider",
        default="generic",
        choices=("generic", "azure"),
        help="'azure': workload identity to Azure DevOps, no Secret",
    )
    group.add_argument(
        "--azure-client-id",
        default=None,
        help="client ID of the managed identity source-controller uses with --provider azure",
    )
    group.add_argument("--azure-tenant-id", default=None, help="tenant ID of that identity (optional)")
    group.add_argument("-u", "--username", default="git", help="user for SSH URLs without one (default git)")
    group.add_argument("--ssh-hostname", default="", help="host[:port] the cluster uses for SSH, if not the URL's")
    _add_bool(group, "--recurse-submodules", False, "also fetch Git submodules")
    group.add_argument(
        "--sparse-checkout", action="append", metavar="LIST", help="only these folders of the repository"
    )
    _add_bool(group, "--allow-insecure-http", False, "allow an http:// URL (test servers only)")
    _add_bool(
        group,
        "--token-auth",
        False,
        "accepted for `flux bootstrap git` compatibility: https URLs always use a token",
    )


def build_parser() -> argparse.ArgumentParser:
    # Light at import (they import what they run inside their handlers), and they use this module's helpers.
    from flux_azdo import demo, rotate, uninstall

    parser = _Parser(
        prog="flux-azdo",
        description="Bootstrap Flux on AKS with an Azure DevOps Git repository as the source of truth.",
    )
    parser.add_argument("--version", action="version", version=f"flux-azdo {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    install = commands.add_parser(
        "install",
        help="render gotk-components.yaml (with --export)",
        description="Render the Flux components, as `flux install --export` does.",
    )
    install.add_argument("--export", action="store_true", help="print the manifests to stdout")
    _add_install_flags(install)
    install.set_defaults(handler=_cmd_install)

    generate = commands.add_parser(
        "generate",
        help="write the files `flux bootstrap` commits",
        description="Write <path>/<namespace>/{gotk-components,gotk-sync,kustomization}.yaml into a checkout, "
        "as `flux bootstrap git` would commit them.",
    )
    generate.add_argument("--output-dir", required=True, type=Path, help="the repository checkout to write into")
    _add_sync_flags(generate)
    _add_install_flags(generate)
    generate.set_defaults(handler=_cmd_generate)

    check = commands.add_parser(
        "check",
        help="check credentials, repository and permissions before a bootstrap (reads only)",
        description="Check, without changing anything, that a bootstrap to --url can succeed: who the credential "
        "belongs to, whether the project, repository and branch exist or may be created, the Git permissions and "
        "PAT scopes the run needs, branch policies, and git access; with --kubeconfig, --context or --cluster also "
        "the cluster: the API server answers, its Kubernetes version suits the Flux version, the user may create "
        "what bootstrap creates, an existing Flux and who manages it, and a Kustomization syncing another path. "
        "Every problem comes with its fix. Exit code 0: ready; 1: blocked.",
    )
    _add_access_flags(check)
    check.add_argument(
        "-o", "--output", default="text", choices=("text", "json"), help="text (default) or json on stdout"
    )
    _add_check_cluster_flags(check)
    check.set_defaults(handler=_cmd_check)
    _add_bootstrap_command(commands)
    _add_plan_command(commands)
    _add_sandbox_commands(commands)
    uninstall.register(commands)
    rotate.register(commands)
    demo.register(commands)
    return parser


def _add_check_cluster_flags(parser: argparse.ArgumentParser) -> None:
    """`check`'s cluster half: off unless asked, since most checks of the repository need no cluster at all."""
    group = parser.add_argument_group("cluster (checked when --kubeconfig, --context or --cluster is given)")
    group.add_argument(
        "--cluster",
        action="store_true",
        help="also check the cluster of $KUBECONFIG, else ~/.kube/config, else the in-cluster service account",
    )
    _add_cluster_flags(group)
    group.add_argument(
        "-n",
        "--namespace",
        default=None,
        help="namespace bootstrap would install Flux in (default flux-system, or $FLUX_SYSTEM_NAMESPACE)",
    )
    group.add_argument(
        "--name", default=None, help="name of the GitRepository and Kustomization (default: the namespace)"
    )
    group.add_argument("--path", default="", help="the --path bootstrap would use (for the path guard)")
    group.add_argument("-v", "--version", help="Flux version bootstrap would install (default: the tested release)")
    group.add_argument(
        "--force", action="store_true", help="as bootstrap's --force: a Flux managed by something else is a warning"
    )


def _add_access_flags(
    parser: argparse.ArgumentParser, *, repository_flags: bool = True, call_timeout: bool = True
) -> None:
    """How this run reaches the repository: shared by `check` and the commands that write to it.

    `repository_flags=False` leaves out --url, --branch, --provider, --username and --allow-insecure-http for a
    command that already has them from `_add_sync_flags`; `call_timeout=False` leaves --timeout to a command
    where it means the whole run (bootstrap, as in Flux).
    """
    group = parser.add_argument_group("repository and credentials")
    if repository_flags:
        group.add_argument(
            "--url",
            required=True,
            help="Git repository URL: https://dev.azure.com/<org>/<project>/_git/<repo> or "
            "ssh://git@ssh.dev.azure.com/v3/<org>/<project>/<repo>",
        )
        group.add_argument("--branch", default="main", help="branch Flux follows (default main)")
    group.add_argument("--create-repo", action="store_true", help="create the repository when it does not exist")
    group.add_argument(
        "--create-branch",
        action="store_true",
        help="create --branch from the default branch when it does not exist in a non-empty repository",
    )
    group.add_argument(
        "--password",
        default=None,
        help="https: the PAT or job token; ssh: the passphrase of --private-key-file (default: $GIT_PASSWORD; "
        "visible in `ps`: prefer GIT_PASSWORD or --password-stdin)",
    )
    group.add_argument(
        "--password-stdin", action="store_true", help="read --password's value from the first line of stdin"
    )
    group.add_argument(
        "--entra-auth",
        action="store_true",
        help="use a Microsoft Entra token (DefaultAzureCredential: az login, workload identity, managed identity) "
        "for the API and, with https, for git",
    )
    group.add_argument(
        "--organization",
        metavar="URL|NAME",
        help="the REST API's organisation or collection URL (a name means https://dev.azure.com/NAME); "
        "needed for SSH URLs of Azure DevOps Server",
    )
    group.add_argument("--private-key-file", type=Path, metavar="FILE", help="SSH private key for an ssh:// URL")
    group.add_argument(
        "--ssh-known-hosts",
        type=Path,
        metavar="FILE",
        help="known_hosts for the SSH host (Azure DevOps' own key is built in)",
    )
    group.add_argument(
        "--ssh-hostkey-algos",
        action="append",
        metavar="LIST",
        help="host key and signature algorithms for SSH (default rsa-sha2-512,rsa-sha2-256)",
    )
    if repository_flags:
        group.add_argument("-u", "--username", default="git", help="user for SSH URLs without one (default git)")
        group.add_argument(
            "--provider",
            default="generic",
            choices=("generic", "azure"),
            help="what the cluster authenticates with: 'generic' (the token or SSH key) or 'azure' (workload identity)",
        )
        _add_bool(group, "--allow-insecure-http", False, "allow an http:// URL (test servers only)")
    if call_timeout:
        group.add_argument(
            "--timeout",
            default="30s",
            metavar="DURATION",
            help="time limit of each call to Azure DevOps and git (default 30s)",
        )


def _add_bootstrap_command(commands: Any) -> None:
    bootstrap = commands.add_parser(
        "bootstrap",
        help="install Flux in a cluster and make it sync from the repository (as `flux bootstrap git`)",
        description="Do what `flux bootstrap git` does, step for step and with its messages: commit the component "
        "and sync manifests to <path>/<namespace>/ of --url, install the components, store the Git credential "
        "in the cluster, apply the sync manifests and wait until Flux runs the pushed commit. First, nothing "
        "written yet, it checks the repository permissions and the cluster (version, RBAC, an existing Flux, a "
        "Kustomization with another path) and stops with the fixes when something would fail. Running it again "
        "changes nothing unless something changed. Exit code 0: Flux runs the pushed commit; 1: stopped (see "
        "the lines on stderr).",
    )
    _add_bootstrap_flags(bootstrap, output_help="json: a report of the run on stdout")
    bootstrap.set_defaults(handler=_cmd_bootstrap)


def _add_plan_command(commands: Any) -> None:
    plan = commands.add_parser(
        "plan",
        help="show what bootstrap would change in the repository and the cluster, changing nothing",
        description="Take the same flags as bootstrap and show what it would change, writing nothing: in the "
        "repository a unified diff per file of <path>/<namespace>/ (create, update or unchanged), in the cluster "
        "create, update or unchanged per object from a server-side dry run, and whether the source secret would "
        "be created or updated (its values are never shown). The preflight runs first, as in bootstrap. The "
        "repository is cloned into a temporary folder; the only requests to the cluster that are not reads are "
        "dry runs and access reviews. Exit code 0: nothing would change; 2: something would; 1: an error, or "
        "bootstrap would stop (see the lines on stderr).",
    )
    _add_bootstrap_flags(plan, output_help="json: the plan on stdout (the diffs included)")
    plan.add_argument(
        "--diff-lines",
        type=_diff_lines,
        default=DEFAULT_DIFF_LINES,
        metavar="N|all",
        help=f"text output: show at most N lines of each file's diff (default {DEFAULT_DIFF_LINES}; 0: no diffs; "
        "all: every line)",
    )
    plan.set_defaults(handler=_cmd_plan)


def _diff_lines(text: str) -> int | None:
    if text.strip().lower() == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of lines: give N (0 or more) or 'all'") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative: give N (0 or more) or 'all'")
    return value


def _add_bootstrap_flags(parser: argparse.ArgumentParser, *, output_help: str) -> None:
    """The flags of `bootstrap`, shared with `plan` so that a plan is run by changing only the command's name."""
    _add_sync_flags(parser)
    _add_install_flags(parser)
    _add_access_flags(parser, repository_flags=False, call_timeout=False)
    group = parser.add_argument_group("cluster and run")
    _add_cluster_flags(group)
    group.add_argument(
        "--kustomize",
        type=Path,
        metavar="PROGRAM",
        help="kustomize or kubectl to build a kustomization.yaml with patches (default: kustomize, else kubectl, "
        "on PATH)",
    )
    group.add_argument("--timeout", default="5m", metavar="DURATION", help="time limit of the whole run (default 5m)")
    group.add_argument(
        "--force",
        action="store_true",
        help="go ahead even when the cluster's Flux is managed by something else (e.g. the AKS extension)",
    )
    group.add_argument("--author-name", default="Flux", help="author of the commits (default Flux)")
    group.add_argument("--author-email", default="", help="email of the commit author (default empty)")
    group.add_argument(
        "--commit-message-appendix", default="", help="text added to the commit messages, e.g. '[skip ci]'"
    )
    _add_bool(group, "--silent", False, "accepted for `flux bootstrap git` compatibility: flux-azdo never asks")
    group.add_argument("-o", "--output", default="text", choices=("text", "json"), help=output_help)


def _add_cluster_flags(group: argparse._ActionsContainer) -> None:
    """--kubeconfig/--context, or an AKS cluster reached through Azure Resource Manager (no az, no kubelogin)."""
    group.add_argument("--kubeconfig", type=Path, help="kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)")
    group.add_argument("--context", help="kubeconfig context (default: its current-context)")
    group.add_argument(
        "--aks-subscription",
        metavar="ID",
        help="AKS instead of a kubeconfig: the cluster's subscription id (with --aks-resource-group and "
        "--aks-name; signs in with DefaultAzureCredential: AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET, "
        "workload or managed identity, az login)",
    )
    group.add_argument("--aks-resource-group", metavar="NAME", help="the AKS cluster's resource group")
    group.add_argument("--aks-name", metavar="NAME", help="the AKS cluster's name")
    group.add_argument(
        "--aks-admin",
        action="store_true",
        help="use the cluster's admin credential (needs the Cluster Admin Role and local accounts enabled)",
    )
    group.add_argument(
        "--arm-url",
        metavar="URL",
        help="Azure Resource Manager endpoint of the cluster's cloud (default https://management.azure.com/)",
    )
    group.add_argument(
        "--arm-scope",
        metavar="SCOPE",
        help="scope (or resource id) of the token for --arm-url, when not the cloud's own, e.g. for Azure Stack Hub "
        "(default: https://management.azure.com/.default for the public cloud, else the URL's)",
    )


#: The open commands' clean-up (innermost last): `main` opens one per command; `_cluster_access` adds to it.
_COMMAND_CLEANUPS: list[contextlib.ExitStack] = []
#: Folders made outside `main` (a handler called as a library): kept alive, removed at interpreter exit.
_KEPT: list[Any] = []


@contextlib.contextmanager
def _command_scope() -> Iterator[None]:
    """What a command leaves behind (an AKS kubeconfig's private folder) is removed when it ends, however it ends:
    an exception, Ctrl-C, or SIGTERM (turned into `_Terminated`) all unwind through here."""
    with contextlib.ExitStack() as stack:
        _COMMAND_CLEANUPS.append(stack)
        try:
            yield
        finally:
            _COMMAND_CLEANUPS.remove(stack)


def _aks_cluster(args: argparse.Namespace) -> AksCluster | None:
    """The AKS cluster the --aks-* flags name, None without them; a partial or conflicting set is a UsageError."""
    names = {
        "--aks-subscription": getattr(args, "aks_subscription", None),
        "--aks-resource-group": getattr(args, "aks_resource_group", None),
        "--aks-name": getattr(args, "aks_name", None),
    }
    given = [flag for flag, value in names.items() if value is not None]
    if not given:
        extras = [
            f
            for f, on in (
                ("--aks-admin", getattr(args, "aks_admin", False)),
                ("--arm-url", getattr(args, "arm_url", None)),
                ("--arm-scope", getattr(args, "arm_scope", None)),
            )
            if on
        ]
        if extras:
            raise UsageError(
                f"{extras[0]} applies to an AKS cluster: add --aks-subscription, --aks-resource-group and --aks-name"
            )
        return None
    missing = [flag for flag in names if flag not in given]
    if missing:
        raise UsageError(f"{given[0]} needs {' and '.join(missing)}: name the AKS cluster with all three")
    conflicting = [f for f, v in (("--kubeconfig", args.kubeconfig), ("--context", args.context)) if v is not None]
    if conflicting:
        raise UsageError(f"{conflicting[0]} and --aks-name both say which cluster: pass one of them")
    from flux_azdo.cluster.aks import AksCluster, arm_base_url

    if args.arm_url is not None:
        try:
            arm_base_url(args.arm_url)
        except UserError as error:  # a flag's value that cannot be used: a usage mistake, exit 2 like the others
            raise UsageError(error.message, fix=error.fix) from None
    return AksCluster(str(names["--aks-subscription"]), str(names["--aks-resource-group"]), str(names["--aks-name"]))


def _cluster_access(
    args: argparse.Namespace, timeout: float, reporter: TerminalReporter | None = None
) -> ClusterAccess:
    """The cluster flags as a ClusterAccess; for --aks-*, the cluster's kubeconfig fetched from Azure Resource
    Manager into a private folder that is removed when the command ends."""
    from flux_azdo.cluster.client import ClusterAccess

    aks = _aks_cluster(args)
    if aks is None:
        return ClusterAccess(args.kubeconfig, args.context, timeout)
    from flux_azdo.cluster.aks import aks_kubeconfig, write_private_kubeconfig
    from flux_azdo.cluster.azure_credentials import PUBLIC_ARM_URL, cli_credential, scope_for
    from flux_azdo.git.folders import PrivateFolder

    kind = "admin" if args.aks_admin else "user"
    if reporter is not None:
        reporter.action(f"getting the {kind} credential of AKS cluster {aks.name} from Azure Resource Manager")
    with cli_credential(timeout=timeout) as credential:  # its HTTP sessions are closed once the tokens are in
        kubeconfig = aks_kubeconfig(
            aks,
            credential,
            admin=args.aks_admin,
            arm_url=args.arm_url or PUBLIC_ARM_URL,
            timeout=timeout,
            arm_scope=scope_for(args.arm_scope) if args.arm_scope else None,
        )
    folder = PrivateFolder("flux-azdo-aks-")
    if _COMMAND_CLEANUPS:
        _COMMAND_CLEANUPS[-1].callback(folder.remove)
    else:
        _KEPT.append(folder)
    path = write_private_kubeconfig(kubeconfig, folder.path)
    if reporter is not None:
        how = "a Microsoft Entra token" if kubeconfig.entra else f"the {kind} credential"
        reporter.success(f"AKS cluster {aks.name} at {kubeconfig.server}, with {how}")
    return ClusterAccess(path, None, timeout)


def _folder(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path is not a folder: name one, e.g. --dir /tmp/flux-sandbox")
    return Path(text)


def _add_sandbox_commands(commands: Any) -> None:
    sandbox = commands.add_parser(
        "sandbox",
        help="run a local Azure DevOps + Kubernetes + Flux stand-in in the background",
        description="A local Azure DevOps organisation (REST, git over HTTP and SSH), a Kubernetes API server and "
        "a Flux controller simulator on 127.0.0.1, for trying flux-azdo without a cloud account.",
    )
    actions = sandbox.add_subparsers(dest="sandbox_command", metavar="ACTION", parser_class=_Parser)
    actions.required = True
    up = actions.add_parser(
        "up",
        help="start it and write DIR/kubeconfig and DIR/sandbox.env",
        description="Start the sandbox in the background. DIR/sandbox.env (shell-sourceable) holds the URLs and "
        "credentials; DIR/kubeconfig points at its API server.",
    )
    up.add_argument("--dir", required=True, type=_folder, help="a new or empty folder for the sandbox's files")
    up.add_argument(
        "--kubeconfig",
        type=Path,
        help="drive this existing cluster's API server instead of the built-in fake one",
    )
    ssh = up.add_mutually_exclusive_group()
    ssh.add_argument(
        "--ssh",
        dest="ssh",
        action="store_const",
        const=True,
        default="auto",
        help="require the SSH endpoint (default: start it when OpenSSH's sshd is installed)",
    )
    ssh.add_argument("--no-ssh", dest="ssh", action="store_const", const=False, help="do not start sshd")
    up.add_argument("--http", action="store_true", help="serve the Kubernetes API over plain http instead of https")
    up.add_argument("--no-flux", dest="flux", action="store_false", help="do not run the Flux controller simulator")
    simulate = up.add_mutually_exclusive_group()
    simulate.add_argument(
        "--simulate-deployments",
        dest="simulate_deployments",
        action="store_const",
        const=True,
        default=None,
        help="make Flux Deployments available even with --kubeconfig (for an API server without controllers)",
    )
    simulate.add_argument(
        "--no-simulate-deployments",
        dest="simulate_deployments",
        action="store_const",
        const=False,
        help="leave Deployments to the cluster's own controllers (the default with --kubeconfig)",
    )
    up.add_argument(
        "--azure",
        action="store_true",
        help="also start a local Microsoft Entra ID and Azure Resource Manager with an AKS cluster on the sandbox's "
        "API server, a service principal and an AzureRM service connection (for --aks-* and the pipeline task); "
        "sandbox.env then holds the AZURE_* values",
    )
    up.set_defaults(handler=_cmd_sandbox_up)
    down = actions.add_parser("down", help="stop it and remove its files", description="Stop the sandbox.")
    down.add_argument("--dir", required=True, type=_folder, help="the folder given to `sandbox up`")
    down.set_defaults(handler=_cmd_sandbox_down)


def _namespace(args: argparse.Namespace, reporter: TerminalReporter) -> str:
    if args.namespace is not None:
        return str(args.namespace)
    from_env = os.environ.get("FLUX_SYSTEM_NAMESPACE", "").strip()
    if from_env:
        from flux_azdo.manifests.flags import validate_namespace

        try:
            validate_namespace(from_env)
            return from_env
        except UserError:
            reporter.warning(f"ignoring invalid FLUX_SYSTEM_NAMESPACE: {from_env!r}")
    return "flux-system"


def _install_options(args: argparse.Namespace, namespace: str) -> InstallOptions:
    from flux_azdo.manifests.install import InstallOptions

    return InstallOptions(
        version=args.version,
        components=_csv(args.components) or tuple(DEFAULT_COMPONENTS.split(",")),
        components_extra=_csv(args.components_extra),
        namespace=namespace,
        registry=args.registry,
        image_pull_secret=args.image_pull_secret,
        registry_creds=args.registry_creds,
        network_policy=args.network_policy,
        watch_all_namespaces=args.watch_all_namespaces,
        log_level=args.log_level,
        cluster_domain=args.cluster_domain,
        toleration_keys=_csv(args.toleration_keys),
    )


def _sync_options(args: argparse.Namespace, namespace: str) -> SyncOptions:
    from flux_azdo.manifests.sync import SyncOptions

    return SyncOptions(
        url=args.url,
        branch=args.branch,
        path=args.path,
        interval=args.interval,
        namespace=namespace,
        name=args.name,
        secret_name=args.secret_name,
        recurse_submodules=args.recurse_submodules,
        sparse_checkout=_csv(args.sparse_checkout),
        provider=args.provider,
        username=args.username,
        ssh_hostname=args.ssh_hostname,
        allow_insecure_http=args.allow_insecure_http,
    )


def _cmd_install(args: argparse.Namespace) -> int:
    from flux_azdo.console import TerminalReporter
    from flux_azdo.manifests.install import generate_components
    from flux_azdo.sources import resolve_distribution

    if not args.export:
        raise UsageError(
            "flux-azdo install needs --export (it prints the manifests); "
            "`flux-azdo generate` writes the bootstrap files into a checkout"
        )
    reporter = TerminalReporter()
    options = _install_options(args, _namespace(args, reporter))
    options.selected_components()  # every flag is checked before anything is downloaded
    distribution = resolve_distribution(args.manifests, args.version, progress=reporter.action)
    sys.stdout.write(generate_components(distribution, options))
    sys.stdout.flush()
    return 0


def _report_plan(plan: BootstrapFiles, reporter: TerminalReporter) -> None:
    for planned in plan.files:
        reporter.success(f"{_STATUS_WORDS[planned.status]} {planned.path}")
    for finding in plan.findings:
        reporter.warning(f"{finding.problem}; add:")
        reporter.detail(finding.fix)


def _generate(
    output_dir: Path,
    install: InstallOptions,
    sync: SyncOptions,
    manifests: str | None,
    reporter: TerminalReporter,
    identity: Any = None,
) -> BootstrapFiles:
    from flux_azdo.files import read_manifests_folder, write_files_atomically
    from flux_azdo.manifests.distribution import COMPONENTS_FILE
    from flux_azdo.manifests.kustomization import KUSTOMIZATION_FILE, SYNC_FILE
    from flux_azdo.manifests.paths import manifests_dir, repository_path
    from flux_azdo.manifests.repository import plan_bootstrap_files
    from flux_azdo.manifests.sync import validate_sync
    from flux_azdo.sources import resolve_distribution

    install.selected_components()
    validate_sync(sync)
    if output_dir.exists() and not output_dir.is_dir():
        raise UserError(f"--output-dir {output_dir} is a file: point it at a folder (your repository checkout)")
    distribution = resolve_distribution(manifests, install.version, progress=reporter.action)
    folder = output_dir / manifests_dir(repository_path(sync.path), sync.namespace)
    plan = plan_bootstrap_files(
        distribution,
        install,
        sync,
        read_manifests_folder(folder, (COMPONENTS_FILE, SYNC_FILE, KUSTOMIZATION_FILE)),
        identity,
    )
    reporter.generate(f'generated manifests for "{folder}"')
    write_files_atomically(output_dir, {f.path: f.content for f in plan.files if f.status in ("create", "update")})
    _report_plan(plan, reporter)
    return plan


def _cmd_generate(args: argparse.Namespace) -> int:
    from flux_azdo.console import TerminalReporter
    from flux_azdo.manifests.repository import WorkloadIdentity

    reporter = TerminalReporter()
    namespace = _namespace(args, reporter)
    identity = WorkloadIdentity(args.azure_client_id, args.azure_tenant_id)
    sync = _sync_options(args, namespace)
    if args.token_auth:
        from flux_azdo.manifests.sync import resolve_sync_target

        if resolve_sync_target(sync).transport == "ssh":
            raise UserError(f"--token-auth needs an https URL, not {args.url!r}: pass the repository's https clone URL")
    _generate(
        args.output_dir,
        _install_options(args, namespace),
        sync,
        args.manifests,
        reporter,
        identity,
    )
    return 0


def _access_options(args: argparse.Namespace, *, timeout: str | None = None) -> AccessOptions:
    """The access flags of `check` and `bootstrap` as `flux_azdo.azdo.access` takes them."""
    from flux_azdo.azdo.access import AccessOptions

    return AccessOptions(
        url=args.url,
        branch=args.branch,
        create_repository=args.create_repo,
        create_branch=args.create_branch,
        password=args.password,
        password_stdin=args.password_stdin,
        entra_auth=args.entra_auth,
        organization=args.organization,
        private_key_file=args.private_key_file,
        ssh_known_hosts=args.ssh_known_hosts,
        ssh_hostkey_algos=_csv(args.ssh_hostkey_algos),
        username=args.username,
        provider=args.provider,
        allow_insecure_http=args.allow_insecure_http,
        timeout=timeout or args.timeout,
    )


def _cmd_check(args: argparse.Namespace) -> int:
    import json

    from flux_azdo.azdo.access import preflight_request
    from flux_azdo.azdo.preflight import render_text, run_preflight
    from flux_azdo.console import TerminalReporter

    reporter = TerminalReporter()
    try:
        request = preflight_request(_access_options(args), warn=reporter.warning)
        target = _cluster_target(args, reporter) if _cluster_asked(args) else None
    except UserError as error:
        if args.output == "json":
            # Scripts read stdout: they get a document for a mistake too (the line still goes to stderr).
            document = {"verdict": "error", "error": error.message, "fix": getattr(error, "fix", None)}
            sys.stdout.write(json.dumps(document, indent=2) + "\n")
            sys.stdout.flush()
        raise
    report = run_preflight(request)
    if target is not None:
        report = replace(report, items=(*report.items, *_cluster_check_items(args, target)))
    if args.output == "json":
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
    else:
        sys.stdout.write(render_text(report))
    sys.stdout.flush()
    return 0 if report.can_proceed else 1


def _cluster_asked(args: argparse.Namespace) -> bool:
    aks = _aks_cluster(args)  # first: a partial or conflicting set of --aks-* flags is a usage mistake
    return bool(args.cluster or args.kubeconfig is not None or args.context is not None or aks is not None)


def _cluster_target(args: argparse.Namespace, reporter: TerminalReporter) -> BootstrapTarget:
    """What `check` asks the cluster about: the namespace, name, path and Flux version of the bootstrap to come."""
    from flux_azdo.cluster.checks import bootstrap_target

    return bootstrap_target(_namespace(args, reporter), args.name, args.path, args.version)


def _cluster_check_items(args: argparse.Namespace, target: BootstrapTarget) -> list[CheckItem]:
    """The cluster checks for the bootstrap these flags describe."""
    from flux_azdo.azdo.access import parse_timeout
    from flux_azdo.cluster.checks import bootstrap_target_checks

    return bootstrap_target_checks(lambda: _cluster_access(args, parse_timeout(args.timeout)), target, force=args.force)


def _cmd_plan(args: argparse.Namespace) -> int:
    """Exit 0: nothing would change; 2: something would; 1: an error (also for usage mistakes, see `_Parser`)."""
    import json

    from flux_azdo.console import TerminalReporter
    from flux_azdo.plan import plan, render_plan

    reporter = TerminalReporter()
    try:
        result = plan(_bootstrap_options(args, reporter), reporter)
    except UserError as failure:
        if args.output == "json":
            document = {"error": failure.message, "fix": failure.fix}
            sys.stdout.write(json.dumps(document, indent=2) + "\n")
            sys.stdout.flush()
        if failure.exit_code != 1:  # a UsageError (2) would read as "something would change"
            raise UserError(failure.message, fix=failure.fix) from None
        raise
    if args.output == "json":
        sys.stdout.write(json.dumps(result.to_json(), indent=2) + "\n")
    else:
        sys.stdout.write(render_plan(result, diff_lines=args.diff_lines))
    sys.stdout.flush()
    return result.exit_code


def _cmd_bootstrap(args: argparse.Namespace) -> int:
    import json

    from flux_azdo.bootstrap import BootstrapFailed, bootstrap
    from flux_azdo.console import TerminalReporter

    reporter = TerminalReporter()
    try:
        result = bootstrap(_bootstrap_options(args, reporter), reporter)
    except UserError as failure:
        if args.output == "json":
            # Scripts read stdout: a stopped run gives a document too, with what was done before it stopped.
            partial = failure.result if isinstance(failure, BootstrapFailed) else None
            document = partial.to_json() if partial is not None else {}
            document.update(error=failure.message, fix=failure.fix)
            sys.stdout.write(json.dumps(document, indent=2) + "\n")
            sys.stdout.flush()
        raise
    if args.output == "json":
        sys.stdout.write(json.dumps(result.to_json(), indent=2) + "\n")
        sys.stdout.flush()
    return 0


def _bootstrap_options(args: argparse.Namespace, reporter: TerminalReporter) -> BootstrapOptions:
    """Flags and environment -> what `flux_azdo.bootstrap` runs with; every mistake found here writes nothing."""
    from flux_azdo.azdo.access import parse_timeout, preflight_request
    from flux_azdo.bootstrap import BootstrapOptions
    from flux_azdo.bootstrap_steps.credentials import cluster_source_secret
    from flux_azdo.git.workspace import Author
    from flux_azdo.manifests.repository import WorkloadIdentity

    _aks_cluster(args)  # a partial or conflicting set of --aks-* flags is a usage mistake, found before any call
    timeout = parse_timeout(args.timeout)
    call_timeout = min(timeout, _CALL_TIMEOUT)
    namespace = _namespace(args, reporter)
    install = _install_options(args, namespace)
    install.selected_components()
    request = preflight_request(_access_options(args, timeout=f"{call_timeout}s"), warn=reporter.warning)
    sync = replace(_sync_options(args, namespace), branch=request.branch)
    if args.token_auth and request.url.transport == "ssh":
        raise UserError(f"--token-auth needs an https URL, not {args.url!r}: pass the repository's https clone URL")
    known_hosts = _read_text(args.ssh_known_hosts, "--ssh-known-hosts") if args.ssh_known_hosts else None
    return BootstrapOptions(
        url=request.url,
        install=install,
        sync=sync,
        manifests=args.manifests,
        git_auth=request.git_auth,
        api_token=request.token,
        cluster_secret=cluster_source_secret(sync, request.git_auth, request.token, known_hosts=known_hosts),
        identity=WorkloadIdentity(args.azure_client_id, args.azure_tenant_id),
        cluster=_cluster_access(args, call_timeout, reporter),
        kustomize=args.kustomize,
        create_repository=args.create_repo,
        create_branch=args.create_branch,
        force=args.force,
        author=Author(args.author_name, args.author_email),
        commit_message_appendix=args.commit_message_appendix,
        timeout=timeout,
        call_timeout=call_timeout,
        ssh_key=request.ssh_key,
    )


def _read_text(path: Path, flag: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise UserError(f"{flag} {path} cannot be read ({reason}): pass a readable known_hosts file") from None


def _cmd_sandbox_up(args: argparse.Namespace) -> int:
    from flux_azdo.console import TerminalReporter
    from flux_azdo.sandbox.daemon import ENV_FILE, UpOptions, up
    from flux_azdo.sandbox.runtime import SandboxError

    reporter = TerminalReporter()
    reporter.action(f"starting the sandbox in {args.dir}")
    options = UpOptions(
        directory=args.dir,
        kubeconfig=args.kubeconfig,
        ssh=args.ssh,
        tls=not args.http,
        flux=args.flux,
        simulate_deployments=args.simulate_deployments,
        azure=args.azure,
    )
    try:
        started = up(options)
    except SandboxError as exc:
        raise UserError(str(exc)) from None
    env = started.env
    reporter.success(
        f"Azure DevOps: {env['AZDO_ORG_URL']} (project {env['AZDO_PROJECT']}, repository {env['AZDO_REPO']})"
    )
    if env.get("AZDO_SSH_URL"):
        reporter.success(f"SSH: {env['AZDO_SSH_URL']}")
    elif args.ssh is False:
        reporter.warning("SSH: not started (--no-ssh)")
    else:
        reporter.warning("SSH: not started (OpenSSH's sshd is not installed)")
    if env.get("KUBECONFIG"):
        cluster = f"the cluster of {args.kubeconfig}" if args.kubeconfig else "Kubernetes API"
        reporter.success(f"{cluster}: kubeconfig {env['KUBECONFIG']}")
    if args.flux:
        reporter.success("Flux controller simulator running")
    if env.get("AZURE_ARM_URL"):
        reporter.success(
            f"Azure: Entra ID {env['AZURE_AUTHORITY_HOST']}, Resource Manager {env['AZURE_ARM_URL']} (AKS cluster "
            f"{env['AKS_CLUSTER']} in {env['AKS_RESOURCE_GROUP']}); Azure clients trust its CA with "
            "REQUESTS_CA_BUNDLE=$AZURE_CA_FILE"
        )
    reporter.success(f"sandbox running (pid {started.pid}); stop it with: flux-azdo sandbox down --dir {args.dir}")
    for name, value in env.items():
        print(f"{name}={value}")
    print(f"\n# use it from a shell:  . {args.dir / ENV_FILE}")
    return 0


def _cmd_sandbox_down(args: argparse.Namespace) -> int:
    from flux_azdo.console import TerminalReporter
    from flux_azdo.sandbox.daemon import down
    from flux_azdo.sandbox.runtime import SandboxError

    reporter = TerminalReporter()
    try:
        stopped = down(args.dir)
    except SandboxError as exc:
        raise UserError(str(exc)) from None
    if stopped:
        reporter.success(f"sandbox in {args.dir} stopped")
    else:
        reporter.warning(f"no sandbox was running in {args.dir}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="replace")
    previous = _exit_cleanly_on_termination()
    try:
        args = build_parser().parse_args(argv)
        with _command_scope():
            return int(args.handler(args))
    except UserError as exc:
        print(f"✗ {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("✗ interrupted", file=sys.stderr)
        return 130
    except _Terminated as exc:
        print(f"✗ stopped by {exc.signal_name}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        # `flux-azdo install --export | head`: the reader left; that is not an error.
        sys.stderr.close()
        return 0
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


class _Terminated(BaseException):
    """SIGTERM/SIGHUP as an exception: `finally` blocks run, so temporary key files and clones are removed."""

    def __init__(self, number: int) -> None:
        super().__init__(number)
        self.signal_name = signal.Signals(number).name
        self.exit_code = 128 + number


def _exit_cleanly_on_termination() -> dict[int, Any]:
    """A pipeline cancel or a closed terminal sends SIGTERM/SIGHUP, whose default action skips every `finally`."""

    def terminate(number: int, _frame: object) -> None:
        raise _Terminated(number)

    previous: dict[int, Any] = {}
    for number in (signal.SIGTERM, signal.SIGHUP):
        try:
            previous[number] = signal.signal(number, terminate)
        except ValueError:  # not the main thread (the CLI called as a library): leave signals alone
            break
    return previous


if __name__ == "__main__":
    sys.exit(main())
