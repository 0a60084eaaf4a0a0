"""The case store: engine set-up, migrations, reporting and claiming due work.

Every state change is a compare-and-set (`WHERE id = … AND version = …`) or a claim with a
lease (`claimed_until`), so two workers or two sweeps never act on the same case at once.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from workflows.core.urls import NormalizedURL
from workflows.errors import ConfigError
from workflows.models import WORKABLE_STATES, Case, CaseState, Event, Notice, NoticeStatus

SYSTEM = "takedown"


def url_key(url: str) -> str:
    """Return the key that makes one open case per URL."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


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
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def _sqlite_pragmas(connection: Any, record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (safe to call from several processes)."""
    config = Config()
    config.set_main_option("script_location", "workflows:migrations")
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
    """Yield a session inside one transaction: commit on success, roll back on error."""
    with factory() as session, session.begin():
        yield session


def utcnow() -> dt.datetime:
    """Return the current time, aware UTC."""
    return dt.datetime.now(dt.UTC)


def record(
    session: Session,
    case_id: int,
    kind: str,
    at: dt.datetime,
    actor: str = SYSTEM,
    **detail: Any,
) -> None:
    """Append an event to a case's log."""
    session.add(Event(case_id=case_id, at=at, actor=actor, kind=kind, detail=detail or None))


@dataclass(frozen=True)
class Reported:
    """The outcome of reporting one URL."""

    id: int
    url: str
    state: str
    joined: bool  # True: the URL already had an open case, which was joined


def report(
    session: Session,
    urls: Sequence[NormalizedURL],
    *,
    reference: str | None,
    category: str | None,
    analyst: str | None,
    now: dt.datetime,
) -> list[Reported]:
    """Open a case per URL, or join the open one; the trace is due at once."""
    results = []
    for url in urls:
        inserted = session.execute(
            _insert(session)
            .values(
                url=url.url,
                open_key=url_key(url.url),
                host=url.host,
                state=CaseState.NEW,
                reference=reference,
                category=category,
                analyst=analyst,
                opened_at=now,
                due_at=now,
                round=0,
                steps_done=0,
                trace_attempts=0,
                gone_streak=0,
                version=0,
            )
            .on_conflict_do_nothing(index_elements=["open_key"])
            .returning(_case_id())
        ).first()
        actor = analyst or SYSTEM
        if inserted is not None:
            record(
                session,
                inserted[0],
                "reported",
                now,
                actor,
                url=url.url,
                reference=reference,
                category=category,
                notes=list(url.notes) or None,
            )
            results.append(Reported(inserted[0], url.url, CaseState.NEW, False))
            continue
        case = session.scalars(select(Case).where(Case.open_key == url_key(url.url))).one()
        record(session, case.id, "joined", now, actor, reference=reference, category=category)
        results.append(Reported(case.id, case.url, case.state, True))
    return results


def _insert(session: Session) -> Any:
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(Case)


def _case_id() -> Any:
    return Case.__table__.c.id


def claim_due(
    session: Session, now: dt.datetime, lease: float, limit: int = 500
) -> list[tuple[int, str, str]]:
    """Claim due open cases for LEASE seconds; return (id, state, host) of each claimed."""
    free = or_(Case.claimed_until.is_(None), Case.claimed_until <= now)
    candidates = (
        select(Case.id)
        .where(Case.state.in_(WORKABLE_STATES), Case.due_at <= now, free)
        .order_by(Case.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)  # PostgreSQL; SQLite serialises writers anyway
    )
    ids = list(session.scalars(candidates))
    if not ids:
        return []
    until = now + dt.timedelta(seconds=lease)
    claimed = session.execute(
        update(Case)
        .where(Case.id.in_(ids), free)
        .values(claimed_until=until, version=Case.version + 1)
        .returning(Case.id, Case.state, Case.host)
    ).all()
    return [(row[0], row[1], row[2]) for row in claimed]


def claim_notices(session: Session, now: dt.datetime, lease: float, limit: int = 200) -> list[int]:
    """Claim pending notices that are due: PENDING → SENDING, each by one claimer only."""
    candidates = (
        select(Notice.id)
        .where(Notice.status == NoticeStatus.PENDING, Notice.due_at <= now)
        .order_by(Notice.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = list(session.scalars(candidates))
    if not ids:
        return []
    rows = session.execute(
        update(Notice)
        .where(Notice.id.in_(ids), Notice.status == NoticeStatus.PENDING)
        .values(status=NoticeStatus.SENDING, claimed_until=now + dt.timedelta(seconds=lease))
        .returning(Notice.id)
    ).all()
    return [row[0] for row in rows]


def release(session: Session, case: Case, **values: Any) -> bool:
    """Write VALUES to CASE if nobody changed it since it was read; drop its claim."""
    done = session.execute(
        update(Case)
        .where(Case.id == case.id, Case.version == case.version)
        .values(claimed_until=None, version=Case.version + 1, **values)
    )
    return bool(getattr(done, "rowcount", 0) == 1)
