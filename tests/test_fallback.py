"""The next party after a dead abuse desk: the network's other contacts (noc, technical),
then the upstream. A bounced notice to the host starts the workflow afresh to the
fallback contacts (a new round: a first notice, not a chaser of one they never got);
when they bounce too, the case moves on to the upstream, once; new cases for a dead
desk go straight to its fallback contacts.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_harness import claim_first_notice, engine_runtime, hosta_stack
from sqlalchemy import select
from stack import Stack
from test_inbox import RETURN_PATH, returned

from workflows.engine.acting import act_cases
from workflows.engine.inbox import take_message
from workflows.engine.outbox import batch_notices
from workflows.engine.runtime import Runtime
from workflows.engine.sending import send_notice
from workflows.engine.tracing import trace_cases
from workflows.kinds import NoticeStatus
from workflows.sim import Network, World
from workflows.store.claims import claim_notices
from workflows.store.db import transaction
from workflows.store.models import Notice, NoticeItem

URL = "http://files.hosta.test/1"
DESK = "abuse@hosta.example"
NOC = "noc@hosta.example"
UPSTREAM = "abuse@upstream.example"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    world = World(
        networks=[
            Network("185.199.0.0/16", 205000, "UPSTREAM-NET", "GB", abuse=[UPSTREAM]),
            Network("185.199.108.0/28", 205012, "HOSTA-NET", "GB", abuse=[DESK], fallback=[NOC]),
        ],
        records={"files.hosta.test": [("A", "185.199.108.10")]},
    )
    world.put_content(URL)
    with hosta_stack(tmp_path, world) as up:
        up.env["TAKEDOWN_RETURN_PATH"] = RETURN_PATH
        yield up


@pytest.fixture
def rt(stack: Stack) -> Iterator[Runtime]:
    with engine_runtime(stack) as runtime:
        notice_id = claim_first_notice(stack, runtime, URL)
        assert send_notice(runtime, notice_id) == NoticeStatus.SENT
        yield runtime


def send_owed(rt: Runtime) -> Notice:
    """Build and send the one notice owed now; return it."""
    rt.clock.advance(rt.policy.notice_window)  # type: ignore[attr-defined]
    (notice_id,) = batch_notices(rt)
    with transaction(rt.sessions) as session:
        claim_notices(session, rt.clock(), rt.lease)
    assert send_notice(rt, notice_id) == NoticeStatus.SENT
    with rt.sessions() as session:
        return session.get_one(Notice, notice_id)


def test_the_trace_keeps_the_networks_other_contacts_as_fallback(stack: Stack) -> None:
    done = stack.takedown("trace", "--json", URL)
    assert done.returncode == 0, done.stderr
    assert '"fallback": [\n    "noc@hosta.example"\n  ]' in done.stdout


def test_a_bounced_desk_hands_the_workflow_to_the_fallback_then_the_upstream(
    stack: Stack, rt: Runtime
) -> None:
    case_id = stack.case(URL).id
    with rt.sessions() as session:
        first = session.scalars(select(Notice)).one()
    take_message(rt, returned("postfix-bounce.eml", first, case_id), "file")
    case = stack.case(URL)
    assert (case.round, case.steps_done, case.recipients) == (1, 0, NOC)
    fell = [e.detail for e in stack.events(case_id) if e.kind == "contact_fallback"]
    assert fell == [{"from": DESK, "to": [NOC], "round": 1}]
    act_cases(rt, [case_id])
    to_noc = send_owed(rt)
    # A first notice of its own thread: the fallback never saw the one that bounced.
    assert (to_noc.kind, to_noc.recipients, to_noc.in_reply_to) == ("notice", NOC, None)
    # The fallback bounces too: nothing left of the host, the upstream is next, once.
    bounce = returned("postfix-bounce.eml", to_noc, case_id).replace(DESK.encode(), NOC.encode())
    take_message(rt, bounce, "file")
    assert [e.kind for e in stack.events(case_id)].count("contact_fallback") == 1
    assert [e.kind for e in stack.events(case_id)].count("escalated_after_refusal") == 1
    act_cases(rt, [case_id])
    with rt.sessions() as session:
        owed = session.execute(
            select(NoticeItem.round, NoticeItem.step, NoticeItem.recipients).where(
                NoticeItem.notice_id.is_(None)
            )
        ).all()
    assert owed == [(1, 2, UPSTREAM)]


def test_a_new_case_for_a_dead_desk_goes_to_its_fallback_at_once(stack: Stack, rt: Runtime) -> None:
    with rt.sessions() as session:
        first = session.scalars(select(Notice)).one()
    take_message(rt, returned("postfix-bounce.eml", first, stack.case(URL).id), "file")
    other = "http://files.hosta.test/2"
    stack.world.put_content(other)
    case_id = stack.report(other)[0]["id"]
    trace_cases(rt, [case_id])
    act_cases(rt, [case_id])
    (due,) = [e.detail for e in stack.events(case_id) if e.kind == "step_due"]
    assert (due["recipients"], due["left_out"], due["fallback"]) == (NOC, [DESK], True)
