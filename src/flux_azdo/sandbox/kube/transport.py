"""HTTP plumbing: a threading HTTP/1.1 server that tracks its connections, so stopping it ends every thread.

`ThreadingHTTPServer` would leave handler threads of keep-alive and watch connections running; this one knows
them, shuts their sockets on `close_connections()` and lets `stop()` join them. TLS handshakes run in the handler
thread, so a slow client cannot hold up `accept()`.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol


class Application(Protocol):
    def handle(self, handler: Handler) -> None: ...


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: HttpServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: requests carry bearer tokens and tests run many of them."""

    def do_GET(self) -> None:
        self.server.app.handle(self)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET


class HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: Application, context: ssl.SSLContext | None) -> None:
        self.app = app
        self.context = context
        self._lock = threading.Lock()
        self._open_connections: set[socket.socket] = set()
        self._handler_threads: set[threading.Thread] = set()
        super().__init__(address, Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = self.socket.accept()
        if self.context is not None:
            # The handshake happens in the handler thread, so one slow client cannot stall accept().
            connection = self.context.wrap_socket(connection, server_side=True, do_handshake_on_connect=False)
        return connection, address

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(target=self._serve, args=(request, client_address), daemon=True)
        with self._lock:
            self._open_connections.add(request)
            self._handler_threads.add(thread)
        thread.start()

    def _serve(self, request: socket.socket, client_address: Any) -> None:
        try:
            if isinstance(request, ssl.SSLSocket):
                request.settimeout(10)
                request.do_handshake()
                request.settimeout(None)
            self.finish_request(request, client_address)
        except (OSError, ssl.SSLError):
            pass
        finally:
            self.shutdown_request(request)
            with self._lock:
                self._open_connections.discard(request)
                self._handler_threads.discard(threading.current_thread())

    def close_connections(self) -> list[threading.Thread]:
        with self._lock:
            connections, threads = list(self._open_connections), list(self._handler_threads)
        for connection in connections:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(connection, socket.SHUT_RDWR)
        return threads


def peer_closed(connection: socket.socket) -> bool:
    """Whether the client of a watch went away.

    A watching client sends nothing more on its connection (HTTP/1.1 clients do not pipeline), so any readable
    data means it hung up: end of stream, or a TLS close_notify alert that precedes it.
    """
    try:
        readable, _, _ = select.select([connection], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)
