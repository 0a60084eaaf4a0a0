"""Find the abuse contact of a host name's registrar: one RDAP domain lookup per domain.

The host's registered domain comes from the public suffix list's ICANN section (the copy
the `publicsuffixlist` package ships; it is never downloaded). Only the ICANN section: a
registrar holds `github.io`, not `user.github.io`, so every site on a private-suffix
platform shares its platform's registration (the platform itself is the host's and the
platform rules' business). The domain's RDAP server is TAKEDOWN_RDAP_BASE when set, else
the one IANA's bootstrap file names for its TLD (RFC 9224; `workflows/data/rdap-dns.json`,
the longest matching label, the first https URL).

The answer is a domain object (RFC 9083 §5.3) in ICANN's gTLD RDAP response profile: the
entity with role `registrar` carries the registrar's IANA id (`publicIds`), name (jCard
`fn`) and, nested inside it, the entity with role `abuse` (profile §2.4.5). Where that is
missing, the abuse contact an earlier domain's answer gave for the same registrar serves;
then an `abuse` entity at the top level of the answer.

    rdap_no_server     no TAKEDOWN_RDAP_BASE and no bootstrap entry   permanent
    rdap_not_found     404: no such domain                            permanent
    rdap_malformed     JSON, but not this domain's domain object      permanent
                       not JSON, or larger than rdaphttp.MAX_BODY     transient
    rdap_refused       a redirect refused (rdaphttp.py)               permanent
    rdap_rate_limited  429 that outlasts TAKEDOWN_RDAP_MAX_WAIT       transient (retry_after)
    rdap_unavailable   5xx, connection error, timeout                 transient

Answers are kept per registered domain for the network cache's TTL; failures for
failure_ttl, permanent ones for MISS_TTL; a registrar's abuse contact per registrar.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib.resources import files
from typing import Any
from urllib.parse import urlsplit

import httpx
from publicsuffixlist import PublicSuffixList

from workflows.errors import LookupFailed
from workflows.trace.contacts import MAX_ENTITIES, entity_roles, extract_contacts, vcard_emails
from workflows.trace.keyed import KeyedLocks
from workflows.trace.rdap import FAILURE_TTL, Pace, decode_json, rate_limited, retry_after
from workflows.trace.rdaphttp import get_answer

MISS_TTL = 3600.0  # seconds a permanent failure (no such domain) is answered from memory
PRUNE_EVERY = 60.0  # seconds between sweeps of expired entries out of the caches
MAX_TEXT = 200  # characters kept of a registrar's name or handle
IANA_ID = "iana registrar id"  # ICANN gTLD RDAP profile §2.4.1 publicIds type


@dataclass(frozen=True)
class RegistrarRecord:
    """What a domain's RDAP answer says about its registrar."""

    domain: str  # the registered domain looked up
    name: str | None
    iana_id: str | None
    handle: str | None
    abuse: tuple[str, ...]
    abuse_source: str | None  # "registrar", "registrar (earlier answer)", "domain", None
    source: str  # the URL that answered
    cached: bool = False


@functools.cache
def _suffixes() -> PublicSuffixList:
    """Return the shipped public suffix list's ICANN section (parsed once)."""
    return PublicSuffixList(only_icann=True)


def registered_domain(host: str) -> str | None:
    """Return the domain a registrar holds for HOST (an A-label name), or None.

    None for an IP literal, a malformed name, and a name that is itself a public suffix.
    """
    name = host.strip().rstrip(".").lower()
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        pass
    else:
        return None
    labels = name.split(".")
    if not name.isascii() or len(name) > 253 or not all(0 < len(lb) <= 63 for lb in labels):
        return None
    found = _suffixes().privatesuffix(name)
    return found if isinstance(found, str) else None


@dataclass(frozen=True)
class Bootstrap:
    """IANA's RDAP bootstrap for domain names (RFC 9224): base URL by TLD label."""

    publication: str
    servers: dict[str, str]

    @classmethod
    def from_json(cls, data: Any) -> Bootstrap:
        """Read a bootstrap file's JSON; ValueError when it is not one."""
        if not isinstance(data, dict) or not isinstance(data.get("services"), list):
            raise ValueError("not an RDAP bootstrap file: no services list")
        servers: dict[str, str] = {}
        for service in data["services"]:
            if not (isinstance(service, list) and len(service) == 2):
                raise ValueError(f"not an RDAP bootstrap service: {service!r:.80}")
            labels, urls = service
            # RFC 9224 §3: a client should use the https URL where one is given.
            https = [u for u in urls if isinstance(u, str) and u.startswith("https://")]
            for label in labels if https else ():
                if isinstance(label, str):
                    servers.setdefault(label.lower().strip("."), https[0])
        return cls(str(data.get("publication") or ""), servers)

    def server_for(self, domain: str) -> str | None:
        """Return the base URL for DOMAIN: the entry matching most of its labels."""
        labels = domain.lower().split(".")
        for start in range(len(labels)):
            found = self.servers.get(".".join(labels[start:]))
            if found is not None:
                return found
        return None


