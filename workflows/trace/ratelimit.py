"""A token bucket per key (an RDAP registry), with an injectable clock.

Registries rate-limit RDAP clients (ARIN, RIPE and APNIC answer 429 past a few queries a
second); waiting our turn here is cheaper than being told to back off for minutes.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float
    blocked_until: float = 0.0


class RateLimiter:
    """Allow RATE calls per second per key, with a burst of at most max(1, RATE)."""

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self.burst = max(1.0, rate)
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str, max_wait: float = math.inf) -> float | None:
        """Wait until KEY may make one call; return how long we waited.

        None, at once and without taking a turn, when KEY is blocked for longer than
        MAX_WAIT: the caller fails fast instead of holding its thread.
        """
        with self._lock:
            if self._blocked_for(key) > max_wait:
                return None
            wait = self._reserve(key)
        if wait > 0:
            self._sleep(wait)
        return wait

    def blocked_for(self, key: str) -> float:
        """Return the seconds KEY stays blocked by a Retry-After (0 when it is not)."""
        with self._lock:
            return self._blocked_for(key)

    def block(self, key: str, seconds: float) -> None:
        """Hold every call for KEY back for SECONDS (the server said Retry-After)."""
        with self._lock:
            bucket = self._bucket(key)
            bucket.blocked_until = max(bucket.blocked_until, self._clock() + seconds)

    def _blocked_for(self, key: str) -> float:
        bucket = self._buckets.get(key)
        return 0.0 if bucket is None else max(0.0, bucket.blocked_until - self._clock())

    def _reserve(self, key: str) -> float:
        """Take a token now or in the future; return the wait until it is ours."""
        now = self._clock()
        bucket = self._bucket(key)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        bucket.tokens -= 1.0
        wait = 0.0 if bucket.tokens >= 0 else -bucket.tokens / self.rate
        return max(wait, bucket.blocked_until - now)

    def _bucket(self, key: str) -> _Bucket:
        if key not in self._buckets:
            self._buckets[key] = _Bucket(self.burst, self._clock())
        return self._buckets[key]
