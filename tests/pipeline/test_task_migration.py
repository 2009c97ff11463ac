"""Switching a cluster's credential by running `FluxBootstrap@1` again with another `clusterAuth`.

One cluster, its tests in order: a bootstrap with a PAT, the same step with workload identity (the migration users
ask for most), then with an SSH key from a secure file. The kustomization.yaml each run leaves is still exactly as
flux-azdo wrote it, so the next run rewrites it for its own mode (the workload identity patch in, then out for the
SSH host key algorithms patch) instead of stopping on "your kustomization.yaml lacks ...". The PAT stays in its
Secret when workload identity takes over: never deleted, one warning in the task's words says so and how. The
cluster runs OpenSSH's sshd for the last step (skipped without it, as `running_sandbox(ssh=True)` skips).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
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
    pipeline_sandbox,
    task_step,
)

PATH = "clusters/sandbox"
KUSTOMIZATION = f"{PATH}/flux-system/kustomization.yaml"
SOURCE_API = "source.toolkit.fluxcd.io/v1"
HOSTKEY_PATCH = "--ssh-hostkey-algos=rsa-sha2-512,rsa-sha2-256"
PASSPHRASE = "correct horse battery staple"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    directory = tmp_path_factory.mktemp("sandbox")
    with pipeline_sandbox(directory, flux=True, deployment_ready_after=0.0, ssh=True) as running:
        yield running


@pytest.fixture(scope="module")
def read_only_pat(sandbox: Sandbox) -> str:
    """The PAT the first run stores in the cluster: Code (Read) only."""
    return sandbox.world.issue_pat(sandbox.user, ("vso.code",))


def step(sandbox: Sandbox, endpoint: Endpoint, **inputs: object) -> dict[str, object]:
    defaults = {"path": PATH, "fluxVersion": SAMPLE_VERSION, "timeout": "90s"}
    return task_step(sandbox, endpoint, **{**defaults, **inputs})


def git_show(sandbox: Sandbox, what: str) -> str:
    """`git show` in the sandbox repository ("" when it is not there)."""
    return subprocess.run(
        ["git", "--git-dir", str(sandbox.repository.git_dir), "show", what],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1"},
    ).stdout


def head_of_main(sandbox: Sandbox) -> str:
    return git_show(sandbox, "refs/heads/main").split("\n", 1)[0].removeprefix("commit ").strip()


def secret_of(sandbox: Sandbox) -> dict[str, str] | None:
    with Cluster(ClusterAccess(sandbox.kubeconfig_path)) as cluster:
        return read_source_secret(cluster, "flux-system", "flux-system")


def git_repository(sandbox: Sandbox) -> dict[str, Any]:
    with Cluster(ClusterAccess(sandbox.kubeconfig_path)) as cluster:
        found = cluster.get(SOURCE_API, "GitRepository", "flux-system", "flux-system")
    assert found is not None
    return found


def ready_revision(source: dict[str, Any]) -> str | None:
    status = source.get("status") or {}
    ready = [c for c in status.get("conditions") or () if c.get("type") == "Ready"]
    if not ready or ready[0].get("status") != "True":
        return None
    return str((status.get("artifact") or {}).get("revision") or "")


def test_a_pat_bootstrap_stores_the_pat_and_the_plain_kustomization(
    sandbox: Sandbox, agent: SimulatedAgent, endpoint: Endpoint, cluster_token: str, read_only_pat: str
) -> None:
    run = agent.run(
        step(sandbox, endpoint, clusterAuth="pat", clusterPat=read_only_pat),
        endpoints=[endpoint],
        secret_variables={"clusterPat": read_only_pat},
    )

    assert_clean_result(run, ("Succeeded", "changed"), sandbox.job_token, read_only_pat, cluster_token)
    assert "patches" not in git_show(sandbox, f"refs/heads/main:{KUSTOMIZATION}")
    assert secret_of(sandbox) == {"username": "git", "password": read_only_pat}


def test_the_same_step_with_workload_identity_patches_our_kustomization_and_keeps_the_old_secret(
    sandbox: Sandbox, agent: SimulatedAgent, endpoint: Endpoint, cluster_token: str, read_only_pat: str
) -> None:
    """The kustomization.yaml is flux-azdo's, untouched: the run rewrites it with the workload identity patch; the
    GitRepository moves to provider azure and is Ready at the pushed commit; the PAT is still in the Secret, and
    the log says so once, in the task's words (clusterAuth, not --provider)."""
    repo = repository_token(sandbox.project.id, sandbox.repository.id)
    sandbox.world.allow(sandbox.workload_identity, repo, int(GitPermission.GENERIC_READ))

    run = agent.run(
        step(sandbox, endpoint, clusterAuth="workloadIdentity", workloadIdentityClientId=sandbox.workload_client_id),
        endpoints=[endpoint],
    )

    # The PAT is not this job's secret (nothing registers it), and it must not show up either.
    assert_clean_result(run, ("Succeeded", "changed"), sandbox.job_token, cluster_token, discovered=(read_only_pat,))
    sync_commit = run.outputs["syncCommit"]
    assert sync_commit and sync_commit == head_of_main(sandbox)
    kustomization = git_show(sandbox, f"refs/heads/main:{KUSTOMIZATION}")
    assert f"azure.workload.identity/client-id: {sandbox.workload_client_id}\n" in kustomization
    assert 'azure.workload.identity/use: "true"' in kustomization
    assert "lacks" not in run.stdout
    source = git_repository(sandbox)
    assert source["spec"]["provider"] == "azure" and "secretRef" not in source["spec"]
    assert ready_revision(source) == f"main@sha1:{sync_commit}"
    warnings = [message for kind, message in run.issues if kind == "warning" and "still holds" in message]
    assert len(warnings) == 1
    assert warnings[0].startswith('Secret "flux-system/flux-system" still holds a token from the previous bootstrap')
    assert "(clusterAuth workloadIdentity)" in warnings[0] and "--provider" not in warnings[0]
    assert "kubectl -n flux-system delete secret flux-system" in warnings[0]
    assert secret_of(sandbox) == {"username": "git", "password": read_only_pat}  # never deleted