@functools.cache
def shipped_bootstrap() -> Bootstrap:
    """Return the bootstrap file shipped in workflows/data (parsed once)."""
    text = (files("workflows") / "data" / "rdap-dns.json").read_text(encoding="utf-8")
    return Bootstrap.from_json(json.loads(text))


class RegistrarClient:
    """Look up registrars of domains over RDAP, cached in the process and rate-limited."""

    def __init__(
        self,
        http: httpx.Client,
        limiter: Pace,
        *,
        ttl: float,
        base: str | None = None,
        bootstrap: Bootstrap | None = None,
        max_wait: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.http = http
        self.limiter = limiter
        self.ttl = ttl
        self.base = base
        self.bootstrap = bootstrap if bootstrap is not None else shipped_bootstrap()
        self.max_wait = max_wait
        self.failure_ttl = FAILURE_TTL  # the engine may shorten it to its first trace retry
        self.queries = 0  # HTTP requests made: what the caches save
        self._clock = clock
        self._domains: dict[str, tuple[float, RegistrarRecord | LookupFailed]] = {}
        self._abuse: dict[str, tuple[float, tuple[str, ...]]] = {}  # by registrar key
        self._next_prune = 0.0
        self._lock = threading.Lock()
        # One lookup at a time per RDAP server: a thread that waited finds the answer the
        # one before it fetched, instead of asking again for the same domain.
        self._server_locks = KeyedLocks()

    def url_for(self, domain: str) -> tuple[str, str]:
        """Return the URL that answers for DOMAIN and the pace key of its RDAP server."""
        server = self.bootstrap.server_for(domain)
        if self.base is not None:
            # Paced by the registry behind the base (as IP lookups are), else by the base.
            url = f"{self.base}/domain/{domain}"
            return url, urlsplit(server or url).hostname or "unknown"
        if server is None:
            raise LookupFailed(
                f"no RDAP server for the TLD of {domain} (IANA bootstrap "
                f"{self.bootstrap.publication})",
                kind="rdap_no_server",
                permanent=True,
            )
        return f"{server.rstrip('/')}/domain/{domain}", urlsplit(server).hostname or "unknown"

    def lookup(self, host: str) -> RegistrarRecord | None:
        """Return the registrar of HOST's registered domain; None when it has none."""
        domain = registered_domain(host)
        if domain is None:
            return None
        known = self._known(domain)
        if known is not None:
            return known
        url, key = self.url_for(domain)
        with self._server_locks.hold(key):
            known = self._known(domain)  # fetched by the thread before us?
            if known is not None:
                return known
            try:
                record = parse_domain(self._fetch(url, key), url, domain)
            except LookupFailed as error:
                self._remember_failure(domain, error)
                raise
            record = self._with_registrar_abuse(record)
            self._keep(domain, self.ttl, record)
            return record

    def _known(self, domain: str) -> RegistrarRecord | None:
        """Return the live record of DOMAIN; raise its live failure anew; else None."""
        with self._lock:
            until, found = self._domains.get(domain, (0.0, None))
        if found is None or self._clock() >= until:
            return None
        if isinstance(found, LookupFailed):
            # A fresh exception: raising the stored one again would grow its traceback.
            raise LookupFailed(found.message, kind=found.kind, permanent=found.permanent)
        return replace(found, cached=True)

    def _remember_failure(self, domain: str, error: LookupFailed) -> None:
        """Keep ERROR for DOMAIN a while, unless it is our own pacing (429, rate limit)."""
        if error.kind == "rdap_rate_limited":
            return
        self._keep(domain, MISS_TTL if error.permanent else self.failure_ttl, error)

    def _keep(self, domain: str, ttl: float, found: RegistrarRecord | LookupFailed) -> None:
        """Keep what looking DOMAIN up found for TTL seconds; forget what expired."""
        with self._lock:
            now = self._clock()
            if now >= self._next_prune:  # now and then: a sweep per lookup would cost O(n)
                self._next_prune = now + PRUNE_EVERY
                self._domains = {k: v for k, v in self._domains.items() if v[0] > now}
                self._abuse = {k: v for k, v in self._abuse.items() if v[0] > now}
            self._domains[domain] = (now + ttl, found)

    def _with_registrar_abuse(self, record: RegistrarRecord) -> RegistrarRecord:
        """Keep the registrar's own abuse contact, or use the one an earlier answer gave."""
        keys = _registrar_keys(record)
        with self._lock:
            now = self._clock()
            if record.abuse_source == "registrar":
                for key in keys:
                    self._abuse[key] = (now + self.ttl, record.abuse)
                return record
            for key in keys:
                until, abuse = self._abuse.get(key, (0.0, ()))
                if abuse and now < until:
                    return replace(record, abuse=abuse, abuse_source="registrar (earlier answer)")
        return record

    def _fetch(self, url: str, key: str) -> Any:
        """GET URL as JSON, waiting out a Retry-After of at most max_wait, once."""
        for attempt in range(2):
            if self.limiter.acquire(key, max_wait=self.max_wait) is None:
                raise rate_limited(url, self.limiter.blocked_for(key))
            self.queries += 1
            answer = get_answer(self.http, url)
            status = answer.status
            if status == 200:
                return decode_json(answer.body, url)
            if status == 404:
                raise LookupFailed(
                    f"no such domain (404): {url}", kind="rdap_not_found", permanent=True
                )
            if status != 429:
                raise LookupFailed(
                    f"RDAP server answered {status}: {url}",
                    kind="rdap_unavailable",
                    permanent=False,
                )
            wait = retry_after(answer.retry_after)
            self.limiter.block(key, wait)
            if attempt == 1 or wait > self.max_wait:
                raise rate_limited(url, wait)
        raise AssertionError("unreachable")


def parse_domain(data: Any, source: str, domain: str) -> RegistrarRecord:
    """Build a RegistrarRecord from DATA, the RDAP domain object of DOMAIN."""
    if not isinstance(data, dict) or data.get("objectClassName", "domain") != "domain":
        raise _not_domain(f"RDAP answer is not a domain object: {source}")
    ldh = data.get("ldhName")
    if ldh is not None and (not isinstance(ldh, str) or ldh.rstrip(".").lower() != domain):
        raise _not_domain(f"RDAP answer is not the domain object of {domain}: {source}")
    entities = data.get("entities")
    entities = entities[:MAX_ENTITIES] if isinstance(entities, list) else []
    registrar: dict[str, Any] = next((e for e in entities if "registrar" in entity_roles(e)), {})
    # ICANN gTLD RDAP profile §2.4.5: the abuse contact nests in the registrar entity.
    nested, _ = extract_contacts(registrar)
    top = [
        email
        for entity in entities
        if "abuse" in entity_roles(entity)
        for email in vcard_emails(entity.get("vcardArray"))
    ]
    abuse, origin = (nested, "registrar") if nested else (list(dict.fromkeys(top)), "domain")
    return RegistrarRecord(
        domain=domain,
        name=_text(_vcard_text(registrar.get("vcardArray"), "fn")),
        iana_id=_iana_id(registrar.get("publicIds")),
        handle=_text(registrar.get("handle")),
        abuse=tuple(abuse),
        abuse_source=origin if abuse else None,
        source=source,
    )


def _not_domain(message: str) -> LookupFailed:
    return LookupFailed(message, kind="rdap_malformed", permanent=True)


def _registrar_keys(record: RegistrarRecord) -> list[str]:
    """Return the keys a registrar's abuse contact is kept under: IANA id, handle."""
    keys = [f"iana:{record.iana_id}"] if record.iana_id else []
    return keys + ([f"handle:{record.handle.upper()}"] if record.handle else [])


def _iana_id(public_ids: Any) -> str | None:
    """Return the IANA Registrar ID among an entity's publicIds (RFC 9083 §4.8)."""
    for entry in public_ids[:MAX_ENTITIES] if isinstance(public_ids, list) else ():
        if not isinstance(entry, dict):
            continue
        kind, value = entry.get("type"), entry.get("identifier")
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(kind, str) and kind.strip().lower() == IANA_ID:
            return _text(value)
    return None


def _vcard_text(vcard: Any, name: str) -> Any:
    """Return the value of a jCard's first NAME property (RFC 7095), or None."""
    if not (isinstance(vcard, list) and len(vcard) == 2 and isinstance(vcard[1], list)):
        return None
    for prop in vcard[1]:
        if isinstance(prop, list) and len(prop) >= 4 and prop[0] == name:
            return prop[3]
    return None


def _text(value: Any) -> str | None:
    """Return VALUE as printable text of at most MAX_TEXT characters; None if there is none."""
    if not isinstance(value, str):
        return None
    kept = "".join(c for c in value[: MAX_TEXT * 4] if unicodedata.category(c)[0] != "C")
    return kept.strip()[:MAX_TEXT] or None
