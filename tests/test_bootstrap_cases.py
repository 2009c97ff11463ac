"""More `flux-azdo bootstrap` cases end to end against the sandbox: workload identity, SSH with a passphrase,
credentials the cluster cannot use, and concurrent writers.

Driven as tests/test_bootstrap.py drives the command (`cli.main`, its own Kubernetes user so the simulator's
writes are never counted as ours). Where the command line cannot set the scene, `flux_azdo.bootstrap.bootstrap`
is called with options the test builds, as the pipeline task will call it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from flux_azdo.azdo.access import AccessOptions, preflight_request
from flux_azdo.bootstrap import BootstrapFailed, BootstrapOptions, Deadline, bootstrap
from flux_azdo.bootstrap_steps.health import IncludesOurs
from flux_azdo.cluster.client import Cluster, ClusterAccess
from flux_azdo.cluster.secrets import read_source_secret
from flux_azdo.git import Change, Workspace
from flux_azdo.manifests.install import InstallOptions
from flux_azdo.manifests.sourcesecret import token_secret
from flux_azdo.manifests.sync import SyncOptions
from flux_azdo.sandbox.azure_devops import security
from flux_azdo.sandbox.runtime import FULL_SCOPES, Sandbox
from support.azdo_world import GitCli
from support.cli_runs import admin_cluster, bootstrap_argv, git, head, run_cli, user_kubeconfig, writes_by
from support.isolation import NotATerminal, isolate_environment
from support.sandboxes import running_sandbox

BOOTSTRAPPER = "bootstrapper"
PATH = "clusters/sandbox"
SOURCE_API = "source.toolkit.fluxcd.io/v1"
HOSTKEY_PATCH = "--ssh-hostkey-algos=rsa-sha2-512,rsa-sha2-256"
TIMEOUT_MESSAGE = "did not finish within --timeout"


@pytest.fixture(autouse=True)
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No credential or kubeconfig from the machine running the tests, an isolated HOME for git and kubectl."""
    isolate_environment(monkeypatch, tmp_path / "home")


def bootstrapper_kubeconfig(sandbox: Sandbox, path: Path) -> Path:
    """A kubeconfig of a user of its own with every right: the requests it makes are ours alone."""
    return user_kubeconfig(sandbox, BOOTSTRAPPER, path)


@pytest.fixture
def kubeconfig(cluster_sandbox: Sandbox, tmp_path: Path) -> Path:
    return bootstrapper_kubeconfig(cluster_sandbox, tmp_path / "bootstrapper.kubeconfig")


@pytest.fixture
def cluster(cluster_sandbox: Sandbox) -> Iterator[Cluster]:
    """A separate connection (the sandbox's admin) for looking at the cluster afterwards."""
    with admin_cluster(cluster_sandbox) as connection:
        yield connection


def run(
    capsys: pytest.CaptureFixture[str], sandbox: Sandbox, kubeconfig: Path, sample_file: Path, *extra: str
) -> tuple[int, str, str]:
    """One `flux-azdo bootstrap`; flags in `extra` come last, so they override the defaults (argparse keeps the
    last); `--url` defaults to the sandbox's http clone URL."""
    return run_cli(capsys, *bootstrap_argv("bootstrap", sandbox, kubeconfig, sample_file, *extra, path=PATH))


def ready_condition(obj: dict[str, object] | None) -> dict[str, str]:
    assert obj is not None
    status = obj.get("status")
    assert isinstance(status, dict)
    return next(c for c in status.get("conditions", ()) if c["type"] == "Ready")


def our_writes(sandbox: Sandbox) -> list[str]:
    return writes_by(sandbox, BOOTSTRAPPER)


# ----- workload identity ---------------------------------------------------------------------------------------


