"""Finding and stopping the processes sshd forked for its connections.

sshd puts every connection, and the command it runs, in a session of its own (setsid), so signalling sshd's
process group misses them, and stopping sshd alone would orphan a connection still running git. They are found
through /proc (Linux; elsewhere nothing is found and only sshd itself is stopped) and stopped deepest first, each
level only once the one below has been reaped by its parent: a process whose parent dies first becomes a zombie of
init, which may take its time to reap it. Signals go through pidfds where the kernel has them, so a recycled
process id is never hit.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from pathlib import Path

GRACE = 2.0


def _parent_of(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(text[text.rindex(")") + 2 :].split()[1])


def process_tree(root: int) -> list[list[int]]:
    """The processes below `root` by depth: its children, then their children, and so on."""
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []
    children: dict[int, list[int]] = {}
    for pid in pids:
        parent = _parent_of(pid)
        if parent is not None:
            children.setdefault(parent, []).append(pid)
    levels: list[list[int]] = []
    level = children.get(root, [])
    while level:
        levels.append(level)
        level = [child for pid in level for child in children.get(pid, [])]
    return levels


def descendants(root: int) -> list[int]:
    """Every living process below `root`, parents before children."""
    return [pid for level in process_tree(root) for pid in level]


def stop_tree(root: int, grace: float = GRACE) -> None:
    """Stop every process below `root`, the deepest first, so that each is reaped by its own living parent."""
    for level in reversed(process_tree(root)):
        terminate(level, grace)


def _open(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (OSError, AttributeError):
        return None


def _signal(pid: int, pidfd: int | None, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if pidfd is not None:
            signal.pidfd_send_signal(pidfd, signum)
        else:
            os.kill(pid, signum)


def _running(pid: int, pidfd: int | None) -> bool:
    if pidfd is not None:
        # A pidfd becomes readable once its process has exited.
        return not select.select([pidfd], [], [], 0)[0]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def terminate(pids: list[int], grace: float = GRACE) -> None:
    """SIGTERM the processes, SIGKILL those still running after `grace` seconds, then wait until they are reaped."""
    if not pids:
        return
    handles = {pid: _open(pid) for pid in pids}
    try:
        for pid, pidfd in handles.items():
            _signal(pid, pidfd, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while any(_running(pid, pidfd) for pid, pidfd in handles.items()):
            if time.monotonic() > deadline:
                for pid, pidfd in handles.items():
                    _signal(pid, pidfd, signal.SIGKILL)
                break
            time.sleep(0.005)
        # Their parents reap them (zombies leave /proc); only then may the caller stop those parents.
        deadline = time.monotonic() + grace
        while any(Path(f"/proc/{pid}").exists() for pid in handles) and time.monotonic() < deadline:
            time.sleep(0.005)
    finally:
        for pidfd in handles.values():
            if pidfd is not None:
                os.close(pidfd)
