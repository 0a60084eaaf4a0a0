"""The Celery application and its thin tasks: each takes ids and calls a stage.

    task              queue (default)      does
    takedown.trace    takedown             trace and route new cases, owe their first step
    takedown.steps    takedown.notices     owe the workflow steps due (first notices, chasers)
    takedown.send     takedown.send        send claimed notices
    takedown.check    takedown.checks      re-check URLs, hundreds at once, then owe steps
    takedown.inbox    takedown.notices     read TAKEDOWN_IMAP_URL: bounces and replies

Steps and notices never wait behind re-checks: they have their own queues, which a worker
reads beside the others (Celery's Redis transport takes from its queues in turn), and
sending never waits behind the steps (a 100,000-URL report makes thousands of steps
tasks: its first notices queued behind them for minutes, benchmarks workload 3); and
TAKEDOWN_QUEUES can move any task to a queue of its own so a deployment gives re-checks
their own workers (`takedown worker --queues takedown.checks`).

Tasks are acks_late with reject_on_worker_lost, so a killed worker's task runs again, and
every task is safe to run twice (compare-and-set, unique outbox keys). Nothing waits in
the broker for long: due times live in the database and the sweep hands work out.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis
from celery import Celery
from celery.signals import task_postrun, task_prerun
from sqlalchemy.exc import OperationalError

from workflows.config.settings import load_settings
from workflows.engine import acting, inbox, kombu_fix, sending, tracing
from workflows.engine.logs import enter_context, leave_context
from workflows.engine.runtime import Runtime

QUEUE = "takedown"
# Task → queue; TAKEDOWN_QUEUES overrides (config.settings.parse_queues).
DEFAULT_QUEUES = {
    "trace": QUEUE,
    "steps": "takedown.notices",
    "send": "takedown.send",
    "check": "takedown.checks",
    "inbox": "takedown.notices",
}
TIME_LIMIT = 120  # seconds; the claim lease (Runtime.lease) is longer, the broker's
VISIBILITY = 900  # visibility timeout longer still (Celery redelivers past it)

kombu_fix.apply()  # a broker outage with tasks in flight must not end the worker
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
    # Task events (received, started, succeeded, failed) only while someone watches: Flower
    # turns them on in every worker when it starts and every few seconds after (its
    # --enable_events, on by default), as does `celery control enable_events`. Sent for
    # every task, they were a tenth of a busy worker's time (a Redis PUBLISH per event,
    # four per task; benchmarks, workload 4) for a channel that keeps nothing unheard.
    worker_send_task_events=False,
    task_send_sent_event=False,
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
    """Trace and route these cases, then owe the first step of those routed: a first notice
    does not wait for another sweep and another task."""
    rt = runtime()
    routed = tracing.trace_cases(rt, list(ids), keep_claims=True)
    if routed:
        acting.act_cases(rt, routed, recheck=False)


@app.task(name="takedown.steps", **RETRY)
def steps_task(ids: Sequence[int]) -> None:
    """Owe the due workflow steps of these active cases (re-checking only before a chaser)."""
    acting.act_cases(runtime(), list(ids), recheck=False)


@app.task(name="takedown.check", **RETRY)
def check_task(ids: Sequence[int]) -> None:
    """Re-check these cases' URLs, then owe any step due."""
    acting.act_cases(runtime(), list(ids))


@app.task(name="takedown.act", **RETRY)
def act_task(ids: Sequence[int]) -> None:
    """The check task's earlier name: tasks queued before an upgrade still run."""
    acting.act_cases(runtime(), list(ids))


@app.task(name="takedown.send", **RETRY)
def send_task(ids: Sequence[int]) -> None:
    """Send these claimed notices, each at most once, side by side (each its own relay
    connection, kept open for the next ones: runtime().relay)."""
    rt = runtime()
    if len(ids) <= 1:
        for notice_id in ids:
            sending.send_notice(rt, notice_id)
        return
    context = contextvars.copy_context()  # the task's log fields, in every thread
    with ThreadPoolExecutor(max_workers=len(ids), thread_name_prefix="takedown-send") as pool:
        done = [pool.submit(context.copy().run, sending.send_notice, rt, n) for n in ids]
    for future in done:
        future.result()  # the first failure fails the task; its retry skips what was sent


@app.task(name="takedown.inbox", **RETRY)
def inbox_task(ids: Sequence[int]) -> None:
    """Read the mailbox once (IDS is empty: every task takes a list of ids)."""
    inbox.poll_mailbox(runtime())


_log_tokens: dict[str, object] = {}  # task id → its log context, while it runs


@task_prerun.connect
def _log_ids(task_id: str, task: Any, args: Sequence[Any] = (), **_: Any) -> None:
    """Put the running task's ids on every line it logs (JSON logs: case_ids, notice_ids)."""
    ids = list(args[0]) if args and isinstance(args[0], list | tuple) else []
    what = "notice_ids" if task.name == "takedown.send" else "case_ids"
    fields: dict[str, Any] = {"task": task.name, "task_id": task_id}
    if ids:
        fields[what] = ids
    _log_tokens[task_id] = enter_context(**fields)


@task_postrun.connect
def _forget_ids(task_id: str, **_: Any) -> None:
    """Take the finished task's ids off the lines logged after it."""
    token = _log_tokens.pop(task_id, None)
    if token is not None:
        leave_context(token)


_queues: dict[str, str] = dict(DEFAULT_QUEUES)


def route_queues(routes: Sequence[tuple[str, str]]) -> list[str]:
    """Use ROUTES (task short name, queue) over the defaults; return every queue in use."""
    _queues.clear()
    _queues.update(DEFAULT_QUEUES)
    _queues.update(routes)
    return sorted(set(_queues.values()))


def queue_of(task: str) -> str:
    """Return the queue TASK ("takedown.steps" or "steps") is published to."""
    return _queues.get(task.removeprefix("takedown."), QUEUE)


def publish(task: str, ids: Sequence[int]) -> None:
    """Put one task on its queue."""
    app.send_task(task, args=[list(ids)], queue=queue_of(task))
