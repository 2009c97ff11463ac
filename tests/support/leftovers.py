"""What a test run leaves behind: processes it started and sockets it still listens on.

The suite starts servers, sshd and background sandboxes; the session check below fails the run when any of them
outlives it, so a leak shows up in CI instead of on a developer's machine days later.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def live_pids() -> set[int]:
    return {int(name) for name in os.listdir("/proc") if name.isdigit()}


def _descends_from(pid: int, ancestor: int) -> bool:
    seen = 0
    while pid > 1 and seen < 64:
        stat = _stat(pid)
        if stat is None:
            return False
        pid = stat[1]
        if pid == ancestor:
            return True
        seen += 1
    return False


def leftover_processes(before: set[int], workspace: str) -> list[str]:
    """New, living (not zombie) processes that are ours.

    Ours means a descendant of this process, or one whose command line names the run's temporary folder: a
    background sandbox (`sandbox up`) and its sshd leave our process tree on purpose but keep their files there.
    Anything else, such as another developer's sandbox on the same machine, is not this run's business.
    """
    me = os.getpid()
    found = []
    for pid in sorted(live_pids() - before - {me}):
        stat = _stat(pid)
        if stat is None or stat[0] == "Z":
            continue
        command = _cmdline(pid)
        if _descends_from(pid, me) or workspace in command:
            found.append(f"pid {pid}: {command or '?'}")
    return found


def listening_sockets() -> list[str]:
    """TCP sockets this process still listens on (state 0A in /proc/net/tcp*, matched by socket inode)."""
    inodes = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:
                port = int(fields[1].rsplit(":", 1)[1], 16)
                found.append(f"port {port}")
    return found


def wait_for_cleanup(before: set[int], workspace: str, timeout: float = 5.0) -> tuple[list[str], list[str]]:
    """Leftovers after giving exiting processes (sshd's preauth children, say) a moment to finish."""
    deadline = time.monotonic() + timeout
    while True:
        processes, sockets = leftover_processes(before, workspace), listening_sockets()
        if (not processes and not sockets) or time.monotonic() > deadline:
            return processes, sockets
        time.sleep(0.1)
