"""The sandbox's SSH endpoint, seen through OpenSSH's `ssh` and the `git` CLI only.

It must refuse what ssh.dev.azure.com refuses (unknown and non-RSA keys, SHA-1 signatures, clients that insist on an
`ssh-rsa` host key, shells, forwarding, paths outside `v3/`) and serve git with the same permissions as the HTTP
side of the sandbox's Azure DevOps, which it asks for every operation.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shlex
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import IO

import pytest

from flux_azdo.sandbox.azure_devops import AzureDevOpsServer
from flux_azdo.sandbox.ssh import SshServer, SshServerError, sshd, sshd_available
from flux_azdo.sandbox.ssh.forced_command import Refusal, parse_request
from flux_azdo.sandbox.ssh.processes import descendants
from flux_azdo.sandbox.ssh.sshd import authorized_key_entry
from flux_azdo.sandbox.world import Identity, Project, Repository, World

RSA_SHA2 = "rsa-sha2-512,rsa-sha2-256"
REASON = sshd_available()
needs_sshd = pytest.mark.skipif(REASON is not None, reason=f"OpenSSH's sshd is not usable: {REASON}")


# -- keys and servers, made once per module -----------------------------------------------------------------------


@dataclass
class Keys:
    writer: Path  # RSA, registered for a contributor
    reader: Path  # RSA, registered for a reader
    stranger: Path  # RSA, registered for nobody
    late: Path  # RSA, registered while sshd runs
    ed25519: Path  # registered for the contributor, refused for its algorithm


def _keygen(path: Path, *args: str) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-N", "", "-C", path.name, "-f", str(path), *args], check=True)
    return path


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory, user_ssh_key: Path) -> Keys:
    if REASON is not None:
        pytest.skip(f"OpenSSH's sshd is not usable: {REASON}")
    directory = tmp_path_factory.mktemp("client-keys")
    # 2048 bits, the smallest RSA key Azure DevOps takes, keeps the module's start-up short.
    reader, stranger, late = (_keygen(directory / name, "-t", "rsa", "-b", "2048") for name in ("r", "s", "l"))
    ed25519 = _keygen(directory / "ed25519", "-t", "ed25519")
    return Keys(writer=user_ssh_key, reader=reader, stranger=stranger, late=late, ed25519=ed25519)


@dataclass
class Setup:
    world: World
    azdo: AzureDevOpsServer
    ssh: SshServer
    project: Project
    repo: Repository
    writer: Identity
    reader: Identity
    pat: str
    known_hosts: Path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, keys: Keys, ssh_host_key: Path) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("ssh-sandbox")
    world = World("sandbox-org", root / "repos")
    project = world.add_project("platform")
    repo = world.create_repository(project, "fleet-infra")
    writer = world.add_user("Writer")
    reader = world.add_user("Reader", project_rights="reader")
    pat = world.issue_pat(writer, ["vso.code_write"])
    world.add_ssh_key(writer, Path(f"{keys.writer}.pub").read_text())
    world.add_ssh_key(reader, Path(f"{keys.reader}.pub").read_text())
    world.add_ssh_key(writer, Path(f"{keys.ed25519}.pub").read_text())
    with AzureDevOpsServer(world) as azdo, SshServer(world, azdo, root / "ssh", host_key=ssh_host_key) as ssh:
        known_hosts = root / "known_hosts"
        known_hosts.write_text(ssh.known_hosts_line + "\n")
        yield Setup(world, azdo, ssh, project, repo, writer, reader, pat, known_hosts)


# -- clients ------------------------------------------------------------------------------------------------------


def ssh_command(setup: Setup, key: Path, *options: str, known_hosts: Path | None = None) -> list[str]:
    """The client of test-servers.md §2: nothing from ~/.ssh or an agent, strict host key checking, RSA SHA-2."""
    settings = {
        "IdentitiesOnly": "yes",
        "IdentityAgent": "none",
        "BatchMode": "yes",
        "StrictHostKeyChecking": "yes",
        "UserKnownHostsFile": str(known_hosts or setup.known_hosts),
        "GlobalKnownHostsFile": "/dev/null",
        "HostKeyAlgorithms": RSA_SHA2,
        "PubkeyAcceptedAlgorithms": RSA_SHA2,
        "ConnectTimeout": "10",
    }
    for option in options:
        name, _, value = option.partition("=")
        settings[name] = value
    command = ["ssh", "-F", "/dev/null", "-i", str(key)]
    for name, value in settings.items():
        command += ["-o", f"{name}={value}"]
    return command


def git(
    args: list[str], *, ssh: list[str] | None = None, cwd: Path | None = None, pat: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    if ssh is not None:
        env["GIT_SSH_COMMAND"] = shlex.join(ssh)
    if pat is not None:  # a PAT as Basic credentials, through the environment rather than argv
        basic = base64.b64encode(f":{pat}".encode()).decode()
        env |= {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader"}
        env["GIT_CONFIG_VALUE_0"] = f"Authorization: Basic {basic}"
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def run_ssh(
    setup: Setup, key: Path, *options: str, remote: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [*ssh_command(setup, key, *options), "-p", str(setup.ssh.port), f"{setup.ssh.user}@127.0.0.1"]
    return subprocess.run(
        [*command, *(remote or [])], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
    )


def url(setup: Setup, project: str = "platform", repo: str = "fleet-infra") -> str:
    return setup.ssh.url(setup.world.org, project, repo)


def commit(work: Path, name: str, text: str) -> None:
    (work / name).write_text(text)
    assert git(["add", name], cwd=work).returncode == 0
    assert git(["commit", "-q", "-m", name], cwd=work).returncode == 0


def new_work_tree(path: Path, remote: str) -> Path:
    """A local repository with `origin` set: what a clone of an empty repository gives, without a connection."""
    assert git(["init", "-q", "--initial-branch=main", str(path)]).returncode == 0
    assert git(["remote", "add", "origin", remote], cwd=path).returncode == 0
    return path


class LogWatch:
    """sshd's log from now on: its preauth lines say why a login failed."""

    def __init__(self, setup: Setup) -> None:
        self.path = setup.ssh.log_path
        self.offset = self.path.stat().st_size

    def wait_for(self, needle: str) -> str:
        """sshd may write the line a moment after the client gave up, so wait for it (bounded)."""
        deadline = time.monotonic() + 5
        while True:
            with open(self.path, "rb") as log:
                log.seek(self.offset)
                text = log.read().decode(errors="replace")
            if needle in text or time.monotonic() > deadline:
                return text
            time.sleep(0.02)


