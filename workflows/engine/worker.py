"""`takedown worker`: the Celery worker, plus the sweep scheduler when it holds the lock."""

from __future__ import annotations

import logging
import shutil
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager

import celery.apps.worker as celery_worker
from celery.signals import worker_process_init

from workflows.config.settings import Settings, redact_url
from workflows.engine import health, metrics, wake
from workflows.engine.broker import Broker, SweepLock
from workflows.engine.logs import configure_logging, say_as_json
from workflows.engine.opsserver import OpsServer
from workflows.engine.runtime import Runtime, check_start
from workflows.engine.sweep import sweep
from workflows.engine.tasks import app, publish, route_queues
from workflows.errors import ConfigError
from workflows.store.db import engine_for, require_schema, schema_revision, upgrades_itself

log = logging.getLogger("takedown.worker")
CATCH_UP = 1.0  # seconds between sweeps at most while due work waits for room in the queues


def next_sweep(started: float, now: float, every: float, more: bool) -> float:
    """Return when the sweep that began at STARTED is followed (NOW: it ended): EVERY after
    it began, at most CATCH_UP while it left MORE work; a quarter of that after NOW at
    least, however long it ran."""
    every = min(every, CATCH_UP) if more else every
    return max(started + every, now + every / 4)


class Scheduler(threading.Thread):
    """Run the sweep every `sweep_every`, but only while this process holds the lock."""

    def __init__(self, rt: Runtime, lock: SweepLock, name: str = "") -> None:
        super().__init__(name="takedown-sweep", daemon=True)
        self.rt = rt
        self.lock = lock
        self.name_in_redis = name or health.worker_name()  # who sweeps, for `takedown health`
        self.stopping = threading.Event()
        self.sweeps = 0
        self.nudged = 0  # sweeps a report woke before their time
        self.holding = False

    def run(self) -> None:
        """Sweep until stopped; a failed sweep is logged and tried again next time."""
        threading.Thread(target=self._heartbeat, name="takedown-sweep-lease", daemon=True).start()
        while not self.stopping.is_set():
            started = time.monotonic()
            more = False
            try:
                holding = self.lock.acquire()
                if holding != self.holding:  # the log shows which process sweeps, and when
                    self.holding = holding
                    log.info("sweep lock %s", "taken: this worker sweeps" if holding else "lost")
                if holding:
                    began = time.time()
                    report = sweep(self.rt, publish, self.backlog, self.shares)
                    self.sweeps += 1
                    more = report.more
                    health.record_sweep(
                        self.lock.client, self.name_in_redis, began, len(report.tasks)
                    )
                    if report.tasks:
                        log.info(
                            "sweep: %d traced, %d stepped, %d checked, %d notices built, %d sent",
                            report.traced,
                            report.stepped,
                            report.acted,
                            report.notices_built,
                            report.notices_sent,
                        )
            except Exception:  # the scheduler must outlive any one sweep
                log.exception("sweep failed; retrying at the next interval")
            self._pause(started, more)

    def _pause(self, started: float, more: bool = False) -> None:
        """Wait for the next sweep: `sweep_every` after this one began (a long sweep still
        rests a quarter of it, leaving the tasks the processor), or at once when a report
        wakes the holder (engine/wake.py); a process that does not sweep sleeps. MORE (the
        sweep left due work for full queues or its claim's limit): at most CATCH_UP, so a
        big report or re-check pass goes at the workers' pace, whatever `sweep_every` is."""
        until = next_sweep(started, time.monotonic(), self.rt.policy.sweep_every, more)
        if not self.holding:
            self.stopping.wait(max(0.0, until - time.monotonic()))
            return
        stop_key = wake.stop_key(self.name_in_redis)
        if wake.pause(self.lock.client, until, self.stopping, stop_key):
            self.nudged += 1

    def shares(self, checks: str, behind: Sequence[str]) -> bool:
        """Tell whether every live worker that takes CHECKS takes one of BEHIND too (their
        heartbeats say which queues each takes): then re-checks would slow the work behind.
        Workers of their own for re-checks (`worker --queues takedown.checks`) go on."""
        try:
            takers = [
                set(w.get("queues", []))
                for w in health.live_workers(self.lock.client, time.time())
                if checks in w.get("queues", [])
            ]
        except Exception:  # noqa: BLE001 - Redis hiccup: assume the one-worker default
            return True
        return all(queues & set(behind) for queues in takers)

    def backlog(self, queue: str) -> int:
        """Return how many tasks wait in QUEUE (a list in Redis, under the queue's name)."""
        return int(self.lock.client.llen(queue))

    def _heartbeat(self) -> None:
        """Renew a held lease every third of its life, however long one sweep takes."""
        every = self.lock.ttl_ms / 3000
        while not self.stopping.wait(every):
            if not self.holding:
                continue
            try:
                if not self.lock.acquire():
                    log.warning("sweep lock lost to another worker")
            except Exception:  # noqa: BLE001 - Redis down: the sweep loop reports it
                continue

    def stop(self) -> None:
        """Stop sweeping and give the lock up."""
        self.stopping.set()
        if self.holding:  # it may be waiting on Redis for a nudge: end that wait now
            wake.unblock(self.lock.client, wake.stop_key(self.name_in_redis))
        self.join(timeout=10)
        try:
            self.lock.release()
        except Exception:  # noqa: BLE001 - Redis may be gone already; the lease expires
            log.warning("could not release the sweep lock; it expires by itself")


