"""The worker page's HTTP server: werkzeug's threaded server with a cap on open connections.

One thread serves each connection. The socket timeout frees a thread a silent client holds, but
until it fires, many slow connections would each hold one (300 held 308 threads); above
`MAX_CONNECTIONS` a new connection is answered 503 at once and closed, without a thread.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

from werkzeug.serving import ThreadedWSGIServer

MAX_CONNECTIONS = 32  # a handful of people, each with a few browser connections
BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
        b"Content-Length: 64\r\n\r\n" + b'{"error": "too many open connections, try again", "status": 503}'.ljust(64))


class CappedServer(ThreadedWSGIServer):
    """ThreadedWSGIServer that serves at most `max_connections` connections at a time."""

    def __init__(self, *args: Any, max_connections: int = MAX_CONNECTIONS, **kwargs: Any):
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__(*args, **kwargs)

    def process_request(self, request: socket.socket, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.settimeout(1.0)
                request.sendall(BUSY)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: socket.socket, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()
