"""Small servers on 127.0.0.1 for what the sandbox does not do on purpose: hang, and redirect to another host.

Both are context managers that close every socket and join every thread on exit, so no listener outlives a test.
Also here: looking for processes by what their command line or environment holds, to prove none survived.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import socket
import threading
import time
from dataclasses import dataclass
from types import TracebackType


class HangingServer:
    """Accepts TCP connections and never says a word (no HTTP reply, no SSH banner) until it is stopped."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._connections)

    def wait_for_connection(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.connections == 0:
            if time.monotonic() > deadline:
                raise AssertionError("nothing connected to the hanging server")
            time.sleep(0.01)

    def _accept(self) -> None:
        while not self._halt.is_set():
            try:
                connection, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            with self._lock:
                self._connections.append(connection)

    def __enter__(self) -> HangingServer:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._halt.set()
        self._thread.join(timeout=10)
        self._listener.close()
        with self._lock:
            for connection in self._connections:
                connection.close()


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    authorization: bool


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers 401 to everything and records whether an Authorization header came with it."""

    seen: list[Seen]

    def _answer(self) -> None:
        self.seen.append(Seen(self.command, self.path, "Authorization" in self.headers))
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="elsewhere"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Redirector(http.server.BaseHTTPRequestHandler):
    """Redirects every request to the same path on `target` (another host name: localhost)."""

    target: str
    status: int
    seen: list[Seen]

    def _answer(self) -> None:
        self.seen.append(Seen(self.command, self.path, "Authorization" in self.headers))
        self.send_response(self.status)
        self.send_header("Location", self.target + self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


class RedirectingServer:
    """`url` answers every request with `status` to the same path on http://localhost:<other port>, where a
    second server records what it receives (`elsewhere`); `here` records the requests to the first."""

    def __init__(self, status: int = 302) -> None:
        self.here: list[Seen] = []
        self.elsewhere: list[Seen] = []
        recorder = type("Recorder", (_Recorder,), {"seen": self.elsewhere})
        self._other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), recorder)
        other_port = self._other.server_address[1]
        redirector = type(
            "Redirector",
            (_Redirector,),
            {"seen": self.here, "status": status, "target": f"http://localhost:{other_port}"},
        )
        self._first = http.server.ThreadingHTTPServer(("127.0.0.1", 0), redirector)
        self.port = self._first.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/org/project/_git/repo"
        self._threads = [
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            for server in (self._first, self._other)
        ]

    def __enter__(self) -> RedirectingServer:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for server in (self._first, self._other):
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=10)


def processes_holding(needle: str, where: str = "cmdline") -> list[str]:
    """Command lines of the live processes (not this one) whose /proc/<pid>/<where> contains `needle`."""
    found = []
    wanted = needle.encode()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            with open(f"/proc/{pid}/{where}", "rb") as handle:
                data = handle.read()
            if wanted in data:
                with open(f"/proc/{pid}/cmdline", "rb") as handle:
                    cmdline = handle.read().replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{pid}: {cmdline}")
    return found


def survivors(needle: str, where: str = "cmdline", grace: float = 5.0) -> list[str]:
    """`processes_holding`, after giving killed processes `grace` seconds to disappear."""
    deadline = time.monotonic() + grace
    while True:
        found = processes_holding(needle, where)
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)
