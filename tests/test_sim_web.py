"""The simulated web: virtual hosts on 127.0.0.1 serving seeded random bytes, and the proxy."""

from __future__ import annotations

import hashlib
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from workflows.sim.proxy import SimProxy
from workflows.sim.web import PLAIN_ANSWER, Handshake, WebServer
from workflows.sim.world import World, site_key

UK = "http://uploads.examplehost-uk.test/img/1.bin"
DE = "http://share.berghost-de.test/img/1.bin"
SLOW = "http://uploads.examplehost-uk.test/slow"
ENDLESS = "http://uploads.examplehost-uk.test/endless"
SECURE = "https://secure.examplehost-uk.test/img/1.bin"


@pytest.fixture
def world() -> World:
    """Return a world with two hosts serving the same path and a slow URL."""
    world = World()
    world.put_content(UK, seed=1)
    world.put_content(DE, seed=2)
    world.put_content(SLOW, state="slow", size=8)
    world.put_content(ENDLESS, state="endless", size=1000)
    world.put_content(SECURE)
    return world


@pytest.fixture
def web(world: World) -> Iterator[WebServer]:
    """Serve the world on 127.0.0.1."""
    with WebServer(world) as server:
        yield server


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    """Return a client that ignores proxy variables and never follows redirects."""
    with httpx.Client(trust_env=False, timeout=5) as client:
        yield client


def get(http: httpx.Client, web: WebServer, url: str, method: str = "GET") -> httpx.Response:
    """Request url from web, naming its host in the Host header as a browser would."""
    parts = httpx.URL(url)
    target = parts.raw_path.decode()
    return http.request(method, web.base_url + target, headers={"Host": parts.netloc.decode()})


def sha256(body: bytes) -> str:
    """Return the hex SHA-256 of body."""
    return hashlib.sha256(body).hexdigest()


def read_head_and_body(sock: socket.socket, body_bytes: int) -> tuple[bytes, bytes]:
    """Read a response's head and then exactly body_bytes of its body."""
    data = b""
    while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < body_bytes:
        chunk = sock.recv(1024)
        assert chunk, f"connection closed early after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


def test_sites_are_served_by_host_header(world: World, web: WebServer, http: httpx.Client) -> None:
    uk, de = get(http, web, UK), get(http, web, DE)
    assert uk.status_code == de.status_code == 200
    assert uk.headers["Content-Type"] == "application/octet-stream"
    assert uk.headers["Content-Length"] == "4096"
    assert uk.content == world.content(UK).body()  # type: ignore[union-attr]
    assert uk.content != de.content


def test_same_seed_serves_the_same_bytes_every_time(world: World, web: WebServer) -> None:
    world.put_content("http://mirror.sgcloud-sg.test/copy", seed=1, size=4096)
    with httpx.Client(trust_env=False) as http:
        first, second = get(http, web, UK), get(http, web, UK)
        mirror = get(http, web, "http://mirror.sgcloud-sg.test/copy")
    assert sha256(first.content) == sha256(second.content) == sha256(mirror.content)


def test_seed_defaults_to_one_derived_from_the_url() -> None:
    one, other = World(), World()
    same_url = "HTTP://Uploads.ExampleHost-UK.test:80/img/1.bin"
    assert one.put_content(UK).body() == other.put_content(same_url).body()
    assert one.put_content(DE).body() != one.put_content(UK).body()


def test_changed_serves_new_bytes_each_time(
    world: World, web: WebServer, http: httpx.Client
) -> None:
    original = sha256(get(http, web, UK).content)
    world.set_content_state(UK, "changed")
    changed = sha256(get(http, web, UK).content)
    world.set_content_state(UK, "changed")
    changed_again = sha256(get(http, web, UK).content)
    world.set_content_state(UK, "present")
    assert len({original, changed, changed_again}) == 3
    assert sha256(get(http, web, UK).content) == original


@pytest.mark.parametrize("status", [404, 410, 451, 500])
def test_status_states(world: World, web: WebServer, http: httpx.Client, status: int) -> None:
    world.set_content_state(UK, str(status))
    response = get(http, web, UK)
    assert response.status_code == status
    assert 0 < len(response.content) <= 16
    # Seeded like every body, so a test can look for it where it must never be.
    assert response.content == world.content(UK).body()  # type: ignore[union-attr]


def test_redirect(world: World, web: WebServer, http: httpx.Client) -> None:
    world.set_content_state(UK, "redirect:http://share.berghost-de.test/img/1.bin")
    response = get(http, web, UK)
    assert response.status_code == 302
    assert response.headers["Location"] == DE


