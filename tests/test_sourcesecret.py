"""The Git credentials Secret source-controller reads (reference §5), built from real ssh-keygen keys."""

from __future__ import annotations

import base64
import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from flux_azdo.errors import UserError
from flux_azdo.manifests.azure_devops import AZURE_DEVOPS_HOST_KEY
from flux_azdo.manifests.sourcesecret import (
    SourceSecret,
    SSHKey,
    bearer_secret,
    known_hosts_for,
    load_ssh_key,
    read_ssh_key,
    require_azure_devops_key,
    ssh_secret,
    token_secret,
)

SSH_KEYGEN = "/usr/bin/ssh-keygen"
PASSPHRASE = "Pp-9f3c1e77-correct horse"
WRONG_PASSPHRASE = "Pp-not-the-right-one-42"
TOKEN = "pat-7Qz9xK2mW4vB8nR1tY6uJ3hL5sD0fG"
MICROSOFT_FINGERPRINT = "ohD8VZEXGWo6Ez8GSEJQ9WpafgLFsOfLOtGGQCQo6Og"
AZURE_HOSTS = ("ssh.dev.azure.com", "vs-ssh.visualstudio.com")


@dataclass(frozen=True)
class KeyFile:
    path: Path
    passphrase: str | None
    algorithm: str
    bits: int

    @property
    def encrypted(self) -> bool:
        return self.passphrase is not None

    @property
    def pub_fields(self) -> list[str]:
        return Path(f"{self.path}.pub").read_text().split(" ")[:2]

    @property
    def body_lines(self) -> list[str]:
        """The base64 lines of the private key (no armour, no PEM headers)."""
        lines = self.path.read_text().splitlines()
        return [line for line in lines if line and not line.startswith("-----") and ":" not in line]


# name: (ssh-keygen arguments, passphrase, algorithm, bits)
KEY_SPECS: dict[str, tuple[list[str], str | None, str, int]] = {
    "rsa-openssh": (["-t", "rsa", "-b", "2048"], None, "rsa", 2048),
    "rsa-openssh-enc": (["-t", "rsa", "-b", "2048"], PASSPHRASE, "rsa", 2048),
    "rsa-pem": (["-t", "rsa", "-b", "2048", "-m", "PEM"], None, "rsa", 2048),
    "rsa-pem-enc": (["-t", "rsa", "-b", "2048", "-m", "PEM"], PASSPHRASE, "rsa", 2048),
    "rsa-pkcs8": (["-t", "rsa", "-b", "2048", "-m", "PKCS8"], None, "rsa", 2048),
    "rsa-pkcs8-enc": (["-t", "rsa", "-b", "2048", "-m", "PKCS8"], PASSPHRASE, "rsa", 2048),
    "ed25519": (["-t", "ed25519"], None, "ed25519", 256),
    "ecdsa": (["-t", "ecdsa", "-b", "256"], None, "ecdsa", 256),
}
ALL_KEYS = sorted(KEY_SPECS)
ENCRYPTED_KEYS = sorted(name for name, spec in KEY_SPECS.items() if spec[1] is not None)
PLAIN_KEYS = sorted(name for name, spec in KEY_SPECS.items() if spec[1] is None)
RSA_KEYS = sorted(name for name, spec in KEY_SPECS.items() if spec[2] == "rsa")
NON_RSA_KEYS = sorted(name for name, spec in KEY_SPECS.items() if spec[2] != "rsa")


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KeyFile]:
    folder = tmp_path_factory.mktemp("sshkeys")
    made: dict[str, KeyFile] = {}
    for name, (args, passphrase, algorithm, bits) in KEY_SPECS.items():
        path = folder / name
        subprocess.run(
            [SSH_KEYGEN, "-q", *args, "-N", passphrase or "", "-C", "test", "-f", str(path)],
            check=True,
            capture_output=True,
        )
        made[name] = KeyFile(path, passphrase, algorithm, bits)
    return made


def loaded(key: KeyFile) -> SSHKey:
    return read_ssh_key(key.path, key.passphrase)


def assert_one_line(message: str) -> None:
    assert message
    assert "\n" not in message
    assert "\r" not in message


