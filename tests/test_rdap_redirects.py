"""RDAP redirects held to the egress rule, and every RDAP answer read under a cap.

Real servers in the test process: the operator's RDAP base (plain http on a public-looking
address, as the simulated internet's is), a registry behind it over https (secure.test,
resolved by the simulated DNS), and a server on loopback that must never be reached. Every
TCP connect() of the test thread is recorded (test_fetch's audit hook), so "refused" means
no connection was even tried.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.resolver
import httpx
import pytest
from conftest import ISOLATED
from test_fetch import (
    _CONNECT_LOGS,
    TEST_CERT,
    TEST_KEY,
    Handler,
    Route,
    Site,
    headers_of,
    redirect,
    respond,
    serving,
)

from workflows.errors import LookupFailed
from workflows.sim import SimInternet, World
from workflows.trace.dns import make_resolver
from workflows.trace.ratelimit import RateLimiter
from workflows.trace.rdap import NetworkCache, RDAPClient
from workflows.trace.rdaphttp import MAX_BODY, MAX_REDIRECTS, get_answer, rdap_http
from workflows.trace.registrar import RegistrarClient

# Inside the tests' own network namespace these public-looking addresses are on loopback;
# without one (TAKEDOWN_TEST_ISOLATION=0) both servers share 127.0.0.1, allow-listed as
# an operator would with TAKEDOWN_FETCH_ALLOW, and 127.0.0.2 stays refused.
BASE_IP, REGISTRY_IP = ("185.199.110.21", "185.199.110.22") if ISOLATED else ("127.0.0.1",) * 2
ALLOW = () if ISOLATED else ("127.0.0.1/32",)
LOOPBACK_IP = "127.0.0.2"
ADDRESS = "185.199.108.153"
NETWORK = {
    "objectClassName": "ip network",
    "handle": "NET-185-199-108-0-1",
    "startAddress": "185.199.108.0",
    "endAddress": "185.199.111.255",
    "ipVersion": "v4",
    "name": "EXAMPLE-NET",
    "country": "gb",
    "entities": [
        {
            "objectClassName": "entity",
            "handle": "ABUSE-1",
            "roles": ["abuse"],
            "vcardArray": ["vcard", [["email", {}, "text", "abuse@registry.example"]]],
        }
    ],
}
TOTAL = 64 * 1024 * 1024  # what the oversized answers offer; far beyond MAX_BODY


@pytest.fixture
def connects() -> Iterator[list[tuple[str, int]]]:
    """Return the (address, port) of every TCP connect() this test's thread makes."""
    log: list[tuple[str, int]] = []
    _CONNECT_LOGS[threading.get_ident()] = log
    yield log
    del _CONNECT_LOGS[threading.get_ident()]


@pytest.fixture
def resolver() -> Iterator[dns.resolver.Resolver]:
    world = World(
        records={
            "secure.test": [("A", REGISTRY_IP)],
            "intranet.test": [("A", "10.0.0.5")],
            "nat64.test": [("AAAA", "64:ff9b::a00:5")],  # 10.0.0.5 through NAT64
            "loopback.test": [("A", LOOPBACK_IP)],
        }
    )
    with SimInternet(world) as sim:
        yield make_resolver([("127.0.0.1", sim.dns.port)], timeout=2.0)


@pytest.fixture
def base() -> Iterator[Site]:
    with serving(Site(BASE_IP)) as running:
        yield running


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Site]:
    """An RDAP registry over https, as secure.test (test_fetch's self-signed certificate)."""
    (tmp_path / "key.pem").write_text(TEST_KEY)
    (tmp_path / "cert.pem").write_text(TEST_CERT)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    with serving(Site(REGISTRY_IP, tls=context)) as running:
        yield running


@pytest.fixture
def bystander() -> Iterator[Site]:
    """A server on loopback: what a hostile redirect aims at. It must never see a request."""
    with serving(Site(LOOPBACK_IP)) as running:
        running.routes[f"/ip/{ADDRESS}"] = respond(200, json.dumps(NETWORK).encode())
        yield running


