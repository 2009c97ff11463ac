"""Fetch a GitRepository's reference with the real `git` CLI, and describe failures the way go-git does.

Credentials never reach argv: HTTP(S) gets a pre-emptive `Authorization` header through GIT_CONFIG_* variables
(go-git also authenticates up front), SSH gets GIT_SSH_COMMAND naming 0600 files in a private temporary
directory: the identity, the Secret's known_hosts (strict checking against exactly that file) and the host key
and key exchange algorithms source-controller would offer. `git ls-remote` resolves the reference first (as
Flux's "optimised clone" does when an artifact exists), then a shallow fetch of that reference is checked out.

Errors are translated from git/OpenSSH wording to go-git's, e.g. `authentication required: <body>` or
`ssh: handshake failed: ssh: no common algorithm for host key; client offered: [ssh-rsa], server offered:
[rsa-sha2-512 rsa-sha2-256]`; the caller adds Flux's `unable to clone '<url>': ` prefix.
"""

from __future__ import annotations

import base64
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from flux_azdo.sandbox.flux.gitauth import GitAuth, openssh_identity


class GitError(Exception):
    """A failed git operation; the message is go-git's description of the cause (no URL prefix)."""


class GitCancelled(Exception):
    """The simulator is stopping."""


@dataclass(frozen=True)
class Commit:
    """What was checked out: the full reference (`refs/heads/main`), the commit and its message."""

    reference: str
    sha: str
    message: str

    def short_message(self) -> str:
        """go-git's `ShortMessage`: the subject line, cut at 50 characters."""
        subject = self.message.split("\n", 1)[0]
        return subject if len(subject) <= 50 else subject[:50] + "..."


@dataclass(frozen=True)
class Reference:
    """What a GitRepository asks for (`spec.ref`), resolved against the remote's references."""

    branch: str = ""
    tag: str = ""
    commit: str = ""
    name: str = ""
    semver: str = ""

    @classmethod
    def from_spec(cls, ref: dict[str, object] | None) -> Reference:
        ref = ref or {}
        return cls(
            branch=str(ref.get("branch") or ""),
            tag=str(ref.get("tag") or ""),
            commit=str(ref.get("commit") or ""),
            name=str(ref.get("name") or ""),
            semver=str(ref.get("semver") or ""),
        )

    def wanted(self) -> str:
        """The remote reference to look up; `master` when nothing is set (go-git's default branch)."""
        if self.name:
            return self.name
        if self.tag:
            return f"refs/tags/{self.tag}"
        return f"refs/heads/{self.branch or 'master'}"

    def revision(self, commit: Commit) -> str:
        """Flux's artifact revision: `main@sha1:<sha>`, `v1.0@sha1:<sha>`, `refs/...@sha1:<sha>`, `sha1:<sha>`."""
        if self.name:
            return f"{commit.reference}@sha1:{commit.sha}" if commit.reference else f"sha1:{commit.sha}"
        parts = commit.reference.split("/", 2)
        if len(parts) == 3:
            return f"{parts[2]}@sha1:{commit.sha}"
        return f"sha1:{commit.sha}"


