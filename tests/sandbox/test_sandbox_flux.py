"""The Flux simulator against the sandbox's own servers, seen only through real clients.

Every test installs the sample distribution with `kubectl apply --server-side` into a fresh fake API server,
starts a `FluxSimulator` on its kubeconfig, and checks what the `kubernetes` client and `kubectl` see: the Flux
Deployments becoming Available (or stuck in ImagePullBackOff), GitRepositories Ready only when the credentials
the cluster holds really open the sandbox's Azure DevOps repository (PAT, job token, SSH with and without the
`--ssh-hostkey-algos` patch, workload identity), Kustomizations checking their path at the fetched revision,
suspend, and finalizers on deletion. The simulator must also survive what any API server does: CRDs that appear
after it started, a restart of the server, a server that is gone before the simulator stops; and it must keep
credentials out of messages, Events and logs, and in private files only while `git` runs.
"""

from __future__ import annotations

import base64
import logging
import os
import shlex
import stat
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as kube_client
from kubernetes import config as kube_config

from flux_azdo.sandbox import sample_distribution_path
from flux_azdo.sandbox.azure_devops import AzureDevOpsServer
from flux_azdo.sandbox.flux import FluxSimulator, SimulatorOptions
from flux_azdo.sandbox.flux.cluster import Cluster as FluxCluster
from flux_azdo.sandbox.flux.gitauth import GitAuth
from flux_azdo.sandbox.flux.gitfetch import GitFetcher
from flux_azdo.sandbox.flux.informer import Informer, WatchExpired
from flux_azdo.sandbox.kube import KubeApiServer
from flux_azdo.sandbox.ssh import SshServer, sshd_available
from flux_azdo.sandbox.world import Identity, Project, Repository, World

NS = "flux-system"
SOURCE = ("source.toolkit.fluxcd.io", "v1", "gitrepositories")
KUSTOMIZE = ("kustomize.toolkit.fluxcd.io", "v1", "kustomizations")
RSA_SHA2 = "rsa-sha2-512,rsa-sha2-256"
#: The kubernetes client picks json-patch for dict bodies unless told; real callers name the patch type.
MERGE = "application/merge-patch+json"
SSHD = sshd_available()
needs_sshd = pytest.mark.skipif(SSHD is not None, reason=f"OpenSSH's sshd is not usable: {SSHD}")


# -- the Azure DevOps side: one organisation, one repository with a commit, shared by the module ----------------


@dataclass
class Remote:
    world: World
    server: AzureDevOpsServer
    project: Project
    repository: Repository
    user: Identity
    pat: str
    url: str
    checkout: Path

    def git(self, *args: str) -> str:
        basic = base64.b64encode(f"git:{self.pat}".encode()).decode()
        env = {
            **os.environ,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
        }
        command = ["git", "-C", str(self.checkout), "-c", "user.name=Test", "-c", "user.email=test@example.com"]
        return subprocess.run([*command, *args], env=env, check=True, capture_output=True, text=True).stdout

    def commit_and_push(self, path: str, content: str, message: str) -> str:
        target = self.checkout / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        self.git("push", "-q", self.url, "HEAD:refs/heads/main")
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD").strip()


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    root = tmp_path_factory.mktemp("azdo")
    world = World("sandbox-org", root / "repos")
    project = world.add_project("platform")
    repository = world.create_repository(project, "fleet-infra")
    user = world.add_user("Fleet Admin", project_rights="admin")
    pat = world.issue_pat(user, ("vso.code_write", "vso.code"))
    with AzureDevOpsServer(world) as server:
        checkout = root / "checkout"
        subprocess.run(["git", "init", "-q", "-b", "main", str(checkout)], check=True)
        remote = Remote(world, server, project, repository, user, pat, server.repo_url(repository), checkout)
        remote.commit_and_push(
            "clusters/sandbox/flux-system/kustomization.yaml",
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: []\n",
            "Add the sandbox cluster",
        )
        yield remote


@dataclass
class SshEndpoint:
    server: SshServer
    url: str
    identity: bytes
    known_hosts: str


@pytest.fixture(scope="module")
def ssh(
    remote: Remote, user_ssh_key: Path, ssh_host_key: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SshEndpoint]:
    if SSHD is not None:
        pytest.skip(f"OpenSSH's sshd is not usable: {SSHD}")
    remote.world.add_ssh_key(remote.user, Path(f"{user_ssh_key}.pub").read_text(encoding="utf-8").strip())
    server = SshServer(remote.world, remote.server, tmp_path_factory.mktemp("sshd"), host_key=ssh_host_key)
    with server:
        url = server.url(remote.world.org, remote.project.name, remote.repository.name)
        yield SshEndpoint(server, url, user_ssh_key.read_bytes(), server.known_hosts_line)


# -- the cluster side: a fresh API server with the sample distribution, and a simulator on it ---------------------


