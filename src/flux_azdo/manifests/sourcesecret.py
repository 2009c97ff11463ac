"""The Git credentials Secret source-controller reads (`--secret-name`, default flux-system).

Same keys as Flux's `sourcesecret.GenerateGit`: `username`/`password` (+`ca.crt`) for a
token, `bearerToken`, or `identity`/`identity.pub`/`known_hosts` (+`password`) for SSH.
Applying it to the cluster is the cluster layer's job; this module only builds it.
Secret values never appear in a repr or an error message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flux_azdo.errors import UserError
from flux_azdo.manifests.azure_devops import AZURE_DEVOPS_HOST_KEY, is_azure_devops_ssh_host

_RSA_HELP = (
    "create one with `ssh-keygen -t rsa-sha2-512 -b 4096 -f flux-azdo` and add flux-azdo.pub under "
    "Azure DevOps User settings > SSH public keys"
)


@dataclass(frozen=True)
class SourceSecret:
    """An Opaque Secret written with stringData, as Flux writes it."""

    name: str
    namespace: str
    string_data: Mapping[str, str] = field(repr=False)

    def manifest(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "stringData": dict(self.string_data),
        }


@dataclass(frozen=True)
class SSHKey:
    """A private key as the user gave it, with what Flux derives from it."""

    identity: str = field(repr=False)  # the file's bytes, verbatim
    public_key: str  # authorized_keys form, newline-terminated
    algorithm: str  # rsa, ed25519, ecdsa or dsa
    bits: int
    encrypted: bool


def token_secret(
    name: str, namespace: str, password: str, username: str = "git", ca_crt: str | None = None
) -> SourceSecret:
    if not password:
        raise UserError("the Git token is empty: pass a personal access token with --password or GIT_PASSWORD")
    data = {"username": username or "git", "password": password}
    if ca_crt:
        data["ca.crt"] = ca_crt
    return SourceSecret(name, namespace, data)


def bearer_secret(name: str, namespace: str, token: str, ca_crt: str | None = None) -> SourceSecret:
    if not token:
        raise UserError("the bearer token is empty: pass the token with --password or GIT_PASSWORD")
    data = {"bearerToken": token}
    if ca_crt:
        data["ca.crt"] = ca_crt
    return SourceSecret(name, namespace, data)


def ssh_secret(name: str, namespace: str, key: SSHKey, known_hosts: str, passphrase: str | None = None) -> SourceSecret:
    data = {"identity": key.identity, "identity.pub": key.public_key, "known_hosts": known_hosts}
    if passphrase and key.encrypted:
        data["password"] = passphrase
    return SourceSecret(name, namespace, data)


def _algorithm(private_key: object) -> tuple[str, int]:
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa

    if isinstance(private_key, rsa.RSAPrivateKey):
        return "rsa", private_key.key_size
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return "ed25519", 256
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        return "ecdsa", private_key.key_size
    if isinstance(private_key, dsa.DSAPrivateKey):
        return "dsa", private_key.key_size
    return type(private_key).__name__, 0


def load_ssh_key(data: bytes, passphrase: str | None, origin: str) -> SSHKey:
    """Load an OpenSSH, PEM (PKCS#1/SEC1) or PKCS#8 private key, encrypted or not."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    try:
        text = data.decode("utf-8")  # kept verbatim as the Secret's identity
    except UnicodeDecodeError:
        raise UserError(f"{origin} is not a private key: give an OpenSSH, PEM or PKCS#8 private key file") from None
    is_openssh = "-----BEGIN OPENSSH PRIVATE KEY-----" in text
    if not is_openssh and "PRIVATE KEY-----" not in text:
        raise UserError(f"{origin} is not a private key: give an OpenSSH, PEM or PKCS#8 private key file")
    secret = passphrase.encode() if passphrase else None

    def load(password: bytes | None) -> object:
        if is_openssh:
            return serialization.load_ssh_private_key(data, password)
        return serialization.load_pem_private_key(data, password)

    encrypted = secret is not None
    try:
        try:
            private_key = load(secret)
        except TypeError:
            if secret is None:
                raise UserError(
                    f"{origin} is encrypted: pass its passphrase with --password (or GIT_PASSWORD)"
                ) from None
            # A passphrase was given for a key that has none: use the key as it is.
            private_key, encrypted = load(None), False
    except (ValueError, UnsupportedAlgorithm):
        if secret is not None:
            raise UserError(f"{origin}: wrong passphrase, or the key is damaged; check --password") from None
        raise UserError(f"{origin} could not be read as a private key: check that the file is complete") from None
    algorithm, bits = _algorithm(private_key)
    public = private_key.public_key()  # type: ignore[attr-defined]
    openssh_public = public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return SSHKey(text, openssh_public.decode() + "\n", algorithm, bits, encrypted)


def read_ssh_key(path: Path, passphrase: str | None) -> SSHKey:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"--private-key-file {path}: no such file; check the path") from None
    except PermissionError:
        raise UserError(f"--private-key-file {path}: permission denied; make the key readable by you") from None
    except IsADirectoryError:
        raise UserError(f"--private-key-file {path} is a folder: point it at the private key file") from None
    except OSError as exc:
        raise UserError(f"--private-key-file {path}: cannot read it ({exc.strerror})") from None
    return load_ssh_key(data, passphrase, f"--private-key-file {path}")


def require_azure_devops_key(key: SSHKey, host: str) -> None:
    """Azure DevOps accepts only RSA user keys (signed with SHA-2); refuse others before any connection."""
    if is_azure_devops_ssh_host(host) and key.algorithm != "rsa":
        raise UserError(f"Azure DevOps accepts only RSA keys for SSH, and this key is {key.algorithm}: {_RSA_HELP}")


def known_hosts_line(host: str, port: int | None, key: str) -> str:
    """One known_hosts line, with the host bracketed when the port is not 22 (as ssh-keyscan does)."""
    target = host if port in (None, 22) else f"[{host}]:{port}"
    return f"{target} {key.strip()}"


def known_hosts_for(host: str, port: int | None, given: str | None = None) -> str:
    """The known_hosts for the cluster: Azure DevOps' pinned key, or what the user supplied. Never a scan."""
    if is_azure_devops_ssh_host(host):
        return known_hosts_line(host.lower(), port, AZURE_DEVOPS_HOST_KEY)
    if given and given.strip():
        return given.strip()
    raise UserError(
        f"no known_hosts for {host}: pass the server's host key with --ssh-known-hosts "
        f"(for example the output of `ssh-keyscan -p {port or 22} {host}`, checked against the server's fingerprint)"
    )
