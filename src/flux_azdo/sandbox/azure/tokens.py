"""JSON Web Tokens as Microsoft Entra ID and Azure DevOps write them: signed, compact, checked by signature.

The sandbox signs what it issues (access tokens, pipeline OIDC tokens) with RSA keys of its own and checks what
clients present (certificate assertions, federated assertions) against the registered public key, so a forged or
altered token fails exactly where the service would refuse it. Signing keys are made once per process and
purpose (`process_key`): a 2048-bit key takes tens of milliseconds, and every sandbox of a test session may share
them without harm. `unsigned_jwt` writes tokens of the same shape that only their issuer's table recognises (the
Azure DevOps job token).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa


class MalformedToken(ValueError):
    """Not three base64url parts with JSON header and payload."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def b64url_decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as error:
        raise MalformedToken(str(error)) from None


_KEYS: dict[str, rsa.RSAPrivateKey] = {}
_KEYS_LOCK = threading.Lock()


def process_key(purpose: str) -> rsa.RSAPrivateKey:
    """One RSA key per purpose and process ("entra-signing", "azure-devops-oidc").

    Servers call this from many threads: the lock makes sure one purpose never gets two keys (a token signed
    with one and checked with the other would fail at random). Generation happens under the lock; it is rare.
    """
    with _KEYS_LOCK:
        key = _KEYS.get(purpose)
        if key is None:
            key = _KEYS[purpose] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return key


def key_id(public_key: rsa.RSAPublicKey) -> str:
    """A stable `kid`/`x5t`-like id for a public key (base64url of its SHA-1 over the modulus)."""
    numbers = public_key.public_numbers()
    modulus = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
    return b64url(hashlib.sha1(modulus, usedforsecurity=False).digest())


def jwk(public_key: rsa.RSAPublicKey) -> dict[str, Any]:
    """The JWKS entry of an RSA signing key (what `jwks_uri` lists)."""
    numbers = public_key.public_numbers()
    kid = key_id(public_key)
    return {
        "kty": "RSA",
        "use": "sig",
        "kid": kid,
        "x5t": kid,
        "n": b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
        "e": b64url(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")),
    }


def sign(claims: Mapping[str, Any], key: rsa.RSAPrivateKey, *, header: Mapping[str, Any] | None = None) -> str:
    """A compact RS256 JWS over `claims` (`typ`, `alg`, `kid` and `x5t` in the header, as Entra writes them)."""
    kid = key_id(key.public_key())
    full_header = {"typ": "JWT", "alg": "RS256", "x5t": kid, "kid": kid, **(header or {})}
    signing_input = f"{_part(full_header)}.{_part(claims)}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


def unsigned_jwt(claims: Mapping[str, Any], *, header: Mapping[str, Any] | None = None) -> str:
    """A JWT-shaped token whose signature part is random: valid only where its issuer keeps a table of them."""
    full_header = {"typ": "JWT", "alg": "RS256", "x5t": secrets.token_urlsafe(20), **(header or {})}
    return f"{_part(full_header)}.{_part(claims)}.{secrets.token_urlsafe(64)}"


def _part(document: Mapping[str, Any]) -> str:
    return b64url(json.dumps(document, separators=(",", ":")).encode())


def decode(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """(header, claims, signing input, signature) without any check; MalformedToken when it is no JWS."""
    parts = token.strip().split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise MalformedToken("a JWT has three dot-separated parts")
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
    except (ValueError, UnicodeDecodeError) as error:
        raise MalformedToken(str(error)) from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise MalformedToken("header and payload must be JSON objects")
    return header, claims, f"{parts[0]}.{parts[1]}".encode(), b64url_decode(parts[2])


def signature_valid(header: Mapping[str, Any], signing_input: bytes, signature: bytes, key: rsa.RSAPublicKey) -> bool:
    """RS256 (PKCS#1 v1.5) or PS256 (PSS, salt = digest length, what MSAL uses): the two Entra accepts."""
    algorithm = header.get("alg")
    try:
        if algorithm == "RS256":
            key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
        elif algorithm == "PS256":
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=hashes.SHA256.digest_size)
            key.verify(signature, signing_input, pss, hashes.SHA256())
        else:
            return False
    except InvalidSignature:
        return False
    return True
