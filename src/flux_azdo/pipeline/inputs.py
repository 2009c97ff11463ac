"""The task's inputs, read from `INPUT_*` the way the agent hands them over and azure-pipelines-task-lib reads them.

The agent sets `INPUT_<NAME>` for every input task.json declares (its default, then the step's value), with the
canonical name upper-cased (never a YAML alias), the value trimmed and `$(macros)` expanded; an empty `filePath`
input arrives as the sources folder. Nothing here trusts that: values are trimmed again, booleans accept only
`true`/`false` (any case), pick lists are checked against their options, and a required input that is empty
stops the run naming the input's label and its YAML key, before anything connects. `SPECS` repeats task.json's
names, labels, defaults and options, so a run without some variable (an older agent, a hand-made environment)
behaves as the agent would have; a test keeps the two in step.

Pure: everything here takes a Mapping, and nothing is printed.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from flux_azdo.errors import UserError
from flux_azdo.manifests.install import LOG_LEVELS

Action = Literal["bootstrap", "plan", "check", "uninstall", "rotateCredentials"]
ConnectionType = Literal["kubernetesServiceConnection", "azureResourceManager", "kubeconfigFile"]
GitAuthKind = Literal["jobToken", "pat"]
ClusterAuthKind = Literal["pat", "sshKey", "workloadIdentity"]

ACTIONS: tuple[Action, ...] = ("bootstrap", "plan", "check", "uninstall", "rotateCredentials")
CONNECTION_TYPES: tuple[ConnectionType, ...] = ("kubernetesServiceConnection", "azureResourceManager", "kubeconfigFile")
GIT_AUTH_KINDS: tuple[GitAuthKind, ...] = ("jobToken", "pat")
CLUSTER_AUTH_KINDS: tuple[ClusterAuthKind, ...] = ("pat", "sshKey", "workloadIdentity")
DEFAULT_COMPONENTS = "source-controller,kustomize-controller,helm-controller,notification-controller"


@dataclass(frozen=True)
class InputSpec:
    """One input as task.json declares it (what this module needs of the declaration)."""

    name: str
    label: str
    kind: str  # task.json type without its qualifier: string, boolean, pickList, filePath, secureFile, ...
    default: str = ""
    options: tuple[str, ...] = ()  # for a pickList that is not editable: the only values allowed
    secret: bool = False  # the value is a secret: registered with the masker before any output


def _spec(
    name: str,
    label: str,
    kind: str = "string",
    default: str = "",
    *,
    options: tuple[str, ...] = (),
    secret: bool = False,
) -> InputSpec:
    return InputSpec(name, label, kind, default, options, secret)


SPECS: dict[str, InputSpec] = {
    spec.name: spec
    for spec in (
        _spec("action", "Action", "pickList", "bootstrap", options=ACTIONS),
        _spec(
            "connectionType",
            "Cluster connection type",
            "pickList",
            "kubernetesServiceConnection",
            options=CONNECTION_TYPES,
        ),
        _spec("kubernetesServiceConnection", "Kubernetes service connection", "connectedService:kubernetes"),
        _spec("azureSubscription", "Azure subscription", "connectedService:AzureRM"),
        _spec("azureResourceGroup", "Resource group", "pickList"),
        _spec("kubernetesCluster", "Kubernetes cluster", "pickList"),
        _spec("useClusterAdmin", "Use cluster admin credentials", "boolean", "false"),
        _spec("kubeconfig", "Kubeconfig file", "filePath"),
        _spec("kubeContext", "Kubeconfig context"),
        _spec("repositoryUrl", "Repository"),
        _spec("branch", "Branch", default="main"),
        _spec("path", "Path"),
        _spec("createRepository", "Create the repository if it is missing", "boolean", "false"),
        _spec("createBranch", "Create the branch if it is missing", "boolean", "false"),
        _spec("allowInsecureHttp", "Allow plain HTTP", "boolean", "false"),
        _spec("gitAuth", "Push with", "pickList", "jobToken", options=GIT_AUTH_KINDS),
        _spec("gitPat", "Git PAT", secret=True),
        _spec("clusterAuth", "Cluster pulls with", "pickList", "pat", options=CLUSTER_AUTH_KINDS),
        _spec("clusterPat", "Cluster PAT", secret=True),
        _spec("sshKey", "SSH private key", "secureFile"),
        _spec("sshKeyPassphrase", "SSH key passphrase", secret=True),
        _spec("sshRepositoryUrl", "SSH repository URL"),
        _spec("sshKnownHosts", "SSH known hosts", "multiLine"),
        _spec("sshHostKeyAlgorithms", "SSH host key algorithms"),
        _spec("workloadIdentityClientId", "Workload identity client ID"),
        _spec("workloadIdentityTenantId", "Workload identity tenant ID"),
        _spec("fluxVersion", "Flux version"),
        _spec("manifests", "Flux manifests"),
        _spec("components", "Components", default=DEFAULT_COMPONENTS),
        _spec("componentsExtra", "Extra components"),
        _spec("registry", "Container registry", default="ghcr.io/fluxcd"),
        _spec("imagePullSecret", "Image pull secret"),
        _spec("registryCredentials", "Registry credentials", secret=True),
        _spec("networkPolicy", "Network policies", "boolean", "true"),
        _spec("watchAllNamespaces", "Watch all namespaces", "boolean", "true"),
        _spec("logLevel", "Log level", "pickList", "info", options=LOG_LEVELS),
        _spec("tolerationKeys", "Toleration keys"),
        _spec("clusterDomain", "Cluster domain", default="cluster.local"),
        _spec("interval", "Sync interval", default="1m0s"),
        _spec("name", "Source name"),
        _spec("namespace", "Namespace", default="flux-system"),
        _spec("secretName", "Git secret name"),
        _spec("commitMessageAppendix", "Commit message appendix"),
        _spec("authorName", "Commit author name", default="Flux"),
        _spec("authorEmail", "Commit author email"),
        _spec("timeout", "Timeout", default="5m0s"),
        _spec("force", "Force", "boolean", "false"),
        _spec("keepCrds", "Keep CRDs", "boolean", "false"),
        _spec("keepNamespace", "Keep namespace", "boolean", "false"),
        _spec("removeManifests", "Remove manifests from the repository", "boolean", "false"),
        _spec("pythonPath", "Python interpreter"),
    )
}


def variable_name(name: str) -> str:
    """The agent's `VarUtil.ConvertToEnvVariableFormat`: dots and spaces to `_`, upper-cased, with `INPUT_`."""
    return "INPUT_" + name.replace(".", "_").replace(" ", "_").upper()


