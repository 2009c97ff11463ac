"""`flux-azdo sandbox up/down --dir DIR`: the sandbox as a background process that outlives the command.

`up` starts `python -m flux_azdo.sandbox.daemon --dir DIR` in its own session, and returns once that process has
written `DIR/sandbox.env` (the last step of its start-up) or has died (then its log explains why). `down` sends
SIGTERM; the process stops every part and removes what it wrote. The pid file also records the process start time,
so a stale file never makes `down` signal an unrelated process that happens to reuse the pid.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from flux_azdo.sandbox.runtime import Sandbox, SandboxError, SandboxOptions

ENV_FILE = "sandbox.env"
PID_FILE = "sandbox.pid"
LOG_FILE = "sandbox.log"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
#: What the sandbox writes into DIR; `down` removes exactly these, never anything else a user keeps there.
OWNED = (
    ENV_FILE,
    PID_FILE,
    LOG_FILE,
    "kubeconfig",
    "known_hosts",
    "id_rsa",
    "id_rsa.pub",
    "repos",
    "ssh",
    "flux",
)


@dataclass(frozen=True)
class UpOptions:
    directory: Path
    kubeconfig: Path | None = None
    ssh: bool | str = "auto"
    tls: bool = True


@dataclass(frozen=True)
class Started:
    pid: int
    env: dict[str, str]
    log: Path


def _start_time(pid: int) -> str | None:
    """The process start time in clock ticks (field 22 of /proc/PID/stat), or None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return fields[19]


def _read_pid(directory: Path) -> tuple[int, str] | None:
    try:
        pid_text, started = (directory / PID_FILE).read_text().split()
        return int(pid_text), started
    except (OSError, ValueError):
        return None


def running_pid(directory: Path) -> int | None:
    """The pid of the sandbox serving `directory`, if it still runs."""
    recorded = _read_pid(directory)
    if recorded is None:
        return None
    pid, started = recorded
    return pid if _start_time(pid) == started else None


def read_env(path: Path) -> dict[str, str]:
    """Parse the `export NAME=value` lines `write_env_file` produced (values are shlex-quoted)."""
    import shlex

    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("export "):
            name, _, quoted = line[len("export ") :].partition("=")
            parts = shlex.split(quoted)
            values[name] = parts[0] if parts else ""
    return values


def up(options: UpOptions) -> Started:
    """Start the background sandbox for `options.directory` and wait until it is ready."""
    directory = options.directory.resolve()
    pid = running_pid(directory)
    if pid is not None:
        raise SandboxError(
            f"a sandbox already runs for {directory} (pid {pid}): "
            f"stop it with `flux-azdo sandbox down --dir {directory}`"
        )
    directory.mkdir(parents=True, exist_ok=True)
    _remove_owned(directory)
    command = [sys.executable, "-m", "flux_azdo.sandbox.daemon", "--dir", str(directory)]
    if options.kubeconfig is not None:
        command += ["--kubeconfig", str(options.kubeconfig.resolve())]
    if options.ssh is not True and options.ssh != "auto":
        command.append("--no-ssh")
    elif options.ssh is True:
        command.append("--ssh")
    if not options.tls:
        command.append("--http")
    log = directory / LOG_FILE
    with open(log, "wb") as log_stream:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_stream,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    env_file = directory / ENV_FILE
    deadline = time.monotonic() + START_TIMEOUT
    while not env_file.exists():
        if process.poll() is not None:
            tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:] or ["(no output)"]
            _remove_owned(directory, keep=(LOG_FILE,))
            raise SandboxError(f"the sandbox did not start: {tail[0]} (log: {log})")
        if time.monotonic() > deadline:
            process.kill()
            raise SandboxError(f"the sandbox did not start within {START_TIMEOUT:.0f}s (log: {log})")
        time.sleep(0.02)
    # The child lives on in its own session; forgetting the Popen is deliberate (`down` stops it by pid).
    process.returncode = 0
    return Started(pid=process.pid, env=read_env(env_file), log=log)


def down(directory: Path) -> bool:
    """Stop the sandbox for `directory`; False when none was running (stale files are removed all the same)."""
    directory = directory.resolve()
    pid = running_pid(directory)
    if pid is None:
        _remove_owned(directory)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while _start_time(pid) is not None:
        if time.monotonic() > deadline:
            os.killpg(pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    _remove_owned(directory)
    return True


def _remove_owned(directory: Path, keep: tuple[str, ...] = ()) -> None:
    for name in OWNED:
        if name in keep:
            continue
        path = directory / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def serve(directory: Path, options: SandboxOptions) -> int:
    """Run the sandbox in this process until SIGTERM or SIGINT, then stop it and remove its files."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    (directory / PID_FILE).write_text(f"{os.getpid()} {_start_time(os.getpid())}\n")
    try:
        with Sandbox(directory, options) as sandbox:
            sandbox.write_env_file(directory / ENV_FILE)
            print(f"sandbox ready: {sandbox.org_url}", flush=True)
            while not stop.wait(3600):
                pass
    except SandboxError as exc:
        print(exc, flush=True)
        return 1
    finally:
        (directory / ENV_FILE).unlink(missing_ok=True)
        (directory / PID_FILE).unlink(missing_ok=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flux_azdo.sandbox.daemon")
    parser.add_argument("--dir", required=True, type=Path)
    parser.add_argument("--kubeconfig", type=Path)
    ssh = parser.add_mutually_exclusive_group()
    ssh.add_argument("--ssh", dest="ssh", action="store_const", const=True, default="auto")
    ssh.add_argument("--no-ssh", dest="ssh", action="store_const", const=False)
    parser.add_argument("--http", action="store_true")
    args = parser.parse_args(argv)
    options = SandboxOptions(ssh=args.ssh, kubeconfig=args.kubeconfig, kube_tls=not args.http)
    return serve(args.dir.resolve(), options)


if __name__ == "__main__":
    sys.exit(main())
