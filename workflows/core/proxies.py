"""Who the client is, and whether it came over HTTPS, when the desk sits behind proxies.

A request's X-Forwarded-For and X-Forwarded-Proto are believed only when the peer that
sent them is one of the operator's proxies (TAKEDOWN_TRUSTED_PROXIES); anyone else could
write them to dodge the sign-in throttle or to pose as another address.

- The client is the rightmost X-Forwarded-For address that is not a trusted proxy (each
  proxy appends the address it saw, so only the right end is vouched for); a missing or
  malformed header leaves the peer itself.
- HTTPS when the connection itself is, or when a trusted peer's X-Forwarded-Proto names
  `https` anywhere: a Secure cookie over plain HTTP only fails to come back, while a
  missing Secure flag could let the cookie travel in clear.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Client:
    """The address a request came from and whether it travelled over HTTPS."""

    address: str
    https: bool


def parse_networks(cidrs: Sequence[str]) -> tuple[IPNetwork, ...]:
    """Return CIDRs (or single addresses) as networks."""
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def is_trusted(address: str, trusted: Sequence[IPNetwork]) -> bool:
    """Tell whether ADDRESS is inside one of the TRUSTED networks."""
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in trusted)


def forwarded_client(
    peer: str,
    scheme: str,
    forwarded_for: str | None,
    forwarded_proto: str | None,
    trusted: Sequence[IPNetwork],
) -> Client:
    """Return the client of a request from PEER over SCHEME with these forwarding headers."""
    https = scheme in ("https", "wss")
    if not is_trusted(peer, trusted):
        return Client(peer, https)
    address = peer
    for hop in reversed((forwarded_for or "").split(",")):
        hop = _bare(hop)
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            break  # a hop we cannot read: keep the last one we could
        address = hop
        if not is_trusted(hop, trusted):
            break
    protos = {p.strip().lower() for p in (forwarded_proto or "").split(",")}
    return Client(address, https or "https" in protos)


def _bare(hop: str) -> str:
    """Return an X-Forwarded-For item without brackets or a port ("[::1]:80", "1.2.3.4:80")."""
    hop = hop.strip()
    if hop.startswith("["):
        return hop[1:].partition("]")[0]
    if hop.count(":") == 1:
        return hop.partition(":")[0]
    return hop
