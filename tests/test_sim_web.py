"""The simulated web: virtual hosts on 127.0.0.1 serving seeded content, and the proxy."""

from __future__ import annotations

import hashlib
import io
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from workflows.sim.content import page, picture, soft_404
from workflows.sim.proxy import SimProxy
from workflows.sim.web import PLAIN_ANSWER, Handshake, WebServer, looks_like_robot
from workflows.sim.world import World, site_key

UK = "http://uploads.examplehost-uk.test/img/1.bin"
DE = "http://share.berghost-de.test/img/1.bin"
SLOW = "http://uploads.examplehost-uk.test/slow"
ENDLESS = "http://uploads.examplehost-uk.test/endless"
SECURE = "https://secure.examplehost-uk.test/img/1.bin"
PICTURE = "http://uploads.examplehost-uk.test/img/2.jpg"
PAGE = "http://uploads.examplehost-uk.test/gallery/2.html"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
BROWSER = {"User-Agent": CHROME, "Accept-Language": "en-GB,en;q=0.9"}


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


def get(
    http: httpx.Client,
    web: WebServer,
    url: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """Request url from web, naming its host in the Host header as a browser would."""
    parts = httpx.URL(url)
    target = parts.raw_path.decode()
    sent = {"Host": parts.netloc.decode(), **(headers or {})}
    return http.request(method, web.base_url + target, headers=sent)


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


# -- pictures, pages and impolite hosts ------------------------------------------------------


def jpeg_size(body: bytes) -> tuple[int, int]:
    """Decode a JPEG fully and return its size."""
    image = Image.open(io.BytesIO(body))
    assert image.format == "JPEG"
    image.load()
    return image.size


def test_each_kind_is_served_with_its_content_type(
    world: World, web: WebServer, http: httpx.Client
) -> None:
    world.put_content(PICTURE, kind="picture", seed=5)
    world.put_content(PAGE, kind="page", seed=5)
    served = {url: get(http, web, url) for url in (UK, PICTURE, PAGE)}
    assert {url: r.headers["Content-Type"] for url, r in served.items()} == {
        UK: "application/octet-stream",
        PICTURE: "image/jpeg",
        PAGE: "text/html; charset=utf-8",
    }
    assert served[PICTURE].content == picture(5) == world.content(PICTURE).body()  # type: ignore[union-attr]
    assert jpeg_size(served[PICTURE].content) == (480, 360)
    assert served[PAGE].content == page(5)
    assert served[PAGE].headers["Content-Length"] == str(len(page(5)))
    assert world.content_type(PAGE) == "text/html; charset=utf-8"
    assert world.content_type("http://never.test/") is None
    with pytest.raises(ValueError, match="unknown content kind"):
        world.put_content(PICTURE, kind="video")


def test_an_error_status_of_a_picture_is_a_few_octets(
    world: World, web: WebServer, http: httpx.Client
) -> None:
    world.put_content(PICTURE, "410", kind="picture")
    response = get(http, web, PICTURE)
    assert response.status_code == 410
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert 0 < len(response.content) <= 16


def test_changed_serves_another_of_the_same_kind(
    world: World, web: WebServer, http: httpx.Client
) -> None:
    world.put_content(PICTURE, kind="picture", seed=5)
    world.put_content(PAGE, kind="page", seed=5)
    world.set_content_state(PICTURE, "changed")
    world.set_content_state(PAGE, "changed")
    other_picture, other_page = get(http, web, PICTURE), get(http, web, PAGE)
    assert other_picture.headers["Content-Type"] == "image/jpeg"
    assert other_picture.content != picture(5)
    assert jpeg_size(other_picture.content) == (480, 360)
    assert other_page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert other_page.content != page(5) and other_page.content.startswith(b"<!DOCTYPE html>")
    world.set_content_state(PICTURE, "changed")
    assert get(http, web, PICTURE).content not in (picture(5), other_picture.content)


def test_dynamic_page_bytes_differ_on_every_request(
    world: World, web: WebServer, http: httpx.Client
) -> None:
    world.put_content(PAGE, kind="page", seed=8, dynamic=True)
    bodies = [get(http, web, PAGE).content for _ in range(4)]
    assert bodies == [page(8, request, dynamic=True) for request in range(4)]
    assert len(set(bodies)) == 4
    assert bodies[0] == world.content(PAGE).body()  # type: ignore[union-attr]
    title = page(8).partition(b"</title>")[0]
    assert all(body.startswith(title) for body in bodies)
    # A HEAD is a request too: the next GET is the sixth page served.
    assert get(http, web, PAGE, method="HEAD").content == b""
    assert get(http, web, PAGE).content == page(8, 5, dynamic=True)


def test_soft_404_is_a_200_not_found_page_for_every_url_of_the_host(
    world: World, web: WebServer, http: httpx.Client
) -> None:
    world.put_content(PICTURE, kind="picture")
    world.put_content(PAGE, kind="page")
    world.set_content_state(PICTURE, "soft404")
    world.set_content_state(PAGE, "soft404")
    one, other = get(http, web, PICTURE), get(http, web, PAGE)
    assert one.status_code == other.status_code == 200
    assert one.headers["Content-Type"] == "text/html; charset=utf-8"
    assert one.content == soft_404("uploads.examplehost-uk.test")
    assert other.content == one.content  # each URL's first request: the same page
    assert b"Page not found" in one.content
    assert get(http, web, PICTURE).content == soft_404("uploads.examplehost-uk.test", 1)


def test_reupload_serves_the_same_picture_re_encoded(
    world: World, web: WebServer, http: httpx.Client
) -> None:
    world.put_content(PICTURE, kind="picture", seed=9)
    original = get(http, web, PICTURE).content
    world.set_content_state(PICTURE, "404")
    assert get(http, web, PICTURE).status_code == 404
    world.reupload(PICTURE)
    back = get(http, web, PICTURE)
    assert back.status_code == 200
    assert back.headers["Content-Type"] == "image/jpeg"
    assert back.content == picture(9, 1) != original
    width, height = jpeg_size(back.content)
    assert 0.85 <= width / 480 <= 0.95 and 0.85 <= height / 360 <= 0.95
    world.reupload(PICTURE)
    assert get(http, web, PICTURE).content == picture(9, 2)
    site = world.content(PICTURE)
    assert site is not None and (site.state, site.variant) == ("present", 2)
    world.reupload(UK)  # bytes come back as they were
    assert get(http, web, UK).content == world.content(UK).body()  # type: ignore[union-attr]
    with pytest.raises(KeyError):
        world.reupload("http://never.test/")


@pytest.mark.parametrize(
    "headers",
    [
        {"User-Agent": "python-httpx/0.28", "Accept-Language": "en"},
        {"User-Agent": "Mozilla/5.0 (compatible; takedown-recheck/0.1)", "Accept-Language": "en"},
        {"User-Agent": "curl/8.5.0", "Accept-Language": "en"},
        {"User-Agent": CHROME},  # a browser's User-Agent but no Accept-Language
        {"User-Agent": "", "Accept-Language": "en"},
    ],
)
def test_cloak_hides_from_robots(
    world: World, web: WebServer, http: httpx.Client, headers: dict[str, str]
) -> None:
    world.put_content(PICTURE, kind="picture", seed=4, cloak=True)
    robot = get(http, web, PICTURE, headers=headers)
    browser = get(http, web, PICTURE, headers=BROWSER)
    assert robot.status_code == 404
    assert robot.headers["Content-Type"] == "text/html; charset=utf-8"
    assert b"Not Found" in robot.content and robot.content != picture(4)
    assert browser.status_code == 200
    assert browser.content == picture(4)
    assert world.fetches(PICTURE) == [(PICTURE, "127.0.0.1")] * 2  # both requests logged


def test_cloak_hides_from_a_request_without_user_agent(world: World, web: WebServer) -> None:
    world.put_content(PICTURE, kind="picture", cloak=True)
    with socket.create_connection(("127.0.0.1", web.port), timeout=5) as sock:
        request = "GET /img/2.jpg HTTP/1.1\r\nHost: uploads.examplehost-uk.test\r\n"
        sock.sendall(f"{request}Accept-Language: en\r\n\r\n".encode())
        head, _ = read_head_and_body(sock, 0)
    assert head.startswith(b"HTTP/1.0 404")


def test_uncloaked_sites_serve_robots(world: World, web: WebServer, http: httpx.Client) -> None:
    assert get(http, web, UK).status_code == 200  # httpx's own User-Agent, no Accept-Language


@pytest.mark.parametrize(
    ("user_agent", "accept_language", "robot"),
    [
        (CHROME, "en-GB,en;q=0.9", False),
        ("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", "de", False),
        (CHROME, None, True),
        (None, "en", True),
        ("", "en", True),
        ("Googlebot/2.1 (+http://www.google.com/bot.html)", "en", True),
        ("Mozilla/5.0 (compatible; bingbot/2.0)", "en", True),
        ("Mozilla/5.0 (compatible; Yahoo! Slurp)", "en", True),
        ("Wget/1.21", "en", True),
        ("python-requests/2.32", "en", True),
        ("Go-http-client/1.1", "en", True),
        ("Java/17.0.2", "en", True),
        ("libwww-perl/6.72", "en", True),
        ("Mozilla/5.0 HeadlessChrome/131.0.0.0", "en", True),
        ("Mozilla/5.0 (compatible; Nuclei scanner)", "en", True),
        ("Mozilla/5.0 (compatible; MSIE 10.0; Windows NT 6.1)", "en", True),
    ],
)
def test_looks_like_robot(user_agent: str | None, accept_language: str | None, robot: bool) -> None:
    assert looks_like_robot(user_agent, accept_language) is robot


def test_respond_keeps_its_old_signature(world: World, web: WebServer) -> None:
    world.put_content(PICTURE, kind="picture", seed=4, cloak=True)
    assert web.respond("uploads.examplehost-uk.test", "/img/1.bin", "127.0.0.1").status == 200
    assert web.respond("uploads.examplehost-uk.test", "/img/2.jpg", "127.0.0.1").status == 404
    reply = web.respond("uploads.examplehost-uk.test", "/img/2.jpg", "127.0.0.1", CHROME, "en")
    assert (reply.status, reply.body, reply.content_type) == (200, picture(4), "image/jpeg")


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


def test_proxy_passes_the_browser_headers_on_so_a_cloaking_host_serves_it(
    world: World, proxy: SimProxy
) -> None:
    url = "http://cloak.example.test/f/1"
    world.put_content(url, cloak=True)
    with httpx.Client(proxy=proxy.url, trust_env=False, timeout=5) as http:
        as_browser = http.get(url, headers=BROWSER)
        as_robot = http.get(url)
    assert as_browser.status_code == 200
    assert as_browser.content == world.content(url).body()  # type: ignore[union-attr]
    assert as_robot.status_code == 404


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
