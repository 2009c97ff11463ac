"""SSH keys and host keys, checked before anything connects.

Azure DevOps takes RSA user keys only (signed with SHA-2), and its host key is pinned in
`flux_azdo.manifests.azure_devops`, so both mistakes people make with SSH (an ed25519 key, a host key taken from a
scan) are caught here with the fix, instead of as `Permission denied (publickey)` from ssh. Keys are read with
`cryptography`, the way OpenSSH reads them: OpenSSH format or PEM (PKCS#1, PKCS#8), with a passphrase or not.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa

from flux_azdo.errors import UserError
from flux_azdo.manifests.azure_devops import AZURE_DEVOPS_HOST_KEY, AZURE_DEVOPS_SSH_HOSTS, is_azure_devops_ssh_host

if TYPE_CHECKING:
    from flux_azdo.azdo.urls import RepositoryUrl

#: What to run for a key Azure DevOps accepts, and where its public half goes. The page's address for one
#: organisation is `flux_azdo.azdo.pages.ssh_keys_page(collection_url)`; this is its name in the menu, for
#: messages that do not know the organisation (the one definition: git/errors.py imports it).
NEW_RSA_KEY = "ssh-keygen -t rsa -b 4096"
SSH_KEYS_PAGE = "User settings > SSH public keys"


@dataclass(frozen=True)
class SshKeyInfo:
    algorithm: str  # "rsa" | "ed25519" | "ecdsa" | "dsa"
    bits: int | None
    fingerprint: str  # SHA256:... as `ssh-keygen -l` prints it


PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | dsa.DSAPrivateKey
PRIVATE_KEY_TYPES = (rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey, ec.EllipticCurvePrivateKey, dsa.DSAPrivateKey)


def load_private_key(data: bytes, passphrase: str | None) -> tuple[PrivateKey, bool]:
    """The key and whether it is encrypted; UserError (one line, no key material) when it cannot be read.

    A passphrase given for an unencrypted key is ignored, as `flux bootstrap` uses one --password flag for both
    a token and a key's passphrase.
    """
    if re.match(rb"\s*(ssh-|ecdsa-sha2-|sk-)", data):
        raise UserError("the SSH key file holds a public key: pass the private key file (the one without .pub)")
    password = passphrase.encode("utf-8") if passphrase else None
    try:
        key = _load(data, password)
        encrypted = password is not None
    except TypeError:
        # cryptography says "password was not given but the key is encrypted" or the reverse with a TypeError.
        if password is None:
            raise UserError(
                "the SSH private key is protected by a passphrase: pass it with --password (or GIT_PASSWORD)"
            ) from None
        key, encrypted = _load_unencrypted(data), False
    except ValueError:
        # A wrong passphrase shows up in many ways (bad padding, a broken checksum, and now and then a decryption
        # that happens to pad correctly and then fails to parse), so ask the key itself whether it is encrypted.
        if password is not None and _is_encrypted(data):
            raise UserError(
                "the passphrase of the SSH private key is wrong: check --password (or GIT_PASSWORD)"
            ) from None
        raise UserError("the SSH private key file cannot be read: it is not an OpenSSH or PEM private key") from None
    except UnsupportedAlgorithm:
        raise UserError("the SSH private key uses an unsupported algorithm: use an RSA key") from None
    if not isinstance(key, PRIVATE_KEY_TYPES):
        raise UserError(f"the SSH private key has an unsupported type ({type(key).__name__}): use an RSA key")
    return key, encrypted


def _is_encrypted(data: bytes) -> bool:
    """cryptography refuses an encrypted key without a password with a TypeError, whatever the format."""
    try:
        _load(data, None)
    except TypeError:
        return True
    except (ValueError, UnsupportedAlgorithm):
        return False
    return False


def _load_unencrypted(data: bytes) -> object:
    try:
        return _load(data, None)
    except (TypeError, ValueError, UnsupportedAlgorithm):
        raise UserError("the SSH private key file cannot be read: it is not an OpenSSH or PEM private key") from None


def _load(data: bytes, password: bytes | None) -> object:
    if b"-----BEGIN OPENSSH PRIVATE KEY-----" in data:
        return serialization.load_ssh_private_key(data, password)
    return serialization.load_pem_private_key(data, password)


def inspect_private_key(data: bytes, passphrase: str | None) -> SshKeyInfo:
    """Type, size and fingerprint of a private key (UserError: not a key, missing or wrong passphrase)."""
    key, _ = load_private_key(data, passphrase)
    return key_info(key)


def key_info(key: PrivateKey) -> SshKeyInfo:
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    blob = base64.b64decode(public.split()[1])
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii").rstrip("=")
    if isinstance(key, rsa.RSAPrivateKey):
        return SshKeyInfo("rsa", key.key_size, f"SHA256:{digest}")
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return SshKeyInfo("ed25519", 256, f"SHA256:{digest}")
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return SshKeyInfo("ecdsa", key.curve.key_size, f"SHA256:{digest}")
    return SshKeyInfo("dsa", key.key_size, f"SHA256:{digest}")


def require_rsa(info: SshKeyInfo, host: str) -> None:
    """Azure DevOps (and the sandbox's v3 endpoint) refuse anything but RSA: say so before connecting."""
    if info.algorithm == "rsa":
        return
    raise UserError(
        f"{host} accepts RSA SSH keys only, and this key is {info.algorithm} ({info.fingerprint}): create one with "
        f"`{NEW_RSA_KEY}` and add its public key (.pub) in {SSH_KEYS_PAGE}"
    )


def known_hosts_for(url: RepositoryUrl, known_hosts_file: Path | None) -> str:
    """known_hosts lines to trust for `url`'s SSH host: from `known_hosts_file` when given, else the built-in
    Azure DevOps key for its SSH hosts. Any other host without a file is a UserError: a scan is never trusted."""
    host = url.host.lower()
    port = url.port if url.port not in (None, 22) else None
    shown = f"[{host}]:{port}" if port else host
    if known_hosts_file is not None:
        try:
            text = Path(known_hosts_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or "not a text file"
            raise UserError(f"cannot read the known_hosts file {known_hosts_file}: {reason}") from None
        lines = [line.strip() for line in text.splitlines() if _line_matches(line, host, port)]
        if not lines:
            raise UserError(
                f"the known_hosts file {known_hosts_file} has no key for {shown}: add the server's host key, "
                "verified with its administrator (do not trust a scan), and pass the file with --ssh-known-hosts"
            )
        return "\n".join(lines) + "\n"
    if is_azure_devops_ssh_host(host):
        names = [f"[{name}]:{port}" if port else name for name in AZURE_DEVOPS_SSH_HOSTS]
        return "".join(f"{name} {AZURE_DEVOPS_HOST_KEY}\n" for name in names)
    raise UserError(
        f"no trusted SSH host key for {shown}: pass --ssh-known-hosts FILE with its key, verified with the "
        "server's administrator; do not trust a scan"
    )


def _line_matches(line: str, host: str, port: int | None) -> bool:
    """Whether a known_hosts line is for `host` (and `port`), as OpenSSH decides it: comma lists of patterns,
    `[host]:port`, `*` and `?` wildcards, `!` negations (a negated match excludes the line whatever else
    matches), and hashed `|1|salt|hmac` entries (HMAC-SHA1 of the name, keyed with the salt). Marker lines
    (`@cert-authority`, `@revoked`) are kept, so ssh still refuses a revoked key."""
    words = line.split()
    if not words or words[0].startswith("#"):
        return False
    if words[0].startswith("@"):
        words = words[1:]
    if len(words) < 3:
        return False
    wanted = f"[{host}]:{port}" if port else host
    matched = False
    for pattern in words[0].split(","):
        negated = pattern.startswith("!")
        pattern = pattern[1:] if negated else pattern
        if pattern.startswith("|1|"):
            hit = _hashed_matches(pattern, wanted)
        else:
            hit = _glob(pattern.lower()).fullmatch(wanted) is not None
        if hit and negated:
            return False
        matched = matched or hit
    return matched


def _glob(pattern: str) -> re.Pattern[str]:
    """OpenSSH's pattern language: `*` any run of characters, `?` one character, everything else literal."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern))


def _hashed_matches(pattern: str, name: str) -> bool:
    try:
        _, _, salt, digest = pattern.split("|")
        mac = hmac.new(base64.b64decode(salt), name.encode(), hashlib.sha1).digest()
        return hmac.compare_digest(mac, base64.b64decode(digest))
    except (ValueError, TypeError):
        return False
