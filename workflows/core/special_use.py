"""Classify IP addresses: which are special-use and must never be looked up or fetched.

An IPv6 address can carry an IPv4 one that a translator or tunnel delivers to: the
address is judged as the IPv4 host it reaches, so 64:ff9b::10.0.0.1 is as private as
10.0.0.1 and is never fetched.

    form                 prefix            carried IPv4              with a public IPv4
    IPv4-mapped          ::ffff:0:0/96     the last 32 bits          "ipv4-mapped"
    NAT64, well-known    64:ff9b::/96      the last 32 bits          public (RFC 6052 §2.1)
    NAT64, local-use     64:ff9b:1::/48    the last 32 bits (/96)    "nat64-local" (RFC 8215:
                                                                     not globally reachable)
    6to4                 2002::/16         bits 16-47                public (RFC 3056)
    Teredo               2001::/32         client (inverted), server "teredo" (RFC 4380)
"""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Checked in order, so the most telling name wins (RFC 6890 special-purpose registries).
_RANGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("this-network", ("0.0.0.0/8",)),
    ("loopback", ("127.0.0.0/8", "::1/128")),
    ("private", ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")),
    ("cgnat", ("100.64.0.0/10",)),  # RFC 6598 shared address space
    ("link-local", ("169.254.0.0/16", "fe80::/10")),
    (
        "documentation",
        ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32", "3fff::/20"),
    ),
    ("benchmarking", ("198.18.0.0/15", "2001:2::/48")),
    ("multicast", ("224.0.0.0/4", "ff00::/8")),
    ("reserved", ("240.0.0.0/4", "192.0.0.0/24", "100::/64")),
)
_NETWORKS = tuple(
    (name, tuple(ipaddress.ip_network(cidr) for cidr in cidrs)) for name, cidrs in _RANGES
)
NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
TEREDO = ipaddress.IPv6Network("2001::/32")
NAT64_PREFIX_LENGTHS = (32, 40, 48, 56, 64, 96)  # RFC 6052 §2.2


def special_use(address: str | IPAddress) -> str | None:
    """Return why ADDRESS is not a public unicast address (e.g. "private"), or None."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip == ipaddress.IPv6Address("::"):
            return "unspecified"
        carried = _carried(ip)
        if carried is not None:
            reason, ipv4 = carried
            return next(filter(None, map(special_use, ipv4)), reason)
    for name, networks in _NETWORKS:
        if any(ip.version == net.version and ip in net for net in networks):
            return name
    if ip == ipaddress.IPv4Address("255.255.255.255"):
        return "broadcast"
    return None if ip.is_global else "reserved"


def _carried(ip: ipaddress.IPv6Address) -> tuple[str | None, list[ipaddress.IPv4Address]] | None:
    """Return (the reason when every IPv4 carried is public, those IPv4) for an IPv6 form
    that delivers to IPv4, or None for an address of no such form."""
    if ip.ipv4_mapped is not None:
        # ::ffff:a.b.c.d reaches an IPv4 host through an IPv6 socket: never fetched.
        return "ipv4-mapped", [ip.ipv4_mapped]
    if ip in NAT64_WELL_KNOWN:
        return None, [nat64_ipv4(ip, 96)]
    if ip in NAT64_LOCAL:
        # Never globally reachable, whatever it carries; the operator picks the prefix
        # length inside the /48, so the usual /96 layout only names the refusal.
        return "nat64-local", [nat64_ipv4(ip, 96)]
    if ip.sixtofour is not None:
        return None, [ip.sixtofour]
    if ip in TEREDO and ip.teredo is not None:
        server, client = ip.teredo  # the client's address, already un-inverted
        return "teredo", [client, server]
    return None


def nat64_ipv4(ip: ipaddress.IPv6Address, prefix_length: int) -> ipaddress.IPv4Address:
    """Return the IPv4 address embedded in IP under a NAT64 prefix of PREFIX_LENGTH bits."""
    if prefix_length not in NAT64_PREFIX_LENGTHS:
        raise ValueError(f"RFC 6052 has no NAT64 prefix of /{prefix_length}")
    # RFC 6052 §2.2: the IPv4 bits follow the prefix, skipping bits 64-71 (the "u" octet).
    octets = ip.packed[:8] + ip.packed[9:]
    start = prefix_length // 8 if prefix_length <= 64 else prefix_length // 8 - 1
    return ipaddress.IPv4Address(octets[start : start + 4])
