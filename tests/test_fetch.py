"""The re-checker's fetch against real web servers, DNS and a proxy on this machine only.

Sites listen on loopback addresses; the simulated DNS points test names at them, and the
fetcher is told that 127.0.0.0/8 is allow-listed where a test needs to reach them. Every
TCP connect() the test thread makes is recorded through an audit hook, so "never connected"
is checked on the socket layer itself, not only by the servers' counters.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import ipaddress
import os
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import dns.resolver
import pytest
from PIL import Image, ImageDraw

from workflows.recheck.fetch import DEFAULT_USER_AGENT, Fetcher, FetchResult
from workflows.recheck.fingerprint import Fingerprints
from workflows.sim import SimInternet, World
from workflows.trace.dns import make_resolver

LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]
MiB = 1024 * 1024

# A self-signed certificate for secure.test (RFC 6761 reserved name), valid 2000-2100,
# made with `openssl ca -selfsign`. Test-only: it protects nothing.
TEST_KEY = """-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgPJnMDdofFCrAUGYq
7eUaLOSjKaqbN1W6RQEJYNRooTKhRANCAASRZlxoTHY3wAF2fFVSmhcM7Ehxg/RA
yGs4Z4F9X6mzSDuwzEOyaIjrxDamIYXTUwHms7qoPzKtWOZzaCUK+DVg
-----END PRIVATE KEY-----
"""
TEST_CERT = """-----BEGIN CERTIFICATE-----
MIIBjDCCATKgAwIBAgIBATAKBggqhkjOPQQDAjAWMRQwEgYDVQQDDAtzZWN1cmUu
dGVzdDAgFw0wMDAxMDEwMDAwMDBaGA8yMTAwMDEwMTAwMDAwMFowFjEUMBIGA1UE
AwwLc2VjdXJlLnRlc3QwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAASRZlxoTHY3
wAF2fFVSmhcM7Ehxg/RAyGs4Z4F9X6mzSDuwzEOyaIjrxDamIYXTUwHms7qoPzKt
WOZzaCUK+DVgo28wbTAPBgNVHRMBAf8EBTADAQH/MA4GA1UdDwEB/wQEAwIChDAT
BgNVHSUEDDAKBggrBgEFBQcDATAWBgNVHREEDzANggtzZWN1cmUudGVzdDAdBgNV
HQ4EFgQUONF1UHzZTAHu6fsjRtWqnZhQyzUwCgYIKoZIzj0EAwIDSAAwRQIhAOeZ
FbeTo7O7oziLV48TLO3kA6noG70azJdZok/GB76PAiBCc6bj/RYCE5KVibRBB8QZ
/EHEiJznTTGiiS5I+hbaYg==
-----END CERTIFICATE-----
"""

# -- every connect() of the test thread, through an audit hook (PEP 578) ---------------------

_CONNECT_LOGS: dict[int, list[tuple[str, int]]] = {}


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.connect":
        log = _CONNECT_LOGS.get(threading.get_ident())
        sock, address = args
        if log is not None and sock.type == socket.SOCK_STREAM and isinstance(address, tuple):
            log.append((str(address[0]), int(address[1])))


sys.addaudithook(_audit)  # hooks cannot be removed: it records only for registered threads


@pytest.fixture
def connects() -> Iterator[list[tuple[str, int]]]:
    """Return the (address, port) of every TCP connect() this test's thread makes."""
    log: list[tuple[str, int]] = []
    _CONNECT_LOGS[threading.get_ident()] = log
    yield log
    del _CONNECT_LOGS[threading.get_ident()]


# -- web servers ----------------------------------------------------------------------------

Route = Callable[["Handler"], None]


