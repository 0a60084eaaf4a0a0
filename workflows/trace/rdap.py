"""Look up the network of a public address over RDAP (RFC 7482 paths, RFC 9083 JSON).

All I/O is ours: one HTTP GET per network to TAKEDOWN_RDAP_BASE or the registry's own
server, rate-limited per registry and cached by network range. The network object is read
as ipwhois' `_RDAPNetwork` reads it (handle, name, country, the CIDRs of its range), but
its range in every shape registries write it (ranges.py: prefix lengths, zero-padded IPv4,
cidr0, a CIDR handle); its contacts are read from the raw JSON by contacts.py, nested
entities and remarks included, so ARIN's abuse POC costs no extra request.

    rdap_not_found     404: no registry knows the address            permanent
    rdap_rate_limited  429 that outlasts TAKEDOWN_RDAP_MAX_WAIT       transient (retry_after)
                       (or its block on the registry, unasked)
    rdap_unavailable   5xx, connection error, timeout                transient
                       (an RFC 9083 error object sent with status 200 counts as its errorCode)
    rdap_malformed     not JSON (a body cut short), or larger than   transient
                       rdaphttp.MAX_BODY
                       JSON, but no ip network object with a usable  permanent: the same
                       range holding the address                     record comes again
    rdap_refused       a redirect that is not https, goes past five  permanent
                       hops or to a special-use address (rdaphttp.py)

Everything in an answer is untrusted: nesting deeper than MAX_JSON_DEPTH is cut off before
parsing (a server that serialises an entity loop nests without end), entity loops are
recognised by handle, and only header-safe e-mail addresses are kept.
"""

from __future__ import annotations

import bisect
import email.utils
import ipaddress
import json
import math
import re
import threading
import time
from collections.abc import Callable, Container
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import Any, Protocol

import httpx
from ipwhois.rdap import RIR_RDAP

from workflows.config.placeholders import shipped_placeholders
from workflows.errors import LookupFailed
from workflows.trace.contacts import Contact, choose_contacts, rank_contacts
from workflows.trace.keyed import KeyedLocks
from workflows.trace.ranges import cidr_text, network_range
from workflows.trace.rdaphttp import Answer, get_answer

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
PARENT_MISS_TTL = 3600.0  # seconds before a prefix with no upstream in RDAP is asked again
FAILURE_TTL = 5.0  # seconds a failed lookup of an address is answered from memory, at most
# JSON levels kept: an entity at MAX_ENTITY_DEPTH with its jCard sits at level 19. Deeper
# values become null, so neither the decoder nor any later walk can exhaust the stack.
MAX_JSON_DEPTH = 32
MAX_FIELD = 255  # characters kept of a handle or a name
MAX_RETRY_AFTER = 3600.0  # one header must not silence a registry for longer than this
# A JSON string (escapes included) or one bracket: enough to track nesting without parsing.
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
_CLOSING = {"[": "]", "{": "}"}


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
    # The next tiers' addresses after the chosen ones (remarks, noc, technical, …): where
    # a notice goes when every abuse address bounced, before the upstream.
    others: tuple[str, ...] = ()
    # Where `abuse` came from (contacts.py: role:abuse, remarks, abuse-local-part, …); None
    # when the record names no contact, or in a record shared before sources were kept.
    abuse_source: str | None = None
    # Every address the answer names, (address, source), most trusted first, registry
    # placeholders included: the tracer chooses again with the operator's placeholder list.
    contacts: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        """Take the lists a shared (JSON) record comes back with as tuples."""
        object.__setattr__(self, "abuse", tuple(self.abuse))
        object.__setattr__(self, "others", tuple(self.others))
        pairs = tuple((str(a), str(s)) for a, s in self.contacts if isinstance(a, str))
        object.__setattr__(self, "contacts", pairs)
        if self.abuse_source is None and self.abuse and not self.abuse_fallback:
            object.__setattr__(self, "abuse_source", "role:abuse")  # shared before sources

    def ranked(self) -> list[Contact]:
        """Return the record's contacts, most trusted first (rebuilt for an older record)."""
        if self.contacts:
            return [Contact(address, source) for address, source in self.contacts]
        first = self.abuse_source or "role:other"
        return [Contact(a, first) for a in self.abuse] + [
            Contact(a, "role:other") for a in self.others if a not in self.abuse
        ]


