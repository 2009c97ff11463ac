"""How a run reaches the repository: the URL, the token for the API and git, and the SSH key, from flags and the
environment, checked before anything connects.

`flux-azdo check` and `bootstrap` read credentials the same way `flux bootstrap git` does (the git password is
the PAT or job token for https, the key's passphrase for SSH), so this lives in one place both call. Secrets are
read here and never printed: messages name where a secret came from (`GIT_PASSWORD`, `stdin`), never the value.
Every mistake that can be found without the network (a flag that does not apply, an --organization on another
host, a token that cannot be one) is a UsageError or UserError here, before any call.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TextIO
from urllib.parse import urlsplit

from flux_azdo.errors import UsageError, UserError

if TYPE_CHECKING:
    from flux_azdo.azdo.credentials import AzureDevOpsToken, Scheme, Source
    from flux_azdo.azdo.preflight import PreflightRequest
    from flux_azdo.azdo.urls import RepositoryUrl
    from flux_azdo.git.auth import GitAuth
    from flux_azdo.git.ssh import SshKeyInfo

Provider = Literal["generic", "azure"]
DEFAULT_HOSTKEY_ALGOS = ("rsa-sha2-512", "rsa-sha2-256")
#: The shortest secret taken as a token: PATs have 52 (classic) or 84 characters, job tokens are long JWTs.
MIN_TOKEN_LENGTH = 8
_SERVICES_HOST = "dev.azure.com"
_LEGACY_DOMAIN = ".visualstudio.com"


@dataclass(frozen=True)
class AccessOptions:
    """The access flags, as given (`flux-azdo check --help` documents each)."""

    url: str
    branch: str = "main"
    create_repository: bool = False
    create_branch: bool = False
    password: str | None = field(default=None, repr=False)
    #: Whether these values are flags of a command line: only then is `password` warned about as visible in `ps`
    #: (the pipeline task hands its inputs over in-process).
    from_command_line: bool = True
    #: How messages name where `password` came from (`--password`, `input "gitPat"`).
    password_origin: str = "--password"
    #: How messages name the private key (None: `--private-key-file <path>`; the task names its secure file).
    private_key_origin: str | None = None
    password_stdin: bool = False
    entra_auth: bool = False
    organization: str | None = None
    private_key_file: Path | None = None
    ssh_known_hosts: Path | None = None
    ssh_hostkey_algos: tuple[str, ...] = ()
    username: str = "git"
    provider: Provider = "generic"
    allow_insecure_http: bool = False
    timeout: str = "30s"


@dataclass(frozen=True)
class SshKey:
    auth: GitAuth
    info: SshKeyInfo


def preflight_request(
    options: AccessOptions,
    *,
    environ: Mapping[str, str] | None = None,
    stdin: TextIO | None = None,
    warn: Callable[[str], None] | None = None,
) -> PreflightRequest:
    """Flags and environment -> what the preflight needs. `warn` hears about risky but valid choices."""
    from flux_azdo.azdo.preflight import ClusterCredential, PreflightRequest
    from flux_azdo.git.auth import TokenAuth

    env = os.environ if environ is None else environ
    branch = normalise_branch(options.branch)
    timeout = parse_timeout(options.timeout)
    if options.password is not None and options.password_stdin:
        raise UsageError("pass either --password or --password-stdin, not both")
    url = parse_access_url(options)
    _check_flags_apply(options, url)
    if options.password is not None and options.from_command_line and warn is not None:
        instead = (
            "through --password-stdin" if url.transport == "ssh" else "in GIT_PASSWORD or through --password-stdin"
        )
        warn(f"--password is visible to other users in `ps` and stays in your shell history: pass it {instead} instead")
    ssh_key: SshKeyInfo | None = None
    git_auth: GitAuth = None
    if url.transport == "ssh":
        token = entra_auth_token() if options.entra_auth else ssh_api_token(env)
        key = ssh_key_from_options(options, url, env, stdin)
        if key is not None:
            git_auth, ssh_key = key.auth, key.info
    else:
        token = entra_auth_token() if options.entra_auth else https_token(options, env, stdin)
        git_auth = TokenAuth(token) if token is not None else None
    cluster: ClusterCredential = "ssh" if url.transport == "ssh" else "token"
    if options.provider == "azure":
        cluster = "workload-identity"
    return PreflightRequest(
        url=url,
        branch=branch,
        create_repository=options.create_repository,
        create_branch=options.create_branch,
        token=token,
        git_auth=git_auth,
        ssh_key=ssh_key,
        cluster_credential=cluster,
        timeout=timeout,
    )


# ----- plain values ------------------------------------------------------------------------------------------------


def normalise_branch(branch: str) -> str:
    """`refs/heads/main` -> `main` (what Flux's --branch takes), then the name is checked as git would."""
    from flux_azdo.manifests.sync import validate_branch

    name = branch.strip().removeprefix("refs/heads/")
    validate_branch(name)
    return name


def parse_timeout(text: str, flag: str = "--timeout") -> float:
    """A Go duration (`30s`, `2m`, `1m30s`), as Flux's flags take it, in seconds."""
    from flux_azdo.manifests.durations import SECOND, parse_go_duration

    try:
        seconds = parse_go_duration(text.strip()) / SECOND
    except ValueError:
        seconds = 0.0
    if seconds <= 0:
        raise UsageError(f"{flag}={text!r} is not a positive duration: use e.g. 30s or 2m")
    return seconds


def with_ssh_user(url: str, username: str) -> str:
    """Flux's --username: the SSH user when the URL names none (`ssh://host/...` or `host:path`)."""
    text = url.strip()
    if not username or "@" in text.split("/", 3)[2 if text.startswith("ssh://") else 0]:
        return text
    if text.startswith("ssh://"):
        return f"ssh://{username}@{text.removeprefix('ssh://')}"
    if "://" not in text and ":" in text.split("/", 1)[0]:
        return f"{username}@{text}"
    return text


def parse_access_url(options: AccessOptions) -> RepositoryUrl:
    """--url (with --username for SSH) and --organization, refusing an --organization the token must not go to."""
    from flux_azdo.azdo.urls import parse_repository_url

    insecure = options.allow_insecure_http
    url = parse_repository_url(with_ssh_user(options.url, options.username), allow_insecure_http=insecure)
    if options.organization:
        url = url.with_collection_url(options.organization, allow_insecure_http=insecure)
        _same_service(url)
    return url


def _same_service(url: RepositoryUrl) -> None:
    """Over https the one token goes to git and to the API: both must be the same service."""
    if url.transport == "ssh" or url.collection_url is None:
        return
    parts = urlsplit(url.collection_url)
    host, port = (parts.hostname or "").lower(), parts.port
    if host == url.host and port == url.port:
        return
    organization = _services_organization(url.collection_url)
    same_organization = organization is not None and organization == (url.organization or "").lower()
    if same_organization and url.kind in ("services", "legacy"):
        return  # dev.azure.com/<org> and <org>.visualstudio.com are one organisation
    raise UsageError(
        f"--organization {url.collection_url} is on another host than --url ({url.host}): the repository's token "
        "would be sent there; drop --organization, or give the collection URL of the repository's own server"
    )


def _services_organization(collection_url: str) -> str | None:
    parts = urlsplit(collection_url)
    host = (parts.hostname or "").lower()
    if host == _SERVICES_HOST:
        return parts.path.strip("/").split("/")[0].lower() or None
    if host.endswith(_LEGACY_DOMAIN) and host.count(".") == 2:
        return host.split(".")[0]
    return None


def _check_flags_apply(options: AccessOptions, url: RepositoryUrl) -> None:
    """A flag that cannot apply is a mistake to say, not to ignore: the run would not do what was asked."""
    if url.transport != "ssh":
        for flag, value in (
            ("--private-key-file", options.private_key_file),
            ("--ssh-known-hosts", options.ssh_known_hosts),
            ("--ssh-hostkey-algos", options.ssh_hostkey_algos),
        ):
            if value:
                raise UsageError(
                    f"{flag} applies to SSH URLs only, and --url is {url.transport}: drop {flag}, or pass the "
                    "repository's ssh:// URL"
                )
    if options.provider == "azure":
        if url.transport == "ssh":
            raise UsageError(
                "--provider azure works over https only (Flux's azure provider gets a workload identity token for "
                "Azure DevOps' https endpoint): pass the repository's https URL, or drop --provider azure to use "
                "the SSH key"
            )
        if not url.is_azure_devops:
            raise UsageError(
                f"--provider azure is for Azure DevOps repositories, and {url.original} is not one: drop "
                "--provider azure, or pass an https://dev.azure.com/<org>/<project>/_git/<repo> URL"
            )


# ----- tokens ------------------------------------------------------------------------------------------------------


def stdin_line(flag: str, stdin: TextIO | None = None) -> str:
    """The first line of standard input (the secret piped in), stripped."""
    stream = stdin if stdin is not None else sys.stdin
    line = stream.readline().strip() if stream is not None else ""
    if not line:
        raise UserError(f"{flag}: standard input was empty: pipe the secret in, e.g. printenv AZDO_PAT | flux-azdo ...")
    return line


def make_token(secret: str, source: Source, origin: str, scheme: Scheme = "basic") -> AzureDevOpsToken:
    """The token value, refusing what cannot be a token (the message names where it came from, never the value)."""
    from flux_azdo.azdo.credentials import AzureDevOpsToken

    if len(secret.strip()) < MIN_TOKEN_LENGTH:
        raise UserError(
            f"the token from {origin} is {len(secret.strip())} characters long, too short to be a PAT or a job "
            "token: pass the token itself"
        )
    try:
        return AzureDevOpsToken(secret, scheme, source, origin)
    except ValueError:
        raise UserError(f"the token from {origin} has spaces or several lines: pass the token alone") from None


def https_token(
    options: AccessOptions, environ: Mapping[str, str], stdin: TextIO | None = None
) -> AzureDevOpsToken | None:
    """The git password: --password, --password-stdin, GIT_PASSWORD, else a prompt when someone is at a terminal.

    It is the job token (never to be stored in the cluster) when it equals SYSTEM_ACCESSTOKEN.
    """
    stream = stdin if stdin is not None else sys.stdin
    if options.password is not None:
        secret, origin = options.password.strip(), options.password_origin
    elif options.password_stdin:
        secret, origin = stdin_line("--password-stdin", stream), "stdin"
    elif environ.get("GIT_PASSWORD", "").strip():
        secret, origin = environ["GIT_PASSWORD"].strip(), "GIT_PASSWORD"
    elif stream is not None and stream.isatty():
        import getpass

        secret, origin = getpass.getpass("PAT or job token for the repository: ").strip(), "the prompt"
    else:
        return None
    if not secret:
        raise UserError(f"the token from {origin} is empty: pass a PAT or the pipeline's job token")
    job = environ.get("SYSTEM_ACCESSTOKEN", "").strip()
    return make_token(secret, "job-token" if job and secret == job else "password", origin)


def ssh_api_token(environ: Mapping[str, str]) -> AzureDevOpsToken | None:
    """For an SSH URL the password is the key's passphrase; the API token comes from what `az devops` reads,
    else the pipeline's job token."""
    pat = environ.get("AZURE_DEVOPS_EXT_PAT", "").strip()
    if pat:
        return make_token(pat, "environment", "AZURE_DEVOPS_EXT_PAT")
    job = environ.get("SYSTEM_ACCESSTOKEN", "").strip()
    if job:
        return make_token(job, "job-token", "SYSTEM_ACCESSTOKEN", "bearer")
    return None


def entra_auth_token() -> AzureDevOpsToken:
    """--entra-auth: a Microsoft Entra token from DefaultAzureCredential (az login, workload or managed identity)."""
    from azure.identity import DefaultAzureCredential

    from flux_azdo.azdo.credentials import token_from_azure_identity

    # azure-identity logs every credential it tried as a multi-line warning; our one-line error says it all.
    quiet = logging.getLogger("azure.identity")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        return token_from_azure_identity(DefaultAzureCredential(), "DefaultAzureCredential")
    except UserError as error:
        raise UserError(f"--entra-auth: {error.message}") from None
    finally:
        quiet.setLevel(level)


# ----- SSH ---------------------------------------------------------------------------------------------------------


def ssh_key_from_options(
    options: AccessOptions, url: RepositoryUrl, environ: Mapping[str, str], stdin: TextIO | None = None
) -> SshKey | None:
    """The key git pushes with (None without --private-key-file), its pinned host keys and algorithms.

    The passphrase is the password, as `flux bootstrap git` reads it (ignored for an unencrypted key).
    """
    from flux_azdo.git.auth import SshAuth
    from flux_azdo.git.ssh import inspect_private_key, known_hosts_for

    passphrase = options.password if options.password is not None else environ.get("GIT_PASSWORD") or None
    if options.password_stdin:
        passphrase = stdin_line("--password-stdin", stdin)
    path = options.private_key_file
    if path is None:
        return None
    origin = options.private_key_origin or f"--private-key-file {path}"
    try:
        key = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{origin} cannot be read ({exc.strerror}): pass the path of the private key") from None
    try:
        info = inspect_private_key(key, passphrase)
    except UserError as exc:
        raise UserError(f"{origin}: {exc.message}", fix=exc.fix) from None
    hosts_file = options.ssh_known_hosts
    if hosts_file is not None:
        try:
            hosts_file.read_bytes()
        except OSError as exc:
            raise UserError(
                f"--ssh-known-hosts {hosts_file} cannot be read ({exc.strerror}): pass a known_hosts file with the "
                "server's host key"
            ) from None
    known_hosts = known_hosts_for(url, hosts_file)
    algorithms = options.ssh_hostkey_algos or DEFAULT_HOSTKEY_ALGOS
    return SshKey(SshAuth(key, passphrase, known_hosts, algorithms), info)