def raw_input(environ: Mapping[str, str], name: str) -> str:
    """The value as given (trimmed), else the declared default; no checks."""
    value = environ.get(variable_name(name))
    if value is None:
        return SPECS[name].default if name in SPECS else ""
    return value.strip()


def secret_values(environ: Mapping[str, str]) -> list[str]:
    """The secret inputs' values, unchecked: main registers them with the masker before printing anything.

    `registryCredentials` (`user:password`) gives the whole value and the password alone.
    """
    values: list[str] = []
    for spec in SPECS.values():
        if not spec.secret:
            continue
        value = raw_input(environ, spec.name)
        if value:
            values.append(value)
        if spec.name == "registryCredentials" and ":" in value:
            values.append(value.split(":", 1)[1])
    return [value for value in values if value]


def describe(name: str) -> str:
    """`"Repository" (repositoryUrl)`: how messages name an input, as the editor shows it and as YAML spells it."""
    spec = SPECS.get(name)
    return f'"{spec.label}" ({name})' if spec is not None else name


def required_error(name: str, why: str = "") -> UserError:
    reason = f" {why}" if why else ""
    return UserError(
        f"input {describe(name)} is required{reason}",
        fix=f"set {name} in the step's inputs (in the classic editor: {SPECS[name].label if name in SPECS else name})",
    )