def assert_no_key_material(text: str, key: KeyFile) -> None:
    # OpenSSH and PKCS#8 files embed the public key; only the private part is secret.
    text = text.replace(key.pub_fields[1], "<public key>")
    for line in key.body_lines:
        assert line not in text
    assert PASSPHRASE not in text
    assert WRONG_PASSPHRASE not in text


# 1. token_secret


def test_token_secret_has_username_git_and_password_only() -> None:
    secret = token_secret("flux-system", "flux-system", TOKEN)
    assert dict(secret.string_data) == {"username": "git", "password": TOKEN}


def test_token_secret_custom_username() -> None:
    secret = token_secret("flux-system", "flux-system", TOKEN, username="build-agent")
    assert dict(secret.string_data) == {"username": "build-agent", "password": TOKEN}


def test_token_secret_empty_username_falls_back_to_git() -> None:
    secret = token_secret("flux-system", "flux-system", TOKEN, username="")
    assert secret.string_data["username"] == "git"


def test_token_secret_adds_ca_crt_only_when_given() -> None:
    ca = "-----BEGIN CERTIFICATE-----\nMIIBcA==\n-----END CERTIFICATE-----\n"
    with_ca = token_secret("flux-system", "flux-system", TOKEN, ca_crt=ca)
    assert dict(with_ca.string_data) == {"username": "git", "password": TOKEN, "ca.crt": ca}
    for absent in (None, ""):
        without = token_secret("flux-system", "flux-system", TOKEN, ca_crt=absent)
        assert "ca.crt" not in without.string_data


def test_token_secret_empty_password_is_a_user_error() -> None:
    with pytest.raises(UserError) as caught:
        token_secret("flux-system", "flux-system", "")
    message = str(caught.value)
    assert "--password" in message or "GIT_PASSWORD" in message
    assert_one_line(message)


def test_manifest_is_an_opaque_v1_secret_with_string_data() -> None:
    manifest = token_secret("git-creds", "gitops", TOKEN, username="me").manifest()
    assert manifest == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "git-creds", "namespace": "gitops"},
        "stringData": {"username": "me", "password": TOKEN},
    }
    assert "type" not in manifest
    assert "data" not in manifest


def test_manifest_string_data_is_a_copy() -> None:
    secret = token_secret("flux-system", "flux-system", TOKEN)
    secret.manifest()["stringData"]["password"] = "tampered"
    assert secret.manifest()["stringData"]["password"] == TOKEN


# 2. bearer_secret


def test_bearer_secret_has_only_bearer_token() -> None:
    secret = bearer_secret("flux-system", "flux-system", TOKEN)
    assert dict(secret.string_data) == {"bearerToken": TOKEN}
    manifest = secret.manifest()
    assert manifest["stringData"] == {"bearerToken": TOKEN}
    assert "type" not in manifest
    assert "data" not in manifest


def test_bearer_secret_adds_ca_crt_when_given() -> None:
    ca = "-----BEGIN CERTIFICATE-----\nMIIBcA==\n-----END CERTIFICATE-----\n"
    secret = bearer_secret("flux-system", "flux-system", TOKEN, ca_crt=ca)
    assert dict(secret.string_data) == {"bearerToken": TOKEN, "ca.crt": ca}


def test_bearer_secret_empty_token_is_a_user_error() -> None:
    with pytest.raises(UserError) as caught:
        bearer_secret("flux-system", "flux-system", "")
    assert_one_line(str(caught.value))


# 3. repr / str never show secrets


@pytest.mark.parametrize("render", [repr, str])
def test_token_and_bearer_secrets_do_not_render_the_token(render) -> None:
    for secret in (
        token_secret("flux-system", "flux-system", TOKEN),
        bearer_secret("flux-system", "flux-system", TOKEN),
    ):
        text = render(secret)
        assert "flux-system" in text  # it does render something useful
        assert TOKEN not in text


@pytest.mark.parametrize("render", [repr, str])
@pytest.mark.parametrize("name", ALL_KEYS)
def test_ssh_key_and_secret_do_not_render_key_material(keys: dict[str, KeyFile], name: str, render) -> None:
    key_file = keys[name]
    key = loaded(key_file)
    secret = ssh_secret("flux-system", "flux-system", key, "example.com ssh-ed25519 AAAA", key_file.passphrase)
    for text in (render(key), render(secret)):
        assert key.identity not in text
        assert_no_key_material(text, key_file)
    assert isinstance(secret, SourceSecret)


