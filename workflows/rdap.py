"""Look up the network of a public address over RDAP (RFC 7482 paths, RFC 9083 JSON).

All I/O is ours: one HTTP GET per network to TAKEDOWN_RDAP_BASE or the registry's own
server, rate-limited per registry and cached by network range. ipwhois parses the network
object (its `_RDAPNetwork`, as `IPWhois.lookup_rdap` does); abuse contacts are read from
the raw JSON, nested entities included, so ARIN's abuse POC costs no extra request.

    rdap_not_found     404: no registry knows the address         permanent
    rdap_rate_limited  429 that outlasts TAKEDOWN_RDAP_MAX_WAIT    transient (retry_after)
    rdap_unavailable   5xx, connection error, timeout             transient
    rdap_malformed     not an RDAP ip network object              transient
"""

from __future__ import annotations

import bisect
import email.utils
import ipaddress
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import httpx
from ipwhois.exceptions import InvalidNetworkObject
from ipwhois.rdap import RIR_RDAP, _RDAPNetwork

from workflows.errors import LookupFailed
from workflows.ratelimit import RateLimiter

# RFC 9083 §10.2.4 roles, most useful first: who to write to when no `abuse` role exists.
FALLBACK_ROLES = ("noc", "technical", "administrative", "registrant")
MAX_ENTITY_DEPTH = 6
MAX_ENTITIES = 200


@dataclass(frozen=True)
class NetworkRecord:
    """What RDAP says about the network holding an address."""

    handle: str
    cidr: str  # ipwhois' CIDR list of the range, ", "-separated when not one block
    start: str
    end: str
    name: str | None
    country: str | None
    abuse: tuple[str, ...]
    abuse_fallback: bool  # True: no `abuse` role; these are other roles' addresses
    source: str  # the URL that answered
    cached: bool = False


class NetworkCache:
    """Network records by address range, each kept for TTL seconds."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._ranges: list[tuple[int, int, int, float, NetworkRecord]] = []  # sorted
        self._lock = threading.Lock()

    def get(self, address: str) -> NetworkRecord | None:
        """Return the most specific live record whose range holds ADDRESS."""
        ip = ipaddress.ip_address(address)
        return self.covering(ip.version, int(ip), int(ip))

    def covering(self, version: int, first: int, last: int) -> NetworkRecord | None:
        """Return the most specific live record whose range holds all of FIRST..LAST."""
        now = self._clock()
        with self._lock:
            live = [r for r in self._ranges if r[3] > now]
            self._ranges = live
            end = bisect.bisect_right(live, (version, first, float("inf")))
            hits = [r for r in live[:end] if r[0] == version and r[1] <= first and last <= r[2]]
        if not hits:
            return None
        best = min(hits, key=lambda r: r[2] - r[1])
        return replace(best[4], cached=True)

    def put(self, record: NetworkRecord) -> None:
        """Keep RECORD for every address in its range."""
        start, end = ipaddress.ip_address(record.start), ipaddress.ip_address(record.end)
        entry = (start.version, int(start), int(end), self._clock() + self.ttl, record)
        with self._lock:
            bisect.insort(self._ranges, entry, key=lambda r: (r[0], r[1], r[2]))

    def __len__(self) -> int:
        return len(self._ranges)


class RDAPClient:
    """Fetch and parse RDAP network objects, cached and rate-limited."""

    def __init__(
        self,
        http: httpx.Client,
        limiter: RateLimiter,
        cache: NetworkCache,
        *,
        base: str | None = None,
        max_wait: float = 5.0,
    ) -> None:
        self.http = http
        self.limiter = limiter
        self.cache = cache
        self.base = base
        self.max_wait = max_wait
        self.queries = 0  # HTTP requests made: what the cache saves
        # Parents (upstreams) in a cache of their own: a parent's larger range must never
        # answer for an address whose own, smaller network is simply not cached yet.
        self.parents = NetworkCache(cache.ttl)

    def url_for(self, address: str, registry: str | None) -> str:
        """Return the RDAP URL for ADDRESS: our base, else the registry's own server."""
        if self.base is not None:
            return f"{self.base}/ip/{address}"
        # ARIN redirects addresses it does not manage to the right registry.
        rir = registry if registry in RIR_RDAP else "arin"
        return str(RIR_RDAP[rir]["ip_url"]).format(address)

    def lookup(self, address: str, registry: str | None) -> NetworkRecord:
        """Return the network holding ADDRESS, from the cache when it has one."""
        cached = self.cache.get(address)
        if cached is not None:
            return cached
        url = self.url_for(address, registry)
        data = self._fetch(url, registry or "unknown")
        record = parse_network(data, url)
        self.cache.put(record)
        return record

    def lookup_parent(self, cidr: str, handle: str, registry: str | None) -> NetworkRecord | None:
        """Return the network that holds CIDR's network, e.g. the upstream's allocation."""
        network = ipaddress.ip_network(cidr.split(",")[0].strip(), strict=False)
        if network.prefixlen == 0:
            return None
        parent = network.supernet()
        record = self.parents.covering(
            parent.version, int(parent.network_address), int(parent.broadcast_address)
        )
        if record is None:
            # RFC 7482 §3.1.1: /ip/<prefix>/<len> answers the smallest network holding it.
            url = f"{self.url_for(str(parent.network_address), registry)}/{parent.prefixlen}"
            record = parse_network(self._fetch(url, registry or "unknown"), url)
            self.parents.put(record)
        return None if record.handle == handle else record

    def _fetch(self, url: str, key: str) -> Any:
        """GET URL as JSON, waiting out a short Retry-After once."""
        for attempt in range(2):
            self.limiter.acquire(key)
            self.queries += 1
            response = self._get(url)
            if response.status_code != 429:
                return _json_of(response, url)
            wait = retry_after(response.headers.get("Retry-After"))
            self.limiter.block(key, wait)
            if attempt == 1 or wait > self.max_wait:
                raise LookupFailed(
                    f"RDAP server rate-limited us (429, retry after {wait:g}s): {url}",
                    kind="rdap_rate_limited",
                    permanent=False,
                    retry_after=wait,
                )
        raise AssertionError("unreachable")

    def _get(self, url: str) -> httpx.Response:
        try:
            return self.http.get(url, headers={"Accept": "application/rdap+json"})
        except httpx.HTTPError as error:
            raise LookupFailed(
                f"RDAP request failed: {type(error).__name__}: {url}",
                kind="rdap_unavailable",
                permanent=False,
            ) from None