class GitFetcher:
    """Runs git processes under `work_dir`; `cancel_all()` kills the running ones (used by stop)."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self._home = work_dir / "home"
        self._processes: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()
        self._cancelled = False

    def cancel_all(self) -> None:
        with self._lock:
            self._cancelled = True
            processes = list(self._processes)
        for process in processes:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)

    # -- public operations ------------------------------------------------------------------------------------

    def remote_references(self, auth: GitAuth, timeout: float) -> dict[str, str]:
        """`git ls-remote`: reference -> commit (annotated tags resolved to their commit)."""
        with self._session(auth) as env:
            output = self._git(["ls-remote", "--", auth.remote_url], env=env, timeout=timeout, auth=auth)
        references: dict[str, str] = {}
        peeled: dict[str, str] = {}
        for line in output.splitlines():
            sha, _, name = line.partition("\t")
            if not name:
                continue
            if name.endswith("^{}"):
                peeled[name[:-3]] = sha
            else:
                references[name] = sha
        references.update(peeled)
        return references

    def checkout(
        self, auth: GitAuth, reference: Reference, remote_ref: str | None, destination: Path, timeout: float
    ) -> Commit:
        """Fetch and check out into `destination` (created empty); `remote_ref` is the resolved reference."""
        if destination.exists():
            shutil.rmtree(destination)
        destination.mkdir(parents=True)
        with self._session(auth) as env:
            self._git(["init", "-q", str(destination)], env=env, timeout=timeout, auth=auth)
            if reference.commit:
                refspecs = [f"+{remote_ref}:refs/flux/fetched"] if remote_ref else ["+refs/heads/*:refs/flux/heads/*"]
                self._git(
                    ["fetch", "-q", "--no-tags", "--", auth.remote_url, *refspecs],
                    env=env,
                    timeout=timeout,
                    auth=auth,
                    cwd=destination,
                )
                target = reference.commit
                found = self._git_status(["cat-file", "-e", f"{target}^{{commit}}"], env=env, cwd=destination)
                if not found:
                    raise GitError(f"unable to resolve commit object for '{target}': object not found")
            else:
                assert remote_ref is not None
                refspec = f"+{remote_ref}:refs/flux/fetched"
                self._git(
                    ["fetch", "-q", "--no-tags", "--depth=1", "--", auth.remote_url, refspec],
                    env=env,
                    timeout=timeout,
                    auth=auth,
                    cwd=destination,
                )
                target = "refs/flux/fetched^{commit}"
            self._git(["checkout", "-q", "--detach", target], env=env, timeout=timeout, auth=auth, cwd=destination)
            described = self._git(
                ["log", "-1", "--format=%H%x00%B"], env=env, timeout=timeout, auth=auth, cwd=destination
            )
        sha, _, message = described.partition("\x00")
        full_reference = remote_ref or ""
        if reference.commit and not reference.name:
            full_reference = f"refs/heads/{reference.branch}" if reference.branch else ""
        return Commit(reference=full_reference, sha=sha.strip(), message=message.strip("\n"))

    # -- processes --------------------------------------------------------------------------------------------

    @contextmanager
    def _session(self, auth: GitAuth) -> Iterator[dict[str, str]]:
        """A private directory with the credential files, and the environment that points git at them."""
        self._home.mkdir(parents=True, exist_ok=True)
        directory = Path(tempfile.mkdtemp(prefix="git-", dir=self.work_dir))
        os.chmod(directory, 0o700)
        try:
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": str(self._home),
                "LANG": "C",
                "LC_ALL": "C",
                "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_CONFIG_GLOBAL": os.devnull,
                "GIT_TERMINAL_PROMPT": "0",
                "GIT_ASKPASS": shutil.which("true") or "/bin/true",
                "SSH_ASKPASS": shutil.which("true") or "/bin/true",
            }
            config: list[tuple[str, str]] = [("init.defaultBranch", "main"), ("advice.detachedHead", "false")]
            if auth.transport in ("http", "https"):
                if auth.bearer_token:
                    config.append(("http.extraHeader", f"Authorization: Bearer {auth.bearer_token}"))
                elif auth.username or auth.password:
                    basic = base64.b64encode(f"{auth.username}:{auth.password}".encode()).decode()
                    config.append(("http.extraHeader", f"Authorization: Basic {basic}"))
                if auth.ca:
                    ca_file = _write_private(directory / "ca.crt", auth.ca)
                    config.append(("http.sslCAInfo", str(ca_file)))
            elif auth.transport == "ssh":
                env["GIT_SSH_COMMAND"] = self._ssh_command(auth, directory)
                env["GIT_SSH_VARIANT"] = "ssh"
            env["GIT_CONFIG_COUNT"] = str(len(config))
            for index, (key, value) in enumerate(config):
                env[f"GIT_CONFIG_KEY_{index}"] = key
                env[f"GIT_CONFIG_VALUE_{index}"] = value
            yield env
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    @staticmethod
    def _ssh_command(auth: GitAuth, directory: Path) -> str:
        try:
            identity = openssh_identity(auth.identity, auth.password)
        except (ValueError, TypeError) as error:
            message = "x509: decryption password incorrect" if auth.password else "ssh: no key found"
            raise GitError(f"unable to construct auth method with options: {message}") from error
        identity_file = _write_private(directory / "identity", identity)
        known_hosts = _write_private(directory / "known_hosts", auth.known_hosts)
        options = [
            "-F", os.devnull,
            "-o", "BatchMode=yes",
            "-o", "IdentitiesOnly=yes",
            "-o", "IdentityAgent=none",
            "-o", f"IdentityFile={identity_file}",
            "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={known_hosts}",
            "-o", f"GlobalKnownHostsFile={os.devnull}",
            "-o", "CheckHostIP=no",
            "-o", "UpdateHostKeys=no",
            "-o", "ConnectTimeout=10",
            "-o", f"User={auth.username or 'git'}",
        ]  # fmt: skip
        if auth.host_key_algorithms:
            options += ["-o", "HostKeyAlgorithms=" + ",".join(auth.host_key_algorithms)]
        if auth.kex_algorithms:
            options += ["-o", "KexAlgorithms=" + ",".join(auth.kex_algorithms)]
        return shlex.join(["ssh", *options])

    def _run(self, args: list[str], *, env: dict[str, str], timeout: float, cwd: Path | None) -> tuple[int, str, str]:
        with self._lock:
            if self._cancelled:
                raise GitCancelled()
            process = subprocess.Popen(
                ["git", *args],
                cwd=str(cwd) if cwd else None,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
            self._processes.add(process)
        try:
            try:
                out, err = process.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.communicate()
                raise GitError("context deadline exceeded") from None
        finally:
            with self._lock:
                self._processes.discard(process)
        if self._cancelled:
            raise GitCancelled()
        return process.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")

    def _git(
        self, args: list[str], *, env: dict[str, str], timeout: float, auth: GitAuth, cwd: Path | None = None
    ) -> str:
        code, out, err = self._run(args, env=env, timeout=timeout, cwd=cwd)
        if code != 0:
            raise GitError(describe_failure(err, auth))
        return out

    def _git_status(self, args: list[str], *, env: dict[str, str], cwd: Path) -> bool:
        code, _, _ = self._run(args, env=env, timeout=30.0, cwd=cwd)
        return code == 0


def _write_private(path: Path, data: bytes) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as stream:
        stream.write(data if data.endswith(b"\n") else data + b"\n")
    return path


_NEGOTIATION = re.compile(r"no matching (host key type|key exchange method|cipher|MAC) found\. Their offer: (\S+)")
_WHAT = {
    "host key type": "host key",
    "key exchange method": "key exchange",
    "cipher": "client to server cipher",
    "MAC": "client to server MAC",
}


def describe_failure(stderr: str, auth: GitAuth) -> str:
    """go-git's error text for what git/OpenSSH printed on stderr."""
    lines = [line.rstrip() for line in stderr.splitlines() if line.strip()]
    remote = "\n".join(line[len("remote: ") :] if line.startswith("remote: ") else "" for line in lines).strip()
    parts = urlsplit(auth.url)
    host = parts.hostname or ""
    port = parts.port or (22 if auth.transport == "ssh" else 443 if auth.transport == "https" else 80)
    address = f"{host}:{port}"
    if auth.transport == "ssh":
        match = _NEGOTIATION.search(stderr)
        if match:
            what = _WHAT[match.group(1)]
            ours = list(auth.host_key_algorithms if what == "host key" else auth.kex_algorithms)
            theirs = match.group(2).split(",")
            return (
                f"ssh: handshake failed: ssh: no common algorithm for {what}; "
                f"client offered: [{' '.join(ours)}], server offered: [{' '.join(theirs)}]"
            )
        if "REMOTE HOST IDENTIFICATION HAS CHANGED" in stderr or re.search(r"Host key for .* has changed", stderr):
            return "ssh: handshake failed: knownhosts: key mismatch"
        if "Host key verification failed" in stderr or "host key is known" in stderr:
            return "ssh: handshake failed: knownhosts: key is unknown"
        if "Permission denied" in stderr:
            return (
                "ssh: handshake failed: ssh: unable to authenticate, attempted methods [none publickey], "
                "no supported methods remain"
            )
    else:
        match = re.search(r"The requested URL returned error: (\d+)", stderr)
        status = int(match.group(1)) if match else 0
        if "Authentication failed" in stderr or "could not read Username" in stderr:
            status = 401
        if status == 401:
            return f"authentication required: {remote}" if remote else "authentication required"
        if status == 403:
            return f"authorization failed: {remote}" if remote else "authorization failed"
        if status == 404 or re.search(r"repository '.*' not found", stderr):
            return f"repository not found: {remote}" if remote else "repository not found"
        if status:
            return f'unexpected client error: unexpected requesting "{auth.url}/info/refs" status code: {status}'
    if "Connection refused" in stderr or "Couldn't connect to server" in stderr or "Failed to connect" in stderr:
        return f"dial tcp {address}: connect: connection refused"
    if "timed out" in stderr:
        return f"dial tcp {address}: i/o timeout"
    if "Could not resolve host" in stderr or "Could not resolve hostname" in stderr:
        return f"dial tcp: lookup {host}: no such host"
    if remote:
        return f"unknown error: {remote}"
    fatal = [line.removeprefix("fatal: ") for line in lines if line.startswith("fatal: ")]
    return fatal[0] if fatal else (lines[-1] if lines else "unknown error")