@dataclass
class Cluster:
    server: KubeApiServer
    kubeconfig: Path
    api: kube_client.ApiClient
    #: kubectl's HOME, so its discovery cache stays out of the developer's ~/.kube.
    home: Path

    @property
    def core(self) -> kube_client.CoreV1Api:
        return kube_client.CoreV1Api(self.api)

    @property
    def apps(self) -> kube_client.AppsV1Api:
        return kube_client.AppsV1Api(self.api)

    @property
    def custom(self) -> kube_client.CustomObjectsApi:
        return kube_client.CustomObjectsApi(self.api)

    def install_flux(self) -> None:
        """The sample distribution, applied and waited for as a bootstrap does (CRDs take a moment to serve)."""
        with sample_distribution_path() as sample:
            self.kubectl("apply", "--server-side", "-f", str(sample))
        wait_for("the CRDs the tests use to be Established", self.crds_established)

    def crds_established(self) -> bool:
        extensions = kube_client.ApiextensionsV1Api(self.api)
        for group, _, plural in (SOURCE, KUSTOMIZE):
            crd = extensions.read_custom_resource_definition(f"{plural}.{group}")
            conditions = (crd.status.conditions if crd.status else None) or []
            if not any(c.type == "Established" and c.status == "True" for c in conditions):
                return False
        return True

    def kubectl(self, *args: str) -> str:
        env = {"PATH": os.environ["PATH"], "HOME": str(self.home)}
        command = ["kubectl", "--kubeconfig", str(self.kubeconfig), *args]
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def get(self, kind: tuple[str, str, str], name: str) -> dict[str, Any]:
        group, version, plural = kind
        obj: dict[str, Any] = self.custom.get_namespaced_custom_object(group, version, NS, plural, name)
        return obj

    def exists(self, kind: tuple[str, str, str], name: str) -> bool:
        try:
            self.get(kind, name)
        except kube_client.ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

    def create(self, kind: tuple[str, str, str], name: str, spec: dict[str, Any]) -> None:
        group, version, plural = kind
        body = {
            "apiVersion": f"{group}/{version}",
            "kind": "GitRepository" if plural == "gitrepositories" else "Kustomization",
            "metadata": {"name": name, "namespace": NS},
            "spec": spec,
        }
        self.custom.create_namespaced_custom_object(group, version, NS, plural, body)

    def patch(self, kind: tuple[str, str, str], name: str, patch: dict[str, Any]) -> None:
        group, version, plural = kind
        self.custom.patch_namespaced_custom_object(group, version, NS, plural, name, patch, _content_type=MERGE)

    def secret(self, name: str, string_data: dict[str, str]) -> None:
        body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NS}}
        body["stringData"] = string_data
        self.core.create_namespaced_secret(NS, body)

    def events(self, name: str) -> list[Any]:
        return [e for e in self.core.list_namespaced_event(NS).items if e.involved_object.name == name]

    def request_reconcile(self, kind: tuple[str, str, str], name: str) -> str:
        stamp = str(time.time_ns())
        self.patch(kind, name, {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": stamp}}})
        return stamp


@pytest.fixture
def empty_cluster(tmp_path: Path) -> Iterator[Cluster]:
    with KubeApiServer() as server:
        kubeconfig = tmp_path / "kubeconfig"
        server.write_kubeconfig(kubeconfig)
        api = kube_config.new_client_from_config(config_file=str(kubeconfig))
        try:
            home = tmp_path / "kubectl-home"
            home.mkdir()
            yield Cluster(server, kubeconfig, api, home)
        finally:
            api.close()


@pytest.fixture
def cluster(empty_cluster: Cluster) -> Cluster:
    empty_cluster.install_flux()
    return empty_cluster


StartFlux = Callable[..., FluxSimulator]


@pytest.fixture
def start_flux(cluster: Cluster, tmp_path: Path) -> Iterator[StartFlux]:
    started: list[FluxSimulator] = []

    def start(**options: Any) -> FluxSimulator:
        options.setdefault("deployment_ready_after", 0.05)
        options.setdefault("max_interval", 2.0)
        simulator = FluxSimulator(cluster.kubeconfig, SimulatorOptions(**options), tmp_path / "flux")
        started.append(simulator)
        return simulator.start()

    yield start
    for simulator in started:
        simulator.stop()


# -- helpers ------------------------------------------------------------------------------------------------------


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll `probe` until it returns something truthy; fail with `what` and the last value otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except kube_client.ApiException as error:
            last = error
        else:
            if last:
                return last
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; last seen: {last!r}")


def condition(obj: dict[str, Any] | Any, kind: str) -> dict[str, Any] | None:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == kind), None)


def ready_true(cluster: Cluster, kind: tuple[str, str, str], name: str) -> Callable[[], dict[str, Any] | None]:
    """A probe for a Ready condition that is True."""

    def probe() -> dict[str, Any] | None:
        obj = cluster.get(kind, name)
        return obj if (condition(obj, "Ready") or {}).get("status") == "True" else None

    return probe


def settled(cluster: Cluster, kind: tuple[str, str, str], name: str) -> Callable[[], dict[str, Any] | None]:
    """A probe for a Ready condition that is True or False (not Unknown, not missing)."""

    def probe() -> dict[str, Any] | None:
        obj = cluster.get(kind, name)
        ready = condition(obj, "Ready")
        return obj if ready and ready["status"] in ("True", "False") else None

    return probe


def not_ready(cluster: Cluster, kind: tuple[str, str, str], name: str, reason: str) -> dict[str, Any]:
    """Wait for Ready to settle, check that it is False for `reason`, and return the object."""
    obj: dict[str, Any] = wait_for(f"{name} to settle", settled(cluster, kind, name))
    ready = condition(obj, "Ready") or {}
    assert (ready.get("status"), ready.get("reason")) == ("False", reason), obj.get("status")
    return obj