def test_unknown_path_is_404_and_unknown_host_is_421(web: WebServer, http: httpx.Client) -> None:
    assert get(http, web, "http://uploads.examplehost-uk.test/nothing").status_code == 404
    assert get(http, web, "http://uploads.examplehost-uk.test:80/img/1.bin").status_code == 200
    assert get(http, web, "http://elsewhere.test/img/1.bin").status_code == 421


def test_head_sends_headers_only(web: WebServer, http: httpx.Client) -> None:
    response = get(http, web, UK, method="HEAD")
    assert response.status_code == 200
    assert response.headers["Content-Length"] == "4096"
    assert response.content == b""


def test_request_without_host_is_400(web: WebServer) -> None:
    with socket.create_connection(("127.0.0.1", web.port), timeout=5) as sock:
        sock.sendall(b"GET /img/1.bin HTTP/1.0\r\n\r\n")
        head, _ = read_head_and_body(sock, 0)
    assert head.startswith(b"HTTP/1.0 400")


def test_slow_site_drips_one_byte_at_a_time(world: World, web: WebServer) -> None:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", web.port), timeout=5) as sock:
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: uploads.examplehost-uk.test\r\n\r\n")
        head, body = read_head_and_body(sock, 3)
    assert head.startswith(b"HTTP/1.0 200")
    assert b"Content-Length" not in head
    assert body == world.content(SLOW).body()[:3]  # type: ignore[union-attr]
    assert time.monotonic() - started >= 0.35  # three bytes, 0.2 s apart


def test_endless_site_streams_its_bytes_over_and_over(world: World, web: WebServer) -> None:
    period = world.content(ENDLESS).body()  # type: ignore[union-attr]
    with socket.create_connection(("127.0.0.1", web.port), timeout=5) as sock:
        sock.sendall(b"GET /endless HTTP/1.1\r\nHost: uploads.examplehost-uk.test\r\n\r\n")
        head, body = read_head_and_body(sock, 300_000)  # 300 periods of its 1000 bytes
    assert head.startswith(b"HTTP/1.0 200")
    assert b"Content-Length" not in head
    assert body[:300_000] == period * 300
    assert world.fetches(ENDLESS) == [(ENDLESS, "127.0.0.1")]


def test_fetch_log_names_every_request_and_its_client(world: World, web: WebServer) -> None:
    with httpx.Client(trust_env=False) as http:
        get(http, web, UK)
        get(http, web, "http://intranet.badlinks.test/x")
    assert world.fetches(UK) == [(UK, "127.0.0.1")]
    assert world.fetches("http://intranet.badlinks.test/x") == [
        ("http://intranet.badlinks.test/x", "127.0.0.1")
    ]
    assert world.fetches("http://10.0.0.5/") == []  # a special-use host never fetched


def test_one_server_per_address(world: World) -> None:
    with WebServer(world, host="127.0.0.1") as one, WebServer(world, host="127.0.0.2") as two:
        assert two.address.startswith("127.0.0.2:")
        with httpx.Client(trust_env=False) as http:
            assert get(http, one, UK).content == get(http, two, UK).content
    assert [client for _, client in world.fetches(UK)] == ["127.0.0.1", "127.0.0.1"]


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("HTTP://Uploads.Example.TEST:80/A?b=1#frag", "http://uploads.example.test/A?b=1"),
        ("https://example.test:443", "https://example.test/"),
        ("http://example.test:8080/x?", "http://example.test:8080/x"),
        ("http://[2A01:4F8::1]/x", "http://[2a01:4f8::1]/x"),
        ("http://example.test./x", "http://example.test/x"),
    ],
)
def test_site_key(url: str, key: str) -> None:
    assert site_key(url) == key


def test_content_declarations_are_validated(world: World) -> None:
    with pytest.raises(ValueError, match="unknown content state"):
        world.put_content(UK, state="gone")
    with pytest.raises(ValueError, match="unknown content state"):
        world.set_content_state(UK, "redirect:")
    with pytest.raises(KeyError):
        world.set_content_state("http://never.test/", "404")
    assert world.content("http://never.test/") is None


# -- TLS ------------------------------------------------------------------------------------


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """Return a self-signed certificate and key for secure.examplehost-uk.test (openssl)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    name = "secure.examplehost-uk.test"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
         "-addext", f"subjectAltName=DNS:{name}"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def secure(world: World, certificate: tuple[Path, Path]) -> Iterator[WebServer]:
    """Serve the world's https:// sites on 127.0.0.1 with the self-signed certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    with WebServer(world, tls=context) as server:
        yield server


