"""`takedown worker`: the Celery worker, plus the sweep scheduler when it holds the lock."""

from __future__ import annotations

import logging
import os
import signal
import threading

from workflows.app import app, publish
from workflows.broker import Broker, SweepLock
from workflows.config import Settings
from workflows.errors import ConfigError
from workflows.mailer import parse_smtp_url
from workflows.policy import load_policy
from workflows.runtime import Runtime
from workflows.store import migrate
from workflows.sweep import sweep

log = logging.getLogger("takedown.worker")


class Scheduler(threading.Thread):
    """Run the sweep every `sweep_every`, but only while this process holds the lock."""

    def __init__(self, rt: Runtime, lock: SweepLock) -> None:
        super().__init__(name="takedown-sweep", daemon=True)
        self.rt = rt
        self.lock = lock
        self.stopping = threading.Event()
        self.sweeps = 0

    def run(self) -> None:
        """Sweep until stopped; a failed sweep is logged and tried again next time."""
        while not self.stopping.is_set():
            try:
                if self.lock.acquire():
                    report = sweep(self.rt, publish)
                    self.sweeps += 1
                    if report.tasks:
                        log.info(
                            "sweep: %d traced, %d acted, %d notices built, %d sent",
                            report.traced,
                            report.acted,
                            report.notices_built,
                            report.notices_sent,
                        )
            except Exception:  # the scheduler must outlive any one sweep
                log.exception("sweep failed; retrying at the next interval")
            self.stopping.wait(self.rt.policy.sweep_every)

    def stop(self) -> None:
        """Stop sweeping and give the lock up."""
        self.stopping.set()
        self.join(timeout=10)
        try:
            self.lock.release()
        except Exception:  # noqa: BLE001 - Redis may be gone already; the lease expires
            log.warning("could not release the sweep lock; it expires by itself")


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def run_worker(settings: Settings, *, concurrency: int, pool: str, sweep_enabled: bool) -> int:
    """Run the worker in the foreground until SIGTERM/SIGINT; return the exit code."""
    # Until Celery installs its own handler, SIGTERM must unwind (closing the embedded Redis)
    # rather than kill the process where it stands.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    if settings.sender is None:
        raise ConfigError("TAKEDOWN_SENDER: required: the From address of every notice")
    parse_smtp_url(settings.smtp_url, password=settings.smtp_password)  # fail before starting
    policy = load_policy(settings.policy)  # a bad policy stops start-up, naming its line
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    with Broker(settings) as broker:
        rt = Runtime.from_settings(settings, policy)
        migrate(rt.engine)
        app.conf.broker_url = broker.url
        scheduler = None
        if sweep_enabled:
            ttl = max(10.0, 3 * rt.policy.sweep_every)
            assert broker.client is not None
            scheduler = Scheduler(rt, SweepLock(broker.client, ttl))
            scheduler.start()
        log.info(
            "takedown worker: broker %s%s, database %s",
            broker.url,
            " (embedded)" if broker.embedded else "",
            rt.engine.url.render_as_string(),
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
                    "takedown",
                    "--loglevel",
                    "INFO",
                    "--without-gossip",
                    "--without-mingle",
                    "--hostname",
                    f"takedown-{os.getpid()}@%h",
                ]
            )
        finally:
            if scheduler is not None:
                scheduler.stop()
            rt.close()
            # An embedded Redis stops with its last client: Celery's pools must go first.
            app.close()
    return 0
