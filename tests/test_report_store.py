"""Reporting into the store: a case per URL opened or joined, a thousand URLs at a time
(an open URL's insert gives way on its open key and the case is joined)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from workflows.core.urls import normalize_url
from workflows.kinds import CaseState, EventKind
from workflows.store import cases
from workflows.store.models import Case, Event

NOW = dt.datetime(2026, 12, 8, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def engine(sqlite_store: Engine) -> Engine:
    return sqlite_store


def report(engine: Engine, *urls: str) -> list[cases.Reported]:
    with sessionmaker(engine).begin() as session:
        return cases.report(
            session,
            [normalize_url(u) for u in urls],
            reference="R-1",
            category="csam",
            analyst="ana",
            now=NOW,
        )


def events(engine: Engine) -> list[tuple[int, str]]:
    with Session(engine) as session:
        rows = session.execute(select(Event.case_id, Event.kind).order_by(Event.id))
        return [(case_id, kind) for case_id, kind in rows]


def test_a_report_opens_new_urls_and_joins_open_ones_in_its_order(engine: Engine) -> None:
    (old,) = report(engine, "http://a.example.test/1")
    got = report(
        engine, "http://b.example.test/2", "http://a.example.test/1", "http://b.example.test/2"
    )
    assert [(r.joined, r.state) for r in got] == [
        (False, CaseState.NEW),
        (True, CaseState.NEW),  # opened by the earlier report
        (True, CaseState.NEW),  # opened by this one, a line above
    ]
    assert got[1].id == old.id and got[2].id == got[0].id != old.id
    assert events(engine)[1:] == [
        (got[0].id, EventKind.REPORTED),
        (old.id, EventKind.JOINED),
        (got[0].id, EventKind.JOINED),
    ]
    with Session(engine) as session:
        new = session.get_one(Case, got[0].id)
    assert (new.host, new.reference, new.category, new.analyst) == (
        "b.example.test",
        "R-1",
        "csam",
        "ana",
    )
    assert new.due_at == new.opened_at == NOW  # its trace is due at once


def test_a_big_report_goes_a_chunk_at_a_time(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cases, "REPORT_CHUNK", 3)
    got = report(engine, *(f"http://h{n % 4}.example.test/{n}" for n in range(10)))
    assert [r.joined for r in got] == [False] * 10
    assert len({r.id for r in got}) == 10
    assert [kind for _, kind in events(engine)] == [EventKind.REPORTED] * 10
