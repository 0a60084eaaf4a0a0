"""A declarative simulated internet: networks, DNS records, sites and faults for every server.

Servers read the world on every request, so tests can change it while the servers run;
every read and write goes through one lock. A site serves seeded random bytes, a picture
of random shapes or a generated page (`workflows.sim.content`): never real material.

Two settings make the world as slow and as strict as the real internet, for benchmarks;
both may be replaced while the servers run (each request reads them):

    latency    Latency(dns, rdap, web, smtp): seconds each server waits, from a request's
               arrival, before it answers; requests waiting together overlap
    rdap_rate  requests per second the RDAP server answers for each registry (None: no
               limit); beyond it, 429 with Retry-After: 1
    dns_ttl    seconds every DNS answer may be cached (1 by default, so changes show)

Domains are registered through registrars (`add_registrar`, `register_domain`): the RDAP
server answers /domain/<name> for them with the registrar and its abuse contact.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import ipaddress
import random
import re
import threading
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

from workflows.sim.content import PAGE_TYPE, PICTURE_TYPE, page, picture, soft_404

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Record = tuple[str, str]

RTYPES = frozenset({"A", "AAAA", "CNAME", "TXT", "MX", "NS"})
DNS_FAULTS = frozenset({"servfail", "timeout", "refused", "truncate"})
# entity_loop: the answer's entities loop (the org contains itself, and the contact entity
# and the org contain each other), serialised as deep as a server without a guard goes.
RDAP_FAULTS = frozenset({"404", "429", "500", "malformed", "entity_loop"})
STYLES = frozenset({"arin", "ripe", "none"})
# How an answer writes its range (real registries' shapes): plain addresses; with a prefix
# length after each (RIPE's older answers, "2a00:…::/128"); zero-padded IPv4 ("010.000…",
# ARIN) or fully written IPv6; or only a CIDR handle, no addresses and no cidr0.
RANGE_STYLES = frozenset({"plain", "prefix-length", "zero-padded", "handle-only"})
# Where a domain answer names its registrar's abuse contact: nested in the registrar entity
# (ICANN's gTLD RDAP response profile), as a top-level entity, or nowhere.
REGISTRAR_STYLES = frozenset({"icann", "top", "none"})
DOMAIN_FAULTS = RDAP_FAULTS - {"entity_loop"}
REGISTRIES = frozenset({"arin", "ripencc", "apnic", "lacnic", "afrinic"})
# Team Cymru prints an allocation date; one fixed date keeps answers reproducible.
CYMRU_DATE = "2014-03-28"
CYMRU_V4 = ".origin.asn.cymru.com"
CYMRU_V6 = ".origin6.asn.cymru.com"
CYMRU_AS = ".asn.cymru.com"
# slow: the body drips a byte at a time and never ends; endless: it streams fast, forever;
# soft404: status 200 with the host's "page not found" page, as hosts do after a removal.
CONTENT_STATES = frozenset(
    {"present", "404", "410", "451", "changed", "500", "slow", "endless", "soft404"}
)
CONTENT_KINDS = frozenset({"bytes", "picture", "page"})
BYTES_TYPE = "application/octet-stream"
REDIRECT = "redirect:"
DEFAULT_SIZE = 4096
DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize(name: str) -> str:
    """Return a DNS owner name in the world's key form: lowercase, no trailing dot."""
    return name.strip().rstrip(".").lower()


