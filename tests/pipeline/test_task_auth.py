"""The Git credentials of `FluxBootstrap@1`: the cluster's own (an SSH key from a secure file, workload identity, a
PAT) and the push's (the job token, or a PAT with gitAuth pat).

Two sandboxes, each the life of one cluster, its tests in order. The first: an SSH `plan` (the secure file
downloaded with the job token even when a ~/.netrc offers other credentials; nothing written), a workload identity
bootstrap (no Secret), then a bootstrap whose push uses a PAT instead of the job token while the cluster gets a
second, read-only PAT. The second runs OpenSSH's sshd (skipped without it, as `running_sandbox(ssh=True)` skips):
a bootstrap with an encrypted SSH key that the Flux simulator fetches with over the sandbox's SSH endpoint, then
the rotation to a new key. It is a cluster of its own so that each test sees one credential's whole life;
switching a cluster's credential by re-running bootstrap is test_task_migration.py's subject.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from flux_azdo.cluster.client import Cluster, ClusterAccess
from flux_azdo.cluster.secrets import read_source_secret
from flux_azdo.sandbox.azure_devops.security import GitPermission, repository_token
from flux_azdo.sandbox.runtime import Sandbox
from support.agent import (
    SAMPLE_VERSION,
    Endpoint,
    SimulatedAgent,
    assert_clean_result,
    cluster_user,
    pipeline_sandbox,
    service_account_endpoint,
    simulated_agent,
    task_step,
)

PASSPHRASE = "correct horse battery staple"
SSH_URL = "ssh://git@127.0.0.1:22222/sandbox-org/platform/fleet-infra"
SOURCE_API = "source.toolkit.fluxcd.io/v1"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with pipeline_sandbox(tmp_path_factory.mktemp("sandbox"), flux=True, deployment_ready_after=0.0) as running:
        yield running


@dataclass(frozen=True)
class SshJob:
    """The cluster with the SSH endpoint, its Kubernetes service connection and token, and a job's agent."""

    sandbox: Sandbox
    agent: SimulatedAgent
    endpoint: Endpoint
    cluster_token: str


@pytest.fixture(scope="module")
def ssh_job(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshJob]:
    """Skipped when sshd is not usable (`running_sandbox(ssh=True)`)."""
    directory = tmp_path_factory.mktemp("ssh-sandbox")
    with pipeline_sandbox(directory, flux=True, deployment_ready_after=0.0, ssh=True) as running:
        token = cluster_user(running)
        endpoint = service_account_endpoint(running, token)
        yield SshJob(running, simulated_agent(tmp_path_factory, running), endpoint, token)


def step(sandbox: Sandbox, endpoint: Endpoint, **inputs: object) -> dict[str, object]:
    defaults = {"path": "clusters/sandbox", "fluxVersion": SAMPLE_VERSION, "timeout": "90s"}
    return task_step(sandbox, endpoint, **{**defaults, **inputs})


def encrypted_key() -> tuple[bytes, str]:
    """An RSA key (what Azure DevOps takes) encrypted with PASSPHRASE, and its public line."""
    return rsa_key(PASSPHRASE)


def rsa_key(passphrase: str | None) -> tuple[bytes, str]:
    """An RSA key in OpenSSH format, encrypted with `passphrase` when given, and its public line."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.encode()) if passphrase else serialization.NoEncryption()
    )
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, encryption)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, public.decode()


def public_line_of(identity: str, passphrase: str | None = None) -> str:
    """The OpenSSH public line of a private key as a Secret holds it."""
    secret = passphrase.encode() if passphrase else None
    key = serialization.load_ssh_private_key(identity.encode(), secret)
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def secret_of(sandbox: Sandbox) -> dict[str, str] | None:
    with Cluster(ClusterAccess(sandbox.kubeconfig_path)) as cluster:
        return read_source_secret(cluster, "flux-system", "flux-system")


def git_repository(sandbox: Sandbox) -> dict[str, Any]:
    with Cluster(ClusterAccess(sandbox.kubeconfig_path)) as cluster:
        found = cluster.get(SOURCE_API, "GitRepository", "flux-system", "flux-system")
    assert found is not None
    return found


def ready_revision(source: dict[str, Any]) -> str | None:
    """The revision a GitRepository is Ready at (None when it is not Ready)."""
    status = source.get("status") or {}
    ready = [c for c in status.get("conditions") or () if c.get("type") == "Ready"]
    if not ready or ready[0].get("status") != "True":
        return None
    return str((status.get("artifact") or {}).get("revision") or "")


def head_of_main(sandbox: Sandbox) -> str:
    """The commit main points at in the sandbox repository ("" before its first push)."""
    return subprocess.run(
        ["git", "--git-dir", str(sandbox.repository.git_dir), "rev-parse", "--verify", "--quiet", "refs/heads/main"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1"},
    ).stdout.strip()


def ssh_inputs(sandbox: Sandbox, file_id: str, **inputs: object) -> dict[str, object]:
    """clusterAuth sshKey with the sandbox's host key pinned (sshKnownHosts)."""
    return {
        "clusterAuth": "sshKey",
        "sshKey": file_id,
        "sshKnownHosts": sandbox.known_hosts_path.read_text(encoding="utf-8"),
        **inputs,
    }


