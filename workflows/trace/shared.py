"""RDAP answers and the registries' pace, shared by every worker on every machine (Redis).

The second level behind each process's `NetworkCache`: a network one worker looked up is
known to all, so N workers do not ask a registry N times for it. Records live under one
key per address range with the cache's TTL (Redis expires them); a sorted set per IP
version indexes the ranges by their first address, so the ranges holding an address are
found with one range query and the most specific one wins, as in the process cache.

Redis trouble is never a trace's failure: a shared cache that cannot answer is a miss,
and one that cannot store forgets.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import logging
import math
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import redis

from workflows.errors import LookupFailed
from workflows.trace.ratelimit import RateLimiter
from workflows.trace.rdap import NetworkRecord

PREFIX = "takedown:rdap:"
HOLD_TTL_MS = 20_000  # a registry lock's life: past one lookup's timeout and pace wait
HOLD_WAIT = 20.0  # seconds a worker waits for it before asking the registry anyway
HOLD_POLL = 0.02  # seconds between tries
# Delete the lock only if it is still ours (it may have expired and gone to another).
_RELEASE = """
if redis.call("GET", KEYS[1]) == ARGV[1] then
    return redis.call("DEL", KEYS[1])
end
return 0
"""
CANDIDATES = 32  # ranges starting at or below an address looked at, nearest first
log = logging.getLogger(__name__)


class SharedNetworks:
    """A Redis-backed store of RDAP network records by address range, each kept for TTL."""

    def __init__(self, client: redis.Redis, ttl: float, prefix: str = PREFIX) -> None:
        """Share records through CLIENT, each for TTL seconds."""
        self.client = client
        self.ttl_ms = max(1000, int(ttl * 1000))
        self.prefix = prefix
        self._release = client.register_script(_RELEASE)

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

    def failure(self, address: str) -> LookupFailed | None:
        """Return the failure a worker had looking ADDRESS up within its TTL, or None."""
        try:
            raw = self.client.get(self._failure_key(address))
        except redis.RedisError as error:
            log.warning("shared RDAP cache unavailable (%s): asking the registry", error)
            return None
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            return LookupFailed(
                str(data["message"]), kind=str(data["kind"]), permanent=bool(data["permanent"])
            )
        except (ValueError, KeyError, TypeError):
            return None

    def fail(self, address: str, error: LookupFailed, ttl: float) -> None:
        """Share that looking ADDRESS up failed with ERROR, for TTL seconds."""
        stored = {"message": error.message, "kind": error.kind, "permanent": error.permanent}
        try:
            self.client.set(
                self._failure_key(address), json.dumps(stored), px=max(1000, int(ttl * 1000))
            )
        except redis.RedisError as error_:
            log.warning("shared RDAP cache unavailable (%s): not shared", error_)

    @contextlib.contextmanager
    def hold(self, name: str) -> Iterator[None]:
        """Hold the lock NAME among every worker while the block runs (a registry's
        lookups: a worker that waited finds what the one before it fetched).

        It is a courtesy, not a guarantee: a lock not had within HOLD_WAIT, or Redis
        trouble, lets the block run anyway (a duplicate query at worst), and a holder that
        dies frees it after HOLD_TTL.
        """
        key, token = f"{self.prefix}lock:{name}", uuid.uuid4().hex
        held = False
        deadline = time.monotonic() + HOLD_WAIT
        try:
            while not (held := bool(self.client.set(key, token, nx=True, px=HOLD_TTL_MS))):
                if time.monotonic() >= deadline:
                    break
                time.sleep(HOLD_POLL)
        except redis.RedisError as error:
            log.warning("shared RDAP lock unavailable (%s): asking the registry", error)
        try:
            yield
        finally:
            if held:
                with contextlib.suppress(redis.RedisError):  # else it expires by itself
                    self._release(keys=[key], args=[token])

    def _failure_key(self, address: str) -> str:
        return f"{self.prefix}fail:{ipaddress.ip_address(address).compressed}"

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
    data["others"] = tuple(data.get("others") or ())  # absent in records shared before it
    data["cached"] = True
    return NetworkRecord(**data)


# One registry's token bucket and Retry-After hold, in a Redis hash, on Redis's own clock
# (so workers on machines whose clocks differ still share one pace). Returns
# {1, wait} with the seconds until the caller's turn, or {-1, blocked} when the registry
# is held back for longer than the caller will wait (no turn is taken then).
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate, burst, max_wait = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'updated', 'blocked')
local tokens = tonumber(b[1]) or burst
local updated = tonumber(b[2]) or now
local blocked = (tonumber(b[3]) or 0) - now
if blocked > max_wait then return {-1, tostring(blocked)} end
tokens = math.min(burst, tokens + (now - updated) * rate) - 1
local wait = 0
if tokens < 0 then wait = -tokens / rate end
if blocked > wait then wait = blocked end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now))
redis.call('EXPIRE', KEYS[1], 3600)
return {1, tostring(wait)}
"""
_BLOCK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local until_ = now + tonumber(ARGV[1])
local blocked = tonumber(redis.call('HGET', KEYS[1], 'blocked')) or 0
if until_ > blocked then redis.call('HSET', KEYS[1], 'blocked', tostring(until_)) end
redis.call('EXPIRE', KEYS[1], 3600 + math.ceil(tonumber(ARGV[1])))
return tostring(math.max(0, math.max(until_, blocked) - now))
"""
_BLOCKED_FOR = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local blocked = tonumber(redis.call('HGET', KEYS[1], 'blocked')) or 0
return tostring(math.max(0, blocked - now))
"""


