"""`flux-azdo bootstrap` end to end against the sandbox: Azure DevOps, git, the Kubernetes API server and Flux.

Each test gets its own sandbox (`cluster_sandbox`), drives the command as a user would (`cli.main`, stderr and
stdout captured), and checks what it left behind where it lives: commits in the sandbox repository, objects and
requests at the API server, the GitRepository's status as the Flux simulator set it. The bootstrap runs as its
own Kubernetes user, so the simulator's writes (status, Events, Pods) are never counted as ours.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from flux_azdo.cluster.client import Cluster
from flux_azdo.cluster.secrets import read_source_secret
from flux_azdo.sandbox.runtime import Sandbox
from support.cli_runs import (
    SSH_PATCH_KUSTOMIZATION,
    admin_cluster,
    bootstrap_argv,
    commits,
    git,
    run_cli,
    user_kubeconfig,
    writes_by,
)
from support.isolation import isolate_environment
from support.sandboxes import running_sandbox
from support.seeding import seed

BOOTSTRAPPER = "bootstrapper"
SHA = re.compile(r"[0-9a-f]{40}")


@pytest.fixture(autouse=True)
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No credential or kubeconfig from the machine running the tests, an isolated HOME for git and kubectl."""
    isolate_environment(monkeypatch, tmp_path / "home")


@pytest.fixture
def kubeconfig(cluster_sandbox: Sandbox, tmp_path: Path) -> Path:
    """A kubeconfig of a user of its own with every right: the requests it makes are ours alone."""
    return user_kubeconfig(cluster_sandbox, BOOTSTRAPPER, tmp_path / "bootstrapper.kubeconfig")


@pytest.fixture
def cluster(cluster_sandbox: Sandbox) -> Iterator[Cluster]:
    """A separate connection (the sandbox's admin) for looking at the cluster afterwards."""
    with admin_cluster(cluster_sandbox) as connection:
        yield connection


def bootstrap(
    capsys: pytest.CaptureFixture[str],
    sandbox: Sandbox,
    kubeconfig: Path,
    sample_file: Path,
    *extra: str,
    url: str | None = None,
) -> tuple[int, str, str]:
    """One run; later flags in `extra` override the defaults here (argparse keeps the last)."""
    return run_cli(capsys, *bootstrap_argv("bootstrap", sandbox, kubeconfig, sample_file, *extra, url=url))


def our_writes(sandbox: Sandbox) -> list[str]:
    return writes_by(sandbox, BOOTSTRAPPER)


def flux_lines(err: str) -> list[str]:
    """stderr from the clone on (the preflight's lines come before), with commit shas made comparable."""
    lines = err.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("► cloning"))
    return [SHA.sub("<sha>", line) for line in lines[start:]]