@dataclass
class Network:
    """One routed prefix with its origin AS and the RDAP registration behind it."""

    cidr: str
    asn: int
    name: str
    country: str
    org: str = "Example Hosting Ltd"
    as_name: str = ""
    registry: str = "ripencc"
    style: str = "ripe"
    abuse: list[str] = field(default_factory=list)
    fallback: list[str] = field(default_factory=list)
    rdap_fault: str | None = None
    rdap_fault_times: int | None = None
    retry_after: int = 1
    announced: bool = True
    # Real-world shapes of an answer; the defaults serve the plain answer, byte for byte.
    remarks: list[str] = field(default_factory=list)  # lines of the network's remarks
    tech_remarks: list[str] = field(default_factory=list)  # of its technical entity's
    irt: list[str] = field(default_factory=list)  # a registry IRT's e-mails, role abuse
    roleless: list[str] = field(default_factory=list)  # e-mails of an entity without roles
    range_style: str = "plain"

    def __post_init__(self) -> None:
        """Validate the declaration so a typo fails at construction, not mid-test."""
        self.cidr = str(ipaddress.ip_network(self.cidr))
        if self.style not in STYLES:
            raise ValueError(f"unknown RDAP style {self.style!r}")
        if self.range_style not in RANGE_STYLES:
            raise ValueError(f"unknown range style {self.range_style!r}")
        if self.registry not in REGISTRIES:
            raise ValueError(f"unknown registry {self.registry!r}")
        if self.rdap_fault is not None and self.rdap_fault not in RDAP_FAULTS:
            raise ValueError(f"unknown RDAP fault {self.rdap_fault!r}")
        if not self.as_name:
            self.as_name = f"{self.name} - {self.org}, {self.country}"

    @property
    def prefix(self) -> IPNetwork:
        """Return the parsed prefix."""
        return _parsed(self.cidr)

    @property
    def handle(self) -> str:
        """Return the network's RDAP handle."""
        return prefix_handle(self.prefix)

    @property
    def entity_handles(self) -> dict[str, str]:
        """Return the RDAP handles of the network's org, technical and abuse entities (and
        of its registry IRT and role-less entity, when it has them)."""
        base = re.sub(r"[^A-Z0-9]+", "-", self.name.upper()).strip("-")
        return {
            "org": f"ORG-{base}",
            "tech": f"TECH-{base}",
            "abuse": f"ABUSE-{base}",
            "irt": f"IRT-{base}",
            "roleless": f"CONTACT-{base}",
        }


@dataclass
class Registrar:
    """A domain registrar: what the domain answers of the domains it registered say."""

    handle: str
    name: str
    iana_id: int | None = None
    abuse: list[str] = field(default_factory=list)
    style: str = "icann"
    rdap_fault: str | None = None  # served for its domains: 404, 429, 500 or malformed
    rdap_fault_times: int | None = None
    retry_after: int = 1

    def __post_init__(self) -> None:
        """Validate the declaration so a typo fails at construction, not mid-test."""
        if self.style not in REGISTRAR_STYLES:
            raise ValueError(f"unknown registrar style {self.style!r}")
        if self.rdap_fault is not None and self.rdap_fault not in DOMAIN_FAULTS:
            raise ValueError(f"unknown domain RDAP fault {self.rdap_fault!r}")


@functools.lru_cache(maxsize=65536)
def _parsed(cidr: str) -> IPNetwork:
    """Return CIDR parsed: every DNS and RDAP answer looks addresses up in the networks."""
    return ipaddress.ip_network(cidr)


def prefix_handle(prefix: IPNetwork) -> str:
    """Return an ARIN-like handle such as NET-185-199-108-0-1 or NET6-2A05-D018-1."""
    if prefix.version == 4:
        return "NET-" + str(prefix.network_address).replace(".", "-") + "-1"
    groups = [g.lstrip("0") or "0" for g in prefix.network_address.exploded.split(":")]
    while len(groups) > 2 and groups[-1] == "0":  # trailing zero groups add nothing
        groups.pop()
    return "NET6-" + "-".join(groups).upper() + "-1"


