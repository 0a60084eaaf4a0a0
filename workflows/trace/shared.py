"""RDAP network records shared by every worker on every machine, through Redis.

The second level behind each process's `NetworkCache`: a network one worker looked up is
known to all, so N workers do not ask a registry N times for it. Records live under one
key per address range with the cache's TTL (Redis expires them); a sorted set per IP
version indexes the ranges by their first address, so the ranges holding an address are
found with one range query and the most specific one wins, as in the process cache.

Redis trouble is never a trace's failure: a shared cache that cannot answer is a miss,
and one that cannot store forgets.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
from typing import Any

import redis

from workflows.trace.rdap import NetworkRecord

PREFIX = "takedown:rdap:"
CANDIDATES = 32  # ranges starting at or below an address looked at, nearest first
log = logging.getLogger(__name__)


class SharedNetworks:
    """A Redis-backed store of RDAP network records by address range, each kept for TTL."""

    def __init__(self, client: redis.Redis, ttl: float, prefix: str = PREFIX) -> None:
        """Share records through CLIENT, each for TTL seconds."""
        self.client = client
        self.ttl_ms = max(1000, int(ttl * 1000))
        self.prefix = prefix

    def get(self, address: str) -> NetworkRecord | None:
        """Return the most specific record whose range holds ADDRESS, or None."""
        ip = ipaddress.ip_address(address)
        number, index = int(ip), self._index(ip.version)
        try:
            members = self.client.zrevrangebyscore(
                index, _score(number, ip.version) + 1, "-inf", start=0, num=CANDIDATES
            )
            holding = sorted(
                (end - start, member)
                for member in (m.decode() if isinstance(m, bytes) else str(m) for m in members)
                for start, end in [_bounds(member)]
                if start <= number <= end
            )
            for _, member in holding:
                raw = self.client.get(self._key(member))
                if raw is None:  # expired: forget it in the index too
                    self.client.zrem(index, member)
                    continue
                return _record(raw)
        except (redis.RedisError, ValueError) as error:
            log.warning("shared RDAP cache unavailable (%s): asking the registry", error)
        return None

    def put(self, record: NetworkRecord) -> None:
        """Share RECORD for the TTL."""
        start, end = ipaddress.ip_address(record.start), ipaddress.ip_address(record.end)
        member = f"{start.version}:{int(start):x}:{int(end):x}"
        stored = {**dataclasses.asdict(record), "cached": False}
        try:
            with self.client.pipeline(transaction=False) as pipe:
                pipe.set(self._key(member), json.dumps(stored), px=self.ttl_ms)
                pipe.zadd(self._index(start.version), {member: _score(int(start), start.version)})
                pipe.execute()
        except redis.RedisError as error:
            log.warning("shared RDAP cache unavailable (%s): not shared", error)

    def _index(self, version: int) -> str:
        return f"{self.prefix}ranges:v{version}"

    def _key(self, member: str) -> str:
        return f"{self.prefix}net:{member}"


def _score(number: int, version: int) -> float:
    """Return a sorted-set score for an address: exact for IPv4, the top 52 bits for IPv6.

    A double holds 53 bits exactly; an IPv6 score is rounded down, so a query a little
    above an address's score finds every range starting at or below it, and the exact
    bounds in the member decide.
    """
    return float(number) if version == 4 else float(number >> 76)


def _bounds(member: str) -> tuple[int, int]:
    """Return the first and last address of a member "version:start:end" (hex)."""
    _, start, end = member.split(":")
    return int(start, 16), int(end, 16)


def _record(raw: bytes | str) -> NetworkRecord:
    """Return a stored record, marked as cached."""
    data: dict[str, Any] = json.loads(raw)
    data["abuse"] = tuple(data.get("abuse") or ())
    data["cached"] = True
    return NetworkRecord(**data)
