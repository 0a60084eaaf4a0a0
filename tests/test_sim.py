"""The simulated internet: real DNS and RDAP traffic to servers on 127.0.0.1, and netns."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver
import dns.reversename
import httpx
import pytest

from workflows.sim import Desk, DeskRunner, Network, SimInternet, World, picture, sample_world
from workflows.sim.content import soft_404
from workflows.sim.smtp import SMTPServer
from workflows.sim.world import prefix_handle

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def sim() -> Iterator[SimInternet]:
    """Run the sample world on free 127.0.0.1 ports."""
    with SimInternet(sample_world()) as running:
        yield running


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    """Return an HTTP client that ignores proxy settings from the environment."""
    with httpx.Client(trust_env=False, timeout=2) as client:
        yield client


def ask(sim: SimInternet, name: str, rdtype: str = "A", tcp: bool = False) -> dns.message.Message:
    """Send one query straight to the simulated server."""
    query = dns.message.make_query(name, rdtype)
    send = dns.query.tcp if tcp else dns.query.udp
    return send(query, "127.0.0.1", port=sim.dns.port, timeout=2)


def resolver(sim: SimInternet, lifetime: float = 2.0) -> dns.resolver.Resolver:
    """Return a resolver that only knows the simulated server."""
    res = dns.resolver.Resolver(configure=False)
    res.nameservers = ["127.0.0.1"]
    res.port = sim.dns.port
    res.timeout = res.lifetime = lifetime
    res.cache = None
    return res


def texts(msg: dns.message.Message) -> list[str]:
    """Return the answer section as text lines."""
    return [line for rrset in msg.answer for line in rrset.to_text().splitlines()]


def rdap(sim: SimInternet, http: httpx.Client, path: str) -> httpx.Response:
    """GET a path from the simulated RDAP server."""
    return http.get(sim.rdap_base + path)


# -- DNS --------------------------------------------------------------------------------------


def test_a_and_aaaa_through_a_resolver(sim: SimInternet) -> None:
    res = resolver(sim)
    assert [r.to_text() for r in res.resolve("uploads.examplehost-uk.test", "A")] == [
        "185.199.108.10"
    ]
    assert [r.to_text() for r in res.resolve("uploads.examplehost-uk.test", "AAAA")] == [
        "2a05:d018::10"
    ]
    assert sorted(r.to_text() for r in res.resolve("static.cdn-fronted.test", "A")) == [
        "104.16.132.229",
        "104.16.133.229",
    ]


def test_mx_ns_txt(sim: SimInternet) -> None:
    assert texts(ask(sim, "examplehost-uk.test", "MX"))[0].endswith(
        "MX 10 mail.examplehost-uk.test."
    )
    assert texts(ask(sim, "examplehost-uk.test", "NS"))[0].endswith("NS ns1.examplehost-uk.test.")
    assert texts(ask(sim, "examplehost-uk.test", "TXT"))[0].endswith('TXT "v=spf1 mx -all"')


def test_full_cname_chain_is_in_the_answer(sim: SimInternet) -> None:
    msg = ask(sim, "go.tinylnk.test")
    assert [rrset.rdtype for rrset in msg.answer] == [
        dns.rdatatype.CNAME,
        dns.rdatatype.CNAME,
        dns.rdatatype.A,
    ]
    answer = resolver(sim).resolve("go.tinylnk.test", "A")
    assert answer.canonical_name.to_text() == "uploads.examplehost-uk.test."
    assert [r.to_text() for r in answer] == ["185.199.108.10"]


def test_first_hop_only_cname(sim: SimInternet) -> None:
    msg = ask(sim, "assets.berghost-de.test")
    assert msg.rcode() == dns.rcode.NOERROR
    assert texts(msg) == ["assets.berghost-de.test. 1 IN CNAME share.berghost-de.test."]


def test_nxdomain_and_nodata(sim: SimInternet) -> None:
    msg = ask(sim, "nothing-here.examplehost-uk.test")
    assert msg.rcode() == dns.rcode.NXDOMAIN
    assert msg.authority[0].rdtype == dns.rdatatype.SOA
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver(sim).resolve("nothing-here.examplehost-uk.test", "A")
    nodata = ask(sim, "v6only.berghost-de.test", "A")
    assert (nodata.rcode(), nodata.answer) == (dns.rcode.NOERROR, [])
    with pytest.raises(dns.resolver.NoAnswer):
        resolver(sim).resolve("v6only.berghost-de.test", "A")


def test_cname_to_missing_target_and_loop(sim: SimInternet) -> None:
    dangling = ask(sim, "old.badlinks.test")
    assert dangling.rcode() == dns.rcode.NXDOMAIN
    assert texts(dangling) == ["old.badlinks.test. 1 IN CNAME gone.nowhere-sim.test."]
    loop = ask(sim, "loop-a.badlinks.test")
    assert loop.rcode() == dns.rcode.NOERROR
    assert {rrset.rdtype for rrset in loop.answer} == {dns.rdatatype.CNAME}


def test_cname_chain_is_cut_after_16_hops(sim: SimInternet) -> None:
    for hop in range(20):
        sim.world.set_records(f"c{hop}.chain.example", [("CNAME", f"c{hop + 1}.chain.example")])
    sim.world.set_records("c20.chain.example", [("A", "185.199.108.10")])
    msg = ask(sim, "c4.chain.example")  # exactly 16 hops: the A record still arrives
    assert [rrset.rdtype for rrset in msg.answer][-1] == dns.rdatatype.A
    msg = ask(sim, "c0.chain.example")
    assert [rrset.name.to_text() for rrset in msg.answer][-1] == "c15.chain.example."
    assert len(msg.answer) == 16


@pytest.mark.parametrize(
    ("name", "txt"),
    [
        ("10.108.199.185.origin.asn.cymru.com", "205012 | 185.199.108.0/22 | GB | ripencc"),
        ("229.132.16.104.origin.asn.cymru.com", "13335 | 104.16.0.0/13 | US | arin"),
        # 2a05:d018::10 with every nibble, and 2a01:4f8:: with the trailing zeros dropped
        (
            dns.reversename.from_address("2a05:d018::10")
            .to_text()
            .replace("ip6.arpa.", "origin6.asn.cymru.com"),
            "205012 | 2a05:d018::/32 | GB | ripencc",
        ),
        ("8.f.4.0.1.0.a.2.origin6.asn.cymru.com", "207001 | 2a01:4f8::/32 | DE | ripencc"),
        ("AS13335.asn.cymru.com", "13335 | US | arin | 2014-03-28 | CLOUDEDGE-NET - CloudEdge"),
    ],
)
def test_cymru_txt(sim: SimInternet, name: str, txt: str) -> None:
    answer = resolver(sim).resolve(name, "TXT")
    assert b"".join(answer[0].strings).decode().startswith(txt)


@pytest.mark.parametrize(
    "name",
    [
        "7.150.54.177.origin.asn.cymru.com",  # the network exists but is not announced
        "4.3.2.1.origin.asn.cymru.com",  # no network at all
        "AS262999.asn.cymru.com",  # only unannounced prefixes
        "AS64511.asn.cymru.com",
    ],
)
def test_cymru_nxdomain(sim: SimInternet, name: str) -> None:
    assert ask(sim, name, "TXT").rcode() == dns.rcode.NXDOMAIN


def test_servfail_and_refused_also_on_the_chain(sim: SimInternet) -> None:
    assert ask(sim, "flaky.badlinks.test").rcode() == dns.rcode.SERVFAIL
    with pytest.raises(dns.resolver.NoNameservers):
        resolver(sim).resolve("flaky.badlinks.test", "A")
    sim.world.set_dns_fault("edge.tinylnk.test", "refused")
    assert ask(sim, "go.tinylnk.test").rcode() == dns.rcode.REFUSED


def test_timeout(sim: SimInternet) -> None:
    with pytest.raises(dns.exception.Timeout):
        dns.query.udp(dns.message.make_query("slow.badlinks.test", "A"), "127.0.0.1",
                      port=sim.dns.port, timeout=0.3)  # fmt: skip
    with pytest.raises(dns.exception.Timeout):
        resolver(sim, lifetime=0.4).resolve("slow.badlinks.test", "A")


def test_truncate_forces_tcp(sim: SimInternet) -> None:
    udp = ask(sim, "bigzone.examplehost-uk.test")
    assert udp.flags & dns.flags.TC and not udp.answer
    assert len(ask(sim, "bigzone.examplehost-uk.test", tcp=True).answer[0]) == 40
    sim.dns.clear_log()
    assert len(resolver(sim).resolve("bigzone.examplehost-uk.test", "A")) == 40
    assert [q[2] for q in sim.dns.queries] == ["udp", "tcp"]


def test_world_changes_apply_live(sim: SimInternet) -> None:
    sim.world.set_records("uploads.examplehost-uk.test", [("A", "127.0.0.1")])
    assert texts(ask(sim, "uploads.examplehost-uk.test"))[0].endswith("A 127.0.0.1")
    sim.world.remove("uploads.examplehost-uk.test")
    assert ask(sim, "go.tinylnk.test").rcode() == dns.rcode.NXDOMAIN
    sim.world.set_dns_fault("flaky.badlinks.test", None)
    assert ask(sim, "flaky.badlinks.test").rcode() == dns.rcode.NOERROR
    sim.world.set_first_hop_only("go.tinylnk.test")
    assert len(ask(sim, "go.tinylnk.test").answer) == 1


def test_query_log(sim: SimInternet) -> None:
    ask(sim, "Share.Berghost-DE.Test.", "AAAA")
    ask(sim, "share.berghost-de.test", tcp=True)
    assert sim.dns.queries == [
        ("share.berghost-de.test", "AAAA", "udp"),
        ("share.berghost-de.test", "A", "tcp"),
    ]
    sim.dns.clear_log()
    assert sim.dns.queries == []


def test_garbage_is_ignored_and_tcp_keeps_the_connection(sim: SimInternet) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"\x00\x01garbage", ("127.0.0.1", sim.dns.port))
    with socket.create_connection(("127.0.0.1", sim.dns.port), timeout=2) as conn:
        conn.sendall(b"\x00\x03abc")  # malformed: dropped, connection stays usable
        for name in ("share.berghost-de.test", "dump.poldernet-nl.test"):
            dns.query.send_tcp(conn, dns.message.make_query(name, "A"))
            reply, _ = dns.query.receive_tcp(conn)
            assert reply.answer[0].name.to_text() == name + "."
    assert ask(sim, "share.berghost-de.test").answer


# -- RDAP -------------------------------------------------------------------------------------


def _roles(entities: list[dict[str, Any]]) -> list[list[str]]:
    return [e["roles"] for e in entities]


def _emails(entity: dict[str, Any]) -> list[str]:
    return [p[3] for p in entity["vcardArray"][1] if p[0] == "email"]


def test_rdap_ripe_style(sim: SimInternet, http: httpx.Client) -> None:
    reply = rdap(sim, http, "/ip/185.199.108.10")
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/rdap+json"
    body = reply.json()
    assert body["objectClassName"] == "ip network"
    assert (body["handle"], body["startAddress"], body["endAddress"]) == (
        "NET-185-199-108-0-1", "185.199.108.0", "185.199.111.255"
    )  # fmt: skip
    assert (body["ipVersion"], body["country"], body["name"]) == ("v4", "GB", "EXAMPLEHOST-NET")
    assert body["cidr0_cidrs"] == [{"v4prefix": "185.199.108.0", "length": 22}]
    assert _roles(body["entities"]) == [["registrant"], ["administrative", "technical"], ["abuse"]]
    assert _emails(body["entities"][2]) == ["abuse@examplehost.example"]
    assert _emails(body["entities"][1]) == ["noc@examplehost.example"]
    for entity in body["entities"]:
        assert entity["objectClassName"] == "entity" and entity["handle"]
        card = entity["vcardArray"]
        assert card[0] == "vcard" and card[1][0] == ["version", {}, "text", "4.0"]
        assert all(len(p) == 4 and isinstance(p[1], dict) for p in card[1])


def test_rdap_arin_style_nests_abuse(sim: SimInternet, http: httpx.Client) -> None:
    body = rdap(sim, http, "/ip/66.175.208.20").json()
    assert _roles(body["entities"]) == [["registrant"]]
    nested = body["entities"][0]["entities"]
    assert _roles(nested) == [["abuse"], ["technical"]]
    assert _emails(nested[0]) == ["abuse@pixelforge.example"]


def test_rdap_none_style_has_no_abuse_role(sim: SimInternet, http: httpx.Client) -> None:
    body = rdap(sim, http, "/ip/94.142.241.50").json()
    assert _roles(body["entities"]) == [["registrant"], ["administrative", "technical"]]
    assert _emails(body["entities"][1]) == ["noc@poldernet.example", "beheer@poldernet.example"]


def test_rdap_ipv6_and_prefix_query(sim: SimInternet, http: httpx.Client) -> None:
    body = rdap(sim, http, "/ip/2a01:4f8:1c1c::99").json()
    assert (body["ipVersion"], body["handle"]) == ("v6", "NET6-2A01-4F8-1")
    assert body["cidr0_cidrs"] == [{"v6prefix": "2a01:4f8::", "length": 32}]
    assert rdap(sim, http, "/ip/92.243.5.0/24").json()["name"] == "NUAGE-NET"
    assert rdap(sim, http, "/ip/92.0.0.0/8").status_code == 404


def test_rdap_unknown_and_unannounced(sim: SimInternet, http: httpx.Client) -> None:
    reply = rdap(sim, http, "/ip/1.2.3.4")
    assert reply.status_code == 404
    assert reply.json()["errorCode"] == 404 and reply.json()["title"]
    assert rdap(sim, http, "/ip/177.54.150.7").json()["country"] == "BR"


def test_rdap_429_then_success(sim: SimInternet, http: httpx.Client) -> None:
    first = rdap(sim, http, "/ip/103.86.97.7")
    assert first.status_code == 429 and first.headers["retry-after"] == "1"
    assert rdap(sim, http, "/ip/103.86.97.7").status_code == 200
    sim.world.set_rdap_fault("185.199.108.0/22", "429", times=2)
    codes = [rdap(sim, http, "/ip/185.199.108.10").status_code for _ in range(3)]
    assert codes == [429, 429, 200]
    assert sim.rdap.count("/ip/185.199.108.10") == 3


@pytest.mark.parametrize("fault", ["404", "500"])
def test_rdap_error_faults(sim: SimInternet, http: httpx.Client, fault: str) -> None:
    sim.world.set_rdap_fault("66.175.208.0/20", fault)
    reply = rdap(sim, http, "/ip/66.175.208.20")
    assert reply.status_code == int(fault) and reply.json()["errorCode"] == int(fault)


def test_rdap_malformed(sim: SimInternet, http: httpx.Client) -> None:
    sim.world.set_rdap_fault("66.175.208.0/20", "malformed", times=1)
    reply = rdap(sim, http, "/ip/66.175.208.20")
    assert reply.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(reply.text)
    assert rdap(sim, http, "/ip/66.175.208.20").json()["name"] == "PIXELFORGE-NET"


def test_rdap_entity_and_autnum(sim: SimInternet, http: httpx.Client) -> None:
    abuse = rdap(sim, http, "/entity/ABUSE-PIXELFORGE-NET").json()
    assert abuse["roles"] == ["abuse"] and _emails(abuse) == ["abuse@pixelforge.example"]
    assert rdap(sim, http, "/entity/NOPE-1").status_code == 404
    autnum = rdap(sim, http, "/autnum/13335").json()
    assert (autnum["objectClassName"], autnum["startAutnum"]) == ("autnum", 13335)


@pytest.mark.parametrize("path", ["/", "/nameserver/ns1.example.com", "/ip/not-an-ip", "/autnum/x"])
def test_rdap_bad_paths(sim: SimInternet, http: httpx.Client, path: str) -> None:
    reply = rdap(sim, http, path)
    assert reply.status_code == 400 and reply.json()["errorCode"] == 400
    assert sim.rdap.requests == [path]
    sim.rdap.clear_log()
    assert sim.rdap.requests == []


# -- world and packaging ----------------------------------------------------------------------


def test_network_for_longest_prefix() -> None:
    world = sample_world()
    world.add_network(cidr="185.199.109.0/24", asn=64501, name="CUSTOMER-NET", country="GB")
    assert world.network_for("185.199.109.5").name == "CUSTOMER-NET"  # type: ignore[union-attr]
    assert world.network_for("185.199.108.5").name == "EXAMPLEHOST-NET"  # type: ignore[union-attr]
    assert world.network_for("2a05:d018::1").name == "EXAMPLEHOST-NET6"  # type: ignore[union-attr]
    assert world.network_for("8.8.4.4") is None
    assert prefix_handle(world.network_for("2a05:d018::1").prefix) == "NET6-2A05-D018-1"  # type: ignore[union-attr]


def test_declarations_are_validated() -> None:
    with pytest.raises(ValueError):
        Network("185.199.108.0/22", 1, "X", "GB", style="apnic")
    with pytest.raises(ValueError):
        World(records={"a.example": [("SRV", "x")]})
    with pytest.raises(ValueError):
        sample_world().set_dns_fault("a.example", "slow")


def test_sim_internet_env(sim: SimInternet) -> None:
    assert sim.env() == {
        "TAKEDOWN_DNS_SERVERS": f"127.0.0.1:{sim.dns.port}",
        "TAKEDOWN_RDAP_BASE": f"http://127.0.0.1:{sim.rdap.port}",
    }
    assert sim.dns_servers == sim.dns.address and sim.rdap_base == sim.rdap.base_url


def test_main_serves_until_interrupted() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "workflows.sim", "serve"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        env = dict(proc.stdout.readline().strip().split("=", 1) for _ in range(2))
        port = int(env["TAKEDOWN_DNS_SERVERS"].rsplit(":", 1)[1])
        query = dns.message.make_query("share.berghost-de.test", "A")
        assert dns.query.udp(query, "127.0.0.1", port=port, timeout=2).answer
        assert env["TAKEDOWN_RDAP_BASE"].startswith("http://127.0.0.1:")
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=5) == 0
        if proc.stdout is not None:
            proc.stdout.close()


# -- abuse desks that put content back ------------------------------------------------------

DESK = "abuse@examplehost.example"
PICTURE = "http://uploads.examplehost-uk.test/img/9.jpg"


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        """Start at zero."""
        self.now = 0.0

    def __call__(self) -> float:
        """Return the current time."""
        return self.now


@pytest.fixture
def smtp() -> Iterator[SMTPServer]:
    """Run an SMTP server on 127.0.0.1."""
    with SMTPServer() as server:
        yield server


def send_notice(smtp: SMTPServer, url: str, msgid: str) -> None:
    """Deliver a plain-text notice naming url to the desk through a real SMTP conversation."""
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "notices@hotline.test", DESK, "Notice"
    message["Message-ID"] = msgid
    message.set_content(f"Please remove {url}\n")
    with smtplib.SMTP("127.0.0.1", smtp.port, timeout=5) as client:
        client.send_message(message)


def state(world: World, url: str) -> tuple[str, int]:
    """Return the state and variant of the site at url."""
    site = world.content(url)
    assert site is not None
    return site.state, site.variant


def test_reupload_desk_removes_then_puts_the_picture_back_re_encoded(smtp: SMTPServer) -> None:
    world = World()
    world.put_content(PICTURE, kind="picture", seed=3)
    clock = FakeClock()
    desk = Desk(DESK, "reupload", world, delay=1, reupload_after=10)
    runner = DeskRunner(world, smtp, [desk], clock=clock)
    send_notice(smtp, PICTURE, "<n1@hotline.test>")
    runner.poll()
    clock.now = 1.0
    runner.poll()
    assert state(world, PICTURE) == ("404", 0)
    clock.now = 10.5
    runner.poll()
    assert state(world, PICTURE) == ("404", 0)  # ten seconds after the removal, not the notice
    clock.now = 11.0
    runner.poll()
    assert state(world, PICTURE) == ("present", 1)
    assert world.content(PICTURE).body() == picture(3, 1) != picture(3)  # type: ignore[union-attr]
    assert [entry[2:] for entry in runner.entries()] == [
        ("received", PICTURE),
        ("removed", PICTURE),
        ("reuploaded", PICTURE),
    ]
    assert [entry[0] for entry in runner.entries()] == [0.0, 1.0, 11.0]
    # The next notice has it removed again, and this time it stays down.
    send_notice(smtp, PICTURE, "<n2@hotline.test>")
    runner.poll()
    clock.now = 12.0
    runner.poll()
    clock.now = 1e6
    runner.poll()
    assert state(world, PICTURE) == ("404", 1)
    assert len(runner.entries("removed")) == 2 and len(runner.entries("reuploaded")) == 1


def test_reupload_desk_with_a_soft_404_and_the_default_wait(smtp: SMTPServer) -> None:
    world = World()
    world.put_content(PICTURE, kind="picture", seed=3)
    clock = FakeClock()
    runner = DeskRunner(
        world, smtp, [Desk(DESK, "reupload", world, removal="soft404")], clock=clock
    )
    send_notice(smtp, PICTURE, "<n1@hotline.test>")
    runner.poll()
    site = world.content(PICTURE)
    assert site is not None and site.state == "soft404"
    assert site.body() == soft_404("uploads.examplehost-uk.test")
    assert world.content_type(PICTURE) == "text/html; charset=utf-8"
    clock.now = 1.9
    runner.poll()
    assert state(world, PICTURE) == ("soft404", 0)
    clock.now = 2.0  # reupload_after defaults to two seconds
    runner.poll()
    assert state(world, PICTURE) == ("present", 1)
    assert world.content_type(PICTURE) == "image/jpeg"


def test_prompt_desk_can_leave_a_soft_404(smtp: SMTPServer) -> None:
    world = World()
    world.put_content(PICTURE, kind="picture")
    runner = DeskRunner(
        world, smtp, [Desk(DESK, "prompt", world, removal="soft404")], clock=FakeClock()
    )
    send_notice(smtp, PICTURE, "<n1@hotline.test>")
    runner.poll()
    assert state(world, PICTURE) == ("soft404", 0)
    assert runner.entries("reuploaded") == []


def test_reupload_desk_declarations_are_validated() -> None:
    world = World()
    with pytest.raises(ValueError, match="nxdomain"):
        Desk(DESK, "reupload", world, removal="nxdomain")
    with pytest.raises(ValueError, match="reupload_after"):
        Desk(DESK, "reupload", world, reupload_after=-1)


# -- network namespace ------------------------------------------------------------------------


def _may_create_netns() -> bool:
    """Tell whether this process could unshare a network namespace (root with CAP_SYS_ADMIN)."""
    if os.geteuid() != 0:
        return False
    status = Path("/proc/self/status").read_text()
    cap_eff = next(line.split()[1] for line in status.splitlines() if line.startswith("CapEff"))
    return bool(int(cap_eff, 16) & (1 << 21))


ISOLATION_SCRIPT = """
import errno, http.client, socket, sys
from workflows.sim import DNSServer, RDAPServer, netns, sample_world
if not netns.isolate_network(["185.199.108.10", "2a05:d018::10"]):
    assert not netns.is_isolated()
    print("not isolated")
    sys.exit(0)