@dataclass(frozen=True)
class TaskInputs:
    """Every input, typed. Secrets (`git_pat`, `cluster_pat`, ...) are never part of repr()."""

    action: Action = "bootstrap"
    connection_type: ConnectionType = "kubernetesServiceConnection"
    kubernetes_service_connection: str = ""
    azure_subscription: str = ""
    azure_resource_group: str = ""
    kubernetes_cluster: str = ""
    use_cluster_admin: bool = False
    kubeconfig: Path | None = None  # None: not supplied (an empty filePath arrives as the sources folder)
    kube_context: str = ""
    repository_url: str = ""
    branch: str = "main"
    path: str = ""
    create_repository: bool = False
    create_branch: bool = False
    allow_insecure_http: bool = False
    git_auth: GitAuthKind = "jobToken"
    git_pat: str = field(default="", repr=False)
    cluster_auth: ClusterAuthKind = "pat"
    cluster_pat: str = field(default="", repr=False)
    ssh_key: str = ""  # the secure file's id
    ssh_key_passphrase: str = field(default="", repr=False)
    ssh_repository_url: str = ""
    ssh_known_hosts: str = ""
    ssh_host_key_algorithms: tuple[str, ...] = ()
    workload_identity_client_id: str = ""
    workload_identity_tenant_id: str = ""
    flux_version: str = ""
    manifests: str | None = None  # as the CLI's --manifests: None is the OCI release at flux_version
    components: tuple[str, ...] = tuple(DEFAULT_COMPONENTS.split(","))
    components_extra: tuple[str, ...] = ()
    registry: str = "ghcr.io/fluxcd"
    image_pull_secret: str = ""
    registry_credentials: str = field(default="", repr=False)
    network_policy: bool = True
    watch_all_namespaces: bool = True
    log_level: str = "info"
    toleration_keys: tuple[str, ...] = ()
    cluster_domain: str = "cluster.local"
    interval: str = "1m0s"
    name: str = ""
    namespace: str = "flux-system"
    secret_name: str = ""
    commit_message_appendix: str = ""
    author_name: str = "Flux"
    author_email: str = ""
    timeout_seconds: float = 300.0
    force: bool = False
    keep_crds: bool = False
    keep_namespace: bool = False
    remove_manifests: bool = False

    @property
    def pushes(self) -> bool:
        """Whether this action reads or writes the repository with the push credential."""
        if self.action == "uninstall":
            return self.remove_manifests
        return self.action in ("bootstrap", "plan", "check")

    @property
    def stores_cluster_credential(self) -> bool:
        """Whether this action builds the credential the cluster stores."""
        return self.action in ("bootstrap", "plan", "rotateCredentials")


class _Reader:
    def __init__(self, environ: Mapping[str, str], sources: Path | None) -> None:
        self.environ = environ
        self.sources = sources

    def text(self, name: str) -> str:
        return raw_input(self.environ, name)

    def boolean(self, name: str) -> bool:
        value = self.text(name) or SPECS[name].default or "false"
        lowered = value.lower()
        if lowered not in ("true", "false"):
            raise UserError(
                f"input {describe(name)} is {value!r}, not a boolean",
                fix=f"set {name} to true or false",
            )
        return lowered == "true"

    def choice(self, name: str) -> str:
        spec = SPECS[name]
        value = self.text(name) or spec.default
        for option in spec.options:
            if value.lower() == option.lower():
                return option
        raise UserError(
            f"input {describe(name)} is {value!r}, which is not one of its values",
            fix=f"set {name} to one of: {', '.join(spec.options)}",
        )

    def items(self, name: str) -> tuple[str, ...]:
        """A comma- or line-separated list, as the CLI's repeated/comma flags."""
        text = self.text(name).replace("\n", ",")
        return tuple(item.strip() for item in text.split(",") if item.strip())

    def file_path(self, name: str) -> Path | None:
        """task-lib's `filePathSupplied`: an empty input arrives as the sources folder, which means "not given"."""
        value = self.text(name)
        if not value:
            return None
        given = os.path.normpath(os.path.abspath(value))
        if self.sources is not None and given == os.path.normpath(os.path.abspath(self.sources)):
            return None
        return Path(value)

    def manifests(self, name: str) -> str | None:
        """The CLI's `--manifests` value: an `oci://` reference as given; a path relative to the sources folder (a
        string input, not a filePath, so that it may be a URL: the agent roots nothing), as a filePath would be."""
        value = self.text(name)
        if not value:
            return None
        if value.lower().startswith("oci://") or self.sources is None or os.path.isabs(value):
            return value
        return str(self.sources / value)