def test_workload_identity_end_to_end_stores_no_secret_and_flux_fetches_with_the_identitys_token(
    cluster_sandbox: Sandbox,
    kubeconfig: Path,
    cluster: Cluster,
    sample_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The sandbox's Azure DevOps runs on 127.0.0.1, as an Azure DevOps Server would on its own host: its
    `/_git/` URL takes --provider azure. The PAT pushes; the cluster gets no Secret, and source-controller's Pod
    gets the identity from the patched ServiceAccount and Deployment through the workload identity webhook."""
    sandbox = cluster_sandbox
    # The managed identity reads the repository (as a project reader it already may; said here explicitly).
    world = sandbox.world
    world.allow(
        sandbox.workload_identity,
        security.repository_token(sandbox.project.id, sandbox.repository.id),
        security.GitPermission.GENERIC_READ,
    )
    monkeypatch.setenv("GIT_PASSWORD", sandbox.pat)

    code, out, err = run(
        capsys,
        sandbox,
        kubeconfig,
        sample_file,
        "--provider",
        "azure",
        "--azure-client-id",
        sandbox.workload_client_id,
    )

    assert code == 0, err
    lines = err.splitlines()
    assert "✔ no source secret: source-controller signs in with workload identity (--provider azure)" in lines
    assert lines[-1] == "✔ all components are healthy"
    assert sandbox.pat not in out + err
    kustomization = git(sandbox, "show", f"refs/heads/main:{PATH}/flux-system/kustomization.yaml")
    assert f"azure.workload.identity/client-id: {sandbox.workload_client_id}" in kustomization

    assert read_source_secret(cluster, "flux-system", "flux-system") is None
    repository = cluster.get(SOURCE_API, "GitRepository", "flux-system", "flux-system")
    assert repository is not None
    assert repository["spec"]["provider"] == "azure" and "secretRef" not in repository["spec"]
    assert repository["spec"]["url"] == sandbox.repo_url
    assert ready_condition(repository)["status"] == "True"
    assert repository["status"]["artifact"]["revision"] == f"main@sha1:{head(sandbox)}"
    account = cluster.get("v1", "ServiceAccount", "source-controller", "flux-system")
    assert account is not None
    assert account["metadata"]["annotations"]["azure.workload.identity/client-id"] == sandbox.workload_client_id


def test_a_pat_bootstrap_moves_to_workload_identity_and_the_old_secret_is_reported_not_deleted(
    cluster_sandbox: Sandbox,
    kubeconfig: Path,
    cluster: Cluster,
    sample_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The migration users ask for most: bootstrapped with a PAT, re-run with --provider azure. The
    kustomization.yaml is still as the first run wrote it, so it is ours and gets the workload identity patch;
    the PAT stays in its Secret (deleting it is the user's call, once Flux fetches without it), and one warning
    says so. Then back to the PAT after the user changed the file: theirs now, kept as it is."""
    sandbox = cluster_sandbox
    sandbox.world.allow(
        sandbox.workload_identity,
        security.repository_token(sandbox.project.id, sandbox.repository.id),
        security.GitPermission.GENERIC_READ,
    )
    monkeypatch.setenv("GIT_PASSWORD", sandbox.pat)
    file = f"refs/heads/main:{PATH}/flux-system/kustomization.yaml"
    code, _, err = run(capsys, sandbox, kubeconfig, sample_file)
    assert code == 0, err
    plain = git(sandbox, "show", file)
    assert "patches" not in plain and read_source_secret(cluster, "flux-system", "flux-system") is not None

    azure = ("--provider", "azure", "--azure-client-id", sandbox.workload_client_id)
    code, out, err = run(capsys, sandbox, kubeconfig, sample_file, *azure)

    assert code == 0, err
    assert sandbox.pat not in out + err
    kustomization = git(sandbox, "show", file)
    assert f"azure.workload.identity/client-id: {sandbox.workload_client_id}" in kustomization
    warnings = [line for line in err.splitlines() if line.startswith("⚠️") and "Secret" in line]
    assert warnings == [
        '⚠️  Secret "flux-system/flux-system" still holds a token from the previous bootstrap: source-controller no '
        "longer uses it (--provider azure), but anyone who may read Secrets in the cluster can. Once the "
        "GitRepository is Ready with workload identity, delete it (kubectl -n flux-system delete secret "
        "flux-system) and revoke the credential in Azure DevOps"
    ]
    assert read_source_secret(cluster, "flux-system", "flux-system") == {"username": "git", "password": sandbox.pat}
    repository = cluster.get(SOURCE_API, "GitRepository", "flux-system", "flux-system")
    assert repository is not None
    assert repository["spec"]["provider"] == "azure" and "secretRef" not in repository["spec"]
    assert ready_condition(repository)["status"] == "True"
    assert repository["status"]["artifact"]["revision"] == f"main@sha1:{head(sandbox)}"
    account = cluster.get("v1", "ServiceAccount", "source-controller", "flux-system")
    assert account is not None
    assert account["metadata"]["annotations"]["azure.workload.identity/client-id"] == sandbox.workload_client_id

    # Back to the PAT, after the user put one comment in the file: theirs now, kept byte for byte with its patch.
    request = preflight_request(
        AccessOptions(url=sandbox.repo_url, allow_insecure_http=True), environ={"GIT_PASSWORD": sandbox.pat}
    )
    mine = "# mine\n" + kustomization + "\n"
    with Workspace(sandbox.repo_url, "main", request.git_auth, temp_parent=tmp_path / "work") as workspace:
        workspace.publish(lambda root: [Change("mine", {f"{PATH}/flux-system/kustomization.yaml": mine})])
    code, _, err = run(capsys, sandbox, kubeconfig, sample_file)
    assert code == 0, err
    assert git(sandbox, "show", file) + "\n" == mine  # git() strips the output
    assert read_source_secret(cluster, "flux-system", "flux-system") == {"username": "git", "password": sandbox.pat}


def test_workload_identity_without_read_on_the_repository_fails_fast_with_the_controllers_message(
    cluster_sandbox: Sandbox,
    kubeconfig: Path,
    cluster: Cluster,
    sample_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The identity signs in but may not read: source-controller's Ready=False ends the wait at once, with its
    message and the health report, long before --timeout."""
    sandbox = cluster_sandbox
    sandbox.world.deny(
        sandbox.workload_identity,
        security.repository_token(sandbox.project.id, sandbox.repository.id),
        security.GitPermission.GENERIC_READ,
    )
    monkeypatch.setenv("GIT_PASSWORD", sandbox.pat)

    code, _, err = run(
        capsys,
        sandbox,
        kubeconfig,
        sample_file,
        "--provider",
        "azure",
        "--azure-client-id",
        sandbox.workload_client_id,
        "--timeout",
        "5m",
    )

    assert code == 1
    repository = cluster.get(SOURCE_API, "GitRepository", "flux-system", "flux-system")
    condition = ready_condition(repository)
    assert condition["status"] == "False"
    assert condition["message"] in err, "the controller's own message is shown"
    lines = err.splitlines()
    assert '◎ waiting for GitRepository "flux-system/flux-system" to be reconciled' in lines
    assert "✔ GitRepository reconciled successfully" not in lines
    assert lines[-1].startswith("✗ bootstrap failed: the GitRepository health check did not pass")
    assert TIMEOUT_MESSAGE not in err


# ----- SSH with a passphrase -----------------------------------------------------------------------------------


def test_ssh_with_a_passphrase_protected_rsa_key_and_the_automatic_host_key_patch(
    cluster_sandbox: Sandbox,
    kubeconfig: Path,
    cluster: Cluster,
    sample_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No kustomization.yaml of the user's: the new one carries the Azure DevOps SSH patch (the sandbox's sshd
    offers only rsa-sha2 host keys, as Azure DevOps Server does on its own host), so the simulated
    source-controller, which offers only ssh-rsa without the patch, can fetch. The cluster stores the encrypted
    key and its passphrase, as Flux does."""
    sandbox = cluster_sandbox
    if sandbox.ssh_url is None:
        pytest.skip("the sandbox's SSH endpoint needs OpenSSH's sshd")
    passphrase = "correct horse battery staple"
    key = tmp_path / "keys" / "id_rsa_protected"
    key.parent.mkdir()
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "rsa", "-b", "3072", "-N", passphrase, "-C", "protected", "-f", str(key)],
        check=True,
        capture_output=True,
    )
    public = Path(f"{key}.pub").read_text(encoding="utf-8").strip()
    sandbox.world.add_ssh_key(sandbox.user, public)
    monkeypatch.setenv("AZURE_DEVOPS_EXT_PAT", sandbox.pat)
    monkeypatch.setattr(sys, "stdin", NotATerminal(passphrase + "\n"))

    code, out, err = run(
        capsys,
        sandbox,
        kubeconfig,
        sample_file,
        "--url",
        sandbox.ssh_url,
        "--private-key-file",
        str(key),
        "--password-stdin",
        "--ssh-known-hosts",
        str(sandbox.known_hosts_path),
        "--organization",
        sandbox.org_url,
    )

    assert code == 0, err
    assert f"✔ public key: {' '.join(public.split()[:2])}" in err.splitlines()
    assert passphrase not in out + err and sandbox.pat not in out + err
    kustomization = git(sandbox, "show", f"refs/heads/main:{PATH}/flux-system/kustomization.yaml")
    assert HOSTKEY_PATCH in kustomization

    deployment = cluster.get("apps/v1", "Deployment", "source-controller", "flux-system")
    assert deployment is not None
    assert HOSTKEY_PATCH in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    repository = cluster.get(SOURCE_API, "GitRepository", "flux-system", "flux-system")
    assert repository is not None and repository["spec"]["url"] == sandbox.ssh_url
    assert repository["status"]["artifact"]["revision"] == f"main@sha1:{head(sandbox)}"
    secret = read_source_secret(cluster, "flux-system", "flux-system")
    assert secret is not None
    assert secret["identity"] == key.read_text(encoding="utf-8")
    assert secret["password"] == passphrase
    assert secret["known_hosts"].strip() == sandbox.known_hosts_path.read_text(encoding="utf-8").strip()


