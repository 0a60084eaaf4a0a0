"""One lifecycle for the simulated HTTP servers: bind, serve in a thread, stop, with-block."""

from __future__ import annotations

import ipaddress
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar, Self


class LocalHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its owner and never does reverse DNS."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], owner: object
    ) -> None:
        """Bind address for owner, picking the socket family from the address."""
        self.owner = owner
        is_v6 = ipaddress.ip_address(address[0]).version == 6
        self.address_family = socket.AF_INET6 if is_v6 else socket.AF_INET
        super().__init__(address, handler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's getfqdn(), which would ask the system resolver."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


class HTTPService:
    """A threaded HTTP server owned by a simulated service; subclasses name the handler."""

    handler: ClassVar[type[BaseHTTPRequestHandler]]

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Prepare to serve on host; port 0 picks a free port at start()."""
        self.host = host
        self.port = port
        self._httpd: LocalHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        """Return "host:port" ("[v6]:port" for IPv6)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def start(self) -> Self:
        """Bind and serve in a daemon thread."""
        self._httpd = LocalHTTPServer((self.host, self.port), self.handler, self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; safe to call twice."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    def __enter__(self) -> Self:
        """Start on entering the with-block."""
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        """Stop on leaving the with-block."""
        self.stop()
