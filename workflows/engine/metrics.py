"""Prometheus metrics: what the database and Redis say at scrape time, and this process's
latencies.

The store's figures come from one Collector that reads them when scraped, so the web desk
and every worker report the same truth (aggregate with `max`, never `sum`):

    takedown_cases{state}                    cases in each state
    takedown_notices{status}                 notices in each delivery status
    takedown_uncertain_notices               notices that may or may not have left: a person decides
    takedown_form_tasks_waiting              web-form tasks no analyst has submitted yet
    takedown_checks_total{outcome}           re-checks stored, by outcome
    takedown_inbox_messages_total{kind}      returned mail taken, by kind
    takedown_due{what}                       cases / notices due now and not claimed
    takedown_due_lag_seconds{what}           how long the oldest of them has been due
    takedown_dead_recipients                 addresses skipped because they bounced lately
    takedown_time_to_removal_seconds{since}  histogram over removed cases' current round,
                                             from report or from the first notice
    takedown_schema_current, takedown_database_up, takedown_redis_up, takedown_build_info
    takedown_queue_depth{queue}              tasks waiting in each Celery queue (LLEN)
    takedown_tasks_unacked                   tasks taken by workers, not finished yet
    takedown_workers                         workers with a fresh heartbeat
    takedown_sweep_lag_seconds               now − the end of the last sweep
    takedown_last_sweep_timestamp_seconds

Latency histograms are this process's own (a worker's /metrics, TAKEDOWN_METRICS_PORT):
takedown_trace_seconds (one URL), takedown_fetch_seconds{outcome} (one re-check, from
passing the fetch loop's gates to its result), takedown_send_seconds{status} (one
notice's SMTP conversation). With the prefork pool the tasks run in child processes: the
worker then keeps the histograms in files (prometheus_client's multiprocess mode) and its
/metrics adds them up.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import redis
from prometheus_client import REGISTRY, CollectorRegistry, Histogram, generate_latest, values
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import Engine, case, func, or_, select
from sqlalchemy.exc import SQLAlchemyError

from workflows import __version__
from workflows.config.settings import Settings
from workflows.engine import health
from workflows.kinds import WORKABLE_STATES, CaseState, CheckOutcome, NoticeStatus
from workflows.store.db import head_revision, schema_revision
from workflows.store.models import Case, Check, DeadRecipient, InboundMessage, Notice

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
REMOVAL_BUCKETS = tuple(
    float(s) for s in (60, 300, 900, 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 3 * 86400)
) + tuple(float(d * 86400) for d in (7, 14, 30, 90))
INBOX_KINDS = ("bounce", "delay", "reply", "auto_reply", "other", "unreadable")  # inbound.Kind
LATENCIES = {
    "trace": ("takedown_trace_seconds", "Time to trace one URL and decide its route", ()),
    "fetch": ("takedown_fetch_seconds", "Time of one re-check's fetch", ("outcome",)),
    "send": ("takedown_send_seconds", "Time of one notice's SMTP delivery", ("status",)),
}
MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR"
# The classic text format generate_latest writes (every Prometheus reads it).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_histograms: dict[str, Histogram] = {}
_lock = threading.Lock()


def latency(stage: str) -> Histogram:
    """Return STAGE's histogram, made on first use (in a prefork child, after the fork)."""
    with _lock:
        if stage not in _histograms:
            name, documentation, labels = LATENCIES[stage]
            _histograms[stage] = Histogram(
                name, documentation, labels, buckets=LATENCY_BUCKETS, registry=REGISTRY
            )
        return _histograms[stage]


class Timer:
    """What `timed` yields: the label of the observation, set when it is known."""

    label: str = "unknown"

    def set(self, label: str) -> None:
        """Label the observation (a fetch's outcome, a delivery's status)."""
        self.label = label


@contextmanager
def timed(stage: str) -> Iterator[Timer]:
    """Observe how long the block takes in STAGE's latency histogram."""
    timer, started = Timer(), time.monotonic()
    try:
        yield timer
    finally:
        observe(stage, time.monotonic() - started, timer.label)


def observe(stage: str, seconds: float, label: str = "unknown") -> None:
    """Add one observation to STAGE's histogram (a label only where the stage has one)."""
    histogram = latency(stage)
    (histogram.labels(label) if LATENCIES[stage][2] else histogram).observe(seconds)


def observe_fetch(result: Any, seconds: float) -> None:
    """Observe one re-check (the fetch loop calls it with the FetchResult)."""
    observe("fetch", seconds, str(getattr(result, "outcome", "unknown")))