def events_of(cluster: Cluster, name: str, reason: str) -> list[Any]:
    """Events are written right after the status they report on: wait until one with `reason` is there."""
    return list(
        wait_for(f"a {reason} Event for {name}", lambda: [e for e in cluster.events(name) if e.reason == reason])
    )


def deployment_available(cluster: Cluster, name: str) -> bool:
    deployment = cluster.apps.read_namespaced_deployment(name, NS)
    return any(c.type == "Available" and c.status == "True" for c in deployment.status.conditions or [])


def wait_available(cluster: Cluster, *names: str) -> None:
    for name in names:
        wait_for(f"Deployment {name} Available", lambda name=name: deployment_available(cluster, name))


def pat_secret(cluster: Cluster, name: str, password: str) -> None:
    cluster.secret(name, {"username": "git", "password": password})


def git_repository(cluster: Cluster, name: str, url: str, **spec: Any) -> None:
    cluster.create(SOURCE, name, {"interval": "1m0s", "url": url, "ref": {"branch": "main"}, **spec})


def ready_git_repository(cluster: Cluster, remote: Remote, name: str) -> dict[str, Any]:
    pat_secret(cluster, f"{name}-auth", remote.pat)
    git_repository(cluster, name, remote.url, secretRef={"name": f"{name}-auth"})
    obj: dict[str, Any] = wait_for("GitRepository Ready", settled(cluster, SOURCE, name))
    assert condition(obj, "Ready")["status"] == "True", obj["status"]
    return obj


def kustomization(cluster: Cluster, name: str, source: str, path: str, **spec: Any) -> None:
    body = {
        "interval": "10m0s",
        "path": path,
        "prune": True,
        "sourceRef": {"kind": "GitRepository", "name": source},
    }
    cluster.create(KUSTOMIZE, name, {**body, **spec})


def add_ssh_hostkey_algos_argument(cluster: Cluster) -> None:
    """The patch Azure DevOps needs: source-controller offers the rsa-sha2 host key algorithms."""
    argument = f"--ssh-hostkey-algos={RSA_SHA2}"
    patch = f'[{{"op":"add","path":"/spec/template/spec/containers/0/args/-","value":"{argument}"}}]'
    cluster.kubectl("-n", NS, "patch", "deployment", "source-controller", "--type=json", "-p", patch)


def use_workload_identity(cluster: Cluster, client_id: str) -> None:
    """Annotate source-controller's ServiceAccount with `client_id` and label its Pods for the webhook."""
    cluster.core.patch_namespaced_service_account(
        "source-controller",
        NS,
        {"metadata": {"annotations": {"azure.workload.identity/client-id": client_id}}},
        _content_type=MERGE,
    )
    cluster.apps.patch_namespaced_deployment(
        "source-controller",
        NS,
        {"spec": {"template": {"metadata": {"labels": {"azure.workload.identity/use": "true"}}}}},
        _content_type=MERGE,
    )


# -- Deployments ----------------------------------------------------------------------------------------------------


def test_flux_deployments_roll_out_with_running_pods(cluster: Cluster, start_flux: StartFlux) -> None:
    start_flux()
    names = [deployment.metadata.name for deployment in cluster.apps.list_namespaced_deployment(NS).items]
    assert {"source-controller", "kustomize-controller"} <= set(names)
    wait_available(cluster, *names)  # every Flux Deployment of the distribution
    cluster.kubectl("-n", NS, "rollout", "status", "deployment/source-controller", "--timeout=30s")

    deployment = cluster.apps.read_namespaced_deployment("kustomize-controller", NS)
    status = deployment.status
    assert (status.replicas, status.ready_replicas, status.available_replicas, status.updated_replicas) == (1, 1, 1, 1)
    assert status.observed_generation == deployment.metadata.generation
    progressing = next(c for c in status.conditions if c.type == "Progressing")
    assert (progressing.status, progressing.reason) == ("True", "NewReplicaSetAvailable")

    pods = cluster.core.list_namespaced_pod(NS, label_selector="app=kustomize-controller").items
    assert len(pods) == 1
    assert pods[0].status.phase == "Running"
    assert pods[0].status.container_statuses[0].ready is True
    assert pods[0].metadata.labels["pod-template-hash"] in pods[0].metadata.name
    table = cluster.kubectl("-n", NS, "get", "pods")
    assert "kustomize-controller-" in table and "1/1" in table and "Running" in table
    scaled = events_of(cluster, "kustomize-controller", "ScalingReplicaSet")
    assert scaled[0].message.startswith("Scaled up replica set kustomize-controller-")


