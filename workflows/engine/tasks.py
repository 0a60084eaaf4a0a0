"""The Celery application and its thin tasks: each takes ids and calls the acting.

Tasks are acks_late with reject_on_worker_lost, so a killed worker's task runs again, and
every task is safe to run twice (compare-and-set, unique outbox keys). Nothing waits in
the broker for long: due times live in the database and the sweep hands work out.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import redis
from celery import Celery
from sqlalchemy.exc import OperationalError

from workflows.config.settings import load_settings
from workflows.engine import acting, sending, tracing
from workflows.engine.runtime import Runtime

QUEUE = "takedown"
TIME_LIMIT = 120  # seconds; the claim lease (Runtime.lease) is longer, the broker's
VISIBILITY = 900  # visibility timeout longer still (Celery redelivers past it)

app = Celery("takedown")
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    task_default_queue=QUEUE,
    task_ignore_result=True,
    task_time_limit=TIME_LIMIT,
    task_soft_time_limit=TIME_LIMIT - 20,
    worker_prefetch_multiplier=1,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    broker_transport_options={"visibility_timeout": VISIBILITY},
)
RETRY: dict[str, Any] = {
    # Database and broker hiccups are transient: back off with jitter, a minute at most;
    # past the last retry the claim's lease expires and the sweep hands the work out again.
    "autoretry_for": (OperationalError, redis.ConnectionError, ConnectionError),
    "retry_backoff": True,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 5,
}

_runtime: Runtime | None = None
_lock = threading.Lock()


def runtime() -> Runtime:
    """Return this worker process's runtime, built on first use (after any fork)."""
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = Runtime.from_settings(load_settings())
            # Every worker shares its RDAP answers through the broker's Redis.
            _runtime.shared_redis_url = app.conf.broker_url or None
        return _runtime


@app.task(name="takedown.trace", **RETRY)
def trace_task(ids: Sequence[int]) -> None:
    """Trace and route these cases."""
    tracing.trace_cases(runtime(), list(ids))


@app.task(name="takedown.act", **RETRY)
def act_task(ids: Sequence[int]) -> None:
    """Owe due steps and re-check these active cases."""
    acting.act_cases(runtime(), list(ids))


@app.task(name="takedown.send", **RETRY)
def send_task(ids: Sequence[int]) -> None:
    """Send these claimed notices, each at most once."""
    for notice_id in ids:
        sending.send_notice(runtime(), notice_id)


def publish(task: str, ids: Sequence[int]) -> None:
    """Put one task on the queue."""
    app.send_task(task, args=[list(ids)], queue=QUEUE)