class NetworkCache:
    """Network records by address range, each kept for TTL seconds."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
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


class Pace(Protocol):
    """A per-registry rate limit: this process's (`RateLimiter`) or every worker's."""

    def acquire(self, key: str, max_wait: float = math.inf) -> float | None:
        """Wait for KEY's turn; None when it is held back longer than MAX_WAIT."""

    def blocked_for(self, key: str) -> float:
        """Return the seconds KEY stays held back."""

    def block(self, key: str, seconds: float) -> None:
        """Hold KEY back for SECONDS."""


class SharedCache(Protocol):
    """A second-level cache every worker shares (`workflows.trace.shared.SharedNetworks`)."""

    def get(self, address: str) -> NetworkRecord | None:
        """Return the most specific record holding ADDRESS, or None."""

    def put(self, record: NetworkRecord) -> None:
        """Share RECORD."""

    def failure(self, address: str) -> LookupFailed | None:
        """Return the failure another worker had looking ADDRESS up lately, or None."""

    def fail(self, address: str, error: LookupFailed, ttl: float) -> None:
        """Share that looking ADDRESS up failed with ERROR, for TTL seconds."""

    def hold(self, name: str) -> AbstractContextManager[None]:
        """Hold the lock NAME among every worker while the block runs."""


class RDAPClient:
    """Fetch and parse RDAP network objects, cached (in the process, then shared) and
    rate-limited."""

    def __init__(
        self,
        http: httpx.Client,
        limiter: Pace,
        cache: NetworkCache,
        *,
        base: str | None = None,
        max_wait: float = 5.0,
        shared: SharedCache | None = None,
    ) -> None:
        self.http = http
        self.shared = shared
        self.limiter = limiter
        self.cache = cache
        self.base = base
        self.max_wait = max_wait
        self.queries = 0  # HTTP requests made: what the cache saves
        # Parents (upstreams) in a cache of their own: a parent's larger range must never
        # answer for an address whose own, smaller network is simply not cached yet.
        self.parents = NetworkCache(cache.ttl)
        # Parent lookups that found no network, by prefix, until when: a network with no
        # upstream in RDAP (404) is asked again after PARENT_MISS_TTL, not on every
        # escalation. A transient failure (429, 5xx) is not kept: the step that needed it
        # is delayed with the policy's backoff (trace_retry) and the rate limit holds.
        self._parent_misses: dict[str, tuple[float, LookupFailed]] = {}
        # Lookups of an address that failed (a 404, a 5xx, a timeout, a malformed answer),
        # until when: the other URLs of a batch on that address, and other workers through
        # the shared cache, get the same answer for failure_ttl instead of asking the
        # registry (or waiting out its timeout) once each. Our own pacing (a 429 or the
        # rate limit) is not kept: the limiter already knows when to ask again.
        self._misses: dict[str, tuple[float, LookupFailed]] = {}
        # The engine shortens it to the policy's first trace retry, so a retry always asks.
        self.failure_ttl = FAILURE_TTL
        # One lookup at a time per registry: a thread that waited finds the network the
        # one before it fetched in the cache, instead of asking the registry again (the
        # rate limit allows one request at a time per registry anyway).
        self._registry_locks = KeyedLocks()
        self._clock = cache.clock

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
        with self._registry_locks.hold(registry or "unknown"):
            cached = self.cache.get(address)  # fetched by the thread before us?
            if cached is not None:
                return cached
            if self.shared is None:
                return self._ask(address, registry)
            known = self.shared.get(address)
            if known is None:
                # One worker at a time asks a registry: one that waited finds the network
                # the worker before it fetched, instead of asking for it again.
                with self.shared.hold(f"registry:{registry or 'unknown'}"):
                    known = self.shared.get(address)
                    if known is None:
                        return self._ask(address, registry)
            self.cache.put(known)  # another worker asked the registry already
            return known

    def _ask(self, address: str, registry: str | None) -> NetworkRecord:
        """Ask the registry for the network holding ADDRESS; cache and share the answer."""
        self._raise_recent_failure(address)
        url = self.url_for(address, registry)
        try:
            data = self._fetch(url, registry or "unknown")
            record = parse_network(data, url, address)
        except LookupFailed as error:
            self._remember_failure(address, error)
            raise
        self.cache.put(record)
        if self.shared is not None:
            self.shared.put(record)
        return record

    def _raise_recent_failure(self, address: str) -> None:
        """Raise the failure a lookup of ADDRESS had lately, here or in another worker."""
        now = self._clock()
        until, failure = self._misses.get(address, (0.0, None))
        if failure is None or now >= until:
            failure = self.shared.failure(address) if self.shared is not None else None
        if failure is not None:
            # A fresh exception: raising the stored one again would grow its traceback.
            raise LookupFailed(failure.message, kind=failure.kind, permanent=failure.permanent)

    def _remember_failure(self, address: str, error: LookupFailed) -> None:
        """Keep ERROR for ADDRESS a while, unless it is our own pacing (429, rate limit)."""
        if error.kind == "rdap_rate_limited":
            return
        now = self._clock()
        self._misses = {k: v for k, v in self._misses.items() if v[0] > now}
        self._misses[address] = (now + self.failure_ttl, error)
        if self.shared is not None:
            self.shared.fail(address, error, self.failure_ttl)

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
            record = self._fetch_parent(parent, registry)
        return None if record.handle == handle else record

    def _fetch_parent(self, parent: IPNetwork, registry: str | None) -> NetworkRecord:
        """Ask RDAP for the network holding PARENT; remember a failure for a while."""
        key, now = str(parent), self._clock()
        until, failure = self._parent_misses.get(key, (0.0, None))
        if failure is not None and now < until:
            raise LookupFailed(failure.message, kind=failure.kind, permanent=True)
        # RFC 7482 §3.1.1: /ip/<prefix>/<len> answers the smallest network holding it.
        url = f"{self.url_for(str(parent.network_address), registry)}/{parent.prefixlen}"
        try:
            data = self._fetch(url, registry or "unknown")
            record = parse_network(data, url, str(parent.network_address))
        except LookupFailed as error:
            if error.permanent:  # a transient failure is the workflow's to retry (backoff)
                self._parent_misses = {k: v for k, v in self._parent_misses.items() if v[0] > now}
                self._parent_misses[key] = (now + PARENT_MISS_TTL, error)
            raise
        self.parents.put(record)
        return record

    def _fetch(self, url: str, key: str) -> Any:
        """GET URL as JSON, waiting out a Retry-After of at most max_wait, once."""
        for attempt in range(2):
            # A long block fails at once: sleeping it out would hold a worker thread for
            # as long as the server asked (an hour, say) and delay every other lookup.
            if self.limiter.acquire(key, max_wait=self.max_wait) is None:
                raise rate_limited(url, self.limiter.blocked_for(key))
            self.queries += 1
            answer = get_answer(self.http, url)
            if answer.status != 429:
                return _json_of(answer, url)
            wait = retry_after(answer.retry_after)
            self.limiter.block(key, wait)
            if attempt == 1 or wait > self.max_wait:
                raise rate_limited(url, wait)
        raise AssertionError("unreachable")


