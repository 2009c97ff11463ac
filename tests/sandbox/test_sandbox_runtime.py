"""The assembled sandbox, seen only through real clients: the SDK, git, ssh, kubectl and the kubernetes client."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from flux_azdo.sandbox import sample_distribution_path
from flux_azdo.sandbox.daemon import read_env
from flux_azdo.sandbox.runtime import Sandbox, SandboxOptions
from flux_azdo.sandbox.ssh import sshd_available

GIT_READ = 2
GIT_CONTRIBUTE = 4
GIT_NAMESPACE = "2e9eb7ed-3c0a-47d4-87c1-0ffdd275fd87"
REQUIRED = (
    "AZDO_ORG_URL",
    "AZDO_PROJECT",
    "AZDO_REPO_URL",
    "AZDO_SSH_URL",
    "AZDO_PAT",
    "AZDO_JOB_TOKEN",
    "AZDO_SSH_KEY",
    "KUBECONFIG",
)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory, ssh_host_key: Path, user_ssh_key: Path) -> Iterator[Sandbox]:
    options = SandboxOptions(ssh_host_key=ssh_host_key, user_ssh_key=user_ssh_key, deployment_ready_after=0.05)
    with Sandbox(tmp_path_factory.mktemp("sandbox"), options) as running:
        yield running


def _git_env(home: Path, token: str | None = None, **extra: str) -> dict[str, str]:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    if token is not None:
        header = "Authorization: Basic " + base64.b64encode(f":{token}".encode()).decode()
        env |= {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": header,
            "GIT_ASKPASS": "/bin/true",
        }
    return env | extra


def _git(args: list[str], env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60)


def _kubectl(sandbox: Sandbox, *args: str) -> subprocess.CompletedProcess[str]:
    # kubectl caches discovery under $HOME/.kube, one folder per server: keep it in the sandbox, not the user's home.
    env = {"PATH": os.environ["PATH"], "HOME": str(sandbox.directory / "kubectl-home")}
    command = ["kubectl", "--kubeconfig", str(sandbox.kubeconfig_path), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)


def _connection(sandbox: Sandbox, token: str, bearer: bool = False):  # type: ignore[no-untyped-def]
    from azure.devops.connection import Connection
    from msrest.authentication import BasicAuthentication, BasicTokenAuthentication

    creds = BasicTokenAuthentication({"access_token": token}) if bearer else BasicAuthentication("", token)
    return Connection(base_url=sandbox.org_url, creds=creds)


def test_env_file_is_private_sourceable_and_complete(sandbox: Sandbox, tmp_path: Path) -> None:
    path = tmp_path / "sandbox.env"
    sandbox.write_env_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    values = read_env(path)
    for name in REQUIRED:
        if name == "AZDO_SSH_URL" or name == "AZDO_SSH_KEY":
            continue
        assert values[name], name
    script = f'. {path} && printf \'%s\\n\' "$AZDO_PAT" "$AZDO_REPO_URL" "$KUBECONFIG"'
    shell = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    assert shell.stdout.splitlines() == [values["AZDO_PAT"], values["AZDO_REPO_URL"], values["KUBECONFIG"]]
    assert values["AZDO_REPO_URL"] == f"{values['AZDO_ORG_URL']}/{values['AZDO_PROJECT']}/_git/{values['AZDO_REPO']}"


def test_one_project_with_one_empty_repository(sandbox: Sandbox) -> None:
    git = _connection(sandbox, sandbox.pat).clients.get_git_client()
    repositories = git.get_repositories(sandbox.project.name)
    assert [r.name for r in repositories] == [sandbox.repository.name]
    # Like dev.azure.com, remoteUrl carries the organisation as user name; the rest is the clone URL we hand out.
    assert repositories[0].remote_url == sandbox.repo_url.replace("://", f"://{sandbox.world.org}@", 1)
    assert repositories[0].default_branch is None
    assert git.get_refs(repositories[0].id, project=sandbox.project.name) == []


def test_job_token_is_the_build_service_with_default_rights(sandbox: Sandbox) -> None:
    connection = _connection(sandbox, sandbox.job_token, bearer=True)
    data = connection.clients.get_location_client().get_connection_data()
    assert f":Build:{sandbox.project.id}" in data.authenticated_user.descriptor
    security = connection.clients.get_security_client()
    token = f"repoV2/{sandbox.project.id}/{sandbox.repository.id}"
    assert security.has_permissions(GIT_NAMESPACE, GIT_READ, token, False, ",") == [True]
    assert security.has_permissions(GIT_NAMESPACE, GIT_CONTRIBUTE, token, False, ",") == [False]


def test_pat_pushes_over_https_and_the_job_token_may_not(sandbox: Sandbox, tmp_path: Path) -> None:
    work = tmp_path / "work"
    cloned = _git(["clone", sandbox.repo_url, str(work)], _git_env(tmp_path, sandbox.pat))
    assert cloned.returncode == 0, cloned.stderr
    (work / "README.md").write_text("hello\n")
    env = _git_env(tmp_path, sandbox.pat)
    assert _git(["add", "README.md"], env, work).returncode == 0
    assert _git(["commit", "-m", "first"], env, work).returncode == 0
    pushed = _git(["push", "origin", "HEAD:refs/heads/main"], env, work)
    assert pushed.returncode == 0, pushed.stderr
    repository = (
        _connection(sandbox, sandbox.pat)
        .clients.get_git_client()
        .get_repository(sandbox.repository.name, sandbox.project.name)
    )
    assert repository.default_branch == "refs/heads/main"

    (work / "README.md").write_text("from the job\n")
    assert _git(["commit", "-am", "second"], env, work).returncode == 0
    bearer = _git_env(tmp_path)
    bearer |= {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "http.extraHeader",
        "GIT_CONFIG_VALUE_0": f"Authorization: Bearer {sandbox.job_token}",
        "GIT_ASKPASS": "/bin/true",
    }
    refused = _git(["push", "origin", "HEAD:refs/heads/main"], bearer, work)
    assert refused.returncode != 0
    assert "TF401027" in refused.stderr and "GenericContribute" in refused.stderr


@pytest.mark.skipif(sshd_available() is not None, reason=f"OpenSSH's sshd is not usable: {sshd_available()}")
def test_user_key_clones_over_ssh(sandbox: Sandbox, tmp_path: Path) -> None:
    env = sandbox.env()
    assert env["AZDO_SSH_URL"].startswith("ssh://") and "/v3/" in env["AZDO_SSH_URL"]
    command = (
        f"ssh -F /dev/null -i {env['AZDO_SSH_KEY']} -o IdentitiesOnly=yes -o BatchMode=yes "
        f"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={env['AZDO_KNOWN_HOSTS']} "
        "-o GlobalKnownHostsFile=/dev/null"
    )
    cloned = _git(["clone", env["AZDO_SSH_URL"], str(tmp_path / "ssh")], _git_env(tmp_path, GIT_SSH_COMMAND=command))
    assert cloned.returncode == 0, cloned.stderr


def test_kubeconfig_works_with_kubectl(sandbox: Sandbox) -> None:
    result = _kubectl(sandbox, "get", "ns", "-o", "name")
    assert result.returncode == 0, result.stderr
    assert {"namespace/default", "namespace/kube-system"} <= set(result.stdout.split())


def test_flux_simulator_reconciles_a_gitrepository_with_the_cluster_credentials(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    with sample_distribution_path() as sample:
        applied = _kubectl(sandbox, "apply", "--server-side", "-f", str(sample))
    assert applied.returncode == 0, applied.stderr
    waited = _kubectl(
        sandbox, "-n", "flux-system", "wait", "--for=condition=available", "deployment", "--all", "--timeout=20s"
    )
    assert waited.returncode == 0, waited.stderr
    # A branch to fetch: the first push of this module may not have run, so push one of our own.
    work = tmp_path / "work"
    env = _git_env(tmp_path, sandbox.pat)
    assert _git(["init", "-q", "-b", "sim", str(work)], env).returncode == 0
    (work / "clusters" / "demo").mkdir(parents=True)
    (work / "clusters" / "demo" / "app.yaml").write_text("kind: ConfigMap\n")
    assert _git(["add", "."], env, work).returncode == 0
    assert _git(["commit", "-q", "-m", "sim"], env, work).returncode == 0
    pushed = _git(["push", sandbox.repo_url, "HEAD:refs/heads/sim"], env, work)
    assert pushed.returncode == 0, pushed.stderr
    head = _git(["rev-parse", "HEAD"], env, work).stdout.strip()

    secret = _kubectl(
        sandbox,
        "-n",
        "flux-system",
        "create",
        "secret",
        "generic",
        "sim-auth",
        "--from-literal=username=git",
        f"--from-literal=password={sandbox.pat}",
    )
    assert secret.returncode == 0, secret.stderr
    manifest = tmp_path / "source.yaml"
    manifest.write_text(
        f"""apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: sim
  namespace: flux-system