def test_an_unpullable_image_backs_off_and_the_deployment_never_becomes_available(
    cluster: Cluster, start_flux: StartFlux
) -> None:
    start_flux(unpullable_images=("ghcr.io/fluxcd/helm-controller",))
    wait_available(cluster, "source-controller", "kustomize-controller", "notification-controller")

    def backing_off() -> Any:
        pods = cluster.core.list_namespaced_pod(NS, label_selector="app=helm-controller").items
        waiting = (
            pods[0].status.container_statuses[0].state.waiting if pods and pods[0].status.container_statuses else None
        )
        return waiting if waiting is not None and waiting.reason == "ImagePullBackOff" else None

    waiting = wait_for("helm-controller in ImagePullBackOff", backing_off)
    assert waiting.message == 'Back-off pulling image "ghcr.io/fluxcd/helm-controller:v0.0.0-sample"'
    pod = cluster.core.list_namespaced_pod(NS, label_selector="app=helm-controller").items[0]
    assert pod.status.phase == "Pending"
    failures = [e for e in events_of(cluster, pod.metadata.name, "Failed") if e.type == "Warning"]
    assert any(
        e.message.startswith('Failed to pull image "ghcr.io/fluxcd/helm-controller:v0.0.0-sample": ') for e in failures
    )
    assert "ImagePullBackOff" in cluster.kubectl("-n", NS, "get", "pods")
    assert not deployment_available(cluster, "helm-controller")

    cluster.apps.patch_namespaced_deployment(
        "helm-controller", NS, {"spec": {"progressDeadlineSeconds": 1}}, _content_type=MERGE
    )

    def deadline_exceeded() -> bool:
        deployment = cluster.apps.read_namespaced_deployment("helm-controller", NS)
        return any(c.reason == "ProgressDeadlineExceeded" for c in deployment.status.conditions or [])

    wait_for("ProgressDeadlineExceeded", deadline_exceeded)
    assert not deployment_available(cluster, "helm-controller")


def test_controllers_act_only_once_their_deployment_is_available(
    cluster: Cluster, remote: Remote, start_flux: StartFlux
) -> None:
    start_flux(unpullable_images=("ghcr.io/fluxcd/source-controller:",))
    pat_secret(cluster, "auth", remote.pat)
    git_repository(cluster, "waiting", remote.url, secretRef={"name": "auth"})
    kustomization(cluster, "waiting", "waiting", "./clusters/sandbox")

    ks = wait_for("the Kustomization to be reconciled", settled(cluster, KUSTOMIZE, "waiting"))
    assert condition(ks, "Ready")["message"] == "Source artifact not found, retrying in 30s"
    assert ks["metadata"]["finalizers"] == ["finalizers.fluxcd.io"]
    source = cluster.get(SOURCE, "waiting")
    assert "finalizers" not in source["metadata"] or not source["metadata"]["finalizers"]
    assert not (source.get("status") or {}).get("conditions")


# -- GitRepository over HTTPS -----------------------------------------------------------------------------------


def test_a_working_pat_makes_the_git_repository_ready_at_the_pushed_revision(
    cluster: Cluster, remote: Remote, start_flux: StartFlux
) -> None:
    start_flux()
    obj = ready_git_repository(cluster, remote, "fleet")

    revision = f"main@sha1:{remote.head()}"
    ready = condition(obj, "Ready")
    assert ready["reason"] == "Succeeded"
    assert ready["message"] == f"stored artifact for revision '{revision}'"
    assert condition(obj, "ArtifactInStorage")["status"] == "True"
    assert condition(obj, "Reconciling") is None
    artifact = obj["status"]["artifact"]
    assert artifact["revision"] == revision
    assert artifact["path"] == f"gitrepository/{NS}/fleet/{remote.head()}.tar.gz"
    assert artifact["url"] == f"http://source-controller.{NS}.svc.cluster.local./{artifact['path']}"
    assert artifact["digest"].startswith("sha256:") and artifact["size"] > 0
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    assert obj["metadata"]["finalizers"] == ["finalizers.fluxcd.io"]
    new_artifact = events_of(cluster, "fleet", "NewArtifact")
    assert new_artifact[0].type == "Normal"
    assert new_artifact[0].message == "stored artifact for commit 'Add the sandbox cluster'"
    assert new_artifact[0].source.component == "source-controller"
    assert new_artifact[0].metadata.annotations["source.toolkit.fluxcd.io/revision"] == revision


def test_a_wrong_pat_leaves_the_git_repository_not_ready(
    cluster: Cluster, remote: Remote, start_flux: StartFlux
) -> None:
    start_flux()
    wrong = "x" * len(remote.pat)
    pat_secret(cluster, "wrong", wrong)
    git_repository(cluster, "fleet", remote.url, secretRef={"name": "wrong"})

    obj = not_ready(cluster, SOURCE, "fleet", "GitOperationFailed")
    ready = condition(obj, "Ready")
    assert ready["message"].startswith(f"failed to checkout and determine revision: unable to clone '{remote.url}': ")
    assert "authentication required" in ready["message"]
    assert wrong not in ready["message"]
    assert condition(obj, "FetchFailed")["status"] == "True"
    assert condition(obj, "Reconciling")["reason"] == "ProgressingWithRetry"
    assert "artifact" not in obj["status"] or obj["status"]["artifact"] is None
    assert "observedGeneration" not in obj["status"]
    warnings = events_of(cluster, "fleet", "GitOperationFailed")
    assert warnings[0].type == "Warning" and warnings[0].message == ready["message"]


