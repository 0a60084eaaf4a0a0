"""Case writes: report (open or join), the event log, and compare-and-set releases.

Every state change is a compare-and-set on the case's version column, so two workers
never both act on what one of them read.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Insert, Table, Update, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from workflows.core.urls import NormalizedURL
from workflows.kinds import CaseState, EventKind
from workflows.store.models import Case, Event

SYSTEM = "takedown"


def url_key(url: str) -> str:
    """Return the key that makes one open case per URL."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


def record(
    session: Session,
    case_id: int,
    kind: EventKind,
    at: dt.datetime,
    actor: str = SYSTEM,
    **detail: Any,
) -> None:
    """Append an event to a case's log (at once, on the session's connection: the ORM's
    unit of work cost more than the write for the dozen events each URL gets)."""
    record_each(session, [case_id], kind, at, actor, **detail)


def record_each(
    session: Session,
    case_ids: Sequence[int],
    kind: EventKind,
    at: dt.datetime,
    actor: str = SYSTEM,
    **detail: Any,
) -> None:
    """Append the same event to each case's log in one statement (a notice's hundred URLs
    are told it went out with one round trip, not a hundred)."""
    record_rows(session, [event_row(case_id, kind, at, actor, **detail) for case_id in case_ids])


def event_row(
    case_id: int, kind: EventKind, at: dt.datetime, actor: str = SYSTEM, **detail: Any
) -> dict[str, Any]:
    """Return one event of a case's log as a row for `record_rows`."""
    return {"case_id": case_id, "at": at, "actor": actor, "kind": kind, "detail": detail or None}


