"""Is the engine well? The checks behind /readyz and `takedown health`, and what workers
leave in Redis for them.

    check      healthy when                                          /readyz  health
    database   a query answers                                          yes     yes
    schema     at this code's newest revision (else `takedown migrate`) yes     yes
    redis      answers PING (TAKEDOWN_REDIS_URL, or the embedded one)   when    yes
                                                                        set
    workers    a worker's heartbeat is fresh (each beats every 10 s)     -      yes
    sweep      a worker holds the sweep lease and the last sweep ended   -      yes
               within sweep_lease + 3 × sweep_every

Queue depths are shown, never judged: a long queue after a big report is normal. What the
checks say is fit for a page anyone may read (/readyz has no sign-in): no URL, no host
name, no password, no exception text; `takedown health` adds where it looked, redacted.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from workflows.config.settings import Settings
from workflows.engine.broker import SWEEP_LOCK, client_url, embedded_url
from workflows.store.db import head_revision, schema_revision

WORKERS = "takedown:workers"  # hash: worker name → JSON {host, pid, queues, started, seen}
SWEEP = "takedown:sweep"  # hash: holder, at (when the last sweep ended, epoch), took, tasks
BEAT_EVERY = 10.0  # seconds between a worker's heartbeats
STALE_AFTER = 3 * BEAT_EVERY  # a heartbeat older than this is a worker gone
FORGET_AFTER = 3600.0  # a dead worker's entry is removed by the others after this
UNACKED = "unacked"  # kombu's Redis transport: messages delivered to a worker, not acked yet


@dataclass(frozen=True)
class Check:
    """One check's verdict and a short reason (no URL, host name or secret)."""

    name: str
    ok: bool
    detail: str


def worker_name() -> str:
    """Return this process's worker name, as Celery's hostname: takedown-PID@HOST."""
    return f"takedown-{os.getpid()}@{socket.gethostname()}"


def all_queues(settings: Settings) -> list[str]:
    """Return every queue a task goes to under SETTINGS (TAKEDOWN_QUEUES over the defaults)."""
    from workflows.engine.tasks import DEFAULT_QUEUES  # Celery, only when asked

    return sorted(set({**DEFAULT_QUEUES, **dict(settings.queues)}.values()))