class Handler(BaseHTTPRequestHandler):
    """Serve the route registered for the path; record every request."""

    protocol_version = "HTTP/1.1"  # chunked bodies need it; every response says close
    server: Site

    def do_GET(self) -> None:
        self.server.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
        route = self.server.routes.get(self.path, respond(404))
        try:
            route(self)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the fetcher hung up, as it should at a cap

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output clean."""


class Site(ThreadingHTTPServer):
    """A web host on one loopback address that counts the connections it accepts."""

    daemon_threads = True

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: ssl.SSLContext | None = None,
        handler: type[BaseHTTPRequestHandler] = Handler,
    ) -> None:
        super().__init__((host, port), handler)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.connections = 0
        self.stopping = threading.Event()

    def server_bind(self) -> None:
        """Bind without HTTPServer's getfqdn(): no reverse lookup may leave the machine."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]  # type: ignore[assignment]

    def get_request(self) -> tuple[socket.socket, Any]:
        accepted = super().get_request()
        self.connections += 1
        return accepted

    @property
    def port(self) -> int:
        return int(self.server_address[1])


S = TypeVar("S", bound=Site)


@contextmanager
def serving(site: S) -> Iterator[S]:
    """Serve SITE in a thread for the with-block, then stop every handler and close."""
    thread = threading.Thread(target=site.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield site
    finally:
        site.stopping.set()  # endless and dripping handlers end at once
        site.shutdown()
        site.server_close()  # joins the handler threads
        thread.join(timeout=5)


def headers_of(handler: Handler, status: int, fields: list[tuple[str, str]]) -> None:
    handler.send_response(status)
    for name, value in [*fields, ("Connection", "close")]:
        handler.send_header(name, value)
    handler.end_headers()


def respond(status: int, body: bytes = b"", fields: tuple[tuple[str, str], ...] = ()) -> Route:
    def route(handler: Handler) -> None:
        headers_of(handler, status, [*fields, ("Content-Length", str(len(body)))])
        handler.wfile.write(body)

    return route


def redirect(location: str, status: int = 302, *fields: tuple[str, str]) -> Route:
    return respond(status, b"", (("Location", location), *fields))


def endless(on_first_chunk: Callable[[], None] = lambda: None) -> Route:
    """Send a chunked body that never ends, until the client hangs up."""

    def route(handler: Handler) -> None:
        headers_of(handler, 200, [("Transfer-Encoding", "chunked")])
        chunk = b"%x\r\n%s\r\n" % (64 * 1024, b"e" * 64 * 1024)
        handler.wfile.write(chunk)
        on_first_chunk()
        while not handler.server.stopping.is_set():
            handler.wfile.write(chunk)
            handler.server.stopping.wait(0.001)

    return route


def drip(interval: float) -> Route:
    """Send one byte every INTERVAL seconds of a body announced as 1000 bytes."""

    def route(handler: Handler) -> None:
        headers_of(handler, 200, [("Content-Length", "1000")])
        for _ in range(1000):
            handler.wfile.write(b"d")
            if handler.server.stopping.wait(interval):
                return

    return route


def stall(handler: Handler) -> None:
    """Send headers, then nothing."""
    headers_of(handler, 200, [("Content-Length", "10")])
    handler.server.stopping.wait(10)


def reset(handler: Handler) -> None:
    """Answer with a TCP reset (SO_LINGER 0, then close)."""
    handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    handler.connection.close()
    handler.close_connection = True


class ProxyHandler(BaseHTTPRequestHandler):
    """A forward proxy: record the absolute URL asked for, fetch it from the origin site."""

    server: Proxy

    def do_GET(self) -> None:
        self.server.asked.append(self.path)
        target = urlsplit(self.path)
        upstream = http.client.HTTPConnection(*self.server.origin, timeout=5)
        try:
            upstream.request("GET", target.path or "/", headers={"Host": target.netloc})
            answer = upstream.getresponse()
            body = answer.read()
        finally:
            upstream.close()
        self.send_response(answer.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output clean."""


class Proxy(Site):
    """The operator's HTTP proxy; every request goes to ORIGIN whatever its host."""

    def __init__(self, host: str, origin: tuple[str, int]) -> None:
        super().__init__(host, handler=ProxyHandler)
        self.origin = origin
        self.asked: list[str] = []


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def world() -> World:
    return World(
        records={
            "site.test": [("A", "127.0.0.1")],
            "other.test": [("A", "127.0.0.1")],
            "secure.test": [("A", "127.0.0.1")],
            "mixed.test": [("A", "10.0.0.5"), ("A", "127.0.0.1")],
            "intranet.test": [("A", "10.0.0.5")],
            "rebind.test": [("A", "127.0.0.2")],
            "drip.test": [("A", "127.0.0.2")],
            "flaky.test": [("A", "127.0.0.1")],
            "nat64.test": [("AAAA", "64:ff9b::7f00:1")],  # 127.0.0.1 through NAT64
        },
        dns_faults={"flaky.test": "servfail"},
    )


@pytest.fixture
def resolver(world: World) -> Iterator[dns.resolver.Resolver]:
    with SimInternet(world) as sim:
        built = make_resolver([("127.0.0.1", sim.dns.port)], timeout=2.0)
        built.cache = None  # tests change answers between fetches
        yield built


@pytest.fixture
def site() -> Iterator[Site]:
    with serving(Site()) as running:
        yield running


@pytest.fixture
def fetcher(resolver: dns.resolver.Resolver) -> Iterator[Fetcher]:
    with Fetcher(resolver, allow=LOOPBACK, deadline=5.0, connect_timeout=2.0) as built:
        yield built


def url(site: Site, path: str, host: str = "site.test", scheme: str = "http") -> str:
    return f"{scheme}://{host}:{site.port}{path}"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- outcomes by status -----------------------------------------------------------------------


def test_200_is_present_with_the_sha256_of_the_served_bytes(
    fetcher: Fetcher, site: Site, connects: list[tuple[str, int]]
) -> None:
    body = os.urandom(300_000)
    site.routes["/img"] = respond(200, body)
    result = fetcher.fetch(url(site, "/img"))
    assert result == FetchResult(
        "present",
        url(site, "/img"),
        status=200,
        sha256=sha256(body),
        size=len(body),
        address="127.0.0.1",
        reason="HTTP 200",
        fingerprints=Fingerprints(
            "other", note="neither a picture nor a page: no perceptual fingerprint"
        ),
    )
    assert connects == [("127.0.0.1", site.port)]


def test_a_picture_and_a_page_get_their_fingerprints_while_streaming(
    fetcher: Fetcher, site: Site
) -> None:
    picture = io.BytesIO()
    canvas = Image.new("RGB", (320, 240), "white")
    draw = ImageDraw.Draw(canvas)
    for n in range(12):
        draw.rectangle((n * 20, n * 10, n * 20 + 60, n * 10 + 40), fill=(n * 20, 90, 200 - n * 9))
    canvas.save(picture, "JPEG", quality=90)
    page = (
        b"<html><head><title>Gallery</title></head><body>"
        + b" ".join(f"<p>picture {n} of the gallery of somebody</p>".encode() for n in range(60))
        + b"</body></html>"
    )
    site.routes["/p.jpg"] = respond(200, picture.getvalue(), (("Content-Type", "image/jpeg"),))
    site.routes["/g"] = respond(200, page, (("Content-Type", "text/html; charset=utf-8"),))
    seen_picture, seen_page = fetcher.fetch(url(site, "/p.jpg")), fetcher.fetch(url(site, "/g"))
    assert seen_picture.content_type == "image/jpeg"
    assert seen_picture.fingerprints is not None and seen_picture.fingerprints.kind == "picture"
    assert seen_picture.fingerprints.pdq is not None and len(seen_picture.fingerprints.pdq) == 64
    assert seen_page.fingerprints is not None and seen_page.fingerprints.kind == "page"
    assert seen_page.fingerprints.tlsh and seen_page.fingerprints.text_sha256
    assert seen_page.vantage == seen_picture.vantage == "direct"


def test_result_and_its_repr_never_hold_the_body(fetcher: Fetcher, site: Site) -> None:
    body = b"PLACEHOLDER-BODY-" + os.urandom(64).hex().encode()
    site.routes["/"] = respond(200, body)
    result = fetcher.fetch(url(site, "/"))
    assert result.outcome == "present"
    assert not any(isinstance(value, bytes | bytearray) for value in vars(result).values())
    assert b"PLACEHOLDER-BODY" not in repr(result).encode()
    assert body.decode() not in str(vars(result))


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        pytest.param(404, "gone", id="404-not-found-is-gone"),
        pytest.param(410, "gone", id="410-gone-is-gone"),
        pytest.param(451, "gone", id="451-legal-reasons-is-gone"),
        pytest.param(500, "unreachable", id="500-is-unreachable"),
        pytest.param(503, "unreachable", id="503-is-unreachable"),
        pytest.param(403, "unreachable", id="403-is-no-evidence"),
        pytest.param(401, "unreachable", id="401-is-no-evidence"),
        pytest.param(429, "unreachable", id="429-is-no-evidence"),
        pytest.param(304, "unreachable", id="3xx-without-location-is-unreachable"),
    ],
)
def test_status_decides_the_outcome(
    fetcher: Fetcher, site: Site, status: int, outcome: str
) -> None:
    site.routes["/x"] = respond(status, b"error page")
    result = fetcher.fetch(url(site, "/x"))
    assert (result.outcome, result.status, result.reason) == (outcome, status, f"HTTP {status}")
    assert (result.sha256, result.address) == (None, "127.0.0.1")