def test_an_ssh_key_from_a_secure_file_is_planned_as_the_clusters_secret(
    sandbox: Sandbox, agent: SimulatedAgent, endpoint: Endpoint, tmp_path: Path
) -> None:
    """The agent's user has a ~/.netrc with other credentials for the organisation's host: the download still
    goes with the job token (requests would let a netrc entry replace a plain Authorization header)."""
    home = tmp_path / "home"
    home.mkdir()
    netrc = home / ".netrc"
    netrc.write_text("machine 127.0.0.1 login someone password not-the-job-token\n", encoding="utf-8")
    netrc.chmod(0o600)
    private, public = encrypted_key()
    file_id, ticket = sandbox.add_secure_file("flux-deploy.key", private)
    host_line = f"[127.0.0.1]:22222 {public}"

    run = agent.run(
        step(
            sandbox,
            endpoint,
            action="plan",
            clusterAuth="sshKey",
            sshKey=file_id,
            sshKeyPassphrase=PASSPHRASE,
            sshRepositoryUrl=SSH_URL,
            sshKnownHosts=host_line,
        ),
        endpoints=[endpoint],
        secure_files={file_id: ("flux-deploy.key", ticket)},
        secret_variables={"sshKeyPassphrase": PASSPHRASE},
        agent_env={"HOME": str(home)},
    )

    assert_clean_result(
        run, ("Succeeded", "changes"), sandbox.job_token, PASSPHRASE, ticket, discovered=(private.decode(),)
    )
    assert "flux-system/flux-system" in run.summary  # the source secret bootstrap would create
    assert f"url: {SSH_URL}" in run.stdout  # the planned gotk-sync.yaml fetches over SSH
    with Cluster(ClusterAccess(sandbox.kubeconfig_path)) as cluster:
        assert read_source_secret(cluster, "flux-system", "flux-system") is None  # a plan writes nothing


def test_workload_identity_bootstraps_without_a_secret(
    sandbox: Sandbox, agent: SimulatedAgent, endpoint: Endpoint
) -> None:
    repo = repository_token(sandbox.project.id, sandbox.repository.id)
    sandbox.world.allow(sandbox.workload_identity, repo, int(GitPermission.GENERIC_READ))

    run = agent.run(
        step(sandbox, endpoint, clusterAuth="workloadIdentity", workloadIdentityClientId=sandbox.workload_client_id),
        endpoints=[endpoint],
    )

    assert_clean_result(run, ("Succeeded", "changed"), sandbox.job_token)
    with Cluster(ClusterAccess(sandbox.kubeconfig_path)) as cluster:
        assert read_source_secret(cluster, "flux-system", "flux-system") is None
        account = cluster.get("v1", "ServiceAccount", "source-controller", "flux-system")
    assert account is not None
    assert account["metadata"]["annotations"]["azure.workload.identity/client-id"] == sandbox.workload_client_id


def test_gitauth_pat_pushes_with_the_users_pat_and_the_cluster_keeps_a_read_only_pat(
    sandbox: Sandbox, agent: SimulatedAgent, endpoint: Endpoint, cluster_token: str
) -> None:
    """gitAuth pat after the workload identity bootstrap: the push uses the sandbox user's PAT (`gitPat: $(gitPat)`),
    and the cluster stores a second PAT with Code (Read) only. The project's build service may not contribute while
    the step runs, so a push with the job token would be rejected: the new head of main proves the PAT pushed. The
    GitRepository leaves workload identity (provider azure) for the Secret, and Flux fetches with the read-only
    PAT at the pushed commit."""
    read_only = sandbox.world.issue_pat(sandbox.user, ("vso.code",))
    before = head_of_main(sandbox)
    repo = repository_token(sandbox.project.id, sandbox.repository.id)
    contribute = int(GitPermission.GENERIC_CONTRIBUTE)
    sandbox.world.deny(sandbox.build_service, repo, contribute)
    try:
        run = agent.run(
            step(sandbox, endpoint, gitAuth="pat", gitPat=sandbox.pat, clusterPat=read_only),
            endpoints=[endpoint],
            secret_variables={"gitPat": sandbox.pat, "clusterPat": read_only},
        )
    finally:
        sandbox.world.clear(sandbox.build_service, repo, contribute)
        sandbox.world.allow(sandbox.build_service, repo, contribute)

    assert_clean_result(run, ("Succeeded", "changed"), sandbox.job_token, sandbox.pat, read_only, cluster_token)
    sync_commit = run.outputs["syncCommit"]
    assert sync_commit and sync_commit == head_of_main(sandbox) != before
    assert secret_of(sandbox) == {"username": "git", "password": read_only}
    source = git_repository(sandbox)
    assert source["spec"]["url"] == sandbox.repo_url
    assert source["spec"].get("provider", "generic") == "generic"
    assert ready_revision(source) == f"main@sha1:{sync_commit}"


