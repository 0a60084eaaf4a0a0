"""Uncertain notices: a supervisor settles them as sent, or has them sent again, once.

The API's contract in-process (who may, each refusal, each outcome and its events); then
the whole thing with a real worker and a real relay: a notice lost after its data went
out is resent with the same Message-ID and arrives exactly once more, or is settled as
sent and never goes again; and a send that was only slow, finishing after a supervisor
asked for a resend, counts as the delivery.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deskapp import Desk, running_desk
from engine_harness import claim_first_notice, engine_runtime, hosta_stack, hosta_world
from sqlalchemy import select, update
from stack import Stack
from test_outbox import HeldRelay, sent_in_the_background

from workflows.engine import notice_actions
from workflows.engine.runtime import Runtime
from workflows.engine.sweep import recover_notices
from workflows.errors import Conflict
from workflows.kinds import NoticeStatus
from workflows.sim.smtp import message_id
from workflows.store import accounts
from workflows.store.claims import claim_notices
from workflows.store.db import transaction
from workflows.store.models import Case, Notice

A, B = "http://files.example/a.jpg", "http://files.example/b.jpg"
URL = "http://files.hosta.test/1"
DESK = "abuse@hosta.example"
UPSTREAM = "abuse@upstream.example"
WAIT = 180  # seconds: two cores shared with other test runs and a worker subprocess


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    with running_desk(tmp_path) as running:
        yield running


def resolve(desk: Desk, notice_id: int, outcome: str, **more: str) -> tuple[int, Any]:
    """Post a decision as the supervisor; return (status, body)."""
    answer = desk.client.post(
        f"/api/notices/{notice_id}/resolve",
        json={"outcome": outcome, **more},
        headers=desk.supervisor,
    )
    return answer.status_code, answer.json()


def iso(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def test_any_signed_in_user_lists_the_notices_waiting_for_a_decision(desk: Desk) -> None:
    a, b = (c["id"] for c in desk.report(A, B))
    uncertain = desk.notice(a, b)
    sent = desk.notice(a, status=NoticeStatus.SENT, step=1)
    answer = desk.client.get("/api/notices?status=uncertain", headers=desk.analyst)
    assert answer.status_code == 200 and answer.headers["x-total-count"] == "1"
    (found,) = answer.json()
    assert (found["id"], found["status"], found["cases"]) == (uncertain, "uncertain", [a, b])
    assert found["message_id"] == desk.stored_notice(uncertain).message_id
    every = desk.client.get("/api/notices?status=sent&status=uncertain", headers=desk.analyst)
    assert [n["id"] for n in every.json()] == [uncertain, sent]
    page = desk.client.get("/api/notices?limit=1&offset=1", headers=desk.analyst)
    assert [n["id"] for n in page.json()] == [sent] and page.headers["x-total-count"] == "2"
    assert desk.client.get("/api/notices?status=uncertain").status_code == 401


def test_settling_as_sent_stamps_the_notice_and_its_cases_first_notice(desk: Desk) -> None:
    a, b = (c["id"] for c in desk.report(A, B))
    earlier = desk.clock() - dt.timedelta(hours=1)
    with desk.sessions() as session:  # B had a notice before: its first stays
        session.execute(update(Case).where(Case.id == b).values(first_notice_at=earlier))
        session.commit()
    notice_id = desk.notice(a, b)
    desk.clock.advance(minutes=5)
    status, body = resolve(desk, notice_id, "sent", reason="the relay's log shows it queued")
    assert status == 200, body
    assert (body["status"], body["sent_at"], body["cases"]) == ("sent", iso(desk.clock()), [a, b])
    stored = desk.stored_notice(notice_id)
    assert (stored.status, stored.sent_at, stored.claimed_until) == ("sent", desk.clock(), None)
    assert desk.case(a).first_notice_at == desk.clock()
    assert desk.case(b).first_notice_at == earlier
    for case_id in (a, b):
        assert desk.events(case_id)[-1] == ("notice_sent", "sue")
    shown = desk.client.get(f"/api/cases/{a}", headers=desk.analyst).json()
    assert shown["events"][-1]["detail"]["reason"] == "the relay's log shows it queued"
    assert shown["events"][-1]["detail"]["outcome"] == "sent"


def test_resending_puts_it_back_due_now_never_begun_with_its_message_id(desk: Desk) -> None:
    a = desk.report(A)[0]["id"]
    notice_id = desk.notice(a)
    before = desk.stored_notice(notice_id)
    desk.clock.advance(minutes=5)
    status, body = resolve(desk, notice_id, "resend")
    assert (status, body["status"], body["sent_at"]) == (200, "pending", None)
    stored = desk.stored_notice(notice_id)
    assert (stored.status, stored.due_at) == (NoticeStatus.PENDING, desk.clock())
    assert (stored.send_started_at, stored.claimed_until) == (None, None)
    assert (stored.message_id, stored.attempts) == (before.message_id, before.attempts)
    assert desk.case(a).first_notice_at is None  # nothing is known to have arrived
    assert desk.events(a)[-1] == ("notice_resend", "sue")
    with desk.sessions() as session:  # the sweep claims it afresh
        assert claim_notices(session, desk.clock(), 60) == [notice_id]


@pytest.mark.parametrize("outcome", ["sent", "resend"])
@pytest.mark.parametrize("status", ["pending", "sending", "sent", "failed"])
def test_only_an_uncertain_notice_can_be_settled(desk: Desk, status: str, outcome: str) -> None:
    notice_id = desk.notice(desk.report(A)[0]["id"], status=status)
    before = desk.snapshot()
    answer = resolve(desk, notice_id, outcome)
    assert answer == (
        409,
        {"error": f"notice {notice_id} is {status}, not uncertain", "field": None},
    )
    assert desk.snapshot() == before


def test_a_second_decision_is_refused_even_from_a_stale_read(desk: Desk) -> None:
    notice_id = desk.notice(desk.report(A)[0]["id"])
    with desk.sessions() as stale:
        seen = stale.get_one(Notice, notice_id)  # read while it is still uncertain
        assert seen.status == NoticeStatus.UNCERTAIN
        assert resolve(desk, notice_id, "resend")[0] == 200
        user = accounts.find_user(stale, "sue")
        assert user is not None
        with pytest.raises(Conflict, match="is pending, not uncertain"):
            notice_actions.resolve(stale, notice_id, user, "sent", now=desk.clock())
    assert desk.stored_notice(notice_id).status == NoticeStatus.PENDING


def test_analysts_may_not_settle_and_nothing_changes(desk: Desk) -> None:
    notice_id = desk.notice(desk.report(A)[0]["id"])
    before = desk.snapshot()
    answer = desk.client.post(
        f"/api/notices/{notice_id}/resolve", json={"outcome": "sent"}, headers=desk.analyst
    )
    assert answer.status_code == 403 and "supervisor" in answer.json()["error"]
    assert desk.snapshot() == before


def test_a_notice_erased_by_retention_cannot_be_resent(desk: Desk) -> None:
    notice_id = desk.notice(desk.report(A)[0]["id"])
    with desk.sessions() as session:
        session.execute(update(Notice).where(Notice.id == notice_id).values(recipients=""))
        session.commit()
    status, body = resolve(desk, notice_id, "resend")
    assert status == 409 and "erased by the retention policy" in body["error"]
    assert resolve(desk, notice_id, "sent")[0] == 200  # it may still be known to have arrived


# With a real worker, a real relay and the simulated internet.


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with hosta_stack(tmp_path, hosta_world(URL, upstream=UPSTREAM), smtp_timeout="0.5s") as up:
        yield up


def first_notice_lost(stack: Stack) -> tuple[int, Notice]:
    """Report URL with the worker running; the relay drops its first notice after the data."""
    stack.smtp.set_fault(DESK, "drop", times=1)
    case_id = stack.report(URL)[0]["id"]
    stack.start_worker()

    def uncertain() -> bool:
        notices = stack.notices_of(case_id)
        return bool(notices) and notices[0].status == NoticeStatus.UNCERTAIN

    stack.wait_for(uncertain, WAIT, "the first notice to turn uncertain")
    notice = stack.notices_of(case_id)[0]
    assert stack.smtp.transfers()[notice.message_id] == 1  # its data did reach the relay
    assert stack.smtp.count_by_message_id()[notice.message_id] == 0  # and was dropped
    return case_id, notice


def keeps_working(stack: Stack, case_id: int, notice: Notice) -> None:
    """Wait until the worker has gone on: the URL checked again, another notice to DESK."""
    checks = len(stack.checks(case_id))

    def went_on() -> bool:
        others = [
            m for m in stack.smtp.messages_to(DESK) if message_id(m.message) != notice.message_id
        ]
        return len(stack.checks(case_id)) >= checks + 3 and bool(others)

    stack.wait_for(went_on, WAIT, "three more checks and the chaser")


def notice_events(stack: Stack, case_id: int, notice_id: int) -> list[tuple[str, str]]:
    return [
        (e.kind, e.actor)
        for e in stack.events(case_id)
        if e.detail and e.detail.get("notice") == notice_id
    ]


def test_a_resent_uncertain_notice_arrives_once_more_with_the_same_message_id(
    stack: Stack,
) -> None:
    case_id, notice = first_notice_lost(stack)
    with running_desk(stack.home) as desk:
        status, body = resolve(desk, notice.id, "resend", reason="the desk never got it")
        assert (status, body["status"]) == (200, "pending"), body
    stack.wait_for(
        lambda: stack.smtp.count_by_message_id()[notice.message_id] == 1,
        WAIT,
        "the resent notice to arrive",
    )
    keeps_working(stack, case_id, notice)
    assert stack.smtp.transfers()[notice.message_id] == 2  # the lost copy and the resent one
    assert stack.smtp.count_by_message_id()[notice.message_id] == 1
    (resent,) = [n for n in stack.notices_of(case_id) if n.id == notice.id]
    assert resent.status == NoticeStatus.SENT and resent.message_id == notice.message_id
    assert notice_events(stack, case_id, notice.id) == [
        ("notice_uncertain", "takedown"),
        ("notice_resend", "sue"),
        ("notice_sent", "takedown"),
    ]


def test_an_uncertain_notice_settled_as_sent_never_goes_again(stack: Stack) -> None:
    case_id, notice = first_notice_lost(stack)
    with running_desk(stack.home) as desk:
        status, body = resolve(desk, notice.id, "sent", reason="the desk confirmed it")
        assert (status, body["status"]) == (200, "sent"), body
    keeps_working(stack, case_id, notice)
    assert stack.smtp.transfers()[notice.message_id] == 1
    assert stack.smtp.count_by_message_id()[notice.message_id] == 0
    (settled,) = [n for n in stack.notices_of(case_id) if n.id == notice.id]
    assert settled.status == NoticeStatus.SENT and settled.sent_at is not None
    first = stack.case(URL).first_notice_at
    assert first is not None and first <= settled.sent_at
    assert notice_events(stack, case_id, notice.id) == [
        ("notice_uncertain", "takedown"),
        ("notice_sent", "sue"),
    ]


# In-process: a send that was only slow finishes after a supervisor asked for a resend.


@pytest.fixture
def rt(stack: Stack) -> Iterator[Runtime]:
    with engine_runtime(stack) as runtime:
        claim_first_notice(stack, runtime, URL)
        with transaction(runtime.sessions) as session:
            accounts.create_user(session, "sue", "supervisor", now=runtime.clock())
        yield runtime


def test_a_slow_send_that_arrives_after_a_resend_was_asked_for_is_the_delivery(
    stack: Stack, rt: Runtime
) -> None:
    def resend_meanwhile() -> None:
        rt.clock.advance(rt.lease + 1)  # type: ignore[attr-defined]
        assert recover_notices(rt, rt.clock()) == 1  # the sweep gave up on the run: uncertain
        with transaction(rt.sessions) as session:
            sue = accounts.find_user(session, "sue")
            assert sue is not None
            notice = session.scalars(select(Notice)).one()
            notice_actions.resolve(session, notice.id, sue, "resend", now=rt.clock())

    assert sent_in_the_background(rt, HeldRelay("250 2.0.0 queued"), resend_meanwhile) == "sent"
    with rt.sessions() as session:
        notice = session.scalars(select(Notice)).one()
        assert notice.status == NoticeStatus.SENT
        rt.clock.advance(3600)  # type: ignore[attr-defined]
        assert claim_notices(session, rt.clock(), rt.lease) == []  # never resent
    kinds = [e.kind for e in stack.events(stack.case(URL).id) if e.kind.startswith("notice_")]
    assert kinds == ["notice_uncertain", "notice_resend", "notice_sent"]
