"""The Git credentials a GitRepository gets, decided the way source-controller decides them.

Sources, in Flux's order: the Secret named by `spec.secretRef` in the object's namespace (`username`/`password`,
`bearerToken`, `ca.crt`, or for SSH `identity`, `known_hosts` and the key's `password`), then `spec.provider`:
`azure` asks Entra ID for a token through workload identity -- only possible when the running source-controller
Pod carries the webhook's AZURE_* variables (or, without webhook emulation, when its ServiceAccount has the
client-id annotation) and that client id is federated. SSH host key and key exchange algorithms come from the
controller's `--ssh-hostkey-algos` / `--ssh-kex-algos`, else from the key types in known_hosts, as go-git does.
Error texts are Flux's (`failed to configure authentication options: ...`); they never contain secret values.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from flux_azdo.sandbox.flux import pods as podlib
from flux_azdo.sandbox.flux.cluster import JSON, Cluster, KubeError, resource_path
from flux_azdo.sandbox.flux.components import ControllerRuntime
from flux_azdo.sandbox.flux.errors import ReconcileError
from flux_azdo.sandbox.flux.options import SimulatorOptions

AUTHENTICATION_FAILED = "AuthenticationFailed"
INVALID_PROVIDER = "InvalidProviderConfiguration"
URL_INVALID = "URLInvalid"

_TOKEN_CHAIN = (
    "failed to configure authentication options: failed to get access token for Git repository: "
    "failed to create provider access token for the controller: "
)


@dataclass(frozen=True)
class GitAuth:
    """Everything `git` needs to reach one URL."""

    transport: str
    url: str
    username: str = ""
    password: str = ""
    bearer_token: str = ""
    identity: bytes = b""
    known_hosts: bytes = b""
    ca: bytes = b""
    host_key_algorithms: tuple[str, ...] = ()
    kex_algorithms: tuple[str, ...] = ()

    @property
    def remote_url(self) -> str:
        """`url` as handed to `git`: never with a password (it travels in the Authorization header, or is an
        SSH key passphrase), and for HTTP(S) without the user name too, so argv and git's own messages stay clean."""
        parts = urlsplit(self.url)
        if parts.password is None and (self.transport == "ssh" or parts.username is None):
            return self.url
        host = parts.netloc.rpartition("@")[2]
        if self.transport == "ssh" and parts.username is not None:
            host = f"{parts.username}@{host}"
        return urlunsplit(parts._replace(netloc=host))

    def secrets(self) -> list[str]:
        """Values that must never appear in a message (the URL's password also as written, percent-encoded)."""
        values = [self.password, self.bearer_token, urlsplit(self.url).password or ""]
        if self.username and self.password:
            values.append(base64.b64encode(f"{self.username}:{self.password}".encode()).decode())
        return [value for value in values if len(value) >= 4]


def known_host_key_types(known_hosts: bytes) -> list[str]:
    """Key types in known_hosts, in file order (go-git's `hostKeyAlgorithms` of the parsed database)."""
    types: list[str] = []
    for raw in known_hosts.decode("utf-8", "replace").splitlines():
        fields = raw.strip().split()
        if not fields or fields[0].startswith("#"):
            continue
        if fields[0].startswith("@"):
            fields = fields[1:]
        if len(fields) >= 3 and fields[1] not in types:
            types.append(fields[1])
    return types


def identity_is_encrypted(identity: bytes) -> bool:
    """True for a private key (OpenSSH or PEM format) that cannot be read without a passphrase."""
    for load in (serialization.load_ssh_private_key, serialization.load_pem_private_key):
        try:
            load(identity, None)
        except TypeError:
            return True
        except (ValueError, UnsupportedAlgorithm):
            continue
        return False
    return False


def openssh_identity(identity: bytes, password: str) -> bytes:
    """The key re-serialised unencrypted in OpenSSH format, so the `ssh` client never prompts."""
    secret = password.encode() if password else None
    try:
        key = serialization.load_ssh_private_key(identity, secret)
    except ValueError:
        key = serialization.load_pem_private_key(identity, secret)  # type: ignore[assignment]
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )


class CredentialResolver:
    """Builds `GitAuth` for a GitRepository from what the cluster holds."""

    def __init__(self, cluster: Cluster, options: SimulatorOptions) -> None:
        self._cluster = cluster
        self._options = options

    def resolve(self, obj: JSON, runtime: ControllerRuntime) -> GitAuth:
        metadata = obj.get("metadata") or {}
        namespace = str(metadata.get("namespace") or "default")
        spec = obj.get("spec") or {}
        url = str(spec.get("url") or "")
        parts = urlsplit(url)
        transport = parts.scheme
        data: dict[str, bytes] = {}
        secret_ref = spec.get("secretRef") or {}
        secret_name = str(secret_ref.get("name") or "")
        if secret_name:
            data = self._secret(namespace, secret_name)

        username = password = bearer = ""
        identity = known_hosts = ca = b""
        if transport == "ssh":
            identity = data.get("identity", b"")
            known_hosts = data.get("known_hosts", b"")
            username = unquote(parts.username or "") or "git"
            password = data.get("password", b"").decode()
        elif "bearerToken" in data:
            bearer = data["bearerToken"].decode()
            ca = data.get("ca.crt") or data.get("caFile") or b""
        else:
            username = data.get("username", b"").decode()
            password = data.get("password", b"").decode()
            ca = data.get("ca.crt") or data.get("caFile") or b""
        if transport != "ssh":
            username = username or unquote(parts.username or "")
            password = password or unquote(parts.password or "")
        self._validate(transport, parts.hostname or "", username, password, identity, known_hosts)

        if transport == "ssh" and identity and not password and identity_is_encrypted(identity):
            raise ReconcileError(
                AUTHENTICATION_FAILED,
                "SSH identity key is encrypted but no 'password' field was provided in the secret "
                f"'{namespace}/{secret_name}'",
            )

        provider = str(spec.get("provider") or "generic")
        if provider == "azure":
            bearer = self._workload_identity_token(runtime)
            username = password = ""
        elif provider == "github":
            raise ReconcileError(
                INVALID_PROVIDER,
                "secretRef with github app data must be specified when provider is set to github",
                stalling=True,
            )

        host_keys: tuple[str, ...] = ()
        kex: tuple[str, ...] = ()
        if transport == "ssh":
            host_keys = tuple(runtime.flag("ssh-hostkey-algos") or self._default_host_key_algorithms(known_hosts))
            kex = tuple(runtime.flag("ssh-kex-algos") or ())
        return GitAuth(
            transport=transport,
            url=url,
            username=username,
            password=password,
            bearer_token=bearer,
            identity=identity,
            known_hosts=known_hosts,
            ca=ca,
            host_key_algorithms=host_keys,
            kex_algorithms=kex,
        )

    def _secret(self, namespace: str, name: str) -> dict[str, bytes]:
        where = f"'{namespace}/{name}'"
        try:
            secret = self._cluster.get(resource_path("v1", "secrets", namespace, name))
        except KubeError as error:
            raise ReconcileError(
                AUTHENTICATION_FAILED, f"failed to get secret {where}: failed to get secret {where}: {error.message}"
            ) from None
        if secret is None:
            raise ReconcileError(
                AUTHENTICATION_FAILED,
                f'failed to get secret {where}: failed to get secret {where}: secrets "{name}" not found',
            )
        data: dict[str, bytes] = {}
        for key, value in (secret.get("data") or {}).items():
            try:
                data[str(key)] = base64.b64decode(str(value))
            except ValueError:
                continue
        for key, value in (secret.get("stringData") or {}).items():
            data.setdefault(str(key), str(value).encode())
        return data

    @staticmethod
    def _validate(transport: str, host: str, username: str, password: str, identity: bytes, hosts: bytes) -> None:
        prefix = "failed to configure authentication options: "
        problem: str | None = None
        if transport in ("http", "https"):
            if not username and password:
                problem = f"invalid '{transport}' auth option: 'password' requires 'username' to be set"
        elif transport == "ssh":
            if not host:
                problem = "invalid 'ssh' auth option: 'host' is required"
            elif not identity:
                problem = "invalid 'ssh' auth option: 'identity' is required"
            elif not hosts:
                problem = "invalid 'ssh' auth option: 'known_hosts' is required"
        elif not transport:
            problem = "no transport type set"
        else:
            problem = f"unknown transport '{transport}'"
        if problem is not None:
            raise ReconcileError(AUTHENTICATION_FAILED, prefix + problem)

    def _default_host_key_algorithms(self, known_hosts: bytes) -> list[str]:
        types = known_host_key_types(known_hosts)
        if types == ["ssh-rsa"] and not self._options.sha1_only_rsa_host_keys:
            return ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]
        return types

    def _workload_identity_token(self, runtime: ControllerRuntime) -> str:
        subject = f"system:serviceaccount:{runtime.namespace}:{runtime.service_account}"
        client_id: str | None
        if self._options.workload_identity_webhook:
            env = runtime.env
            wired = all(
                env.get(name)
                for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST")
            )
            client_id = env.get("AZURE_CLIENT_ID") if wired else None
        else:
            client_id = self._annotated_client_id(runtime)
        if not client_id:
            raise ReconcileError(
                AUTHENTICATION_FAILED,
                _TOKEN_CHAIN + "Workload Identity: missing environment variables for workload identity. "
                "Check webhook and pod configuration",
            )
        token = self._options.workload_token(client_id)
        if not token:
            raise ReconcileError(
                AUTHENTICATION_FAILED,
                _TOKEN_CHAIN + "WorkloadIdentityCredential authentication failed. AADSTS700213: No matching "
                f"federated identity record found for presented assertion subject '{subject}'. Check your "
                "federated identity credential Subject, Audience and Issuer against the presented assertion.",
            )
        return token

    def _annotated_client_id(self, runtime: ControllerRuntime) -> str | None:
        path = resource_path("v1", "serviceaccounts", runtime.namespace, runtime.service_account)
        try:
            account = self._cluster.get(path)
        except KubeError:
            return None
        annotations = ((account or {}).get("metadata") or {}).get("annotations") or {}
        value = annotations.get(podlib.CLIENT_ID_ANNOTATION)
        return str(value) if value else None