def test_then_an_ssh_key_replaces_the_workload_identity_patch_with_the_host_key_patch(
    sandbox: Sandbox, agent: SimulatedAgent, endpoint: Endpoint, cluster_token: str
) -> None:
    """From workload identity to an SSH key from a secure file: our kustomization.yaml loses the workload identity
    patch and gets the SSH host key algorithms patch Azure DevOps needs; Flux fetches over SSH at the pushed commit.
    No warning about the Secret: this run writes the key into it.

    The key has a passphrase: the Secret's update merges the new keys into the old ones, as Flux's does, so the
    PAT of the first run would otherwise stay in `password` and source-controller would try to open the key with
    it ("x509: decryption password incorrect"); the passphrase takes its place."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    encryption = serialization.BestAvailableEncryption(PASSPHRASE.encode())
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, encryption)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    sandbox.world.add_ssh_key(sandbox.user, public.decode())
    file_id, ticket = sandbox.add_secure_file("flux-ssh.key", private)

    run = agent.run(
        step(
            sandbox,
            endpoint,
            clusterAuth="sshKey",
            sshKey=file_id,
            sshKnownHosts=sandbox.known_hosts_path.read_text(encoding="utf-8"),
            sshKeyPassphrase=PASSPHRASE,
            sshRepositoryUrl=sandbox.ssh_url,
        ),
        endpoints=[endpoint],
        secure_files={file_id: ("flux-ssh.key", ticket)},
        secret_variables={"sshKeyPassphrase": PASSPHRASE},
    )

    secrets = (sandbox.job_token, PASSPHRASE, ticket, cluster_token)
    assert_clean_result(run, ("Succeeded", "changed"), *secrets, discovered=(private.decode(),))
    sync_commit = run.outputs["syncCommit"]
    kustomization = git_show(sandbox, f"refs/heads/main:{KUSTOMIZATION}")
    assert HOSTKEY_PATCH in kustomization and "azure.workload.identity" not in kustomization
    assert not [message for kind, message in run.issues if "still holds" in message]
    source = git_repository(sandbox)
    assert source["spec"]["url"] == sandbox.ssh_url and source["spec"].get("provider", "generic") == "generic"
    assert ready_revision(source) == f"main@sha1:{sync_commit}"
    secret = secret_of(sandbox)
    assert secret is not None and "identity" in secret and secret["password"] == PASSPHRASE
