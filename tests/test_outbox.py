"""The outbox's SMTP outcomes, in-process against a real relay and a real database.

A notice lost after its whole message went out is uncertain and never resent; a 4xx is
retried on the policy's backoff and told to the cases; a send that outlives its claim
does not undo what the sweep decided meanwhile.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from engine_harness import claim_first_notice, engine_runtime, hosta_stack, hosta_world
from sqlalchemy import select, update
from stack import Stack

from workflows.core.policy import trace_retry_delay
from workflows.engine import sending
from workflows.engine.acting import act_cases
from workflows.engine.runtime import Runtime
from workflows.engine.sending import send_notice
from workflows.engine.sweep import recover_notices
from workflows.kinds import CaseState, NoticeStatus
from workflows.notify.mailer import SMTPSettings
from workflows.store.claims import claim_due, claim_notices
from workflows.store.db import transaction
from workflows.store.models import Case, Notice, NoticeItem

URL = "http://files.hosta.test/1"
DESK = "abuse@hosta.example"
UPSTREAM = "abuse@upstream.example"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with hosta_stack(tmp_path, hosta_world(URL, upstream=UPSTREAM), smtp_timeout="0.5s") as up:
        yield up


@pytest.fixture
def rt(stack: Stack) -> Iterator[Runtime]:
    with engine_runtime(stack) as runtime:
        claim_first_notice(stack, runtime, URL)
        yield runtime


def the_notice(rt: Runtime) -> Notice:
    with rt.sessions() as session:
        return session.scalars(select(Notice)).one()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def event_kinds(stack: Stack) -> list[str]:
    return [e.kind for e in stack.events(stack.case(URL).id)]


def claimable_later(rt: Runtime) -> list[int]:
    """Claim what the sweep would hand out an hour from now."""
    rt.clock.advance(3600)  # type: ignore[attr-defined]
    recover_notices(rt, rt.clock())
    with transaction(rt.sessions) as session:
        return claim_notices(session, rt.clock(), rt.lease)


@pytest.mark.parametrize("fault", ["drop", "stall-data"])
def test_a_notice_lost_after_its_message_went_out_is_uncertain_and_never_resent(
    stack: Stack, rt: Runtime, fault: str
) -> None:
    stack.smtp.set_fault(DESK, fault, times=1)
    notice_id = the_notice(rt).id
    assert send_notice(rt, notice_id) == NoticeStatus.UNCERTAIN
    notice = the_notice(rt)
    assert notice.status == NoticeStatus.UNCERTAIN and notice.smtp_reply
    assert event_kinds(stack).count("notice_uncertain") == 1
    assert claimable_later(rt) == []
    assert send_notice(rt, notice_id) == NoticeStatus.UNCERTAIN  # a redelivered task
    assert stack.smtp.transfers() == {notice.message_id: 1}


@pytest.mark.parametrize("fault", ["451", "421", "stall-rcpt"])
def test_a_notice_refused_for_now_waits_the_policys_backoff_and_tells_its_case(
    stack: Stack, rt: Runtime, fault: str
) -> None:
    stack.smtp.set_fault(DESK, fault, times=1)
    notice_id = the_notice(rt).id
    assert send_notice(rt, notice_id) == NoticeStatus.PENDING
    notice = the_notice(rt)
    assert notice.due_at is not None and notice.send_started_at is None
    retry_in = (notice.due_at - rt.clock()).total_seconds()
    assert retry_in == pytest.approx(trace_retry_delay(rt.policy, 0, lambda: 0.5))
    (deferred,) = [e for e in stack.events(stack.case(URL).id) if e.kind == "notice_deferred"]
    assert deferred.detail is not None and deferred.detail["attempts"] == 1
    assert stack.smtp.transfers() == {}
    assert claimable_later(rt) == [notice_id]
    assert send_notice(rt, notice_id) == NoticeStatus.SENT
    assert stack.smtp.count_by_message_id() == {notice.message_id: 1}


def test_the_chaser_falls_due_a_full_gap_after_its_notice_is_sent(
    stack: Stack, rt: Runtime
) -> None:
    steps = rt.policy.workflows["host_notice"]
    case = stack.case(URL)
    assert case.steps_done == 1 and case.step_due_at is None  # it waits for the notice
    rt.clock.advance(steps[1].after + 5)  # type: ignore[attr-defined]  # sent late: an outage
    assert send_notice(rt, the_notice(rt).id) == NoticeStatus.SENT
    case = stack.case(URL)
    sent = the_notice(rt).sent_at
    assert sent is not None and case.step_due_at == sent + dt.timedelta(
        seconds=steps[1].after - steps[0].after
    )  # not at its routing time, long past: a full gap after the notice
    assert case.due_at is not None and case.due_at <= case.step_due_at
    with transaction(rt.sessions) as session:
        assert claim_due(session, rt.clock(), rt.lease, checks=False) == []  # not yet
    rt.clock.now = case.step_due_at  # type: ignore[attr-defined]
    with transaction(rt.sessions) as session:
        (claimed,) = claim_due(session, rt.clock(), rt.lease, checks=False)
    assert claimed.id == case.id and claimed.step_due  # now the chaser is worked out


def test_a_refusal_moves_the_case_on_to_the_next_party(stack: Stack, rt: Runtime) -> None:
    stack.smtp.set_fault(DESK, "550")
    assert send_notice(rt, the_notice(rt).id) == NoticeStatus.FAILED
    case = stack.case(URL)
    assert (case.state, case.steps_done, case.due_at) == (CaseState.ACTIVE, 2, rt.clock())
    act_cases(rt, [case.id])  # the escalation is due at once; the chaser to DESK is skipped
    with rt.sessions() as session:
        owed = session.execute(select(NoticeItem.step, NoticeItem.recipients)).all()
    assert sorted(owed) == [(0, DESK), (2, UPSTREAM)]
    assert "escalated_after_refusal" in event_kinds(stack)


def test_a_refusal_while_a_task_holds_the_case_makes_it_claimable_at_once(
    stack: Stack, rt: Runtime
) -> None:
    """A check task holds the case when the refusal lands: its write will lose the
    compare-and-set, so the claim must not outlive the refusal (the demo's case 5 waited
    the whole lease for its escalation)."""
    case_id = stack.case(URL).id
    with transaction(rt.sessions) as session:  # a task claims the case for a lease
        session.execute(
            update(Case)
            .where(Case.id == case_id)
            .values(claimed_until=rt.clock() + dt.timedelta(seconds=rt.lease))
        )
    stack.smtp.set_fault(DESK, "550")
    assert send_notice(rt, the_notice(rt).id) == NoticeStatus.FAILED
    with transaction(rt.sessions) as session:
        claimed = claim_due(session, rt.clock(), rt.lease)
    assert [c.id for c in claimed] == [case_id]


def test_a_notice_on_its_way_holds_its_chaser_back_until_it_is_refused(
    stack: Stack, rt: Runtime
) -> None:
    stack.smtp.set_fault(DESK, "550")
    notice_id, case_id = the_notice(rt).id, stack.case(URL).id
    rt.clock.advance(rt.policy.workflows["host_notice"][-1].after)  # type: ignore[attr-defined]
    act_cases(rt, [case_id])  # the notice is still on its way: no chaser to a desk not told
    assert stack.case(URL).steps_done == 1
    assert send_notice(rt, notice_id) == NoticeStatus.FAILED  # refused at last
    case = stack.case(URL)
    assert (case.state, case.steps_done) == (CaseState.ACTIVE, 2)  # on to the upstream
    assert "notice_failed" in event_kinds(stack)
    assert "needs_analyst" not in event_kinds(stack)
    act_cases(rt, [case_id])  # the escalation is owed at once; the chaser to DESK skipped
    with rt.sessions() as session:
        owed = session.execute(select(NoticeItem.step, NoticeItem.recipients)).all()
    assert sorted(owed) == [(0, DESK), (2, UPSTREAM)]


class HeldRelay:
    """An aiosmtpd handler that takes the message, then answers only when released."""

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.arrived, self.release = threading.Event(), threading.Event()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.arrived.set()
        await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 30)
        return self.reply


def sent_in_the_background(rt: Runtime, relay: HeldRelay, during: Callable[[], None]) -> str:
    """Send the notice through RELAY, calling DURING while the relay holds its reply."""
    port, notice_id = free_port(), the_notice(rt).id
    controller = Controller(relay, hostname="127.0.0.1", port=port, server_hostname="relay.test")
    controller.start()
    try:
        rt.__dict__["smtp"] = SMTPSettings("127.0.0.1", port, timeout=30)
        outcome: list[str] = []
        sender = threading.Thread(target=lambda: outcome.append(send_notice(rt, notice_id)))
        sender.start()
        assert relay.arrived.wait(30)
        during()
        relay.release.set()
        sender.join(30)
    finally:
        relay.release.set()
        controller.stop()
    (status,) = outcome
    return status


def test_a_send_that_waited_in_the_queue_still_gets_a_whole_lease(
    stack: Stack, rt: Runtime
) -> None:
    rt.clock.advance(rt.lease - 1)  # type: ignore[attr-defined]

    def past_the_claim() -> None:
        rt.clock.advance(2)  # type: ignore[attr-defined]
        assert recover_notices(rt, rt.clock()) == 0  # the lease counts from the start

    assert sent_in_the_background(rt, HeldRelay("250 2.0.0 queued"), past_the_claim) == "sent"
    assert [k for k in event_kinds(stack) if k.startswith("notice_")] == ["notice_sent"]


def test_a_redelivered_task_leaves_a_notice_alone_while_its_first_run_may_be_sending(
    stack: Stack, rt: Runtime
) -> None:
    notice_id = the_notice(rt).id
    with transaction(rt.sessions) as session:  # another run began, with a fresh lease
        session.execute(
            update(Notice)
            .where(Notice.id == notice_id)
            .values(
                send_started_at=rt.clock(),
                claimed_until=rt.clock() + dt.timedelta(seconds=rt.lease),
            )
        )
    assert send_notice(rt, notice_id) == NoticeStatus.SENDING
    assert the_notice(rt).status == NoticeStatus.SENDING
    assert "notice_uncertain" not in event_kinds(stack)
    rt.clock.advance(rt.lease + 1)  # type: ignore[attr-defined]
    assert send_notice(rt, notice_id) == NoticeStatus.UNCERTAIN  # that run died mid-send
    assert stack.smtp.transfers() == {}


@pytest.mark.parametrize(
    ("reply", "final", "events"),
    [
        ("250 2.0.0 queued", NoticeStatus.SENT, ["notice_uncertain", "notice_sent"]),
        ("451 4.3.0 try later", NoticeStatus.UNCERTAIN, ["notice_uncertain"]),
    ],
)
def test_a_send_that_outlives_its_claim_keeps_the_sweeps_verdict_unless_it_was_sent(
    stack: Stack, rt: Runtime, reply: str, final: str, events: list[str]
) -> None:
    def past_the_claim() -> None:
        rt.clock.advance(rt.lease + 1)  # type: ignore[attr-defined]
        assert recover_notices(rt, rt.clock()) == 1  # the claim ran out mid-send

    assert sent_in_the_background(rt, HeldRelay(reply), past_the_claim) == final
    assert the_notice(rt).status == final
    assert [k for k in event_kinds(stack) if k.startswith("notice_")] == events
    assert claimable_later(rt) == []


def test_a_refusal_never_undoes_an_analysts_close_that_came_in_between(
    stack: Stack, rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    decide = sending._next_party
    closed: list[int] = []

    def closed_meanwhile(session: Any, *args: Any) -> Any:
        decision = decide(session, *args)
        if not closed:  # the analyst's close lands between our read and our write
            case = stack.case(URL)
            closed.append(case.id)
            session.execute(  # as another connection would: our copy of the case is stale
                update(Case)
                .where(Case.id == case.id)
                .values(state=CaseState.CLOSED, version=Case.version + 1),
                execution_options={"synchronize_session": False},
            )
        return decision

    monkeypatch.setattr(sending, "_next_party", closed_meanwhile)
    stack.smtp.set_fault(DESK, "550")
    assert send_notice(rt, the_notice(rt).id) == NoticeStatus.FAILED
    case = stack.case(URL)
    assert closed and case.state == CaseState.CLOSED  # not undone by the late refusal
    assert case.steps_done == 1  # and its workflow was not moved on behind the analyst
    assert "escalated_after_refusal" not in event_kinds(stack)


def test_first_notices_are_claimed_before_chasers_due_earlier(rt: Runtime) -> None:
    now = rt.clock()

    def pending(kind: str, due: float) -> int:
        with transaction(rt.sessions) as session:
            notice = Notice(
                kind=kind,
                recipients=DESK,
                status=NoticeStatus.PENDING,
                message_id=f"<pending.{kind}@hotline.example>",
                language="en",
                subject="",
                body_text="",
                body_html="",
                attempts=0,
                due_at=now + dt.timedelta(seconds=due),
                created_at=now,
                return_token=kind,
            )
            session.add(notice)
            session.flush()
            return notice.id

    chaser, first = pending("chaser", -60), pending("notice", -1)
    with transaction(rt.sessions) as session:
        assert claim_notices(session, now, rt.lease, limit=1) == [first]
        assert claim_notices(session, now, rt.lease, limit=1) == [chaser]