def rate_limited(url: str, wait: float) -> LookupFailed:
    """Return the transient failure of a lookup held back WAIT seconds by a registry."""
    # Whole seconds: the reason is stored on the case, and a new one each try is noise.
    return LookupFailed(
        f"RDAP server rate-limited us (429, retry after {math.ceil(wait)}s): {url}",
        kind="rdap_rate_limited",
        permanent=False,
        retry_after=wait,
    )


def retry_after(value: str | None, now: float | None = None) -> float:
    """Return the seconds a Retry-After header asks for (RFC 9110 §10.2.3); 60 if unreadable."""
    if value is None:
        return 60.0
    value = value.strip()
    if value.isascii() and value.isdigit():  # "²".isdigit() is true, but not a number
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, OverflowError):
        return 60.0
    wait = when - (time.time() if now is None else now)
    return min(max(0.0, wait), MAX_RETRY_AFTER)


def _json_of(answer: Answer, url: str) -> Any:
    status = answer.status
    if status == 404:
        raise LookupFailed(f"no RDAP record (404): {url}", kind="rdap_not_found", permanent=True)
    if status != 200:
        raise LookupFailed(
            f"RDAP server answered {status}: {url}", kind="rdap_unavailable", permanent=False
        )
    return decode_json(answer.body, url)


