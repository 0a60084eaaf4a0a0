"""The sweep's claims: the first due cases of each kind, at a cost that follows the cases
claimed, not the cases open (store/claims.py; the indexes of migration 0010)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from workflows.kinds import CaseState
from workflows.store.claims import claim_due, claim_traces
from workflows.store.models import Case

NOW = dt.datetime(2026, 12, 8, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def engine(sqlite_store: Engine) -> Engine:
    # SQLite: with an index on state alone its planner read and sorted every open case of
    # a state at each claim.
    return sqlite_store


def add(
    engine: Engine,
    n: int,
    state: str,
    *,
    start: int,
    step_due: bool = False,
    hosts: int = 7,
    site: str = "example",
) -> list[int]:
    """Add N cases in STATE due a second apart from START seconds ago, on HOSTS host names
    of SITE, the host names in turn; return their ids."""
    rows: list[dict[str, Any]] = []
    for k in range(n):
        due = NOW - dt.timedelta(seconds=start - k)
        rows.append(
            {
                "url": f"http://h{k % hosts}.{site}.test/{state}/{start}/{k}",
                "host": f"h{k % hosts}.{site}.test",
                "state": state,
                "opened_at": due,
                "due_at": due,
                "check_due_at": due,
                "step_due_at": due if step_due else None,
                "version": 0,
            }
        )
    with engine.begin() as connection:
        return list(connection.execute(insert(Case).returning(Case.id), rows).scalars())


def test_claims_take_the_first_due_cases_of_the_kinds_asked_for(engine: Engine) -> None:
    checks = add(engine, 30, CaseState.ACTIVE, start=100)
    steps = add(engine, 3, CaseState.ACTIVE, start=95, step_due=True)
    traces = add(engine, 4, CaseState.NEW, start=98)
    watched = add(engine, 2, CaseState.REMOVED, start=99)
    add(engine, 5, CaseState.HELD, start=200)  # a hold's end, not work
    add(engine, 5, CaseState.ACTIVE, start=-60)  # due in a minute
    with Session(engine) as session:
        got = {c.id for c in claim_due(session, NOW, 60, checks=False)}
        session.rollback()
        assert got == set(steps + traces)  # no re-check among them
        first = [c.id for c in claim_due(session, NOW, 60, limit=6)]
        session.rollback()
        # By due time across the states: checks 100, 99, 98 s ago; watched 99, 98; traces 98…
        assert sorted(first) == sorted(
            [checks[0], checks[1], checks[2], watched[0], watched[1], traces[0]]
        )
        assert {c.id for c in claim_due(session, NOW, 60, traces=False, steps=False)} == set(
            checks + watched
        )
        assert claim_due(session, NOW, 60) != []  # the steps and traces were left
        assert claim_due(session, NOW, 60) == []  # each claimed once


def _steps(engine: Engine, claim: Any) -> int:
    """Return the SQLite virtual-machine steps CLAIM takes: its cost, counted exactly."""
    with Session(engine) as session:
        raw = session.connection().connection.driver_connection
        counted = [0]

        def tick() -> int:
            counted[0] += 1
            return 0  # go on

        raw.set_progress_handler(tick, 100)
        claim(session)
        raw.set_progress_handler(None, 100)
        session.rollback()
    return counted[0] * 100


def test_a_claim_costs_what_it_claims_not_what_is_open(engine: Engine) -> None:
    add(engine, 3, CaseState.ACTIVE, start=50, step_due=True)
    add(engine, 300, CaseState.NEW, start=30000, hosts=150)  # a report: 100 are claimed

    def every_claim(session: Session) -> None:
        claim_due(session, NOW, 60, traces=False, checks=False)  # the checks queue is full
        claim_due(session, NOW, 60, limit=20, traces=False)
        claim_due(session, NOW, 60, limit=20, traces=False, steps=False)  # a trickle
        claim_traces(session, NOW, 60, 100)

    add(engine, 200, CaseState.ACTIVE, start=1000)  # due for a re-check only
    few = _steps(engine, every_claim)
    add(engine, 5000, CaseState.ACTIVE, start=10000)
    add(engine, 5000, CaseState.NEW, start=20000, hosts=2500, site="later")  # a big report
    many = _steps(engine, every_claim)
    assert many < few * 1.5, (few, many)


def test_a_trace_claim_takes_whole_host_names_of_a_big_report(engine: Engine) -> None:
    ids = add(engine, 3000, CaseState.NEW, start=5000, hosts=1000)  # three cases a host name
    with Session(engine) as session:
        claimed = claim_traces(session, NOW, 60, 100)
    hosts = {c.host for c in claimed}
    assert len(claimed) == 99 and len(hosts) == 33  # 33 whole host names fit in 100
    assert {c.id for c in claimed} == {i for k, i in enumerate(ids) if k % 1000 < 33}
