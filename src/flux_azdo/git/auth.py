"""Credentials for git, handed over through the environment of one git process tree, never anywhere that stays.

HTTPS: the token goes in as a pre-emptive `Authorization` header, `http.<repository URL>.extraHeader`, set
through `GIT_CONFIG_COUNT/KEY_n/VALUE_n`. That is the mechanism Azure Pipelines itself uses, it is the only one
that carries a bearer token (the job token, an Entra token; an askpass program can only answer user name and
password prompts), and it saves the 401 round trip. git matches the key's URL against each request's URL by
scheme, host, port and path prefix, so the header goes to this repository only: not to another repository, path
or host. Redirects are not followed (`http.followRedirects=false`): git would send later requests to the
redirected URL and still add the header it matched against the original one, handing the token to another
host; a redirect becomes an error that names the fix (use the URL it redirects to). `GIT_ASKPASS` is a no-op
program: after a 401 git would otherwise fall back to prompting and fail with a misleading "could not read
Username"; with the no-op it says "Authentication failed".

SSH: `GIT_SSH_COMMAND` runs OpenSSH with no config file, no agent, only the given key (a 0600 copy), a pinned
known_hosts and strict host key checking. A passphrase reaches ssh through `SSH_ASKPASS` (a script that prints an
environment variable) with `SSH_ASKPASS_REQUIRE=force`, and password or keyboard-interactive authentication is
switched off so that the passphrase can never be sent to a server as a password.

Either way the environment is hermetic: no system or global git config (`~/.gitconfig` could add a credential
helper or an `url.insteadOf` that sends the token elsewhere), HOME and XDG_CONFIG_HOME inside the private folder,
no inherited GIT_* variables except TLS and proxy settings (and never GIT_SSL_NO_VERIFY, which is refused), only
the https, http and ssh transports (`protocol.allow=never` otherwise), no prompts. A connection that stalls is
dropped by git (`http.lowSpeedLimit`/`lowSpeedTime`) or ssh (`ServerAlive*`, `ConnectTimeout`) as well as by the
per-call timeout (`_run`). Proxies still work through the standard variables (`HTTPS_PROXY`, `https_proxy`,
`NO_PROXY`), which curl reads; an `http.proxy` in ~/.gitconfig does not apply, so users behind a proxy set the
variable.

Everything written (key copy, known_hosts, askpass script) lives in a private 0700 temporary folder that is
removed when the context ends: on return, on any exception, on KeyboardInterrupt and on SystemExit, wherever
it lands (`folders`: the removal is arranged before the folder exists). SIGTERM and
SIGHUP end a Python process without running `finally` blocks; the library relies on the program that uses it to
turn them into SystemExit (the flux-azdo CLI installs such handlers), and provides nothing else for it.
"""

from __future__ import annotations

import contextlib
import math
import os
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

from flux_azdo.azdo.credentials import AzureDevOpsToken
from flux_azdo.azdo.pages import ssh_keys_page
from flux_azdo.azdo.urls import RepositoryUrl, parse_repository_url
from flux_azdo.errors import UserError
from flux_azdo.git._run import PASSPHRASE_VARIABLE, GitContext, dropped
from flux_azdo.git.folders import PrivateFolder
from flux_azdo.git.ssh import key_info, load_private_key, require_rsa

#: Azure DevOps offers its host key with these, and accepts RSA user keys signed with them (SHA-2, never SHA-1).
RSA_SHA2 = ("rsa-sha2-512", "rsa-sha2-256")
#: How long ssh waits for the TCP connection and the server's greeting when the caller names no timeout.
DEFAULT_CONNECT_TIMEOUT = 30
#: A transfer slower than this many bytes per second for `LOW_SPEED_SECONDS` is dropped by git.
LOW_SPEED_BYTES = 1000
LOW_SPEED_SECONDS = 60


@dataclass(frozen=True)
class TokenAuth:
    token: AzureDevOpsToken


