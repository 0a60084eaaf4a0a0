"""Fault injection: every PostgreSQL connection of the engine dropped mid-run, four times.

The server terminates the worker's connections (pg_terminate_backend) while traces,
notices and re-checks are under way: transactions in flight fail, pooled connections are
dead. Tasks retry on OperationalError, pooled connections are pinged before use, claims
whose holder failed come back when their lease runs out. PostgreSQL only: the test exists
when TAKEDOWN_TEST_DATABASE_URL names one (CI sets it); SQLite has no connections to drop.
"""

from __future__ import annotations

import random
import time

from conftest import SERVICE_URLS
from faultcheck import drain_and_check
from faultstack import fault_stack as fault_stack  # the `stack` fixture
from faultstack import fault_world
from sqlalchemy import create_engine, text
from stack import Stack

from workflows.kinds import OPEN_STATES
from workflows.store.db import database_url

TERMINATE = """
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
"""


def drop_connections(stack: Stack) -> int:
    """Terminate every other connection to the stack's database; return how many."""
    killer = create_engine(database_url(stack.env["TAKEDOWN_DATABASE_URL"], stack.home))
    try:
        with killer.begin() as connection:
            dropped = int(connection.execute(text(TERMINATE)).scalar_one())
    finally:
        killer.dispose()
    stack.engine.dispose()  # the test's own pooled connections were among them
    return dropped


if SERVICE_URLS["database"] and SERVICE_URLS["redis"]:

    def test_postgres_connections_dropped_mid_run_lose_nothing(stack: Stack) -> None:
        _, urls = fault_world()
        stack.report(*urls)
        rng = random.Random(5432)
        stack.start_worker(pool="prefork")
        stack.wait_for(lambda: "broker " in stack.worker_log(), timeout=30, what="the worker")
        started, interrupted, dropped = time.monotonic(), set(), 0
        for _ in range(4):
            time.sleep(rng.uniform(1.0, 3.0))
            interrupted |= {c.id for c in stack.cases() if c.state in OPEN_STATES}
            dropped += drop_connections(stack)
        assert dropped >= 4, "the worker held no connections to drop"
        scenario = f"PostgreSQL connections dropped 4 times ({dropped} connections)"
        drain_and_check(stack, scenario, urls, interrupted, started)