assert netns.is_isolated()
for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.settimeout(1)
            sock.connect(("192.0.2.1", 53))
            sock.send(b"x")
        except OSError as err:
            assert err.errno == errno.ENETUNREACH, err
        else:
            sys.exit("192.0.2.1 was reachable")
try:
    socket.create_connection(("192.0.2.1", 53), timeout=1).close()
except OSError as err:
    assert err.errno == errno.ENETUNREACH, err
else:
    sys.exit("192.0.2.1 was reachable")
import dns.message, dns.query
world = sample_world()
with DNSServer(world, "185.199.108.10", 53), RDAPServer(world, "2a05:d018::10", 80):
    query = dns.message.make_query("share.berghost-de.test", "A")
    reply = dns.query.udp(query, "185.199.108.10", port=53, timeout=2)
    assert reply.answer[0][0].to_text() == "91.218.2.30", reply
    conn = http.client.HTTPConnection("2a05:d018::10", 80, timeout=2)
    conn.request("GET", "/ip/91.218.2.30")
    assert conn.getresponse().status == 200
    conn.close()
print("isolated")
"""


def _run_python(script: str) -> subprocess.CompletedProcess[str]:
    """Run a script in a fresh interpreter so namespace changes never touch pytest."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=REPO, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


def test_isolate_network_in_a_subprocess() -> None:
    result = _run_python(ISOLATION_SCRIPT)
    assert result.returncode == 0, result.stderr
    expected = "isolated" if _may_create_netns() else "not isolated"
    assert result.stdout.strip() == expected


def test_isolate_network_refuses_when_threads_run() -> None:
    result = _run_python(
        """
        import threading
        from workflows.sim import netns
        stop = threading.Event()
        threading.Thread(target=stop.wait).start()
        try:
            netns.isolate_network()
        except RuntimeError:
            print("refused", netns.is_isolated())
        finally:
            stop.set()
        """
    )
    assert result.stdout.strip() == "refused False", result.stderr