def test_a_job_token_works_until_it_is_revoked(cluster: Cluster, remote: Remote, start_flux: StartFlux) -> None:
    start_flux()
    token = remote.world.issue_job_token(remote.world.build_service(remote.project))
    cluster.secret("job", {"bearerToken": token})
    git_repository(cluster, "fleet", remote.url, secretRef={"name": "job"})
    obj = wait_for("GitRepository to settle", settled(cluster, SOURCE, "fleet"))
    assert condition(obj, "Ready")["status"] == "True", obj["status"]

    remote.world.revoke_job_token(token)
    stamp = cluster.request_reconcile(SOURCE, "fleet")

    def handled_and_failed() -> dict[str, Any] | None:
        current = cluster.get(SOURCE, "fleet")
        handled = current["status"].get("lastHandledReconcileAt") == stamp
        return current if handled and condition(current, "Ready")["status"] == "False" else None

    obj = wait_for("the revoked token to fail", handled_and_failed)
    message = condition(obj, "Ready")["message"]
    assert message.startswith(f"failed to checkout and determine revision: unable to list remote for '{remote.url}': ")
    assert "authentication required" in message and token not in message
    assert condition(obj, "ArtifactInStorage")["status"] == "True"  # the last artifact stays served
    assert obj["status"]["artifact"]["revision"] == f"main@sha1:{remote.head()}"


def test_a_missing_secret_is_an_authentication_failure(cluster: Cluster, remote: Remote, start_flux: StartFlux) -> None:
    start_flux()
    git_repository(cluster, "fleet", remote.url, secretRef={"name": "absent"})
    obj = not_ready(cluster, SOURCE, "fleet", "AuthenticationFailed")
    ready = condition(obj, "Ready")
    assert ready["message"] == (
        f"failed to get secret '{NS}/absent': failed to get secret '{NS}/absent': secrets \"absent\" not found"
    )


def test_a_new_push_is_fetched_at_the_next_interval(cluster: Cluster, remote: Remote, start_flux: StartFlux) -> None:
    start_flux(max_interval=0.5)
    ready_git_repository(cluster, remote, "fleet")
    kustomization(cluster, "fleet", "fleet", "./clusters/sandbox")
    wait_for("Kustomization Ready", settled(cluster, KUSTOMIZE, "fleet"))

    head = remote.commit_and_push("clusters/sandbox/apps/app.yaml", f"id: {uuid.uuid4()}\n", "Add an app")

    def applied() -> bool:
        return cluster.get(KUSTOMIZE, "fleet")["status"].get("lastAppliedRevision") == f"main@sha1:{head}"

    wait_for("the new revision to be applied", applied)
    assert cluster.get(SOURCE, "fleet")["status"]["artifact"]["revision"] == f"main@sha1:{head}"


# -- GitRepository over SSH -------------------------------------------------------------------------------------


def ssh_secret(cluster: Cluster, endpoint: SshEndpoint, name: str, known_hosts: str | None = None) -> None:
    cluster.secret(
        name,
        {
            "identity": endpoint.identity.decode(),
            "known_hosts": (known_hosts if known_hosts is not None else endpoint.known_hosts) + "\n",
        },
    )


@needs_sshd
def test_ssh_needs_the_hostkey_algos_patch_against_an_rsa_sha2_only_server(
    cluster: Cluster, ssh: SshEndpoint, remote: Remote, start_flux: StartFlux
) -> None:
    start_flux()
    ssh_secret(cluster, ssh, "ssh")
    git_repository(cluster, "fleet", ssh.url, secretRef={"name": "ssh"})

    obj = not_ready(cluster, SOURCE, "fleet", "GitOperationFailed")
    ready = condition(obj, "Ready")
    assert ready["message"] == (
        f"failed to checkout and determine revision: unable to clone '{ssh.url}': ssh: handshake failed: "
        "ssh: no common algorithm for host key; client offered: [ssh-rsa], server offered: [rsa-sha2-512 rsa-sha2-256]"
    )

    add_ssh_hostkey_algos_argument(cluster)
    obj = wait_for("the restarted source-controller to fetch over SSH", ready_true(cluster, SOURCE, "fleet"))
    assert obj["status"]["artifact"]["revision"] == f"main@sha1:{remote.head()}"


@needs_sshd
def test_ssh_checks_the_host_key_against_the_secrets_known_hosts(
    cluster: Cluster, ssh: SshEndpoint, start_flux: StartFlux
) -> None:
    add_ssh_hostkey_algos_argument(cluster)
    start_flux()
    host = ssh.known_hosts.split(" ", 1)[0]
    # A well-formed RSA key that is not the server's (it is ssh.dev.azure.com's).
    stranger = (
        "AAAAB3NzaC1yc2EAAAADAQABAAABAQC7Hr1oTWqNqOlzGJOfGJ4NakVyIzf1rXYd4d7wo6jBlkLvCA4odBlL0mDUyZ0/QUfTTqeu+tm22gOsv"
        "+VrVTMk6vwRU75gY/y9ut5Mb3bR5BV58dKXyq9A9UeB5Cakehn5Zgm6x1mKoVyf+FFn26iYqXJRgzIZZcZ5V6hrE0Qg39kZm4az48o0AUbf6Sp4"
        "SLdvnuMa2sVNwHBboS7EJkm57XQPVU3/QpyNLHbWDdzwtrlS+ez30S3AdYhLKEOxAG8weOnyrtLJAUen9mTkol8oII1edf7mWWbWVf0nBmly21+"
        "nZcmCTISQBtdcyPaEno7fFQMDD26/s0lfKob4Kw8H"
    )
    ssh_secret(cluster, ssh, "mismatch", known_hosts=f"{host} ssh-rsa {stranger}")
    ssh_secret(cluster, ssh, "good")
    git_repository(cluster, "mismatch", ssh.url, secretRef={"name": "mismatch"})
    git_repository(cluster, "good", ssh.url, secretRef={"name": "good"})

    obj = wait_for("GitRepository to settle", settled(cluster, SOURCE, "mismatch"))
    assert condition(obj, "Ready")["message"].endswith("ssh: handshake failed: knownhosts: key mismatch")
    obj = wait_for("GitRepository to settle", settled(cluster, SOURCE, "good"))
    assert condition(obj, "Ready")["status"] == "True", obj["status"]


