"""The removal verdict in the engine, stage by stage, with a hand-moved clock.

Real servers and a real database; the act stage runs in-process as a worker would run it,
so each decision (a chaser held for a gone check, changed content at an analyst, a removed
URL watched and reopened) is shown at the exact moment it is taken.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_harness import engine_runtime, hosta_stack, hosta_world
from sqlalchemy import select
from stack import Stack

from workflows.engine import actions
from workflows.engine.acting import act_cases
from workflows.engine.outbox import batch_notices
from workflows.engine.runtime import Runtime
from workflows.engine.sending import send_notice
from workflows.engine.tracing import trace_cases
from workflows.errors import Conflict
from workflows.kinds import CaseState
from workflows.store.accounts import create_user
from workflows.store.claims import claim_notices
from workflows.store.db import transaction
from workflows.store.models import Case, NoticeItem
from workflows.store.queries import compute_stats

URL = "http://files.hosta.test/1"
DAY = 86400.0
WATCH = (DAY, 90 * DAY)  # the shipped watch_removed: daily for 90 days


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with hosta_stack(tmp_path, hosta_world(URL)) as running:
        yield running


@pytest.fixture
def rt(stack: Stack) -> Iterator[Runtime]:
    with engine_runtime(stack) as runtime:
        yield runtime


def advance(rt: Runtime, seconds: float) -> None:
    rt.clock.advance(seconds)  # type: ignore[attr-defined]


def send_due_notices(rt: Runtime) -> list[int]:
    """Build the owed notices once their window passed and send them, as a worker would."""
    advance(rt, rt.policy.notice_window)
    built = batch_notices(rt)
    with transaction(rt.sessions) as session:
        claimed = claim_notices(session, rt.clock(), rt.lease)
    for notice_id in claimed:
        send_notice(rt, notice_id)
    return built


def noticed(stack: Stack, rt: Runtime) -> int:
    """Report URL, trace it, check it (present) and send its first notice; return the case."""
    case_id: int = stack.report(URL)[0]["id"]
    trace_cases(rt, [case_id])
    act_cases(rt, [case_id])
    assert len(send_due_notices(rt)) == 1
    return case_id


def case_of(rt: Runtime, case_id: int) -> Case:
    with rt.sessions() as session:
        return session.get_one(Case, case_id)


def steps_owed(rt: Runtime, case_id: int) -> list[tuple[int, int, str]]:
    with rt.sessions() as session:
        rows = session.execute(
            select(NoticeItem.round, NoticeItem.step, NoticeItem.kind)
            .where(NoticeItem.case_id == case_id)
            .order_by(NoticeItem.id)
        )
        return [(r[0], r[1], r[2]) for r in rows]


def kinds(stack: Stack, case_id: int) -> list[str]:
    return [e.kind for e in stack.events(case_id)]


def test_a_chaser_waits_when_the_check_just_before_it_saw_the_content_gone(
    stack: Stack, rt: Runtime
) -> None:
    case_id = noticed(stack, rt)
    stack.world.set_content_state(URL, "404")  # taken down just before the chaser's time
    advance(rt, 5)  # the policy's gap after the notice: the chaser is due
    act_cases(rt, [case_id])
    assert "chaser_held" in kinds(stack, case_id)
    assert steps_owed(rt, case_id) == [(0, 0, "notice")]  # no chaser owed
    assert case_of(rt, case_id).gone_streak == 1
    advance(rt, rt.policy.confirm_spacing)
    act_cases(rt, [case_id])
    case = case_of(rt, case_id)
    assert (case.state, case.removed_by) == (CaseState.REMOVED, "status")
    assert steps_owed(rt, case_id) == [(0, 0, "notice")]  # and none ever went


def test_a_held_chaser_goes_out_when_the_confirming_check_sees_the_content_again(
    stack: Stack, rt: Runtime
) -> None:
    case_id = noticed(stack, rt)
    stack.world.set_content_state(URL, "404")  # a blip: a redeploy, an overloaded server
    advance(rt, 5)
    act_cases(rt, [case_id])
    stack.world.set_content_state(URL, "present")
    advance(rt, rt.policy.confirm_spacing)
    act_cases(rt, [case_id])
    assert case_of(rt, case_id).state == CaseState.ACTIVE
    assert steps_owed(rt, case_id) == [(0, 0, "notice"), (0, 1, "chaser")]


def test_changed_content_waits_for_an_analyst_and_is_still_checked(
    stack: Stack, rt: Runtime
) -> None:
    case_id = noticed(stack, rt)
    stack.world.set_content_state(URL, "changed")  # 200, other bytes: a placeholder?
    for _ in range(rt.policy.changed_checks):
        advance(rt, rt.policy.recheck_every)
        act_cases(rt, [case_id])
    case = case_of(rt, case_id)
    assert case.state == CaseState.NEEDS_ANALYST and case.removed_at is None
    assert case.last_error and case.last_error.startswith("content changed: confirm removal")
    assert case.due_at is not None
    assert kinds(stack, case_id).count("content_changed") == 1
    # It is re-checked, not re-traced, while it waits; the original back resumes the chase.
    stack.world.set_content_state(URL, "present")
    advance(rt, rt.policy.recheck_every)
    trace_cases(rt, [case_id])
    assert case_of(rt, case_id).state == CaseState.NEEDS_ANALYST  # not re-routed
    act_cases(rt, [case_id])
    case = case_of(rt, case_id)
    assert (case.state, case.changed_streak) == (CaseState.ACTIVE, 0)
    assert "resumed" in kinds(stack, case_id)


@pytest.mark.parametrize("removed", [True, False])
def test_an_analyst_settles_changed_content(stack: Stack, rt: Runtime, removed: bool) -> None:
    case_id = noticed(stack, rt)
    with transaction(rt.sessions) as session:
        analyst = create_user(session, "ana", "analyst")
        with pytest.raises(Conflict, match="no changed content"):
            actions.confirm(session, case_id, analyst, removed, now=rt.clock(), watch=WATCH)
    stack.world.set_content_state(URL, "changed")
    for _ in range(rt.policy.changed_checks):
        advance(rt, rt.policy.recheck_every)
        act_cases(rt, [case_id])
    with transaction(rt.sessions) as session:
        analyst = create_user(session, "bob", "analyst")
        actions.confirm(
            session, case_id, analyst, removed, now=rt.clock(), watch=WATCH, reason="looked"
        )
    case = case_of(rt, case_id)
    confirmed = next(e for e in stack.events(case_id) if e.kind == "confirmed")
    assert (confirmed.actor, confirmed.detail["removed"]) == ("bob", removed)
    if removed:
        assert (case.state, case.removed_by, case.open_key) == (CaseState.REMOVED, "analyst", None)
        assert case.watch_until is not None and case.due_at is not None
        return
    assert case.state == CaseState.ACTIVE
    advance(rt, rt.policy.recheck_every)
    act_cases(rt, [case_id])  # what the analyst saw is now the content compared with
    assert stack.checks(case_id)[-1].outcome == "present"
    assert case_of(rt, case_id).changed_streak == 0


def test_a_removed_url_is_watched_and_reopens_when_the_same_bytes_come_back(
    stack: Stack, rt: Runtime
) -> None:
    case_id = noticed(stack, rt)
    first_notice = stack.notices_of(case_id)[0]
    stack.world.set_content_state(URL, "404")
    advance(rt, rt.policy.recheck_every)
    act_cases(rt, [case_id])
    advance(rt, rt.policy.confirm_spacing)
    act_cases(rt, [case_id])
    removed = case_of(rt, case_id)
    assert removed.state == CaseState.REMOVED
    assert removed.due_at == removed.removed_at + dt.timedelta(days=1)  # type: ignore[operator]
    act_cases(rt, [case_id])  # not due yet: nothing is fetched
    assert len(stack.checks(case_id)) == 3
    advance(rt, DAY)
    act_cases(rt, [case_id])  # still gone: watched on
    assert case_of(rt, case_id).state == CaseState.REMOVED
    stack.world.set_content_state(URL, "present")  # the same bytes, back
    advance(rt, DAY)
    act_cases(rt, [case_id])
    case = case_of(rt, case_id)
    assert (case.state, case.round, case.reappeared) == (CaseState.ACTIVE, 1, 1)
    assert case.removed_at is None and case.open_key is not None
    assert case.reopened_at == rt.clock() and case.first_notice_at is None  # a round of its own
    assert case.past_rounds == [
        {
            "opened_at": removed.opened_at.isoformat(),
            "first_notice_at": removed.first_notice_at.isoformat(),  # type: ignore[union-attr]
            "removed_at": removed.removed_at.isoformat(),  # type: ignore[union-attr]
        }
    ]
    back = next(e for e in stack.events(case_id) if e.kind == "reappeared")
    assert back.detail["rule"] == "the same bytes (SHA-256)"
    act_cases(rt, [case_id])  # the new round's first step is owed: a reappeared notice
    assert steps_owed(rt, case_id)[-1] == (1, 0, "reappeared")
    send_due_notices(rt)
    again = stack.notices_of(case_id)[-1]
    assert (again.kind, again.in_reply_to) == ("reappeared", first_notice.message_id)
    assert first_notice.message_id in again.body_text
    with rt.sessions() as session:
        stats = compute_stats(session, since=None, now=rt.clock())
    assert stats.reappeared == {"cases": 1, "times": 1}
    assert stats.overall.from_report.removed == 1  # the first round's removal


def test_the_watch_ends_after_its_period(stack: Stack, rt: Runtime) -> None:
    rt.policy = dataclasses.replace(rt.policy, watch_every=DAY, watch_for=2 * DAY)
    case_id = noticed(stack, rt)
    stack.world.set_content_state(URL, "410")
    advance(rt, rt.policy.recheck_every)
    act_cases(rt, [case_id])
    advance(rt, rt.policy.confirm_spacing)
    act_cases(rt, [case_id])
    for _ in range(2):
        advance(rt, DAY)
        act_cases(rt, [case_id])
    case = case_of(rt, case_id)
    assert (case.state, case.due_at, case.watch_until) == (CaseState.REMOVED, None, None)
    assert kinds(stack, case_id).count("watch_ended") == 1


def test_a_batch_of_re_checks_writes_its_checks_and_events_one_statement_each(
    tmp_path: Path,
) -> None:
    # A re-check pass writes 100,000 checks: a statement per check and per event cost
    # more than the fetch (workload 2). Each case still gets its check and its event.
    from sqlalchemy import event as sa_event

    from workflows.store.models import Check, Event

    urls = [f"http://files.hosta.test/batch/{n}" for n in range(6)]
    with hosta_stack(tmp_path, hosta_world(*urls)) as stack, engine_runtime(stack) as rt:
        ids = [case["id"] for case in stack.report(*urls)]
        trace_cases(rt, ids)
        act_cases(rt, ids)  # first checks, first notice owed
        advance(rt, rt.policy.recheck_every)
        inserts: list[str] = []

        def seen(conn: object, cursor: object, statement: str, *args: object) -> None:
            if statement.lstrip().upper().startswith("INSERT INTO"):
                inserts.append(statement.split()[2].strip('"'))

        sa_event.listen(rt.engine, "before_cursor_execute", seen)
        try:
            act_cases(rt, ids)
        finally:
            sa_event.remove(rt.engine, "before_cursor_execute", seen)
        assert inserts.count("checks") == 1 and inserts.count("events") == 1, inserts
        with rt.sessions() as session:
            for case_id in ids:
                checks = session.scalars(select(Check).where(Check.case_id == case_id)).all()
                kinds = session.scalars(select(Event.kind).where(Event.case_id == case_id)).all()
                assert len(checks) == 2 and kinds.count("checked") == 2, case_id