def site_key(url: str) -> str:
    """Return a URL in the world's key form: lowercase scheme and host, no default port."""
    parts = urlsplit(url.strip())
    scheme, host = parts.scheme.lower(), (parts.hostname or "").rstrip(".")
    host = f"[{host}]" if ":" in host else host
    port = parts.port
    authority = host if port in (None, DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{authority}{parts.path or '/'}{query}"


def _check_state(state: str) -> str:
    """Validate a site state, so a typo fails where it is written."""
    if state in CONTENT_STATES or (state.startswith(REDIRECT) and len(state) > len(REDIRECT)):
        return state
    raise ValueError(f"unknown content state {state!r}")


def _check_kind(kind: str) -> str:
    """Validate a site's kind of content, so a typo fails where it is written."""
    if kind in CONTENT_KINDS:
        return kind
    raise ValueError(f"unknown content kind {kind!r}: one of {sorted(CONTENT_KINDS)}")


def _derived_seed(*parts: object) -> int:
    """Return a 64-bit seed derived from parts."""
    key = "/".join(str(part) for part in parts)
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


@dataclass
class Site:
    """What one URL serves: a state, a kind of content and the seed it is made from.

    kind "bytes" serves `size` random bytes, "picture" a JPEG of random shapes, "page" an
    HTML gallery page (`dynamic`: parts of it change on every request). A `cloak` site
    hides from anything that looks like a robot (the web server decides what does).
    `variant` counts re-uploads: a picture put back is re-encoded each time.
    """

    url: str
    state: str = "present"
    size: int = DEFAULT_SIZE  # bytes only: pictures and pages have their own size
    seed: int = 0
    changes: int = 0  # times set to "changed": each change serves bytes never served before
    kind: str = "bytes"
    dynamic: bool = False
    cloak: bool = False
    variant: int = 0
    requests: int = 0  # requests answered so far; World.count_request keeps it
    ERROR_SIZE: ClassVar[int] = 16  # the body of an error status: a few bytes of its own

    @property
    def redirect_to(self) -> str | None:
        """Return the Location of a redirect state, else None."""
        return self.state.removeprefix(REDIRECT) if self.state.startswith(REDIRECT) else None

    @property
    def host(self) -> str:
        """Return the host name (or IP literal) the site lives on."""
        return urlsplit(self.url).hostname or ""

    def body(self, request: int = 0) -> bytes:
        """Return the bytes served for the request numbered request (0 is the first).

        The seed's own content; other content of the same kind after each change (bytes,
        a picture or a page never served before); for an error status a few random bytes
        of its own; for soft404 the host's "not found" page. Slow and endless serve the
        body over and over, forever. Only dynamic pages and soft404 depend on request.
        All are seeded, so a test can look for every byte ever served.
        """
        if self.state.isdigit():  # "404", "500"...: the states that are a status
            return random.Random(f"{self.seed}/{self.state}").randbytes(self.ERROR_SIZE)
        if self.state == "soft404":
            return soft_404(self.host, request)
        changed = self.state == "changed"
        if self.kind == "picture":
            if changed:
                return picture(_derived_seed(self.seed, "changed", self.changes))
            return picture(self.seed, self.variant)
        if self.kind == "page":
            seed = _derived_seed(self.seed, "changed", self.changes) if changed else self.seed
            return page(seed, request, self.dynamic)
        key = f"{self.seed}/changed/{self.changes}" if changed else str(self.seed)
        return random.Random(key).randbytes(self.size)

    def content_type(self) -> str:
        """Return the Content-Type of the body: an error status's random bytes are octets."""
        if self.state == "soft404":
            return PAGE_TYPE
        if self.state.isdigit() or self.kind == "bytes":
            return BYTES_TYPE
        return PICTURE_TYPE if self.kind == "picture" else PAGE_TYPE


@dataclass(frozen=True)
class Latency:
    """Seconds each simulated server waits between a request's arrival and its answer.

    dns: every DNS answer (UDP and TCP); rdap: every RDAP answer; web: a web response's
    status line and headers; smtp: the reply to each message's data. 0 answers at once.
    """

    dns: float = 0.0
    rdap: float = 0.0
    web: float = 0.0
    smtp: float = 0.0

    def __post_init__(self) -> None:
        """Refuse a negative or non-finite delay, which no server could wait."""
        for name, seconds in dataclasses.asdict(self).items():
            if not 0.0 <= seconds < float("inf"):
                raise ValueError(f"latency {name}={seconds!r}: seconds, 0 or more")


def _check_records(records: list[Record]) -> list[Record]:
    """Validate record types and normalise names that records point to."""
    checked: list[Record] = []
    for rtype, value in records:
        rtype = rtype.upper()
        if rtype not in RTYPES:
            raise ValueError(f"unsupported record type {rtype!r}")
        checked.append((rtype, normalize(value) if rtype == "CNAME" else value))
    return checked


@dataclass
class World:
    """Everything the simulated servers know; mutate it only through the methods at runtime.

    Except latency and rdap_rate, which are plain settings: assign a new Latency or rate
    at any time, and the servers use it from their next request on.
    """

    networks: list[Network] = field(default_factory=list)
    records: dict[str, list[Record]] = field(default_factory=dict)
    dns_faults: dict[str, str] = field(default_factory=dict)
    cname_first_hop_only: set[str] = field(default_factory=set)
    sites: dict[str, Site] = field(default_factory=dict)
    fetch_log: list[tuple[str, str]] = field(default_factory=list)
    latency: Latency = field(default_factory=Latency)
    rdap_rate: float | None = None  # requests per second per registry; None: unlimited
    # Seconds DNS answers may be cached: short for tests that change records while clients
    # run; the benchmarks use a realistic 300.
    dns_ttl: int = 1
    registrars: dict[str, Registrar] = field(default_factory=dict)  # by handle
    domains: dict[str, str] = field(default_factory=dict)  # registered domain: registrar handle
    _lock: threading.RLock = field(
        default_factory=threading.RLock, init=False, repr=False, compare=False
    )
    # The networks by IP version, prefix length and first address: a benchmark world's
    # thousand networks are looked up in every DNS and RDAP answer, so not one by one.
    # Rebuilt when a network is added (networks only grow, through add_network).
    _index: dict[tuple[int, int], dict[int, list[Network]]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _indexed: int = field(default=-1, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Normalise every owner name so lookups can be plain dictionary reads."""
        self.records = {normalize(k): _check_records(v) for k, v in self.records.items()}
        if self.rdap_rate is not None and not self.rdap_rate > 0:
            raise ValueError(f"rdap_rate {self.rdap_rate!r}: requests per second, above 0")
        for fault in self.dns_faults.values():
            if fault not in DNS_FAULTS:
                raise ValueError(f"unknown DNS fault {fault!r}")
        self.dns_faults = {normalize(k): v for k, v in self.dns_faults.items()}
        self.cname_first_hop_only = {normalize(n) for n in self.cname_first_hop_only}
        self.sites = {site_key(k): v for k, v in self.sites.items()}
        for key, site in self.sites.items():
            site.url, site.state = key, _check_state(site.state)
            _check_kind(site.kind)
        self.domains = {normalize(k): v for k, v in self.domains.items()}
        for domain, handle in self.domains.items():
            if handle not in self.registrars:
                raise ValueError(f"domain {domain} names no known registrar {handle!r}")

    # -- mutators ---------------------------------------------------------------------------

    def set_records(self, name: str, records: list[Record]) -> None:
        """Replace all records of a name (creating it if needed)."""
        checked = _check_records(records)
        with self._lock:
            self.records[normalize(name)] = checked

    def remove(self, name: str) -> None:
        """Delete a name's records so it answers NXDOMAIN; faults stay as declared."""
        with self._lock:
            self.records.pop(normalize(name), None)

    def set_dns_fault(self, name: str, fault: str | None) -> None:
        """Make a name fail in the given way, or heal it with None."""
        if fault is not None and fault not in DNS_FAULTS:
            raise ValueError(f"unknown DNS fault {fault!r}")
        with self._lock:
            if fault is None:
                self.dns_faults.pop(normalize(name), None)
            else:
                self.dns_faults[normalize(name)] = fault

    def set_first_hop_only(self, name: str, enabled: bool = True) -> None:
        """Make the DNS server answer only the first CNAME hop for a name."""
        with self._lock:
            if enabled:
                self.cname_first_hop_only.add(normalize(name))
            else:
                self.cname_first_hop_only.discard(normalize(name))

    def add_network(self, network: Network | None = None, /, **fields: Any) -> Network:
        """Add a network, given as a Network or as its fields; return it."""
        if network is None:
            network = Network(**fields)
        elif fields:
            raise TypeError("pass either a Network or its fields, not both")
        with self._lock:
            self.networks.append(network)
        return network

    def set_rdap_fault(self, cidr: str, fault: str | None, times: int | None = None) -> None:
        """Arm (or clear with None) an RDAP fault on the network with this exact prefix."""
        if fault is not None and fault not in RDAP_FAULTS:
            raise ValueError(f"unknown RDAP fault {fault!r}")
        with self._lock:
            network = self._by_cidr(cidr)
            network.rdap_fault, network.rdap_fault_times = fault, times

    def take_rdap_fault(self, network: Network) -> str | None:
        """Return the fault to serve for one RDAP request, counting down rdap_fault_times."""
        with self._lock:
            if network.rdap_fault is None:
                return None
            if network.rdap_fault_times is None:
                return network.rdap_fault
            if network.rdap_fault_times <= 0:
                return None
            # The remaining count lives on the network, so re-arming is one assignment.
            network.rdap_fault_times -= 1
            return network.rdap_fault

    def add_registrar(self, registrar: Registrar | None = None, /, **fields: Any) -> Registrar:
        """Add (or replace) a registrar, given as a Registrar or as its fields; return it."""
        if registrar is None:
            registrar = Registrar(**fields)
        elif fields:
            raise TypeError("pass either a Registrar or its fields, not both")
        with self._lock:
            self.registrars[registrar.handle] = registrar
        return registrar

    def register_domain(self, domain: str, registrar: str) -> None:
        """Register DOMAIN through the registrar of handle REGISTRAR; KeyError if unknown."""
        with self._lock:
            if registrar not in self.registrars:
                raise KeyError(f"no registrar {registrar!r}")
            self.domains[normalize(domain)] = registrar

    def set_registrar_fault(self, handle: str, fault: str | None, times: int | None = None) -> None:
        """Arm (or clear with None) an RDAP fault on every domain answer of a registrar."""
        if fault is not None and fault not in DOMAIN_FAULTS:
            raise ValueError(f"unknown domain RDAP fault {fault!r}")
        with self._lock:
            registrar = self.registrars[handle]
            registrar.rdap_fault, registrar.rdap_fault_times = fault, times

    def take_registrar_fault(self, handle: str) -> str | None:
        """Return the fault to serve for one domain request, counting down rdap_fault_times."""
        with self._lock:
            registrar = self.registrars[handle]
            times = registrar.rdap_fault_times
            if registrar.rdap_fault is None or (times is not None and times <= 0):
                return None
            if times is not None:
                registrar.rdap_fault_times = times - 1
            return registrar.rdap_fault

    def put_content(
        self,
        url: str,
        state: str = "present",
        size: int = DEFAULT_SIZE,
        seed: int | None = None,
        *,
        kind: str = "bytes",
        dynamic: bool = False,
        cloak: bool = False,
    ) -> Site:
        """Serve content at a URL (replacing what it served); return a copy of the site.

        kind is "bytes" (size random bytes), "picture" or "page" (size is then unused);
        dynamic pages change on every request; a cloak site hides from robots.
        """
        key = site_key(url)
        if size < 0:
            raise ValueError(f"negative size {size}")
        if seed is None:  # derived from the URL, so every run serves the same bytes there
            seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
        kind = _check_kind(kind)
        site = Site(key, _check_state(state), size, seed, kind=kind, dynamic=dynamic, cloak=cloak)
        with self._lock:
            self.sites[key] = site
            return dataclasses.replace(site)

    def set_content_state(self, url: str, state: str) -> None:
        """Change what a known URL serves; KeyError for a URL never put.

        "changed" serves other content of the same kind, new at every change.
        """
        _check_state(state)
        with self._lock:
            site = self.sites[site_key(url)]
            site.state = state
            if state == "changed":
                site.changes += 1

    def reupload(self, url: str) -> None:
        """Serve a known URL's original content again, re-encoded; KeyError for a URL never put.

        The state becomes "present" and the variant goes up by one: a picture comes back
        scaled and recompressed (other bytes, the same picture); bytes and pages come back
        as they were.
        """
        with self._lock:
            site = self.sites[site_key(url)]
            site.state = "present"
            site.variant += 1

    def count_request(self, url: str) -> tuple[Site, int] | None:
        """Count one request for a URL; return a copy of its site and the request's number.

        Numbers start at 0 for each site put, so the first answer is `content(url).body()`.
        None when no site is at the URL.
        """
        with self._lock:
            site = self.sites.get(site_key(url))
            if site is None:
                return None
            number = site.requests
            site.requests += 1
            return dataclasses.replace(site), number

    def log_fetch(self, url: str, client: str) -> None:
        """Record that a web server answered a request for url from client."""
        with self._lock:
            self.fetch_log.append((site_key(url), client))

    # -- readers ----------------------------------------------------------------------------

    def content(self, url: str) -> Site | None:
        """Return a copy of the site at a URL, or None."""
        with self._lock:
            site = self.sites.get(site_key(url))
            return None if site is None else dataclasses.replace(site)

    def content_type(self, url: str) -> str | None:
        """Return the Content-Type the site at a URL serves now, or None when there is none."""
        with self._lock:
            site = self.sites.get(site_key(url))
            return None if site is None else site.content_type()

    def serves_host(self, host: str) -> bool:
        """Tell whether any site lives on a host name (or IP literal), whatever the port."""
        wanted = (urlsplit(f"http://{host}/").hostname or "").rstrip(".")
        with self._lock:
            return any(urlsplit(key).hostname == wanted for key in self.sites)

    def fetches(self, url: str | None = None) -> list[tuple[str, str]]:
        """Return a snapshot of the fetch log, only one URL's entries when given."""
        key = None if url is None else site_key(url)
        with self._lock:
            return [entry for entry in self.fetch_log if key is None or entry[0] == key]

    def network_for(self, ip: str, announced_only: bool = False) -> Network | None:
        """Return the longest-prefix network containing an address, or None."""
        address = ipaddress.ip_address(ip)
        bits = address.max_prefixlen
        with self._lock:
            if self._indexed != len(self.networks):
                self._index = {}
                for network in self.networks:
                    prefix = network.prefix
                    key = (prefix.version, prefix.prefixlen)
                    first = int(prefix.network_address)
                    self._index.setdefault(key, {}).setdefault(first, []).append(network)
                self._indexed = len(self.networks)
            lengths = sorted((n for v, n in self._index if v == address.version), reverse=True)
            for length in lengths:
                first = int(address) >> (bits - length) << (bits - length)
                for network in self._index[(address.version, length)].get(first, []):
                    if network.announced or not announced_only:
                        return network
        return None

    def networks_for_asn(self, asn: int) -> list[Network]:
        """Return the networks originated by an AS."""
        with self._lock:
            return [n for n in self.networks if n.asn == asn]

    def registrar_of(self, domain: str) -> Registrar | None:
        """Return a copy of the registrar of a registered domain, or None."""
        with self._lock:
            handle = self.domains.get(normalize(domain))
            found = None if handle is None else self.registrars.get(handle)
            return None if found is None else dataclasses.replace(found, abuse=list(found.abuse))

    def network_list(self) -> list[Network]:
        """Return a snapshot of the networks."""
        with self._lock:
            return list(self.networks)

    def lookup(self, name: str) -> list[Record] | None:
        """Return a copy of a name's records (declared or Cymru-generated); None if absent."""
        name = normalize(name)
        with self._lock:
            declared = self.records.get(name)
            if declared is not None:
                return list(declared)
        return self._cymru(name)

    def dns_fault(self, name: str) -> str | None:
        """Return the fault declared for a name, if any."""
        with self._lock:
            return self.dns_faults.get(normalize(name))

    def is_first_hop_only(self, name: str) -> bool:
        """Tell whether the DNS server must stop after the first CNAME of this name."""
        with self._lock:
            return normalize(name) in self.cname_first_hop_only

    def _by_cidr(self, cidr: str) -> Network:
        """Return the network declared with exactly this prefix."""
        wanted = ipaddress.ip_network(cidr)
        for network in self.networks:
            if network.prefix == wanted:
                return network
        raise KeyError(f"no network {cidr}")

    # -- Team Cymru IP-to-ASN zone ---------------------------------------------------------

    def _cymru(self, name: str) -> list[Record] | None:
        """Generate Team Cymru TXT answers from the announced networks."""
        if name.endswith(CYMRU_V4):
            ip = _ipv4_from_labels(name[: -len(CYMRU_V4)].split("."))
        elif name.endswith(CYMRU_V6):
            ip = _ipv6_from_nibbles(name[: -len(CYMRU_V6)].split("."))
        elif name.endswith(CYMRU_AS) and name.count(".") == 3:
            return self._cymru_as(name.split(".")[0])
        else:
            return None
        network = self.network_for(ip, announced_only=True) if ip else None
        if network is None:
            return None
        fields = [str(network.asn), network.cidr, network.country, network.registry, CYMRU_DATE]
        return [("TXT", " | ".join(fields))]

    def _cymru_as(self, label: str) -> list[Record] | None:
        """Answer an AS<n>.asn.cymru.com query."""
        if not (label.startswith("as") and label[2:].isdigit()):
            return None
        announced = [n for n in self.networks_for_asn(int(label[2:])) if n.announced]
        if not announced:
            return None
        first = announced[0]
        fields = [str(first.asn), first.country, first.registry, CYMRU_DATE, first.as_name]
        return [("TXT", " | ".join(fields))]


def _ipv4_from_labels(labels: list[str]) -> str | None:
    """Turn reversed octet labels into an IPv4 address string."""
    if len(labels) != 4 or not all(label.isdigit() for label in labels):
        return None
    try:
        return str(ipaddress.IPv4Address(".".join(reversed(labels))))
    except ValueError:
        return None


def _ipv6_from_nibbles(labels: list[str]) -> str | None:
    """Turn reversed nibble labels into an IPv6 address, padding dropped trailing zeros."""
    hexdigits = set("0123456789abcdef")
    if not 0 < len(labels) <= 32 or not all(len(n) == 1 and n in hexdigits for n in labels):
        return None
    nibbles = "".join(reversed(labels)).ljust(32, "0")
    groups = [nibbles[i : i + 4] for i in range(0, 32, 4)]
    return str(ipaddress.IPv6Address(":".join(groups)))
