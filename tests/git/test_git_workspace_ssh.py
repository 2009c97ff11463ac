"""Workspace over SSH against the sandbox's sshd (Azure DevOps' v3 endpoint): keys, passphrases, host keys."""

from __future__ import annotations

import re
import stat
import subprocess
from pathlib import Path

import pytest
from git_checks import ed25519_key, fresh_clone, git_out, remote_heads, rsa_key, sandbox_ssh_auth

from flux_azdo.azdo.urls import parse_repository_url
from flux_azdo.errors import UserError
from flux_azdo.git import (
    Change,
    HostKeyMismatch,
    KeyRejected,
    SshAuth,
    Workspace,
    git_environment,
    known_hosts_for,
    remote_state,
)
from flux_azdo.sandbox.runtime import Sandbox


def connections(sandbox: Sandbox) -> int:
    """How many TCP connections sshd has accepted so far (LogLevel VERBOSE logs each one)."""
    assert sandbox.ssh is not None
    return sandbox.ssh.log_path.read_text(errors="replace").count("Connection from ")


def register(sandbox: Sandbox, public_line: str) -> None:
    """Like the service's SSH keys page: the key counts from the next connection on."""
    sandbox.world.add_ssh_key(sandbox.user, public_line)


def publish_one(sandbox: Sandbox, auth: SshAuth, tmp: Path, name: str) -> str:
    assert sandbox.ssh_url is not None
    with Workspace(sandbox.ssh_url, "main", auth, temp_parent=tmp) as workspace:
        result = workspace.publish(lambda root: [Change(f"add {name}", {f"clusters/{name}.yaml": name})])
    assert result.pushed and result.head is not None
    return result.head


def test_rsa_key_clone_commit_push(ssh_sandbox: Sandbox, tmp_path: Path) -> None:
    assert ssh_sandbox.ssh_url is not None
    auth = sandbox_ssh_auth(ssh_sandbox)
    with Workspace(ssh_sandbox.ssh_url, "main", auth, temp_parent=tmp_path) as workspace:
        assert workspace.state == "empty"
        first = workspace.publish(lambda root: [Change("first", {"a.txt": "a"})])
        assert first.created_branch
    second = publish_one(ssh_sandbox, auth, tmp_path, "b")
    assert remote_heads(ssh_sandbox) == {"main": second}
    clone = fresh_clone(ssh_sandbox, tmp_path)
    assert (clone / "a.txt").read_text() == "a" and (clone / "clusters/b.yaml").read_text() == "b"
    state = remote_state(ssh_sandbox.ssh_url, auth)
    assert (state.default_branch, dict(state.heads)) == ("main", {"main": second})


def test_rsa_key_with_a_passphrase(ssh_sandbox: Sandbox, tmp_path: Path) -> None:
    private, public = rsa_key("correct horse battery")
    register(ssh_sandbox, public)
    auth = SshAuth(private, "correct horse battery", ssh_sandbox.known_hosts_path.read_text())
    head = publish_one(ssh_sandbox, auth, tmp_path, "passphrase")
    assert remote_heads(ssh_sandbox) == {"main": head}


def test_wrong_passphrase_fails_before_connecting(ssh_sandbox: Sandbox, tmp_path: Path) -> None:
    private, public = rsa_key("right one")
    register(ssh_sandbox, public)
    before = connections(ssh_sandbox)
    assert ssh_sandbox.ssh_url is not None
    for passphrase, expected in (("wrong one", "passphrase of the SSH private key is wrong"), (None, "--password")):
        with pytest.raises(UserError, match=expected):
            Workspace(ssh_sandbox.ssh_url, "main", SshAuth(private, passphrase, "x"), temp_parent=tmp_path)
    assert connections(ssh_sandbox) == before