spec:
  interval: 1m0s
  ref:
    branch: sim
  secretRef:
    name: sim-auth
  url: {sandbox.repo_url}
"""
    )
    assert _kubectl(sandbox, "apply", "-f", str(manifest)).returncode == 0
    ready = _kubectl(
        sandbox, "-n", "flux-system", "wait", "--for=condition=ready", "gitrepository/sim", "--timeout=20s"
    )
    assert ready.returncode == 0, ready.stderr
    revision = _kubectl(
        sandbox, "-n", "flux-system", "get", "gitrepository/sim", "-o", "jsonpath={.status.artifact.revision}"
    )
    assert revision.stdout == f"sim@sha1:{head}"


def test_existing_cluster_is_driven_through_its_kubeconfig(tmp_path: Path) -> None:
    from flux_azdo.sandbox.kube import KubeApiServer

    with KubeApiServer(tls=False) as cluster:
        kubeconfig = tmp_path / "existing.kubeconfig"
        cluster.write_kubeconfig(kubeconfig)
        options = SandboxOptions(
            ssh=False, kubeconfig=kubeconfig, simulate_deployments=True, deployment_ready_after=0.05
        )
        with Sandbox(tmp_path / "sb", options) as sandbox:
            assert sandbox.kube is None
            # A private copy in the sandbox folder; the user's own file is never touched.
            assert sandbox.env()["KUBECONFIG"] == str(tmp_path / "sb" / "kubeconfig")
            assert (tmp_path / "sb" / "kubeconfig").read_bytes() == kubeconfig.read_bytes()
            with sample_distribution_path() as sample:
                applied = _kubectl(sandbox, "apply", "--server-side", "-f", str(sample))
            assert applied.returncode == 0, applied.stderr
            waited = _kubectl(
                sandbox, "-n", "flux-system", "wait", "--for=condition=available", "deployment/source-controller"
            )
            assert waited.returncode == 0, waited.stderr

        assert kubeconfig.is_file()
        assert not (tmp_path / "sb" / "kubeconfig").exists()


def test_stop_removes_what_start_wrote(tmp_path: Path) -> None:
    folder = tmp_path / "sb"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine\n")
    with Sandbox(folder, SandboxOptions(ssh=False, flux=False)):
        assert {"kubeconfig", "repos"} <= {p.name for p in folder.iterdir()}
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]


def test_unusable_kubeconfigs_are_clear_one_line_errors(tmp_path: Path) -> None:
    import socket

    from flux_azdo.sandbox.runtime import SandboxError

    options = SandboxOptions(ssh=False, kubeconfig=tmp_path / "missing")
    with pytest.raises(SandboxError, match=r"^kubeconfig .*missing does not exist: pass the path"):
        Sandbox(tmp_path / "a", options).start()
    malformed = tmp_path / "malformed"
    malformed.write_text("clusters: [\n")
    with pytest.raises(SandboxError, match=r"^kubeconfig .*malformed cannot be used: "):
        Sandbox(tmp_path / "b", SandboxOptions(ssh=False, kubeconfig=malformed)).start()
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    dead = tmp_path / "dead"
    dead.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: c, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    with pytest.raises(SandboxError, match=rf"^the API server in .*dead \(http://127.0.0.1:{port}\) does not answer"):
        Sandbox(tmp_path / "c", SandboxOptions(ssh=False, kubeconfig=dead)).start()
    for name in "abc":
        assert sorted(p.name for p in (tmp_path / name).iterdir()) == []
