"""The whole sandbox in one object: a local Azure DevOps, its SSH endpoint, a Kubernetes API server and Flux.

Tests and `flux-azdo sandbox up` both start it through `Sandbox`, so the two always see the same world: one
organisation with one project and one empty repository, a user with a full-rights PAT and an RSA key, the
project's build service with a job token at its default rights, and a managed identity federated for workload
identity. Every part binds 127.0.0.1 on a random port and is stopped in reverse order, even when start-up fails
half-way.

With `SandboxOptions(azure=True)` it also starts the sandbox Azure (`flux_azdo.sandbox.azure`: Entra ID and ARM on
one HTTPS port) and sets up, after `start()`:

* `azure`: the `AzureServer` (`authority_host`, `arm_url`, `ca_file`, `tenant_id`, `subscription_id`,
  `directory`, `resources`); Entra tokens for the AKS server app are accepted by the kube API server (user = the
  principal's object id) and Entra tokens for Azure DevOps by the organisation (for federated principals);
* `resource_group` ("flux-rg") and `aks_cluster` (the `ManagedCluster` "aks-sandbox": Entra-integrated, local
  accounts enabled, API server = the sandbox kube server; with `kubeconfig=` the given cluster's server, without
  any cluster `https://127.0.0.1:1`, which refuses connections: nothing ever leaves 127.0.0.1);
  `add_aks_cluster(name, *, entra=True, local_accounts=True, resource_group="flux-rg")` adds more on the same
  server;
* `deployer`: the `ServicePrincipal` "deployer" (`client_id`, `object_id`, `tenant_id`, `secret`,
  `certificate_path`), with the Cluster User role on `aks-sandbox` and cluster-admin in kube;
  `deployer_identity`: its Azure DevOps identity (organisation reader);
* `arm_connection`: the AzureRM service connection "azure-deployer" of the project (`id`, `name`, `data`,
  `authorization`: scheme WorkloadIdentityFederation, with the Microsoft Entra issuer and its `/eid1/...`
  subject) with a federated credential for it on the deployer; both pipeline issuers (Entra and
  `https://vstoken.dev.azure.com/<org id>`) are trusted, so `world.add_service_connection(..., issuer="vstoken")`
  plus a federated credential naming `world.oidc_issuer_for(c)` / `world.oidc_subject(c)` works too;
* `oidc_request_uri(plan_id, job_id)`: the job's SYSTEM_OIDCREQUESTURI; `add_secure_file(name, data)` ->
  `(id, ticket)` in the project;
* `env()` also holds AZURE_AUTHORITY_HOST, AZURE_TENANT_ID, AZURE_SUBSCRIPTION_ID, AZURE_CLIENT_ID,
  AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH, AZURE_ARM_URL, AZURE_CA_FILE, AKS_RESOURCE_GROUP,
  AKS_CLUSTER and AZURE_SERVICE_CONNECTION_ID. AZURE_CA_FILE is the sandbox CA; it is not exported as
  REQUESTS_CA_BUNDLE because that would replace the system CA bundle for the whole shell: give it to one command
  (`REQUESTS_CA_BUNDLE=$AZURE_CA_FILE flux-azdo check --aks-...`) or to azure-identity as `connection_verify`.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import quote

from flux_azdo.sandbox.keys import write_rsa_key

if TYPE_CHECKING:
    from flux_azdo.sandbox.azure import AzureServer, ManagedCluster

#: Scopes of the sandbox user's PAT: everything a bootstrap can need, nothing more.
FULL_SCOPES = ("vso.code_manage", "vso.code_write", "vso.code", "vso.project", "vso.profile")


class SandboxError(Exception):
    """The sandbox cannot start (a port, a missing program): the message says what to do."""


@dataclass(frozen=True)
class SandboxOptions:
    """What to start; the defaults are what `flux-azdo sandbox up` and most tests want."""

    org: str = "sandbox-org"
    project: str = "platform"
    repository: str = "fleet-infra"
    #: Start OpenSSH's sshd ("auto": when it is installed; True: fail without it; False: never).
    ssh: bool | str = "auto"
    #: Start the fake Kubernetes API server; ignored when `kubeconfig` names an existing cluster.
    kube: bool = True
    kube_tls: bool = True
    #: Use this cluster's API server instead of the fake one (the rest of the sandbox is unchanged).
    kubeconfig: Path | None = None
    flux: bool = True
    #: Let the simulator play the deployment controller and kubelet for Flux Deployments. None: yes on the fake
    #: API server, no with `kubeconfig` (a real cluster runs its own; say True for a bare API server).
    simulate_deployments: bool | None = None
    deployment_ready_after: float = 0.2
    unpullable_images: tuple[str, ...] = ()
    #: Reuse keys across sandboxes (tests generate them once per session): paths to RSA private keys.
    ssh_host_key: Path | None = None
    user_ssh_key: Path | None = None
    #: Start the sandbox Azure (Entra ID + ARM with an AKS cluster on the kube server) and its pipeline wiring.
    azure: bool = False


class Sandbox:
    """A running sandbox; use it as a context manager.

    The attributes below are ready after `start()`. `env()` gives the variables that `sandbox.env` holds.
    """

    def __init__(self, directory: Path, options: SandboxOptions | None = None) -> None:
        self.directory = Path(directory)
        self.options = options or SandboxOptions()
        self._stack = contextlib.ExitStack()
        self._started = False

    # -- lifecycle -------------------------------------------------------------------------------------------------

    def start(self) -> Sandbox:
        if self._started:
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        # What start() writes is removed by stop(), newest first, so a stopped sandbox leaves no stale kubeconfig.
        for name in WRITES:
            self._stack.callback(_remove, self.directory / name)
        try:
            self._start_azure_devops()
            self._start_ssh()
            self._start_kubernetes()
            self._start_azure()
            self._start_flux()
        except BaseException:
            self._stack.close()
            raise
        self._started = True
        return self

    def stop(self) -> None:
        self._started = False
        self._stack.close()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- parts -----------------------------------------------------------------------------------------------------

    def _start_azure_devops(self) -> None:
        from flux_azdo.sandbox.azure_devops import AzureDevOpsServer
        from flux_azdo.sandbox.world import World

        opts = self.options
        self.world = World(opts.org, self.directory / "repos")
        self.project = self.world.add_project(opts.project)
        self.repository = self.world.create_repository(self.project, opts.repository)
        self.user = self.world.add_user("Sandbox Admin", project_rights="admin")
        self.pat = self.world.issue_pat(self.user, FULL_SCOPES)
        self.build_service = self.world.build_service(self.project)
        self.job_token = self.world.issue_job_token(self.build_service)
        self.workload_client_id = str(uuid.uuid4())
        self.workload_identity = self.world.add_managed_identity("flux-source-controller", project_rights="reader")
        self.world.federate(self.workload_identity, self.workload_client_id)
        self.azdo = AzureDevOpsServer(self.world)
        self.azdo.start()
        self._stack.callback(self.azdo.stop)

    def _start_ssh(self) -> None:
        from flux_azdo.sandbox.ssh import SshServer, sshd_available

        self.ssh = None
        self.ssh_key_path: Path | None = None
        wanted = self.options.ssh
        if wanted is False:
            return
        reason = sshd_available()
        if reason is not None:
            if wanted is True:
                raise SandboxError(f"cannot start the SSH endpoint: {reason}")
            return
        self.ssh_key_path = self._user_key()
        public = Path(f"{self.ssh_key_path}.pub").read_text(encoding="utf-8").strip()
        self.world.add_ssh_key(self.user, public)
        self.ssh = SshServer(self.world, self.azdo, self.directory / "ssh", host_key=self.options.ssh_host_key)
        self.ssh.start()
        self._stack.callback(self.ssh.stop)
        self.azdo.ssh_host, self.azdo.ssh_port, self.azdo.ssh_user = self.ssh.host, self.ssh.port, self.ssh.user
        self.known_hosts_path = self.directory / "known_hosts"
        self.known_hosts_path.write_text(self.ssh.known_hosts_line + "\n", encoding="utf-8")

    def _user_key(self) -> Path:
        target = self.directory / "id_rsa"
        write_rsa_key(target, copy_from=self.options.user_ssh_key)
        return target

    def _start_kubernetes(self) -> None:
        self.kube = None
        self.external_cluster: Path | None = None
        self.kubeconfig_path = self.directory / "kubeconfig"
        if self.options.kubeconfig is not None:
            given = Path(self.options.kubeconfig)
            check_cluster(given)
            if given.resolve() != self.kubeconfig_path.resolve():
                # A private copy: the user's file is never touched, and DIR/kubeconfig is always the one to use.
                self.kubeconfig_path.write_bytes(given.read_bytes())
                os.chmod(self.kubeconfig_path, 0o600)
            self.external_cluster = given
            return
        if not self.options.kube:
            return
        from flux_azdo.sandbox.kube import KubeApiServer

        self.kube = KubeApiServer(tls=self.options.kube_tls)
        self.kube.start()
        self._stack.callback(self.kube.stop)
        self.kube.write_kubeconfig(self.kubeconfig_path)
        os.chmod(self.kubeconfig_path, 0o600)

    def _start_azure(self) -> None:
        self.azure: AzureServer | None = None
        if not self.options.azure:
            return
        from flux_azdo.sandbox.azure import CLUSTER_USER_ROLE, AzureServer

        folder = self.directory / "azure"
        self.azure = AzureServer(folder, tenant_id=self.world.tenant_id)
        # The socket is bound: its stop goes on the stack before anything else can fail.
        self._stack.callback(self.azure.stop)
        self.azure.start()
        self.azure.directory.clock = lambda: self.world.clock()
        self.world.set_entra_verifier(self.azure.azure_devops_claims)
        self._stack.callback(self.world.set_entra_verifier, None)
        if self.kube is not None:
            self.kube.set_token_authenticator(self.azure.kube_authenticator)
        self.resource_group = "flux-rg"
        self.azure.resources.add_resource_group(self.resource_group)
        self.aks_cluster = self.add_aks_cluster("aks-sandbox")
        self.deployer = self.azure.directory.register_application("deployer", certificate_folder=folder)
        self.azure.resources.assign_role(self.deployer.object_id, CLUSTER_USER_ROLE, self.aks_cluster.id)
        if self.kube is not None:
            self.kube.bind(self.deployer.object_id, cluster_admin=True)
        self.deployer_identity = self.world.add_managed_identity("deployer", project_rights="reader")
        self.world.federate(self.deployer_identity, self.deployer.client_id)
        self.arm_connection = self.world.add_service_connection(
            self.project,
            "azure-deployer",
            "AzureRM",
            data={
                "subscriptionId": self.azure.subscription_id,
                "subscriptionName": "Sandbox Subscription",
                "environment": "AzureCloud",
                "scopeLevel": "Subscription",
                "creationMode": "Manual",
                "environmentAuthorityUrl": self.azure.authority_host + "/",
                "resourceManagerUrl": self.azure.arm_url,
                "activeDirectoryServiceEndpointResourceId": "https://management.core.windows.net/",
            },
            authorization={
                "scheme": "WorkloadIdentityFederation",
                "parameters": {
                    "serviceprincipalid": self.deployer.client_id,
                    "tenantid": self.azure.tenant_id,
                    "workloadIdentityFederationIssuer": "",
                    "workloadIdentityFederationSubject": "",
                },
            },
        )
        issuer = self.world.oidc_issuer_for(self.arm_connection)
        subject = self.world.oidc_subject(self.arm_connection)
        parameters = self.arm_connection.authorization["parameters"]
        assert isinstance(parameters, dict)
        parameters["workloadIdentityFederationIssuer"] = issuer
        parameters["workloadIdentityFederationSubject"] = subject
        self.azure.directory.add_federated_credential(
            self.deployer, issuer=issuer, subject=subject, name="azure-devops-azure-deployer"
        )
        for trusted in (self.world.entra_oidc_issuer, self.world.oidc_issuer):
            self.azure.directory.trust_issuer(trusted, self.world.oidc_public_key)

    def add_aks_cluster(
        self, name: str, *, entra: bool = True, local_accounts: bool = True, resource_group: str = "flux-rg"
    ) -> ManagedCluster:
        """Another AKS cluster in the sandbox Azure whose API server is the sandbox kube server, else the server
        of `options.kubeconfig`, else `https://127.0.0.1:1` (refuses connections: never a real Azure host)."""
        if self.azure is None:
            raise SandboxError("add_aks_cluster needs a sandbox started with SandboxOptions(azure=True)")
        if self.kube is not None:
            server_url, ca_pem, token = self.kube.url, self.kube.ca_data, self.kube.admin_token
        elif self.external_cluster is not None:
            server_url, ca_pem, token = _kubeconfig_server(self.kubeconfig_path)
        else:
            server_url, ca_pem, token = UNREACHABLE_SERVER, None, "unavailable"
        return self.azure.resources.add_cluster(
            resource_group,
            name,
            server_url=server_url,
            ca_pem=ca_pem,
            static_token=token,
            entra=entra,
            local_accounts=local_accounts,
        )

    def oidc_request_uri(self, plan_id: str, job_id: str, hub: str = "build") -> str:
        """SYSTEM_OIDCREQUESTURI of a job of this project (AzurePipelinesCredential adds the query)."""
        return (
            f"{self.org_url}/{self.project.id}/_apis/distributedtask/hubs/{quote(hub, safe='')}/plans/"
            f"{quote(plan_id, safe='')}/jobs/{quote(job_id, safe='')}/oidctoken"
        )

    def add_secure_file(self, name: str, data: bytes) -> tuple[str, str]:
        """A secure file in the project: `(id, ticket)` (the ticket the agent hands the job)."""
        return self.world.add_secure_file(self.project, name, data)

    def _start_flux(self) -> None:
        self.flux = None
        if not self.options.flux or (self.kube is None and self.options.kubeconfig is None):
            return
        from flux_azdo.sandbox.flux import FluxSimulator, SimulatorOptions

        simulate = self.options.simulate_deployments
        if simulate is None:
            simulate = self.external_cluster is None
        options = SimulatorOptions(
            deployment_ready_after=self.options.deployment_ready_after,
            unpullable_images=self.options.unpullable_images,
            workload_token=self.world.workload_token,
            simulate_deployments=simulate,
            # A real cluster's own deployment controller decides availability; the sample images never run there.
            controllers_wait_for_deployments=simulate,
        )
        self.flux = FluxSimulator(self.kubeconfig_path, options, self.directory / "flux")
        self.flux.start()
        self._stack.callback(self.flux.stop)

    # -- what users see ----------------------------------------------------------------------------------------------

    @property
    def org_url(self) -> str:
        return self.azdo.org_url

    @property
    def repo_url(self) -> str:
        return self.azdo.repo_url(self.repository)

    @property
    def ssh_url(self) -> str | None:
        if self.ssh is None:
            return None
        return self.ssh.url(self.world.org, self.project.name, self.repository.name)

    def env(self) -> dict[str, str]:
        """The variables of `sandbox.env`: enough to point flux-azdo, git and kubectl at this sandbox."""
        values = {
            "AZDO_ORG_URL": self.org_url,
            "AZDO_ORG": self.world.org,
            "AZDO_PROJECT": self.project.name,
            "AZDO_REPO": self.repository.name,
            "AZDO_REPO_URL": self.repo_url,
            "AZDO_SSH_URL": self.ssh_url or "",
            "AZDO_PAT": self.pat,
            "AZDO_JOB_TOKEN": self.job_token,
            "AZDO_SSH_KEY": str(self.ssh_key_path) if self.ssh_key_path else "",
            "AZDO_KNOWN_HOSTS": str(self.known_hosts_path) if self.ssh is not None else "",
            "AZDO_WORKLOAD_CLIENT_ID": self.workload_client_id,
        }
        if self.kube is not None or self.options.kubeconfig is not None:
            values["KUBECONFIG"] = str(self.kubeconfig_path)
        if self.azure is not None:
            values |= {
                "AZURE_AUTHORITY_HOST": self.azure.authority_host,
                "AZURE_TENANT_ID": self.azure.tenant_id,
                "AZURE_SUBSCRIPTION_ID": self.azure.subscription_id,
                "AZURE_CLIENT_ID": self.deployer.client_id,
                "AZURE_CLIENT_SECRET": self.deployer.secret or "",
                "AZURE_CLIENT_CERTIFICATE_PATH": str(self.deployer.certificate_path or ""),
                "AZURE_ARM_URL": self.azure.arm_url,
                "AZURE_CA_FILE": str(self.azure.ca_file),
                "AKS_RESOURCE_GROUP": self.resource_group,
                "AKS_CLUSTER": self.aks_cluster.name,
                "AZURE_SERVICE_CONNECTION_ID": self.arm_connection.id,
            }
        return values

    def write_env_file(self, path: Path) -> None:
        """A shell-sourceable file (`. sandbox.env`), mode 0600 because it holds the tokens."""
        write_env_file(path, self.env())


#: The AKS API server of a sandbox without any cluster: port 1 of 127.0.0.1 refuses connections.
UNREACHABLE_SERVER = "https://127.0.0.1:1"


def _kubeconfig_server(kubeconfig: Path) -> tuple[str, bytes | None, str]:
    """(server URL, CA PEM or None, bearer token or "unavailable") of a kubeconfig's current context."""
    import base64

    import yaml

    config = yaml.safe_load(kubeconfig.read_text(encoding="utf-8")) or {}
    contexts = {c.get("name"): c.get("context") or {} for c in config.get("contexts") or []}
    context = contexts.get(config.get("current-context")) or next(iter(contexts.values()), {})
    clusters = {c.get("name"): c.get("cluster") or {} for c in config.get("clusters") or []}
    users = {u.get("name"): u.get("user") or {} for u in config.get("users") or []}
    cluster = clusters.get(context.get("cluster")) or {}
    user = users.get(context.get("user")) or {}
    server = str(cluster.get("server") or UNREACHABLE_SERVER)
    ca_data = cluster.get("certificate-authority-data")
    ca_pem = base64.b64decode(ca_data) if isinstance(ca_data, str) else None
    return server, ca_pem, str(user.get("token") or "unavailable")


