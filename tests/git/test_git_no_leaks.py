"""No secret outside the environment of the git processes: not in argv, files, output, logs or exception texts.

The git layer runs clone, commit and push over HTTPS (PAT, job token as bearer, a wrong token) and over SSH (an RSA
key with a passphrase, a wrong passphrase), and the paths where things go wrong (a server that hangs past the
timeout, Ctrl-C in the middle of a call, a redirect to another host), while a thread reads every process's
command line every few milliseconds and GitPython traces everything it runs. Every file of each workspace is
read while it is open (all of its private folder but the key copy, which is there on purpose), and afterwards
every file under the test's folders (TMPDIR, the sandbox's repositories), everything printed or logged, and
every exception text is searched for the token in all its forms (base64 at each of the three alignments
included), the passphrase and the private key's base64 lines.
"""

from __future__ import annotations

import base64
import logging
import os
import signal
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import pytest
from git_checks import job_auth, pat_auth, rsa_key, secret_key_lines
from git_servers import HangingServer, RedirectingServer

import git
from flux_azdo.azdo.credentials import AzureDevOpsToken
from flux_azdo.azdo.security import GitPermission, repository_token
from flux_azdo.errors import UserError
from flux_azdo.git import Change, ChangeProducer, GitAuth, GitError, SshAuth, TokenAuth, Workspace, remote_state
from flux_azdo.sandbox.runtime import Sandbox

PASSPHRASE = "leak-test passphrase 7f3a"


class CmdlineScanner(threading.Thread):
    """Reads /proc/*/cmdline in a loop; remembers any command line holding a needle, and what it saw."""

    def __init__(self, needles: Iterable[str]) -> None:
        super().__init__(daemon=True)
        self.needles = [needle.encode() for needle in needles]
        self.hits: list[str] = []
        self.seen: set[str] = set()
        self.rounds = 0
        self._halt = threading.Event()

    def run(self) -> None:
        me = str(os.getpid())
        while not self._halt.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit() or pid == me:
                    continue
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as handle:
                        cmdline = handle.read()
                except OSError:
                    continue
                if any(needle in cmdline for needle in self.needles):
                    self.hits.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
                words = cmdline.split(b"\0")
                if words and words[0]:
                    self.seen.add(" ".join(w.decode(errors="replace") for w in words[:2]))
            self.rounds += 1
            time.sleep(0.002)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)


def base64_forms(secret: str) -> set[str]:
    """The secret as it reads inside any base64 text: encoded after 0, 1 or 2 other bytes, without the characters
    at either edge that also depend on the neighbouring bytes."""
    forms = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + secret.encode()).decode()
        forms.add(encoded[4 if offset else 0 : -4])
    return forms


def producing(*changes: Change) -> ChangeProducer:
    return lambda root: list(changes)


def files_under(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file() and not path.is_symlink()]


def holders(paths: Iterable[Path], needles: Iterable[str]) -> list[str]:
    encoded = [n.encode() for n in needles]
    found = []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        found += [f"{path}: {n.decode()[:12]}..." for n in encoded if n in data]
    return found