# -- GitRepository with workload identity -------------------------------------------------------------------------


def test_provider_azure_needs_the_federated_client_id_on_the_controller(
    cluster: Cluster, remote: Remote, start_flux: StartFlux
) -> None:
    client_id = str(uuid.uuid4())
    identity = remote.world.add_managed_identity(f"flux-{client_id[:8]}", project_rights="reader")
    remote.world.federate(identity, client_id)
    start_flux(workload_token=remote.world.workload_token)
    git_repository(cluster, "fleet", remote.url, provider="azure")

    obj = not_ready(cluster, SOURCE, "fleet", "AuthenticationFailed")
    ready = condition(obj, "Ready")
    assert "missing environment variables for workload identity" in ready["message"]

    use_workload_identity(cluster, client_id)
    obj = wait_for(
        "the restarted source-controller to fetch with workload identity", ready_true(cluster, SOURCE, "fleet")
    )
    assert obj["status"]["artifact"]["revision"] == f"main@sha1:{remote.head()}"
    pod = cluster.core.list_namespaced_pod(NS, label_selector="app=source-controller").items[0]
    env = {variable.name: variable.value for variable in pod.spec.containers[0].env}
    assert env["AZURE_CLIENT_ID"] == client_id and env["AZURE_FEDERATED_TOKEN_FILE"]


def test_provider_azure_fails_for_a_client_id_without_federation(
    cluster: Cluster, remote: Remote, start_flux: StartFlux
) -> None:
    use_workload_identity(cluster, str(uuid.uuid4()))
    start_flux(workload_token=remote.world.workload_token)
    git_repository(cluster, "fleet", remote.url, provider="azure")

    obj = not_ready(cluster, SOURCE, "fleet", "AuthenticationFailed")
    ready = condition(obj, "Ready")
    assert "AADSTS700213" in ready["message"]
    assert f"system:serviceaccount:{NS}:source-controller" in ready["message"]


# -- Kustomization --------------------------------------------------------------------------------------------------


def test_a_kustomization_is_ready_when_its_path_exists_at_the_fetched_revision(
    cluster: Cluster, remote: Remote, start_flux: StartFlux
) -> None:
    start_flux()
    source = ready_git_repository(cluster, remote, "fleet")
    revision = source["status"]["artifact"]["revision"]
    kustomization(cluster, "good", "fleet", "./clusters/sandbox")
    kustomization(cluster, "missing", "fleet", "./clusters/elsewhere")
    kustomization(cluster, "orphan", "nowhere", "./clusters/sandbox")

    good = wait_for("Kustomization to settle", settled(cluster, KUSTOMIZE, "good"))
    ready = condition(good, "Ready")
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "True",
        "ReconciliationSucceeded",
        f"Applied revision: {revision}",
    )
    assert good["status"]["lastAppliedRevision"] == revision
    assert good["status"]["lastAttemptedRevision"] == revision
    assert good["status"]["observedGeneration"] == good["metadata"]["generation"]
    assert good["metadata"]["finalizers"] == ["finalizers.fluxcd.io"]
    succeeded = events_of(cluster, "good", "ReconciliationSucceeded")
    assert succeeded[0].message.startswith("Reconciliation finished in ")
    assert succeeded[0].metadata.annotations["kustomize.toolkit.fluxcd.io/revision"] == revision

    missing = not_ready(cluster, KUSTOMIZE, "missing", "ArtifactFailed")
    ready = condition(missing, "Ready")
    assert ready["message"].startswith("kustomization path not found: stat ")
    assert ready["message"].endswith("/clusters/elsewhere: no such file or directory")
    assert "lastAppliedRevision" not in missing["status"]

    orphan = not_ready(cluster, KUSTOMIZE, "orphan", "ArtifactFailed")
    ready = condition(orphan, "Ready")
    assert ready["message"] == 'gitrepositories.source.toolkit.fluxcd.io "nowhere" not found'


# -- suspend and deletion -----------------------------------------------------------------------------------------