# -- git over SSH, with the HTTP side's permissions ---------------------------------------------------------------


@needs_sshd
def test_clone_empty_push_clone_again_and_http_sees_the_same_repository(
    setup: Setup, keys: Keys, tmp_path: Path
) -> None:
    client = ssh_command(setup, keys.writer)
    first = git(["clone", url(setup), str(tmp_path / "first")], ssh=client)
    assert first.returncode == 0, first.stderr
    assert "You appear to have cloned an empty repository." in first.stderr
    commit(tmp_path / "first", "README.md", "pushed over ssh\n")
    pushed = git(["push", "origin", "HEAD:refs/heads/main"], ssh=client, cwd=tmp_path / "first")
    assert pushed.returncode == 0, pushed.stderr
    assert " * [new branch]      HEAD -> main" in pushed.stderr

    again = git(["clone", url(setup), str(tmp_path / "again")], ssh=client)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again" / "README.md").read_text() == "pushed over ssh\n"

    over_http = git(["clone", setup.azdo.repo_url(setup.repo), str(tmp_path / "http")], pat=setup.pat)
    assert over_http.returncode == 0, over_http.stderr
    assert (tmp_path / "http" / "README.md").read_text() == "pushed over ssh\n"
    commit(tmp_path / "http", "http.txt", "pushed over http\n")
    assert git(["push", "-q", "origin", "main"], cwd=tmp_path / "http", pat=setup.pat).returncode == 0
    pulled = git(["pull", "-q", "--ff-only"], ssh=client, cwd=tmp_path / "again")
    assert pulled.returncode == 0, pulled.stderr
    assert (tmp_path / "again" / "http.txt").read_text() == "pushed over http\n"


