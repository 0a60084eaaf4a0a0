"""Trace a URL to its hosting: DNS, then each address's origin AS, RDAP network and CDN,
and the platform its host name is on.

Each network's contacts are chosen in the order of trust of contacts.py (role:abuse,
remarks, abuse-local-part, the other roles, role-less entities), passing over registry
placeholders (TAKEDOWN_PLACEHOLDERS, noted in the trace); a network that names nothing
else gets its parent network's contact (one more RDAP query, asked only then), and a
placeholder only as the last resort. A URL on a known platform (TAKEDOWN_PLATFORMS) goes
to the platform's desk, its networks' contacts kept as `network_abuse`.

The tracer is the only place the edges meet; deciding the route is left to routing.py.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import dns.resolver

from workflows.config.cdns import CDNDirectory, load_cdns
from workflows.config.hotlines import HotlineDirectory, load_hotlines
from workflows.config.placeholders import PlaceholderList, load_placeholders
from workflows.config.platforms import PlatformDirectory, PlatformMatch, load_platforms
from workflows.config.settings import Settings
from workflows.core.routing import Decision, Hosting, decide_route
from workflows.core.special_use import special_use
from workflows.core.urls import NormalizedURL
from workflows.errors import DNSFailure, LookupFailed
from workflows.trace.asn import Origin, lookup_origin
from workflows.trace.contacts import Choice, choose_contacts
from workflows.trace.dns import Resolution, make_resolver, resolve_host
from workflows.trace.ratelimit import RateLimiter
from workflows.trace.rdap import NetworkCache, NetworkRecord, Pace, RDAPClient, SharedCache
from workflows.trace.rdaphttp import rdap_http
from workflows.trace.registrar import RegistrarClient, RegistrarRecord

PARENT, PLACEHOLDER = "parent", "placeholder"
# RFC 9520 §3.2: a resolution failure (SERVFAIL, timeout) is cached for at least 1 s and
# at most 5 min. A few seconds lets one host's batch of URLs pay the timeout once, not
# once per URL, and still sees a healed server at the next retry.
DNS_FAILURE_TTL = 5.0


@dataclass
class NetworkTrace:
    """One address of the URL and the network that holds it."""

    ip: str
    special_use: str | None = None
    asn: int | None = None
    as_name: str | None = None
    cidr: str | None = None
    handle: str | None = None
    name: str | None = None
    country: str | None = None
    registry: str | None = None
    abuse: list[str] = field(default_factory=list)
    abuse_fallback: bool = False
    others: list[str] = field(default_factory=list)  # the next tiers' addresses, after abuse
    abuse_source: str | None = None  # where abuse came from (core.routing.SOURCES)
    # Every address RDAP names, most trusted first: {email, source[, placeholder]}.
    contacts: list[dict[str, Any]] = field(default_factory=list)
    cdn: dict[str, Any] | None = None
    cached: bool = False
    error: dict[str, Any] | None = None

    def hosting(self) -> Hosting:
        """Return what routing needs to know about this address."""
        error = self.error or {}
        cdn = (self.cdn or {}).get("abuse")
        return Hosting(
            ip=self.ip,
            special_use=self.special_use,
            country=(self.cdn or {}).get("country") or self.country,
            network=self.name or self.cidr,
            abuse=tuple(cdn or self.abuse),
            abuse_fallback=self.abuse_fallback and not self.cdn,
            error=error.get("message"),
            error_permanent=bool(error.get("permanent", True)),
            abuse_source="cdn" if cdn else self.abuse_source,
        )


@dataclass
class Trace:
    """Everything learnt about where a URL is hosted and where its notice should go."""

    url: str
    host: str
    display_host: str
    cnames: list[str] = field(default_factory=list)
    addresses: list[str] = field(default_factory=list)
    networks: list[NetworkTrace] = field(default_factory=list)
    country: str | None = None
    abuse: list[str] = field(default_factory=list)
    abuse_fallback: bool = False
    abuse_source: str | None = None  # where abuse came from: platform, cdn, role:abuse, …
    # Where the host's notices go when every abuse address bounced, best first: the routing
    # networks' next tiers (noc, technical, …); on a platform, the networks' own contacts.
    fallback: list[str] = field(default_factory=list)
    # The platform the URL's host is on ({key, name, matched, abuse, form, source}), or None.
    platform: dict[str, Any] | None = None
    # The networks' own contacts and their source: abuse itself, unless a platform's desk
    # took their place; then the party after the platform (its upstream).
    network_abuse: list[str] = field(default_factory=list)
    network_abuse_source: str | None = None
    cdn: str | None = None
    route: str | None = None
    reason: str | None = None
    hotline: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    traced_at: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON object of `takedown trace --json`."""
        return asdict(self)