class Watchdog(threading.Thread):
    """Restart the embedded Redis when it dies, so Celery reconnects to the same socket."""

    def __init__(self, broker: Broker, every: float = 1.0) -> None:
        super().__init__(name="takedown-redis-watchdog", daemon=True)
        self.broker = broker
        self.every = every
        self.stopping = threading.Event()
        self.restarts = 0

    def run(self) -> None:
        """Check the server every second until stopped."""
        while not self.stopping.wait(self.every):
            try:
                if self.broker.keep_alive():
                    self.restarts += 1
                    log.warning("embedded Redis had died: restarted it on the same socket")
            except Exception:  # the watchdog must outlive one failed restart
                log.exception("could not restart the embedded Redis; trying again")

    def stop(self) -> None:
        """Stop watching (before the broker closes, so it is not restarted on the way out)."""
        self.stopping.set()
        self.join(timeout=10)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def run_worker(
    settings: Settings,
    *,
    concurrency: int,
    pool: str,
    sweep_enabled: bool,
    queues: Sequence[str] = (),
) -> int:
    """Run the worker in the foreground until SIGTERM/SIGINT; return the exit code.

    QUEUES: the queues it takes tasks from; empty: every queue (TAKEDOWN_QUEUES)."""
    # Until Celery installs its own handler, SIGTERM must unwind (closing the embedded Redis)
    # rather than kill the process where it stands.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    policy = check_start(settings)
    every_queue = route_queues(settings.queues)
    unknown = sorted(set(queues) - set(every_queue))
    if unknown:
        raise ConfigError(
            f"--queues: {', '.join(unknown)}: no task goes there (queues: {', '.join(every_queue)})"
        )
    check_schema(settings)  # before anything starts: an old schema stops us here
    configure_logging(settings.log_format)
    if settings.log_format == "json":
        celery_worker.safe_say = say_as_json  # its shutdown lines: JSON lines too
    taken = list(queues or every_queue)
    name = health.worker_name()
    with Broker(settings) as broker, ExitStack() as running:
        rt = Runtime.from_settings(settings, policy)
        running.callback(rt.close)
        app.conf.broker_url = broker.url
        assert broker.client is not None
        if broker.embedded:
            _start(running, Watchdog(broker))
        if sweep_enabled:
            # The lease outlives a stalled process for a while; a dead holder's passes on
            # within it (TAKEDOWN_SWEEP_LEASE, at least three sweeps). It is renewed by a
            # heartbeat, not by the sweeps, so a long sweep cannot let a second scheduler in.
            ttl = max(settings.sweep_lease, 3 * rt.policy.sweep_every)
            _start(running, Scheduler(rt, SweepLock(broker.client, ttl, holder=name), name))
        _start(running, health.Heartbeat(broker.client, name, taken))
        if settings.metrics_address is not None:
            running.enter_context(_operations(settings, rt, pool))
        log.info(
            "takedown worker: broker %s%s, database %s, queues %s",
            redact_url(broker.url),
            " (embedded)" if broker.embedded else "",
            rt.engine.url.render_as_string(),
            ",".join(taken),
        )
        try:
            app.worker_main(_celery_argv(settings, pool, concurrency, taken))
        finally:
            running.close()  # watchdog, scheduler and heartbeat stop before Redis closes
            # An embedded Redis stops with its last client: Celery's pools must go first.
            app.close()
    return 0


def check_schema(settings: Settings) -> None:
    """Refuse an old schema (ConfigError: exit 2, "run `takedown migrate`").

    A worker never upgrades a schema: other workers of the older version may still run on
    it. It only creates the tables of a new embedded database (SQLite with none yet),
    which no other process can be using, so `takedown worker` works on a fresh home."""
    engine = engine_for(settings)
    try:
        fresh = upgrades_itself(engine) and schema_revision(engine) is None
        require_schema(engine, upgrade=fresh)
    finally:
        engine.dispose()


def _start(running: ExitStack, thread: Watchdog | Scheduler | health.Heartbeat) -> None:
    """Start THREAD; stop it when RUNNING closes.

    The stop is registered first: a SIGTERM landing between the two must still stop the
    thread (a watchdog left running would restart the embedded Redis the broker just
    stopped, and leave it behind)."""
    running.callback(_stop, thread)
    thread.start()


def _stop(thread: Watchdog | Scheduler | health.Heartbeat) -> None:
    """Stop THREAD if it was started."""
    if thread.ident is None:
        thread.stopping.set()  # never started: nothing runs, nothing to join
        return
    thread.stop()


@contextmanager
def _operations(settings: Settings, rt: Runtime, pool: str) -> Iterator[None]:
    """Serve /metrics, /healthz and /readyz on TAKEDOWN_METRICS_PORT while the worker runs.

    The prefork pool runs tasks in children: their latencies go to files the server reads."""
    assert settings.metrics_address is not None
    folder = metrics.use_files_for_children() if pool == "prefork" else None
    server = OpsServer(settings.metrics_address, rt.engine, settings).start()

    def close_in_child(**_: object) -> None:
        server.close_inherited()

    worker_process_init.connect(close_in_child, weak=False)
    log.info("metrics, healthz and readyz on port %d", server.port)
    try:
        yield
    finally:
        worker_process_init.disconnect(close_in_child)
        server.stop()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def _celery_argv(settings: Settings, pool: str, concurrency: int, queues: list[str]) -> list[str]:
    """Return Celery's command line; JSON logs leave out its banner (not a JSON line)."""
    quiet = ["--quiet"] if settings.log_format == "json" else []
    return [
        *quiet,
        "worker",
        "--pool",
        pool,
        "--concurrency",
        str(concurrency),
        "--queues",
        ",".join(queues),
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
        "--hostname",
        name_for_celery(),
    ]


def name_for_celery() -> str:
    """Return the worker's Celery hostname: takedown-PID@%h (Celery fills in the host)."""
    return health.worker_name().rpartition("@")[0] + "@%h"