def test_an_ssh_key_bootstrap_lets_flux_fetch_over_ssh_with_the_secure_files_key(ssh_job: SshJob) -> None:
    """The push goes over https with the job token; the cluster gets the encrypted key (and its passphrase) and
    the sandbox's host key, and the Flux simulator fetches over the SSH endpoint with them: the GitRepository is
    Ready at the commit the task pushed. The key is registered for the sandbox user, as a user adds it under User
    settings > SSH public keys (Azure DevOps has no deploy keys)."""
    sandbox, endpoint = ssh_job.sandbox, ssh_job.endpoint
    private, public = encrypted_key()
    sandbox.world.add_ssh_key(sandbox.user, public)
    file_id, ticket = sandbox.add_secure_file("flux-ssh.key", private)

    run = ssh_job.agent.run(
        step(
            sandbox,
            endpoint,
            **ssh_inputs(sandbox, file_id, sshKeyPassphrase=PASSPHRASE, sshRepositoryUrl=sandbox.ssh_url),
        ),
        endpoints=[endpoint],
        secure_files={file_id: ("flux-ssh.key", ticket)},
        secret_variables={"sshKeyPassphrase": PASSPHRASE},
    )

    secrets = (sandbox.job_token, PASSPHRASE, ticket, ssh_job.cluster_token)
    assert_clean_result(run, ("Succeeded", "changed"), *secrets, discovered=(private.decode(),))
    sync_commit = run.outputs["syncCommit"]
    assert sync_commit and sync_commit == head_of_main(sandbox)
    secret = secret_of(sandbox)
    assert secret is not None
    assert sorted(secret) == ["identity", "identity.pub", "known_hosts", "password"]
    assert public_line_of(secret["identity"], PASSPHRASE) == public
    assert secret["password"] == PASSPHRASE  # the key's passphrase, for source-controller to open it
    assert secret["known_hosts"].strip() == sandbox.known_hosts_path.read_text(encoding="utf-8").strip()
    assert sandbox.job_token not in secret.values()
    source = git_repository(sandbox)
    assert source["spec"]["url"] == sandbox.ssh_url
    assert ready_revision(source) == f"main@sha1:{sync_commit}"


def test_rotate_credentials_replaces_the_ssh_key_and_flux_fetches_with_the_new_one(ssh_job: SshJob) -> None:
    """After the SSH bootstrap the user replaced the key: the old one is no longer registered, the new one has no
    passphrase. rotateCredentials tests the new key against the GitRepository's own SSH URL (sshRepositoryUrl left
    empty), stores it, drops the old key's `password` (source-controller would try to open the new key with it),
    and waits for Flux to fetch again: Ready at the head of main, the reconcile request handled."""
    sandbox, endpoint = ssh_job.sandbox, ssh_job.endpoint
    before = secret_of(sandbox)
    assert before is not None and "identity" in before, "runs after the SSH bootstrap"
    assert sandbox.world.remove_ssh_key(sandbox.user, public_line_of(before["identity"], PASSPHRASE))
    private, public = rsa_key(None)
    sandbox.world.add_ssh_key(sandbox.user, public)
    file_id, ticket = sandbox.add_secure_file("flux-ssh-2027.key", private)

    run = ssh_job.agent.run(
        step(sandbox, endpoint, action="rotateCredentials", **ssh_inputs(sandbox, file_id)),
        endpoints=[endpoint],
        secure_files={file_id: ("flux-ssh-2027.key", ticket)},
    )

    secrets = (sandbox.job_token, ticket, ssh_job.cluster_token)
    assert_clean_result(run, ("Succeeded", "rotated"), *secrets, discovered=(private.decode(), before["identity"]))
    assert "rotated" in run.summary
    after = secret_of(sandbox)
    assert after is not None
    assert sorted(after) == ["identity", "identity.pub", "known_hosts"]
    assert public_line_of(after["identity"]) == public
    assert after["known_hosts"].strip() == sandbox.known_hosts_path.read_text(encoding="utf-8").strip()
    source = git_repository(sandbox)
    assert source["spec"]["url"] == sandbox.ssh_url  # rotateCredentials keeps the GitRepository's URL
    requested = source["metadata"]["annotations"]["reconcile.fluxcd.io/requestedAt"]
    assert source["status"]["lastHandledReconcileAt"] == requested
    assert ready_revision(source) == f"main@sha1:{head_of_main(sandbox)}"
