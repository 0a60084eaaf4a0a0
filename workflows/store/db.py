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
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from workflows.config.home import private_dir, private_file
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
    try:
        if parsed.get_backend_name() == "sqlite":
            engine = create_engine(url, connect_args={"timeout": 30})
            if parsed.database and parsed.database != ":memory:":
                private_dir(Path(parsed.database).parent)
                event.listen(engine, "do_connect", _private_sqlite(Path(parsed.database)))
            event.listen(engine, "connect", _sqlite_pragmas)
            _WRITERS[engine] = threading.RLock()
            return engine
        # A server that never answers must not hold a command or a health check for the
        # minutes a TCP connect can take (libpq's connect_timeout, unless the URL sets one).
        postgres = parsed.get_backend_name() == "postgresql"
        connect = (
            {"connect_timeout": 10} if postgres and "connect_timeout" not in parsed.query else {}
        )
        return create_engine(
            url, pool_pre_ping=True, pool_size=5, max_overflow=5, connect_args=connect
        )
    except (ArgumentError, ImportError):  # a dialect or driver takedown does not ship
        raise ConfigError(
            f"TAKEDOWN_DATABASE_URL: {parsed.drivername}: not a database takedown can use "
            "(postgresql:// or sqlite:///)"
        ) from None


def _private_sqlite(database: Path) -> Any:
    """Return a listener that makes DATABASE a 0600 file just before SQLite opens it (and
    creates it, with the umask's mode otherwise); SQLite gives its -wal and -shm files the
    mode of the database file, so they follow it. Nothing is created before a connection."""
    sidecars = [database.with_name(database.name + suffix) for suffix in ("-wal", "-shm")]

    def before_connect(*_: Any) -> None:
        for path in (database, *(p for p in sidecars if p.exists())):
            private_file(path)

    return before_connect


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
    return max(known_revisions())


def schema_revision(engine: Engine) -> str | None:
    """Return the database's schema revision, None for a database never migrated."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrades_itself(engine: Engine) -> bool:
    """Tell whether the commands bring this database's schema up to date themselves.

    SQLite (the embedded default) does: one machine, one file, one desk, so `takedown up`,
    `demo`, `serve`, `report` and the rest keep working from a fresh install and after an
    upgrade with no extra step. PostgreSQL does not: several machines may run several
    versions during a deploy, so only `takedown migrate` changes its schema, once.
    """
    return engine.dialect.name == "sqlite"


def require_schema(engine: Engine, *, upgrade: bool) -> None:
    """Make sure the database's schema is the one this code knows, else refuse to run.

    UPGRADE: migrate an old (or empty) schema; without it an old schema stops the caller
    with ConfigError naming `takedown migrate`. A schema newer than this code (a later
    version migrated it) is always refused: this code would misread it.
    """
    current, head = schema_revision(engine), head_revision()
    if current == head:
        return
    if current is not None and (current > head or current not in known_revisions()):
        raise ConfigError(
            f"the database schema is at revision {current}, newer than this takedown's "
            f"{head}: run the takedown version that migrated it (or newer)"
        )
    if not upgrade:
        found = f"at revision {current}" if current else "empty (no tables yet)"
        raise ConfigError(
            f"the database schema is {found}; this takedown needs revision {head}: "
            "run `takedown migrate` first"
        )
    migrate(engine)


def known_revisions() -> set[str]:
    """Return every schema revision this code can migrate from."""
    return {p.name.split("_", 1)[0] for p in MIGRATIONS.glob("[0-9][0-9][0-9][0-9]_*.py")}


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
    with private_file(Path(f"{database}.migrate-lock")).open("w") as lock:
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
    """Yield a session factory on a database at the newest schema (SQLite is migrated
    here, PostgreSQL must be by `takedown migrate`); dispose of its engine afterwards."""
    engine = engine_for(settings)
    try:
        require_schema(engine, upgrade=upgrades_itself(engine))
        yield session_factory(engine)
    finally:
        engine.dispose()
