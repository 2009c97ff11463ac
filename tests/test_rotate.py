"""`flux-azdo rotate-credentials` against the sandbox: Flux bootstrapped with one credential, then given another.

The proof that the cluster uses the new credential is the simulated source-controller: it fetches with whatever
the Secret holds (a PAT the sandbox checks, or an SSH key the sandbox's sshd checks), and the command waits for
it to be Ready at the branch's head after the reconcile it requested. The command runs as its own Kubernetes
user, so "nothing was written" can be counted at the API server.
"""

from __future__ import annotations

import datetime
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flux_azdo import rotate
from flux_azdo.cluster.client import Cluster
from flux_azdo.cluster.secrets import apply_source_secret, read_source_secret
from flux_azdo.cluster.waits import WaitFailed, wait_for_source
from flux_azdo.manifests.sourcesecret import token_secret
from flux_azdo.sandbox.keys import write_rsa_key
from flux_azdo.sandbox.runtime import FULL_SCOPES, Sandbox
from support import cli_runs
from support.cli_runs import SSH_PATCH_KUSTOMIZATION, admin_cluster, bootstrap_argv, run_cli, user_kubeconfig, writes_by
from support.isolation import CREDENTIAL_VARIABLES, isolate_environment
from support.seeding import seed

USER = "rotator"
GIT_REPOSITORY = ("source.toolkit.fluxcd.io/v1", "GitRepository", "flux-system", "flux-system")