def test_ed25519_key_is_refused_before_connecting(ssh_sandbox: Sandbox, tmp_path: Path) -> None:
    private, public = ed25519_key()
    register(ssh_sandbox, public)  # even registered: Azure DevOps refuses the algorithm
    before = connections(ssh_sandbox)
    assert ssh_sandbox.ssh_url is not None
    auth = SshAuth(private, None, ssh_sandbox.known_hosts_path.read_text())
    with pytest.raises(UserError) as caught:
        Workspace(ssh_sandbox.ssh_url, "main", auth, temp_parent=tmp_path)
    message = caught.value.message
    assert "accepts RSA SSH keys only" in message and "this key is ed25519" in message
    assert "`ssh-keygen -t rsa -b 4096`" in message and "User settings > SSH public keys" in message
    assert connections(ssh_sandbox) == before
    assert not list(tmp_path.glob("flux-azdo-*"))


def test_unregistered_rsa_key_is_rejected(ssh_sandbox: Sandbox, tmp_path: Path) -> None:
    private, _ = rsa_key()
    assert ssh_sandbox.ssh_url is not None
    auth = SshAuth(private, None, ssh_sandbox.known_hosts_path.read_text())
    with pytest.raises(KeyRejected) as caught:
        remote_state(ssh_sandbox.ssh_url, auth)
    assert "refused the SSH key" in caught.value.message and "User settings > SSH public keys" in caught.value.message


def test_wrong_pinned_host_key_is_a_mismatch(ssh_sandbox: Sandbox, tmp_path: Path) -> None:
    _, impostor = rsa_key()
    host = ssh_sandbox.known_hosts_path.read_text().split()[0]
    auth = sandbox_ssh_auth(ssh_sandbox, known_hosts=f"{host} {' '.join(impostor.split()[:2])}\n")
    assert ssh_sandbox.ssh_url is not None
    with pytest.raises(HostKeyMismatch) as caught:
        Workspace(ssh_sandbox.ssh_url, "main", auth, temp_parent=tmp_path)
    assert "not the pinned one" in caught.value.message and "--ssh-known-hosts" in caught.value.message
    assert str(tmp_path) not in caught.value.message


def test_no_key_for_the_host_and_unagreeable_algorithms(ssh_sandbox: Sandbox, tmp_path: Path) -> None:
    assert ssh_sandbox.ssh_url is not None
    line = ssh_sandbox.known_hosts_path.read_text()
    other_host = sandbox_ssh_auth(ssh_sandbox, known_hosts=re.sub(r"^\[127\.0\.0\.1\]:\d+", "[127.0.0.1]:1", line))
    with pytest.raises(HostKeyMismatch, match="host key verification failed"):
        remote_state(ssh_sandbox.ssh_url, other_host)
    ed_only = sandbox_ssh_auth(ssh_sandbox, hostkey_algos=("ssh-ed25519",))
    with pytest.raises(HostKeyMismatch, match=r"offers rsa-sha2-512,rsa-sha2-256.*--ssh-hostkey-algos"):
        remote_state(ssh_sandbox.ssh_url, ed_only)
    with pytest.raises(UserError, match="--ssh-known-hosts"):
        remote_state(ssh_sandbox.ssh_url, sandbox_ssh_auth(ssh_sandbox, known_hosts=""))


def test_known_hosts_file_for_the_sandbox_host(ssh_sandbox: Sandbox, tmp_path: Path) -> None:
    assert ssh_sandbox.ssh_url is not None
    url = parse_repository_url(ssh_sandbox.ssh_url)
    unrelated = "example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
    known = tmp_path / "known hosts"
    known.write_text(unrelated + ssh_sandbox.known_hosts_path.read_text())
    lines = known_hosts_for(url, known)
    assert lines == ssh_sandbox.known_hosts_path.read_text()
    head = publish_one(ssh_sandbox, sandbox_ssh_auth(ssh_sandbox, known_hosts=lines), tmp_path, "pinned")
    assert remote_heads(ssh_sandbox)["main"] == head