def https_get(server: WebServer, url: str, verify: ssl.SSLContext | bool) -> httpx.Response:
    """GET an https URL from SERVER, sending its host name in SNI and Host."""
    parts = httpx.URL(url)
    transport = httpx.HTTPTransport(verify=verify)
    with httpx.Client(transport=transport, trust_env=False, timeout=5) as client:
        target = f"https://{parts.host}:{server.port}{parts.raw_path.decode()}"
        request = client.build_request("GET", target)
        # Connect to the server's address, but name the site: SNI and the certificate check.
        request.extensions["sni_hostname"] = parts.host
        request.url = request.url.copy_with(host="127.0.0.1")
        request.headers["Host"] = parts.host
        return client.send(request)


def test_tls_server_serves_https_sites_to_a_client_that_trusts_it(
    world: World, secure: WebServer, certificate: tuple[Path, Path]
) -> None:
    trust = ssl.create_default_context(cafile=str(certificate[0]))
    response = https_get(secure, SECURE, trust)
    assert response.status_code == 200
    assert response.content == world.content(SECURE).body()  # type: ignore[union-attr]
    assert world.fetches(SECURE) == [(SECURE, "127.0.0.1")]
    assert secure.handshakes == [Handshake("127.0.0.1", "ok")]


def test_tls_server_records_a_handshake_the_client_refused(world: World, secure: WebServer) -> None:
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        https_get(secure, SECURE, True)
    deadline = time.monotonic() + 5  # the server learns of the alert in its own thread
    while not secure.handshakes and time.monotonic() < deadline:
        time.sleep(0.01)
    assert secure.handshakes == [Handshake("127.0.0.1", "failed: TLSV1_ALERT_UNKNOWN_CA")]
    assert world.fetches() == []  # no request ever reached the site


def test_plain_server_answers_a_tls_hello_with_plain_http(world: World) -> None:
    with WebServer(world, scheme="https") as plain:
        with pytest.raises(httpx.ConnectError, match="WRONG_VERSION_NUMBER"):
            https_get(plain, SECURE, True)
        assert plain.handshakes == [Handshake("127.0.0.1", PLAIN_ANSWER)]
        # A plain request on that port is served, as the https:// site it stands in for.
        with socket.create_connection(("127.0.0.1", plain.port), timeout=5) as sock:
            sock.sendall(b"GET /img/1.bin HTTP/1.1\r\nHost: secure.examplehost-uk.test\r\n\r\n")
            head, _ = read_head_and_body(sock, 0)
    assert head.startswith(b"HTTP/1.0 200")
    assert world.fetches() == [(SECURE, "127.0.0.1")]


def test_web_server_scheme_is_http_or_https(world: World) -> None:
    with pytest.raises(ValueError, match="http or https"):
        WebServer(world, scheme="ftp")


# -- proxy ----------------------------------------------------------------------------------


@pytest.fixture
def proxy(world: World, web: WebServer) -> Iterator[SimProxy]:
    """Serve the web server's sites through a forward proxy on 127.0.0.1."""
    with SimProxy(world, web) as server:
        yield server


def test_proxy_serves_absolute_form_requests(world: World, proxy: SimProxy) -> None:
    with httpx.Client(proxy=proxy.url, trust_env=False, timeout=5) as http:
        response = http.get(UK)
        missing = http.get("http://elsewhere.test/x")
    assert response.status_code == 200
    assert response.content == world.content(UK).body()  # type: ignore[union-attr]
    assert missing.status_code == 421
    assert proxy.requests == [("GET", UK), ("GET", "http://elsewhere.test/x")]
    assert [url for url, _ in world.fetches()] == [UK, "http://elsewhere.test/x"]


def test_proxy_refuses_connect(proxy: SimProxy) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(b"CONNECT uploads.examplehost-uk.test:443 HTTP/1.1\r\n\r\n")
        head, _ = read_head_and_body(sock, 0)
    assert head.split(b" ")[1] == b"501"
    assert proxy.requests == [("CONNECT", "uploads.examplehost-uk.test:443")]


def test_proxy_refuses_origin_form(proxy: SimProxy) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(b"GET /img/1.bin HTTP/1.1\r\nHost: uploads.examplehost-uk.test\r\n\r\n")
        head, _ = read_head_and_body(sock, 0)
    assert head.split(b" ")[1] == b"400"


def test_proxy_streams_a_drip(proxy: SimProxy) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(f"GET {SLOW} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        head, body = read_head_and_body(sock, 2)
    assert head.split(b" ")[1] == b"200"
    assert len(body) == 2


def test_proxy_needs_the_same_world_and_a_started_server(world: World) -> None:
    with pytest.raises(ValueError, match="another World"):
        SimProxy(World(), WebServer(world))
    with pytest.raises(RuntimeError, match="start the WebServer"):
        SimProxy(world, WebServer(world)).start()
