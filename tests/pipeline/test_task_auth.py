"""The cluster's own Git credential in `FluxBootstrap@1`: an SSH key from a secure file, and workload identity.

The push always goes over https with the job token; what differs is what the cluster gets. The SSH case runs
`plan` (this machine may have no sshd for the Flux simulator to fetch over SSH): it proves the secure file is
downloaded with the job token, the encrypted key opened with its passphrase, and the Secret planned, and that
the file is gone afterwards. Workload identity runs a whole bootstrap: no Secret, the identity's client id in the
manifests, and Flux syncing with the identity's token.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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

PASSPHRASE = "correct horse battery staple"
SSH_URL = "ssh://git@127.0.0.1:22222/sandbox-org/platform/fleet-infra"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with pipeline_sandbox(tmp_path_factory.mktemp("sandbox"), flux=True, deployment_ready_after=0.0) as running:
        yield running


def step(sandbox: Sandbox, endpoint: Endpoint, **inputs: object) -> dict[str, object]:
    defaults = {"path": "clusters/sandbox", "fluxVersion": SAMPLE_VERSION, "timeout": "90s"}
    return task_step(sandbox, endpoint, **{**defaults, **inputs})


def encrypted_key() -> tuple[bytes, str]:
    """An RSA key (what Azure DevOps takes) encrypted with PASSPHRASE, and its public line."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.BestAvailableEncryption(PASSPHRASE.encode()),
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, public.decode()


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
