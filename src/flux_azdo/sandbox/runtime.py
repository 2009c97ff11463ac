"""The whole sandbox in one object: a local Azure DevOps, its SSH endpoint, a Kubernetes API server and Flux.

Tests and `flux-azdo sandbox up` both start it through `Sandbox`, so the two always see the same world: one
organisation with one project and one empty repository, a user with a full-rights PAT and an RSA key, the
project's build service with a job token at its default rights, and a managed identity federated for workload
identity. Every part binds 127.0.0.1 on a random port and is stopped in reverse order, even when start-up fails
half-way.
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

from flux_azdo.sandbox.keys import write_rsa_key

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
        return values

    def write_env_file(self, path: Path) -> None:
        """A shell-sourceable file (`. sandbox.env`), mode 0600 because it holds the tokens."""
        write_env_file(path, self.env())


#: Everything `start()` creates inside the sandbox directory.
WRITES = ("repos", "ssh", "flux", "id_rsa", "id_rsa.pub", "known_hosts", "kubeconfig")


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
    lines += [f"export {name}={shlex.quote(value)}" for name, value in values.items()]
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as stream:
        stream.write("\n".join(lines) + "\n")
    os.replace(temporary, path)