def test_request_is_a_plain_get_with_our_user_agent_and_no_cookies(
    fetcher: Fetcher, site: Site
) -> None:
    site.routes["/login"] = redirect("/page", 302, ("Set-Cookie", "session=abc; Path=/"))
    site.routes["/page"] = respond(200, b"ok")
    assert fetcher.fetch(url(site, "/login")).outcome == "present"
    first, second = (headers for _, headers in site.requests)
    # A current mainstream browser's headers: hosts cloak content from robots.
    assert first["user-agent"] == DEFAULT_USER_AGENT
    assert "Chrome/" in DEFAULT_USER_AGENT and "compatible;" not in DEFAULT_USER_AGENT
    assert first["accept-language"] == "en-GB,en;q=0.9"
    assert first["accept"].startswith("text/html,")
    assert first["accept-encoding"] == second["accept-encoding"] == "identity"
    assert "cookie" not in first and "cookie" not in second


def test_body_is_hashed_as_served_even_when_compressed(fetcher: Fetcher, site: Site) -> None:
    packed = gzip.compress(b"content " * 1000, mtime=0)
    site.routes["/z"] = respond(200, packed, (("Content-Encoding", "gzip"),))
    result = fetcher.fetch(url(site, "/z"))
    assert (result.sha256, result.size) == (sha256(packed), len(packed))


