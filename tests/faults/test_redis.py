"""Fault injection: the broker's Redis flushed mid-run, three times.

Queued and unacknowledged task messages, the sweep lock and kombu's own bookkeeping all
vanish; the database alone must be enough to hand every due piece of work out again.
"""

from __future__ import annotations

import random
import re
import time

import redis
from faultcheck import drain_and_check
from faultstack import fault_stack as fault_stack  # the `stack` fixture
from faultstack import fault_world
from stack import Stack

from workflows.engine.broker import client_url
from workflows.kinds import OPEN_STATES


def broker_url(stack: Stack) -> str:
    """Return the broker the worker uses (the embedded one's socket is in its log)."""
    if stack.env.get("TAKEDOWN_REDIS_URL"):
        return stack.env["TAKEDOWN_REDIS_URL"]
    found = re.search(r"broker (redis\+socket://\S+)", stack.worker_log())
    assert found, "the worker did not log its broker"
    return found.group(1)


def test_redis_flushed_mid_run_loses_nothing(stack: Stack) -> None:
    _, urls = fault_world()
    stack.report(*urls)
    rng = random.Random(1125)
    stack.start_worker()
    stack.wait_for(lambda: "broker " in stack.worker_log(), timeout=30, what="the worker")
    client = redis.Redis.from_url(client_url(broker_url(stack)))
    started, interrupted = time.monotonic(), set()
    for _ in range(3):
        time.sleep(rng.uniform(1.0, 3.0))
        interrupted |= {c.id for c in stack.cases() if c.state in OPEN_STATES}
        client.flushdb()
    client.close()
    drain_and_check(stack, "Redis flushed 3 times", urls, interrupted, started)