def record_rows(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Append events (`event_row`s, of any cases) in one statement, in their order."""
    if rows:
        session.connection().execute(_event_insert(), list(rows))


@functools.cache
def _event_insert() -> Insert:
    """Return the INSERT of one event."""
    return insert(cast(Table, Event.__table__))


@dataclass(frozen=True)
class Reported:
    """The outcome of reporting one URL."""

    id: int
    url: str
    state: str
    joined: bool  # True: the URL already had an open case, which was joined


REPORT_CHUNK = 1000  # URLs of a report looked up and opened with one statement each


def report(
    session: Session,
    urls: Sequence[NormalizedURL],
    *,
    reference: str | None,
    category: str | None,
    analyst: str | None,
    now: dt.datetime,
) -> list[Reported]:
    """Open a case per URL, or join the open one; the trace is due at once.

    A thousand URLs at a time: the new cases opened in one statement (ON CONFLICT DO
    NOTHING on the open key), the open ones they join read in another, every event
    written in a third. One INSERT and one event per URL, each a statement of its own,
    cost 0.6 ms a URL, a minute for a report of 100,000 (benchmarks, workload 3), most of
    it building the statements.
    """
    fields = {"reference": reference, "category": category, "analyst": analyst}
    results: list[Reported] = []
    for start in range(0, len(urls), REPORT_CHUNK):
        results += _report_together(session, urls[start : start + REPORT_CHUNK], now, **fields)
    return results


def _report_together(
    session: Session,
    urls: Sequence[NormalizedURL],
    now: dt.datetime,
    *,
    reference: str | None,
    category: str | None,
    analyst: str | None,
) -> list[Reported]:
    """Report URLS: one statement opens the new cases, one reads the open ones they join,
    one writes the events."""
    keys = [url_key(url.url) for url in urls]
    fresh: dict[str, NormalizedURL] = {}
    for url, key in zip(urls, keys, strict=True):
        fresh.setdefault(key, url)  # a URL twice in a report: the first mention opens it
    rows = [
        {**_opening(reference, category, analyst, now), "url": u.url, "open_key": k, "host": u.host}
        for k, u in fresh.items()
    ]
    # The write first: on SQLite a transaction that read before it wrote cannot take the
    # write lock once another connection (a sweeping worker) has written in between, and
    # fails at once ("database is locked"). A URL already open is not inserted (its open
    # key is taken) and is read after, as is one another report opened meanwhile.
    table = cast(Table, Case.__table__)
    opened = session.connection().execute(
        _insert(session)
        .on_conflict_do_nothing(index_elements=["open_key"])
        .returning(table.c.id, table.c.open_key),
        rows,
    )
    found = {key: (id_, fresh[key].url, str(CaseState.NEW)) for id_, key in opened}
    new = set(found)
    found.update(_open_cases(session, [key for key in fresh if key not in new]))
    actor = analyst or SYSTEM
    results: list[Reported] = []
    events: list[dict[str, Any]] = []
    for url, key in zip(urls, keys, strict=True):
        id_, opened_url, state = found[key]
        if key in new:
            new.discard(key)  # its later mentions join it
            notes = list(url.notes) or None
            detail = {"url": url.url, "reference": reference, "category": category}
            events.append(event_row(id_, EventKind.REPORTED, now, actor, **detail, notes=notes))
            results.append(Reported(id_, url.url, CaseState.NEW, False))
            continue
        detail = {"reference": reference, "category": category}
        events.append(event_row(id_, EventKind.JOINED, now, actor, **detail))
        results.append(Reported(id_, opened_url, state, True))
    record_rows(session, events)
    return results


def _open_cases(session: Session, keys: Sequence[str]) -> dict[str, tuple[int, str, str]]:
    """Return the open cases of KEYS: open key → (id, URL, state)."""
    rows = session.execute(
        select(Case.open_key, Case.id, Case.url, Case.state).where(Case.open_key.in_(set(keys)))
    )
    return {key: (id_, url, state) for key, id_, url, state in rows if key is not None}


def _opening(
    reference: str | None, category: str | None, analyst: str | None, now: dt.datetime
) -> dict[str, Any]:
    """Return the columns every case a report opens starts with."""
    return {
        "state": CaseState.NEW,
        "reference": reference,
        "category": category,
        "analyst": analyst,
        "opened_at": now,
        "due_at": now,
        "round": 0,
        "steps_done": 0,
        "trace_attempts": 0,
        "gone_streak": 0,
        "version": 0,
    }


def _insert(session: Session) -> Any:
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(Case)


def rescheduled(values: dict[str, Any]) -> dict[str, Any]:
    """Return VALUES with `step_due_at` set to `due_at` when they move the case's due time
    without saying when its next step falls due: whoever acts then works its steps out."""
    if "due_at" in values and "step_due_at" not in values:
        return {**values, "step_due_at": values["due_at"]}
    return values


def release(session: Session, case: Case, **values: Any) -> bool:
    """Write VALUES to CASE if nobody changed it since it was read; drop its claim (unless
    VALUES say how long it lasts).

    The statement is built once per set of columns and run on the session's connection:
    the ORM's UPDATE builds and evaluates its statement on every call, twenty times the
    cost of the write itself (1.1 ms against 50 µs on SQLite, measured), and every batch
    of a big report writes each of its cases this way. The case, if this session holds
    it, is expired, so what it says next is read back from the database.
    """
    values = rescheduled(values)
    done = session.connection().execute(
        _cas_statement(frozenset(values)),
        {"cas_id": case.id, "cas_version": case.version}
        | {f"set_{name}": value for name, value in values.items()},
    )
    if case in session:
        session.expire(case)
    return bool(done.rowcount == 1)


@functools.cache
def _cas_statement(columns: frozenset[str]) -> Update:
    """Return the compare-and-set UPDATE of a case that writes COLUMNS (bound as set_*)."""
    table = cast(Table, Case.__table__)
    written: dict[str, Any] = {"claimed_until": None, "version": table.c.version + 1}
    written |= {name: bindparam(f"set_{name}") for name in sorted(columns)}
    return (
        update(table)
        .where(table.c.id == bindparam("cas_id"), table.c.version == bindparam("cas_version"))
        .values(**written)
    )
