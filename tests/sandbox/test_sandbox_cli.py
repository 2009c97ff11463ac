"""`flux-azdo sandbox up/down`: the README's example, run as written, and the mistakes people make with it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flux_azdo.sandbox.daemon import read_env, running_pid

README = Path(__file__).resolve().parents[2] / "README.md"
BIN = Path(sys.executable).parent


def _readme_example() -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- sandbox-example[^>]*-->\n```sh\n(.*?)```\n<!-- end sandbox-example -->", text, re.S)
    assert match, "README.md lost its sandbox example block"
    return match.group(1)


def _env(home: Path) -> dict[str, str]:
    return {
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(home),
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "AZURE_DEVOPS_CACHE_DIR": str(home / "sdk-cache"),
    }


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flux_azdo", *args], env=_env(home), capture_output=True, text=True, timeout=90
    )


def test_readme_example_runs_as_written(tmp_path: Path) -> None:
    root = tmp_path / "flux-sandbox"
    script = _readme_example().replace("/tmp/flux-sandbox", str(root))
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], env=_env(tmp_path), capture_output=True, text=True, timeout=120
    )
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        assert re.search(r"^namespace\s|^NAME\s+STATUS", result.stdout, re.M), result.stdout
        assert "default" in result.stdout and "kube-system" in result.stdout
        assert (Path(f"{root}-clone") / ".git").is_dir()
        assert "AZDO_PAT=" in result.stdout  # `up` prints the credentials for the user to copy
        # The token went through the environment only: the clone's config has no trace of it.
        pat = next(line.split("=", 1)[1] for line in result.stdout.splitlines() if line.startswith("AZDO_PAT="))
        assert pat not in (Path(f"{root}-clone") / ".git" / "config").read_text()
        # `down` stopped the process and removed every file the sandbox wrote.
        assert running_pid(root) is None
        assert sorted(p.name for p in root.iterdir()) == []
    finally:
        _cli("sandbox", "down", "--dir", str(root), home=tmp_path)


def test_up_writes_env_and_kubeconfig_then_refuses_a_second_up(tmp_path: Path) -> None:
    root = tmp_path / "sb"
    try:
        first = _cli("sandbox", "up", "--dir", str(root), "--no-ssh", "--http", home=tmp_path)
        assert first.returncode == 0, first.stderr
        pid = running_pid(root)
        assert pid is not None
        values = read_env(root / "sandbox.env")
        assert values["KUBECONFIG"] == str(root / "kubeconfig")
        assert values["AZDO_SSH_URL"] == ""
        assert "SSH: not started (--no-ssh)" in first.stderr
        second = _cli("sandbox", "up", "--dir", str(root), home=tmp_path)
        assert second.returncode == 1
        assert second.stderr.strip().splitlines() == [
            second.stderr.strip().splitlines()[0],
            f"✗ a sandbox already runs for {root} (pid {pid}): stop it with `flux-azdo sandbox down --dir {root}`",
        ]
        assert running_pid(root) == pid
    finally:
        stopped = _cli("sandbox", "down", "--dir", str(root), home=tmp_path)
    assert stopped.returncode == 0 and "stopped" in stopped.stderr
    assert not (root / "sandbox.env").exists()


def test_down_without_a_sandbox_says_so(tmp_path: Path) -> None:
    result = _cli("sandbox", "down", "--dir", str(tmp_path), home=tmp_path)
    assert result.returncode == 0
    assert "no sandbox was running" in result.stderr


def test_up_with_a_missing_kubeconfig_fails_in_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    root = tmp_path / "sb"
    result = _cli(
        "sandbox", "up", "--dir", str(root), "--no-ssh", "--kubeconfig", str(tmp_path / "nope"), home=tmp_path
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"✗ kubeconfig {tmp_path / 'nope'} does not exist: pass the path of an existing cluster's file"
    )
    assert "Traceback" not in result.stderr
    assert not root.exists()


def test_up_with_a_broken_kubeconfig_reports_the_daemons_reason(tmp_path: Path) -> None:
    root = tmp_path / "sb"
    broken = tmp_path / "broken.kubeconfig"
    broken.write_text("clusters: [\n")
    result = _cli("sandbox", "up", "--dir", str(root), "--no-ssh", "--kubeconfig", str(broken), home=tmp_path)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"✗ the sandbox did not start: kubeconfig {broken} cannot be used: "), last
    assert running_pid(root) is None
    down = _cli("sandbox", "down", "--dir", str(root), home=tmp_path)
    assert down.returncode == 0
    assert sorted(p.name for p in root.iterdir()) == []


def test_a_folder_holding_other_files_is_never_taken_or_emptied(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    (mine / "repos").mkdir(parents=True)
    (mine / "kubeconfig").write_text("my cluster\n")
    up = _cli("sandbox", "up", "--dir", str(mine), "--no-ssh", home=tmp_path)
    assert up.returncode == 1
    assert up.stderr.strip().splitlines()[-1] == (
        f"✗ {mine} is not empty and was not made by `flux-azdo sandbox up`: pass a new or empty folder"
    )
    down = _cli("sandbox", "down", "--dir", str(mine), home=tmp_path)
    assert down.returncode == 0 and "no sandbox was running" in down.stderr
    assert (mine / "kubeconfig").read_text() == "my cluster\n" and (mine / "repos").is_dir()
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for action in ("up", "down"):
        result = _cli("sandbox", action, "--dir", str(a_file), home=tmp_path)
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr and "is a file" in result.stderr.strip().splitlines()[-1]
    empty = _cli("sandbox", "up", "--dir", "", home=tmp_path)
    assert empty.returncode == 2 and "an empty path is not a folder" in empty.stderr


@pytest.mark.parametrize("args", [["sandbox"], ["sandbox", "up"], ["sandbox", "sideways", "--dir", "x"]])
def test_usage_mistakes_exit_2(args: list[str], tmp_path: Path) -> None:
    result = _cli(*args, home=tmp_path)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1


def test_down_after_the_daemon_was_killed_still_stops_sshd(tmp_path: Path) -> None:
    from flux_azdo.sandbox.ssh import sshd_available

    if sshd_available() is not None:
        pytest.skip(f"OpenSSH's sshd is not usable: {sshd_available()}")
    root = tmp_path / "sb"
    started = _cli("sandbox", "up", "--dir", str(root), "--ssh", "--no-flux", home=tmp_path)
    assert started.returncode == 0, started.stderr
    sshd = int((root / "ssh" / "sshd.pid").read_text().split()[0])
    daemon = running_pid(root)
    assert daemon is not None
    os.kill(daemon, signal.SIGKILL)
    stopped = _cli("sandbox", "down", "--dir", str(root), home=tmp_path)
    assert stopped.returncode == 0, stopped.stderr
    for _ in range(200):
        if not Path(f"/proc/{sshd}").exists() or "Z" in Path(f"/proc/{sshd}/stat").read_text().split(")")[-1][:3]:
            break
        time.sleep(0.025)
    else:
        pytest.fail("sshd outlived `sandbox down` after its daemon was killed")
    assert sorted(p.name for p in root.iterdir()) == []
