"""How failed sign-ins lock an account or a client address: pure rules, no storage.

Every attempt is counted before its password is hashed, so attempts made in parallel are
counted too and an attempt refused by a lock costs no Argon2 hash (64 MiB, ~0.1 s); a
success gives its count back. From `threshold` failures on, each one locks the key for
`base`, doubling with every further failure up to `cap`; a key whose last failure is
`forget` old (and not locked) starts again from nothing (OWASP Authentication Cheat
Sheet: exponential lockout; NIST SP 800-63B §5.2.2: at most 100 failures per account
before a lock, here far fewer).

    key                        threshold   lock             counted
    account:NAME               5           1 min → 15 min   sign-ins and password changes
    address:IP (IPv6: its /64) 20          1 min → 15 min   sign-ins from that client
    token:IP (IPv6: its /64)   50          1 min → 15 min   unknown API tokens and sessions

A name that does not exist is locked like one that does, so a lock tells nothing about
which names exist. An address lock stops everyone behind that address (one NAT, or every
client when TAKEDOWN_TRUSTED_PROXIES does not name the TLS proxy in front of the desk).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    """When failures lock a key, and for how long."""

    threshold: int  # the failure that starts the first lock
    base: dt.timedelta  # the first lock
    cap: dt.timedelta  # the longest lock
    forget: dt.timedelta  # quiet time after which the count starts again


ACCOUNT = Limit(5, dt.timedelta(minutes=1), dt.timedelta(minutes=15), dt.timedelta(hours=1))
ADDRESS = Limit(20, dt.timedelta(minutes=1), dt.timedelta(minutes=15), dt.timedelta(hours=1))
TOKEN = Limit(50, dt.timedelta(minutes=1), dt.timedelta(minutes=15), dt.timedelta(hours=1))
LIMITS = {"account": ACCOUNT, "address": ADDRESS, "token": TOKEN}


def lock_for(limit: Limit, failures: int) -> dt.timedelta | None:
    """Return how long FAILURES lock a key under LIMIT, None while below the threshold."""
    if failures < limit.threshold:
        return None
    doublings = min(failures - limit.threshold, 20)  # 2**20 minutes is far past any cap
    lock: dt.timedelta = min(limit.base * (1 << doublings), limit.cap)
    return lock


def retry_after(until: dt.datetime, now: dt.datetime) -> int:
    """Return the whole seconds (at least 1) from NOW until UNTIL, for a Retry-After header."""
    return max(1, math.ceil((until - now).total_seconds()))


def account_key(name: str) -> str:
    """Return the throttle key of the account NAME (whether or not it exists)."""
    return f"account:{name}"


def address_key(address: str, kind: str = "address") -> str:
    """Return the throttle key of a client ADDRESS; IPv6 by its /64, which one host holds."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:  # not an IP (a test client, a unix socket): the text itself
        return f"{kind}:{address[:64]}"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d is the IPv4 client
            return f"{kind}:{ip.ipv4_mapped}"
        return f"{kind}:{ipaddress.IPv6Network((ip, 64), strict=False)}"
    return f"{kind}:{ip}"


def limit_of(key: str) -> Limit:
    """Return the Limit of a key made by account_key or address_key."""
    return LIMITS[key.partition(":")[0]]
