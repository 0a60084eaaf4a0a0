"""A simulated internet for tests and demos: DNS and RDAP servers over a declarative World.

Everything binds to 127.0.0.1 (or addresses the caller gives); nothing here talks to the
real internet. A World's `latency` (a Latency) and `rdap_rate` make the servers as slow
and as strict as real ones, for benchmarks.
"""

from __future__ import annotations

from workflows.sim.content import page, picture, soft_404
from workflows.sim.desks import Desk, DeskRunner, urls_in, wait_until
from workflows.sim.dnsserver import DNSServer
from workflows.sim.proxy import SimProxy
from workflows.sim.rdapserver import RDAPServer
from workflows.sim.smtp import Received, SMTPServer
from workflows.sim.web import WebServer, looks_like_robot
from workflows.sim.world import Latency, Network, Site, World, site_key

__all__ = [
    "DNSServer",
    "Desk",
    "DeskRunner",
    "Latency",
    "Network",
    "RDAPServer",
    "Received",
    "SMTPServer",
    "SimInternet",
    "SimProxy",
    "Site",
    "WebServer",
    "World",
    "looks_like_robot",
    "page",
    "picture",
    "sample_world",
    "site_key",
    "soft_404",
    "urls_in",
    "wait_until",
]


class SimInternet:
    """Run a World's DNS and RDAP servers on free ports for the length of a with-block."""

    def __init__(self, world: World | None = None, host: str = "127.0.0.1") -> None:
        """Prepare servers for world (the sample world when None) on host."""
        self.world = world if world is not None else sample_world()
        self.dns = DNSServer(self.world, host)
        self.rdap = RDAPServer(self.world, host)

    @property
    def dns_servers(self) -> str:
        """Return the DNS server as "host:port", the TAKEDOWN_DNS_SERVERS form."""
        return self.dns.address

    @property
    def rdap_base(self) -> str:
        """Return the RDAP base URL, the TAKEDOWN_RDAP_BASE form."""
        return self.rdap.base_url

    def env(self) -> dict[str, str]:
        """Return the environment that points takedown at this simulated internet."""
        return {"TAKEDOWN_DNS_SERVERS": self.dns_servers, "TAKEDOWN_RDAP_BASE": self.rdap_base}

    def start(self) -> SimInternet:
        """Start both servers."""
        self.dns.start()
        try:
            self.rdap.start()
        except OSError:
            self.dns.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop both servers."""
        self.rdap.stop()
        self.dns.stop()

    def __enter__(self) -> SimInternet:
        """Start on entering the with-block."""
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        """Stop on leaving the with-block."""
        self.stop()


def _sample_networks() -> list[Network]:
    """Return the sample world's networks: one per RIR style and failure mode."""
    return [
        Network("185.199.108.0/22", 205012, "EXAMPLEHOST-NET", "GB",
                org="Example Hosting Ltd", style="ripe",
                abuse=["abuse@examplehost.example"], fallback=["noc@examplehost.example"]),
        Network("2a05:d018::/32", 205012, "EXAMPLEHOST-NET6", "GB",
                org="Example Hosting Ltd", style="ripe",
                abuse=["abuse@examplehost.example"], fallback=["noc@examplehost.example"]),
        Network("66.175.208.0/20", 398765, "PIXELFORGE-NET", "US", org="PixelForge Inc.",
                registry="arin", style="arin",
                abuse=["abuse@pixelforge.example"], fallback=["noc@pixelforge.example"]),
        Network("91.218.0.0/21", 207001, "BERGHOST-NET", "DE", org="Berghost GmbH",
                abuse=["abuse@berghost.example"], fallback=["technik@berghost.example"]),
        Network("2a01:4f8::/32", 207001, "BERGHOST-NET6", "DE", org="Berghost GmbH",
                abuse=["abuse@berghost.example"], fallback=["technik@berghost.example"]),
        Network("92.243.0.0/19", 208143, "NUAGE-NET", "FR", org="Nuage Hebergement SAS",
                abuse=["abuse@nuage-hebergement.example", "signalement@nuage-hebergement.example"],
                fallback=["noc@nuage-hebergement.example"]),
        Network("94.142.240.0/21", 209876, "POLDERNET-NET", "NL", org="Polder Networks B.V.",
                style="none", fallback=["noc@poldernet.example", "beheer@poldernet.example"]),
        Network("104.16.0.0/13", 13335, "CLOUDEDGE-NET", "US", org="CloudEdge CDN Inc.",
                registry="arin", style="arin",
                abuse=["abuse@cloudedge.example"], fallback=["noc@cloudedge.example"]),
        Network("103.86.96.0/22", 138915, "SGCLOUD-NET", "SG", org="SG Cloud Pte. Ltd.",
                registry="apnic", abuse=["abuse@sgcloud.example"],
                fallback=["noc@sgcloud.example"], rdap_fault="429", rdap_fault_times=1),
        Network("177.54.144.0/20", 262999, "GHOSTNET-BR", "BR", org="Rede Fantasma Ltda",
                registry="lacnic", abuse=["abuse@redefantasma.example"], announced=False),
    ]  # fmt: skip