def read_inputs(environ: Mapping[str, str], *, sources: Path | None = None) -> TaskInputs:
    """The inputs, checked; `sources` is the job's sources folder (an empty filePath arrives as it)."""
    from flux_azdo.azdo.access import parse_timeout

    read = _Reader(environ, sources)
    action: Action = read.choice("action")  # type: ignore[assignment]
    connection: ConnectionType = read.choice("connectionType")  # type: ignore[assignment]
    git_auth: GitAuthKind = read.choice("gitAuth")  # type: ignore[assignment]
    cluster_auth: ClusterAuthKind = read.choice("clusterAuth")  # type: ignore[assignment]
    timeout = read.text("timeout") or SPECS["timeout"].default
    inputs = TaskInputs(
        action=action,
        connection_type=connection,
        kubernetes_service_connection=read.text("kubernetesServiceConnection"),
        azure_subscription=read.text("azureSubscription"),
        azure_resource_group=read.text("azureResourceGroup"),
        kubernetes_cluster=read.text("kubernetesCluster"),
        use_cluster_admin=read.boolean("useClusterAdmin"),
        kubeconfig=read.file_path("kubeconfig"),
        kube_context=read.text("kubeContext"),
        repository_url=read.text("repositoryUrl"),
        branch=read.text("branch") or SPECS["branch"].default,
        path=read.text("path"),
        create_repository=read.boolean("createRepository"),
        create_branch=read.boolean("createBranch"),
        allow_insecure_http=read.boolean("allowInsecureHttp"),
        git_auth=git_auth,
        git_pat=read.text("gitPat"),
        cluster_auth=cluster_auth,
        cluster_pat=read.text("clusterPat"),
        ssh_key=read.text("sshKey"),
        ssh_key_passphrase=read.text("sshKeyPassphrase"),
        ssh_repository_url=read.text("sshRepositoryUrl"),
        ssh_known_hosts=read.text("sshKnownHosts"),
        ssh_host_key_algorithms=read.items("sshHostKeyAlgorithms"),
        workload_identity_client_id=read.text("workloadIdentityClientId"),
        workload_identity_tenant_id=read.text("workloadIdentityTenantId"),
        flux_version=read.text("fluxVersion"),
        manifests=read.manifests("manifests"),
        components=read.items("components") or tuple(DEFAULT_COMPONENTS.split(",")),
        components_extra=read.items("componentsExtra"),
        registry=read.text("registry") or SPECS["registry"].default,
        image_pull_secret=read.text("imagePullSecret"),
        registry_credentials=read.text("registryCredentials"),
        network_policy=read.boolean("networkPolicy"),
        watch_all_namespaces=read.boolean("watchAllNamespaces"),
        log_level=read.choice("logLevel"),
        toleration_keys=read.items("tolerationKeys"),
        cluster_domain=read.text("clusterDomain") or SPECS["clusterDomain"].default,
        interval=read.text("interval") or SPECS["interval"].default,
        name=read.text("name"),
        namespace=read.text("namespace") or SPECS["namespace"].default,
        secret_name=read.text("secretName"),
        commit_message_appendix=read.text("commitMessageAppendix"),
        author_name=read.text("authorName") or SPECS["authorName"].default,
        author_email=read.text("authorEmail"),
        timeout_seconds=parse_timeout(timeout, "timeout"),
        force=read.boolean("force"),
        keep_crds=read.boolean("keepCrds"),
        keep_namespace=read.boolean("keepNamespace"),
        remove_manifests=read.boolean("removeManifests"),
    )
    check_required(inputs)
    return inputs


def check_required(inputs: TaskInputs) -> None:
    """What this action with this connection and these credentials cannot run without."""
    action = inputs.action
    connection_inputs: dict[ConnectionType, tuple[tuple[str, object], ...]] = {
        "kubernetesServiceConnection": (("kubernetesServiceConnection", inputs.kubernetes_service_connection),),
        "azureResourceManager": (
            ("azureSubscription", inputs.azure_subscription),
            ("azureResourceGroup", inputs.azure_resource_group),
            ("kubernetesCluster", inputs.kubernetes_cluster),
        ),
        "kubeconfigFile": (("kubeconfig", inputs.kubeconfig),),
    }
    for name, value in connection_inputs[inputs.connection_type]:
        if not value:
            raise required_error(name, f"with connectionType {inputs.connection_type}")
    if inputs.pushes:
        if not inputs.repository_url:
            why = "with removeManifests" if action == "uninstall" else f"for action {action}"
            raise required_error("repositoryUrl", why)
        if inputs.git_auth == "pat" and not inputs.git_pat:
            raise required_error("gitPat", "with gitAuth pat")
    if inputs.stores_cluster_credential:
        missing = missing_cluster_credential(inputs)
        if missing is not None and not (action == "rotateCredentials" and missing == "workloadIdentityClientId"):
            raise required_error(missing, f"with clusterAuth {inputs.cluster_auth} for action {action}")
    if action == "rotateCredentials" and inputs.cluster_auth == "workloadIdentity":
        raise UserError(
            "action rotateCredentials with clusterAuth workloadIdentity: workload identity stores no credential, "
            "so there is nothing to rotate",
            fix="set clusterAuth to pat or sshKey with the new credential",
        )