def test_first_bootstrap_with_a_pat_prints_fluxs_lines_commits_twice_and_flux_runs_the_pushed_commit(
    cluster_sandbox: Sandbox,
    kubeconfig: Path,
    cluster: Cluster,
    sample_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GIT_PASSWORD", cluster_sandbox.pat)
    code, out, err = bootstrap(capsys, cluster_sandbox, kubeconfig, sample_file, "--output", "json")
    assert code == 0, err
    url = cluster_sandbox.repo_url
    assert err.splitlines()[0] == "► checking the repository and the cluster before any change"
    assert "✔ preflight checks passed" in err
    assert flux_lines(err) == [
        f'► cloning branch "main" from Git repository "{url}"',
        '✔ cloned repository (empty: the first push creates branch "main")',
        "► generating component manifests",
        "✔ generated component manifests",
        '✔ committed component manifests to "main" ("<sha>")',
        f'► pushing component manifests to "{url}"',
        '► installing components in "flux-system" namespace',
        "✔ installed components",
        "✔ reconciled components",
        '► determining if source secret "flux-system/flux-system" exists',
        "► generating source secret",
        '► applying source secret "flux-system/flux-system"',
        "✔ reconciled source secret",
        "► generating sync manifests",
        "✔ generated sync manifests",
        '✔ committed sync manifests to "main" ("<sha>")',
        f'► pushing sync manifests to "{url}"',
        "► applying sync manifests",
        "✔ reconciled sync configuration",
        '◎ waiting for GitRepository "flux-system/flux-system" to be reconciled',
        "✔ GitRepository reconciled successfully",
        '◎ waiting for Kustomization "flux-system/flux-system" to be reconciled',
        "✔ Kustomization reconciled successfully",
        "► confirming components are healthy",
        "✔ helm-controller: deployment ready",
        "✔ kustomize-controller: deployment ready",
        "✔ notification-controller: deployment ready",
        "✔ source-controller: deployment ready",
        "✔ all components are healthy",
    ]
    assert cluster_sandbox.pat not in out + err

    version = json.loads(out)["version"]
    assert commits(cluster_sandbox) == ["Add Flux sync manifests", f"Add Flux {version} component manifests"]
    head = git(cluster_sandbox, "rev-parse", "refs/heads/main")
    files = git(cluster_sandbox, "ls-tree", "-r", "--name-only", "refs/heads/main").splitlines()
    assert files == [
        "clusters/sandbox/flux-system/gotk-components.yaml",
        "clusters/sandbox/flux-system/gotk-sync.yaml",
        "clusters/sandbox/flux-system/kustomization.yaml",
    ]

    report = json.loads(out)
    assert report["revision"] == f"main@sha1:{head}"
    assert report["commits"]["sync"] == head
    assert report["changed"] is True and report["installed"] is True and report["secret"] == "created"
    assert {f["status"] for f in report["files"]} == {"create"}

    repository = cluster.get("source.toolkit.fluxcd.io/v1", "GitRepository", "flux-system", "flux-system")
    assert repository is not None
    assert repository["status"]["artifact"]["revision"] == f"main@sha1:{head}"
    ready = next(c for c in repository["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    assert repository["spec"]["url"] == url
    kustomization = cluster.get("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "flux-system", "flux-system")
    assert kustomization is not None
    assert kustomization["spec"]["path"] == "./clusters/sandbox"
    assert kustomization["status"]["lastAppliedRevision"] == f"main@sha1:{head}"
    secret = read_source_secret(cluster, "flux-system", "flux-system")
    assert secret == {"username": "git", "password": cluster_sandbox.pat}


def test_a_rerun_with_nothing_new_makes_no_commit_and_no_write_request(
    cluster_sandbox: Sandbox,
    kubeconfig: Path,
    sample_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert cluster_sandbox.kube is not None
    monkeypatch.setenv("GIT_PASSWORD", cluster_sandbox.pat)
    code, _, err = bootstrap(capsys, cluster_sandbox, kubeconfig, sample_file)
    assert code == 0, err
    assert our_writes(cluster_sandbox), "the first run must write (else this test could not fail)"
    before = commits(cluster_sandbox)
    cluster_sandbox.kube.reset_requests()

    code, out, err = bootstrap(capsys, cluster_sandbox, kubeconfig, sample_file)

    assert code == 0, err
    assert commits(cluster_sandbox) == before
    assert our_writes(cluster_sandbox) == []
    assert any(r.user == BOOTSTRAPPER for r in cluster_sandbox.kube.requests), "the re-run did read the cluster"
    lines = flux_lines(err)
    assert "✔ component manifests are up to date" in lines
    assert "✔ sync manifests are up to date" in lines
    assert not any("installing components" in line or "committed" in line for line in lines)
    assert lines[-1] == "✔ all components are healthy"
    assert out == ""


def test_another_version_makes_one_commit_and_the_cluster_runs_it(
    cluster_sandbox: Sandbox,
    kubeconfig: Path,
    cluster: Cluster,
    sample_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Changed components (here the log level) are one commit; the GitRepository fetches it without waiting for
    its interval, and the wait ends at the new revision."""
    monkeypatch.setenv("GIT_PASSWORD", cluster_sandbox.pat)
    assert bootstrap(capsys, cluster_sandbox, kubeconfig, sample_file)[0] == 0
    before = commits(cluster_sandbox)

    code, out, err = bootstrap(
        capsys, cluster_sandbox, kubeconfig, sample_file, "--log-level", "debug", "--output", "json"
    )

    assert code == 0, err
    after = commits(cluster_sandbox)
    assert len(after) == len(before) + 1 and after[0].endswith("component manifests")
    head = git(cluster_sandbox, "rev-parse", "refs/heads/main")
    report = json.loads(out)
    assert report["commits"] == {"components": head, "sync": None}
    assert report["reconcileRequested"] is True
    repository = cluster.get("source.toolkit.fluxcd.io/v1", "GitRepository", "flux-system", "flux-system")
    assert repository is not None and repository["status"]["artifact"]["revision"] == f"main@sha1:{head}"
    assert "✔ sync manifests are up to date" in err


@pytest.mark.parametrize("as_job_variable", [True, False], ids=["SYSTEM_ACCESSTOKEN", "identity"])
def test_the_job_token_is_refused_as_the_clusters_credential_before_any_write(
    as_job_variable: bool,
    cluster_sandbox: Sandbox,
    kubeconfig: Path,
    sample_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Known as the job token by where it came from, or only by whose it is (the build service)."""
    monkeypatch.setenv("GIT_PASSWORD", cluster_sandbox.job_token)
    if as_job_variable:
        monkeypatch.setenv("SYSTEM_ACCESSTOKEN", cluster_sandbox.job_token)

    code, out, err = bootstrap(capsys, cluster_sandbox, kubeconfig, sample_file, "--output", "json")

    assert code == 1
    assert json.loads(out)["error"] in err.splitlines()[-1]
    if as_job_variable:
        assert err.splitlines()[-1].startswith(
            "✗ the pipeline's job token (from GIT_PASSWORD) cannot be stored in the cluster: it stops working when "
            "this job ends"
        )
    else:
        assert "✗ the job token is this run's credential only: it stops working when the job ends" in err
        assert err.splitlines()[-1].startswith("✗ bootstrap stopped before changing anything")
    assert "--provider azure" in err
    assert cluster_sandbox.job_token not in out + err
    assert commits(cluster_sandbox) == []
    assert our_writes(cluster_sandbox) == []


def test_the_path_guard_stops_before_anything_is_pushed(
    cluster_sandbox: Sandbox,
    kubeconfig: Path,
    sample_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert cluster_sandbox.kube is not None
    monkeypatch.setenv("GIT_PASSWORD", cluster_sandbox.pat)
    assert bootstrap(capsys, cluster_sandbox, kubeconfig, sample_file)[0] == 0
    head = git(cluster_sandbox, "rev-parse", "refs/heads/main")
    cluster_sandbox.kube.reset_requests()

    code, _, err = bootstrap(capsys, cluster_sandbox, kubeconfig, sample_file, "--path", "clusters/other")

    assert code == 1
    lines = err.splitlines()
    assert any(
        line.startswith('✗ sync path configuration ("clusters/other") would overwrite path ("./clusters/sandbox")')
        for line in lines
    )
    assert "    fix: bootstrap with --path=clusters/sandbox" in "\n".join(lines)
    assert not any(line.startswith("► cloning") for line in lines)
    assert git(cluster_sandbox, "rev-parse", "refs/heads/main") == head
    assert our_writes(cluster_sandbox) == []


USER_KUSTOMIZATION = SSH_PATCH_KUSTOMIZATION


def test_ssh_with_the_users_key_and_a_user_patch_that_takes_effect_on_first_install(
    cluster_sandbox: Sandbox,
    kubeconfig: Path,
    cluster: Cluster,
    sample_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The sandbox's SSH server offers only rsa-sha2 host keys, as Azure DevOps does, and the simulated
    source-controller offers only ssh-rsa unless told otherwise: without the user's patch in the first install,
    the GitRepository could not fetch. The user's kustomization.yaml is kept byte for byte."""
    if cluster_sandbox.ssh_url is None or cluster_sandbox.ssh_key_path is None:
        pytest.skip("the sandbox's SSH endpoint needs OpenSSH's sshd")
    kustomization_path = "clusters/sandbox/flux-system/kustomization.yaml"
    seed(cluster_sandbox, {kustomization_path: USER_KUSTOMIZATION}, "Flux: accept rsa-sha2 host keys")
    monkeypatch.setenv("AZURE_DEVOPS_EXT_PAT", cluster_sandbox.pat)
    code, out, err = bootstrap(
        capsys,
        cluster_sandbox,
        kubeconfig,
        sample_file,
        "--private-key-file",
        str(cluster_sandbox.ssh_key_path),
        "--ssh-known-hosts",
        str(cluster_sandbox.known_hosts_path),
        "--organization",
        cluster_sandbox.org_url,
        "--output",
        "json",
        url=cluster_sandbox.ssh_url,
    )
    assert code == 0, err
    public_key = Path(f"{cluster_sandbox.ssh_key_path}.pub").read_text(encoding="utf-8").split()[:2]
    assert f"✔ public key: {' '.join(public_key)}" in err.splitlines()
    assert commits(cluster_sandbox) == [
        "Add Flux sync manifests",
        f"Add Flux {json.loads(out)['version']} component manifests",
        "Flux: accept rsa-sha2 host keys",
    ]
    assert git(cluster_sandbox, "show", f"refs/heads/main:{kustomization_path}") + "\n" == USER_KUSTOMIZATION
    assert {f["path"]: f["status"] for f in json.loads(out)["files"]}[kustomization_path] == "keep"

    deployment = cluster.get("apps/v1", "Deployment", "source-controller", "flux-system")
    assert deployment is not None
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--ssh-hostkey-algos=rsa-sha2-512,rsa-sha2-256" in args
    head = git(cluster_sandbox, "rev-parse", "refs/heads/main")
    repository = cluster.get("source.toolkit.fluxcd.io/v1", "GitRepository", "flux-system", "flux-system")
    assert repository is not None
    assert repository["spec"]["url"] == cluster_sandbox.ssh_url
    assert repository["status"]["artifact"]["revision"] == f"main@sha1:{head}"
    secret = read_source_secret(cluster, "flux-system", "flux-system")
    assert secret is not None
    assert secret["identity"] == cluster_sandbox.ssh_key_path.read_text(encoding="utf-8")
    assert secret["known_hosts"].strip() == cluster_sandbox.known_hosts_path.read_text(encoding="utf-8").strip()
    assert "password" not in secret and cluster_sandbox.pat not in out + err


def test_a_deployment_that_never_becomes_ready_gives_a_health_report(
    tmp_path: Path,
    ssh_host_key: Path,
    user_ssh_key: Path,
    sample_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with running_sandbox(
        tmp_path / "sandbox",
        kube=True,
        flux=True,
        deployment_ready_after=0.0,
        unpullable_images=("ghcr.io/fluxcd/helm-controller",),
    ) as sandbox:
        assert sandbox.kube is not None
        kubeconfig = user_kubeconfig(sandbox, BOOTSTRAPPER, tmp_path / "bootstrapper.kubeconfig")
        monkeypatch.setenv("GIT_PASSWORD", sandbox.pat)
        code, out, err = bootstrap(capsys, sandbox, kubeconfig, sample_file, "--timeout", "6s", "--output", "json")

    assert code == 1
    lines = err.splitlines()
    assert "✔ Kustomization reconciled successfully" in lines
    assert "✗ helm-controller: deployment not ready" in lines
    assert "✔ source-controller: deployment ready" in lines
    assert "ImagePullBackOff" in err
    assert lines[-1].startswith("✗ bootstrap failed: the Deployment health check did not pass")
    report = json.loads(out)
    assert report["error"].startswith("bootstrap failed")
    unhealthy = [h["name"] for h in report["health"] if not h["ready"]]
    assert unhealthy == ["helm-controller"]


def test_a_user_kustomization_without_the_azure_devops_ssh_patch_is_reported_before_anything_is_pushed(
    cluster_sandbox: Sandbox,
    kubeconfig: Path,
    sample_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The cluster reaches the repository at ssh.dev.azure.com (--ssh-hostname), which needs the host key patch;
    the user's own kustomization.yaml lacks it: said with the snippet to add, before any push or cluster write."""
    if cluster_sandbox.ssh_url is None or cluster_sandbox.ssh_key_path is None:
        pytest.skip("the sandbox's SSH endpoint needs OpenSSH's sshd")
    unpatched = "# mine: the user wrote this file\n" + USER_KUSTOMIZATION.split("patches:")[0]
    seeded = seed(cluster_sandbox, {"clusters/sandbox/flux-system/kustomization.yaml": unpatched}, "our own file")
    monkeypatch.setenv("AZURE_DEVOPS_EXT_PAT", cluster_sandbox.pat)
    code, _, err = bootstrap(
        capsys,
        cluster_sandbox,
        kubeconfig,
        sample_file,
        "--private-key-file",
        str(cluster_sandbox.ssh_key_path),
        "--ssh-known-hosts",
        str(cluster_sandbox.known_hosts_path),
        "--organization",
        cluster_sandbox.org_url,
        "--ssh-hostname",
        "ssh.dev.azure.com",
        url=cluster_sandbox.ssh_url,
    )
    assert code == 1
    assert (
        "✗ clusters/sandbox/flux-system/kustomization.yaml lacks the Azure DevOps SSH host key algorithms patch"
    ) in err
    assert "      value: --ssh-hostkey-algos=rsa-sha2-512,rsa-sha2-256" in err
    assert "nothing was pushed" in err.splitlines()[-1]
    assert not any(line.startswith(("✔ committed", "► pushing", "► installing")) for line in err.splitlines())
    assert git(cluster_sandbox, "rev-parse", "refs/heads/main") == seeded
    assert our_writes(cluster_sandbox) == []


def test_create_repo_creates_the_missing_repository_and_bootstraps_it(
    cluster_sandbox: Sandbox,
    kubeconfig: Path,
    sample_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GIT_PASSWORD", cluster_sandbox.pat)
    url = cluster_sandbox.repo_url.rsplit("/", 1)[0] + "/cluster-two"
    assert cluster_sandbox.world.find_repository(cluster_sandbox.project, "cluster-two") is None

    code, _, err = bootstrap(capsys, cluster_sandbox, kubeconfig, sample_file, "--create-repo", url=url)

    assert code == 0, err
    lines = err.splitlines()
    creating = lines.index('► creating repository "cluster-two" in project "platform"')
    assert lines[creating + 1] == "✔ created repository"
    assert lines[creating + 2].startswith("► cloning")
    created = cluster_sandbox.world.find_repository(cluster_sandbox.project, "cluster-two")
    assert created is not None
    log = subprocess.run(
        ["git", "--git-dir", str(created.git_dir), "log", "--format=%s", "refs/heads/main"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert log[0] == "Add Flux sync manifests" and len(log) == 2
    assert commits(cluster_sandbox) == []  # the other repository is untouched
