"""A report's first notice per desk waits for the rest of the report: as long as its
other URLs are being traced (up to a safety limit), a shorter while for traces that wait
to retry. The clock is injected: no waiting here."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_harness import engine_runtime, hosta_stack, hosta_world
from sqlalchemy import event, select, update
from stack import Stack

from workflows.engine.acting import act_cases
from workflows.engine.outbox import BATCH_WAIT, BATCH_WAIT_LIMIT, batch_notices
from workflows.engine.runtime import Runtime
from workflows.engine.tracing import trace_cases
from workflows.kinds import CaseState
from workflows.store.db import transaction
from workflows.store.models import Case, Notice, NoticeItem

FIRST, OTHER = "http://files.hosta.test/first", "http://files.hosta.test/other"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with hosta_stack(tmp_path, hosta_world(FIRST, OTHER)) as running:
        yield running


@pytest.fixture
def rt(stack: Stack) -> Iterator[Runtime]:
    with engine_runtime(stack) as runtime:
        yield runtime


def owed_first(stack: Stack, rt: Runtime) -> tuple[int, int]:
    """Report both URLs together; trace and owe only the first; return both ids."""
    first, other = (r["id"] for r in stack.report(FIRST, OTHER))
    rt.clock.now = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)  # type: ignore[attr-defined]
    trace_cases(rt, [first])
    act_cases(rt, [first], recheck=False)
    return first, other


def advance(rt: Runtime, seconds: float) -> None:
    rt.clock.advance(seconds)  # type: ignore[attr-defined]


def test_a_first_notice_waits_while_its_report_is_still_being_traced(
    stack: Stack, rt: Runtime
) -> None:
    owed_first(stack, rt)
    advance(rt, (BATCH_WAIT + 1) * rt.policy.notice_window + 60)  # far past 5 windows
    assert batch_notices(rt) == []  # the other URL, never traced yet, may be the same desk's
    advance(rt, BATCH_WAIT_LIMIT)
    assert len(batch_notices(rt)) == 1  # the safety limit: it goes out alone


def test_a_desk_whose_every_owed_url_waits_is_not_read_each_sweep(
    stack: Stack, rt: Runtime
) -> None:
    owed_first(stack, rt)
    advance(rt, rt.policy.notice_window + 1)
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    event.listen(rt.engine, "before_cursor_execute", seen)
    try:
        assert batch_notices(rt) == []
    finally:
        event.remove(rt.engine, "before_cursor_execute", seen)
    # Grouped counts only: no item is loaded while a 100,000-URL report is being traced.
    assert statements and not [q for q in statements if "SELECT notice_items.id" in q]


def test_the_whole_report_traced_goes_out_as_one_notice(stack: Stack, rt: Runtime) -> None:
    first, other = owed_first(stack, rt)
    advance(rt, 30)
    trace_cases(rt, [other])
    act_cases(rt, [other], recheck=False)
    advance(rt, rt.policy.notice_window)
    (notice_id,) = batch_notices(rt)
    assert [n.id for n in stack.notices_of(first)] == [n.id for n in stack.notices_of(other)]
    assert [n.id for n in stack.notices_of(first)] == [notice_id]


def test_a_trace_waiting_to_retry_holds_the_notice_only_a_while(stack: Stack, rt: Runtime) -> None:
    _, other = owed_first(stack, rt)
    with transaction(rt.sessions) as session:  # its trace failed for now: a retry is due later
        session.execute(
            update(Case)
            .where(Case.id == other)
            .values(state=CaseState.WAITING, due_at=rt.clock() + dt.timedelta(hours=1))
        )
    advance(rt, rt.policy.notice_window)
    assert batch_notices(rt) == []
    advance(rt, BATCH_WAIT * rt.policy.notice_window)
    assert len(batch_notices(rt)) == 1  # not the safety limit's 15 minutes


def test_a_report_still_being_traced_never_holds_back_another_reports_urls(
    stack: Stack, rt: Runtime
) -> None:
    """Reports arriving one after another (an API client, 20 URLs a second): the URLs of a
    report that is traced go out at their window, whatever later reports are still doing."""
    first, _other = owed_first(stack, rt)  # one report: FIRST owed, OTHER still new
    later: int = stack.report("http://files.hosta.test/later")[0]["id"]  # another report
    trace_cases(rt, [later])
    act_cases(rt, [later], recheck=False)
    advance(rt, rt.policy.notice_window)
    (notice_id,) = batch_notices(rt)  # LATER's report is done: its URL goes out alone
    assert [n.id for n in stack.notices_of(later)] == [notice_id]
    assert stack.notices_of(first) == []  # FIRST waits for OTHER, of its own report


def test_a_sweep_builds_at_most_its_share_of_notices_the_longest_waiting_first(
    stack: Stack, rt: Runtime
) -> None:
    first, other = (r["id"] for r in stack.report(FIRST, OTHER))
    rt.clock.now = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)  # type: ignore[attr-defined]
    trace_cases(rt, [first, other])
    act_cases(rt, [first, other], recheck=False)  # both owed to the one desk: one group
    with transaction(rt.sessions) as session:  # …but OTHER's to another desk, owed earlier
        item = session.scalars(select(NoticeItem).where(NoticeItem.case_id == other)).one()
        item.recipients = "abuse@elsewhere.example"
        item.due_at -= dt.timedelta(seconds=1)
    advance(rt, rt.policy.notice_window + 1)
    (built,) = batch_notices(rt, most=1)
    (then,) = batch_notices(rt, most=1)
    assert batch_notices(rt, most=1) == []
    with rt.sessions() as session:
        assert session.get_one(Notice, built).recipients == "abuse@elsewhere.example"
        assert session.get_one(Notice, then).recipients != "abuse@elsewhere.example"
