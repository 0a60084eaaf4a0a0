"""Find the origin AS of an address with Team Cymru's IP-to-ASN service over DNS.

Queries go through our resolver (TAKEDOWN_DNS_SERVERS), never to whois port 43 or HTTP:
the `asn_methods=["dns"]` of ipwhois, with the same field meanings as its IPASN results.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import dns.resolver

from workflows.trace.dns import query_txt

REGISTRIES = frozenset({"arin", "ripencc", "apnic", "lacnic", "afrinic"})


@dataclass(frozen=True)
class Origin:
    """The BGP origin of an address, as Team Cymru announces it."""

    asn: int
    asns: tuple[int, ...]  # a multi-origin prefix lists several (ipwhois issue 304)
    prefix: str | None
    country: str | None  # the ASN's registration country, not the network's (issue 278)
    registry: str | None
    as_name: str | None


def origin_query_name(address: str) -> str:
    """Return the Cymru TXT name for ADDRESS (origin / origin6 zone)."""
    ip = ipaddress.ip_address(address)
    if ip.version == 4:
        return ".".join(reversed(str(ip).split("."))) + ".origin.asn.cymru.com"
    nibbles = ip.exploded.replace(":", "")
    return ".".join(reversed(nibbles)) + ".origin6.asn.cymru.com"


def lookup_origin(resolver: dns.resolver.Resolver, address: str) -> Origin | None:
    """Return the origin AS of ADDRESS, or None when no prefix announces it."""
    answers = query_txt(resolver, origin_query_name(address))
    if not answers:
        return None
    origin = parse_origin(answers[0])
    if origin is None:
        return None
    names = query_txt(resolver, f"AS{origin.asn}.asn.cymru.com") or []
    as_name = parse_as_name(names[0]) if names else None
    return Origin(origin.asn, origin.asns, origin.prefix, origin.country, origin.registry, as_name)


def parse_origin(text: str) -> Origin | None:
    """Parse "ASN [ASN…] | prefix | CC | registry | date"; None when it is not that."""
    fields = [field.strip(' "\n') for field in text.split("|")]
    if len(fields) < 4:
        return None
    # isascii: "²".isdigit() is true too, and int() refuses it.
    asns = tuple(int(part) for part in fields[0].split() if part.isascii() and part.isdigit())
    if not asns:
        return None
    registry = fields[3].lower() if fields[3].lower() in REGISTRIES else None
    country = fields[2].upper() if len(fields[2]) == 2 and fields[2].isalpha() else None
    return Origin(asns[0], asns, fields[1] or None, country, registry, None)


def parse_as_name(text: str) -> str | None:
    """Return the description field of an "AS…" TXT answer."""
    fields = [field.strip(' "\n') for field in text.split("|")]
    return fields[4] if len(fields) >= 5 and fields[4] else None