class Tracer:
    """Trace URLs with one resolver, one RDAP client and one cache."""

    def __init__(
        self,
        resolver: dns.resolver.Resolver,
        rdap: RDAPClient,
        cdns: CDNDirectory,
        hotlines: HotlineDirectory,
        country: str,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        monotonic: Callable[[], float] = time.monotonic,
        registrars: RegistrarClient | None = None,
        platforms: PlatformDirectory | None = None,
        placeholders: PlaceholderList | None = None,
    ) -> None:
        self.resolver = resolver
        self.rdap = rdap
        # Domain lookups share the RDAP client's connections and registries' pace.
        if registrars is None:
            registrars = RegistrarClient(
                rdap.http, rdap.limiter, ttl=rdap.cache.ttl, base=rdap.base, max_wait=rdap.max_wait
            )
        self.registrars = registrars
        self.cdns = cdns
        self.platforms = load_platforms() if platforms is None else platforms
        self.placeholders = load_placeholders() if placeholders is None else placeholders
        self.hotlines = hotlines
        self.country = country
        self.clock = clock
        self.monotonic = monotonic
        self._dns_failures: dict[str, tuple[float, DNSFailure]] = {}
        self._lock = threading.Lock()
        self._batch = threading.local()  # this thread's batch: what it resolved and looked up

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        shared: SharedCache | None = None,
        pace: Callable[[RateLimiter], Pace] | None = None,
    ) -> Tracer:
        """Build a tracer that asks only the servers SETTINGS name; SHARED: the RDAP cache
        every worker shares (Redis), behind this process's own; PACE: wraps this process's
        rate limiter into the one every worker shares."""
        local = RateLimiter(settings.rdap_rate)
        resolver = make_resolver(settings.dns_servers, settings.dns_timeout)
        # Redirects are followed by rdaphttp.get_answer, held to the re-checks' egress rule.
        http = rdap_http(
            resolver,
            timeout=settings.rdap_timeout,
            base=settings.rdap_base,
            allow=settings.fetch_allow,
        )
        rdap = RDAPClient(
            http,
            local if pace is None else pace(local),
            NetworkCache(settings.rdap_cache_ttl),
            base=settings.rdap_base,
            max_wait=settings.rdap_max_wait,
            shared=shared,
        )
        registrars = RegistrarClient(
            http,
            rdap.limiter,
            ttl=settings.rdap_cache_ttl,
            base=settings.rdap_base,
            max_wait=settings.rdap_max_wait,
        )
        return cls(
            resolver,
            rdap,
            load_cdns(settings.cdns),
            load_hotlines(settings.hotlines),
            settings.country,
            registrars=registrars,
            platforms=load_platforms(settings.platforms),
            placeholders=load_placeholders(settings.placeholders),
        )

    def close(self) -> None:
        """Release the HTTP connections."""
        self.rdap.http.close()

    def trace(self, url: NormalizedURL) -> Trace:
        """Trace URL: resolve, look up every address, then route."""
        trace = Trace(
            url.url, url.host, url.display_host, notes=list(url.notes), traced_at=_iso(self.clock())
        )
        platform = self.platforms.match(url.host)
        trace.platform = platform.as_dict() if platform else None
        try:
            resolution = self.resolve(url.host)
        except DNSFailure as error:
            trace.cnames = error.cnames
            trace.error = error.as_dict()
            trace.reason = error.message
            return trace
        trace.cnames = list(resolution.cnames)
        trace.addresses = list(resolution.addresses)
        trace.notes += resolution.notes
        trace.networks = [self.trace_address(ip, trace.notes) for ip in resolution.addresses]
        self._route(trace, platform)
        return trace

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Trace a batch: inside it each host name is resolved and each address's origin
        looked up once, whatever the records' TTLs (a batch lasts seconds); between batches
        the resolver's cache honours them."""
        self._batch.memo = {}
        try:
            yield
        finally:
            self._batch.memo = None

    def _memo(self) -> dict[tuple[str, str], Any] | None:
        memo: dict[tuple[str, str], Any] | None = getattr(self._batch, "memo", None)
        return memo

    def resolve(self, host: str) -> Resolution:
        """Resolve HOST, once per batch (`batch`); a failure is answered again as well."""
        memo = self._memo()
        if memo is None:
            return self._resolve(host)
        key = ("host", host)
        if key not in memo:
            try:
                memo[key] = self._resolve(host)
            except DNSFailure as error:
                memo[key] = error
        found = memo[key]
        if isinstance(found, DNSFailure):
            raise DNSFailure(
                found.message, kind=found.kind, permanent=found.permanent, cnames=found.cnames
            )
        assert isinstance(found, Resolution)
        return found

    def _resolve(self, host: str) -> Resolution:
        """Resolve HOST, answering a recent transient failure from memory (RFC 9520)."""
        now = self.monotonic()
        with self._lock:
            until, failure = self._dns_failures.get(host, (0.0, None))
        if failure is not None and now < until:
            # A fresh exception: raising the stored one again would grow its traceback.
            raise DNSFailure(
                failure.message, kind=failure.kind, permanent=False, cnames=failure.cnames
            )
        try:
            return resolve_host(self.resolver, host)
        except DNSFailure as error:
            if not error.permanent:
                with self._lock:
                    self._dns_failures = {h: f for h, f in self._dns_failures.items() if f[0] > now}
                    self._dns_failures[host] = (now + DNS_FAILURE_TTL, error)
            raise

    def trace_address(self, ip: str, notes: list[str]) -> NetworkTrace:
        """Look up one address; a special-use one is never looked up further."""
        network = NetworkTrace(ip=ip, special_use=special_use(ip))
        if network.special_use is not None:
            return network
        origin = self._origin(ip, notes)
        if origin is not None:
            network.asn, network.as_name = origin.asn, origin.as_name
            network.registry = origin.registry
        cdn = self.cdns.match(network.asn, ip)
        if cdn is not None:
            network.cdn = {
                "name": cdn.name,
                "abuse": list(cdn.abuse),
                "abuse_form": cdn.abuse_form,
                "country": cdn.country,
            }
        try:
            record = self.rdap.lookup(ip, network.registry)
        except LookupFailed as error:
            network.error = error.as_dict()
            if error.retry_after is not None:
                network.error["retry_after"] = error.retry_after
        else:
            _fill(network, record, origin)
            # A CDN's own desk takes the notice: its network's parent is never needed.
            self._choose(network, record, notes, parent=not (cdn and cdn.abuse))
        return network

    def _choose(
        self, network: NetworkTrace, record: NetworkRecord, notes: list[str], *, parent: bool
    ) -> None:
        """Choose NETWORK's contacts from RECORD's, passing over registry placeholders; with
        nothing else, its parent network's (PARENT: may ask RDAP, only then), then a
        placeholder."""
        ranked = record.ranked()
        own = choose_contacts(ranked, self.placeholders)
        choice = own
        label = network.name or network.cidr or network.ip
        if not own.abuse:
            found = self._parent_contacts(record, network.registry, label, notes) if parent else ()
            if found:
                choice = Choice(found, PARENT)
            elif own.placeholders:
                choice = Choice(own.placeholders, PLACEHOLDER)
        for address in own.placeholders:
            registry = self.placeholders.registry_of(address) or "a registry"
            if address in choice.abuse:
                _note(notes, f"no other contact for {label}: using {registry}'s {address}")
            else:
                _note(notes, f"passed over registry placeholder {address} ({registry}) on {label}")
        network.abuse, network.abuse_source = list(choice.abuse), choice.source
        network.abuse_fallback, network.others = choice.fallback, list(choice.others)
        network.contacts = [
            {"email": c.address, "source": c.source}
            | ({"placeholder": True} if c.address in self.placeholders else {})
            for c in ranked
        ]

    def _parent_contacts(
        self, record: NetworkRecord, registry: str | None, label: str, notes: list[str]
    ) -> tuple[str, ...]:
        """Return the contacts of the network holding RECORD's (its parent), if RDAP has any."""
        try:
            parent = self.rdap.lookup_parent(record.cidr, record.handle, registry)
        except LookupFailed as error:
            _note(notes, f"{label} names no contact; its parent's lookup failed: {error.message}")
            return ()
        except ValueError:  # no CIDR to take the parent of
            return ()
        found = choose_contacts(parent.ranked(), self.placeholders) if parent else Choice()
        if parent is not None and found.abuse:
            name = parent.name or parent.cidr
            _note(notes, f"{label} names no contact: using its parent network's ({name})")
        return found.abuse

    def upstream_contacts(self, trace: dict[str, Any]) -> list[str]:
        """Return the abuse contacts of the routing network's parent (the upstream), if any;
        raise LookupFailed (transient) when none was found because a lookup failed for now."""
        networks = [n for n in trace.get("networks") or [] if n.get("cidr") and not n.get("error")]
        routing = [n for n in networks if n.get("country") == trace.get("country")] or networks
        failed: LookupFailed | None = None
        for network in routing:
            try:
                parent = self.rdap.lookup_parent(
                    network["cidr"], network.get("handle") or "", network.get("registry")
                )
            except LookupFailed as error:
                failed = failed if error.permanent else error
                continue
            own = set(network.get("abuse") or [])
            contacts = [a for a in parent.abuse if a not in own] if parent else []
            if contacts:
                return contacts
        if failed is not None:
            # "No upstream" would skip the escalation for good; a 500 or 429 only delays it.
            raise failed
        return []

    def registrar(self, host: str) -> RegistrarRecord | None:
        """Return the registrar of HOST's registered domain (RDAP), None when it has none;
        raise LookupFailed when the lookup failed."""
        return self.registrars.lookup(host)

    def registrar_contacts(self, trace: dict[str, Any]) -> list[str]:
        """Return the abuse contacts of the registrar of the traced host's domain, if any;
        raise LookupFailed (transient) when none was found because a lookup failed for now."""
        host = trace.get("host")
        if not isinstance(host, str) or not host:
            return []
        try:
            record = self.registrar(host)
        except LookupFailed as error:
            if error.permanent:  # no such domain, no RDAP server: there is no registrar step
                return []
            raise  # a 500 or 429 only delays the escalation
        return list(record.abuse) if record is not None else []

    def _origin(self, ip: str, notes: list[str]) -> Origin | None:
        memo = self._memo()
        try:
            if memo is None:
                origin = lookup_origin(self.resolver, ip)
            elif ("origin", ip) in memo:
                origin = memo[("origin", ip)]
            else:
                origin = memo[("origin", ip)] = lookup_origin(self.resolver, ip)
        except LookupFailed as error:
            notes.append(f"ASN lookup for {ip} failed: {error.message}")
            return None
        if origin is None:
            notes.append(f"{ip} is in no announced prefix (no ASN)")
        return origin

    def _route(self, trace: Trace, platform: PlatformMatch | None) -> None:
        desk = platform.platform.desk if platform else ()
        decision: Decision = decide_route(
            [n.hosting() for n in trace.networks],
            self.country,
            self.hotlines.referral_address,
            platform=desk,
        )
        trace.route = decision.route.value if decision.route else None
        trace.country = decision.country
        trace.abuse = list(decision.recipients)
        trace.abuse_fallback = decision.fallback
        trace.abuse_source = decision.source
        trace.network_abuse = list(decision.network_recipients)
        trace.network_abuse_source = decision.network_source
        trace.reason = decision.reason
        cdns = [
            n.cdn["name"]
            for n in trace.networks
            if n.cdn and n.hosting().country == decision.country
        ]
        trace.cdn = cdns[0] if cdns else None
        routing = [
            n for n in trace.networks if n.hosting().country == decision.country and not n.cdn
        ]
        # On a platform, the networks' own contacts come after the platform's desk.
        after = [*trace.network_abuse] if desk else []
        after += [a for n in routing for a in n.others]
        trace.fallback = list(dict.fromkeys(a for a in after if a not in trace.abuse))
        if platform is not None and decision.route is not None:
            kept = ", ".join(trace.network_abuse) or "none known"
            name = platform.platform.name
            _note(trace.notes, f"on the platform {name}: noticed there; network contacts: {kept}")
        if decision.hotline is not None and decision.country is not None:
            hotline = self.hotlines.get(decision.country)
            trace.hotline = {
                "country": decision.country,
                "email": decision.hotline,
                "name": hotline.name if hotline else None,
            }
        failed = [n.error for n in trace.networks if n.error]
        if (
            decision.route is None
            and failed
            and len(failed) == len([n for n in trace.networks if not n.special_use])
        ):
            trace.error = failed[0]


def _fill(network: NetworkTrace, record: NetworkRecord, origin: Origin | None) -> None:
    network.cidr, network.handle, network.name = record.cidr, record.handle, record.name
    # The network's own country (RDAP) decides, not the ASN's (ipwhois issue 278).
    network.country = record.country or (origin.country if origin else None)
    network.cached = record.cached


def _note(notes: list[str], note: str) -> None:
    """Add NOTE to the trace's notes once (a dual-stack host meets a network twice)."""
    if note not in notes:
        notes.append(note)


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