@pytest.fixture
def http(resolver: dns.resolver.Resolver, base: Site) -> Iterator[httpx.Client]:
    """The tracer's RDAP client (Tracer.from_settings builds it the same way)."""
    trust = ssl.create_default_context(cadata=TEST_CERT)
    with rdap_http(resolver, timeout=5.0, base=base_url(base), allow=ALLOW, verify=trust) as client:
        yield client


def base_url(site: Site) -> str:
    return f"http://{BASE_IP}:{site.port}"


def rdap_client(http: httpx.Client, base: Site) -> RDAPClient:
    return RDAPClient(http, RateLimiter(1000), NetworkCache(60), base=base_url(base))


def answer(document: dict[str, Any]) -> Route:
    return respond(200, json.dumps(document).encode(), (("Content-Type", "application/rdap+json"),))


def test_a_redirect_to_a_registry_over_https_is_followed(
    http: httpx.Client, base: Site, registry: Site, connects: list[tuple[str, int]]
) -> None:
    # rdap.org's shape: the base answers every query with a redirect to the registry.
    target = f"https://secure.test:{registry.port}/rdap/ip/{ADDRESS}"
    base.routes[f"/ip/{ADDRESS}"] = redirect(target, 301)
    registry.routes[f"/rdap/ip/{ADDRESS}"] = answer(NETWORK)
    record = rdap_client(http, base).lookup(ADDRESS, "ripencc")
    assert (record.handle, record.abuse) == ("NET-185-199-108-0-1", ("abuse@registry.example",))
    assert [path for path, _ in registry.requests] == [f"/rdap/ip/{ADDRESS}"]
    assert connects == [(BASE_IP, base.port), (REGISTRY_IP, registry.port)]


def test_a_redirect_within_the_base_is_followed_over_its_own_scheme(
    http: httpx.Client, base: Site
) -> None:
    base.routes[f"/ip/{ADDRESS}"] = redirect(f"/registry/ip/{ADDRESS}", 302)
    base.routes[f"/registry/ip/{ADDRESS}"] = answer(NETWORK)
    assert rdap_client(http, base).lookup(ADDRESS, None).name == "EXAMPLE-NET"


REFUSED = [
    pytest.param("https://{loopback}/ip/x", f"{LOOPBACK_IP} is loopback", id="loopback"),
    pytest.param("https://10.0.0.1/ip/x", "10.0.0.1 is private", id="private"),
    pytest.param("https://[64:ff9b::a00:1]/ip/x", "64:ff9b::a00:1 is private", id="nat64"),
    pytest.param("https://[::ffff:127.0.0.1]/ip/x", "is loopback", id="ipv4-mapped"),
    pytest.param(
        "https://intranet.test/ip/x",
        "intranet.test resolves only to special-use addresses: 10.0.0.5 is private",
        id="name-to-private",
    ),
    pytest.param("https://nat64.test/ip/x", "64:ff9b::a00:5 is private", id="name-to-nat64"),
    pytest.param("https://loopback.test:{port}/x", "is loopback", id="name-to-loopback"),
    pytest.param("file:///etc/passwd", "file:/etc/passwd is not https", id="file"),
    pytest.param("ftp://secure.test/ip/x", "is not https", id="ftp"),
    pytest.param("http://secure.test/ip/x", "http://secure.test/ip/x is not https", id="http"),
    pytest.param("http://{loopback}/ip/x", "is not https", id="http-loopback"),
    pytest.param("//secure.test/ip/x", "is not https", id="scheme-relative"),
    pytest.param("http://{base_host}:1/ip/x", "is not https", id="base-host-other-port"),
]


