"""Read the address range of an RDAP ip network object (RFC 9083 §5.4) in its real shapes.

Registries write the range in more ways than the RFC's plain `startAddress`/`endAddress`:

    "startAddress": "2a00:2381:ffff::/128"       a prefix length after the address (RIPE's
    "endAddress": "2a00:…:ffff/128"               older answers): the address is the bound
    "startAddress": "192.0.2.0/24"                a network as the start: its first address,
                                                  and its last when no end is usable
    "startAddress": "074.125.000.000"             zero-padded IPv4 (ARIN): decimal, never octal
    "cidr0_cidrs": [{"v4prefix": …, "length": …}] the cidr0 extension's prefixes
    "handle": "2001:db8::/32"                     a handle that is itself the range (APNIC,
    "handle": "192.0.2.0 - 192.0.2.255"           RIPE, LACNIC), read when nothing else is

The first candidate that makes a usable range wins: both ends of one IP version, the start
not after the end, and the address that was asked for inside it (a range that misses it
would be cached and answer for addresses it has nothing to do with). `ipVersion` is not
trusted: the addresses say which version they are.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Range = tuple[IPAddress, IPAddress]
MAX_TEXT = 100  # longer than any written address or range: not one
MAX_CIDRS = 64  # cidr0 prefixes read
_PADDED_V4 = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")
_LENGTH = re.compile(r"[0-9]{1,3}")


def network_range(data: dict[str, Any], address: str | None = None) -> Range | None:
    """Return the first usable range of DATA (holding ADDRESS, if given), or None."""
    wanted = _parse_address(address) if address is not None else None
    candidates = (
        _bounds_range(data.get("startAddress"), data.get("endAddress")),
        _cidr0_range(data.get("cidr0_cidrs"), wanted),
        _handle_range(data.get("handle")),
    )
    for candidate in candidates:
        if candidate is not None and usable(candidate, wanted):
            return candidate
    return None


def usable(found: Range, wanted: IPAddress | None = None) -> bool:
    """Tell whether FOUND is one version, in order, and holds WANTED (if given)."""
    start, end = found
    if start.version != end.version or int(start) > int(end):
        return False
    if wanted is None:
        return True
    return wanted.version == start.version and int(start) <= int(wanted) <= int(end)


def cidr_text(found: Range) -> str:
    """Return the CIDRs covering a range, ", "-separated (ipwhois' `cidr` form)."""
    start, end = found
    if isinstance(start, ipaddress.IPv4Address) and isinstance(end, ipaddress.IPv4Address):
        return ", ".join(map(str, ipaddress.summarize_address_range(start, end)))
    if isinstance(start, ipaddress.IPv6Address) and isinstance(end, ipaddress.IPv6Address):
        return ", ".join(map(str, ipaddress.summarize_address_range(start, end)))
    return ""


def _bounds_range(start_text: Any, end_text: Any) -> Range | None:
    """Read startAddress/endAddress, each maybe with a prefix length or zero padding."""
    start = _bound(start_text, last=False)
    if start is None:
        return None
    end = _bound(end_text, last=True)
    if end is None and isinstance(start_text, str) and "/" in start_text:
        end = _bound(start_text, last=True)  # "192.0.2.0/24" alone: the whole network
    return None if end is None else (start, end)


def _bound(text: Any, *, last: bool) -> IPAddress | None:
    """Read one bound: an address, or an address with a prefix length.

    For the last address, a network written by its first address ("192.0.2.0/24") means
    its last one; any other address with a length ("…::ffff/128") is the address itself.
    """
    if not isinstance(text, str) or len(text) > MAX_TEXT:
        return None
    written, slash, length = text.strip().partition("/")
    ip = _parse_address(written)
    if ip is None or not slash:
        return ip
    if not (length.isascii() and _LENGTH.fullmatch(length)) or int(length) > ip.max_prefixlen:
        return None
    network = ipaddress.ip_network(f"{ip}/{length}", strict=False)
    if last and network.network_address == ip:
        return network.broadcast_address
    return ip


def _parse_address(text: str) -> IPAddress | None:
    """Parse an address; a zero-padded IPv4 one ("010.001.002.003") reads as decimal."""
    text = text.strip().strip("[]")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    # Python refuses leading zeros (they once meant octal); RDAP servers pad with them.
    if text.isascii() and _PADDED_V4.fullmatch(text):
        octets = [int(part, 10) for part in text.split(".")]
        if all(octet <= 255 for octet in octets):
            return ipaddress.IPv4Address(".".join(map(str, octets)))
    return None


def _cidr0_range(value: Any, wanted: IPAddress | None) -> Range | None:
    """Read the cidr0 extension: the prefixes' span when they are contiguous, else the one
    holding WANTED (a gap between them must not be cached as the network's)."""
    networks: list[IPNetwork] = []
    for item in value[:MAX_CIDRS] if isinstance(value, list) else ():
        network = _cidr0_network(item)
        if network is not None:
            networks.append(network)
    if not networks or len({n.version for n in networks}) > 1:
        return None
    networks.sort(key=lambda n: int(n.network_address))
    pairs = itertools.pairwise(networks)
    if all(int(a.broadcast_address) + 1 == int(b.network_address) for a, b in pairs):
        return networks[0].network_address, networks[-1].broadcast_address
    holding = [n for n in networks if wanted is not None and usable(_span(n), wanted)]
    return _span(holding[0]) if holding else _span(networks[0])


def _cidr0_network(item: Any) -> IPNetwork | None:
    """Read one cidr0 prefix object: {"v4prefix" or "v6prefix": address, "length": n}."""
    if not isinstance(item, dict):
        return None
    prefix = item.get("v4prefix", item.get("v6prefix"))
    length = item.get("length")
    if not isinstance(prefix, str) or not isinstance(length, int) or isinstance(length, bool):
        return None
    ip = _parse_address(prefix) if len(prefix) <= MAX_TEXT else None
    if ip is None or not 0 <= length <= ip.max_prefixlen:
        return None
    return ipaddress.ip_network(f"{ip}/{length}", strict=False)


def _handle_range(handle: Any) -> Range | None:
    """Read a handle that is itself a range: a CIDR, "first - last" or one address."""
    if not isinstance(handle, str) or len(handle) > 2 * MAX_TEXT:
        return None
    first, dash, last = handle.partition(" - ")
    if dash:
        start, end = _parse_address(first), _parse_address(last)
        return None if start is None or end is None else (start, end)
    if "/" in handle:
        return _bounds_range(handle, None)
    ip = _parse_address(handle)
    return None if ip is None else (ip, ip)


def _span(network: IPNetwork) -> Range:
    return network.network_address, network.broadcast_address
