"""`takedown worker`: the Celery worker, plus the sweep scheduler when it holds the lock."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Sequence

from workflows.config.settings import Settings, redact_url
from workflows.engine.broker import Broker, SweepLock
from workflows.engine.runtime import Runtime, check_start
from workflows.engine.sweep import sweep
from workflows.engine.tasks import app, publish, route_queues
from workflows.errors import ConfigError
from workflows.store.db import migrate

log = logging.getLogger("takedown.worker")


class Scheduler(threading.Thread):
    """Run the sweep every `sweep_every`, but only while this process holds the lock."""

    def __init__(self, rt: Runtime, lock: SweepLock) -> None:
        super().__init__(name="takedown-sweep", daemon=True)
        self.rt = rt
        self.lock = lock
        self.stopping = threading.Event()
        self.sweeps = 0
        self.holding = False

    def run(self) -> None:
        """Sweep until stopped; a failed sweep is logged and tried again next time."""
        threading.Thread(target=self._heartbeat, name="takedown-sweep-lease", daemon=True).start()
        while not self.stopping.is_set():
            try:
                holding = self.lock.acquire()
                if holding != self.holding:  # the log shows which process sweeps, and when
                    self.holding = holding
                    log.info("sweep lock %s", "taken: this worker sweeps" if holding else "lost")
                if holding:
                    report = sweep(self.rt, publish, self.backlog)
                    self.sweeps += 1
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
            self.stopping.wait(self.rt.policy.sweep_every)

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
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    with Broker(settings) as broker:
        rt = Runtime.from_settings(settings, policy)
        migrate(rt.engine)
        app.conf.broker_url = broker.url
        scheduler = None
        watchdog = Watchdog(broker) if broker.embedded else None
        if watchdog is not None:
            watchdog.start()
        if sweep_enabled:
            # The lease outlives a stalled process for a while; a dead holder's passes on
            # within it (TAKEDOWN_SWEEP_LEASE, at least three sweeps). It is renewed by a
            # heartbeat, not by the sweeps, so a long sweep cannot let a second scheduler in.
            ttl = max(settings.sweep_lease, 3 * rt.policy.sweep_every)
            assert broker.client is not None
            scheduler = Scheduler(rt, SweepLock(broker.client, ttl))
            scheduler.start()
        log.info(
            "takedown worker: broker %s%s, database %s, queues %s",
            redact_url(broker.url),
            " (embedded)" if broker.embedded else "",
            rt.engine.url.render_as_string(),
            ",".join(queues or every_queue),
        )
        try:
            app.worker_main(
                [
                    "worker",
                    "--pool",
                    pool,
                    "--concurrency",
                    str(concurrency),
                    "--queues",
                    ",".join(queues or every_queue),
                    "--loglevel",
                    "INFO",
                    "--without-gossip",
                    "--without-mingle",
                    "--hostname",
                    f"takedown-{os.getpid()}@%h",
                ]
            )
        finally:
            if watchdog is not None:
                watchdog.stop()
            if scheduler is not None:
                scheduler.stop()
            rt.close()
            # An embedded Redis stops with its last client: Celery's pools must go first.
            app.close()
    return 0