@pytest.mark.parametrize(("location", "reason"), REFUSED)
def test_a_redirect_the_egress_rule_forbids_is_a_permanent_failure(
    http: httpx.Client,
    base: Site,
    bystander: Site,
    connects: list[tuple[str, int]],
    location: str,
    reason: str,
) -> None:
    target = location.format(
        loopback=f"{LOOPBACK_IP}:{bystander.port}", port=bystander.port, base_host=BASE_IP
    )
    base.routes[f"/ip/{ADDRESS}"] = redirect(target, 302)
    with pytest.raises(LookupFailed) as caught:
        rdap_client(http, base).lookup(ADDRESS, None)
    assert (caught.value.kind, caught.value.permanent) == ("rdap_refused", True)
    assert caught.value.message.startswith("RDAP ") and reason in caught.value.message
    assert connects == [(BASE_IP, base.port)]  # nothing else was even tried
    assert bystander.requests == [] and bystander.connections == 0


@pytest.mark.parametrize("redirects", [MAX_REDIRECTS, MAX_REDIRECTS + 1])
def test_a_chain_of_more_than_five_redirects_fails(
    http: httpx.Client, base: Site, redirects: int
) -> None:
    for hop in range(redirects):
        base.routes[f"/hop/{hop}"] = redirect(f"/hop/{hop + 1}", 307)
    base.routes[f"/hop/{redirects}"] = answer(NETWORK)
    if redirects <= MAX_REDIRECTS:
        assert get_answer(http, f"{base_url(base)}/hop/0").status == 200
        return
    with pytest.raises(LookupFailed, match="more than 5 redirects") as caught:
        get_answer(http, f"{base_url(base)}/hop/0")
    assert (caught.value.kind, caught.value.permanent) == ("rdap_refused", True)
    assert len(base.requests) == MAX_REDIRECTS + 1


def oversized(declared: bool, sent: list[int]) -> Route:
    """Offer TOTAL bytes of JSON-looking spaces, counting into SENT what was written."""

    def route(handler: Handler) -> None:
        length = [("Content-Length", str(TOTAL))] if declared else []
        headers_of(handler, 200, [*length, ("Content-Type", "application/rdap+json")])
        chunk = b" " * (64 * 1024)
        framed = chunk if declared else b"%x\r\n%s\r\n" % (len(chunk), chunk)
        sent.append(0)
        try:
            while sent[-1] < TOTAL and not handler.server.stopping.is_set():
                handler.wfile.write(framed)
                sent[-1] += len(chunk)
        finally:
            finished.set()

    finished = threading.Event()
    route.finished = finished  # type: ignore[attr-defined]
    return route


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
@pytest.mark.parametrize("lookup", ["ip", "parent", "domain"])
def test_an_oversized_answer_fails_before_it_is_read_whole(
    http: httpx.Client, base: Site, declared: bool, lookup: str
) -> None:
    sent: list[int] = []
    route = oversized(declared, sent)
    base.routes.update(
        {f"/ip/{ADDRESS}": route, "/ip/185.199.104.0/21": route, "/domain/example.com": route}
    )
    client = rdap_client(http, base)
    with pytest.raises(LookupFailed, match=f"larger than {MAX_BODY} bytes") as caught:
        if lookup == "ip":
            client.lookup(ADDRESS, None)
        elif lookup == "parent":
            client.lookup_parent("185.199.108.0/22", "NET-1", None)
        else:
            RegistrarClient(http, client.limiter, ttl=60, base=base_url(base)).lookup("example.com")
    assert (caught.value.kind, caught.value.permanent) == ("rdap_malformed", False)
    # The client hung up, so the server's next writes failed. What it wrote bounds what the
    # client read: with a declared length, not even the cap's worth (nothing is read); else
    # the cap and the few MiB socket buffers hold, never the whole answer.
    assert route.finished.wait(10)  # type: ignore[attr-defined]
    assert len(sent) == 1 and sent[0] < (MAX_BODY if declared else TOTAL // 4), sent
