"""The database: engine set-up, migrations, sessions and transactions.

Every state change is a compare-and-set (`WHERE id = … AND version = …`) or a claim with a
lease (`claimed_until`), so two workers or two sweeps never act on the same case at once.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from workflows.config.settings import Settings
from workflows.errors import ConfigError


def database_url(configured: str | None, home: Path) -> str:
    """Return the SQLAlchemy URL: the configured one, else SQLite in HOME."""
    if not configured:
        return f"sqlite:///{home / 'takedown.db'}"
    url = make_url(configured)
    if url.drivername in ("postgresql", "postgres"):
        # psycopg 3 is the driver we ship; plain postgresql:// would ask for psycopg2.
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL and a busy timeout so processes can share it."""
    try:
        parsed = make_url(url)
    except Exception as error:  # noqa: BLE001 - SQLAlchemy raises several kinds here
        raise ConfigError(f"TAKEDOWN_DATABASE_URL: cannot parse {url!r}: {error}") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        _WRITERS[engine] = threading.RLock()
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


# One lock per SQLite engine: the process's writers queue here, not in SQLite's busy handler.
_WRITERS: weakref.WeakKeyDictionary[Any, threading.RLock] = weakref.WeakKeyDictionary()


def _sqlite_pragmas(connection: Any, record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


# Migrations are named NNNN_what.py with revision "NNNN", each following the one before
# (tests/test_migrations.py holds alembic to it): the newest file names the head.
MIGRATIONS = Path(__file__).parent / "migrations" / "versions"


def head_revision() -> str:
    """Return the newest schema revision this code knows, without loading alembic."""
    return max(p.name.split("_", 1)[0] for p in MIGRATIONS.glob("[0-9][0-9][0-9][0-9]_*.py"))


def schema_revision(engine: Engine) -> str | None:
    """Return the database's schema revision, None for a database never migrated."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (safe to call from several processes).

    A database already at the head is left alone without loading alembic: every command
    and worker calls this at start, and alembic's import and script scan cost about a
    quarter of a second of CPU each time.
    """
    if schema_revision(engine) == head_revision():
        return
    from alembic import command  # only when there is work to do
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "workflows.store:migrations")
    with _sqlite_file_lock(engine), engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Two workers starting together must not both create the tables.
            connection.execute(text("SELECT pg_advisory_xact_lock(4242001)"))
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


@contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    """Hold a lock file beside a SQLite database: SQLite has no advisory lock to migrate under
    (two processes starting on a fresh file would both create the tables)."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Return a session factory whose objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """Yield a session inside one transaction: commit on success, roll back on error.

    On SQLite one process's transactions take turns on a lock of its own: SQLite lets one
    writer in at a time and makes the others poll with a growing sleep (up to 100 ms a
    try), so a worker's threads spent a quarter of a 10,000-URL intake asleep in SQLite's
    busy handler (py-spy) while the lock was free. Other processes still meet the busy
    timeout.
    """
    bind = factory.kw.get("bind")
    lock = _WRITERS.get(bind) if bind is not None else None
    with lock or nullcontext(), factory() as session, session.begin():
        yield session


def utcnow() -> dt.datetime:
    """Return the current time, aware UTC."""
    return dt.datetime.now(dt.UTC)


def engine_for(settings: Settings) -> Engine:
    """Return an engine on the configured database (SQLite in TAKEDOWN_HOME by default)."""
    return make_engine(database_url(settings.database_url, settings.home))


@contextmanager
def opened_store(settings: Settings) -> Iterator[sessionmaker[Session]]:
    """Yield a session factory on the migrated database; dispose of its engine afterwards."""
    engine = engine_for(settings)
    try:
        migrate(engine)
        yield session_factory(engine)
    finally:
        engine.dispose()
