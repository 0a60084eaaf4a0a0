"""Tracing against the simulated internet: real DNS and RDAP servers on this machine."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workflows.config.settings import load_settings
from workflows.core.urls import normalize_url
from workflows.sim import Latency, Network, SimInternet, World
from workflows.trace.asn import parse_as_name, parse_origin
from workflows.trace.dns import make_resolver
from workflows.trace.keyed import KeyedLocks
from workflows.trace.tracer import DNS_FAILURE_TTL, Trace, Tracer

HOTLINES = """\
[hotline.US]
name = "NCMEC CyberTipline"
email = "referrals@hotline.example"

[hotline.NL]
name = "Offlimits"
email = ""
"""


def make_world() -> World:
    return World(
        networks=[
            Network(
                "185.199.108.0/22",
                201234,
                "GBHOST-NET",
                "GB",
                org="GB Host Ltd",
                style="ripe",
                abuse=["abuse@gb-host.example"],
                fallback=["noc@gb-host.example"],
            ),
            Network(
                "23.94.0.0/15",
                36352,
                "US-HOST-NET",
                "US",
                registry="arin",
                style="arin",
                abuse=["abuse@us-host.example"],
                fallback=["tech@us-host.example"],
            ),
            Network("2a01:4f8::/32", 24940, "DE-HOST-V6", "DE", abuse=["abuse@de-host.example"]),
            Network(
                "91.200.12.0/22",
                49981,
                "NL-HOST",
                "NL",
                style="none",
                fallback=["tech@nl-host.example"],
            ),
            Network(
                "104.16.0.0/13",
                13335,
                "CLOUDFLARENET",
                "US",
                registry="arin",
                style="arin",
                abuse=["abuse@cf.example"],
            ),
            Network("94.130.0.0/16", 24941, "FR-HOST", "FR", abuse=["abuse@fr-host.example"]),
            Network("45.80.0.0/22", 60001, "UNREG-NET", "GB", rdap_fault="404"),
            Network(
                "45.90.0.0/22",
                60002,
                "BUSY-NET",
                "GB",
                abuse=["abuse@busy.example"],
                rdap_fault="429",
                rdap_fault_times=1,
                retry_after=1,
            ),
            Network("45.95.0.0/22", 60003, "ANGRY-NET", "GB", rdap_fault="429", retry_after=30),
            Network("45.100.0.0/22", 60004, "MUTE-NET", "DE", style="none"),
        ],
        records={
            "shop.gb-host.test": [("A", "185.199.108.10")],
            "img.gb-host.test": [("A", "185.199.109.20")],
            "www.chain.test": [("CNAME", "edge.chain-cdn.test")],
            "edge.chain-cdn.test": [("CNAME", "node7.gb-host.test")],
            "node7.gb-host.test": [("A", "185.199.108.77")],
            "hop.first.test": [("CNAME", "hop2.first.test")],
            "hop2.first.test": [("CNAME", "files.us-host.test")],
            "files.us-host.test": [("A", "23.94.5.10")],
            "v6only.de-host.test": [("AAAA", "2a01:4f8:1::10")],
            "dual.gb-host.test": [("A", "185.199.108.30"), ("AAAA", "2a01:4f8:1::30")],
            "img.nl-host.test": [("A", "91.200.12.7")],
            "cdn-site.test": [("A", "104.16.5.5")],
            "intranet.test": [("A", "10.0.0.5")],
            "mixed.test": [("A", "127.0.0.1"), ("A", "94.130.1.1")],
            "dangling.test": [("CNAME", "nowhere.test")],
            "mail-only.test": [("MX", "10 mx.gb-host.test")],
            "broken.test": [("A", "185.199.108.40")],
            "slow.test": [("A", "185.199.108.41")],
            "unreg.test": [("A", "45.80.1.1")],
            "busy.test": [("A", "45.90.1.1")],
            "angry.test": [("A", "45.95.1.1")],
            "mute.test": [("A", "45.100.1.1")],
            "loop-a.test": [("CNAME", "loop-b.test")],
            "loop-b.test": [("CNAME", "loop-a.test")],
            "ring-a.test": [("CNAME", "ring-b.test")],
            "ring-b.test": [("CNAME", "ring-a.test")],
        },
        dns_faults={"broken.test": "servfail", "slow.test": "timeout"},
        cname_first_hop_only={"hop.first.test", "hop2.first.test", "loop-a.test", "loop-b.test"},
    )


@pytest.fixture
def sim() -> Iterator[SimInternet]:
    with SimInternet(make_world()) as running:
        yield running


@pytest.fixture
def env(sim: SimInternet, tmp_path: Path) -> dict[str, str]:
    hotlines = tmp_path / "hotlines.toml"
    hotlines.write_text(HOTLINES, encoding="utf-8")
    return {
        **sim.env(),
        "TAKEDOWN_HOME": str(tmp_path / "home"),
        "TAKEDOWN_HOTLINES": str(hotlines),
        "TAKEDOWN_COUNTRY": "GB",
        "TAKEDOWN_DNS_TIMEOUT": "1s",
        "PATH": "/usr/bin:/bin",
    }


@pytest.fixture
def tracer(env: dict[str, str]) -> Iterator[Tracer]:
    built = Tracer.from_settings(load_settings(env))
    yield built
    built.close()


def trace(tracer: Tracer, url: str) -> Trace:
    return tracer.trace(normalize_url(url))


def test_gb_host_routes_to_host_notice_with_ripe_abuse(tracer: Tracer) -> None:
    result = trace(tracer, "http://shop.gb-host.test/a/b?c=1")
    assert result.addresses == ["185.199.108.10"]
    assert (result.route, result.country, result.abuse) == (
        "host_notice",
        "GB",
        ["abuse@gb-host.example"],
    )
    network = result.networks[0]
    assert (network.asn, network.cidr, network.name, network.registry) == (
        201234,
        "185.199.108.0/22",
        "GBHOST-NET",
        "ripencc",
    )
    assert network.as_name == "GBHOST-NET - GB Host Ltd, GB"


def test_full_cname_chain_is_reported(tracer: Tracer) -> None:
    result = trace(tracer, "http://www.chain.test/")
    assert result.cnames == ["edge.chain-cdn.test", "node7.gb-host.test"]
    assert result.addresses == ["185.199.108.77"]
    assert result.route == "host_notice"


def test_cname_chain_is_followed_when_the_server_gives_only_the_first_hop(
    tracer: Tracer, sim: SimInternet
) -> None:
    result = trace(tracer, "http://hop.first.test/")
    assert result.cnames == ["hop2.first.test", "files.us-host.test"]
    assert result.addresses == ["23.94.5.10"]
    asked = [q[0] for q in sim.dns.queries if q[1] == "A"]
    assert asked[:3] == ["hop.first.test", "hop2.first.test", "files.us-host.test"]


def test_arin_nested_abuse_and_partner_hotline_referral(tracer: Tracer) -> None:
    result = trace(tracer, "http://files.us-host.test/x.jpg")
    assert result.abuse == ["abuse@us-host.example"]
    assert result.route == "hotline_referral"
    assert result.hotline == {
        "country": "US",
        "email": "referrals@hotline.example",
        "name": "NCMEC CyberTipline",
    }


def test_ipv6_only_host(tracer: Tracer) -> None:
    result = trace(tracer, "https://v6only.de-host.test/")
    assert result.addresses == ["2a01:4f8:1::10"]
    assert result.networks[0].asn == 24940
    assert (result.country, result.route) == ("DE", "no_partner")


def test_dual_stack_prefers_our_own_country(tracer: Tracer) -> None:
    result = trace(tracer, "http://dual.gb-host.test/")
    assert result.addresses == ["185.199.108.30", "2a01:4f8:1::30"]
    assert [n.country for n in result.networks] == ["GB", "DE"]
    assert (result.country, result.route) == ("GB", "host_notice")


def test_partner_without_email_routes_as_no_partner_with_fallback_contacts(
    tracer: Tracer,
) -> None:
    result = trace(tracer, "http://img.nl-host.test/")
    assert (result.country, result.route) == ("NL", "no_partner")
    assert result.abuse == ["tech@nl-host.example"]
    assert result.abuse_fallback is True


def test_cdn_is_recognised_and_its_abuse_desk_named(tracer: Tracer) -> None:
    result = trace(tracer, "https://cdn-site.test/p")
    assert result.cdn == "Cloudflare"
    assert result.networks[0].cdn is not None
    assert result.abuse == result.networks[0].cdn["abuse"]
    assert "abuse@cf.example" not in result.abuse


def test_special_use_address_is_never_looked_up(tracer: Tracer, sim: SimInternet) -> None:
    result = trace(tracer, "http://intranet.test/")
    assert result.route is None
    assert result.networks[0].special_use == "private"
    assert "special-use" in (result.reason or "")
    assert sim.rdap.requests == []
    assert not [q for q in sim.dns.queries if "cymru" in q[0]]


def test_special_use_address_beside_a_public_one(tracer: Tracer, sim: SimInternet) -> None:
    result = trace(tracer, "http://mixed.test/")
    assert {n.ip: n.special_use for n in result.networks} == {
        "127.0.0.1": "loopback",
        "94.130.1.1": None,
    }
    assert (result.country, result.route) == ("FR", "no_partner")
    assert all("127.0.0.1" not in path for path in sim.rdap.requests)


@pytest.mark.parametrize(
    ("url", "kind", "permanent"),
    [
        pytest.param("http://gone.test/", "nxdomain", True, id="nxdomain"),
        pytest.param("http://dangling.test/", "nxdomain", True, id="cname-to-missing-target"),
        pytest.param("http://mail-only.test/", "no_address", True, id="no-address"),
        pytest.param("http://broken.test/", "servfail", False, id="servfail"),
        pytest.param("http://slow.test/", "timeout", False, id="timeout"),
        pytest.param("http://loop-a.test/", "cname_loop", True, id="cname-loop-we-follow"),
        # A loop inside one answer is what recursive resolvers turn into SERVFAIL.
        pytest.param("http://ring-a.test/", "servfail", False, id="cname-loop-in-answer"),
    ],
)
def test_dns_failures_are_told_apart(tracer: Tracer, url: str, kind: str, permanent: bool) -> None:
    result = trace(tracer, url)
    assert result.route is None
    assert result.error is not None
    assert (result.error["kind"], result.error["permanent"]) == (kind, permanent)
    assert result.reason == result.error["message"]


def test_dangling_cname_keeps_the_chain_seen(tracer: Tracer) -> None:
    assert trace(tracer, "http://dangling.test/").cnames == ["nowhere.test"]


def test_rdap_404_is_permanent(tracer: Tracer) -> None:
    result = trace(tracer, "http://unreg.test/")
    assert result.route is None
    assert result.error is not None and result.error["kind"] == "rdap_not_found"
    assert result.error["permanent"] is True
    assert result.networks[0].asn == 60001  # what was found is still shown


def test_rdap_429_with_short_retry_after_is_waited_out(tracer: Tracer, sim: SimInternet) -> None:
    result = trace(tracer, "http://busy.test/")
    assert result.route == "host_notice"
    assert result.abuse == ["abuse@busy.example"]
    assert len([p for p in sim.rdap.requests if p.startswith("/ip/45.90.")]) == 2


def test_rdap_429_with_long_retry_after_is_transient(tracer: Tracer) -> None:
    result = trace(tracer, "http://angry.test/")
    assert result.route is None
    assert result.error is not None
    assert (result.error["kind"], result.error["permanent"]) == ("rdap_rate_limited", False)
    assert result.error["retry_after"] == 30


def test_no_abuse_contact_at_all_needs_an_analyst(tracer: Tracer) -> None:
    result = trace(tracer, "http://mute.test/")
    assert result.route is None
    assert result.reason == "no abuse contact for MUTE-NET: needs an analyst"


def test_second_url_in_the_same_network_is_served_from_the_cache(
    tracer: Tracer, sim: SimInternet
) -> None:
    first = trace(tracer, "http://shop.gb-host.test/1")
    second = trace(tracer, "http://img.gb-host.test/2")
    assert not first.networks[0].cached
    assert second.networks[0].cached
    assert second.abuse == first.abuse
    assert [p for p in sim.rdap.requests if p.startswith("/ip/")] == ["/ip/185.199.108.10"]


def test_ip_literal_url_skips_dns(tracer: Tracer, sim: SimInternet) -> None:
    result = trace(tracer, "http://[2a01:4f8:1::10]:8080/x")
    assert result.addresses == ["2a01:4f8:1::10"]
    assert result.route == "no_partner"
    assert all("cymru" in q[0] for q in sim.dns.queries)


# -- the command line, through the installed `takedown` entry point ---------------------


def run(command: list[str], env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


CONTRACT_FIELDS = {"url", "host", "cnames", "addresses", "networks", "country", "abuse", "route"}
NETWORK_FIELDS = {"ip", "asn", "cidr", "name", "country", "abuse"}


def test_cli_trace_json_has_the_contract_fields(
    takedown_command: list[str], env: dict[str, str]
) -> None:
    done = run(takedown_command, env, "trace", "--json", "HTTP://WWW.Chain.TEST:80/a?b#frag")
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    assert data.keys() >= CONTRACT_FIELDS
    assert data["networks"][0].keys() >= NETWORK_FIELDS
    assert data["url"] == "http://www.chain.test/a?b"
    assert data["host"] == "www.chain.test"
    assert data["cnames"] == ["edge.chain-cdn.test", "node7.gb-host.test"]
    assert data["networks"][0]["asn"] == 201234
    assert (data["country"], data["abuse"], data["route"]) == (
        "GB",
        ["abuse@gb-host.example"],
        "host_notice",
    )
    assert data["traced_at"].endswith("Z")


def test_cli_trace_prints_a_readable_summary(
    takedown_command: list[str], env: dict[str, str]
) -> None:
    done = run(takedown_command, env, "trace", "http://files.us-host.test/x")
    assert done.returncode == 0, done.stderr
    assert "Route     hotline_referral" in done.stdout
    assert "NCMEC CyberTipline <referrals@hotline.example>" in done.stdout
    assert "AS36352" in done.stdout


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        pytest.param("http://gone.test/", "gone.test does not exist (NXDOMAIN)", id="nxdomain"),
        pytest.param("http://slow.test/", "DNS timeout resolving slow.test", id="timeout"),
        pytest.param("http://intranet.test/", "special-use address only", id="special-use"),
    ],
)
def test_cli_trace_that_finds_no_route_exits_1_with_the_reason(
    takedown_command: list[str], env: dict[str, str], url: str, reason: str
) -> None:
    done = run(takedown_command, env, "trace", url)
    assert done.returncode == 1
    assert "Route     none" in done.stdout
    assert reason in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["ftp://x.test/"], "scheme", id="scheme"),
        pytest.param(["http:///nohost"], "no host", id="no-host"),
        pytest.param(["http://a.test/\r\nBcc: x@y.test"], "U+000D", id="crlf"),
        pytest.param(["http://a b.test/"], "U+0020", id="space"),
        pytest.param(["http://" + "a" * 64 + ".test/"], "63", id="long-label"),
        pytest.param([], "the following arguments are required: url", id="missing-url"),
        pytest.param(["http://a.test/", "--bogus"], "unrecognized arguments", id="bad-flag"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line_and_writes_nothing(
    takedown_command: list[str], env: dict[str, str], args: list[str], message: str
) -> None:
    done = run(takedown_command, env, "trace", *args)
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert message in done.stderr
    assert not Path(env["TAKEDOWN_HOME"]).exists()


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        pytest.param("TAKEDOWN_DNS_SERVERS", "resolver.example", "TAKEDOWN_DNS_SERVERS", id="dns"),
        pytest.param("TAKEDOWN_COUNTRY", "Britain", "TAKEDOWN_COUNTRY", id="country"),
    ],
)
def test_cli_bad_configuration_exits_2(
    takedown_command: list[str], env: dict[str, str], variable: str, value: str, message: str
) -> None:
    done = run(takedown_command, {**env, variable: value}, "trace", "http://shop.gb-host.test/")
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert message in done.stderr


def test_cli_bad_hotline_file_names_the_line(
    takedown_command: list[str], env: dict[str, str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[hotline.US]\nname = "x"\nemail = "no-at-sign"\n', encoding="utf-8")
    done = run(
        takedown_command,
        {**env, "TAKEDOWN_HOTLINES": str(bad)},
        "trace",
        "http://shop.gb-host.test/",
    )
    assert done.returncode == 2
    assert "bad.toml:3" in done.stderr


def test_an_upstream_lookup_never_answers_for_an_address_lookup(
    tracer: Tracer, sim: SimInternet
) -> None:
    sim.world.add_network(
        cidr="185.199.0.0/16",
        asn=205000,
        name="UPSTREAM-NET",
        country="GB",
        abuse=["abuse@upstream.example"],
    )
    first = trace(tracer, "http://shop.gb-host.test/1")
    assert tracer.upstream_contacts(first.as_dict()) == ["abuse@upstream.example"]
    tracer.rdap.cache = type(tracer.rdap.cache)(60)  # a fresh process: nothing cached
    tracer.upstream_contacts(first.as_dict())  # the upstream is known before the host
    again = trace(tracer, "http://shop.gb-host.test/1")
    assert (again.networks[0].name, again.abuse) == ("GBHOST-NET", ["abuse@gb-host.example"])


def test_a_network_without_an_upstream_is_not_asked_about_on_every_escalation(
    tracer: Tracer, sim: SimInternet
) -> None:
    first = trace(tracer, "http://shop.gb-host.test/1")
    before = tracer.rdap.queries
    assert tracer.upstream_contacts(first.as_dict()) == []  # RDAP knows no parent: 404
    asked = tracer.rdap.queries - before
    assert asked >= 1
    for _ in range(5):  # five escalations later: the miss is remembered
        assert tracer.upstream_contacts(first.as_dict()) == []
    assert tracer.rdap.queries - before == asked


# -- faults at scale: what one failure must not cost the others -------------------------


@pytest.mark.parametrize(
    ("style", "abuse", "fallback"),
    [
        pytest.param("ripe", ["abuse@loop.example"], False, id="ripe"),
        pytest.param("arin", ["abuse@loop.example"], False, id="arin-nested"),
        pytest.param("none", ["noc@loop.example"], True, id="no-abuse-role-falls-back"),
    ],
)
def test_entity_loop_served_past_the_json_decoder_limit_still_routes(
    tracer: Tracer, sim: SimInternet, style: str, abuse: list[str], fallback: bool
) -> None:
    sim.world.add_network(
        cidr="185.199.120.0/22",
        asn=64900,
        name="LOOP-NET",
        country="GB",
        style=style,
        abuse=["abuse@loop.example"] if style != "none" else [],
        fallback=["noc@loop.example"],
        rdap_fault="entity_loop",
    )
    sim.world.set_records("loop.test", [("A", "185.199.120.9")])
    result = trace(tracer, "http://loop.test/")
    assert sim.rdap.faults_served["entity_loop"] == 1
    assert (result.route, result.abuse, result.abuse_fallback) == ("host_notice", abuse, fallback)


def test_a_long_retry_after_fails_the_registry_fast_instead_of_sleeping(
    tracer: Tracer, sim: SimInternet
) -> None:
    angry = trace(tracer, "http://angry.test/")  # 429, Retry-After: 30 on a RIPE network
    assert angry.error is not None and angry.error["kind"] == "rdap_rate_limited"
    asked = len(sim.rdap.requests)
    other = trace(tracer, "http://shop.gb-host.test/")  # same registry, not yet cached
    assert other.error is not None and other.error["kind"] == "rdap_rate_limited"
    assert 25 < other.error["retry_after"] <= 30
    assert len(sim.rdap.requests) == asked  # the server was not asked while it said wait


def test_a_transient_dns_failure_is_remembered_briefly(tracer: Tracer, sim: SimInternet) -> None:
    now = [100.0]
    tracer.monotonic = lambda: now[0]
    first = trace(tracer, "http://slow.test/a")
    asked = sim.dns.count_answers("slow.test")
    assert asked["silent"] == 2  # A and AAAA, each a full resolver timeout
    second = trace(tracer, "http://slow.test/b")  # the next URL of the host's batch
    assert sim.dns.count_answers("slow.test") == asked
    assert first.error == second.error and second.error is not None
    assert second.error["kind"] == "timeout" and second.error["permanent"] is False
    sim.world.set_dns_fault("slow.test", None)
    now[0] += DNS_FAILURE_TTL  # RFC 9520: at least 1 s, and gone in seconds here
    assert trace(tracer, "http://slow.test/c").route == "host_notice"


def test_a_permanent_dns_failure_is_not_remembered_by_the_tracer(
    tracer: Tracer, sim: SimInternet
) -> None:
    assert trace(tracer, "http://gone.test/").error is not None
    sim.world.set_records("gone.test", [("A", "185.199.108.50")])
    tracer.resolver.cache.flush()  # the resolver's own negative cache (RFC 2308) aside
    assert trace(tracer, "http://gone.test/").route == "host_notice"


def test_a_truncated_udp_answer_is_asked_again_over_tcp(tracer: Tracer, sim: SimInternet) -> None:
    sim.world.set_dns_fault("shop.gb-host.test", "truncate")
    result = trace(tracer, "http://shop.gb-host.test/")
    assert result.addresses == ["185.199.108.10"] and result.route == "host_notice"
    assert sim.dns.count_answers("shop.gb-host.test", "udp") == {"truncated": 2}
    assert sim.dns.count_answers("shop.gb-host.test", "tcp") == {"noerror": 2}


@pytest.mark.parametrize(
    ("text", "asns"),
    [
        pytest.param(
            "20738 20773 | 185.199.108.0/22 | GB | ripencc | 2014-03-28",
            (20738, 20773),
            id="multi-origin",
        ),
        pytest.param("²³ | 185.199.108.0/22 | GB | ripencc | 2014-03-28", None, id="not-ascii"),
        pytest.param("AS | x | GB", None, id="too-few-fields"),
    ],
)
def test_cymru_origin_parsing(text: str, asns: tuple[int, ...] | None) -> None:
    origin = parse_origin(text)
    assert (origin.asns if origin else None) == asns


@given(st.text(alphabet=st.sampled_from('0123456789²| .abGB\n"\r'), max_size=60) | st.text())
def test_any_cymru_txt_is_an_origin_or_none(text: str) -> None:
    origin = parse_origin(text)  # never raises: a TXT answer is untrusted text
    assert origin is None or (origin.asns != () and origin.asn == origin.asns[0])
    parse_as_name(text)


def test_threads_asking_one_name_at_once_send_one_query(sim: SimInternet) -> None:
    sim.world.latency = Latency(dns=0.2)  # long enough for all eight to ask while it waits
    resolver = make_resolver([("127.0.0.1", sim.dns.port)], timeout=5.0)
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: resolver.resolve("shop.gb-host.test", "A"), range(8)))
    assert len({a.rrset.to_text() for a in answers}) == 1  # all eight have the answer…
    assert [q[:2] for q in sim.dns.queries] == [("shop.gb-host.test", "A")]  # …asked once
    resolver.resolve("shop.gb-host.test", "AAAA", raise_on_no_answer=False)
    assert len(sim.dns.queries) == 2  # another type is another question


def test_keyed_locks_hold_one_key_at_a_time_and_leave_nothing_behind() -> None:
    locks, inside, most = KeyedLocks(), Counter[str](), Counter[str]()
    guard = threading.Lock()

    def use(key: str) -> None:
        with locks.hold(key):
            with guard:
                inside[key] += 1
                most[key] = max(most[key], inside[key])
            time.sleep(0.01)
            with guard:
                inside[key] -= 1

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(use, ["a", "b"] * 8))
    assert most == {"a": 1, "b": 1}  # never two holders of one key
    assert len(locks) == 0  # no key kept once nobody holds or waits for it
