"""RSA key pairs for the sandbox's users, written the way `ssh-keygen` writes them.

Azure DevOps accepts only RSA user keys, so that is all the sandbox hands out. The key is made with
`cryptography` instead of `ssh-keygen` so start-up needs no external program, and written 0600 from the first
byte, as OpenSSH refuses a private key other users can read.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

RSA_BITS = 3072


def write_rsa_key(path: Path, *, comment: str = "sandbox-user", copy_from: Path | None = None) -> None:
    """Write `path` (OpenSSH private key, 0600) and `path.pub`; copy an existing pair when `copy_from` is given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if copy_from is not None:
        private = Path(copy_from).read_bytes()
        public = Path(f"{copy_from}.pub").read_bytes()
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
        private = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
        openssh = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        public = openssh + f" {comment}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as stream:
        stream.write(private)
    Path(f"{path}.pub").write_bytes(public)