def decode_json(content: bytes, source: str) -> Any:
    """Parse an RDAP answer (RFC 8259 JSON, UTF-8), cutting nesting below MAX_JSON_DEPTH."""
    try:
        return json.loads(prune_depth(content.decode("utf-8"), MAX_JSON_DEPTH))
    except ValueError:  # UnicodeDecodeError and JSONDecodeError included
        raise LookupFailed(
            f"RDAP answer is not JSON: {source}", kind="rdap_malformed", permanent=False
        ) from None


def prune_depth(text: str, limit: int) -> str:
    """Return JSON TEXT with every value nested deeper than LIMIT replaced by null."""
    pieces: list[str] = []
    opened: list[str] = []
    kept, cut = 0, -1
    for token in _JSON_TOKEN.finditer(text):
        char = token.group()
        if char[0] == '"':
            continue
        if char in _CLOSING:
            opened.append(char)
            if len(opened) == limit + 1:
                cut = token.start()
            continue
        if not opened or _CLOSING[opened.pop()] != char:
            raise ValueError("unbalanced brackets")
        if len(opened) == limit:
            pieces += [text[kept:cut], "null"]
            kept = token.end()
    if opened:  # unclosed: not JSON, and the decoder must not descend into it
        raise ValueError("unclosed brackets")
    return "".join([*pieces, text[kept:]])


def parse_network(
    data: Any, source: str, address: str | None = None, placeholders: Container[str] | None = None
) -> NetworkRecord:
    """Build a NetworkRecord from an RDAP ip network object (that holds ADDRESS, if given).

    Its contacts are chosen passing over the registry placeholders (PLACEHOLDERS, or the
    shipped list), so even a parent found for an escalation never names one while it names
    anything else.
    """
    if isinstance(data, dict) and _error_code(data.get("errorCode")) is not None:
        raise _error_object(data["errorCode"], source)
    if not isinstance(data, dict) or data.get("objectClassName", "ip network") != "ip network":
        raise _malformed(f"RDAP answer is not an ip network object: {source}")
    # A range that is upside down, mixes versions or misses the address asked for would be
    # cached and then answer for addresses it has nothing to do with.
    found = network_range(data, address)
    if found is None:
        holding = f" holding {address}" if address else ""
        raise _malformed(f"RDAP network object has no usable range{holding}: {source}")
    start, end = found
    contacts = rank_contacts(data)
    choice = choose_contacts(
        contacts, shipped_placeholders() if placeholders is None else placeholders
    )
    cidr = cidr_text(found)
    country = _text(data.get("country"))
    return NetworkRecord(
        handle=_text(data.get("handle")) or cidr,
        cidr=cidr,
        start=str(start),
        end=str(end),
        name=_text(data.get("name")),
        country=country.upper() if country is not None and _is_country(country) else None,
        abuse=choice.abuse,
        abuse_fallback=choice.fallback,
        source=source,
        others=choice.others,
        abuse_source=choice.source,
        contacts=tuple((c.address, c.source) for c in contacts),
    )


def _malformed(message: str) -> LookupFailed:
    # Permanent: asking again returns the same record; the case needs an analyst (who can
    # route it by hand) and is traced again at the policy's retrace interval.
    return LookupFailed(message, kind="rdap_malformed", permanent=True)


def _error_code(value: Any) -> int | None:
    """Return an RFC 9083 §6 errorCode, if VALUE is one."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _error_object(code: int, source: str) -> LookupFailed:
    """Turn an error object a server sent with status 200 into the failure its code means."""
    if code == 404:
        return LookupFailed(
            f"no RDAP record ({code}): {source}", kind="rdap_not_found", permanent=True
        )
    if code == 429 or code >= 500:
        message = f"RDAP server answered an error object ({code}): {source}"
        return LookupFailed(message, kind="rdap_unavailable", permanent=False)
    return _malformed(f"RDAP answer is an error object ({code}): {source}")


def _text(value: Any) -> str | None:
    """Return a string field stripped and cut to MAX_FIELD characters; None if not one."""
    return value.strip()[:MAX_FIELD] if isinstance(value, str) else None


def _is_country(value: Any) -> bool:
    """Tell whether VALUE looks like an ISO 3166 alpha-2 code."""
    return isinstance(value, str) and len(value) == 2 and value.isascii() and value.isalpha()