# -- DNS ------------------------------------------------------------------------------------


def test_nxdomain_is_gone_and_permanent(fetcher: Fetcher) -> None:
    result = fetcher.fetch("http://nowhere.test/page")
    assert (result.outcome, result.permanent_dns, result.status, result.address) == (
        "gone",
        True,
        None,
        None,
    )
    assert "NXDOMAIN" in result.reason


def test_servfail_is_unreachable_and_transient(fetcher: Fetcher, site: Site) -> None:
    result = fetcher.fetch(url(site, "/", host="flaky.test"))
    assert (result.outcome, result.permanent_dns) == ("unreachable", False)
    assert "SERVFAIL" in result.reason
    assert site.connections == 0


# -- the egress guard ------------------------------------------------------------------------


def test_guard_blocks_a_special_use_address_and_never_connects(
    resolver: dns.resolver.Resolver, site: Site, connects: list[tuple[str, int]]
) -> None:
    site.routes["/"] = respond(200, b"must not be fetched")
    with Fetcher(resolver) as guarded:
        result = guarded.fetch(url(site, "/"))
    assert result.outcome == "blocked"
    assert "127.0.0.1 is loopback" in result.reason
    assert (result.address, result.status, result.sha256) == (None, None, None)
    assert site.connections == 0
    assert connects == []


def test_guard_blocks_a_literal_special_use_address(resolver: dns.resolver.Resolver) -> None:
    with Fetcher(resolver) as guarded:
        result = guarded.fetch("http://10.0.0.5/")
    assert (result.outcome, result.reason) == (
        "blocked",
        "10.0.0.5 resolves only to special-use addresses: 10.0.0.5 is private",
    )