def use_files_for_children() -> str:
    """Keep latency histograms in files from now on (prefork children inherit it); return
    the folder. Call before any task runs; the caller removes the folder at the end."""
    folder = tempfile.mkdtemp(prefix="takedown-metrics-")
    os.environ[MULTIPROCESS] = folder
    # Histograms are made on first use, so every one made from now on keeps its values in
    # a file of its process (prometheus_client reads the variable only at its import).
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    return folder


class Union(Collector):
    """Several collectors read as one (for generate_latest)."""

    def __init__(self, *collectors: Any) -> None:
        self.collectors = collectors

    def collect(self) -> Iterable[Metric]:
        """Yield every collector's metrics."""
        for collector in self.collectors:
            yield from collector.collect()


def exposition(store: StoreCollector) -> bytes:
    """Return the text exposition of this process: the store's figures and its latencies."""
    own: Any = REGISTRY
    folder = os.environ.get(MULTIPROCESS)
    if folder and os.path.isdir(folder):
        children = CollectorRegistry()
        MultiProcessCollector(children, path=folder)  # type: ignore[no-untyped-call]
        own = Union(REGISTRY, children)
    return generate_latest(Union(own, store))


class StoreCollector(Collector):
    """The engine's figures, read from the database and Redis when scraped."""

    def __init__(self, engine: Engine, settings: Settings, clock: Callable[[], float] = time.time):
        self.engine, self.settings, self.clock = engine, settings, clock

    def collect(self) -> Iterable[Metric]:
        """Yield every family; a service that does not answer yields its `_up` as 0."""
        info = GaugeMetricFamily("takedown_build_info", "The running version", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        now = self.clock()
        try:
            current = schema_revision(self.engine)
            families = list(self._database(now)) if current == head_revision() else []
        except SQLAlchemyError:
            yield _gauge("takedown_database_up", "Whether the database answered", False)
        else:
            yield _gauge("takedown_database_up", "Whether the database answered", True)
            yield _gauge(
                "takedown_schema_current",
                "Whether the schema is at this code's newest revision (else: takedown migrate)",
                current == head_revision(),
            )
            yield from families  # an older or newer schema is not counted: it may not fit
        yield from self._redis(now)

    def _database(self, now: float) -> Iterator[Metric]:
        at = dt.datetime.fromtimestamp(now, dt.UTC)
        with self.engine.connect() as connection:
            yield from _counts(connection, at)
            yield from _due(connection, at)
            yield _removal(connection)

    def _redis(self, now: float) -> Iterator[Metric]:
        client = health.redis_client(self.settings)
        if client is None:
            yield _gauge("takedown_redis_up", "Whether Redis answered", False)
            return
        try:
            depths = health.queue_depths(client, health.all_queues(self.settings))
            taken = health.unacked(client)
            workers = health.live_workers(client, now)
            swept = health.sweep_state(client)["last"]
        except (redis.RedisError, OSError):
            yield _gauge("takedown_redis_up", "Whether Redis answered", False)
            return
        finally:
            client.close()
        yield _gauge("takedown_redis_up", "Whether Redis answered", True)
        queues = GaugeMetricFamily(
            "takedown_queue_depth", "Tasks waiting in each Celery queue", labels=["queue"]
        )
        for queue, depth in depths.items():
            queues.add_metric([queue], depth)
        yield queues
        yield _gauge("takedown_tasks_unacked", "Tasks taken by workers, not finished yet", taken)
        yield _gauge("takedown_workers", "Workers with a fresh heartbeat", len(workers))
        if swept is not None:
            yield _gauge(
                "takedown_last_sweep_timestamp_seconds", "When the last sweep ended", swept["at"]
            )
            yield _gauge(
                "takedown_sweep_lag_seconds",
                "Seconds since the last sweep ended",
                max(0.0, now - swept["at"]),
            )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=float(value))


