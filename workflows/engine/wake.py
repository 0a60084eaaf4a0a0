"""Wake the sweep when work arrives, so a reported URL is traced now, not at the next sweep.

A report (CLI, API, the desk's form) pushes one token onto a Redis list after its commit;
the process holding the sweep lock waits between sweeps on that list (BLPOP) instead of
sleeping, so it sweeps at once. It is a hint only: due times stay in the database and the
sweep still runs every `sweep_every` (30 s shipped), so a nudge lost to a Redis outage, or
sent while no worker runs, costs at most one interval. The list holds one token at most:
a burst of reports wakes the sweep once.
"""

from __future__ import annotations

import logging
import threading
import time

import redis

from workflows.config.settings import Settings
from workflows.engine.broker import REGISTRY
from workflows.engine.health import redis_client

WAKE_KEY = "takedown:sweep-wake"
SLICE = 1.0  # seconds one BLPOP waits at most, so a stopping scheduler stops within it
NUDGE_TIMEOUT = 0.5  # seconds a report waits at most for Redis before giving the nudge up
log = logging.getLogger("takedown.wake")


def nudge(settings: Settings) -> bool:
    """Wake the sweep (after a commit that made new work due); return whether it was told.

    Never raises: the reported cases are safe in the database whatever Redis does."""
    if not settings.redis_url and not (settings.home / "redis" / REGISTRY).exists():
        return False  # no embedded Redis was ever started here: no worker to wake
    try:
        client = redis_client(settings, timeout=NUDGE_TIMEOUT)
        if client is None:
            return False  # no embedded Redis runs: no worker either, nothing to wake
        try:
            with client.pipeline(transaction=True) as pipe:
                pipe.lpush(WAKE_KEY, "1")
                pipe.ltrim(WAKE_KEY, 0, 0)
                pipe.execute()
        finally:
            client.close()
    except (redis.RedisError, OSError) as error:
        log.debug("could not wake the sweep (%s); it runs at its interval", type(error).__name__)
        return False
    return True


def pause(client: redis.Redis, until: float, stopping: threading.Event) -> bool:
    """Wait until UNTIL (time.monotonic()), STOPPING or a nudge; return whether nudged.

    Redis failing while we wait: sleep out the rest (the sweep loop reports Redis errors)."""
    while not stopping.is_set():
        left = until - time.monotonic()
        if left < 0.01:  # BLPOP's 0 would mean for ever
            return False
        try:
            if client.blpop([WAKE_KEY], timeout=min(SLICE, left)):
                return True
        except (redis.RedisError, OSError):
            stopping.wait(max(0.0, until - time.monotonic()))
            return False
    return False
