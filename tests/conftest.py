"""Test session set-up: a network of our own, and no skipped test ever counts as a pass."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import settings

from workflows.sim.netns import isolate_network

# Property tests run the same examples every time, so CI never flakes on a new one.
settings.register_profile("takedown", derandomize=True, deadline=None, print_blob=True)
settings.load_profile("takedown")

ISOLATED = False
# Public-looking addresses the simulated web hosts bind inside the isolated namespace.
SIM_ADDRESSES = (
    *(f"185.199.{net}.{n}" for net in (108, 109, 110) for n in range(10, 30)),
    *("91.218.2.30", "66.175.208.20", "94.130.1.1", "23.94.5.10", "2a01:4f8:1::10"),
)
# Real services for the integration tests (CI sets them); unset: embedded defaults only.
SERVICE_URLS = {
    "redis": os.environ.get("TAKEDOWN_TEST_REDIS_URL"),
    "database": os.environ.get("TAKEDOWN_TEST_DATABASE_URL"),
}


WORKERS_SEEN: list[bool] = []  # under pytest-xdist: whether each worker was isolated


def pytest_configure(config: pytest.Config) -> None:
    """Move the whole session into its own network namespace where the process may.

    Inside it only loopback exists: a packet to any other address fails at once with
    ENETUNREACH, so no test can reach the internet even by mistake. Subprocesses (the
    `takedown` command under test, workers) inherit the namespace. TCP services of the
    host (CI's Redis and PostgreSQL) are reached through unix-socket relays started first.

    Under pytest-xdist each worker process does this itself and gets a namespace, a Redis
    database and a PostgreSQL database of its own, so tests running side by side never
    share a port, a queue or a table; the controller runs no test and stays as it is.
    """
    global ISOLATED
    config.addinivalue_line(  # --strict-markers refuses unregistered markers
        "markers", "real_password_hashing: Argon2id with the product's parameters (cheap_argon2)"
    )
    worker = getattr(config, "workerinput", {}).get("workerid")
    if getattr(config.option, "numprocesses", None) and worker is None:
        return  # the xdist controller: its workers isolate themselves
    if worker is not None:
        _own_services(worker)
    if os.environ.get("TAKEDOWN_TEST_ISOLATION", "1") == "0":
        return
    relays = _start_relays()
    ISOLATED = isolate_network(SIM_ADDRESSES)
    if ISOLATED:
        SERVICE_URLS.update({name: url for name, (url, _) in relays.items()})
    else:
        for _, process in relays.values():
            process.kill()


def _own_services(worker: str) -> None:
    """Give xdist worker WORKER (gw0, gw1, …) its own Redis and PostgreSQL databases."""
    number = int(worker.removeprefix("gw"))
    if SERVICE_URLS["redis"]:
        parts = urlsplit(SERVICE_URLS["redis"])
        base = int(parts.path.strip("/") or 0)
        SERVICE_URLS["redis"] = parts._replace(path=f"/{base + 1 + number}").geturl()
    if SERVICE_URLS["database"]:
        SERVICE_URLS["database"] = _worker_database(SERVICE_URLS["database"], worker)


def _worker_database(url: str, worker: str) -> str:
    """Create (once) and return a PostgreSQL database named after the configured one."""
    import sqlalchemy

    from workflows.store.db import database_url

    admin = sqlalchemy.engine.make_url(database_url(url, Path("/nonexistent")))
    name = f"{admin.database}_{worker}"
    engine = sqlalchemy.create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        found = connection.execute(
            sqlalchemy.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
        ).first()
        if found is None:
            connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    parts = urlsplit(url)
    return parts._replace(path=f"/{name}").geturl()


def _start_relays() -> dict[str, tuple[str, subprocess.Popen[bytes]]]:
    """Relay each TCP service URL through a unix socket; return the socket URLs."""
    folder = tempfile.mkdtemp(prefix="takedown-relay-")
    started = {}
    for name, url in SERVICE_URLS.items():
        parts = urlsplit(url or "")
        if not url or not parts.hostname or parts.hostname.startswith("/"):
            continue
        default = 6379 if name == "redis" else 5432
        port = parts.port or default
        if name == "redis":
            path = f"{folder}/redis.sock"
            relayed = f"redis+socket://{path}" + (
                f"?virtual_host={parts.path.lstrip('/')}" if parts.path.strip("/") else ""
            )
        else:
            # libpq finds a server's socket as <dir>/.s.PGSQL.<port>.
            path = f"{folder}/.s.PGSQL.{port}"
            user = f"{parts.username}@" if parts.username else ""
            relayed = f"{parts.scheme}://{user}{parts.path}?host={folder}&port={port}"
        process = subprocess.Popen(
            [sys.executable, "-m", "workflows.sim.relay", path, f"{parts.hostname}:{port}"],
            stdout=subprocess.PIPE,
        )
        assert process.stdout is not None and process.stdout.readline().strip() == b"ready"
        atexit.register(process.kill)
        started[name] = (relayed, process)
    return started


# Under pytest-xdist: the fault scenarios run one after another on one worker, since each
# already loads the machine with a worker pool, 200 URLs and its own clock-driven waits,
# and two side by side on two cores only slow both; every other test file is a unit of
# its own, so its module fixtures are set up once. (xdist's own `--dist loadgroup` marks
# do not group under pytest 9, whose node ids xdist 3.8 can no longer rename: this
# scheduler groups by path instead.)
SERIAL_GROUPS = ("tests/faults/",)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Schedule whole test files to workers, the fault scenarios together as one unit."""
    from xdist.scheduler import LoadScopeScheduling

    class ByFile(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            where = nodeid.split("::", 1)[0]
            return next((group for group in SERIAL_GROUPS if where.startswith(group)), where)

    return ByFile(config, log)


# The longest units go first, so no worker is left with a long one at the end: under
# xdist the scheduler hands units out in collection order. (Measured with --durations=0
# under `-n 4` on 2 cores, 2026-12-07: the fault scenarios ~245 s together, then the units
# of 95 s down to 35 s in this order; the rest in collection order.)
FIRST = (
    "tests/faults/",
    "tests/test_inbox.py",
    "tests/test_security.py",
    "tests/browser/test_newcomer.py",
    "tests/browser/test_up.py",
    "tests/test_purge.py",
    "tests/test_api.py",
    "tests/test_engine.py",
    "tests/test_demo.py",
    "tests/test_pipeline.py",
    "tests/test_uncertain_notices.py",
    "tests/test_outbox.py",
    "tests/test_escalation.py",
    "tests/test_recheck_engine.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist, collect the longest units first (the order workers are given them)."""
    if not hasattr(config, "workerinput"):
        return
    root = Path(str(config.rootpath))

    def rank(item: pytest.Item) -> int:
        where = Path(str(item.path)).relative_to(root).as_posix()
        return next((n for n, prefix in enumerate(FIRST) if where.startswith(prefix)), len(FIRST))

    items.sort(key=rank)  # stable: within a unit, the order pytest chose


_skipped: list[str] = []
FAULT_FIGURES: list[str] = []  # one line per fault scenario, printed at the end of the run


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Remember skipped tests: a skipped test proves nothing."""
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when any test was skipped; an xdist worker reports back what it saw."""
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output["isolated"] = ISOLATED
        output["fault_figures"] = list(FAULT_FIGURES)
    if _skipped and exitstatus == 0:
        session.exitstatus = 1


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """Collect an xdist worker's isolation and fault figures for the summary."""
    output = getattr(node, "workeroutput", {})
    if "isolated" in output:
        WORKERS_SEEN.append(bool(output["isolated"]))
        FAULT_FIGURES.extend(output.get("fault_figures", []))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say how the session was isolated, and which skips failed the run."""
    isolated = all(WORKERS_SEEN) if WORKERS_SEEN else ISOLATED
    where = "own network namespace (loopback only)" if isolated else "host network, 127.0.0.1 only"
    if WORKERS_SEEN:
        where = f"{where}, one per worker ({len(WORKERS_SEEN)} xdist workers)"
    terminalreporter.write_line(f"takedown tests ran in: {where}")
    if FAULT_FIGURES:
        terminalreporter.write_line("fault scenarios:")
        for line in FAULT_FIGURES:
            terminalreporter.write_line(f"  {line}")
    for nodeid in _skipped:
        terminalreporter.write_line(f"SKIPPED COUNTS AS FAILED: {nodeid}", red=True)


CHEAP_ARGON2 = {"time_cost": 1, "memory_cost": 64, "parallelism": 1}


@pytest.fixture(autouse=True)
def cheap_argon2(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hash passwords in this process with a cheap Argon2id (still Argon2id, still salted).

    The product's RFC 9106 parameters cost 0.1 s of CPU a hash, and the suite's hundreds of
    desks each add users and sign them in. Tests of the parameters themselves are marked
    `real_password_hashing`; `takedown` commands the tests start hash as shipped.
    """
    if request.node.get_closest_marker("real_password_hashing"):
        return
    from argon2 import PasswordHasher

    from workflows.store import accounts

    cheap = PasswordHasher(**CHEAP_ARGON2)
    decoy = cheap.hash("a decoy password, never anyone's")
    monkeypatch.setattr(accounts, "hasher", lambda: cheap)
    monkeypatch.setattr(accounts, "_decoy_hash", lambda: decoy)


@pytest.fixture(scope="session")
def takedown_command() -> list[str]:
    """Return the installed `takedown` console script (the real entry point)."""
    script = Path(sys.executable).parent / "takedown"
    found = str(script) if script.exists() else shutil.which("takedown")
    assert found, "the takedown console script is not installed: pip install -e '.[test]'"
    return [found]


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Any]:
    """A migrated SQLite store of the test's own, whatever the suite's database: the
    default store, whose query planner the store's cost tests are about."""
    from workflows.store.db import make_engine, migrate

    engine = make_engine(f"sqlite:///{tmp_path / 'takedown.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, one per test module (the tests in tests/browser)."""
    from inprocess import chromium  # tests/browser/inprocess.py, on the path of its tests

    with chromium() as launched:
        yield launched