def missing_cluster_credential(inputs: TaskInputs) -> str | None:
    """The input `clusterAuth` needs and did not get (`check` reports it as a failed item, the others stop)."""
    needed = {"pat": ("clusterPat", inputs.cluster_pat), "sshKey": ("sshKey", inputs.ssh_key)}
    # The tenant is optional: Flux's azure provider takes the identity's own tenant without it.
    needed["workloadIdentity"] = ("workloadIdentityClientId", inputs.workload_identity_client_id)
    name, value = needed[inputs.cluster_auth]
    return None if value else name


# ----- the CLI's flags in the task's words -------------------------------------------------------------------------

#: The flag each input stands for in the CLI: messages of the shared code name flags, the task names its inputs.
FLAG_INPUTS: dict[str, str] = {
    "--url": "repositoryUrl",
    "--branch": "branch",
    "--path": "path",
    "--create-repo": "createRepository",
    "--create-branch": "createBranch",
    "--allow-insecure-http": "allowInsecureHttp",
    "--password": "gitPat",
    "--password-stdin": "gitPat",
    "--private-key-file": "sshKey",
    "--ssh-known-hosts": "sshKnownHosts",
    "--ssh-hostkey-algos": "sshHostKeyAlgorithms",
    "--provider": "clusterAuth",
    "--azure-client-id": "workloadIdentityClientId",
    "--azure-tenant-id": "workloadIdentityTenantId",
    "--kubeconfig": "kubeconfig",
    "--context": "kubeContext",
    "--aks-subscription": "azureSubscription",
    "--aks-resource-group": "azureResourceGroup",
    "--aks-name": "kubernetesCluster",
    "--aks-admin": "useClusterAdmin",
    "--version": "fluxVersion",
    "--manifests": "manifests",
    "--components": "components",
    "--components-extra": "componentsExtra",
    "--registry": "registry",
    "--image-pull-secret": "imagePullSecret",
    "--registry-creds": "registryCredentials",
    "--network-policy": "networkPolicy",
    "--watch-all-namespaces": "watchAllNamespaces",
    "--log-level": "logLevel",
    "--toleration-keys": "tolerationKeys",
    "--cluster-domain": "clusterDomain",
    "--interval": "interval",
    "--name": "name",
    "--namespace": "namespace",
    "--secret-name": "secretName",
    "--commit-message-appendix": "commitMessageAppendix",
    "--author-name": "authorName",
    "--author-email": "authorEmail",
    "--timeout": "timeout",
    "--force": "force",
    "--keep-crds": "keepCrds",
    "--keep-namespace": "keepNamespace",
    "--remove-manifests": "removeManifests",
}
#: A flag whose value has a name of its own in the task, and the CLI's commands as the task's `action` values.
_PHRASES = (
    ("--provider azure", "clusterAuth workloadIdentity"),
    ("--provider generic", "clusterAuth pat or sshKey"),
    ("flux-azdo rotate-credentials", "action rotateCredentials"),
    ("flux-azdo uninstall", "action uninstall"),
    ("flux-azdo bootstrap", "action bootstrap"),
    ("flux-azdo check", "action check"),
    ("flux-azdo plan", "action plan"),
)
#: A flag of ours as a whole word: `--name` but not the `--name` inside `--namespace`, nor `az ... --org`'s flags.
_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*(?![\w-])")


def in_input_terms(text: str) -> str:
    """`text` with each of the CLI's flags replaced by the input (YAML key) that sets it in the task; a passphrase
    is the `sshKeyPassphrase` input (the CLI reads it from --password)."""

    def name(match: re.Match[str]) -> str:
        flag = match.group(0)
        if flag.startswith("--password") and "passphrase" in text.lower():
            return "sshKeyPassphrase"
        return FLAG_INPUTS.get(flag, flag)

    for phrase, words in _PHRASES:
        text = text.replace(phrase, words)
    return _FLAG.sub(name, text)


def error_in_input_terms(error: UserError) -> UserError:
    """The same error (same class, same details such as BootstrapFailed's `result`) naming inputs, not flags."""
    translated = copy.copy(error)
    translated.args = (in_input_terms(error.message), *error.args[1:])
    translated.fix = in_input_terms(error.fix) if error.fix else error.fix
    return translated
