"""`flux-azdo sandbox up/down --dir DIR`: the sandbox as a background process that outlives the command.

`up` starts `python -m flux_azdo.sandbox.daemon --dir DIR` in its own session, and returns once that process has
written `DIR/sandbox.env` (the last step of its start-up) or has died (then its log explains why). `down` sends
SIGTERM; the process stops every part and removes what it wrote. The pid file also records the process start time,
so a stale file never makes `down` signal an unrelated process that happens to reuse the pid.

DIR must be new, empty, or a folder an earlier `up` made (it holds the marker file): the sandbox removes its own
files on the way down, and must never take a user's `kubeconfig` or `repos` folder for one of them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from flux_azdo.sandbox.runtime import WRITES, Sandbox, SandboxError, SandboxOptions

MARKER = ".flux-azdo-sandbox"
ENV_FILE = "sandbox.env"
PID_FILE = "sandbox.pid"
LOG_FILE = "sandbox.log"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
#: What the sandbox writes into DIR; `down` removes exactly these (the marker last), nothing else.
OWNED = (ENV_FILE, PID_FILE, LOG_FILE, *WRITES, MARKER)


@dataclass(frozen=True)
class UpOptions:
    directory: Path
    kubeconfig: Path | None = None
    ssh: bool | str = "auto"
    tls: bool = True
    flux: bool = True
    simulate_deployments: bool | None = None
    #: Also start the sandbox Azure (Entra ID, ARM with an AKS cluster, the AzureRM service connection).
    azure: bool = False


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
    kubeconfig = options.kubeconfig.resolve() if options.kubeconfig is not None else None
    if kubeconfig is not None:
        if kubeconfig.is_relative_to(directory):
            raise SandboxError(f"kubeconfig {kubeconfig} is inside {directory}: keep the cluster's file elsewhere")
        if not kubeconfig.is_file():
            raise SandboxError(f"kubeconfig {kubeconfig} does not exist: pass the path of an existing cluster's file")
    _claim(directory)
    _stop_orphans(directory)
    _remove_owned(directory, keep=(MARKER,))
    command = [sys.executable, "-m", "flux_azdo.sandbox.daemon", "--dir", str(directory)]
    if kubeconfig is not None:
        command += ["--kubeconfig", str(kubeconfig)]
    if options.ssh is True:
        command.append("--ssh")
    elif options.ssh is False:
        command.append("--no-ssh")
    if not options.tls:
        command.append("--http")
    if not options.flux:
        command.append("--no-flux")
    if options.simulate_deployments is not None:
        command.append("--simulate-deployments" if options.simulate_deployments else "--no-simulate-deployments")
    if options.azure:
        command.append("--azure")
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
            _stop_orphans(directory)
            _remove_owned(directory, keep=(LOG_FILE, MARKER))
            raise SandboxError(f"the sandbox did not start: {tail[0]} (log: {log})")
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            _stop_orphans(directory)
            raise SandboxError(f"the sandbox did not start within {START_TIMEOUT:.0f}s (log: {log})")
        time.sleep(0.02)
    # The child lives on in its own session; forgetting the Popen is deliberate (`down` stops it by pid).
    process.returncode = 0
    return Started(pid=process.pid, env=read_env(env_file), log=log)


def down(directory: Path) -> bool:
    """Stop the sandbox for `directory`; False when none was running (stale files are removed all the same)."""
    directory = directory.resolve()
    if directory.exists() and not directory.is_dir():
        raise SandboxError(f"{directory} is a file, not a sandbox folder: pass the folder given to `sandbox up`")
    if not (directory / MARKER).is_file():
        return False  # never a sandbox folder: nothing in it is ours to remove
    pid = running_pid(directory)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while _start_time(pid) is not None:
            if time.monotonic() > deadline:
                os.killpg(pid, signal.SIGKILL)
                break
            time.sleep(0.02)
    _stop_orphans(directory)
    _remove_owned(directory)
    return pid is not None


def _claim(directory: Path) -> None:
    """Make DIR ours (the marker), refusing a folder that holds someone else's files."""
    try:
        if directory.exists() and not directory.is_dir():
            raise SandboxError(f"{directory} is a file: pass a new or empty folder to `sandbox up --dir`")
        if directory.is_dir() and not (directory / MARKER).exists() and any(directory.iterdir()):
            raise SandboxError(
                f"{directory} is not empty and was not made by `flux-azdo sandbox up`: pass a new or empty folder"
            )
        directory.mkdir(parents=True, exist_ok=True)
        (directory / MARKER).write_text("flux-azdo sandbox folder: `flux-azdo sandbox down` removes its content\n")
    except OSError as exc:
        raise SandboxError(f"cannot use {directory} for the sandbox: {exc.strerror or exc}") from None


def _stop_orphans(directory: Path) -> None:
    """Kill an sshd a hard-killed sandbox left behind (it runs in its own session, so killpg misses it)."""
    recorded = directory / "ssh" / "sshd.pid"
    try:
        pid = int(recorded.read_text().split()[0])
        command = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (OSError, ValueError, IndexError):
        return
    if "sshd" in command and str(directory / "ssh") in command:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


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
    except Exception as exc:
        # A bug, not a user mistake: the traceback stays in the log, and the last line (what `up` shows) says what.
        traceback.print_exc(file=sys.stdout)
        print(f"{type(exc).__name__}: {exc}", flush=True)
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
    parser.add_argument("--no-flux", dest="flux", action="store_false")
    simulate = parser.add_mutually_exclusive_group()
    simulate.add_argument("--simulate-deployments", dest="simulate", action="store_const", const=True, default=None)
    simulate.add_argument("--no-simulate-deployments", dest="simulate", action="store_const", const=False)
    parser.add_argument("--azure", action="store_true")
    args = parser.parse_args(argv)
    options = SandboxOptions(
        ssh=args.ssh,
        kubeconfig=args.kubeconfig,
        kube_tls=not args.http,
        flux=args.flux,
        simulate_deployments=args.simulate,
        azure=args.azure,
    )
    return serve(args.dir.resolve(), options)


if __name__ == "__main__":
    sys.exit(main())