#: Everything `start()` creates inside the sandbox directory.
WRITES = ("repos", "ssh", "flux", "id_rsa", "id_rsa.pub", "known_hosts", "kubeconfig", "azure")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def check_cluster(kubeconfig: Path) -> None:
    """Fail early, in one line, when an existing cluster's kubeconfig is missing, unreadable or its server is down."""
    if not kubeconfig.is_file():
        raise SandboxError(f"kubeconfig {kubeconfig} does not exist: pass the path of an existing cluster's file")
    from kubernetes import client, config

    try:
        api_client = config.new_client_from_config(config_file=str(kubeconfig))
    except Exception as exc:  # ConfigException, YAML errors, OSError: the loader has no common base
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise SandboxError(f"kubeconfig {kubeconfig} cannot be used: {detail}") from None
    try:
        with api_client:
            client.VersionApi(api_client).get_code(_request_timeout=5)
    except Exception as exc:
        reason = getattr(exc, "reason", None) or type(exc).__name__
        raise SandboxError(
            f"the API server in {kubeconfig} ({api_client.configuration.host}) does not answer: {reason}"
        ) from None


def write_env_file(path: Path, values: Mapping[str, str]) -> None:
    lines = ["# flux-azdo sandbox: source this file (. ./sandbox.env) to point git, kubectl and flux-azdo at it."]
    if "AZURE_CA_FILE" in values:
        lines += [
            "# Azure clients must trust AZURE_CA_FILE, per command (REQUESTS_CA_BUNDLE would replace the system CAs):",
            "#   REQUESTS_CA_BUNDLE=$AZURE_CA_FILE flux-azdo check --aks-subscription ... --arm-url $AZURE_ARM_URL",
        ]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in values.items()]
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as stream:
        stream.write("\n".join(lines) + "\n")
    os.replace(temporary, path)