def redis_client(settings: Settings, timeout: float = 2.0) -> redis.Redis | None:
    """Return a client for the configured Redis, or the embedded one if it runs, else None.

    Short timeouts (TIMEOUT seconds) and no retries: a check must answer in seconds,
    whatever Redis does."""
    url = settings.redis_url or embedded_url(settings.home)
    if url is None:
        return None
    return redis.Redis.from_url(
        client_url(url),
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


class Heartbeat(threading.Thread):
    """Say in Redis, every BEAT_EVERY seconds, that this worker lives and what it takes."""

    def __init__(
        self, client: redis.Redis, name: str, queues: Sequence[str], every: float = BEAT_EVERY
    ) -> None:
        super().__init__(name="takedown-heartbeat", daemon=True)
        self.client, self.every = client, every
        self.name_in_redis = name
        self.info = {"host": socket.gethostname(), "pid": os.getpid(), "queues": list(queues)}
        self.started = time.time()
        self.stopping = threading.Event()

    def run(self) -> None:
        """Beat until stopped; a beat Redis missed is simply the next one."""
        while True:
            # Redis down: the sweep and Celery say so; health sees the beat missing.
            with contextlib.suppress(redis.RedisError):
                self.beat()
            if self.stopping.wait(self.every):
                return

    def beat(self) -> None:
        """Write this worker's entry and forget the entries of workers long gone."""
        now = time.time()
        entry = {**self.info, "started": self.started, "seen": now}
        self.client.hset(WORKERS, self.name_in_redis, json.dumps(entry))
        for name, seen in _entries(self.client).items():
            if seen.get("seen", 0) < now - FORGET_AFTER:
                self.client.hdel(WORKERS, name)

    def stop(self) -> None:
        """Stop beating and remove this worker's entry (a worker that dies just goes stale)."""
        self.stopping.set()
        self.join(timeout=5)
        with contextlib.suppress(redis.RedisError):
            self.client.hdel(WORKERS, self.name_in_redis)


def _text(value: bytes | str) -> str:
    """Return a Redis reply as text (clients may decode replies or not)."""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _entries(client: redis.Redis) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for name, raw in client.hgetall(WORKERS).items():
        try:
            found[_text(name)] = json.loads(raw)
        except ValueError:
            continue  # not ours: never let a stray value break a health check
    return found


def live_workers(client: redis.Redis, now: float) -> list[dict[str, Any]]:
    """Return the workers whose heartbeat is fresh, each with its name and `age` in seconds."""
    found = [
        {"name": name, **entry, "age": round(now - float(entry.get("seen", 0)), 1)}
        for name, entry in sorted(_entries(client).items())
    ]
    return [worker for worker in found if worker["age"] <= STALE_AFTER]


def record_sweep(client: redis.Redis, holder: str, began: float, tasks: int) -> None:
    """Remember who swept last, when it ended and how long it took (sweep lag, health)."""
    ended = time.time()
    took = round(ended - began, 3)
    client.hset(SWEEP, mapping={"holder": holder, "at": ended, "took": took, "tasks": tasks})


def sweep_state(client: redis.Redis) -> dict[str, Any]:
    """Return {holder (of the lease now, or None), last: {holder, at, took, tasks} or None}."""
    token = client.get(SWEEP_LOCK)
    holder = _text(token).rpartition("/")[0] or "unknown" if token else None
    raw = {_text(k): _text(v) for k, v in client.hgetall(SWEEP).items()}
    last: dict[str, Any] | None = None
    if "at" in raw:
        try:
            last = {
                "holder": raw.get("holder"),
                "at": float(raw["at"]),
                "took": float(raw.get("took", 0)),
                "tasks": int(raw.get("tasks", 0)),
            }
        except ValueError:
            last = None
    return {"holder": holder, "last": last}


def queue_depths(client: redis.Redis, queues: Sequence[str]) -> dict[str, int]:
    """Return how many tasks wait in each queue (a Redis list under the queue's name)."""
    return {queue: int(client.llen(queue)) for queue in queues}


def unacked(client: redis.Redis) -> int:
    """Return how many tasks workers have taken and not finished (kombu's unacked hash)."""
    return int(client.hlen(UNACKED))


def database_checks(engine: Engine) -> list[Check]:
    """Return the database and schema checks (a missing SQLite file is not created)."""
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and not Path(database).exists():
        gone = "no database yet: any takedown command creates it"
        return [Check("database", False, gone), Check("schema", False, gone)]
    try:
        current = schema_revision(engine)
    except SQLAlchemyError:
        return [
            Check("database", False, "unreachable"),
            Check("schema", False, "unknown: the database is unreachable"),
        ]
    head = head_revision()
    if current == head:
        schema = Check("schema", True, f"at revision {head}, the newest")
    else:
        found = f"at revision {current}" if current else "empty"
        schema = Check("schema", False, f"{found}, this takedown needs {head}: `takedown migrate`")
    return [Check("database", True, "answers"), schema]


def redis_check(client: redis.Redis | None) -> Check:
    """Return whether Redis answers PING (None: no Redis to ask)."""
    if client is None:
        return Check("redis", False, "not running: the embedded Redis runs with a worker")
    try:
        client.ping()
    except (redis.RedisError, OSError):
        return Check("redis", False, "unreachable")
    return Check("redis", True, "answers")


def readiness(engine: Engine, settings: Settings) -> list[Check]:
    """Return /readyz's checks: the database, the schema, and Redis when one is configured.

    The desk needs no Redis of its own; the embedded one lives and dies with a worker, so
    only a configured TAKEDOWN_REDIS_URL is part of being ready."""
    checks = database_checks(engine)
    if settings.redis_url:
        client = redis_client(settings)
        try:
            checks.append(redis_check(client))
        finally:
            if client is not None:
                client.close()
    return checks


def as_json(checks: Sequence[Check]) -> dict[str, Any]:
    """Return {"status": "ok"|"unavailable", "checks": {name: {ok, detail}}, "failed": […]}."""
    failed = [check.name for check in checks if not check.ok]
    return {
        "status": "unavailable" if failed else "ok",
        "checks": {check.name: {"ok": check.ok, "detail": check.detail} for check in checks},
        "failed": failed,
    }


def check_dicts(checks: Sequence[Check]) -> list[dict[str, Any]]:
    """Return the checks as plain dicts."""
    return [asdict(check) for check in checks]
