"""`takedown up`: the worker (with the sweep) and the web desk in one command.

The worker runs as a `takedown worker --pool threads` subprocess on the same TAKEDOWN_HOME,
so it shares the database and the embedded Redis; the web server runs in this process.
With --demo the simulated internet of `takedown demo` runs in a child process that moves
into a network namespace of its own (or serves the sites through a local proxy where it
may not, exactly as `takedown demo` does) and starts the worker there; the web server
stays in the caller's network, so the browser on this machine can reach it.

Ctrl-C or SIGTERM stops the web server, then the worker (a warm shutdown, which stops the
embedded Redis it started), then the simulated internet. A demo's state is kept, in the
`demo` folder of TAKEDOWN_HOME unless --demo-home says otherwise: `up --demo` prints the
TAKEDOWN_HOME with which `user add`, `stats` and `case` reach it.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from workflows.cli import launch
from workflows.config.home import private_dir, private_file
from workflows.config.settings import Settings, load_settings
from workflows.engine.broker import stop_orphaned
from workflows.engine.runtime import check_start
from workflows.errors import ConfigError, InputError
from workflows.kinds import AuditAction, Role
from workflows.sim import demo_world
from workflows.store import audit
from workflows.store.accounts import create_user
from workflows.store.db import (
    database_url,
    make_engine,
    migrate,
    opened_store,
    transaction,
    utcnow,
)
from workflows.store.models import User

FIRST_USER = "admin"
DEMO_FOLDER = "demo"  # up --demo's state, under TAKEDOWN_HOME
DEMO_SHOWN = 10  # demo URLs printed to paste: 8 hosted ones and the 2 that need an analyst
DEMO_CONTENT = 200  # demo URLs whose content the simulated sites serve
STOP_WAIT = 30.0  # seconds a child may take to stop before it is killed
PR_SET_PDEATHSIG = 1


def run_up(settings: Settings, *, port: int, demo: bool, demo_home: Path | None = None) -> int:
    """Run the desk until Ctrl-C or SIGTERM; return the exit code.

    DEMO_HOME: where --demo keeps its state; by default the `demo` folder in TAKEDOWN_HOME,
    kept after the end, so `takedown user add`, `stats` and `case` work beside it.
    """
    check_port(port)
    if not demo:
        check_worker_settings(settings)
    code = 0
    with ExitStack() as running, launch.sigterm_interrupts():
        try:
            # The database is migrated before any worker starts: two processes creating the
            # tables of a fresh SQLite file at once would collide.
            if demo:
                home = demo_home or settings.home / DEMO_FOLDER
                settings = start_demo(running, home)  # it migrates, then starts the worker
                first = first_supervisor(settings)
            else:
                first = first_supervisor(settings)
                start_worker(running, dict(os.environ), settings.home)
            code = serve(settings, port, demo, first)
        except KeyboardInterrupt:
            pass
        finally:
            _stopping.set()  # the children exit now because we stop them: no alarm
            _hold_signals()
            what = "the worker and the demo world" if demo else "the worker"
            _say(f"takedown up: stopping {what} (a few seconds)")
    return 1 if _died else code


def _hold_signals() -> None:
    """Let the clean-up finish: a second Ctrl-C must not leave a worker or a Redis behind."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)


def check_port(port: int) -> None:
    """Refuse a port this machine's 127.0.0.1 cannot listen on, before starting anything."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.bind(("127.0.0.1", port))
    except OSError as error:
        reason = "in use" if error.errno == errno.EADDRINUSE else error.strerror
        raise InputError(f"--port {port}: cannot listen on 127.0.0.1:{port} ({reason})") from None
    finally:
        probe.close()


def check_worker_settings(settings: Settings) -> None:
    """Refuse the configuration the worker would refuse, before anything starts."""
    if settings.sender is None:
        raise ConfigError(
            "TAKEDOWN_SENDER: required: the From address of every notice "
            "(or try `takedown up --demo`)"
        )
    check_start(settings)


def _no_orphans() -> None:
    """In the child, before exec: die with the parent (Linux), so a kill -9 leaves nothing."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _spawn(command: list[str], env: dict[str, str], **options: Any) -> subprocess.Popen[bytes]:
    """Start COMMAND in a session of its own (Ctrl-C reaches only us; we stop it in order)."""
    return subprocess.Popen(
        command, env=env, start_new_session=True, preexec_fn=_no_orphans, **options
    )


