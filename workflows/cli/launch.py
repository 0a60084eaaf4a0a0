"""Launch what `takedown demo` and `takedown up --demo` run: the simulated world's servers
and the engine's real processes.

The engine runs as the real `takedown report` and `takedown worker` commands, in a fresh
TAKEDOWN_HOME with every TAKEDOWN_* variable of the user's environment left out.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from importlib.resources import as_file, files
from pathlib import Path
from types import FrameType

from sqlalchemy import Engine, select, true
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from workflows.config.home import private_file
from workflows.engine.broker import stop_orphaned
from workflows.kinds import NoticeStatus
from workflows.sim import (
    DeskRunner,
    SimInternet,
    SimProxy,
    SMTPServer,
    WebServer,
    World,
)
from workflows.sim.demo_world import (
    FORM_DESKS,
    HOTLINES_TOML,
    SENDER,
    demo_desks,
    public_addresses,
)
from workflows.sim.netns import isolate_network
from workflows.store.db import database_url, make_engine
from workflows.store.models import Notice

STOP_WAIT = 20.0  # seconds a warm shutdown may take before the worker is killed


def isolate(addresses: list[str]) -> bool:
    """Move into a network namespace with ADDRESSES on loopback; False where we may not.

    TAKEDOWN_DEMO_ISOLATION=0 skips it, so the proxy mode can be shown and tested anywhere.
    """
    if os.environ.get("TAKEDOWN_DEMO_ISOLATION", "1") == "0":
        return False
    try:
        return isolate_network(addresses)
    except (RuntimeError, OSError):
        return False  # no iproute2, threads running, unshare refused: the proxy still works


def serve_world(
    stack: ExitStack,
    world: World,
    home: Path,
    isolated: bool,
    mailbox: Callable[[bytes], None] | None = None,
) -> dict[str, str]:
    """Start the world's servers and desks on STACK; return the subprocesses' environment.

    MAILBOX receives the mail the desks send back (bounces); with none it is only logged.
    """
    return serve_world_desks(stack, world, home, isolated, mailbox)[0]


def serve_world_desks(
    stack: ExitStack,
    world: World,
    home: Path,
    isolated: bool,
    mailbox: Callable[[bytes], None] | None = None,
) -> tuple[dict[str, str], DeskRunner]:
    """Do what serve_world does; return the environment and the desks' runner."""
    hotlines = home / "demo-hotlines.toml"
    hotlines.write_text(HOTLINES_TOML, encoding="utf-8")
    sim = stack.enter_context(SimInternet(world))
    smtp = stack.enter_context(SMTPServer())
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TAKEDOWN_")},
        **sim.env(),
        "TAKEDOWN_HOME": str(home),
        "TAKEDOWN_SMTP_URL": smtp.url,
        "TAKEDOWN_SENDER": SENDER,
        "TAKEDOWN_SENDER_NAME": "Demo Hotline",
        "TAKEDOWN_POLICY": str(
            stack.enter_context(as_file(files("workflows") / "data" / "demo-policy.toml"))
        ),
        "TAKEDOWN_HOTLINES": str(hotlines),
        "TAKEDOWN_COUNTRY": "GB",
        "TAKEDOWN_DNS_TIMEOUT": "1s",
    }
    if isolated:
        for address in public_addresses(world):
            stack.enter_context(WebServer(world, host=address, port=80))
    else:
        web = stack.enter_context(WebServer(world))
        env["TAKEDOWN_FETCH_PROXY"] = stack.enter_context(SimProxy(world, web)).url
    runner = stack.enter_context(DeskRunner(world, smtp, demo_desks(world), mailbox=mailbox))
    stack.enter_context(FormBackend(home, runner))
    return env, runner


class FormBackend:
    """The providers' web forms of the demo world: a form task an analyst marked submitted
    (the desk's Web forms page, or the demo's analyst) reaches the provider's simulated
    desk, which reacts as to a notice (demo_world.FORM_DESKS)."""

    def __init__(self, home: Path, desks: DeskRunner, every: float = 0.5) -> None:
        self.home, self.desks, self.every = home, desks, every
        self.forwarded: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="form-backend", daemon=True)

    def __enter__(self) -> FormBackend:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        engine = make_engine(database_url(None, self.home))
        try:
            while not self._stop.wait(self.every):
                try:
                    self.forward(engine)
                except SQLAlchemyError:
                    continue  # not migrated yet, or busy: the next round reads again
        finally:
            engine.dispose()

    def forward(self, engine: Engine) -> None:
        """Hand every newly submitted form to its desk."""
        with Session(engine) as session:
            submitted = session.scalars(
                select(Notice).where(
                    Notice.status == NoticeStatus.SENT,
                    Notice.recipients.in_(list(FORM_DESKS)),
                    Notice.id.not_in(self.forwarded) if self.forwarded else true(),
                )
            ).all()
        for notice in submitted:
            self.forwarded.add(notice.id)
            self.desks.submit_form(FORM_DESKS[notice.recipients], notice.subject, notice.body_text)


def takedown_command() -> list[str]:
    """Return the installed `takedown` entry point, or the module when there is no script."""
    script = Path(sys.executable).parent / "takedown"
    return [str(script)] if script.exists() else [sys.executable, "-m", "workflows"]


def report_urls(env: dict[str, str], urls: list[str]) -> subprocess.CompletedProcess[str]:
    """Report URLS with `takedown report --json`, which returns at once."""
    command = [*takedown_command(), "report", "--json", "--ref", "DEMO-1", "--analyst", "demo"]
    return subprocess.run(
        [*command, *urls], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def start_worker(stack: ExitStack, env: dict[str, str], home: Path) -> subprocess.Popen[bytes]:
    """Start `takedown worker` logging to HOME/worker.log; closing STACK stops it."""
    log = stack.enter_context(private_file(home / "worker.log").open("wb"))
    command = [*takedown_command(), "worker", "--pool", "threads", "--concurrency", "4"]
    worker = subprocess.Popen(
        command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
    )
    stack.callback(_stop_worker, worker, home)
    return worker


def _stop_worker(worker: subprocess.Popen[bytes], home: Path) -> None:
    """Stop the worker with SIGTERM (a warm shutdown), kill it if it hangs, then its Redis."""
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=STOP_WAIT)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    stop_orphaned(home)  # only does something if the worker had to be killed


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C, so the same clean-up runs for both."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set signal handlers
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        """Raise KeyboardInterrupt where the main thread is."""
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def log_tail(path: Path, lines: int = 20) -> str:
    """Return the last LINES lines of a log file."""
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return "(no log)"