class SharedRateLimiter:
    """The per-registry pace and Retry-After holds, shared by every worker through Redis.

    The same interface as `workflows.trace.ratelimit.RateLimiter`, which it falls back to
    while Redis cannot answer: a registry then sees each process at the configured pace,
    as before sharing.
    """

    def __init__(
        self,
        client: redis.Redis,
        local: RateLimiter,
        prefix: str = PREFIX,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Pace calls per key at LOCAL's rate across every process sharing CLIENT."""
        self.client = client
        self.local = local
        self.rate = local.rate
        self.burst = local.burst
        self.prefix = prefix
        self._sleep = sleep
        self._reserve = client.register_script(_RESERVE)
        self._block = client.register_script(_BLOCK)
        self._blocked_for = client.register_script(_BLOCKED_FOR)

    def acquire(self, key: str, max_wait: float = math.inf) -> float | None:
        """Wait until KEY may make one call; None at once when it is held back longer."""
        limit = "inf" if math.isinf(max_wait) else repr(max_wait)
        try:
            found, value = self._reserve(
                keys=[self._key(key)], args=[repr(self.rate), repr(self.burst), limit]
            )
        except redis.RedisError as error:
            log.warning("shared RDAP rate limit unavailable (%s): pacing this process", error)
            return self.local.acquire(key, max_wait)
        if int(found) < 0:
            return None
        wait = float(value)
        if wait > 0:
            self._sleep(wait)
        return wait

    def blocked_for(self, key: str) -> float:
        """Return the seconds KEY stays held back by a Retry-After (0 when it is not)."""
        try:
            return float(self._blocked_for(keys=[self._key(key)]))
        except redis.RedisError:
            return self.local.blocked_for(key)

    def block(self, key: str, seconds: float) -> None:
        """Hold every process's calls for KEY back for SECONDS (the server said Retry-After)."""
        self.local.block(key, seconds)
        try:
            self._block(keys=[self._key(key)], args=[repr(float(seconds))])
        except redis.RedisError as error:
            log.warning("shared RDAP rate limit unavailable (%s): holding this process", error)

    def _key(self, key: str) -> str:
        return f"{self.prefix}pace:{key}"
