"""No secret outside the environment of the git processes: not in argv, files, output, logs or exception texts.

The git layer runs clone, commit and push over HTTPS (PAT, job token as bearer, a wrong token) and over SSH (an RSA
key with a passphrase, a wrong passphrase) while a thread reads every process's command line every few
milliseconds. Afterwards every file under the test's folders (the checkouts while they existed, the temporary
folder TMPDIR points at, the sandbox's repositories), everything printed or logged, and every exception text is
searched for the token in all its forms, the passphrase and the private key's base64 lines.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import pytest
from git_checks import job_auth, pat_auth, rsa_key, secret_key_lines

from flux_azdo.azdo.credentials import AzureDevOpsToken
from flux_azdo.azdo.security import GitPermission, repository_token
from flux_azdo.errors import UserError
from flux_azdo.git import Change, SshAuth, TokenAuth, Workspace, remote_state
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
    caplog.set_level(logging.DEBUG)  # GitPython logs every command it runs at debug level

    private, public = rsa_key(PASSPHRASE)
    ssh_sandbox.world.add_ssh_key(ssh_sandbox.user, public)
    assert ssh_sandbox.ssh is not None
    ssh_sandbox.ssh.refresh_keys()
    repo_token = repository_token(ssh_sandbox.project.id, ssh_sandbox.repository.id)
    ssh_sandbox.world.allow(ssh_sandbox.build_service, repo_token, GitPermission.GENERIC_CONTRIBUTE)

    pat, job = pat_auth(ssh_sandbox), job_auth(ssh_sandbox, "bearer")
    wrong = TokenAuth(AzureDevOpsToken("w" * 52))
    read_only = pat_auth(ssh_sandbox, ssh_sandbox.world.issue_pat(ssh_sandbox.user, ("vso.code",)))
    needles = {PASSPHRASE}
    for auth in (pat, job, wrong, read_only):
        needles |= {*auth.token.secret_forms(), auth.token.authorization_header().split(" ", 1)[1]}
    key_lines = secret_key_lines(private)
    assert len(key_lines) > 15
    needles |= set(key_lines)

    errors: list[BaseException] = []
    scanned: list[Path] = []
    scanner = CmdlineScanner(needles)
    scanner.start()
    try:
        ssh_auth = SshAuth(private, PASSPHRASE, ssh_sandbox.known_hosts_path.read_text())
        for url, auth, name in (
            (ssh_sandbox.repo_url, pat, "pat"),
            (ssh_sandbox.repo_url, job, "job"),
            (ssh_sandbox.ssh_url, ssh_auth, "ssh"),
        ):
            with Workspace(url, "main", auth) as workspace:
                assert workspace.directory.parent == temp
                result = workspace.publish(lambda root, n=name: [Change(f"add {n}", {f"clusters/{n}.yaml": n})])
                assert result.pushed
                # The checkout and its .git (config, index, logs, packed refs, FETCH_HEAD...): the credential
                # folder next to it holds the key copy on purpose, until the workspace closes.
                scanned += files_under(workspace.root)
                assert holders(files_under(workspace.root), needles) == []
            assert not workspace.directory.exists()
        for url, auth in (
            (ssh_sandbox.repo_url, wrong),
            (ssh_sandbox.ssh_url, SshAuth(private, "not the passphrase", ssh_sandbox.known_hosts_path.read_text())),
        ):
            with pytest.raises(UserError) as caught:
                remote_state(url, auth)
            errors.append(caught.value)
        # A push refused by the server, with the PAT that may read but not write.
        with Workspace(ssh_sandbox.repo_url, "main", read_only) as workspace, pytest.raises(UserError) as caught:
            workspace.publish(lambda root: [Change("refused", {"x": "x"})])
        errors.append(caught.value)
    finally:
        scanner.stop()

    assert scanner.hits == []
    assert scanner.rounds > 50
    # The scanner did see the short-lived processes that carry credentials: git's HTTP helper and ssh.
    assert any("git-remote-http" in cmdline or "git remote-http" in cmdline for cmdline in scanner.seen)
    assert any(cmdline.split()[0].endswith("/ssh") for cmdline in scanner.seen if cmdline.split())
    assert any(path.name == "config" and path.parent.name == ".git" for path in scanned)
    # The private folders are gone, and nothing was left in TMPDIR.
    assert list(temp.iterdir()) == []
    # Everything under the test's folder: TMPDIR, the sandbox's bare repositories and its own files.
    assert holders(files_under(tmp_path), needles) == []
    texts = [str(error) for error in errors] + [repr(error) for error in errors]
    texts += [repr(error.__cause__) for error in errors] + [repr(error.__context__) for error in errors]
    out, err = capfd.readouterr()
    texts += [out, err, caplog.text]
    assert [n[:12] for n in needles for text in texts if n in text] == []
    assert any("the token was rejected" in str(error) for error in errors)
    assert any("passphrase of the SSH private key is wrong" in str(error) for error in errors)
    assert any("lacks the scope" in str(error) for error in errors)


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
