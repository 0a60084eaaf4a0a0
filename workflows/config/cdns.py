"""CDNs and reverse proxies, recognised by the AS number or prefix of an address.

A site behind a CDN shows the CDN's addresses, not its origin host's, so a notice sent
by ASN would go to the CDN. The directory is an operator-editable TOML file (see
`data/cdns.toml`, whose header documents the format):

    [cdn.cloudflare]
    name = "Cloudflare"
    asns = [13335, 209242]
    prefixes = []                      # optional extra CIDRs
    abuse = ["abuse@cloudflare.com"]
    abuse_form = "https://abuse.cloudflare.com/"
    country = "US"
    note = "free text"

Every problem is a `ConfigError` naming the file and line, so start-up stops on it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

from workflows.config.tomlfile import (
    Entry,
    Source,
    country_problem,
    load_toml,
    quote,
    url_problem,
)
from workflows.core.emails import email_problem

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

KEYS = ("name", "asns", "prefixes", "abuse", "abuse_form", "country", "note")
MAX_ASN = 4294967295
# A prefix this broad would claim most of the internet for one CDN: surely a typo.
_MIN_PREFIX = {4: 8, 6: 16}
_HINT = 'use [cdn.name] tables, name being lowercase like "cloudflare"'


@dataclass(frozen=True)
class CDN:
    """One CDN or reverse proxy and where to report content it serves."""

    key: str
    name: str
    asns: frozenset[int]
    prefixes: tuple[IPNetwork, ...]
    abuse: tuple[str, ...]
    abuse_form: str | None
    country: str | None
    note: str


class CDNDirectory:
    """The known CDNs, matched by ASN first, then by the most specific prefix."""

    def __init__(self, cdns: Iterable[CDN]) -> None:
        self._by_key = {cdn.key: cdn for cdn in cdns}
        self._by_asn = {asn: cdn for cdn in self._by_key.values() for asn in cdn.asns}
        pairs = [(net, cdn) for cdn in self._by_key.values() for net in cdn.prefixes]
        self._prefixes = sorted(pairs, key=lambda pair: -pair[0].prefixlen)

    def match(self, asn: int | None, address: str | None) -> CDN | None:
        """Return the CDN announcing `asn` or holding `address`; None if neither is known."""
        if asn is not None and asn in self._by_asn:
            return self._by_asn[asn]
        ip = _parse_address(address)
        if ip is None:
            return None
        for network, cdn in self._prefixes:  # most specific first
            if ip.version == network.version and ip in network:
                return cdn
        return None

    def get(self, key: str) -> CDN | None:
        """Return the CDN with this key, or None."""
        return self._by_key.get(key)

    def __len__(self) -> int:
        return len(self._by_key)

    def __iter__(self) -> Iterator[CDN]:
        return iter(self._by_key.values())


def _parse_address(address: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Parse an address for prefix matching; None for anything that is not one."""
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return None
    # An IPv4-mapped IPv6 address (::ffff:192.0.2.1) is the IPv4 host behind it.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def load_cdns(path: Path | None = None) -> CDNDirectory:
    """Load and validate a CDN directory; None loads the shipped one."""
    if path is None:
        with as_file(files("workflows") / "data" / "cdns.toml") as shipped:
            return load_cdns(shipped)
    data, text = load_toml(path)
    return parse_cdns(Source(path, text), data)


def parse_cdns(source: Source, data: dict[str, Any]) -> CDNDirectory:
    """Validate parsed CDN data, naming the line of the first problem."""
    owners: dict[object, str] = {}  # ASN or prefix -> key of the CDN listing it
    cdns = []
    for entry in source.named_entries(data, "cdn", _HINT):
        key = entry.table[1]
        cdn = _cdn(entry, key)
        _claim(entry, "asns", [(asn, f"AS{asn}") for asn in sorted(cdn.asns)], owners)
        _claim(entry, "prefixes", [(net, f'"{net}"') for net in cdn.prefixes], owners)
        cdns.append(cdn)
    return CDNDirectory(cdns)