def test_no_secret_in_argv_files_output_logs_or_errors(
    ssh_sandbox: Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    assert ssh_sandbox.ssh_url is not None
    temp = tmp_path / "TMPDIR"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setattr(tempfile, "tempdir", None)  # tempfile caches the folder it chose first
    monkeypatch.setattr(git.Git, "GIT_PYTHON_TRACE", "full")  # GitPython logs every command it runs
    caplog.set_level(logging.DEBUG)

    private, public = rsa_key(PASSPHRASE)
    ssh_sandbox.world.add_ssh_key(ssh_sandbox.user, public)  # counts from the next connection on
    repo_token = repository_token(ssh_sandbox.project.id, ssh_sandbox.repository.id)
    ssh_sandbox.world.allow(ssh_sandbox.build_service, repo_token, GitPermission.GENERIC_CONTRIBUTE)

    pat, job = pat_auth(ssh_sandbox), job_auth(ssh_sandbox, "bearer")
    wrong = TokenAuth(AzureDevOpsToken("w" * 52))
    read_only = pat_auth(ssh_sandbox, ssh_sandbox.world.issue_pat(ssh_sandbox.user, ("vso.code",)))
    needles = {PASSPHRASE, *base64_forms(PASSPHRASE)}
    for token_auth in (pat, job, wrong, read_only):
        token = token_auth.token
        needles |= {*token.secret_forms(), token.authorization_header().split(" ", 1)[1], *base64_forms(token.secret)}
    key_lines = secret_key_lines(private)
    assert len(key_lines) > 15
    needles |= set(key_lines)

    errors: list[BaseException] = []
    scanned: list[Path] = []
    scanner = CmdlineScanner(needles)
    scanner.start()
    try:
        ssh_auth = SshAuth(private, PASSPHRASE, ssh_sandbox.known_hosts_path.read_text())
        runs: list[tuple[str, GitAuth, str]] = [
            (ssh_sandbox.repo_url, pat, "pat"),
            (ssh_sandbox.repo_url, job, "job"),
            (ssh_sandbox.ssh_url, ssh_auth, "ssh"),
        ]
        for url, auth, name in runs:
            with Workspace(url, "main", auth) as workspace:
                assert workspace.directory.parent == temp
                result = workspace.publish(producing(Change(f"add {name}", {f"clusters/{name}.yaml": name})))
                assert result.pushed
                # Everything in the private folder while it exists: the checkout and its .git (config, index,
                # logs, packed refs...), the credential folder's HOME, known_hosts and askpass script. Only the
                # key copy holds the key, on purpose, until the workspace closes.
                present = files_under(workspace.directory)
                assert any(path.name == "identity" for path in present) == (name == "ssh")
                present = [path for path in present if path.name != "identity"]
                scanned += present
                assert holders(present, needles) == []
            assert not workspace.directory.exists()
        refused: list[tuple[str, GitAuth]] = [
            (ssh_sandbox.repo_url, wrong),
            (ssh_sandbox.ssh_url, SshAuth(private, "not the passphrase", ssh_sandbox.known_hosts_path.read_text())),
        ]
        for url, auth in refused:
            with pytest.raises(UserError) as caught:
                remote_state(url, auth)
            errors.append(caught.value)
        # A push refused by the server, with the PAT that may read but not write.
        with Workspace(ssh_sandbox.repo_url, "main", read_only) as workspace, pytest.raises(UserError) as caught:
            workspace.publish(lambda root: [Change("refused", {"x": "x"})])
        errors.append(caught.value)
        errors += failure_paths(pat)
    finally:
        scanner.stop()

    assert scanner.hits == []
    assert scanner.rounds > 50
    # The scanner did see the short-lived processes that carry credentials: git's HTTP helper and ssh.
    assert any("git-remote-http" in cmdline or "git remote-http" in cmdline for cmdline in scanner.seen)
    assert any(cmdline.split()[0].endswith("/ssh") for cmdline in scanner.seen if cmdline.split())
    assert any(path.name == "config" and path.parent.name == ".git" for path in scanned)
    assert any(path.name == "askpass" for path in scanned) and any(path.name == "known_hosts" for path in scanned)
    # The private folders are gone, and nothing was left in TMPDIR.
    assert list(temp.iterdir()) == []
    # Everything under the test's folder: TMPDIR, the sandbox's bare repositories and its own files.
    assert holders(files_under(tmp_path), needles) == []
    texts = [str(error) for error in errors] + [repr(error) for error in errors]
    texts += [repr(error.__cause__) for error in errors] + [repr(error.__context__) for error in errors]
    out, err = capfd.readouterr()
    texts += [out, err, caplog.text]
    assert [n[:12] for n in needles for text in texts if n in text] == []
    assert "git push --porcelain origin" in caplog.text  # GitPython's trace was on, and was searched
    messages = [str(error) for error in errors]
    assert any("the token was rejected" in message for message in messages)
    assert any("passphrase of the SSH private key is wrong" in message for message in messages)
    assert any("lacks the scope" in message for message in messages)
    assert any("did not finish within 1 s" in message for message in messages)
    assert any(isinstance(error, KeyboardInterrupt) for error in errors)
    assert any("redirects to another address" in message for message in messages)


def failure_paths(auth: TokenAuth) -> list[BaseException]:
    """The token through the paths that end early: a timeout, Ctrl-C, a redirect to another host."""
    errors: list[BaseException] = []
    with HangingServer() as server:
        with pytest.raises(GitError) as timed_out:
            remote_state(f"http://127.0.0.1:{server.port}/o/p/_git/r", auth, timeout=1)
        errors.append(timed_out.value)
    main = threading.get_ident()
    with HangingServer() as server:

        def interrupt() -> None:
            server.wait_for_connection()
            time.sleep(0.2)
            signal.pthread_kill(main, signal.SIGINT)

        interrupter = threading.Thread(target=interrupt, daemon=True)
        interrupter.start()
        with pytest.raises(KeyboardInterrupt) as interrupted:
            remote_state(f"http://127.0.0.1:{server.port}/o/p/_git/r", auth, timeout=120)
        interrupter.join(timeout=10)
        errors.append(interrupted.value)
    with RedirectingServer() as redirecting:
        with pytest.raises(GitError) as redirected:
            remote_state(redirecting.url, auth, timeout=30)
        assert redirecting.elsewhere == []
        errors.append(redirected.value)
    return errors


def test_the_scanner_sees_a_secret_in_argv() -> None:
    """The control for the test above: a secret in a short-lived process's argv is found."""
    import subprocess
    import sys

    scanner = CmdlineScanner(["needle-0b1d"])
    scanner.start()
    try:
        subprocess.run([sys.executable, "-c", "import time; time.sleep(0.2)", "needle-0b1d"], check=True)
    finally:
        scanner.stop()
    assert scanner.hits and "needle-0b1d" in scanner.hits[0]