def test_a_pat_bootstrap_moves_to_an_ssh_key_without_passphrase_and_the_pats_keys_go(
    cluster_sandbox: Sandbox,
    kubeconfig: Path,
    cluster: Cluster,
    sample_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Flux's update only adds the new keys: the PAT's `password` would stay and be taken for the new key's
    passphrase ("decryption password incorrect"). Ours removes `username` and `password` in the same update, says
    so, and source-controller fetches over SSH with the key alone."""
    sandbox = cluster_sandbox
    if sandbox.ssh_url is None:
        pytest.skip("the sandbox's SSH endpoint needs OpenSSH's sshd")
    monkeypatch.setenv("GIT_PASSWORD", sandbox.pat)
    code, _, err = run(capsys, sandbox, kubeconfig, sample_file)
    assert code == 0, err
    assert read_source_secret(cluster, "flux-system", "flux-system") == {"username": "git", "password": sandbox.pat}

    key = tmp_path / "keys" / "id_rsa_plain"
    key.parent.mkdir()
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "rsa", "-b", "3072", "-N", "", "-C", "plain", "-f", str(key)],
        check=True,
        capture_output=True,
    )
    sandbox.world.add_ssh_key(sandbox.user, Path(f"{key}.pub").read_text(encoding="utf-8").strip())
    monkeypatch.delenv("GIT_PASSWORD")
    monkeypatch.setenv("AZURE_DEVOPS_EXT_PAT", sandbox.pat)
    ssh = ("--url", sandbox.ssh_url, "--private-key-file", str(key), "--organization", sandbox.org_url)
    known_hosts = ("--ssh-known-hosts", str(sandbox.known_hosts_path))

    code, out, err = run(capsys, sandbox, kubeconfig, sample_file, *ssh, *known_hosts)

    assert code == 0, err
    assert "✔ reconciled source secret (removed the old username, password)" in err.splitlines()
    assert sandbox.pat not in out + err
    secret = read_source_secret(cluster, "flux-system", "flux-system")
    assert secret is not None and sorted(secret) == ["identity", "identity.pub", "known_hosts"]
    assert secret["identity"] == key.read_text(encoding="utf-8")
    repository = cluster.get(SOURCE_API, "GitRepository", "flux-system", "flux-system")
    assert repository is not None and repository["spec"]["url"] == sandbox.ssh_url
    assert ready_condition(repository)["status"] == "True"
    assert repository["status"]["artifact"]["revision"] == f"main@sha1:{head(sandbox)}"


# ----- a credential the cluster cannot use ---------------------------------------------------------------------


class Recorder:
    """A `bootstrap.Reporter` keeping the lines in the order they came, as the terminal would show them."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def action(self, message: str) -> None:
        self.lines.append(f"► {message}")

    def generate(self, message: str) -> None:
        self.lines.append(f"✚ {message}")

    def waiting(self, message: str) -> None:
        self.lines.append(f"◎ {message}")

    def success(self, message: str) -> None:
        self.lines.append(f"✔ {message}")

    def warning(self, message: str) -> None:
        self.lines.append(f"⚠️ {message}")

    def failure(self, message: str) -> None:
        self.lines.append(f"✗ {message}")

    def detail(self, text: str) -> None:
        self.lines.extend(f"    {line}" for line in text.splitlines())


def test_an_expired_pat_stored_in_the_cluster_fails_fast_with_the_controllers_message(
    cluster_sandbox: Sandbox,
    kubeconfig: Path,
    cluster: Cluster,
    sample_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The run's own PAT is good (preflight, clone and pushes work), but the Secret gets one that has expired --
    on the command line both are the same PAT, so the test builds the options itself. source-controller cannot
    fetch; the wait ends with its message at once instead of sitting out the 5 minute --timeout."""
    sandbox = cluster_sandbox
    expired = sandbox.world.issue_pat(sandbox.user, FULL_SCOPES, expires=datetime.now(timezone.utc) - timedelta(days=1))
    request = preflight_request(
        AccessOptions(url=sandbox.repo_url, allow_insecure_http=True), environ={"GIT_PASSWORD": sandbox.pat}
    )
    sync = SyncOptions(url=sandbox.repo_url, path=PATH, allow_insecure_http=True)
    options = BootstrapOptions(
        url=request.url,
        install=InstallOptions(),
        sync=sync,
        manifests=str(sample_file),
        git_auth=request.git_auth,
        api_token=request.token,
        cluster_secret=token_secret(sync.secret_name, sync.namespace, expired),
        identity=None,
        cluster=ClusterAccess(kubeconfig),
        timeout=300.0,
    )
    reporter = Recorder()

    with pytest.raises(BootstrapFailed) as failed:
        bootstrap(options, reporter)

    assert failed.value.message.startswith("bootstrap failed: the GitRepository health check did not pass")
    assert any(line.startswith("✔ preflight checks passed") for line in reporter.lines)
    assert any(line.startswith("► pushing sync manifests") for line in reporter.lines)
    repository = cluster.get(SOURCE_API, "GitRepository", "flux-system", "flux-system")
    condition = ready_condition(repository)
    assert condition["status"] == "False" and "authentication required" in condition["message"]
    failures = [line for line in reporter.lines if line.startswith("✗")]
    assert failures and condition["message"] in failures[0]
    assert not any(TIMEOUT_MESSAGE in line for line in reporter.lines)
    assert expired not in "\n".join(reporter.lines) and sandbox.pat not in "\n".join(reporter.lines)
    result = failed.value.result
    assert result is not None and result.secret == "created"
    assert [h.ready for h in result.health if h.kind == "GitRepository"] == [False]
    assert read_source_secret(cluster, "flux-system", "flux-system") == {"username": "git", "password": expired}


# ----- concurrent writers --------------------------------------------------------------------------------------


def test_two_clusters_bootstrapped_at_the_same_time_into_one_repository_both_land(
    cluster_sandbox: Sandbox,
    kubeconfig: Path,
    sample_file: Path,
    tmp_path: Path,
) -> None:
    """Two people bootstrap two clusters (each its own API server and Flux) into different paths of one
    repository at once, as separate processes: whichever pushes second rebases on the first's commits, both end
    healthy at a revision holding their own files, and no commit is lost. A cluster may first see the other
    run's later commit (which holds ours): that counts, and the run says so (made certain in
    `test_a_later_commit_pushed_on_top_of_ours_before_flux_fetches_counts_as_reconciled`)."""
    sandbox = cluster_sandbox
    with running_sandbox(tmp_path / "second", kube=True, flux=True, deployment_ready_after=0.0) as second:
        second_kubeconfig = bootstrapper_kubeconfig(second, tmp_path / "second.kubeconfig")
        env = {**os.environ, "GIT_PASSWORD": sandbox.pat}
        processes: list[subprocess.Popen[str]] = []
        try:
            for path, config in (("clusters/one", kubeconfig), ("clusters/two", second_kubeconfig)):
                argv = [sys.executable, "-m", "flux_azdo", "bootstrap", "--url", sandbox.repo_url]
                argv += ["--allow-insecure-http", "--manifests", str(sample_file), "--kubeconfig", str(config)]
                argv += ["--path", path, "--timeout", "2m"]
                processes.append(
                    subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                )
            outcomes = [(process.communicate(timeout=180), process.returncode) for process in processes]
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.communicate()

        for ((_, err), code), path in zip(outcomes, ("clusters/one", "clusters/two"), strict=True):
            assert code == 0, err
            lines = err.splitlines()
            assert lines[-1] == "✔ all components are healthy"
            (reconciled,) = [line for line in lines if line.startswith("✔ GitRepository reconciled successfully")]
            if reconciled != "✔ GitRepository reconciled successfully":  # at the other run's later commit
                later = reconciled.removeprefix("✔ GitRepository reconciled successfully (at main@sha1:")
                later = later.removesuffix(", which includes ours)")
                listed = git(sandbox, "ls-tree", "-r", "--name-only", later).splitlines()
                assert f"{path}/flux-system/gotk-sync.yaml" in listed, reconciled
        subjects = git(sandbox, "log", "--format=%s", "refs/heads/main").splitlines()
        assert len(subjects) == 4 and subjects.count("Add Flux sync manifests") == 2
        files = git(sandbox, "ls-tree", "-r", "--name-only", "refs/heads/main").splitlines()
        for path in ("clusters/one", "clusters/two"):
            for name in ("gotk-components.yaml", "gotk-sync.yaml", "kustomization.yaml"):
                assert f"{path}/flux-system/{name}" in files
        for config, path in ((sandbox.kubeconfig_path, "./clusters/one"), (second.kubeconfig_path, "./clusters/two")):
            with Cluster(ClusterAccess(config)) as connection:
                found = connection.get("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "flux-system", "flux-system")
                assert found is not None and found["spec"]["path"] == path
                revision = found["status"]["lastAppliedRevision"]
                sha = revision.removeprefix("main@sha1:")
                assert sha in git(sandbox, "rev-list", "refs/heads/main").splitlines()
                listed = git(sandbox, "ls-tree", "-r", "--name-only", sha).splitlines()
                assert f"{path.removeprefix('./')}/flux-system/gotk-sync.yaml" in listed


class PushesAfterUs(Recorder):
    """A Reporter that, the moment our sync commit is pushed (before the cluster is told about it), has someone
    else push a commit on top of ours: source-controller then only ever sees that later commit."""

    def __init__(self, sandbox: Sandbox, tmp: Path) -> None:
        super().__init__()
        self.sandbox = sandbox
        self.tmp = tmp
        self.ours = ""
        self.theirs = ""

    def action(self, message: str) -> None:
        super().action(message)
        if message.startswith("pushing sync manifests") and not self.theirs:
            self.ours = head(self.sandbox)
            git_cli = GitCli(self.tmp, self.sandbox.pat)
            git_cli.clone(self.sandbox.repo_url, "someone-else")
            self.theirs = git_cli.commit("someone-else", "apps/README.md", "not Flux's\n", "Someone else's change")
            pushed = git_cli.push("someone-else", "HEAD:refs/heads/main")
            assert pushed.returncode == 0, pushed.stderr


def bootstrap_options(sandbox: Sandbox, kubeconfig: Path, sample_file: Path, *, timeout: float) -> BootstrapOptions:
    """What `flux-azdo bootstrap --url <sandbox> --path clusters/sandbox` builds, with the run's PAT stored."""
    request = preflight_request(
        AccessOptions(url=sandbox.repo_url, allow_insecure_http=True), environ={"GIT_PASSWORD": sandbox.pat}
    )
    sync = SyncOptions(url=sandbox.repo_url, path=PATH, allow_insecure_http=True)
    return BootstrapOptions(
        url=request.url,
        install=InstallOptions(),
        sync=sync,
        manifests=str(sample_file),
        git_auth=request.git_auth,
        api_token=request.token,
        cluster_secret=token_secret(sync.secret_name, sync.namespace, sandbox.pat),
        identity=None,
        cluster=ClusterAccess(kubeconfig),
        timeout=timeout,
    )


def test_a_later_commit_pushed_on_top_of_ours_before_flux_fetches_counts_as_reconciled(
    cluster_sandbox: Sandbox,
    kubeconfig: Path,
    cluster: Cluster,
    sample_file: Path,
    tmp_path: Path,
) -> None:
    """Flux waits for the cluster to be at exactly its pushed head, so a push by someone else in between makes
    it wait until the timeout (the flake of two concurrent bootstraps). The later commit holds ours: the cluster
    runs what we pushed, and the run says at which revision it is."""
    sandbox = cluster_sandbox
    reporter = PushesAfterUs(sandbox, tmp_path / "other")
    (tmp_path / "other").mkdir()

    result = bootstrap(bootstrap_options(sandbox, kubeconfig, sample_file, timeout=120.0), reporter)

    ours, theirs = reporter.ours, reporter.theirs
    assert ours and theirs and head(sandbox) == theirs
    assert result.revision == f"main@sha1:{ours}"
    later = f"main@sha1:{theirs}"
    lines = reporter.lines
    assert f"✔ GitRepository reconciled successfully (at {later}, which includes ours)" in lines
    assert f"✔ Kustomization reconciled successfully (at {later}, which includes ours)" in lines
    assert lines[-1] == "✔ all components are healthy"
    repository = cluster.get(SOURCE_API, "GitRepository", "flux-system", "flux-system")
    assert repository is not None and repository["status"]["artifact"]["revision"] == later
    sources = {h.kind: h.revision for h in result.health if h.kind in ("GitRepository", "Kustomization")}
    assert sources == {"GitRepository": later, "Kustomization": later}


def test_includes_ours_answers_from_the_branch_and_leaves_the_checkout_as_it_was(
    azdo_sandbox: Sandbox, tmp_path: Path
) -> None:
    """The question the waits ask about a revision other than ours, answered from the run's clone: a commit
    pushed on top of ours (fetched for the purpose) is a yes; an older commit, a commit of another branch, one
    that does not exist and anything but a `<branch>@sha1:<sha>` of our branch are a no."""
    sandbox = azdo_sandbox
    request = preflight_request(
        AccessOptions(url=sandbox.repo_url, allow_insecure_http=True), environ={"GIT_PASSWORD": sandbox.pat}
    )
    someone = GitCli(tmp_path, sandbox.pat)
    reporter = Recorder()
    with Workspace(sandbox.repo_url, "main", request.git_auth, temp_parent=tmp_path / "work") as workspace:
        older = workspace.publish(lambda root: [Change("before", {"a.txt": "a\n"})]).head
        ours = workspace.publish(lambda root: [Change("ours", {"b.txt": "b\n"})]).head
        assert older and ours and older != ours
        someone.clone(sandbox.repo_url, "someone")
        later = someone.commit("someone", "c.txt", "c\n", "on top of ours")
        assert someone.push("someone", "HEAD:refs/heads/main").returncode == 0
        someone.run("checkout", "--quiet", "--orphan", "elsewhere", cwd=tmp_path / "someone", check=True)
        unrelated = someone.commit("someone", "d.txt", "d\n", "another branch")
        assert someone.push("someone", "HEAD:refs/heads/elsewhere").returncode == 0

        includes = IncludesOurs(workspace, "main", ours, Deadline(60.0), reporter)
        assert includes(f"main@sha1:{later}")
        assert includes(f"main@sha1:{ours}")
        assert not includes(f"main@sha1:{older}")
        assert not includes(f"main@sha1:{unrelated}")
        assert not includes(f"main@sha1:{'f' * 40}")
        assert not includes(f"elsewhere@sha1:{later}")
        assert not includes(f"main@sha1:--{later[2:]}")
        assert not includes(later)
        assert workspace.includes(ours, later) and not workspace.includes(later, ours)
        # The checkout is still at our commit, with our files only.
        assert workspace.head == ours and workspace.read("c.txt") is None and workspace.read("b.txt") == "b\n"
    assert reporter.lines == []
