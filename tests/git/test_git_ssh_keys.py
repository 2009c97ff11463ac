"""Private keys read as OpenSSH reads them, fingerprints as ssh-keygen prints them, host keys never scanned."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import pytest

from flux_azdo.azdo.urls import parse_repository_url
from flux_azdo.errors import UserError
from flux_azdo.git import inspect_private_key, known_hosts_for, require_rsa
from flux_azdo.manifests.azure_devops import AZURE_DEVOPS_HOST_KEY

needs_keygen = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen (openssh-client) is missing")


def keygen(path: Path, *args: str, passphrase: str = "") -> Path:
    subprocess.run(["ssh-keygen", "-q", "-N", passphrase, "-C", "test", "-f", str(path), *args], check=True)
    return path


def fingerprint(public: Path) -> tuple[int, str]:
    bits, digest = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(public)], capture_output=True, text=True
    ).stdout.split()[:2]
    return int(bits), digest


@needs_keygen
@pytest.mark.parametrize(
    ("name", "args", "passphrase", "algorithm"),
    [
        ("rsa", ("-t", "rsa", "-b", "2048"), "", "rsa"),
        ("rsa-pass", ("-t", "rsa", "-b", "2048"), "secret pass", "rsa"),
        ("rsa-pem", ("-t", "rsa", "-b", "2048", "-m", "PEM"), "pem-pass", "rsa"),
        ("rsa-pkcs8", ("-t", "rsa", "-b", "2048", "-m", "PKCS8"), "", "rsa"),
        ("ed25519", ("-t", "ed25519"), "", "ed25519"),
        ("ecdsa", ("-t", "ecdsa", "-b", "384"), "ec-pass", "ecdsa"),
    ],
)
def test_inspect_matches_ssh_keygen(
    tmp_path: Path, name: str, args: tuple[str, ...], passphrase: str, algorithm: str
) -> None:
    key = keygen(tmp_path / name, *args, passphrase=passphrase)
    info = inspect_private_key(key.read_bytes(), passphrase or None)
    bits, digest = fingerprint(Path(f"{key}.pub"))
    assert (info.algorithm, info.bits, info.fingerprint) == (algorithm, bits, digest)


@needs_keygen
def test_passphrase_problems_are_one_line_user_errors(tmp_path: Path) -> None:
    key = keygen(tmp_path / "rsa", "-t", "rsa", "-b", "2048", passphrase="the right one").read_bytes()
    pem = keygen(tmp_path / "pem", "-t", "rsa", "-b", "2048", "-m", "PEM", passphrase="the right one").read_bytes()
    for data in (key, pem):
        with pytest.raises(UserError, match="protected by a passphrase: pass it with --password"):
            inspect_private_key(data, None)
        with pytest.raises(UserError, match="passphrase of the SSH private key is wrong") as caught:
            inspect_private_key(data, "the wrong one")
        assert "\n" not in str(caught.value) and "the wrong one" not in str(caught.value)
    plain = keygen(tmp_path / "plain", "-t", "ed25519").read_bytes()
    assert inspect_private_key(plain, "a token given as --password").algorithm == "ed25519"


@needs_keygen
def test_files_that_are_not_private_keys(tmp_path: Path) -> None:
    key = keygen(tmp_path / "k", "-t", "ed25519")
    with pytest.raises(UserError, match="holds a public key: pass the private key file"):
        inspect_private_key(Path(f"{key}.pub").read_bytes(), None)
    for data in (
        b"",
        b"hello world\n",
        b"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
    ):
        with pytest.raises(UserError, match="cannot be read"):
            inspect_private_key(data, None)


@needs_keygen
def test_require_rsa(tmp_path: Path) -> None:
    rsa = inspect_private_key(keygen(tmp_path / "r", "-t", "rsa", "-b", "2048").read_bytes(), None)
    require_rsa(rsa, "ssh.dev.azure.com")
    ed = inspect_private_key(keygen(tmp_path / "e", "-t", "ed25519").read_bytes(), None)
    with pytest.raises(UserError) as caught:
        require_rsa(ed, "ssh.dev.azure.com")
    assert caught.value.message == (
        f"ssh.dev.azure.com accepts RSA SSH keys only, and this key is ed25519 ({ed.fingerprint}): create one with "
        "`ssh-keygen -t rsa -b 4096` and add its public key (.pub) in User settings > SSH public keys"
    )


def test_azure_devops_hosts_use_the_built_in_key() -> None:
    for url in ("git@ssh.dev.azure.com:v3/contoso/Fleet/fleet-infra", "contoso@vs-ssh.visualstudio.com:v3/contoso/p/r"):
        lines = known_hosts_for(parse_repository_url(url), None)
        assert lines == (
            f"ssh.dev.azure.com {AZURE_DEVOPS_HOST_KEY}\nvs-ssh.visualstudio.com {AZURE_DEVOPS_HOST_KEY}\n"
        )
    moved = dataclasses.replace(parse_repository_url("git@ssh.dev.azure.com:v3/o/p/r"), port=2222)
    assert known_hosts_for(moved, None).splitlines()[0] == f"[ssh.dev.azure.com]:2222 {AZURE_DEVOPS_HOST_KEY}"


def test_other_hosts_need_a_known_hosts_file(tmp_path: Path) -> None:
    url = parse_repository_url("ssh://git@git.example.org:2222/team/fleet.git")
    with pytest.raises(
        UserError, match=r"no trusted SSH host key for \[git.example.org\]:2222: pass --ssh-known-hosts"
    ):
        known_hosts_for(url, None)
    line = "[git.example.org]:2222 ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7"
    known = tmp_path / "known_hosts"
    known.write_text(f"# comment\ngit.example.org ssh-rsa AAAAother\n{line}\nelse.example ssh-rsa AAAAx\n")
    assert known_hosts_for(url, known) == line + "\n"
    known.write_text("git.example.org ssh-rsa AAAAother\n")
    with pytest.raises(UserError, match=r"has no key for \[git.example.org\]:2222"):
        known_hosts_for(url, known)
    with pytest.raises(UserError, match="cannot read the known_hosts file"):
        known_hosts_for(url, tmp_path / "missing")


@needs_keygen
def test_hashed_known_hosts_entries_match(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("[git.example.org]:2222 ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7\nother.example ssh-rsa AAAAy\n")
    subprocess.run(["ssh-keygen", "-H", "-f", str(known)], check=True, capture_output=True)
    assert known.read_text().startswith("|1|")
    lines = known_hosts_for(parse_repository_url("ssh://git@git.example.org:2222/team/fleet.git"), known)
    assert lines.count("\n") == 1 and lines.startswith("|1|") and lines.endswith("AAAAB3NzaC1yc2EAAAADAQABAAABAQC7\n")


def test_known_hosts_patterns_as_openssh_reads_them(tmp_path: Path) -> None:
    url = parse_repository_url("ssh://git@git.example.org:2222/team/fleet.git")
    default_port = parse_repository_url("git@git.example.org:team/fleet.git")
    known = tmp_path / "known_hosts"
    lines = {
        "wild": "*.example.org ssh-rsa AAAAwild",
        "wild-port": "[*.example.org]:2222 ssh-rsa AAAAwildport",
        "question": "[git.example.or?]:222? ssh-rsa AAAAquestion",
        "negated": "*.example.org,!git.example.org ssh-rsa AAAAnegated",
        "negated-port": "[*.example.org]:*,![git.example.org]:2222 ssh-rsa AAAAnegatedport",
        "list": "other.example,GIT.example.org ssh-ed25519 AAAAlist",
        "revoked": "@revoked [git.example.org]:2222 ssh-rsa AAAArevoked",
        "other": "gitXexample.org ssh-rsa AAAAother",
    }
    known.write_text("\n".join(lines.values()) + "\n")
    chosen = known_hosts_for(url, known).splitlines()
    assert chosen == [lines["wild-port"], lines["question"], lines["revoked"]]
    chosen = known_hosts_for(default_port, known).splitlines()
    # `.` is literal (not a regex wildcard), and a negated match drops the line whatever else matches.
    assert chosen == [lines["wild"], lines["list"]]


@needs_keygen
def test_a_wrong_passphrase_is_named_even_when_decryption_happens_to_pad(tmp_path: Path) -> None:
    """About one wrong passphrase in 256 decrypts a PEM key to correctly padded garbage: cryptography then says
    the data cannot be parsed, not that the password is wrong. It is still the passphrase."""
    from cryptography.hazmat.primitives import serialization

    data = keygen(tmp_path / "pem", "-t", "rsa", "-b", "1024", "-m", "PEM", passphrase="right").read_bytes()
    for attempt in range(20000):
        wrong = f"wrong-{attempt}"
        try:
            serialization.load_pem_private_key(data, wrong.encode())
        except ValueError as error:
            if "password" not in str(error).lower():
                break
    else:
        pytest.fail("no passphrase decrypted to a correctly padded block")
    with pytest.raises(UserError, match="passphrase of the SSH private key is wrong"):
        inspect_private_key(data, wrong)