def retry_after(value: str | None, now: float | None = None) -> float:
    """Return the seconds a Retry-After header asks for (RFC 9110 §10.2.3); 60 if unreadable."""
    if value is None:
        return 60.0
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return 60.0
    return max(0.0, when - (time.time() if now is None else now))


def _json_of(response: httpx.Response, url: str) -> Any:
    status = response.status_code
    if status == 404:
        raise LookupFailed(f"no RDAP record (404): {url}", kind="rdap_not_found", permanent=True)
    if status != 200:
        raise LookupFailed(
            f"RDAP server answered {status}: {url}", kind="rdap_unavailable", permanent=False
        )
    try:
        return response.json()
    except ValueError:
        raise LookupFailed(
            f"RDAP answer is not JSON: {url}", kind="rdap_malformed", permanent=False
        ) from None


def parse_network(data: Any, source: str) -> NetworkRecord:
    """Build a NetworkRecord from an RDAP ip network object."""
    if not isinstance(data, dict) or data.get("objectClassName", "ip network") != "ip network":
        raise LookupFailed(
            f"RDAP answer is not an ip network object: {source}",
            kind="rdap_malformed",
            permanent=False,
        )
    try:
        network = _RDAPNetwork(data)
        network.parse()
        fields = network.vars
        ipaddress.ip_address(str(fields["start_address"]))
        ipaddress.ip_address(str(fields["end_address"]))
    except (InvalidNetworkObject, KeyError, TypeError, ValueError, AttributeError):
        raise LookupFailed(
            f"RDAP network object lacks a valid handle or range: {source}",
            kind="rdap_malformed",
            permanent=False,
        ) from None
    abuse, fallback = extract_contacts(data)
    country = fields.get("country")
    return NetworkRecord(
        handle=str(fields["handle"]),
        cidr=str(fields.get("cidr") or ""),
        start=str(fields["start_address"]),
        end=str(fields["end_address"]),
        name=fields.get("name"),
        country=country.upper() if isinstance(country, str) and len(country) == 2 else None,
        abuse=tuple(abuse or fallback),
        abuse_fallback=not abuse and bool(fallback),
        source=source,
    )


def extract_contacts(data: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Return (abuse e-mails, fallback e-mails) from every entity, nested ones too."""
    abuse: list[str] = []
    by_role: dict[str, list[str]] = {role: [] for role in FALLBACK_ROLES}
    for roles, emails in _entities(data.get("entities"), 0, [0]):
        if "abuse" in roles:
            abuse += emails
        for role in FALLBACK_ROLES:
            if role in roles:
                by_role[role] += emails
    fallback = [e for role in FALLBACK_ROLES for e in by_role[role]]
    return list(dict.fromkeys(abuse)), list(dict.fromkeys(fallback))


def _entities(entities: Any, depth: int, seen: list[int]) -> Iterator[tuple[set[str], list[str]]]:
    """Yield (roles, e-mails) of each entity, depth-first, bounded in depth and count."""
    if not isinstance(entities, list) or depth > MAX_ENTITY_DEPTH:
        return
    for entity in entities:
        if not isinstance(entity, dict) or seen[0] >= MAX_ENTITIES:
            continue
        seen[0] += 1
        roles = {str(r).lower() for r in entity.get("roles") or [] if isinstance(r, str)}
        yield roles, vcard_emails(entity.get("vcardArray"))
        yield from _entities(entity.get("entities"), depth + 1, seen)


def vcard_emails(vcard: Any) -> list[str]:
    """Return the e-mail addresses in a jCard (RFC 7095), lowercased, header-safe only."""
    if not (isinstance(vcard, list) and len(vcard) == 2 and isinstance(vcard[1], list)):
        return []
    found = []
    for prop in vcard[1]:
        if isinstance(prop, list) and len(prop) >= 4 and prop[0] == "email":
            value = prop[3]
            if isinstance(value, str) and is_plain_address(value.strip()):
                found.append(value.strip().lower())
    return found


def is_plain_address(value: str) -> bool:
    """Tell whether VALUE is a bare address that is safe to put in a mail header."""
    local, at, domain = value.rpartition("@")
    return (
        bool(at and local and "." in domain)
        and len(value) <= 254
        and all(33 <= ord(c) <= 126 and c not in '<>(),;:"[]\\' for c in value)
    )