@needs_sshd
def test_reader_can_fetch_but_not_push(setup: Setup, keys: Keys, tmp_path: Path) -> None:
    client = ssh_command(setup, keys.reader)
    cloned = git(["clone", url(setup), str(tmp_path / "r")], ssh=client)
    assert cloned.returncode == 0, cloned.stderr
    commit(tmp_path / "r", "reader.txt", "not allowed\n")
    pushed = git(["push", "origin", "HEAD:refs/heads/reader"], ssh=client, cwd=tmp_path / "r")
    assert pushed.returncode != 0
    assert "remote: TF401027: You need the Git 'GenericContribute' permission to perform this action." in pushed.stderr


@needs_sshd
def test_branch_policy_reaches_pushes_over_ssh(setup: Setup, keys: Keys, tmp_path: Path) -> None:
    """The push hook gets its ticket through the environment the forced command passes to git receive-pack."""
    project = setup.world.add_project("Policies")
    repo = setup.world.create_repository(project, "guarded")
    client = ssh_command(setup, keys.writer)
    work = new_work_tree(tmp_path / "g", url(setup, "Policies", "guarded"))
    commit(work, "a.txt", "a\n")
    assert git(["push", "-q", "origin", "HEAD:refs/heads/main"], ssh=client, cwd=work).returncode == 0
    setup.world.set_branch_policy(repo, "main")
    commit(work, "b.txt", "b\n")
    rejected = git(["push", "origin", "HEAD:refs/heads/main"], ssh=client, cwd=work)
    assert rejected.returncode != 0
    assert " ! [remote rejected] HEAD -> main (TF402455: Pushes to this branch are not permitted" in rejected.stderr
    feature = git(["push", "-q", "origin", "HEAD:refs/heads/feature"], ssh=client, cwd=work)
    assert feature.returncode == 0, feature.stderr


@needs_sshd
def test_names_are_percent_encoded_and_case_insensitive(setup: Setup, keys: Keys, tmp_path: Path) -> None:
    project = setup.world.add_project("My Project")
    setup.world.create_repository(project, "My Repo")
    client = ssh_command(setup, keys.writer)
    encoded = url(setup, "My Project", "My Repo")
    assert encoded.endswith("/v3/sandbox-org/My%20Project/My%20Repo")
    work = new_work_tree(tmp_path / "a", encoded)
    commit(work, "x.txt", "x\n")
    assert git(["push", "-q", "origin", "HEAD:refs/heads/main"], ssh=client, cwd=work).returncode == 0
    shouted = setup.ssh.url("SANDBOX-ORG", "MY PROJECT", "my repo")
    listed = git(["ls-remote", shouted], ssh=client)
    assert listed.returncode == 0, listed.stderr
    assert "refs/heads/main" in listed.stdout
    # git archive --remote runs git-upload-archive, which needs read access like a fetch.
    archive = subprocess.run(
        ["git", "archive", f"--remote={encoded}", "main", "x.txt"],
        env={**os.environ, "GIT_SSH_COMMAND": shlex.join(client)},
        capture_output=True,
        timeout=60,
    )
    assert archive.returncode == 0, archive.stderr
    assert b"x.txt" in archive.stdout


@needs_sshd
def test_missing_repository_gives_the_azure_devops_message(setup: Setup, keys: Keys, tmp_path: Path) -> None:
    result = git(["clone", url(setup, "platform", "nope"), str(tmp_path / "n")], ssh=ssh_command(setup, keys.writer))
    assert result.returncode != 0
    assert "remote: TF401019: The Git repository with name or identifier nope does not exist" in result.stderr


