"""`takedown migrate` and `takedown health`: the operator's commands.

migrate   brings the schema to this code's newest revision and says from which to which
          (the only command that changes a PostgreSQL schema; see store.db.upgrades_itself)
health    the checks of /readyz plus the workers' heartbeats, the sweep and the queues;
          exit 0 healthy, 1 not (a bad variable: 2, as everywhere)
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import Engine

from workflows.config.policy import load_policy
from workflows.config.settings import Settings, redact_url
from workflows.engine import health
from workflows.engine.health import Check
from workflows.store.db import (
    database_url,
    engine_for,
    head_revision,
    require_schema,
    schema_revision,
)


def migrate_command(settings: Settings) -> int:
    """Migrate the configured database; print where it was and where it is now."""
    engine = engine_for(settings)
    where = engine.url.render_as_string(hide_password=True)
    try:
        before = schema_revision(engine)
        if before == head_revision():
            print(f"takedown migrate: {where}: at revision {before}, the newest: nothing to do")
            return 0
        require_schema(engine, upgrade=True)  # refuses a schema newer than this code
        after = schema_revision(engine)
    finally:
        engine.dispose()
    print(f"takedown migrate: {where}: from revision {before or 'none (empty)'} to {after}")
    return 0


def health_command(settings: Settings, as_json: bool) -> int:
    """Print the engine's health; return 0 when healthy, 1 when not."""
    report = health_report(settings, time.time())
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        for check in report["checks"]:
            mark = "ok" if check["ok"] else "FAIL"
            print(f"{check['name']:<9} {mark:<5} {check['detail']}")
        if report["unacked"] is not None:
            depths = ", ".join(f"{queue} {n}" for queue, n in report["queues"].items())
            print(f"{'queues':<9} {'info':<5} {depths}; {report['unacked']} taken, not finished")
        print("healthy" if report["healthy"] else "unhealthy")
    return 0 if report["healthy"] else 1


def health_report(settings: Settings, now: float) -> dict[str, Any]:
    """Return every check, the workers, the sweep and the queues as one JSON-able object."""
    policy = load_policy(settings.policy)  # the sweep's interval: a bad file is exit 2
    checks = _database(settings)
    report: dict[str, Any] = {"workers": [], "sweep": None, "queues": {}, "unacked": None}
    client = health.redis_client(settings)
    try:
        checks.append(health.redis_check(client))
        if checks[-1].ok and client is not None:
            limit = settings.sweep_lease + 3 * policy.sweep_every
            checks += _engine_checks(client, settings, now, limit, report)
    finally:
        if client is not None:
            client.close()
    names = [c.name for c in checks]
    for missing in ("workers", "sweep"):
        if missing not in names:
            checks.append(Check(missing, False, "unknown: Redis does not answer"))
    report["checks"] = [vars(check) for check in checks]
    report["healthy"] = all(check.ok for check in checks)
    report["database"] = redact_url(database_url(settings.database_url, settings.home))
    report["redis"] = redact_url(settings.redis_url) if settings.redis_url else "embedded"
    return report


def _database(settings: Settings) -> list[Check]:
    """Return the database and schema checks, without creating a missing SQLite file."""
    url = database_url(settings.database_url, settings.home)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        nothing = "no database yet: `takedown migrate` (or any command) creates it"
        return [Check("database", False, nothing), Check("schema", False, nothing)]
    engine: Engine = engine_for(settings)
    try:
        return health.database_checks(engine)
    finally:
        engine.dispose()


def _engine_checks(
    client: redis.Redis, settings: Settings, now: float, limit: float, report: dict[str, Any]
) -> list[Check]:
    """Return the workers and sweep checks; put what they saw (and the queues) in REPORT."""
    try:
        workers = health.live_workers(client, now)
        sweep = health.sweep_state(client)
        report["queues"] = health.queue_depths(client, health.all_queues(settings))
        report["unacked"] = health.unacked(client)
    except (redis.RedisError, OSError):
        return [Check("workers", False, "unknown: Redis stopped answering")]
    report["workers"], report["sweep"] = workers, sweep
    alive = ", ".join(f"{w['name']} (seen {w['age']:.0f} s ago)" for w in workers)
    if workers:
        found = Check("workers", True, f"{len(workers)} alive: {alive}")
    else:
        found = Check("workers", False, "no heartbeat in the last 30 s: no worker runs")
    return [found, _sweep_check(sweep, now, limit)]


def _sweep_check(sweep: dict[str, Any], now: float, limit: float) -> Check:
    """Return whether a worker holds the sweep lease and swept within LIMIT seconds."""
    holder, last = sweep["holder"], sweep["last"]
    if holder is None:
        return Check("sweep", False, "nobody holds the sweep lease: no due work is handed out")
    age = None if last is None else max(0.0, now - last["at"])
    if age is None or age > limit:
        ago = "never" if age is None else f"{age:.0f} s ago"
        return Check(
            "sweep", False, f"{holder} holds the lease; last sweep {ago} (> {limit:.0f} s)"
        )
    took = f"took {last['took']:.2f} s" if last else ""
    return Check("sweep", True, f"{holder} sweeps; last sweep {age:.0f} s ago ({took})")