def test_suspended_objects_get_their_finalizer_but_no_reconcile(
    cluster: Cluster, remote: Remote, start_flux: StartFlux
) -> None:
    start_flux()
    pat_secret(cluster, "auth", remote.pat)
    git_repository(cluster, "paused", remote.url, secretRef={"name": "auth"}, suspend=True)
    wait_for("the finalizer", lambda: cluster.get(SOURCE, "paused")["metadata"].get("finalizers"))
    ready_git_repository(cluster, remote, "active")  # reconciled after the suspended one's second pass
    kustomization(cluster, "paused", "active", "./clusters/sandbox", suspend=True)
    wait_for("the finalizer", lambda: cluster.get(KUSTOMIZE, "paused")["metadata"].get("finalizers"))
    kustomization(cluster, "active", "active", "./clusters/sandbox")
    wait_for("Kustomization to settle", settled(cluster, KUSTOMIZE, "active"))

    assert not (cluster.get(SOURCE, "paused").get("status") or {}).get("conditions")
    assert not (cluster.get(KUSTOMIZE, "paused").get("status") or {}).get("conditions")

    cluster.patch(SOURCE, "paused", {"spec": {"suspend": False}})
    obj = wait_for("the resumed GitRepository", settled(cluster, SOURCE, "paused"))
    assert condition(obj, "Ready")["status"] == "True"
    cluster.patch(KUSTOMIZE, "paused", {"spec": {"suspend": False}})
    obj = wait_for("the resumed Kustomization", settled(cluster, KUSTOMIZE, "paused"))
    assert condition(obj, "Ready")["status"] == "True"


def test_deleting_removes_the_finalizers(cluster: Cluster, remote: Remote, start_flux: StartFlux) -> None:
    start_flux()
    ready_git_repository(cluster, remote, "fleet")
    kustomization(cluster, "fleet", "fleet", "./clusters/sandbox")
    wait_for("Kustomization to settle", settled(cluster, KUSTOMIZE, "fleet"))

    cluster.kubectl("-n", NS, "delete", "kustomization", "fleet", "--timeout=30s")
    cluster.kubectl("-n", NS, "delete", "gitrepository", "fleet", "--timeout=30s")
    wait_for(
        "both objects gone", lambda: not cluster.exists(KUSTOMIZE, "fleet") and not cluster.exists(SOURCE, "fleet")
    )


# -- lifecycle ------------------------------------------------------------------------------------------------------


def flux_threads() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if thread.name.startswith("flux-")}


@pytest.mark.parametrize("api_server_stops_first", [False, True], ids=["server-up", "server-gone"])
def test_stop_joins_every_thread_and_cleans_the_work_dir(
    cluster: Cluster, tmp_path: Path, api_server_stops_first: bool
) -> None:
    before = flux_threads()
    work_dir = tmp_path / "work"
    options = SimulatorOptions(deployment_ready_after=0.05)
    with FluxSimulator(cluster.kubeconfig, options, work_dir) as simulator:
        wait_available(cluster, "source-controller")
        assert simulator.wait_synced()
        if api_server_stops_first:
            cluster.server.stop()  # open watches break and every request is refused from here on
    assert flux_threads() - before == set()
    assert not work_dir.exists()
    simulator.stop()  # idempotent


def test_crds_installed_after_the_simulator_started_are_picked_up(
    empty_cluster: Cluster, remote: Remote, tmp_path: Path
) -> None:
    options = SimulatorOptions(deployment_ready_after=0.05, max_interval=2.0)
    with FluxSimulator(empty_cluster.kubeconfig, options, tmp_path / "flux"):
        empty_cluster.install_flux()  # what a bootstrap does to a cluster on which the simulator already runs
        wait_available(empty_cluster, "source-controller")
        ready_git_repository(empty_cluster, remote, "fleet")
        kustomization(empty_cluster, "fleet", "fleet", "./clusters/sandbox")
        obj = wait_for("Kustomization Ready", ready_true(empty_cluster, KUSTOMIZE, "fleet"))
        assert obj["status"]["lastAppliedRevision"] == f"main@sha1:{remote.head()}"


def test_the_simulator_carries_on_after_the_api_server_restarts(
    cluster: Cluster, remote: Remote, start_flux: StartFlux
) -> None:
    simulator = start_flux()
    wait_available(cluster, "source-controller", "kustomize-controller")
    assert simulator.wait_synced()
    cluster.server.stop()  # watches break, lists and status patches are refused...
    time.sleep(0.3)  # ...for long enough that every watch loop sees it
    cluster.server.start()  # same port, same objects: the watches must resume on their own
    ready_git_repository(cluster, remote, "fleet")
    kustomization(cluster, "fleet", "fleet", "./clusters/sandbox")
    wait_for("Kustomization Ready", ready_true(cluster, KUSTOMIZE, "fleet"))


def test_credentials_in_the_url_work_and_never_show_in_messages_events_or_logs(
    cluster: Cluster, remote: Remote, start_flux: StartFlux, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="flux_azdo.sandbox.flux")
    start_flux()
    wrong = f"wrong-{uuid.uuid4().hex}"
    scheme, rest = remote.url.split("://", 1)
    git_repository(cluster, "good", f"{scheme}://git:{remote.pat}@{rest}")
    git_repository(cluster, "wrong", f"{scheme}://git:{wrong}@{rest}")

    obj = wait_for("GitRepository good to settle", settled(cluster, SOURCE, "good"))
    assert condition(obj, "Ready")["status"] == "True", obj["status"]
    message = condition(not_ready(cluster, SOURCE, "wrong", "GitOperationFailed"), "Ready")["message"]
    assert message.startswith(f"failed to checkout and determine revision: unable to clone '{scheme}://git:***@")
    assert "authentication required" in message
    events_of(cluster, "wrong", "GitOperationFailed")
    events = [event.message for name in ("good", "wrong") for event in cluster.events(name)]
    seen = [message, *events, *(record.getMessage() for record in caplog.records)]
    assert not [text for text in seen if wrong in text or remote.pat in text]