@needs_sshd
def test_keys_added_or_removed_while_running_count_from_the_next_connection(setup: Setup, keys: Keys) -> None:
    """As on the service's "SSH public keys" page: no restart, no refresh call, the next login sees the change."""
    late = setup.world.add_user("Late Joiner")
    client = ssh_command(setup, keys.late)
    before = git(["ls-remote", url(setup)], ssh=client)
    assert "Permission denied (publickey)." in before.stderr
    line = Path(f"{keys.late}.pub").read_text()
    setup.world.add_ssh_key(late, line)
    after = git(["ls-remote", url(setup)], ssh=client)
    assert after.returncode == 0, after.stderr
    # Removal compares type and blob, not the comment; removing for another identity removes nothing.
    assert setup.world.remove_ssh_key(setup.writer, line) is False
    assert setup.world.remove_ssh_key(late, " ".join(line.split()[:2]) + " another comment") is True
    removed = git(["ls-remote", url(setup)], ssh=client)
    assert removed.returncode != 0
    assert "Permission denied (publickey)." in removed.stderr
    assert setup.world.remove_ssh_key(late, line) is False


def test_a_line_that_is_no_public_key_is_refused(tmp_path: Path) -> None:
    world = World("sandbox-org", tmp_path / "repos")
    user = world.add_user("Someone")
    with pytest.raises(ValueError, match="not an OpenSSH public key line"):
        world.add_ssh_key(user, "-----BEGIN OPENSSH PRIVATE KEY-----")
    assert world.ssh_keys() == []


def _fake_key_line(index: int) -> str:
    """A syntactically valid RSA public key line (sshd never gets to use it)."""
    blob = base64.b64encode(b"\x00\x00\x00\x07ssh-rsa" + os.urandom(40)).decode()
    return f"ssh-rsa {blob} fake-{index}"


@needs_sshd
def test_concurrent_key_changes_all_reach_authorized_keys(setup: Setup) -> None:
    """Changes from many threads at once: the file always ends up with exactly the world's keys."""
    someone = setup.world.add_user("Concurrent Keys")
    lines = [_fake_key_line(i) for i in range(24)]
    blobs = {line.split()[1] for line in lines}

    def on_disk() -> set[str]:
        return {entry.split()[-1] for entry in setup.ssh.authorized_keys_path.read_text().splitlines()}

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda line: setup.world.add_ssh_key(someone, line), lines))
    assert blobs <= on_disk()
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert all(pool.map(lambda line: setup.world.remove_ssh_key(someone, line), lines))
    assert not blobs & on_disk()
    assert on_disk() == {line.split()[1] for _, line in setup.world.ssh_keys()}


@needs_sshd
def test_a_stopped_server_no_longer_follows_the_keys(setup: Setup, tmp_path: Path) -> None:
    server = SshServer(setup.world, setup.azdo, tmp_path / "ssh", host_key=setup.ssh.host_key_path)
    with server:
        someone = setup.world.add_user("Follower")
        line = _fake_key_line(0)
        setup.world.add_ssh_key(someone, line)
        assert line.split()[1] in server.authorized_keys_path.read_text()
    setup.world.remove_ssh_key(someone, line)
    assert line.split()[1] in server.authorized_keys_path.read_text()  # left as it was at stop()
    assert line.split()[1] not in setup.ssh.authorized_keys_path.read_text()  # the running one followed


def _python_zombies_of_init() -> set[int]:
    """Exited Python processes waiting for PID 1 to reap them (an orphaned push hook would be one)."""
    found = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
            comm = Path(f"/proc/{name}/comm").read_text().strip()
        except OSError:
            continue
        state, parent = stat[stat.rindex(")") + 2 :].split()[:2]
        if state == "Z" and parent == "1" and comm.startswith("python"):
            found.add(int(name))
    return found