# 4. load_ssh_key / read_ssh_key for every format


@pytest.mark.parametrize("name", ALL_KEYS)
def test_read_ssh_key_loads_every_format(keys: dict[str, KeyFile], name: str) -> None:
    key_file = keys[name]
    key = read_ssh_key(key_file.path, key_file.passphrase)
    assert key.algorithm == key_file.algorithm
    assert key.bits == key_file.bits
    assert key.encrypted is key_file.encrypted
    raw = key_file.path.read_bytes()
    assert key.identity == raw.decode("ascii")
    assert key.identity.encode("ascii") == raw


@pytest.mark.parametrize("name", ALL_KEYS)
def test_load_ssh_key_from_bytes_matches_read(keys: dict[str, KeyFile], name: str) -> None:
    key_file = keys[name]
    key = load_ssh_key(key_file.path.read_bytes(), key_file.passphrase, "the key")
    assert key == read_ssh_key(key_file.path, key_file.passphrase)


@pytest.mark.parametrize("name", ALL_KEYS)
def test_public_key_matches_ssh_keygen_pub_file(keys: dict[str, KeyFile], name: str) -> None:
    key_file = keys[name]
    public = loaded(key_file).public_key
    assert public.endswith("\n")
    assert not public.endswith("\n\n")
    line = public[:-1]
    assert "\n" not in line
    fields = line.split(" ")
    assert len(fields) == 2, "no comment in the derived public key"
    assert fields == key_file.pub_fields


def test_the_bits_reported_follow_the_key_size(tmp_path: Path) -> None:
    path = tmp_path / "rsa3072"
    subprocess.run([SSH_KEYGEN, "-q", "-t", "rsa", "-b", "3072", "-N", "", "-C", "test", "-f", str(path)], check=True)
    key = read_ssh_key(path, None)
    assert (key.algorithm, key.bits) == ("rsa", 3072)


# 5. passphrases


@pytest.mark.parametrize("name", ENCRYPTED_KEYS)
@pytest.mark.parametrize("passphrase", [None, ""])
def test_encrypted_key_without_passphrase_says_so(keys: dict[str, KeyFile], name: str, passphrase: str | None) -> None:
    key_file = keys[name]
    with pytest.raises(UserError) as caught:
        read_ssh_key(key_file.path, passphrase)
    message = str(caught.value)
    assert "encrypted" in message
    assert "--password" in message
    assert str(key_file.path) in message
    assert_one_line(message)
    assert_no_key_material(message, key_file)


@pytest.mark.parametrize("name", ENCRYPTED_KEYS)
def test_wrong_passphrase_is_a_user_error(keys: dict[str, KeyFile], name: str) -> None:
    key_file = keys[name]
    with pytest.raises(UserError) as caught:
        read_ssh_key(key_file.path, WRONG_PASSPHRASE)
    message = str(caught.value)
    assert "passphrase" in message
    assert str(key_file.path) in message
    assert_one_line(message)
    assert_no_key_material(message, key_file)


@pytest.mark.parametrize("name", PLAIN_KEYS)
def test_passphrase_for_unencrypted_key_is_ignored(keys: dict[str, KeyFile], name: str) -> None:
    key_file = keys[name]
    key = read_ssh_key(key_file.path, PASSPHRASE)
    assert key.encrypted is False
    assert key.algorithm == key_file.algorithm
    assert key.identity == key_file.path.read_text()
    assert key.public_key.split() == key_file.pub_fields
    secret = ssh_secret("flux-system", "flux-system", key, "example.com ssh-ed25519 AAAA", PASSPHRASE)
    assert "password" not in secret.string_data
    assert PASSPHRASE not in secret.manifest()["stringData"].values()


# 6. unreadable key files


def test_missing_key_file(tmp_path: Path) -> None:
    path = tmp_path / "does-not-exist"
    with pytest.raises(UserError) as caught:
        read_ssh_key(path, None)
    message = str(caught.value)
    assert str(path) in message
    assert_one_line(message)