@dataclass(frozen=True)
class SshAuth:
    private_key: bytes = field(repr=False)  # the key file's bytes (OpenSSH or PEM)
    passphrase: str | None = field(default=None, repr=False)
    known_hosts: str = ""  # known_hosts lines trusted for this host (never scanned)
    hostkey_algos: tuple[str, ...] = RSA_SHA2


GitAuth = TokenAuth | SshAuth | None


def git_environment(
    url: str, auth: GitAuth, *, temp_parent: Path | None = None, timeout: float | None = None
) -> contextlib.AbstractContextManager[dict[str, str]]:
    """The full environment to run git with for `url`: pass it as the whole `env` of a subprocess (it is
    os.environ without the dropped variables, plus ours), not merged over os.environ. `timeout` (seconds per
    git call) sets ssh's ConnectTimeout."""
    return _Environment(GitSession(url, auth, temp_parent=temp_parent, timeout=timeout))


def git_context(
    url: str, auth: GitAuth, *, temp_parent: Path | None = None, timeout: float | None = None
) -> GitSession:
    """Like `git_environment`, with the private folder, the URL git is given and the secrets to scrub."""
    return GitSession(url, auth, temp_parent=temp_parent, timeout=timeout)


class GitSession:
    """`with git_context(...) as context:`: the private folder and the `GitContext` for it, made on entering and
    removed on leaving, whatever exception arrives in between.

    A class rather than a generator: `contextlib.contextmanager` leaves a gap after the generator yields (its
    `__enter__` still has to return) in which an interrupt leaves the folder to the garbage collector. Here
    nothing exists before `__enter__`, which removes what it made when it fails, and `with` has `__exit__` in hand
    before it calls `__enter__`. `close()` is for callers that enter without `with` (Workspace).
    """

    def __init__(self, url: str, auth: GitAuth, *, temp_parent: Path | None, timeout: float | None) -> None:
        self._url = url
        self._auth = auth
        self._temp_parent = temp_parent
        self._timeout = timeout
        self._folder: PrivateFolder | None = None

    def __enter__(self) -> GitContext:
        try:
            repository = _check_url(self._url, self._auth)
            self._folder = PrivateFolder("flux-azdo-git-", self._temp_parent)  # 0700
            directory = self._folder.path
            env, secrets = _environment(repository, self._auth, directory, self._timeout)
            keys_page = ssh_keys_page(repository.collection_url) if repository.collection_url else None
            return GitContext(
                env,
                directory,
                repository.original,
                repository.git_url,
                secrets,
                has_credentials=self._auth is not None,
                keys_page=keys_page,
            )
        except BaseException:
            self.close()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Remove the private folder and every credential file in it; safe to call twice."""
        if self._folder is not None:
            self._folder.remove()


class _Environment:
    """`git_environment`: a GitSession that hands out the environment only."""

    def __init__(self, session: GitSession) -> None:
        self._session = session

    def __enter__(self) -> dict[str, str]:
        try:
            return dict(self._session.__enter__().env)
        except BaseException:
            self._session.close()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._session.close()


def _check_url(url: str, auth: GitAuth) -> RepositoryUrl:
    """The parsed URL, once it is one git may be given with this kind of credential; UserError otherwise.

    http:// is accepted here: refusing it without --allow-insecure-http is the caller's decision (the CLI's),
    and the sandbox serves http.
    """
    if not url or url.startswith("-") or any(ord(c) < 0x20 for c in url):
        raise UserError("the repository URL is not valid: use https://... or ssh://... (see --url)")
    if "://" in url and urlsplit(url).password is not None:
        raise UserError(
            "the repository URL contains a password: remove it from the URL and pass the token with "
            "--password, --password-stdin or GIT_PASSWORD"
        )
    repository = parse_repository_url(url, allow_insecure_http=True)
    web = repository.transport in ("https", "http")
    if isinstance(auth, SshAuth) and web:
        raise UserError("an SSH key was given for an https URL: use the ssh:// URL, or a token instead of the key")
    if isinstance(auth, TokenAuth) and not web:
        raise UserError("a token was given for an SSH URL: use the https URL, or pass --private-key-file")
    if isinstance(auth, SshAuth) and auth.passphrase is not None and "\n" in auth.passphrase:
        raise UserError("the SSH key passphrase must be a single line")
    if repository.transport == "https" and os.environ.get("GIT_SSL_NO_VERIFY"):
        raise UserError(
            "GIT_SSL_NO_VERIFY is set: credentials are never sent to a server whose certificate is not verified. "
            "Unset it, and give the server's CA certificate with GIT_SSL_CAINFO if it is not publicly trusted"
        )
    return repository


def _environment(
    repository: RepositoryUrl, auth: GitAuth, directory: Path, timeout: float | None
) -> tuple[dict[str, str], tuple[str, ...]]:
    home = directory / "home"
    home.mkdir(mode=0o700)
    env = {name: value for name, value in os.environ.items() if not dropped(name)}
    env.update(
        {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": shutil.which("true") or "/bin/true",
            # English messages: errors.py reads them.
            "LC_ALL": "C",
            "LANGUAGE": "C",
        }
    )
    config: list[tuple[str, str]] = [
        ("credential.helper", ""),  # an empty value resets the helper list
        ("core.hooksPath", os.devnull),
        ("gc.auto", "0"),  # no detached gc that would outlive the operation
        ("maintenance.auto", "false"),
        ("advice.detachedHead", "false"),
        ("protocol.version", "2"),
        ("protocol.allow", "never"),  # file://, ext::, git:// and the rest: never, whatever a URL says
        ("protocol.https.allow", "always"),
        ("protocol.http.allow", "always"),
        ("protocol.ssh.allow", "always"),
        ("http.followRedirects", "false"),  # see the module docstring: the header would follow a redirect
        ("http.lowSpeedLimit", str(LOW_SPEED_BYTES)),
        ("http.lowSpeedTime", str(LOW_SPEED_SECONDS)),
        ("transfer.credentialsInUrl", "die"),  # git >= 2.41 refuses a password in a URL
    ]
    secrets: list[str] = []
    if isinstance(auth, TokenAuth):
        header = auth.token.authorization_header()
        config.append((f"http.{header_scope(repository)}.extraHeader", f"Authorization: {header}"))
        secrets += [header, *auth.token.secret_forms()]
    elif isinstance(auth, SshAuth):
        env.update(_ssh_environment(repository, auth, directory, timeout))
        secrets += _key_lines(auth.private_key)
        if auth.passphrase:
            secrets.append(auth.passphrase)
    env["GIT_CONFIG_COUNT"] = str(len(config))
    for index, (key, value) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    return env, tuple(secrets)


def header_scope(repository: RepositoryUrl) -> str:
    """The URL the Authorization header is configured for: the repository's own URL as git is given it, without
    user info or a trailing '/'. git sends the header with a request when this is a prefix of the request's
    path (whole segments), on the same scheme, host and port."""
    return repository.git_url.rstrip("/")


def _ssh_environment(
    repository: RepositoryUrl, auth: SshAuth, directory: Path, timeout: float | None
) -> dict[str, str]:
    key, encrypted = load_private_key(auth.private_key, auth.passphrase)
    info = key_info(key)
    host = repository.host
    if repository.is_azure_devops:
        require_rsa(info, host)
    if not auth.known_hosts.strip():
        raise UserError(
            f"no trusted host key for {host}: pass --ssh-known-hosts FILE with its key, verified with the server's "
            "administrator (do not trust a scan)"
        )
    algorithms = [a.strip() for a in auth.hostkey_algos if a.strip()]
    if not algorithms:
        raise UserError("--ssh-hostkey-algos is empty: name at least one algorithm, e.g. rsa-sha2-512,rsa-sha2-256")
    ssh = shutil.which("ssh")
    if ssh is None:
        raise UserError("the OpenSSH client (ssh) is not installed: install it (Debian: openssh-client)")
    connect_timeout = DEFAULT_CONNECT_TIMEOUT if timeout is None else max(1, min(30, math.ceil(timeout)))
    key_file = _write_private(directory / "identity", auth.private_key, 0o600)
    known_hosts = _write_private(directory / "known_hosts", auth.known_hosts.encode("utf-8"), 0o600)
    argv = [
        ssh,
        "-F",
        os.devnull,
        "-o",
        f"IdentityFile={_ssh_config_path(key_file)}",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "IdentityAgent=none",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={_ssh_config_path(known_hosts)}",
        "-o",
        f"GlobalKnownHostsFile={os.devnull}",
        "-o",
        "UpdateHostKeys=no",
        "-o",
        f"HostKeyAlgorithms={','.join(algorithms)}",
        "-o",
        "PreferredAuthentications=publickey",
        "-o",
        "PasswordAuthentication=no",
        "-o",
        "KbdInteractiveAuthentication=no",
        "-o",
        f"ConnectTimeout={connect_timeout}",
        "-o",
        "ServerAliveInterval=15",
        "-o",
        "ServerAliveCountMax=3",
    ]
    if info.algorithm == "rsa":
        argv += ["-o", f"PubkeyAcceptedAlgorithms={','.join(rsa_signature_algorithms(algorithms))}"]
    env = {"GIT_SSH_VARIANT": "ssh"}
    if encrypted and auth.passphrase:
        script = _write_private(
            directory / "askpass",
            f"#!/bin/sh\nprintf '%s\\n' \"${PASSPHRASE_VARIABLE}\"\n".encode(),
            0o700,
        )
        argv += ["-o", "NumberOfPasswordPrompts=1"]
        env.update({PASSPHRASE_VARIABLE: auth.passphrase, "SSH_ASKPASS": str(script), "SSH_ASKPASS_REQUIRE": "force"})
    else:
        argv += ["-o", "BatchMode=yes"]
    # git runs the command through the shell: every part is quoted (temporary paths may hold spaces).
    env["GIT_SSH_COMMAND"] = " ".join(shlex.quote(part) for part in argv)
    return env


def rsa_signature_algorithms(hostkey_algos: list[str]) -> list[str]:
    """The signature algorithms an RSA user key may use: the RSA ones of --ssh-hostkey-algos (the issue's rule:
    one flag for both), or SHA-2 only when it names none (an ed25519 host key with an RSA user key). Other key
    types keep OpenSSH's defaults: Azure DevOps refuses them before this point, other servers may take them."""
    rsa = [a for a in hostkey_algos if a.startswith(("rsa-sha2-", "ssh-rsa"))]
    return rsa or list(RSA_SHA2)


def _ssh_config_path(path: Path) -> str:
    """A path as an ssh option value: ssh splits option values on spaces unless double-quoted, and expands `%x`
    and `${VAR}` in file names, so `%` is doubled and what cannot be quoted is refused (name another folder)."""
    text = str(path)
    if any(bad in text for bad in ('"', "\\", "${")) or any(ord(c) < 0x20 for c in text):
        raise UserError(
            f"the temporary folder {path.parent.parent} has characters ssh cannot take in a file name "
            "('\"', '\\', '${'): point TMPDIR at a plain folder"
        )
    return '"' + text.replace("%", "%%") + '"'


def _key_lines(data: bytes) -> list[str]:
    """The base64 body lines of a private key file: never to appear in any text."""
    text = data.decode("ascii", errors="ignore")
    return [line.strip() for line in text.splitlines() if len(line.strip()) >= 16 and "-----" not in line]


def _write_private(path: Path, data: bytes, mode: int) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    with os.fdopen(fd, "wb") as stream:
        stream.write(data)
    os.chmod(path, mode)
    return path