def _counts(connection: Any, at: dt.datetime) -> Iterator[Metric]:
    """Yield the rows of each closed set: cases, notices, checks, inbox messages."""
    statuses = _grouped(connection, Notice.status)
    cases = _grouped(connection, Case.state)
    yield _by("takedown_cases", "Cases in each state", "state", CaseState, cases)
    yield _by("takedown_notices", "Notices in each status", "status", NoticeStatus, statuses)
    yield _gauge(
        "takedown_uncertain_notices",
        "Notices that may or may not have left: a supervisor decides",
        statuses.get(NoticeStatus.UNCERTAIN, 0),
    )
    yield _gauge(
        "takedown_form_tasks_waiting",
        "Web-form tasks waiting for an analyst to submit them",
        statuses.get(NoticeStatus.FORM, 0),
    )
    outcomes = _grouped(connection, Check.outcome)
    yield _by("takedown_checks", "Re-checks stored", "outcome", CheckOutcome, outcomes, True)
    kinds = _grouped(connection, InboundMessage.kind)
    yield _by("takedown_inbox_messages", "Returned mail taken", "kind", INBOX_KINDS, kinds, True)
    dead = select(func.count()).select_from(DeadRecipient).where(DeadRecipient.until > at)
    yield _gauge(
        "takedown_dead_recipients",
        "Addresses skipped because they bounced lately",
        connection.scalar(dead) or 0,
    )


def _grouped(connection: Any, column: Any) -> dict[str, int]:
    """Return how many rows hold each value of COLUMN."""
    rows = connection.execute(select(column, func.count()).group_by(column)).all()
    return {str(value): int(count) for value, count in rows}


def _by(
    name: str,
    documentation: str,
    label: str,
    every: Iterable[str],
    found: dict[str, int],
    counter: bool = False,
) -> Metric:
    """Return one sample per value of a closed set (0 where none), and any others found."""
    kind = CounterMetricFamily if counter else GaugeMetricFamily
    family = kind(name, documentation, labels=[label])
    known = [str(value) for value in every]
    for value in [*known, *sorted(set(found) - set(known))]:
        family.add_metric([value], found.get(value, 0))
    return family


def _due(connection: Any, at: dt.datetime) -> Iterator[Metric]:
    """Yield how much work is due and unclaimed, and how long the oldest has waited."""
    free = or_(Case.claimed_until.is_(None), Case.claimed_until <= at)
    cases = connection.execute(
        select(func.count(), func.min(Case.due_at)).where(
            Case.state.in_((*WORKABLE_STATES, CaseState.REMOVED)), Case.due_at <= at, free
        )
    ).one()
    notices = connection.execute(
        select(func.count(), func.min(Notice.due_at)).where(
            Notice.status == NoticeStatus.PENDING, Notice.due_at <= at
        )
    ).one()
    due = GaugeMetricFamily("takedown_due", "Work due now that no claim holds", labels=["what"])
    lag = GaugeMetricFamily(
        "takedown_due_lag_seconds",
        "How long the oldest unclaimed due work has waited",
        labels=["what"],
    )
    for what, (count, oldest) in (("cases", cases), ("notices", notices)):
        due.add_metric([what], count or 0)
        waited = (at - _aware(oldest)).total_seconds() if oldest is not None else 0.0
        lag.add_metric([what], max(0.0, waited))
    yield due
    yield lag


def _aware(value: Any) -> dt.datetime:
    """Return a stored time as aware UTC (an aggregate skips the column's type)."""
    if isinstance(value, str):  # SQLite gives min() of a time column back as its text
        value = dt.datetime.fromisoformat(value)
    at: dt.datetime = value
    return at if at.tzinfo else at.replace(tzinfo=dt.UTC)


def _removal(connection: Any) -> HistogramMetricFamily:
    """Return time to removal of every removed case's current round, counted in the database."""
    family = HistogramMetricFamily(
        "takedown_time_to_removal_seconds",
        "Time to removal of removed cases (current round), from report or first notice",
        labels=["since"],
    )
    for since, start in (
        ("report", func.coalesce(Case.reopened_at, Case.opened_at)),
        ("first_notice", Case.first_notice_at),
    ):
        seconds = _seconds(connection.dialect.name, start, Case.removed_at).label("d")
        rows = select(seconds).where(Case.removed_at.is_not(None), start.is_not(None)).subquery()
        counts = [func.sum(case((rows.c.d <= bound, 1), else_=0)) for bound in REMOVAL_BUCKETS]
        total, summed, *cumulative = connection.execute(
            select(func.count(), func.sum(rows.c.d), *counts)
        ).one()
        buckets = [
            (str(bound), float(count or 0))
            for bound, count in zip(REMOVAL_BUCKETS, cumulative, strict=True)
        ]
        family.add_metric([since], [*buckets, ("+Inf", float(total))], float(summed or 0))
    return family


def _seconds(dialect: str, start: Any, end: Any) -> Any:
    """Return END − START in seconds as an SQL expression."""
    if dialect == "postgresql":
        return func.extract("epoch", end - start)
    return (func.julianday(end) - func.julianday(start)) * 86400.0  # SQLite