def start_worker(running: ExitStack, env: dict[str, str], home: Path) -> None:
    """Start `takedown worker` (it runs the sweep too), logging to HOME/worker.log."""
    private_dir(home)
    log = running.enter_context(private_file(home / "worker.log").open("ab"))
    command = [*launch.takedown_command(), "worker", "--pool", "threads"]
    worker = _spawn(command, env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    running.callback(_stop, worker, lambda: stop_orphaned(home))
    _say(f"takedown up: worker started (pid {worker.pid}), its log: {home / 'worker.log'}")
    _watch(worker, "the worker")


def start_demo(running: ExitStack, home: Path) -> Settings:
    """Start the demo world (and its worker) in a child process, its state kept in HOME;
    return its settings."""
    private_dir(home)
    command = [sys.executable, "-m", "workflows.cli.up", str(home)]
    world = _spawn(command, dict(os.environ), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    running.callback(_stop, world, lambda: stop_orphaned(home))
    assert world.stdout is not None
    line = world.stdout.readline()  # the child says "ready" once its servers and worker run
    if not line:
        raise InputError(f"the demo world did not start (exit {world.wait()})")
    ready = json.loads(line)
    _say(f"takedown up --demo: simulated internet ready; network: {ready['network']}")
    for said in demo_home_lines(home):
        _say(said)
    _watch(world, "the demo world")
    return load_settings(ready["env"])


def demo_home_lines(home: Path) -> list[str]:
    """Return what `up --demo` says about where its state lives and how to reach it."""
    where = shlex.quote(str(home))
    return [
        f"takedown up --demo: demo home {home} (SQLite, embedded Redis, worker log; kept when"
        " you stop)",
        f"takedown up --demo: the other commands reach it with TAKEDOWN_HOME={where}, e.g.",
        f"  TAKEDOWN_HOME={where} takedown user add alice --role analyst --password-file PATH",
        f"  TAKEDOWN_HOME={where} takedown stats --plot stats.png",
    ]


def _stop(child: subprocess.Popen[bytes], then: Callable[[], None]) -> None:
    """Stop CHILD (EOF on its stdin, else SIGTERM), kill it if it hangs, then run THEN."""
    if child.stdin is not None:
        child.stdin.close()  # the demo world's signal to stop its worker and servers
    elif child.poll() is None:
        child.send_signal(signal.SIGTERM)  # the worker's warm shutdown
    try:
        child.wait(timeout=STOP_WAIT)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
    if child.stdout is not None:
        child.stdout.close()
    then()


def _watch(child: subprocess.Popen[bytes], name: str) -> None:
    """Stop `up` (as Ctrl-C would) if CHILD exits on its own."""

    def wait() -> None:
        code = child.wait()
        if not _stopping.is_set():
            _died.append(name)
            _say(f"takedown up: {name} exited (code {code}); stopping")
            os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=wait, name=f"watch-{child.pid}", daemon=True).start()


_stopping = threading.Event()
_died: list[str] = []


def first_supervisor(settings: Settings) -> tuple[str, str] | None:
    """Create a supervisor with a random password if there is no user yet; return both."""
    with opened_store(settings) as sessions, transaction(sessions) as session:
        if session.scalar(select(func.count()).select_from(User)):
            return None
        password = secrets.token_urlsafe(15)  # 20 characters, about 120 bits
        create_user(session, FIRST_USER, Role.SUPERVISOR, password)
        detail = {"role": str(Role.SUPERVISOR), "can_sign_in": True}
        audit.record(
            session,
            AuditAction.USER_ADDED,
            actor="takedown up",
            now=utcnow(),
            subject=FIRST_USER,
            detail=detail,
        )
        return FIRST_USER, password


def serve(settings: Settings, port: int, demo: bool, first: tuple[str, str] | None) -> int:
    """Print where the desk is (and how to sign in as FIRST), then serve it until stopped."""
    import uvicorn

    from workflows.engine.logs import uvicorn_log_config
    from workflows.web.app import create_app

    app = create_app(settings)
    _say(f"takedown up: the desk is at http://127.0.0.1:{port}/ (Ctrl-C stops everything)")
    if first is not None:
        _say(f"takedown up: first supervisor: {first[0]}  password: {first[1]}")
        _say("takedown up: the password is shown only now: keep it; `takedown user add` adds more")
    if demo:
        _say("takedown up --demo: paste these on the Report page and watch them go to removed:")
        for url in demo_world.demo_urls(DEMO_SHOWN):
            _say(f"  {url}")
    logs = uvicorn_log_config(settings.log_format)  # TAKEDOWN_LOG_FORMAT; no query strings
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", log_config=logs)
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 1


def _say(text: str) -> None:
    print(text, flush=True)


def world_main(home: Path) -> int:
    """The demo world's process: isolate, serve the world, run the worker, wait for the end."""
    world = demo_world.build_world()
    isolated = launch.isolate(demo_world.public_addresses(world))  # before any thread
    for url in demo_world.demo_urls(DEMO_CONTENT):
        world.put_content(url)
    network = (
        "own network namespace, the sites on their public-looking addresses" if isolated
        else "this machine's; the sites answer through a proxy on 127.0.0.1"
    )  # fmt: skip
    with ExitStack() as running:
        try:
            with launch.sigterm_interrupts():
                env = launch.serve_world(running, world, home, isolated)
                engine = make_engine(database_url(None, home))
                migrate(engine)  # before the worker, which would otherwise race `up` to it
                engine.dispose()
                worker = launch.start_worker(running, env, home)
                threading.Thread(target=_end_with, args=(worker, home), daemon=True).start()
                print(json.dumps({"env": env, "network": network}), flush=True)
                sys.stdin.read()  # until `up` closes the pipe (or dies: PDEATHSIG)
        except KeyboardInterrupt:
            pass
        finally:
            _stopping.set()
            _hold_signals()  # stopping the worker must not be cut short
    return 0


def _end_with(worker: subprocess.Popen[bytes], home: Path) -> None:
    """Stop the demo world when its worker exits on its own: `up` then stops too."""
    code = worker.wait()
    if not _stopping.is_set():
        print(
            f"takedown up --demo: the worker exited (code {code}); its log ends:", file=sys.stderr
        )
        print(launch.log_tail(home / "worker.log"), file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGTERM)


if __name__ == "__main__":
    sys.exit(world_main(Path(sys.argv[1])))