def _sample_records() -> dict[str, list[tuple[str, str]]]:
    """Return the sample world's names; the docstring of sample_world says what each is for."""
    return {
        "uploads.examplehost-uk.test": [("A", "185.199.108.10"), ("AAAA", "2a05:d018::10")],
        "examplehost-uk.test": [("A", "185.199.108.2"), ("MX", "10 mail.examplehost-uk.test"),
                              ("NS", "ns1.examplehost-uk.test"), ("TXT", "v=spf1 mx -all")],
        "mail.examplehost-uk.test": [("A", "185.199.108.3")],
        "ns1.examplehost-uk.test": [("A", "185.199.108.4")],
        "gallery.pixelforge-us.test": [("A", "66.175.208.20")],
        "share.berghost-de.test": [("A", "91.218.2.30")],
        "assets.berghost-de.test": [("CNAME", "share.berghost-de.test")],
        "v6only.berghost-de.test": [("AAAA", "2a01:4f8:1c1c::99")],
        "videos.nuage-hebergement-fr.test": [("A", "92.243.5.40")],
        "dump.poldernet-nl.test": [("A", "94.142.241.50")],
        "static.cdn-fronted.test": [("A", "104.16.132.229"), ("A", "104.16.133.229")],
        "www.cdn-fronted.test": [("CNAME", "cdn-fronted.test.cdn.cloudedge.test")],
        "cdn-fronted.test.cdn.cloudedge.test": [("A", "104.16.132.229"), ("A", "104.16.133.229")],
        "go.tinylnk.test": [("CNAME", "edge.tinylnk.test")],
        "edge.tinylnk.test": [("CNAME", "uploads.examplehost-uk.test")],
        "mirror.sgcloud-sg.test": [("A", "103.86.97.7")],
        "ghost.badlinks.test": [("A", "177.54.150.7")],
        "intranet.badlinks.test": [("A", "10.0.0.5")],
        "rebind.badlinks.test": [("A", "127.0.0.1")],
        "old.badlinks.test": [("CNAME", "gone.nowhere-sim.test")],
        "loop-a.badlinks.test": [("CNAME", "loop-b.badlinks.test")],
        "loop-b.badlinks.test": [("CNAME", "loop-a.badlinks.test")],
        "flaky.badlinks.test": [("A", "185.199.108.11")],
        "slow.badlinks.test": [("A", "185.199.108.12")],
        "bigzone.examplehost-uk.test": [("A", f"185.199.109.{i}") for i in range(1, 41)],
    }  # fmt: skip


def sample_world() -> World:
    """Return the demo world.

    uploads.examplehost-uk.test       A+AAAA on a GB network, RIPE-style top-level abuse entity
    examplehost-uk.test               apex with MX, NS, TXT (SPF)
    gallery.pixelforge-us.test        US network, ARIN-style abuse POC nested in the org entity
    share.berghost-de.test            DE network, RIPE style
    assets.berghost-de.test           CNAME answered first hop only: the client must follow it
    v6only.berghost-de.test           AAAA only (DE IPv6 network); A is NODATA
    videos.nuage-hebergement-fr.test FR network with two abuse addresses
    dump.poldernet-nl.test            NL network with RDAP style "none": only tech/admin e-mails
    static.cdn-fronted.test           two A records in the CDN network (AS13335)
    www.cdn-fronted.test              CNAME into the CDN, the usual CDN-fronting pattern
    go.tinylnk.test                   two-hop CNAME chain ending at uploads.examplehost-uk.test
    mirror.sgcloud-sg.test            APNIC network whose first RDAP request gets 429
    ghost.badlinks.test               unannounced prefix: Cymru NXDOMAIN, RDAP still answers
    intranet.badlinks.test            special-use address 10.0.0.5
    rebind.badlinks.test              loopback address 127.0.0.1
    old.badlinks.test                 dangling CNAME: NXDOMAIN after the chain
    loop-a.badlinks.test              CNAME loop, cut after 16 hops
    flaky.badlinks.test               SERVFAIL
    slow.badlinks.test                no answer at all (timeout)
    bigzone.examplehost-uk.test       40 A records, truncated over UDP: full answer only over TCP
    """
    return World(
        networks=_sample_networks(),
        records=_sample_records(),
        dns_faults={
            "flaky.badlinks.test": "servfail",
            "slow.badlinks.test": "timeout",
            "bigzone.examplehost-uk.test": "truncate",
        },
        cname_first_hop_only={"assets.berghost-de.test"},
    )
