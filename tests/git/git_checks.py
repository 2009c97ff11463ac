"""Helpers for the git layer's tests: credentials for the sandbox, keys, and an independent look at the remote.

What a test asserts about the remote is read with the plain `git` CLI (support.azdo_world.GitCli), not with the
code under test.
"""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from flux_azdo.azdo.credentials import AzureDevOpsToken
from flux_azdo.git import SshAuth, TokenAuth
from flux_azdo.sandbox.runtime import Sandbox
from support.azdo_world import GitCli


def pat_auth(sandbox: Sandbox, token: str | None = None) -> TokenAuth:
    return TokenAuth(AzureDevOpsToken(token or sandbox.pat, "basic", "password", "--password"))


def job_auth(sandbox: Sandbox, scheme: str = "bearer") -> TokenAuth:
    return TokenAuth(AzureDevOpsToken(sandbox.job_token, scheme, "job-token", "SYSTEM_ACCESSTOKEN"))  # type: ignore[arg-type]


def sandbox_ssh_auth(sandbox: Sandbox, **changes: object) -> SshAuth:
    assert sandbox.ssh_key_path is not None
    values: dict[str, object] = {
        "private_key": sandbox.ssh_key_path.read_bytes(),
        "known_hosts": sandbox.known_hosts_path.read_text(),
    }
    values.update(changes)
    return SshAuth(**values)  # type: ignore[arg-type]


def rsa_key(passphrase: str | None = None, bits: int = 2048) -> tuple[bytes, str]:
    """(private key file bytes in OpenSSH format, public key line)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.encode()) if passphrase else serialization.NoEncryption()
    )
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, encryption)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, public.decode() + " test-key"


def ed25519_key() -> tuple[bytes, str]:
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, public.decode() + " test-ed25519"


def fresh_clone(sandbox: Sandbox, tmp: Path, branch: str = "main", name: str = "verify") -> Path:
    """A full clone of `branch` with the admin's PAT through the plain git CLI."""
    home = tmp / name
    home.mkdir(parents=True, exist_ok=True)
    git = GitCli(home, sandbox.pat)
    git.run("clone", "--quiet", "--branch", branch, sandbox.repo_url, str(home / "work"), check=True)
    return home / "work"


def git_out(checkout: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args],
        cwd=checkout,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(checkout.parent), "GIT_CONFIG_NOSYSTEM": "1"},
    )
    return done.stdout


def remote_heads(sandbox: Sandbox) -> dict[str, str]:
    """Branch -> sha as the server's bare repository has them (read directly, no network)."""
    done = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads"],
        env={"PATH": "/usr/bin:/bin", "GIT_DIR": str(sandbox.repository.git_dir), "GIT_CONFIG_NOSYSTEM": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    heads = {}
    for line in done.stdout.splitlines():
        name, sha = line.split(" ", 1)
        heads[name] = sha
    return heads


def secret_key_lines(private: bytes) -> list[str]:
    """The base64 lines of an OpenSSH private key file that encode only its private (encrypted) section.

    The file also carries the public key in clear (header, cipher, KDF, public blob); those lines may legitimately
    show up wherever the public key is registered, such as sshd's authorized_keys.
    """
    lines = [line for line in private.decode().splitlines() if "-----" not in line]
    data = base64.b64decode("".join(lines))
    offset = len(b"openssh-key-v1\0")
    for _ in range(3):  # cipher name, KDF name, KDF options
        offset += 4 + int.from_bytes(data[offset : offset + 4], "big")
    offset += 4  # number of keys
    offset += 4 + int.from_bytes(data[offset : offset + 4], "big")  # the public key
    private_start = offset + 4
    found, position = [], 0
    for line in lines:
        if position * 3 // 4 >= private_start and len(line) >= 16:
            found.append(line)
        position += len(line)
    return found
