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
STOP_PREFIX = "takedown:sweep-stop:"  # + a scheduler's name: its own key, to end its wait
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


def pause(client: redis.Redis, until: float, stopping: threading.Event, stop_key: str = "") -> bool:
    """Wait until UNTIL (time.monotonic()), STOPPING or a nudge; return whether nudged.

    STOP_KEY: this waiter's own key (`stop_key`), which `unblock` pushes to when it stops,
    so a stopping worker does not sit out the rest of a BLPOP slice.
    Redis failing while we wait: sleep out the rest (the sweep loop reports Redis errors)."""
    keys = [WAKE_KEY, stop_key] if stop_key else [WAKE_KEY]
    while not stopping.is_set():
        left = until - time.monotonic()
        if left < 0.01:  # BLPOP's 0 would mean for ever
            return False
        try:
            popped = client.blpop(keys, timeout=min(SLICE, left))
            if popped:
                key = popped[0].decode() if isinstance(popped[0], bytes) else popped[0]
                return key == WAKE_KEY and not stopping.is_set()
        except (redis.RedisError, OSError):
            stopping.wait(max(0.0, until - time.monotonic()))
            return False
    return False


def stop_key(name: str) -> str:
    """Return the key a waiter named NAME (its scheduler's name) also waits on."""
    return STOP_PREFIX + name


def unblock(client: redis.Redis, key: str) -> None:
    """End the wait of the one waiter on KEY (after setting its stopping event).

    Never raises: a waiter that does not hear it stops within a BLPOP slice anyway."""
    try:
        with client.pipeline(transaction=True) as pipe:
            pipe.lpush(key, "stop")
            pipe.expire(key, 60)  # nobody left to pop it: it goes by itself
            pipe.execute()
    except (redis.RedisError, OSError):
        log.debug("could not end the sweep's wait; it ends within %g s", SLICE)
