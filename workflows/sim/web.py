"""One HTTP server for every simulated site: virtual hosting by Host header over a World.

Every answer is generated: a site's seeded body (`Site.body`: random bytes, a picture of
random shapes or a gallery page) for its state, with its Content-Type, and a few
os.urandom bytes for a request no site answers. A request for a host no site lives on gets
421 Misdirected Request (RFC 9110 §15.5.20); an unknown path on a known host gets 404.
Run one WebServer per address the caller wants served; they all read the same World.

Impolite hosts: a dynamic page changes its bytes on every request (the World numbers
them); a "soft404" site answers 200 with a "page not found" page; a cloak site answers
404 to anything that `looks_like_robot` and its content to a browser.

Hostile and broken hosts: a "slow" site drips its bytes one at a time and an "endless"
one streams them fast, both forever; a server given a TLS context speaks HTTPS for the
world's https:// sites (with whatever certificate it is given), and a plain server asked
for TLS answers the ClientHello with a plain-HTTP 400, as a host whose port 443 speaks
HTTP does. Either way every TLS handshake a server sees is kept in `handshakes`.

Slow hosts: every response's status line and headers leave `world.latency.web` seconds
after its request line arrived (at once for 0). Each connection has a thread of its own,
so the waits overlap: 64 clients waiting 50 ms each are all answered after 50 ms.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import ssl
import threading
from dataclasses import dataclass, field
from socketserver import BaseServer
from typing import Any, cast
from urllib.parse import urlsplit

from workflows.sim.content import PAGE_TYPE
from workflows.sim.httpservice import DelayedHandler, HTTPService, LocalHTTPServer
from workflows.sim.world import BYTES_TYPE, World, site_key

CONTENT_TYPE = BYTES_TYPE  # of error bodies and of "bytes" sites
DRIP_INTERVAL = 0.2  # seconds between the bytes of a "slow" site
ERROR_BODY_SIZE = 16
STATUS_STATES = {"404": 404, "410": 410, "451": 451, "500": 500}
STREAMS = {"slow": "drip", "endless": "endless"}
STREAM_CHUNK = 64 * 1024  # bytes per write of an endless body
HANDSHAKE_TIMEOUT = 5.0
TLS_HANDSHAKE_RECORD = 0x16  # RFC 8446 §5.1: the first byte a TLS client ever sends
PLAIN_ANSWER = "answered in plain HTTP"
PLAIN_400 = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
# What a cloak site tells a robot: the web server's stock 404 page, as if nothing were there.
CLOAKED_404 = (
    b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body>\n"
    b"<h1>Not Found</h1>\n<p>The requested URL was not found on this server.</p>\n"
    b"</body></html>\n"
)
# User-Agent fragments of crawlers, scripts and scanners, as cloakers list them.
ROBOT_MARKS = (
    "bot", "crawl", "spider", "slurp", "curl", "wget", "python", "httpx", "requests",
    "go-http", "java/", "libwww", "scan", "takedown", "compatible;", "headless",
)  # fmt: skip


@dataclass
class Reply:
    """One answer: status, headers, body, and whether the body repeats forever instead."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    stream: str | None = None  # "drip" or "endless": the body, over and over, never ending
    content_type: str = CONTENT_TYPE


@dataclass(frozen=True)
class Handshake:
    """One TLS ClientHello a server saw: from whom, and how it ended."""

    client: str
    outcome: str  # "ok", "failed: <OpenSSL reason>" or PLAIN_ANSWER


def _error(status: int) -> Reply:
    """Return a status with a tiny random body."""
    return Reply(status, os.urandom(ERROR_BODY_SIZE))


def looks_like_robot(user_agent: str | None, accept_language: str | None) -> bool:
    """Tell whether a cloaking host takes a request for a robot's, as real cloakers do.

    A robot sends no User-Agent, or one naming a crawler, script or scanner (or the
    "compatible;" of bots posing as browsers), or no Accept-Language.
    """
    if not user_agent or not accept_language:
        return True
    agent = user_agent.lower()
    return any(mark in agent for mark in ROBOT_MARKS)


