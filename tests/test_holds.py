"""Holds against the real engine: a held case waits, visibly, and resumes where it paused."""

from __future__ import annotations

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
from workflows.engine.sweep import sweep
from workflows.engine.tracing import trace_cases
from workflows.kinds import CaseState, CloseReason
from workflows.sim import World
from workflows.store import accounts
from workflows.store.claims import claim_notices
from workflows.store.db import transaction
from workflows.store.models import Case, NoticeItem, User

URL = "http://files.hosta.test/held"


def world() -> World:
    return hosta_world(URL)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with hosta_stack(tmp_path, world()) as running:
        yield running


@pytest.fixture
def rt(stack: Stack) -> Iterator[Runtime]:
    with engine_runtime(stack) as runtime:
        yield runtime


def advance(rt: Runtime, seconds: float) -> None:
    rt.clock.advance(seconds)  # type: ignore[attr-defined]


def supervisor(rt: Runtime) -> User:
    with transaction(rt.sessions) as session:
        found = accounts.find_user(session, "sue")
        return found or accounts.create_user(session, "sue", "supervisor", now=rt.clock())


def hold(rt: Runtime, case_id: int, seconds: float) -> Case:
    user = supervisor(rt)
    until = rt.clock() + dt.timedelta(seconds=seconds)
    with transaction(rt.sessions) as session:
        return actions.hold(session, case_id, user, until, now=rt.clock(), reason="police")


def swept(rt: Runtime) -> list[tuple[str, list[int]]]:
    published: list[tuple[str, list[int]]] = []
    sweep(rt, lambda task, ids: published.append((task, list(ids))))
    return published


def case_of(rt: Runtime, case_id: int) -> Case:
    with rt.sessions() as session:
        return session.get_one(Case, case_id)


def items(rt: Runtime, case_id: int) -> list[tuple[int, int, str]]:
    with rt.sessions() as session:
        rows = session.scalars(select(NoticeItem).where(NoticeItem.case_id == case_id))
        return sorted((i.round, i.step, i.kind) for i in rows)


def routed(stack: Stack, rt: Runtime) -> int:
    """Report URL, trace it and owe its first notice; return the case id."""
    case_id: int = stack.report(URL)[0]["id"]
    trace_cases(rt, [case_id])
    act_cases(rt, [case_id])
    assert items(rt, case_id) == [(0, 0, "notice")]
    return case_id


def test_a_held_case_waits_for_its_hold_to_end_then_owes_its_notice_once(
    stack: Stack, rt: Runtime
) -> None:
    case_id = routed(stack, rt)
    held = hold(rt, case_id, 60)
    assert (held.state, held.held_from, held.steps_done) == (CaseState.HELD, "active", 0)
    assert held.due_at == rt.clock() + dt.timedelta(seconds=60)  # visibly waiting
    assert items(rt, case_id) == []  # the notice not yet written is taken back
    for seconds in (0, 30, 29):
        advance(rt, seconds)
        assert swept(rt) == []  # nothing to trace, act on or send while held
    advance(rt, 1)
    assert swept(rt) == [("takedown.steps", [case_id])]
    assert [(e.kind, e.actor) for e in stack.events(case_id)][-2:] == [
        ("held", "sue"),
        ("hold_ended", "takedown"),
    ]
    act_cases(rt, [case_id])
    assert items(rt, case_id) == [(0, 0, "notice")]
    advance(rt, rt.policy.notice_window)
    (notice_id,) = batch_notices(rt)
    with transaction(rt.sessions) as session:
        assert claim_notices(session, rt.clock(), rt.lease) == [notice_id]
    send_notice(rt, notice_id)
    assert stack.smtp.wait_for(lambda messages: len(messages) >= 1)
    assert len(stack.smtp.messages) == 1


def test_a_hold_pauses_the_workflow_clock_so_no_chaser_falls_due_during_it(
    stack: Stack, rt: Runtime
) -> None:
    case_id = routed(stack, rt)
    first_routed = case_of(rt, case_id).routed_at
    assert first_routed is not None
    advance(rt, 2)
    hold(rt, case_id, 60)
    advance(rt, 60)  # the chaser (5 s after routing) would long be due without the pause
    swept(rt)
    resumed = case_of(rt, case_id)
    assert resumed.state == CaseState.ACTIVE
    # The steps' clock moves on by the pause; when it was routed stays what it was.
    assert resumed.steps_from == first_routed + dt.timedelta(seconds=60)
    assert resumed.routed_at == first_routed
    act_cases(rt, [case_id])
    assert items(rt, case_id) == [(0, 0, "notice")]  # owed again; the chaser not yet
    advance(rt, 3)
    act_cases(rt, [case_id])
    assert items(rt, case_id) == [(0, 0, "notice")]  # and not before the notice went out
    advance(rt, rt.policy.notice_window)
    (notice_id,) = batch_notices(rt)
    with transaction(rt.sessions) as session:
        assert claim_notices(session, rt.clock(), rt.lease) == [notice_id]
    send_notice(rt, notice_id)
    advance(rt, 5)  # the policy's gap, counted from the notice's sending
    act_cases(rt, [case_id])
    assert items(rt, case_id) == [(0, 0, "notice"), (0, 1, "chaser")]


def test_a_task_claimed_before_the_hold_changes_nothing_after_it(stack: Stack, rt: Runtime) -> None:
    case_id = routed(stack, rt)
    advance(rt, rt.policy.recheck_every)
    assert ("takedown.check", [case_id]) in swept(rt)  # a worker has the task in hand
    checks, owed = len(stack.checks(case_id)), items(rt, case_id)
    held = hold(rt, case_id, 600)
    act_cases(rt, [case_id])  # the stale task runs: the case is no longer active
    after = case_of(rt, case_id)
    assert (after.state, after.due_at, after.version) == (CaseState.HELD, held.due_at, held.version)
    assert len(stack.checks(case_id)) == checks and items(rt, case_id) == owed


def test_a_held_case_that_was_never_traced_is_traced_when_the_hold_ends(
    stack: Stack, rt: Runtime
) -> None:
    case_id: int = stack.report(URL)[0]["id"]
    hold(rt, case_id, 10)
    assert swept(rt) == []
    advance(rt, 10)
    assert swept(rt) == [("takedown.trace", [case_id])]
    assert case_of(rt, case_id).state == CaseState.NEW


def test_closing_a_held_case_ends_it_for_good(stack: Stack, rt: Runtime) -> None:
    case_id = routed(stack, rt)
    hold(rt, case_id, 10)
    user = supervisor(rt)
    with transaction(rt.sessions) as session:
        actions.close(
            session,
            case_id,
            user,
            now=rt.clock(),
            code=CloseReason.LAW_ENFORCEMENT,
            reason="police took over",
        )
    advance(rt, 10)
    assert swept(rt) == []
    closed = case_of(rt, case_id)
    assert (closed.state, closed.due_at, closed.open_key) == (CaseState.CLOSED, None, None)
