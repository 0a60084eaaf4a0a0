"""Resolve names with dnspython, only through the servers the configuration names.

Translates dnspython's exceptions into LookupFailed:

    nxdomain     the name does not exist                      permanent
    no_address   the name exists but has no A or AAAA record  permanent
    cname_loop   the CNAME chain loops or is too long         permanent
    servfail     every server failed or refused               transient
    timeout      no server answered in time                   transient
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.message
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

from workflows.errors import DNSFailure
from workflows.trace.keyed import KeyedLocks

MAX_CHAIN = 16  # hops; real chains are 1-4 long (CDNs), longer ones are loops or tricks


@dataclass(frozen=True)
class Resolution:
    """What DNS says about one host name."""

    name: str
    cnames: tuple[str, ...]  # each hop's target, in order; the last is the canonical name
    addresses: tuple[str, ...]  # A records first, then AAAA, in answer order
    notes: tuple[str, ...] = ()  # partial failures worth showing (e.g. AAAA timed out)


class SharedResolver(dns.resolver.Resolver):
    """A resolver whose threads ask each name and type once at a time: a thread asking what
    another is asking waits for that answer, which the cache then gives it. The trace
    tasks of a worker trace side by side, and host names of one network in two tasks asked
    their AS's name twice, as two cache misses at once. (dnspython's cache is thread-safe
    but has no such wait; hence this.)"""

    def __init__(self, configure: bool = True) -> None:
        super().__init__(configure=configure)
        self._flights = KeyedLocks()

    def resolve(self, qname: Any, rdtype: Any = "A", *args: Any, **kwargs: Any) -> Any:
        """Resolve as dnspython does, once at a time per name and type."""
        with self._flights.hold((str(qname).lower().rstrip("."), str(rdtype))):
            return super().resolve(qname, rdtype, *args, **kwargs)


def make_resolver(servers: Sequence[tuple[str, int]], timeout: float) -> dns.resolver.Resolver:
    """Return a resolver asking only SERVERS, or the system's when SERVERS is empty."""
    if servers:
        # configure=False: never read /etc/resolv.conf, so no query can reach the
        # machine's own resolver when servers are configured.
        resolver = SharedResolver(configure=False)
        resolver.nameservers = [dns.nameserver.Do53Nameserver(h, p) for h, p in servers]
    else:
        resolver = SharedResolver()
    resolver.timeout = min(2.0, timeout)
    resolver.lifetime = timeout
    resolver.cache = dns.resolver.LRUCache(4096)
    return resolver


def resolve_host(resolver: dns.resolver.Resolver, host: str) -> Resolution:
    """Return the CNAME chain and addresses of HOST (an IP literal resolves to itself)."""
    try:
        return Resolution(host, (), (str(ipaddress.ip_address(host)),))
    except ValueError:
        pass
    cnames, a_records, a_error = _try_chase(resolver, host, "A")
    canonical = cnames[-1] if cnames else host
    _, aaaa_records, aaaa_error = _try_chase(resolver, canonical, "AAAA")
    addresses = tuple(dict.fromkeys(a_records + aaaa_records))
    if addresses:
        notes = tuple(
            f"{rdtype} lookup failed: {error.message}"
            for rdtype, error in (("A", a_error), ("AAAA", aaaa_error))
            if error is not None
        )
        return Resolution(host, tuple(cnames), addresses, notes)
    for error in (a_error, aaaa_error):
        if error is not None:
            raise error
    raise DNSFailure(
        f"{host} has no A or AAAA record", kind="no_address", permanent=True, cnames=cnames
    )


def query_txt(resolver: dns.resolver.Resolver, name: str) -> list[str] | None:
    """Return the TXT strings of NAME, or None when the name does not exist."""
    try:
        answer = resolver.resolve(name, "TXT", raise_on_no_answer=False, search=False)
    except dns.resolver.NXDOMAIN:
        return None
    except dns.exception.DNSException as error:
        raise _translate(error, name) from None
    if answer.rrset is None:
        return []
    return [b"".join(rdata.strings).decode("utf-8", "replace") for rdata in answer.rrset]


def _try_chase(
    resolver: dns.resolver.Resolver, name: str, rdtype: str
) -> tuple[list[str], list[str], DNSFailure | None]:
    """Chase NAME's CNAMEs for RDTYPE; return the chain, the records and any failure."""
    try:
        cnames, records = chase(resolver, name, rdtype)
    except DNSFailure as error:
        if error.kind == "nxdomain" and rdtype == "A":
            raise
        return error.cnames, [], error
    return cnames, records, None


def chase(resolver: dns.resolver.Resolver, name: str, rdtype: str) -> tuple[list[str], list[str]]:
    """Follow the CNAME chain from NAME ourselves (stub resolvers stop at a missing target)."""
    chain: list[str] = []
    current = name
    while True:
        try:
            answer = resolver.resolve(current, rdtype, raise_on_no_answer=False, search=False)
        except dns.resolver.NXDOMAIN as error:
            responses = error.responses()  # type: ignore[no-untyped-call]
            chain += _chain_of(responses.values(), current)
            raise _translate(error, chain[-1] if chain else name, chain) from None
        except dns.exception.DNSException as error:
            raise _translate(error, current, chain) from None
        hops = _chain_of([answer.response], current)
        for hop in hops:
            if hop in chain or hop == name or len(chain) >= MAX_CHAIN:
                raise DNSFailure(
                    f"CNAME chain from {name} loops or is longer than {MAX_CHAIN} hops",
                    kind="cname_loop",
                    permanent=True,
                    cnames=chain,
                )
            chain.append(hop)
        if answer.rrset is not None or not hops:
            records = [rdata.to_text() for rdata in answer.rrset or []]
            return chain, records
        current = chain[-1]


def _chain_of(responses: object, start: str) -> list[str]:
    """Return the CNAME targets that RESPONSES give, starting from START."""
    targets: list[str] = []
    for response in responses:  # type: ignore[attr-defined]
        if not isinstance(response, dns.message.QueryMessage):
            continue
        try:
            result = response.resolve_chaining()
        except dns.exception.DNSException:
            continue
        for rrset in result.cnames:
            targets.append(_text(rrset[0].target))
    return [t for t in dict.fromkeys(targets) if t != start]


def _text(name: dns.name.Name) -> str:
    return name.to_text(omit_final_dot=True).lower()


def _translate(
    error: dns.exception.DNSException, name: str, cnames: Sequence[str] = ()
) -> DNSFailure:
    """Map a dnspython exception to DNSFailure with its permanence."""
    if isinstance(error, dns.resolver.NXDOMAIN):
        message, kind, permanent = f"{name} does not exist (NXDOMAIN)", "nxdomain", True
    elif isinstance(error, dns.exception.Timeout):
        message, kind, permanent = f"DNS timeout resolving {name}", "timeout", False
    elif isinstance(error, dns.resolver.NoNameservers):
        message, kind, permanent = f"DNS servers failed for {name} (SERVFAIL)", "servfail", False
    else:
        message, kind, permanent = f"DNS error for {name}: {error}", "servfail", False
    return DNSFailure(message, kind=kind, permanent=permanent, cnames=cnames)
