"""Processes a test starts and signals (a cancelled run): started with text pipes, and never left running.

`started` kills and reaps the process when the test leaves the block while it still runs (an assertion failed
before it ended); `silent_listener` is a server that accepts connections and never answers, so a run that
reaches it is certainly still going when the test signals it.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from typing import Any


@contextlib.contextmanager
def started(command: Sequence[str], **popen: Any) -> Iterator[subprocess.Popen[str]]:
    """`command` with stdout and stderr piped as text (`popen`: env, cwd, stdin, ...); killed at the end if it
    still runs."""
    process = subprocess.Popen(list(command), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def started_cli(*args: str, **popen: Any) -> contextlib.AbstractContextManager[subprocess.Popen[str]]:
    """`python -m flux_azdo <args>` as `started` runs it."""
    return started([sys.executable, "-m", "flux_azdo", *args], **popen)


@contextlib.contextmanager
def silent_listener() -> Iterator[tuple[socket.socket, int]]:
    """A listening socket on 127.0.0.1 and its port; nothing ever answers what connects."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener, int(listener.getsockname()[1])