def test_key_path_is_a_directory(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.mkdir()
    with pytest.raises(UserError) as caught:
        read_ssh_key(path, None)
    message = str(caught.value)
    assert str(path) in message
    assert_one_line(message)


def test_key_path_below_a_regular_file(keys: dict[str, KeyFile]) -> None:
    path = keys["ed25519"].path / "identity"
    with pytest.raises(UserError) as caught:
        read_ssh_key(path, None)
    message = str(caught.value)
    assert str(path) in message
    assert_one_line(message)


@pytest.mark.parametrize(
    "content",
    [
        "just some notes about my cluster\nsecret-ish: Zk9vYmFyQmF6cXV4\n",
        "",
    ],
)
def test_text_file_that_is_not_a_key(tmp_path: Path, content: str) -> None:
    path = tmp_path / "notes.txt"
    path.write_text(content)
    with pytest.raises(UserError) as caught:
        read_ssh_key(path, None)
    message = str(caught.value)
    assert "not a private key" in message
    assert str(path) in message
    assert_one_line(message)
    assert "Zk9vYmFyQmF6cXV4" not in message


def test_public_key_file_is_not_a_private_key(keys: dict[str, KeyFile]) -> None:
    path = Path(f"{keys['ed25519'].path}.pub")
    with pytest.raises(UserError) as caught:
        read_ssh_key(path, None)
    message = str(caught.value)
    assert "not a private key" in message
    assert keys["ed25519"].pub_fields[1] not in message


# 7. error messages: one line, no key material, no passphrase


@pytest.mark.parametrize("name", ALL_KEYS)
@pytest.mark.parametrize("passphrase", [None, WRONG_PASSPHRASE])
def test_damaged_key_error_is_one_line_without_secrets(
    keys: dict[str, KeyFile], tmp_path: Path, name: str, passphrase: str | None
) -> None:
    key_file = keys[name]
    data = key_file.path.read_bytes()
    damaged = data[: len(data) // 2] + b"\n"
    with pytest.raises(UserError) as caught:
        load_ssh_key(damaged, passphrase, f"--private-key-file {key_file.path}")
    message = str(caught.value)
    assert_one_line(message)
    assert_no_key_material(message, key_file)
    assert str(key_file.path) in message


def test_error_origin_with_newlines_stays_one_line(keys: dict[str, KeyFile]) -> None:
    key_file = keys["rsa-openssh-enc"]
    with pytest.raises(UserError) as caught:
        load_ssh_key(key_file.path.read_bytes(), WRONG_PASSPHRASE, "key\nfrom\nstdin")
    message = str(caught.value)
    assert_one_line(message)
    assert_no_key_material(message, key_file)


# 8. require_azure_devops_key


@pytest.mark.parametrize("name", RSA_KEYS)
@pytest.mark.parametrize(
    "host", ["ssh.dev.azure.com", "SSH.Dev.Azure.COM", "vs-ssh.visualstudio.com", "VS-SSH.VisualStudio.com"]
)
def test_rsa_keys_are_accepted_by_azure_devops(keys: dict[str, KeyFile], name: str, host: str) -> None:
    assert require_azure_devops_key(loaded(keys[name]), host) is None


@pytest.mark.parametrize("name", NON_RSA_KEYS)
@pytest.mark.parametrize("host", ["ssh.dev.azure.com", "SSH.DEV.AZURE.COM", "vs-ssh.visualstudio.com"])
def test_non_rsa_keys_are_refused_for_azure_devops(keys: dict[str, KeyFile], name: str, host: str) -> None:
    key_file = keys[name]
    with pytest.raises(UserError) as caught:
        require_azure_devops_key(loaded(key_file), host)
    message = str(caught.value)
    assert "RSA" in message
    assert "ssh-keygen -t rsa-sha2-512" in message
    assert key_file.algorithm in message
    assert_one_line(message)
    assert_no_key_material(message, key_file)


@pytest.mark.parametrize("name", ALL_KEYS)
def test_any_key_is_accepted_for_other_hosts(keys: dict[str, KeyFile], name: str) -> None:
    assert require_azure_devops_key(loaded(keys[name]), "github.com") is None


# 9. known_hosts_for


def test_pinned_host_key_has_microsofts_fingerprint() -> None:
    key_type, blob_b64 = AZURE_DEVOPS_HOST_KEY.split(" ")
    assert key_type == "ssh-rsa"
    blob = base64.b64decode(blob_b64, validate=True)
    assert blob[:11] == b"\x00\x00\x00\x07ssh-rsa"
    fingerprint = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    assert fingerprint == MICROSOFT_FINGERPRINT


@pytest.mark.parametrize("host", AZURE_HOSTS)
@pytest.mark.parametrize("port", [None, 22])
def test_known_hosts_for_azure_devops_is_the_pinned_key(host: str, port: int | None) -> None:
    assert known_hosts_for(host, port) == f"{host} {AZURE_DEVOPS_HOST_KEY}"


@pytest.mark.parametrize("host", AZURE_HOSTS)
def test_known_hosts_for_azure_devops_on_another_port_is_bracketed(host: str) -> None:
    assert known_hosts_for(host, 2222) == f"[{host}]:2222 {AZURE_DEVOPS_HOST_KEY}"


def test_known_hosts_for_azure_devops_with_mixed_case_host() -> None:
    line = known_hosts_for("SSH.Dev.Azure.com", None)
    target, key = line.split(" ", 1)
    assert target.lower() == "ssh.dev.azure.com"
    assert key == AZURE_DEVOPS_HOST_KEY


@pytest.mark.parametrize("host", AZURE_HOSTS)
def test_user_known_hosts_is_ignored_for_azure_devops(host: str) -> None:
    given = f"{host} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMITMInTheMiddleKeyXXXXXXXXXXXXXXXXXXXXXXXXXX\n"
    assert known_hosts_for(host, None, given) == f"{host} {AZURE_DEVOPS_HOST_KEY}"


@pytest.mark.parametrize("port", [None, 22, 2222])
def test_user_known_hosts_is_used_stripped_for_other_hosts(port: int | None) -> None:
    line = "git.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleExampleExampleExampleExampleExampl"
    given = f"\n  {line}\n\n"
    assert known_hosts_for("git.example.com", port, given) == line


def test_multi_line_user_known_hosts_is_kept_whole() -> None:
    lines = "github.com ssh-ed25519 AAAAone\ngithub.com ecdsa-sha2-nistp256 AAAAtwo"
    assert known_hosts_for("github.com", None, lines + "\n") == lines


@pytest.mark.parametrize("given", [None, "", "  \n\t\n"])
def test_other_host_without_known_hosts_is_a_user_error(given: str | None) -> None:
    with pytest.raises(UserError) as caught:
        known_hosts_for("github.com", None, given)
    message = str(caught.value)
    assert "--ssh-known-hosts" in message
    assert "github.com" in message
    assert_one_line(message)


# 10. ssh_secret


@pytest.mark.parametrize("name", PLAIN_KEYS)
def test_ssh_secret_for_unencrypted_key(keys: dict[str, KeyFile], name: str) -> None:
    key = loaded(keys[name])
    known_hosts = known_hosts_for("ssh.dev.azure.com", None)
    secret = ssh_secret("flux-system", "flux-system", key, known_hosts)
    assert dict(secret.string_data) == {
        "identity": keys[name].path.read_text(),
        "identity.pub": key.public_key,
        "known_hosts": known_hosts,
    }
    manifest = secret.manifest()
    assert manifest["apiVersion"] == "v1"
    assert manifest["kind"] == "Secret"
    assert manifest["metadata"] == {"name": "flux-system", "namespace": "flux-system"}
    assert manifest["stringData"] == dict(secret.string_data)
    assert "type" not in manifest
    assert "data" not in manifest


@pytest.mark.parametrize("name", ENCRYPTED_KEYS)
def test_ssh_secret_for_encrypted_key_stores_the_passphrase(keys: dict[str, KeyFile], name: str) -> None:
    key = loaded(keys[name])
    known_hosts = known_hosts_for("vs-ssh.visualstudio.com", None)
    secret = ssh_secret("git-ssh", "gitops", key, known_hosts, PASSPHRASE)
    assert dict(secret.string_data) == {
        "identity": keys[name].path.read_text(),
        "identity.pub": key.public_key,
        "known_hosts": known_hosts,
        "password": PASSPHRASE,
    }
    assert secret.manifest()["metadata"] == {"name": "git-ssh", "namespace": "gitops"}


@pytest.mark.parametrize("name", PLAIN_KEYS)
def test_ssh_secret_without_passphrase_has_no_password(keys: dict[str, KeyFile], name: str) -> None:
    secret = ssh_secret("flux-system", "flux-system", loaded(keys[name]), "h ssh-rsa AAAA", None)
    assert set(secret.string_data) == {"identity", "identity.pub", "known_hosts"}