def test_ssh_keys_and_known_hosts_exist_only_in_private_files_while_git_runs(
    user_ssh_key: Path, tmp_path: Path
) -> None:
    fetcher = GitFetcher(tmp_path)
    auth = GitAuth(
        transport="ssh",
        url="ssh://git@127.0.0.1:22/v3/org/project/repo",
        identity=user_ssh_key.read_bytes(),
        known_hosts=b"[127.0.0.1]:22 ssh-rsa AAAAB3NzaC1yc2E=\n",
    )
    with fetcher._session(auth) as env:
        options = [word.split("=", 1) for word in shlex.split(env["GIT_SSH_COMMAND"]) if "=" in word]
        files = [Path(value) for key, value in options if key in ("IdentityFile", "UserKnownHostsFile")]
        assert len(files) == 2
        assert stat.S_IMODE(files[0].parent.stat().st_mode) == 0o700
        assert [stat.S_IMODE(path.stat().st_mode) for path in files] == [0o600, 0o600]
    assert not files[0].parent.exists()
    assert list(tmp_path.iterdir()) in ([], [tmp_path / "home"])


def test_tags_and_pinned_commits_use_fluxs_revision_forms(
    cluster: Cluster, remote: Remote, start_flux: StartFlux
) -> None:
    start_flux()
    head = remote.head()
    remote.git("tag", "-f", "-a", "v1.0.0", "-m", "release", head)
    remote.git("push", "-q", "-f", remote.url, "refs/tags/v1.0.0")
    pat_secret(cluster, "auth", remote.pat)
    cluster.create(
        SOURCE, "tag", {"interval": "1m", "url": remote.url, "secretRef": {"name": "auth"}, "ref": {"tag": "v1.0.0"}}
    )
    cluster.create(
        SOURCE, "commit", {"interval": "1m", "url": remote.url, "secretRef": {"name": "auth"}, "ref": {"commit": head}}
    )
    cluster.create(
        SOURCE,
        "pinned",
        {"interval": "1m", "url": remote.url, "secretRef": {"name": "auth"}, "ref": {"branch": "main", "commit": head}},
    )
    cluster.create(
        SOURCE,
        "named",
        {"interval": "1m", "url": remote.url, "secretRef": {"name": "auth"}, "ref": {"name": "refs/heads/main"}},
    )
    cluster.create(
        SOURCE,
        "nobranch",
        {"interval": "1m", "url": remote.url, "secretRef": {"name": "auth"}, "ref": {"branch": "nope"}},
    )
    expected = {
        "tag": f"v1.0.0@sha1:{head}",
        "commit": f"sha1:{head}",
        "pinned": f"main@sha1:{head}",
        "named": f"refs/heads/main@sha1:{head}",
    }
    for name, revision in expected.items():
        obj = wait_for(f"GitRepository {name} to settle", settled(cluster, SOURCE, name))
        assert condition(obj, "Ready")["status"] == "True", obj["status"]
        assert obj["status"]["artifact"]["revision"] == revision
    obj = wait_for("GitRepository nobranch to settle", settled(cluster, SOURCE, "nobranch"))
    assert condition(obj, "Ready")["message"] == (
        "failed to checkout and determine revision: unable to clone: couldn't find remote ref "
        f"'refs/heads/nope': git repository: '{remote.url}'"
    )


def test_a_watch_resuming_from_a_forgotten_version_lists_again(tmp_path: Path) -> None:
    with KubeApiServer(history=4) as server:
        kubeconfig = tmp_path / "kubeconfig"
        server.write_kubeconfig(kubeconfig)
        api = kube_config.new_client_from_config(config_file=str(kubeconfig))
        core = kube_client.CoreV1Api(api)
        seen: list[tuple[str, str]] = []
        connection = FluxCluster(kubeconfig)
        informer = Informer(
            connection, "secrets", ["/api/v1/secrets"], lambda kind, obj: seen.append((kind, obj["metadata"]["name"]))
        )
        try:
            version = informer._relist()
            for index in range(10):
                core.create_namespaced_secret("default", {"metadata": {"name": f"s{index}"}, "stringData": {"k": "v"}})
            with pytest.raises(WatchExpired):  # the server answers 410 Expired: the history is gone
                informer._watch(version)
            informer._relist()
            assert {name for kind, name in seen if kind == "ADDED"} >= {f"s{index}" for index in range(10)}
            assert {obj["metadata"]["name"] for obj in informer.items()} >= {f"s{index}" for index in range(10)}
        finally:
            connection.close()
            api.close()


def test_on_a_cluster_with_its_own_controllers_deployments_are_left_alone(
    cluster: Cluster, remote: Remote, start_flux: StartFlux
) -> None:
    start_flux(simulate_deployments=False, controllers_wait_for_deployments=False)
    ready_git_repository(cluster, remote, "fleet")  # source-controller acts without a running Deployment

    deployment = cluster.apps.read_namespaced_deployment("source-controller", NS)
    assert not (deployment.status and deployment.status.conditions)
    assert cluster.core.list_namespaced_pod(NS).items == []
