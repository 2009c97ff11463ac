"""The life of a sandbox HTTP server (Azure DevOps, the API server, Azure): served from a thread of its own,
started once, stopped once, and usable as `with server:`.

The three servers differ in how they stop (Azure DevOps wakes its accept loop with a connection, the API server
closes its store so that watches end), so `stop()` stays theirs; what is the same lives here.
"""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:  # the kube package imports this module: only its type here
    from flux_azdo.sandbox.kube.transport import HttpServer

#: How often a serving thread looks for `shutdown()`: a test starts and stops many servers.
POLL_INTERVAL = 0.05
#: How long a stop waits for the serving thread and for each request still being handled.
JOIN_TIMEOUT = 10.0

_Served = TypeVar("_Served", bound="Served")


class Served:
    """A server started by `start()` and stopped by `stop()` (safe to call twice), so `with` runs it."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self: _Served) -> _Served:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


def serve_in_thread(server: socketserver.BaseServer, name: str) -> threading.Thread:
    """A started daemon thread that serves `server` until its `shutdown()`."""
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": POLL_INTERVAL}, name=name, daemon=True
    )
    thread.start()
    return thread


def stop_serving(
    http: HttpServer, thread: threading.Thread | None, *, closed: Callable[[], None] | None = None
) -> None:
    """Stops serving (only a server that `thread` serves: `shutdown()` waits for its loop), closes the socket,
    calls `closed` (what ends long requests, such as watches), and waits for every request still handled."""
    if thread is not None:
        http.shutdown()
        thread.join(timeout=JOIN_TIMEOUT)
    http.server_close()
    if closed is not None:
        closed()
    for handler_thread in http.close_connections():
        handler_thread.join(timeout=JOIN_TIMEOUT)