def _claim(
    entry: Entry, key: str, items: list[tuple[object, str]], owners: dict[object, str]
) -> None:
    """Record which CDN lists each ASN or prefix; refuse one listed under two CDNs."""
    for item, shown in items:
        mine = entry.table[1]
        other = owners.setdefault(item, mine)
        if other != mine:
            raise entry.error(key, f"{shown} is listed under both [cdn.{other}] and [cdn.{mine}]")


def _cdn(entry: Entry, key: str) -> CDN:
    """Build one CDN from its table, refusing unknown keys and bad values."""
    entry.check_keys(KEYS)
    asns, prefixes = _asns(entry), _prefixes(entry)
    if not asns and not prefixes:
        raise entry.error(None, "needs at least one AS number in asns or CIDR in prefixes")
    form = entry.text("abuse_form")
    if form is not None and (problem := url_problem(form)) is not None:
        raise entry.error("abuse_form", f"abuse_form {quote(form)} {problem}")
    country = entry.text("country")
    if country is not None and (problem := country_problem(country)) is not None:
        raise entry.error("country", f"country {problem}")
    return CDN(
        key=key,
        name=entry.required_text("name"),
        asns=asns,
        prefixes=prefixes,
        abuse=_abuse(entry),
        abuse_form=form,
        country=country,
        note=entry.text("note", multiline=True) or "",
    )


def _asns(entry: Entry) -> frozenset[int]:
    """Return the entry's AS numbers, each a whole number from 1 to 4294967295."""
    asns: set[int] = set()
    for asn in entry.array("asns", "[13335]"):
        # bool is an int in Python, but `true` is never an AS number.
        if not isinstance(asn, int) or isinstance(asn, bool):
            raise entry.error("asns", f"asns must hold numbers like 13335, not {quote(asn)}")
        if not 1 <= asn <= MAX_ASN:
            raise entry.error("asns", f"asns: {asn} is not an AS number (1 to {MAX_ASN})")
        if asn in asns:
            raise entry.error("asns", f"asns lists AS{asn} twice")
        asns.add(asn)
    return frozenset(asns)


def _prefixes(entry: Entry) -> tuple[IPNetwork, ...]:
    """Return the entry's extra prefixes, each a valid CIDR without host bits."""
    networks = []
    for text in entry.array("prefixes", '["192.0.2.0/24"]'):
        if not isinstance(text, str):
            example = 'strings like "192.0.2.0/24"'
            raise entry.error("prefixes", f"prefixes must hold {example}, not {quote(text)}")
        networks.append(_network(entry, text))
    return tuple(networks)


def _network(entry: Entry, text: str) -> IPNetwork:
    """Parse one CIDR, refusing host bits and prefixes so broad they must be typos."""
    try:
        network = ipaddress.ip_network(text, strict=False)
        host = ipaddress.ip_interface(text).ip
    except ValueError:
        problem = 'is not a CIDR prefix like "192.0.2.0/24"'
        raise entry.error("prefixes", f"prefixes: {quote(text)} {problem}") from None
    if host != network.network_address:
        problem = f'has host bits set; did you mean "{network}"?'
        raise entry.error("prefixes", f"prefixes: {quote(text)} {problem}")
    shortest = _MIN_PREFIX[network.version]
    if network.prefixlen < shortest:
        problem = f"is too broad (shorter than /{shortest})"
        raise entry.error("prefixes", f"prefixes: {quote(text)} {problem}")
    return network


def _abuse(entry: Entry) -> tuple[str, ...]:
    """Return the entry's abuse addresses, each safe to put in a mail header."""
    addresses = []
    for address in entry.array("abuse", '["abuse@example.net"]'):
        if not isinstance(address, str):
            example = 'addresses like "abuse@example.net"'
            raise entry.error("abuse", f"abuse must hold {example}, not {quote(address)}")
        problem = email_problem(address)
        if problem is not None:
            raise entry.error("abuse", f"abuse: {quote(address)} {problem}")
        addresses.append(address)
    return tuple(addresses)
