"""One HTTP server for every simulated site: virtual hosting by Host header over a World.

Every answer is random bytes: a site's seeded bytes for present and changed, a few
os.urandom bytes for error statuses. A request for a host no site lives on gets 421
Misdirected Request (RFC 9110 §15.5.20); an unknown path on a known host gets 404.
Run one WebServer per address the caller wants served; they all read the same World.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Self, cast
from urllib.parse import urlsplit

from workflows.sim.httpservice import HTTPService, LocalHTTPServer
from workflows.sim.world import World, site_key

CONTENT_TYPE = "application/octet-stream"
DRIP_INTERVAL = 0.2  # seconds between the bytes of a "slow" site
ERROR_BODY_SIZE = 16
STATUS_STATES = {"404": 404, "410": 410, "451": 451, "500": 500}


@dataclass
class Reply:
    """One answer: status, headers, body, and whether to drip the body forever instead."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drip: bool = False


def _error(status: int) -> Reply:
    """Return a status with a tiny random body."""
    return Reply(status, os.urandom(ERROR_BODY_SIZE))


class WebServer(HTTPService):
    """A threaded HTTP server answering for every site of a World; use as a context manager."""

    def __init__(self, world: World, host: str = "127.0.0.1", port: int = 0) -> None:
        """Prepare a server for world on host; port 0 picks a free port at start()."""
        super().__init__(host, port)
        self.world = world
        self.stopping = threading.Event()

    @property
    def base_url(self) -> str:
        """Return the server's own http:// URL."""
        return f"http://{self.address}"

    def start(self) -> Self:
        """Bind and serve in a daemon thread."""
        self.stopping.clear()
        return super().start()

    def stop(self) -> None:
        """Stop serving, end every drip and close the socket; safe to call twice."""
        self.stopping.set()
        super().stop()

    def respond(self, host: str | None, target: str, client: str) -> Reply:
        """Log one request for host and target from client and answer it from the world."""
        if not host:
            return _error(400)  # HTTP/1.1 needs Host (RFC 9112 §3.2); vhosting needs it too
        try:
            url = site_key(f"http://{host}{target}" if target.startswith("/") else target)
        except ValueError:
            return _error(400)
        self.world.log_fetch(url, client)
        site = self.world.content(url)
        if site is None:
            return _error(404 if self.world.serves_host(urlsplit(url).netloc) else 421)
        if site.redirect_to is not None:
            return Reply(302, headers={"Location": site.redirect_to})
        if site.state in STATUS_STATES:
            return _error(STATUS_STATES[site.state])
        if site.state == "slow":
            return Reply(200, drip=True)
        return Reply(200, site.body())


class _Handler(BaseHTTPRequestHandler):
    """Hand every GET and HEAD to the owning WebServer."""

    timeout = 5  # a stalled client must not pin a thread forever

    def do_GET(self) -> None:
        """Answer a GET."""
        self._serve(with_body=True)

    def do_HEAD(self) -> None:
        """Answer a HEAD: the GET's headers without the body."""
        self._serve(with_body=False)

    def _serve(self, with_body: bool) -> None:
        """Send the owner's reply, dripping it when the site is slow."""
        owner = cast(WebServer, cast(LocalHTTPServer, self.server).owner)
        reply = owner.respond(self.headers.get("Host"), self.path, self.client_address[0])
        self.send_response(reply.status)
        self.send_header("Content-Type", CONTENT_TYPE)
        if not reply.drip:  # a drip has no length: it ends only when the client leaves
            self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if not with_body:
            return
        try:
            if reply.drip:
                self._drip(owner.stopping)
            else:
                self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            return  # the client left; nothing is owed to it

    def _drip(self, stopping: threading.Event) -> None:
        """Write one random byte per DRIP_INTERVAL until the client or the server leaves."""
        while True:
            self.wfile.write(os.urandom(1))
            if stopping.wait(DRIP_INTERVAL):
                return

    def log_message(self, format: str, *args: Any) -> None:
        """Keep stderr quiet; the world's fetch log is the record."""


WebServer.handler = _Handler
