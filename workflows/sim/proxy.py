"""A minimal HTTP forward proxy that serves the simulated sites and nothing else.

For machines where the simulated internet cannot run in a network namespace: the engine
sends absolute-form requests (`GET http://host/path HTTP/1.1`) here through
TAKEDOWN_FETCH_PROXY, and the proxy hands each one to the local WebServer with the URL's
host in the Host header. Whatever host a request names, the only connection it opens is
to that WebServer. CONNECT (HTTPS tunnels) is answered 501: TLS is out of the demo's scope.
"""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any, Self, cast
from urllib.parse import urlsplit, urlunsplit

from workflows.sim.httpservice import HTTPService, LocalHTTPServer
from workflows.sim.web import WebServer
from workflows.sim.world import World

UPSTREAM_TIMEOUT = 5.0
CHUNK = 65536
# Request headers passed on upstream: what a host looks at to tell a browser from a robot.
FORWARDED = ("User-Agent", "Accept", "Accept-Language", "Accept-Encoding")
# RFC 9110 §7.6.1: connection-specific fields are not forwarded; Server and Date are ours.
NOT_RELAYED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
        "server",
        "date",
    }
)
WILDCARDS = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}


class SimProxy(HTTPService):
    """A threaded forward proxy in front of one WebServer; use as a context manager."""

    def __init__(
        self, world: World, web: WebServer, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        """Prepare a proxy for web's sites on host; port 0 picks a free port at start()."""
        if web.world is not world:
            raise ValueError("the WebServer serves another World")
        super().__init__(host, port)
        self.world = world
        self.web = web
        self.requests: list[tuple[str, str]] = []
        self._log_lock = threading.Lock()

    @property
    def url(self) -> str:
        """Return the proxy URL, the TAKEDOWN_FETCH_PROXY form."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def record(self, method: str, target: str) -> None:
        """Remember one request line's method and target."""
        with self._log_lock:
            self.requests.append((method, target))

    def upstream(self) -> tuple[str, int]:
        """Return where the WebServer can be reached."""
        if self.web.port == 0:
            raise RuntimeError("start the WebServer before the proxy")
        return WILDCARDS.get(self.web.host, self.web.host), self.web.port

    def start(self) -> Self:
        """Bind and serve in a daemon thread, once the WebServer behind is up."""
        self.upstream()
        return super().start()


class _ProxyHandler(BaseHTTPRequestHandler):
    """Relay absolute-form GET and HEAD to the WebServer; refuse everything else."""

    timeout = 5  # a stalled client must not pin a thread forever

    @property
    def owner(self) -> SimProxy:
        """Return the SimProxy this handler serves."""
        return cast(SimProxy, cast(LocalHTTPServer, self.server).owner)

    def do_GET(self) -> None:
        """Relay a GET."""
        self._relay()

    def do_HEAD(self) -> None:
        """Relay a HEAD."""
        self._relay()

    def do_CONNECT(self) -> None:
        """Refuse a tunnel: HTTPS through the proxy is out of scope."""
        self.owner.record(self.command, self.path)
        self._empty(501)

    def _relay(self) -> None:
        """Forward one absolute-form request to the WebServer and stream the answer back."""
        self.owner.record(self.command, self.path)
        parts = urlsplit(self.path)
        if parts.scheme.lower() != "http" or not parts.hostname:
            self._empty(400)  # origin-form or another scheme: not a proxy request we serve
            return
        host, port = self.owner.upstream()
        upstream = http.client.HTTPConnection(host, port, timeout=UPSTREAM_TIMEOUT)
        target = urlunsplit(("", "", parts.path or "/", parts.query, ""))
        authority = parts.netloc.rpartition("@")[2]  # userinfo never goes on the wire
        try:
            try:
                # A real forward proxy passes the client's headers on: a cloaking host
                # must see the browser the re-checker poses as, not the proxy.
                headers = {"Host": authority}
                for name in FORWARDED:
                    if (value := self.headers.get(name)) is not None:
                        headers[name] = value
                upstream.request(self.command, target, headers=headers)
                response = upstream.getresponse()
            except (OSError, http.client.HTTPException):
                self._empty(502)
                return
            self._stream(response)
        except (OSError, http.client.HTTPException):
            return  # one side left mid-body; closing the connection tells the client
        finally:
            upstream.close()

    def _stream(self, response: http.client.HTTPResponse) -> None:
        """Send the upstream status and headers, then its body as it arrives."""
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in NOT_RELAYED:
                self.send_header(name, value)
        self.end_headers()
        while chunk := response.read1(CHUNK):
            self.wfile.write(chunk)

    def _empty(self, status: int) -> None:
        """Answer a status with no body."""
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep stderr quiet; SimProxy.requests is the record."""


SimProxy.handler = _ProxyHandler