class WebServer(HTTPService):
    """A threaded HTTP(S) server answering for every site of a World; a context manager.

    SCHEME names the sites it serves: https:// ones with a TLS context (or for a plain
    server standing on a site's HTTPS port), else http:// ones.
    """

    def __init__(
        self,
        world: World,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: ssl.SSLContext | None = None,
        scheme: str | None = None,
    ) -> None:
        """Prepare a server for world on host; port 0 picks a free port at start()."""
        super().__init__(host, port)
        self.world = world
        self.tls = tls
        self.scheme = scheme or ("https" if tls is not None else "http")
        if self.scheme not in ("http", "https"):
            raise ValueError(f"a web server serves http or https sites, not {self.scheme!r}")
        self._handshakes: list[Handshake] = []
        self._handshakes_lock = threading.Lock()

    @property
    def base_url(self) -> str:
        """Return the server's own URL."""
        return f"{self.scheme}://{self.address}"

    @property
    def handshakes(self) -> list[Handshake]:
        """Return a snapshot of the TLS handshakes seen so far."""
        with self._handshakes_lock:
            return list(self._handshakes)

    def note_handshake(self, client: str, outcome: str) -> None:
        """Record one TLS handshake from client."""
        with self._handshakes_lock:
            self._handshakes.append(Handshake(client, outcome))

    def accept_tls(self, connection: socket.socket, client: str) -> ssl.SSLSocket | None:
        """Do the server's side of a TLS handshake and record it; None when it failed."""
        assert self.tls is not None
        connection.settimeout(HANDSHAKE_TIMEOUT)
        try:
            secured = self.tls.wrap_socket(connection, server_side=True)
        except OSError as error:  # ssl.SSLError among them; the socket is closed already
            self.note_handshake(client, f"failed: {getattr(error, 'reason', None) or error}")
            return None
        self.note_handshake(client, "ok")
        return secured

    def respond(
        self,
        host: str | None,
        target: str,
        client: str,
        user_agent: str | None = None,
        accept_language: str | None = None,
    ) -> Reply:
        """Log one request for host and target from client and answer it from the world.

        user_agent and accept_language are the request's headers of those names (None when
        absent): a cloak site answers 404 when they look like a robot's.
        """
        if not host:
            return _error(400)  # HTTP/1.1 needs Host (RFC 9112 §3.2); vhosting needs it too
        try:
            absolute = f"{self.scheme}://{host}{target}" if target.startswith("/") else target
            url = site_key(absolute)
        except ValueError:
            return _error(400)
        self.world.log_fetch(url, client)
        counted = self.world.count_request(url)
        if counted is None:
            return _error(404 if self.world.serves_host(urlsplit(url).netloc) else 421)
        site, request = counted
        if site.cloak and looks_like_robot(user_agent, accept_language):
            return Reply(404, CLOAKED_404, content_type=PAGE_TYPE)
        if site.redirect_to is not None:
            return Reply(302, headers={"Location": site.redirect_to})
        body, content_type = site.body(request), site.content_type()
        if site.state in STATUS_STATES:
            return Reply(STATUS_STATES[site.state], body, content_type=content_type)
        return Reply(200, body, stream=STREAMS.get(site.state), content_type=content_type)


class _Handler(DelayedHandler):
    """Hand every GET and HEAD to the owning WebServer, over TLS when it has a context."""

    timeout = 5  # a stalled client must not pin a thread forever

    def __init__(self, request: Any, client_address: Any, server: BaseServer) -> None:
        """Handle one connection, after the TLS handshake when the server speaks HTTPS."""
        owner = cast(WebServer, cast(LocalHTTPServer, server).owner)
        if owner.tls is None:
            super().__init__(request, client_address, server)
            return
        secured = owner.accept_tls(request, str(client_address[0]))
        if secured is None:
            return
        try:
            super().__init__(secured, client_address, server)
        finally:
            secured.close()

    @property
    def owner(self) -> WebServer:
        """Return the WebServer this handler serves."""
        return cast(WebServer, cast(LocalHTTPServer, self.server).owner)

    def handle(self) -> None:
        """Serve requests, unless a TLS client knocked on this plain server."""
        if self.owner.tls is None and self._answered_tls_hello():
            return
        super().handle()

    def do_GET(self) -> None:
        """Answer a GET."""
        self._serve(with_body=True)

    def do_HEAD(self) -> None:
        """Answer a HEAD: the GET's headers without the body."""
        self._serve(with_body=False)

    def _answered_tls_hello(self) -> bool:
        """Answer a TLS ClientHello with a plain-HTTP 400 (what HTTP servers do); True if so."""
        try:
            first = self.connection.recv(1, socket.MSG_PEEK)
        except OSError:
            return True  # nothing came within the timeout: nothing to answer
        if first != bytes([TLS_HANDSHAKE_RECORD]):
            return False
        self.owner.note_handshake(str(self.client_address[0]), PLAIN_ANSWER)
        with contextlib.suppress(OSError):  # the client may have given up on us already
            self.wfile.write(PLAIN_400)
        return True

    def _serve(self, with_body: bool) -> None:
        """Send the owner's reply, repeating its body forever when it streams."""
        reply = self.owner.respond(
            self.headers.get("Host"),
            self.path,
            self.client_address[0],
            user_agent=self.headers.get("User-Agent"),
            accept_language=self.headers.get("Accept-Language"),
        )
        self.answer_after(self.owner.world.latency.web, self.owner.stopping)
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        if reply.stream is None:  # a stream has no length: it ends only when the client leaves
            self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if not with_body:
            return
        try:
            if reply.stream is None:
                self.wfile.write(reply.body)
            else:
                self._stream(reply)
        except OSError:  # reset, broken pipe, a TLS alert: the client left, nothing is owed
            return

    def _stream(self, reply: Reply) -> None:
        """Send the body over and over until the client or the server leaves."""
        stopping = self.owner.stopping
        if not reply.body:
            return
        if reply.stream == "drip":
            for byte in itertools.cycle(reply.body):
                self.wfile.write(bytes([byte]))
                if stopping.wait(DRIP_INTERVAL):
                    return
        else:
            # Whole periods per write, so the stream is the body repeated, wherever it is cut.
            chunk = reply.body * max(1, STREAM_CHUNK // len(reply.body))
            while not stopping.is_set():
                self.wfile.write(chunk)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep stderr quiet; the world's fetch log is the record."""


WebServer.handler = _Handler
