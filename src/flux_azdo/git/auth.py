"""Credentials for git, handed over through the environment of one git process tree, never anywhere that stays.

HTTPS: the token goes in as a pre-emptive `Authorization` header, `http.<origin>/.extraHeader`, set through
`GIT_CONFIG_COUNT/KEY_n/VALUE_n`. That is the mechanism Azure Pipelines itself uses, it is the only one that
carries a bearer token (the job token, an Entra token; an askpass program can only answer user name and password
prompts), and it saves the 401 round trip. The key is scoped to the repository's origin, so the header is never
sent to another host. `GIT_ASKPASS` is a no-op program: after a 401 git would otherwise fall back to prompting
and fail with a misleading "could not read Username"; with the no-op it says "Authentication failed".

SSH: `GIT_SSH_COMMAND` runs OpenSSH with no config file, no agent, only the given key (a 0600 copy), a pinned
known_hosts and strict host key checking. A passphrase reaches ssh through `SSH_ASKPASS` (a script that prints an
environment variable) with `SSH_ASKPASS_REQUIRE=force`, and password or keyboard-interactive authentication is
switched off so that the passphrase can never be sent to a server as a password.

Either way the environment is hermetic: no system or global git config (`~/.gitconfig` could add a credential
helper or an `url.insteadOf` that sends the token elsewhere), HOME and XDG_CONFIG_HOME inside the private folder,
no inherited GIT_* variables except TLS and proxy settings, no prompts. Proxies still work through the standard
variables (`HTTPS_PROXY`, `https_proxy`, `NO_PROXY`), which curl reads; an `http.proxy` in ~/.gitconfig does not
apply, so users behind a proxy set the variable. Everything written (key copy, known_hosts, askpass script) lives
in a private 0700 temporary folder that is removed when the context ends, also on error.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from flux_azdo.azdo.credentials import AzureDevOpsToken
from flux_azdo.errors import UserError
from flux_azdo.git.errors import GitError, classify
from flux_azdo.git.ssh import is_azure_devops_ssh_url, key_info, load_private_key, require_rsa, ssh_host

#: Azure DevOps offers its host key with these, and accepts RSA user keys signed with them (SHA-2, never SHA-1).
RSA_SHA2 = ("rsa-sha2-512", "rsa-sha2-256")
#: The variable the askpass script reads the key's passphrase from.
PASSPHRASE_VARIABLE = "FLUX_AZDO_SSH_PASSPHRASE"
#: Inherited GIT_* variables that only choose TLS trust, proxy authentication or timeouts: kept.
KEPT_GIT_VARIABLES = frozenset(
    {
        "GIT_SSL_CAINFO",
        "GIT_SSL_CAPATH",
        "GIT_SSL_CERT",
        "GIT_SSL_KEY",
        "GIT_SSL_NO_VERIFY",
        "GIT_SSL_VERSION",
        "GIT_SSL_CIPHER_LIST",
        "GIT_HTTP_PROXY_AUTHMETHOD",
        "GIT_HTTP_LOW_SPEED_LIMIT",
        "GIT_HTTP_LOW_SPEED_TIME",
        "GIT_EXEC_PATH",
    }
)
#: Inherited variables that point git at a repository (set inside a git hook, say): an empty value would not
#: unset them, so GitPython callers get a path that does not exist (commands on a repository set their own).
REPOSITORY_VARIABLES = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_COMMON_DIR")
#: Other inherited variables that would change who authenticates or how.
DROPPED_VARIABLES = frozenset({"SSH_ASKPASS", "SSH_ASKPASS_REQUIRE", "SSH_AUTH_SOCK", PASSPHRASE_VARIABLE})


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


@dataclass(frozen=True)
class GitContext:
    """One authenticated git environment: what to run git with, and what must never show up in a message."""

    env: dict[str, str] = field(repr=False)
    directory: Path  # the private 0700 folder (removed when the context ends)
    url: str  # the repository URL, safe to print
    secrets: tuple[str, ...] = field(repr=False, default=())

    def overrides(self) -> dict[str, str]:
        """`env` for GitPython, which merges what it is given over `os.environ`: the variables this context drops
        are overridden, with empty values (which git and ssh treat as unset) or, for the variables that name a
        repository, with a path that does not exist."""
        nowhere = str(self.directory / "no-repository")
        blanks = {
            name: nowhere if name in REPOSITORY_VARIABLES else ""
            for name in os.environ
            if _dropped(name) and name not in self.env
        }
        return {**blanks, **self.env}

    def error(self, stderr: str, operation: str, branch: str | None = None) -> GitError:
        """The GitError for a failed command, with secrets and private paths scrubbed."""
        paths = (str(self.directory), os.path.realpath(self.directory))
        return classify(stderr, operation=operation, url=self.url, branch=branch, secrets=self.secrets, paths=paths)


@contextlib.contextmanager
def git_environment(url: str, auth: GitAuth, *, temp_parent: Path | None = None) -> Iterator[dict[str, str]]:
    """The full environment to run git with for `url`: pass it as the whole `env` of a subprocess (it is
    os.environ without the dropped variables, plus ours), not merged over os.environ."""
    with git_context(url, auth, temp_parent=temp_parent) as context:
        yield dict(context.env)


@contextlib.contextmanager
def git_context(url: str, auth: GitAuth, *, temp_parent: Path | None = None) -> Iterator[GitContext]:
    """Like `git_environment`, with the private folder and the secrets to scrub from messages."""
    transport = _transport(url)
    _check_auth_matches(url, transport, auth)
    if temp_parent is not None:
        Path(temp_parent).mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="flux-azdo-git-", dir=temp_parent))  # 0700
    try:
        env, secrets = _environment(url, auth, directory)
        yield GitContext(env, directory, _shown(url), secrets)
    finally:
        _remove(directory)


def _environment(url: str, auth: GitAuth, directory: Path) -> tuple[dict[str, str], tuple[str, ...]]:
    home = directory / "home"
    home.mkdir(mode=0o700)
    env = {name: value for name, value in os.environ.items() if not _dropped(name)}
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
        ("transfer.credentialsInUrl", "die"),  # git >= 2.41 refuses a password in a URL
    ]
    secrets: list[str] = []
    if isinstance(auth, TokenAuth):
        header = auth.token.authorization_header()
        config.append((f"http.{_origin(url)}.extraHeader", f"Authorization: {header}"))
        secrets += [header, *auth.token.secret_forms()]
    elif isinstance(auth, SshAuth):
        env.update(_ssh_environment(url, auth, directory))
        secrets += _key_lines(auth.private_key)
        if auth.passphrase:
            secrets.append(auth.passphrase)
    env["GIT_CONFIG_COUNT"] = str(len(config))
    for index, (key, value) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    return env, tuple(secrets)


def _ssh_environment(url: str, auth: SshAuth, directory: Path) -> dict[str, str]:
    key, encrypted = load_private_key(auth.private_key, auth.passphrase)
    host = ssh_host(url)[0] or "the SSH server"
    if is_azure_devops_ssh_url(url):
        require_rsa(key_info(key), host)
    if not auth.known_hosts.strip():
        raise UserError(
            f"no trusted host key for {host}: pass --ssh-known-hosts FILE with its key, verified with the server's "
            "administrator (do not trust a scan)"
        )
    algorithms = ",".join(a.strip() for a in auth.hostkey_algos if a.strip())
    if not algorithms:
        raise UserError("--ssh-hostkey-algos is empty: name at least one algorithm, e.g. rsa-sha2-512,rsa-sha2-256")
    ssh = shutil.which("ssh")
    if ssh is None:
        raise UserError("the OpenSSH client (ssh) is not installed: install it (Debian: openssh-client)")
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
        f"HostKeyAlgorithms={algorithms}",
        "-o",
        "PreferredAuthentications=publickey",
        "-o",
        "PasswordAuthentication=no",
        "-o",
        "KbdInteractiveAuthentication=no",
        "-o",
        "ConnectTimeout=30",
    ]
    if key_info(key).algorithm == "rsa":
        # RSA keys sign with SHA-2 only, as Azure DevOps requires; other key types keep OpenSSH's defaults.
        argv += ["-o", f"PubkeyAcceptedAlgorithms={','.join(RSA_SHA2)}"]
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


def _dropped(name: str) -> bool:
    return (name.startswith("GIT_") and name not in KEPT_GIT_VARIABLES) or name in DROPPED_VARIABLES


def _transport(url: str) -> str:
    lowered = url.lower()
    if lowered.startswith(("https://", "http://")):
        return "http"
    if lowered.startswith("ssh://") or ssh_host(url)[0] is not None:
        return "ssh"
    return "local"


def _check_auth_matches(url: str, transport: str, auth: GitAuth) -> None:
    if not url or url.startswith("-") or any(ord(c) < 0x20 for c in url):
        raise UserError("the repository URL is not valid: use https://... or ssh://... (see --url)")
    if transport == "http":
        parts = urlsplit(url)
        if parts.password is not None:
            raise UserError(
                "the repository URL contains a password: remove it from the URL and pass the token with "
                "--password, --password-stdin or GIT_PASSWORD"
            )
        if isinstance(auth, SshAuth):
            raise UserError("an SSH key was given for an https URL: use the ssh:// URL, or a token instead of the key")
    elif transport == "ssh" and isinstance(auth, TokenAuth):
        raise UserError("a token was given for an SSH URL: use the https URL, or pass --private-key-file")
    if isinstance(auth, SshAuth) and auth.passphrase is not None and "\n" in auth.passphrase:
        raise UserError("the SSH key passphrase must be a single line")


def _origin(url: str) -> str:
    """`scheme://host[:port]/` of an http(s) URL, without user info: the scope of the Authorization header."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme.lower()}://{netloc}/"


def _shown(url: str) -> str:
    """The URL for messages: without any user info password."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return parts._replace(netloc=f"{user}:***@{netloc}" if user else netloc).geturl()


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


def _remove(directory: Path) -> None:
    """Remove the private folder; git's read-only object files need no special care (the folder is ours)."""
    shutil.rmtree(directory, ignore_errors=True)
    if directory.exists():  # a folder made read-only by something we ran: make it writable and try again
        for folder, _, _ in os.walk(directory):
            with contextlib.suppress(OSError):
                os.chmod(folder, 0o700)
        shutil.rmtree(directory, ignore_errors=True)