@needs_sshd
def test_push_applied_then_connection_dropped_over_ssh(setup: Setup, keys: Keys, tmp_path: Path) -> None:
    """`drop_after_next_push`: the refs move, git sees the session die before the report, nothing is left over."""
    project = setup.world.add_project("Lost Replies")
    repo = setup.world.create_repository(project, "landed")
    client = ssh_command(setup, keys.writer)
    work = new_work_tree(tmp_path / "w", url(setup, "Lost Replies", "landed"))
    commit(work, "a.txt", "a\n")
    head = git(["rev-parse", "HEAD"], cwd=work).stdout.strip()
    zombies_before = _python_zombies_of_init()
    setup.azdo.faults.drop_after_next_push()
    pushed = git(["push", "origin", "HEAD:refs/heads/main"], ssh=client, cwd=work)
    assert pushed.returncode != 0
    assert "the remote end hung up unexpectedly" in pushed.stderr
    assert "[new branch]" not in pushed.stderr
    assert setup.azdo.faults.dropped_push_replies == 1
    assert repo.default_branch == "refs/heads/main"
    listed = git(["ls-remote", "origin", "refs/heads/main"], ssh=client, cwd=work)
    assert listed.stdout.split() == [head, "refs/heads/main"]
    # The forced command reaped the hook that killed its receive-pack; the session left nothing behind (sshd's
    # connection process exits a moment after the client has gone, hence the bounded wait).
    sshd_pid = setup.ssh.pid
    assert sshd_pid is not None
    deadline = time.monotonic() + 5
    while descendants(sshd_pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert descendants(sshd_pid) == []
    assert _python_zombies_of_init() - zombies_before == set()
    # The next push is an ordinary one again.
    commit(work, "b.txt", "b\n")
    again = git(["push", "origin", "HEAD:refs/heads/main"], ssh=client, cwd=work)
    assert again.returncode == 0, again.stderr


@needs_sshd
def test_disabled_repository_is_refused_over_ssh(setup: Setup, keys: Keys, tmp_path: Path) -> None:
    project = setup.world.add_project("Disabled Over SSH")
    repo = setup.world.create_repository(project, "archived")
    client = ssh_command(setup, keys.writer)
    setup.world.disable_repository(repo)
    fetched = git(["ls-remote", url(setup, "Disabled Over SSH", "archived")], ssh=client)
    assert fetched.returncode != 0
    assert "remote: TF401019: The Git repository with name or identifier archived does not exist" in fetched.stderr
    work = new_work_tree(tmp_path / "w", url(setup, "Disabled Over SSH", "archived"))
    commit(work, "a.txt", "a\n")
    pushed = git(["push", "origin", "HEAD:refs/heads/main"], ssh=client, cwd=work)
    assert pushed.returncode != 0 and "remote: TF401019:" in pushed.stderr
    setup.world.enable_repository(repo)
    assert git(["push", "-q", "origin", "HEAD:refs/heads/main"], ssh=client, cwd=work).returncode == 0


# -- what ssh.dev.azure.com refuses -------------------------------------------------------------------------------


@needs_sshd
def test_unknown_rsa_key_is_denied(setup: Setup, keys: Keys, tmp_path: Path) -> None:
    result = git(["clone", url(setup), str(tmp_path / "c")], ssh=ssh_command(setup, keys.stranger))
    assert result.returncode != 0
    assert f"{setup.ssh.user}@127.0.0.1: Permission denied (publickey)." in result.stderr
    assert not (tmp_path / "c").exists()


@needs_sshd
def test_ed25519_key_is_denied_for_its_algorithm(setup: Setup, keys: Keys) -> None:
    watch = LogWatch(setup)
    # The key is registered; the client offers it as a user's ssh would, with the ed25519 algorithm.
    result = run_ssh(setup, keys.ed25519, "PubkeyAcceptedAlgorithms=ssh-ed25519", remote=["git-upload-pack", "v3/x"])
    assert result.returncode == 255
    assert "Permission denied (publickey)." in result.stderr
    needle = "signature algorithm ssh-ed25519 not in PubkeyAcceptedAlgorithms"
    assert needle in watch.wait_for(needle)


@needs_sshd
def test_rsa_key_signing_with_sha1_is_denied(setup: Setup, keys: Keys) -> None:
    watch = LogWatch(setup)
    result = run_ssh(setup, keys.writer, "PubkeyAcceptedAlgorithms=ssh-rsa", remote=["git-upload-pack", "v3/x"])
    assert result.returncode == 255
    assert "Permission denied (publickey)." in result.stderr
    needle = "signature algorithm ssh-rsa not in PubkeyAcceptedAlgorithms"
    assert needle in watch.wait_for(needle)


@needs_sshd
@pytest.mark.parametrize("algorithm", ["ssh-rsa", "ssh-ed25519"])
def test_client_demanding_another_host_key_type_cannot_negotiate(setup: Setup, keys: Keys, algorithm: str) -> None:
    result = run_ssh(setup, keys.writer, f"HostKeyAlgorithms={algorithm}", remote=["git-upload-pack", "v3/x"])
    assert result.returncode == 255
    assert "no matching host key type found. Their offer: rsa-sha2-512,rsa-sha2-256" in result.stderr


@needs_sshd
def test_wrong_pinned_host_key_fails_verification(setup: Setup, keys: Keys, tmp_path: Path) -> None:
    other_key = Path(f"{keys.stranger}.pub").read_text().split()[1]
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{setup.ssh.port} ssh-rsa {other_key}\n")
    result = git(
        ["clone", url(setup), str(tmp_path / "c")], ssh=ssh_command(setup, keys.writer, known_hosts=known_hosts)
    )
    assert result.returncode != 0
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in result.stderr
    assert "Host key verification failed." in result.stderr


@needs_sshd
def test_unknown_host_fails_strict_checking(setup: Setup, keys: Keys, tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("")
    result = git(["ls-remote", url(setup)], ssh=ssh_command(setup, keys.writer, known_hosts=tmp_path / "empty"))
    assert result.returncode != 0
    assert "Host key verification failed." in result.stderr


@needs_sshd
def test_shell_command_is_refused(setup: Setup, keys: Keys) -> None:
    result = run_ssh(setup, keys.writer, remote=["id"])
    assert result.returncode == 1
    assert "uid=" not in result.stdout
    assert "remote: Command not supported: 'id'" in result.stderr


@needs_sshd
def test_interactive_shell_and_terminal_are_refused(setup: Setup, keys: Keys) -> None:
    plain = run_ssh(setup, keys.writer)
    assert plain.returncode == 1
    assert "remote: Shell access is not supported." in plain.stderr
    with_tty = run_ssh(setup, keys.writer, "RequestTTY=force")
    assert with_tty.returncode != 0
    assert "PTY allocation request failed" in with_tty.stderr


@needs_sshd
def test_forwarding_is_refused(setup: Setup, keys: Keys) -> None:
    # `-W` asks for a direct-tcpip channel (here to the Azure DevOps port), which sshd must not open.
    target = setup.azdo.url.removeprefix("http://")
    command = [*ssh_command(setup, keys.writer), "-W", target, "-p", str(setup.ssh.port), f"{setup.ssh.user}@127.0.0.1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert result.returncode == 255
    assert "administratively prohibited" in result.stderr


@needs_sshd
@pytest.mark.parametrize("path", ["/etc/passwd", "v3/../../etc"])
def test_path_outside_v3_is_refused(setup: Setup, keys: Keys, path: str) -> None:
    result = run_ssh(setup, keys.writer, remote=[f"git-upload-pack '{path}'"])
    assert result.returncode == 1
    assert f"remote: Invalid repository path '{path}': use v3/<organization>/<project>/<repository>." in result.stderr


# -- the server's files and lifecycle -----------------------------------------------------------------------------


@needs_sshd
def test_authorized_keys_force_the_command_and_keep_the_secret_out(setup: Setup) -> None:
    text = setup.ssh.authorized_keys_path.read_text()
    registered = setup.world.ssh_keys()
    for line, (identity, public_key) in zip(text.splitlines(), registered, strict=True):
        options, key = line.rsplit(" ", 2)[0], " ".join(line.rsplit(" ", 2)[1:])
        assert key == " ".join(public_key.split()[:2])
        assert options.startswith('command="') and options.split('"')[1].endswith(f" {identity.id}")
        assert options.endswith('",no-port-forwarding,no-X11-forwarding,no-agent-forwarding,no-pty,no-user-rc')
    assert setup.azdo.internal_secret not in text
    assert stat.S_IMODE(setup.ssh.control_path.stat().st_mode) == 0o600
    assert json.loads(setup.ssh.control_path.read_text())["secret"] == setup.azdo.internal_secret


@needs_sshd
def test_known_hosts_line_and_url(setup: Setup, ssh_host_key: Path) -> None:
    host_key = Path(f"{ssh_host_key}.pub").read_text().split()[1]
    assert setup.ssh.known_hosts_line == f"[127.0.0.1]:{setup.ssh.port} ssh-rsa {host_key}"
    assert setup.ssh.host_public_key == f"ssh-rsa {host_key}"
    assert setup.ssh.url("o", "My Project", "my repo") == (
        f"ssh://{setup.ssh.user}@127.0.0.1:{setup.ssh.port}/v3/o/My%20Project/my%20repo"
    )


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _state(pid: int) -> str | None:
    """A process's state letter (Z for a zombie), or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2]


def _read_until(stream: IO[bytes], end: bytes, timeout: float = 10) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(end) and time.monotonic() < deadline:
        if select.select([stream], [], [], 0.1)[0]:
            chunk = os.read(stream.fileno(), 65536)
            if not chunk:
                break
            data += chunk
    return data


@needs_sshd
def test_stop_ends_running_sessions_and_leaves_nothing(setup: Setup, keys: Keys, tmp_path: Path) -> None:
    # No cached key (it generates one), and a directory whose name the config and the forced command must quote.
    server = SshServer(setup.world, setup.azdo, tmp_path / 'ssh dir #1 "100%"')
    client: subprocess.Popen[bytes] | None = None
    try:
        server.start()
        pid = server.pid
        assert pid is not None and _port_open(server.port)
        known_hosts = tmp_path / "known_hosts"
        known_hosts.write_text(server.known_hosts_line + "\n")
        command = [*ssh_command(setup, keys.writer, known_hosts=known_hosts), "-p", str(server.port)]
        command += [f"{server.user}@127.0.0.1", "git-upload-pack", "'v3/sandbox-org/platform/fleet-infra'"]
        # A fetch that has read the ref advertisement and now waits: its session is still running at stop().
        client = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert client.stdout is not None
        assert _read_until(client.stdout, b"0000").endswith(b"0000")  # the advertisement ends with a flush
        session = descendants(pid)
        assert any(b"upload-pack" in Path(f"/proc/{p}/cmdline").read_bytes() for p in session)
    finally:
        server.stop()
        if client is not None:
            client.communicate(timeout=10)
    server.stop()  # idempotent
    assert client.returncode != 0
    assert _state(pid) is None  # sshd exited and was reaped
    deadline = time.monotonic() + 5
    while [p for p in session if _state(p) is not None] and time.monotonic() < deadline:
        time.sleep(0.02)  # orphaned zombies are reaped by init, a moment later
    assert [(p, _state(p)) for p in session if _state(p) is not None] == []
    assert not _port_open(server.port)


@needs_sshd
def test_failed_start_reports_sshd_log(setup: Setup, tmp_path: Path) -> None:
    broken = tmp_path / "broken_host_key"
    broken.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key\n-----END OPENSSH PRIVATE KEY-----\n")
    Path(f"{broken}.pub").write_text(setup.ssh.host_public_key + "\n")
    server = SshServer(setup.world, setup.azdo, tmp_path / "ssh", host_key=broken)
    with pytest.raises(SshServerError, match="no hostkeys available"):
        server.start()
    assert server.pid is None
    server.stop()


@needs_sshd
def test_unreachable_server_is_reported_to_the_client(setup: Setup, keys: Keys, tmp_path: Path) -> None:
    closed_port = _free_port()
    gone = SimpleNamespace(url=f"http://127.0.0.1:{closed_port}", internal_secret="unused")
    with SshServer(setup.world, gone, tmp_path / "ssh", host_key=setup.ssh.host_key_path) as server:  # type: ignore[arg-type]
        (tmp_path / "known_hosts").write_text(server.known_hosts_line + "\n")
        command = [*ssh_command(setup, keys.writer, known_hosts=tmp_path / "known_hosts"), "-p", str(server.port)]
        result = subprocess.run(
            [*command, f"{server.user}@127.0.0.1", "git-upload-pack 'v3/sandbox-org/platform/fleet-infra'"],
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
    assert result.returncode == 1
    assert "remote: the sandbox's Azure DevOps server is not reachable" in result.stderr


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_sshd_missing_gives_a_reason(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sshd, "SSHD", tmp_path / "no-sshd")
    reason = sshd_available()
    assert reason is not None and "openssh-server" in reason


# -- the forced command's reading of SSH_ORIGINAL_COMMAND ---------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("git-upload-pack '/v3/org/My%20Project/repo'", ("git-upload-pack", "/v3/org/My%20Project/repo")),
        ("git-receive-pack 'v3/org/p/r'", ("git-receive-pack", "v3/org/p/r")),
        ("git-upload-archive '/v3/org/p/r'", ("git-upload-archive", "/v3/org/p/r")),
        ("git-upload-pack v3/o/p/r", ("git-upload-pack", "v3/o/p/r")),
    ],
)
def test_git_services_are_read_from_the_original_command(command: str, expected: tuple[str, str]) -> None:
    assert parse_request(command) == expected


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (None, "Shell access is not supported."),
        ("", "Shell access is not supported."),
        ("sh -c 'git-upload-pack v3/o/p/r'", "Command not supported: "),
        ("git upload-pack 'v3/o/p/r'", "Command not supported: "),
        ("git-upload-pack 'v3/o/p/r' extra", "takes exactly one argument"),
        ("git-upload-pack 'unterminated", "Command not supported: "),
        ("git-upload-pack 'v3/o/p/r\n'", "control characters"),
        ("git-upload-pack v3", "Invalid repository path"),
        ("git-upload-pack '/v2/sandbox-org/platform/fleet-infra'", "Invalid repository path"),
        ("git-upload-pack '~/x'", "Invalid repository path"),
        ("git-receive-pack '/v3/o/p/../../../etc'", "Invalid repository path"),
    ],
)
def test_everything_else_is_refused(command: str | None, message: str) -> None:
    with pytest.raises(Refusal, match=message.replace("(", r"\(")):
        parse_request(command)


def test_authorized_key_entry_keeps_only_type_and_key() -> None:
    blob = (
        "AAAAB3NzaC1yc2EAAAADAQABAAABAQC7Hr1oTWqNqOlzGJOfGJ4NakVyIzf1rXYd4d7wo6jBlkLvCA4odBlL0mDUyZ0/QUfTTqeu+tm22gO="
    )
    assert authorized_key_entry(f"ssh-rsa {blob} someone@laptop") == f"ssh-rsa {blob}"
    # Options a user put in front would weaken the forced command: they are dropped.
    assert authorized_key_entry(f'command="/bin/sh",permitopen="*:*" ssh-rsa {blob}') == f"ssh-rsa {blob}"
    with pytest.raises(ValueError, match="not an OpenSSH public key line"):
        authorized_key_entry("ssh-rsa not-base64!")
