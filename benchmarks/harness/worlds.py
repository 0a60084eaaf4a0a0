"""The simulated internet of the benchmarks: networks, host names and URLs, as issue 11 lays
them out, with the latencies and the registries' rate limit it names.

Every network is a /24 of SIM_PREFIX, announced by an AS of its own, registered at one
of the five regional registries in turn (so each registry holds a fifth of them), with
one abuse desk of its own. Host names are spread over the networks round-robin, each on
an address of its network, and URLs over the host names round-robin, so any run of
consecutive URLs touches as many host names and networks as it can. Every URL serves
4 KiB of seeded random bytes. SIM_PREFIX is made local to the benchmark's network
namespace as a whole (sandbox.py), so one web server on 0.0.0.0:80 answers for them all.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass

from workflows.config.cdns import CDNDirectory, load_cdns
from workflows.sim import Latency, Network, World

# DESIGN.md § Scale: DNS 20 ms, RDAP 200 ms at 10 requests a second per registry, web 50 ms,
# SMTP 50 ms.
LATENCY = Latency(dns=0.02, rdap=0.2, web=0.05, smtp=0.05)
RDAP_RATE = 10.0
DNS_TTL = 300  # seconds
SIM_PREFIX = ipaddress.ip_network("185.64.0.0/10")  # 16,384 /24s; globally routable
ASN_BASE = 200000
# (registry, country, RDAP style): ARIN nests the abuse contact inside the org entity.
REGISTRIES = (
    ("ripencc", "GB", "ripe"),
    ("arin", "US", "arin"),
    ("apnic", "SG", "ripe"),
    ("lacnic", "BR", "ripe"),
    ("afrinic", "ZA", "ripe"),
)
HOSTS_PER_ADDRESS = 240  # addresses .10 to .249 of each /24


@dataclass(frozen=True)
class Layout:
    """How many URLs, host names and networks (one abuse desk each) a world has."""

    urls: int
    hosts: int
    networks: int

    def scaled(self, factor: float) -> Layout:
        """Return the layout FACTOR times as large: at least one network per registry,
        a host name per network and a URL per host name."""
        networks = max(len(REGISTRIES), round(self.networks * factor))
        hosts = max(networks, round(self.hosts * factor))
        return Layout(max(hosts, round(self.urls * factor)), hosts, networks)

    def __str__(self) -> str:
        return f"{self.urls:,} URLs on {self.hosts:,} host names in {self.networks:,} networks"


@dataclass
class BenchWorld:
    """A world built for one layout, and where each of its URLs lives."""

    world: World
    layout: Layout
    networks: list[Network]
    urls: list[str]

    def host_of(self, url_index: int) -> int:
        """Return the host name number of URL number URL_INDEX."""
        return url_index % self.layout.hosts

    def network_of(self, host: int) -> Network:
        """Return the network of host name number HOST."""
        return self.networks[host % self.layout.networks]

    def address_of(self, host: int) -> str:
        """Return the address of host name number HOST."""
        network = ipaddress.ip_network(self.network_of(host).cidr)
        slot = (host // self.layout.networks) % HOSTS_PER_ADDRESS
        return str(network.network_address + 10 + slot)

    @property
    def recipients(self) -> list[str]:
        """Return every abuse desk's address."""
        return [network.abuse[0] for network in self.networks]


def host_name(host: int, network: int) -> str:
    """Return the name of host name number HOST, on network number NETWORK."""
    return f"files{host}.net{network}.bench.test"


def _asns(cdns: CDNDirectory) -> Iterator[int]:
    """Yield AS numbers from ASN_BASE up, skipping any a known CDN announces (the shipped
    list holds AS200325, which workload 3's 1,000 networks reached)."""
    asn = ASN_BASE
    while True:
        if cdns.match(asn, None) is None:
            yield asn
        asn += 1


def build_world(layout: Layout) -> BenchWorld:
    """Return a world of LAYOUT, with the benchmarks' latencies and RDAP rate limit."""
    if layout.networks > SIM_PREFIX.num_addresses // 256:
        raise ValueError(f"{layout.networks} networks do not fit in {SIM_PREFIX}")
    # Records live 5 minutes, as real zones' do (the simulator's default of 1 s is for tests
    # that change records while clients run).
    world = World(latency=LATENCY, rdap_rate=RDAP_RATE, dns_ttl=DNS_TTL)
    cdns = load_cdns()
    networks = []
    asns = _asns(cdns)
    for n in range(layout.networks):
        registry, country, style = REGISTRIES[n % len(REGISTRIES)]
        base = SIM_PREFIX.network_address + 256 * n
        asn = next(asns)
        network = Network(
            f"{base}/24",
            asn,
            f"BENCH{n}-NET",
            country,
            org=f"Bench Hosting {n}",
            registry=registry,
            style=style,
            abuse=[f"abuse@net{n}.bench.example"],
            fallback=[f"noc@net{n}.bench.example"],
        )
        if cdns.match(asn, str(base + 10)) is not None:
            raise ValueError(f"{base}/24 is a known CDN's: pick another SIM_PREFIX")
        world.add_network(network)
        networks.append(network)
    built = BenchWorld(world, layout, networks, [])
    for h in range(layout.hosts):
        world.set_records(host_name(h, h % layout.networks), [("A", built.address_of(h))])
    for k in range(layout.urls):
        h = built.host_of(k)
        url = f"http://{host_name(h, h % layout.networks)}/f/{k}.bin"
        world.put_content(url)
        built.urls.append(url)
    return built