@pytest.mark.parametrize(
    "host", ["nat64.test", "[64:ff9b::7f00:1]", "[2002:7f00:1::]", "[64:ff9b:1::7f00:1]"]
)
def test_guard_blocks_loopback_carried_in_ipv6_and_never_connects(
    fetcher: Fetcher, site: Site, connects: list[tuple[str, int]], host: str
) -> None:
    # 127.0.0.0/8 is allow-listed for IPv4; its NAT64 and 6to4 forms are not let through.
    site.routes["/"] = respond(200, b"must not be fetched")
    result = fetcher.fetch(url(site, "/", host=host))
    assert result.outcome == "blocked" and result.reason.endswith("is loopback"), result.reason
    assert (site.connections, connects) == (0, [])


def test_refused_addresses_beside_permitted_ones_are_skipped(
    fetcher: Fetcher, site: Site, connects: list[tuple[str, int]]
) -> None:
    site.routes["/"] = respond(200, b"ok")
    result = fetcher.fetch(url(site, "/", host="mixed.test"))
    assert (result.outcome, result.address) == ("present", "127.0.0.1")
    assert connects == [("127.0.0.1", site.port)]


def test_dns_rebinding_connects_only_to_the_address_checked(
    world: World,
    resolver: dns.resolver.Resolver,
    connects: list[tuple[str, int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Linux routes all of 127.0.0.0/8 to lo: two hosts, one allowed and one internal.
    with serving(Site("127.0.0.2")) as public, serving(Site("127.0.0.3", public.port)) as internal:
        public.routes["/"] = respond(200, b"public")
        internal.routes["/"] = respond(200, b"internal")
        asked = resolver.resolve

        def rebinding(*args: Any, **kwargs: Any) -> dns.resolver.Answer:
            """Answer, then point the name at the internal host, as an attacker's DNS would."""
            answer = asked(*args, **kwargs)
            world.set_records("rebind.test", [("A", "127.0.0.3")])
            return answer

        monkeypatch.setattr(resolver, "resolve", rebinding)
        allow = [ipaddress.ip_network("127.0.0.2/32")]
        with Fetcher(resolver, allow=allow) as fetcher:
            first = fetcher.fetch(url(public, "/", host="rebind.test"))
            second = fetcher.fetch(url(public, "/", host="rebind.test"))
    assert (first.outcome, first.address, first.sha256) == (
        "present",
        "127.0.0.2",
        sha256(b"public"),
    )
    assert (second.outcome, second.address) == ("blocked", None)  # every fetch checks again
    assert (public.connections, internal.connections) == (1, 0)
    assert connects == [("127.0.0.2", public.port)]


# -- redirects ------------------------------------------------------------------------------


def test_redirect_chain_is_followed_and_every_hop_recorded(
    fetcher: Fetcher, site: Site, connects: list[tuple[str, int]]
) -> None:
    body = os.urandom(1000)
    site.routes["/r1"] = redirect(url(site, "/r2", host="other.test"), 301)
    site.routes["/r2"] = redirect("/r3", 307)
    site.routes["/r3"] = redirect("final?x=1", 308)
    site.routes["/final?x=1"] = respond(200, body)
    result = fetcher.fetch(url(site, "/r1"))
    hops = tuple(url(site, p, host="other.test") for p in ("/r2", "/r3", "/final?x=1"))
    assert (result.outcome, result.sha256, result.redirects) == ("present", sha256(body), hops)
    assert result.final_url == hops[-1]
    assert site.connections == 4  # every hop connects afresh, through the guard
    assert connects == [("127.0.0.1", site.port)] * 4


@pytest.mark.parametrize(
    ("hops", "outcome"),
    [
        pytest.param(5, "present", id="five-redirects-are-followed"),
        pytest.param(6, "unreachable", id="six-redirects-are-too-many"),
    ],
)
def test_redirect_limit(fetcher: Fetcher, site: Site, hops: int, outcome: str) -> None:
    for hop in range(hops):
        site.routes[f"/n{hop}"] = redirect(f"/n{hop + 1}")
    site.routes[f"/n{hops}"] = respond(200, b"end")
    result = fetcher.fetch(url(site, "/n0"))
    assert result.outcome == outcome
    assert len(result.redirects) == hops
    if outcome == "unreachable":
        assert result.reason == "more than 5 redirects"
        assert site.connections == 6


def test_redirect_loop_is_unreachable(fetcher: Fetcher, site: Site) -> None:
    site.routes["/a"] = redirect("/b")
    site.routes["/b"] = redirect("/a")
    result = fetcher.fetch(url(site, "/a"))
    assert result.outcome == "unreachable"
    assert result.reason == f"redirect loop back to {url(site, '/a')}"
    assert result.redirects == (url(site, "/b"), url(site, "/a"))


def test_redirect_to_a_special_use_address_is_blocked_without_connecting(
    fetcher: Fetcher, site: Site, connects: list[tuple[str, int]]
) -> None:
    inside = url(site, "/admin", host="intranet.test")
    site.routes["/leak"] = redirect(inside)
    result = fetcher.fetch(url(site, "/leak"))
    assert (result.outcome, result.final_url, result.redirects) == ("blocked", inside, (inside,))
    assert "10.0.0.5 is private" in result.reason
    assert (result.address, result.status) == (None, None)
    assert connects == [("127.0.0.1", site.port)]  # the first hop only


def test_redirect_to_a_name_that_does_not_exist_is_gone(fetcher: Fetcher, site: Site) -> None:
    site.routes["/moved"] = redirect("http://nowhere.test/x")
    result = fetcher.fetch(url(site, "/moved"))
    assert (result.outcome, result.permanent_dns, result.final_url) == (
        "gone",
        True,
        "http://nowhere.test/x",
    )


def test_redirect_to_another_scheme_is_unreachable(fetcher: Fetcher, site: Site) -> None:
    site.routes["/f"] = redirect("ftp://site.test/file.bin")
    result = fetcher.fetch(url(site, "/f"))
    assert (result.outcome, result.reason) == ("unreachable", "not an http(s) URL: ftp")
    assert result.redirects == ("ftp://site.test/file.bin",)
    assert site.connections == 1


# -- size cap and the total deadline ---------------------------------------------------------


def test_body_over_the_cap_is_truncated_and_hashed_up_to_it(
    resolver: dns.resolver.Resolver, site: Site
) -> None:
    body = os.urandom(5 * MiB)
    site.routes["/big"] = respond(200, body)
    with Fetcher(resolver, allow=LOOPBACK, max_bytes=MiB) as fetcher:
        result = fetcher.fetch(url(site, "/big"))
    assert (result.outcome, result.truncated, result.size) == ("present", True, MiB)
    assert result.sha256 == sha256(body[:MiB])


def test_body_exactly_at_the_cap_is_not_truncated(
    resolver: dns.resolver.Resolver, site: Site
) -> None:
    body = os.urandom(MiB)
    site.routes["/exact"] = respond(200, body)
    with Fetcher(resolver, allow=LOOPBACK, max_bytes=MiB) as fetcher:
        result = fetcher.fetch(url(site, "/exact"))
    assert (result.truncated, result.size, result.sha256) == (False, MiB, sha256(body))


def test_endless_body_stops_at_the_cap(resolver: dns.resolver.Resolver, site: Site) -> None:
    site.routes["/forever"] = endless()
    with Fetcher(resolver, allow=LOOPBACK, max_bytes=MiB) as fetcher:
        result = fetcher.fetch(url(site, "/forever"))
    assert (result.outcome, result.truncated, result.size) == ("present", True, MiB)
    assert result.sha256 == sha256(b"e" * MiB)


def test_endless_body_stops_at_the_deadline_of_an_injected_clock(
    resolver: dns.resolver.Resolver, site: Site
) -> None:
    now = [0.0]
    site.routes["/forever"] = endless(on_first_chunk=lambda: now.__setitem__(0, 31.0))
    started = time.monotonic()
    with Fetcher(resolver, allow=LOOPBACK, max_bytes=10**12, clock=lambda: now[0]) as fetcher:
        result = fetcher.fetch(url(site, "/forever"))
    # The clock may jump before or after the headers are read: either way, no hash.
    assert (result.outcome, result.sha256) == ("unreachable", None)
    assert result.reason.startswith("deadline exceeded (30s)")
    assert time.monotonic() - started < 5


def test_slow_drip_stops_at_the_total_deadline(resolver: dns.resolver.Resolver, site: Site) -> None:
    site.routes["/drip"] = drip(0.2)
    started = time.monotonic()
    with Fetcher(resolver, allow=LOOPBACK, deadline=1.0) as fetcher:
        result = fetcher.fetch(url(site, "/drip"))
    elapsed = time.monotonic() - started
    assert (result.outcome, result.status, result.sha256) == ("unreachable", 200, None)
    assert result.reason.startswith("deadline exceeded (1s) after ")
    assert 1.0 <= elapsed < 2.0
    assert 1 <= result.size <= 6  # one byte at 0, 0.2 … 1.0 s at most


def test_a_stalled_body_ends_at_the_deadline_not_a_read_timeout_later(
    resolver: dns.resolver.Resolver, site: Site
) -> None:
    site.routes["/stall"] = stall
    started = time.monotonic()
    with Fetcher(resolver, allow=LOOPBACK, deadline=0.5, connect_timeout=10) as fetcher:
        result = fetcher.fetch(url(site, "/stall"))
    assert (result.outcome, result.status, result.size) == ("unreachable", 200, 0)
    assert result.reason == "deadline exceeded (0.5s) after 0 body bytes"
    assert time.monotonic() - started < 1.5


# -- threads sharing one fetcher (a worker's thread pool) -------------------------------------


def test_a_dripping_host_does_not_hold_up_another_threads_fetch(
    resolver: dns.resolver.Resolver, site: Site
) -> None:
    started, release = threading.Event(), threading.Event()

    def hold(handler: Handler) -> None:
        """Send the headers and one byte of 1000, then nothing until the test releases it."""
        headers_of(handler, 200, [("Content-Length", "1000")])
        handler.wfile.write(b"d")
        started.set()
        release.wait(60)

    site.routes["/fast"] = respond(200, b"fast")
    held: list[FetchResult] = []
    quick: list[FetchResult] = []
    with (
        serving(Site("127.0.0.2")) as dripping,
        Fetcher(resolver, allow=LOOPBACK, deadline=60.0) as fetcher,
    ):
        dripping.routes["/hold"] = hold
        holder = threading.Thread(
            target=lambda: held.append(fetcher.fetch(url(dripping, "/hold", host="drip.test")))
        )
        holder.start()
        assert started.wait(10), "the dripping host was never asked"
        other = threading.Thread(target=lambda: quick.append(fetcher.fetch(url(site, "/fast"))))
        other.start()
        other.join(20)
        answered, still_holding = list(quick), holder.is_alive()
        release.set()
        holder.join(20)
        other.join(20)
    assert still_holding, "the dripping fetch ended before the other one ran"
    assert [(r.outcome, r.sha256, r.address) for r in answered] == [
        ("present", sha256(b"fast"), "127.0.0.1")
    ]
    # The held fetch ends short of its length, and names its own connection, not the other's.
    assert [(r.outcome, r.address, r.size) for r in held] == [("unreachable", "127.0.0.2", 1)]


# -- network failures -----------------------------------------------------------------------


def test_connection_refused_is_unreachable(fetcher: Fetcher) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once closed: nobody listens there
    result = fetcher.fetch(f"http://site.test:{port}/")
    assert result.outcome == "unreachable"
    assert "ConnectError" in result.reason and "refused" in result.reason


def test_connection_reset_is_unreachable(fetcher: Fetcher, site: Site) -> None:
    site.routes["/"] = reset
    result = fetcher.fetch(url(site, "/"))
    assert (result.outcome, result.address) == ("unreachable", "127.0.0.1")
    assert "reset" in result.reason.lower()


def test_https_to_a_plain_http_server_is_a_tls_failure(fetcher: Fetcher, site: Site) -> None:
    result = fetcher.fetch(url(site, "/", scheme="https"))
    assert result.outcome == "unreachable"
    assert result.reason.startswith("tls: ")


@pytest.fixture
def secure_site(tmp_path: Path) -> Iterator[tuple[Site, list[str | None]]]:
    """Serve TLS for secure.test on 127.0.0.1; record the SNI names clients send."""
    (tmp_path / "key.pem").write_text(TEST_KEY)
    (tmp_path / "cert.pem").write_text(TEST_CERT)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    names: list[str | None] = []
    context.sni_callback = lambda _sock, name, _ctx: names.append(name)
    with serving(Site(tls=context)) as running:
        running.routes["/"] = respond(200, b"secure")
        yield running, names


def test_https_checks_the_certificate_against_the_host_name_not_the_address(
    resolver: dns.resolver.Resolver, secure_site: tuple[Site, list[str | None]]
) -> None:
    site, names = secure_site
    trust = ssl.create_default_context(cadata=TEST_CERT)
    with Fetcher(resolver, allow=LOOPBACK, verify=trust) as fetcher:
        result = fetcher.fetch(url(site, "/", host="secure.test", scheme="https"))
    assert (result.outcome, result.sha256, result.address) == (
        "present",
        sha256(b"secure"),
        "127.0.0.1",
    )
    assert names == ["secure.test"]


def test_untrusted_certificate_is_unreachable_not_a_crash(
    fetcher: Fetcher, secure_site: tuple[Site, list[str | None]]
) -> None:
    site, _ = secure_site
    result = fetcher.fetch(url(site, "/", host="secure.test", scheme="https"))
    assert result.outcome == "unreachable"
    assert result.reason.startswith("tls: ") and "CERTIFICATE_VERIFY_FAILED" in result.reason


# -- the proxy ------------------------------------------------------------------------------


@pytest.fixture
def proxy(site: Site) -> Iterator[Proxy]:
    """Run the operator's proxy on 127.0.0.3, relaying every request to SITE."""
    with serving(Proxy("127.0.0.3", ("127.0.0.1", site.port))) as running:
        yield running


def test_proxy_carries_the_request_and_its_address_is_recorded(
    resolver: dns.resolver.Resolver,
    site: Site,
    proxy: Proxy,
    connects: list[tuple[str, int]],
) -> None:
    body = os.urandom(2000)
    site.routes["/via"] = respond(200, body)
    with Fetcher(resolver, allow=LOOPBACK, proxy=f"http://127.0.0.3:{proxy.port}") as fetcher:
        result = fetcher.fetch(url(site, "/via"))
    assert (result.outcome, result.sha256, result.address) == ("present", sha256(body), "127.0.0.3")
    assert proxy.asked == [url(site, "/via")]
    assert connects == [("127.0.0.3", proxy.port)]


@pytest.mark.parametrize(
    ("host", "outcome"),
    [
        pytest.param("intranet.test", "blocked", id="special-use-host-is-blocked-before-the-proxy"),
        pytest.param("nowhere.test", "gone", id="nxdomain-host-is-gone-before-the-proxy"),
    ],
)
def test_proxy_is_never_asked_for_a_host_the_guard_refuses(
    resolver: dns.resolver.Resolver, proxy: Proxy, host: str, outcome: str
) -> None:
    with Fetcher(resolver, proxy=f"http://127.0.0.3:{proxy.port}") as fetcher:
        result = fetcher.fetch(f"http://{host}/x")
    assert (result.outcome, result.address) == (outcome, None)
    assert (proxy.connections, proxy.asked) == (0, [])


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        pytest.param({"user_agent": "x\r\nX-Injected: 1"}, "one line", id="header-injection"),
        pytest.param({"max_bytes": 0}, "positive", id="no-body-cap"),
        pytest.param({"deadline": 0.0}, "positive", id="no-deadline"),
        pytest.param({"proxy": "socks5://127.0.0.1:1080"}, "http", id="non-http-proxy"),
    ],
)
def test_bad_settings_are_refused_at_construction(
    resolver: dns.resolver.Resolver, settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Fetcher(resolver, **settings)