def test_paths_with_spaces_and_quotes_are_quoted_for_the_shell(ssh_sandbox: Sandbox, tmp_path: Path) -> None:
    """git runs GIT_SSH_COMMAND through sh, and ssh splits and %-expands option values: both must see one path."""
    pwned = tmp_path / "pwned"
    # The folder's name holds `touch <absolute path>`: were it ever run by a shell, `pwned` would appear.
    parent = tmp_path / f"it's a folder; with spaces & 100%d `touch {pwned}` $(touch {pwned})"
    head = publish_one(ssh_sandbox, sandbox_ssh_auth(ssh_sandbox), parent, "quoted")
    assert remote_heads(ssh_sandbox)["main"] == head
    assert not pwned.exists() and not list(parent.iterdir())
    with pytest.raises(UserError, match="TMPDIR"):
        publish_one(ssh_sandbox, sandbox_ssh_auth(ssh_sandbox), tmp_path / "${HOME}", "refused")


def test_a_push_whose_reply_was_lost_over_ssh_is_reported_once(ssh_sandbox: Sandbox, tmp_path: Path) -> None:
    """sshd's side applies the push, then hangs up before git reads the result."""
    assert ssh_sandbox.ssh_url is not None
    produced: list[int] = []

    def produce(root: Path) -> list[Change]:
        produced.append(1)
        return [Change("Add Flux sync manifests", {"clusters/dev/sync.yaml": "s\n"})]

    retries: list[str] = []
    with Workspace(ssh_sandbox.ssh_url, "main", sandbox_ssh_auth(ssh_sandbox), temp_parent=tmp_path) as workspace:
        ssh_sandbox.azdo.faults.drop_after_next_push()
        result = workspace.publish(produce, on_retry=lambda n, why: retries.append(why))
    assert ssh_sandbox.azdo.faults.dropped_push_replies == 1
    assert len(retries) == 1 and "the connection failed" in retries[0]
    assert (result.pushed, result.created_branch, result.attempts, len(produced)) == (True, True, 1, 1)
    assert remote_heads(ssh_sandbox) == {"main": result.head} and [c.sha for c in result.commits] == [result.head]
    assert git_out(fresh_clone(ssh_sandbox, tmp_path), "rev-list", "--count", "HEAD").strip() == "1"


def test_ssh_environment_files_are_private_and_removed(ssh_sandbox: Sandbox, tmp_path: Path) -> None:
    private, _ = rsa_key("pass phrase")
    assert ssh_sandbox.ssh_url is not None
    tmp_path = tmp_path / "parent"
    auth = SshAuth(private, "pass phrase", ssh_sandbox.known_hosts_path.read_text())
    with git_environment(ssh_sandbox.ssh_url, auth, temp_parent=tmp_path) as env:
        (directory,) = tmp_path.glob("flux-azdo-git-*")
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        assert stat.S_IMODE((directory / "identity").stat().st_mode) == 0o600
        assert (directory / "identity").read_bytes() == private
        assert stat.S_IMODE((directory / "askpass").stat().st_mode) == 0o700
        command = env["GIT_SSH_COMMAND"]
        for option in (
            "-F /dev/null",
            "IdentitiesOnly=yes",
            "IdentityAgent=none",
            "StrictHostKeyChecking=yes",
            "GlobalKnownHostsFile=/dev/null",
            "HostKeyAlgorithms=rsa-sha2-512,rsa-sha2-256",
            "PubkeyAcceptedAlgorithms=rsa-sha2-512,rsa-sha2-256",
            "PasswordAuthentication=no",
            "KbdInteractiveAuthentication=no",
        ):
            assert option in command
        assert "BatchMode" not in command and "pass phrase" not in command
        assert env["SSH_ASKPASS_REQUIRE"] == "force"
        asked = subprocess.run([env["SSH_ASKPASS"], "Enter passphrase"], env=env, capture_output=True, text=True)
        assert asked.stdout == "pass phrase\n"
    assert not directory.exists()
    no_passphrase = sandbox_ssh_auth(ssh_sandbox)
    with git_environment(ssh_sandbox.ssh_url, no_passphrase, temp_parent=tmp_path) as env:
        assert "BatchMode=yes" in env["GIT_SSH_COMMAND"] and "SSH_ASKPASS" not in env
    assert not list(tmp_path.iterdir())