@pytest.fixture(autouse=True)
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No credential or kubeconfig from the machine, an isolated HOME, stdin not a terminal."""
    isolate_environment(monkeypatch, tmp_path / "home", unset=(*CREDENTIAL_VARIABLES, "FLUX_SYSTEM_NAMESPACE"))


@pytest.fixture
def kubeconfig(cluster_sandbox: Sandbox, tmp_path: Path) -> Path:
    """A kubeconfig of a user of its own with every right: the requests it makes are ours alone."""
    return user_kubeconfig(cluster_sandbox, USER, tmp_path / "rotator.kubeconfig")


@pytest.fixture
def cluster(cluster_sandbox: Sandbox) -> Iterator[Cluster]:
    """A separate connection (the sandbox's admin) for looking at the cluster afterwards."""
    with admin_cluster(cluster_sandbox) as connection:
        yield connection


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    return run_cli(capsys, *argv)


def bootstrap(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    sandbox: Sandbox,
    kubeconfig: Path,
    sample_file: Path,
    *extra: str,
    url: str | None = None,
    env: dict[str, str] | None = None,
) -> None:
    with monkeypatch.context() as scoped:
        for name, value in (env or {"GIT_PASSWORD": sandbox.pat}).items():
            scoped.setenv(name, value)
        code, _, err = run(capsys, *bootstrap_argv("bootstrap", sandbox, kubeconfig, sample_file, *extra, url=url))
    assert code == 0, err


def rotate_credentials(
    capsys: pytest.CaptureFixture[str], sandbox: Sandbox, kubeconfig: Path, *extra: str
) -> tuple[int, str, str]:
    return run(capsys, "rotate-credentials", "--kubeconfig", str(kubeconfig), "--allow-insecure-http", *extra)


def head(sandbox: Sandbox) -> str:
    return cli_runs.head(sandbox, check=True)


def writes(sandbox: Sandbox) -> list[str]:
    return writes_by(sandbox, USER)


def ready(cluster: Cluster) -> dict[str, str]:
    repository = cluster.get(*GIT_REPOSITORY)
    assert repository is not None
    return next(c for c in repository["status"]["conditions"] if c["type"] == "Ready")


def fetch_now(sandbox: Sandbox, cluster: Cluster) -> None:
    """Make source-controller fetch now, and wait for its verdict (WaitFailed when it cannot fetch)."""
    requested = rotate.request_reconcile(cluster, "flux-system", "flux-system")
    deadline = time.monotonic() + 30
    rotate.wait_until_handled(cluster, "flux-system", "flux-system", requested, deadline)
    revision = f"main@sha1:{head(sandbox)}"
    wait_for_source(cluster, "flux-system", "flux-system", revision, deadline, requested_at=requested)


def break_the_stored_pat(sandbox: Sandbox, cluster: Cluster) -> None:
    """The PAT in the cluster expires: source-controller's next fetch fails (Ready=False)."""
    expired = sandbox.world.issue_pat(
        sandbox.user, FULL_SCOPES, expires=datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
    )
    apply_source_secret(cluster, token_secret("flux-system", "flux-system", expired))
    with pytest.raises(WaitFailed, match="expired"):
        fetch_now(sandbox, cluster)
    assert ready(cluster)["status"] == "False"


def test_a_second_pat_replaces_an_expired_one_and_the_gitrepository_is_ready_again(
    cluster_sandbox: Sandbox,
    kubeconfig: Path,
    cluster: Cluster,
    sample_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bootstrap(capsys, monkeypatch, cluster_sandbox, kubeconfig, sample_file)
    break_the_stored_pat(cluster_sandbox, cluster)
    second = cluster_sandbox.world.issue_pat(cluster_sandbox.user, FULL_SCOPES)
    monkeypatch.setenv("GIT_PASSWORD", second)

    code, out, err = rotate_credentials(capsys, cluster_sandbox, kubeconfig)

    assert code == 0, err
    sha = head(cluster_sandbox)
    assert err.splitlines() == [
        f'► checking the new credential against "{cluster_sandbox.repo_url}"',
        f'✔ the new credential reads branch "main" ({sha})',
        '► applying source secret "flux-system/flux-system"',
        "✔ stored the new credential in source secret",
        '► requesting a reconcile of GitRepository "flux-system/flux-system"',
        '◎ waiting for GitRepository "flux-system/flux-system" to be reconciled',
        "✔ GitRepository reconciled successfully",
        "✔ credentials rotated",
    ]
    assert out == ""
    assert second not in err
    assert read_source_secret(cluster, "flux-system", "flux-system") == {"username": "git", "password": second}
    repository = cluster.get(*GIT_REPOSITORY)
    assert repository is not None
    assert ready(cluster)["status"] == "True"
    assert repository["status"]["artifact"]["revision"] == f"main@sha1:{sha}"
    requested = repository["metadata"]["annotations"]["reconcile.fluxcd.io/requestedAt"]
    assert repository["status"]["lastHandledReconcileAt"] == requested

    # The same PAT again: the Secret is not written; the reconcile is still asked for and waited on.
    assert cluster_sandbox.kube is not None
    cluster_sandbox.kube.reset_requests()
    code, _, err = rotate_credentials(capsys, cluster_sandbox, kubeconfig)
    assert code == 0, err
    assert "✔ source secret already holds this credential" in err.splitlines()
    assert writes(cluster_sandbox) == ["patch gitrepositories flux-system/flux-system"]


def test_a_pat_that_does_not_work_is_refused_before_anything_is_written(
    cluster_sandbox: Sandbox,
    kubeconfig: Path,
    cluster: Cluster,
    sample_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bootstrap(capsys, monkeypatch, cluster_sandbox, kubeconfig, sample_file)
    assert cluster_sandbox.kube is not None
    cluster_sandbox.kube.reset_requests()
    monkeypatch.setenv("GIT_PASSWORD", "this-is-not-a-valid-pat-0123456789")

    code, _, err = rotate_credentials(capsys, cluster_sandbox, kubeconfig)

    assert code == 1
    last = err.splitlines()[-1]
    assert last.startswith(
        f"✗ the new credential cannot read {cluster_sandbox.repo_url}, so the cluster could not either"
    )
    assert "applying source secret" not in err
    assert "this-is-not-a-valid-pat-0123456789" not in err
    assert writes(cluster_sandbox) == []
    assert read_source_secret(cluster, "flux-system", "flux-system") == {
        "username": "git",
        "password": cluster_sandbox.pat,
    }


@pytest.mark.parametrize("as_job_variable", [True, False], ids=["SYSTEM_ACCESSTOKEN", "identity"])
def test_the_job_token_is_refused_before_anything_is_written(
    as_job_variable: bool,
    cluster_sandbox: Sandbox,
    kubeconfig: Path,
    cluster: Cluster,
    sample_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Known by where it came from, or only by whose it is (the build service): it works for git, and still
    must not be stored."""
    bootstrap(capsys, monkeypatch, cluster_sandbox, kubeconfig, sample_file)
    assert cluster_sandbox.kube is not None
    cluster_sandbox.kube.reset_requests()
    monkeypatch.setenv("GIT_PASSWORD", cluster_sandbox.job_token)
    if as_job_variable:
        monkeypatch.setenv("SYSTEM_ACCESSTOKEN", cluster_sandbox.job_token)

    code, out, err = rotate_credentials(capsys, cluster_sandbox, kubeconfig)

    assert code == 1
    last = err.splitlines()[-1]
    if as_job_variable:
        assert last.startswith("✗ the pipeline's job token (from GIT_PASSWORD) cannot be stored in the cluster")
        assert "checking the new credential" not in err
    else:
        assert "a pipeline's build service: it is a job token, which stops working when its job ends" in last
    assert "--provider azure" in last
    assert cluster_sandbox.job_token not in out + err
    assert writes(cluster_sandbox) == []
    secret = read_source_secret(cluster, "flux-system", "flux-system")
    assert secret is not None and secret["password"] == cluster_sandbox.pat


def test_the_gitrepository_decides_repository_and_secret_and_flags_that_disagree_are_refused(
    cluster_sandbox: Sandbox,
    kubeconfig: Path,
    sample_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bootstrap(capsys, monkeypatch, cluster_sandbox, kubeconfig, sample_file)
    assert cluster_sandbox.kube is not None
    cluster_sandbox.kube.reset_requests()
    monkeypatch.setenv("GIT_PASSWORD", cluster_sandbox.pat)
    other = cluster_sandbox.repo_url.rsplit("/", 1)[0] + "/other"

    cases = {
        ("--url", other): f"✗ GitRepository flux-system/flux-system fetches {cluster_sandbox.repo_url}, not {other}",
        ("--secret-name", "git-credentials"): "✗ GitRepository flux-system/flux-system reads Secret flux-system, "
        "not git-credentials: drop --secret-name, or pass --secret-name flux-system",
        ("--name", "apps"): "✗ there is no GitRepository flux-system/apps: pass the --namespace and --name",
    }
    for flags, expected in cases.items():
        code, _, err = rotate_credentials(capsys, cluster_sandbox, kubeconfig, *flags)
        assert code == 1, flags
        assert err.splitlines()[-1].startswith(expected), err

    code, _, err = rotate_credentials(capsys, cluster_sandbox, kubeconfig, "--url", cluster_sandbox.repo_url + "/")
    assert code == 0, err
    assert writes(cluster_sandbox) == ["patch gitrepositories flux-system/flux-system"]


def test_a_new_ssh_key_replaces_an_encrypted_one_and_the_old_passphrase_goes_with_it(
    cluster_sandbox: Sandbox,
    kubeconfig: Path,
    cluster: Cluster,
    sample_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """A `password` key left from the old, encrypted key would make source-controller try to decrypt the new,
    unencrypted one with it. After the rotation the old key is removed from the user's keys: the fetch that
    follows can only succeed with the new one."""
    if cluster_sandbox.ssh_url is None or cluster_sandbox.ssh_key_path is None or shutil.which("ssh-keygen") is None:
        pytest.skip("needs OpenSSH (sshd and ssh-keygen)")
    seed(cluster_sandbox, {"clusters/sandbox/flux-system/kustomization.yaml": SSH_PATCH_KUSTOMIZATION}, "SSH patch")
    old_key = tmp_path / "old_id_rsa"
    shutil.copy(cluster_sandbox.ssh_key_path, old_key)
    old_key.chmod(0o600)
    subprocess.run(["ssh-keygen", "-q", "-p", "-f", str(old_key), "-P", "", "-N", "old passphrase"], check=True)
    ssh_flags = ("--ssh-known-hosts", str(cluster_sandbox.known_hosts_path))
    bootstrap(
        capsys,
        monkeypatch,
        cluster_sandbox,
        kubeconfig,
        sample_file,
        "--private-key-file",
        str(old_key),
        "--organization",
        cluster_sandbox.org_url,
        *ssh_flags,
        url=cluster_sandbox.ssh_url,
        env={"AZURE_DEVOPS_EXT_PAT": cluster_sandbox.pat, "GIT_PASSWORD": "old passphrase"},
    )
    before = read_source_secret(cluster, "flux-system", "flux-system")
    assert before is not None and before["password"] == "old passphrase"

    new_key = tmp_path / "new_id_rsa"
    write_rsa_key(new_key, comment="rotated")
    cluster_sandbox.world.add_ssh_key(cluster_sandbox.user, Path(f"{new_key}.pub").read_text(encoding="utf-8").strip())
    code, _, err = rotate_credentials(
        capsys, cluster_sandbox, kubeconfig, "--private-key-file", str(new_key), *ssh_flags
    )

    assert code == 0, err
    assert "✔ stored the new credential in source secret (removed the old password)" in err.splitlines()
    after = read_source_secret(cluster, "flux-system", "flux-system")
    assert after is not None
    assert after["identity"] == new_key.read_text(encoding="utf-8")
    assert "password" not in after and "old passphrase" not in err
    assert ready(cluster)["status"] == "True"

    old_public = Path(f"{cluster_sandbox.ssh_key_path}.pub").read_text(encoding="utf-8").strip()
    assert cluster_sandbox.world.remove_ssh_key(cluster_sandbox.user, old_public)
    fetch_now(cluster_sandbox, cluster)
