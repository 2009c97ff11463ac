"""The git processes and where the credentials go when things go wrong: redirects, hanging servers, timeouts on
images without pgrep/ps, Ctrl-C, SIGTERM, and no git at all.

The servers here (tests/git/git_servers.py) hang or redirect on purpose; the sandbox never does either.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from git_checks import rsa_key
from git_servers import HangingServer, RedirectingServer, survivors

from flux_azdo.azdo.credentials import AzureDevOpsToken
from flux_azdo.errors import UserError
from flux_azdo.git import GitAuth, GitError, SshAuth, TokenAuth, remote_state

SECRET = "processes-test-pat-" + "q" * 33


def token() -> TokenAuth:
    return TokenAuth(AzureDevOpsToken(SECRET))


def ssh_auth(port: int) -> SshAuth:
    private, public = rsa_key()
    return SshAuth(private, None, f"[127.0.0.1]:{port} {' '.join(public.split()[:2])}\n")


def private_tmpdir(monkeypatch: pytest.MonkeyPatch, folder: Path) -> Path:
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", None)  # tempfile caches the folder it chose first
    return folder


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_not_followed_and_the_token_stays_home(status: int) -> None:
    """git would re-target later requests to the redirected URL and still add the header it matched against the
    original one: the second server would get the token."""
    with RedirectingServer(status) as server, pytest.raises(GitError) as caught:
        remote_state(server.url, token(), timeout=30)
    assert server.here and all(seen.authorization for seen in server.here)  # the repository's server: yes
    assert server.elsewhere == []  # the other host: nothing at all
    message = caught.value.message
    assert f"the server redirects to another address (HTTP {status})" in message
    assert "use the URL it redirects to as --url" in message and SECRET not in message


def minimal_path(folder: Path) -> str:
    """A PATH with git, ssh, sh and true only: no pgrep, no ps (slim container images)."""
    folder.mkdir()
    for tool in ("git", "ssh", "sh", "true"):
        found = subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True, text=True).stdout.strip()
        assert found, tool
        (folder / tool).symlink_to(found)
    return str(folder)


@pytest.mark.parametrize("transport", ["http", "ssh"])
def test_timeout_kills_every_git_process_without_pgrep_or_ps(
    transport: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", minimal_path(tmp_path / "bin"))
    assert not any((tmp_path / "bin" / tool).exists() for tool in ("pgrep", "ps"))
    outcome: list[BaseException | None] = []
    with HangingServer() as server:
        marker = f"127.0.0.1:{server.port}"
        url = f"http://{marker}/o/p/_git/r" if transport == "http" else f"ssh://git@{marker}/v3/o/p/r"
        auth: GitAuth = token() if transport == "http" else ssh_auth(server.port)

        def call() -> None:
            try:
                remote_state(url, auth, timeout=2)
                outcome.append(None)
            except BaseException as error:
                outcome.append(error)

        # In a thread, so that a regression (a helper process holding git's pipes open) fails instead of hanging.
        caller = threading.Thread(target=call, daemon=True)
        caller.start()
        caller.join(timeout=60)
        assert not caller.is_alive(), "remote_state did not return after its timeout"
        assert server.connections >= 1  # it did reach the server, and then hung there
        assert survivors(marker) == []
    (error,) = outcome
    assert isinstance(error, GitError)
    if transport == "http":  # ssh may give up first (ConnectTimeout follows the timeout): either way, no survivor
        assert "did not finish within 2 s" in error.message
    assert survivors(SECRET, "environ") == []


def test_ctrl_c_during_a_call_kills_the_processes_holding_the_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    temp = private_tmpdir(monkeypatch, tmp_path / "tmp")
    main = threading.get_ident()
    with HangingServer() as server:

        def interrupt() -> None:
            server.wait_for_connection()
            time.sleep(0.2)
            signal.pthread_kill(main, signal.SIGINT)

        interrupter = threading.Thread(target=interrupt, daemon=True)
        interrupter.start()
        with pytest.raises(KeyboardInterrupt):
            remote_state(f"http://127.0.0.1:{server.port}/o/p/_git/r", token(), timeout=120)
        interrupter.join(timeout=10)
        assert survivors(SECRET, "environ") == []
        assert survivors(f"127.0.0.1:{server.port}") == []
    assert list(temp.iterdir()) == []  # the private folder went with the interrupt


CHILD = r"""
import signal, sys
from pathlib import Path

# What the CLI does: SIGTERM and SIGHUP become SystemExit, so that every `finally` runs.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
from flux_azdo.git import SshAuth, Workspace

key, known_hosts, url, parent = sys.argv[1:5]
auth = SshAuth(Path(key).read_bytes(), None, Path(known_hosts).read_text())
with Workspace(url, "main", auth, temp_parent=Path(parent), timeout=300):
    pass
"""


def test_sigterm_removes_the_key_copy(tmp_path: Path) -> None:
    """A SIGTERM handler that raises SystemExit (the CLI installs one) is all the library needs."""
    private, public = rsa_key()
    key = tmp_path / "id_rsa"
    key.write_bytes(private)
    parent = tmp_path / "work"
    parent.mkdir()
    with HangingServer() as server:
        known = tmp_path / "known_hosts"
        known.write_text(f"[127.0.0.1]:{server.port} {' '.join(public.split()[:2])}\n")
        url = f"ssh://git@127.0.0.1:{server.port}/v3/o/p/r"
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(key), str(known), url, str(parent)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            server.wait_for_connection()  # ssh is connected: the key copy is on disk
            copies = list(parent.glob("flux-azdo-workspace-*/flux-azdo-git-*/identity"))
            assert len(copies) == 1 and copies[0].read_bytes() == private
            child.send_signal(signal.SIGTERM)
            _, stderr = child.communicate(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        assert child.returncode == 143, stderr.decode(errors="replace")
        assert not copies[0].exists() and list(parent.iterdir()) == []
        assert survivors(f"127.0.0.1:{server.port}") == []


def test_without_git_the_error_says_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(UserError) as caught:
        remote_state("http://127.0.0.1:9/o/p/_git/r", None, timeout=5)
    assert caught.value.message == "git is not installed: install git 2.31 or later"
    assert os.environ["PATH"] == str(empty)
