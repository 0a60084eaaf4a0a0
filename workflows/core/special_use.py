"""Classify IP addresses: which are special-use and must never be looked up or fetched."""

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


def special_use(address: str | IPAddress) -> str | None:
    """Return why ADDRESS is not a public unicast address (e.g. "private"), or None."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip == ipaddress.IPv6Address("::"):
            return "unspecified"
        embedded = ip.ipv4_mapped or ip.sixtofour
        if ip.ipv4_mapped is not None:
            # ::ffff:a.b.c.d reaches an IPv4 host; judge it as that host.
            return special_use(ip.ipv4_mapped) or "ipv4-mapped"
        if embedded is not None and special_use(embedded):
            return special_use(embedded)
    for name, networks in _NETWORKS:
        if any(ip.version == net.version and ip in net for net in networks):
            return name
    if ip == ipaddress.IPv4Address("255.255.255.255"):
        return "broadcast"
    return None if ip.is_global else "reserved"
