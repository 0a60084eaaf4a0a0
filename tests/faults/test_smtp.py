"""Fault injection: the mail relay refuses, defers, drops and stalls, at scale.

200 URLs over 20 hosts, a real worker, and faults at the real SMTP server, per abuse desk:

    hosts 0, 1, 14            421, and hosts 2, 3 and the upstream 451, for their first one
                              or two attempts, then healed: every step owed to them is
                              delivered exactly once, after retries
    hosts 4, 5                550 for ever: the refusal is recorded and each case moves on
                              to its escalation (the upstream, which never acts: it stays
                              active, waiting)
    host 6                    connection dropped once the message data arrived, and
    host 7                    silence after the data (the relay queued it): the notice is
                              uncertain and its data reaches the relay once, never again
    host 8                    silence at RCPT TO, and the first 2 connections get no
                              greeting: the engine times out and retries (nothing left yet)

The engine's SMTP timeout is 3 s here (`?timeout=3s`); the server stalls for longer.
Removal is expected for every host but 4 and 5 (refused) and 18 and 19 (never act).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable

from conftest import FAULT_FIGURES
from faultcheck import check
from faultstack import HOSTS, NEVER, fault_world
from faultstack import fault_stack as fault_stack  # the `stack` fixture
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from stack import Stack

from workflows.kinds import CaseState, NoticeStatus
from workflows.sim.smtp import GREETING
from workflows.store.models import Case, Event, Notice, NoticeItem

UPSTREAM = "abuse@upstream.example"
DEFERRED = {0: ("421", 2), 1: ("421", 2), 14: ("421", 1), 2: ("451", 2), 3: ("451", 2)}
REFUSED = {4, 5}
LOST = {6: "drop", 7: "stall-data"}  # after the data: uncertain
STALLED = {8: "stall-rcpt"}  # before the data: retried
UPSTREAM_FAULT = ("451", 2)
GREETING_STALLS = 2
STAYS_OPEN = REFUSED | NEVER
UNFINISHED = (NoticeStatus.PENDING, NoticeStatus.SENDING)
Step = tuple[int, int, int]  # (case, round, step)


def desk(host: int) -> str:
    return f"abuse@host{host}.example"


def host_of(case: Case) -> int:
    return int(case.host.split("host")[1].split(".")[0])


def inject(stack: Stack) -> None:
    """Set every fault at the relay, and give the engine a short SMTP timeout."""
    for host, (fault, times) in DEFERRED.items():
        stack.smtp.set_fault(desk(host), fault, times)
    for host in REFUSED:
        stack.smtp.set_fault(desk(host), "550")
    for host, fault in {**LOST, **STALLED}.items():
        stack.smtp.set_fault(desk(host), fault, times=1)
    stack.smtp.set_fault(UPSTREAM, *UPSTREAM_FAULT)
    stack.smtp.stall_greetings(GREETING_STALLS)
    stack.smtp.stall_seconds = 30  # far longer than the engine waits
    stack.env["TAKEDOWN_SMTP_URL"] = stack.smtp.url + "?timeout=3s"
    # No worker dies here: the claim must outlast a send that waits out the timeout.
    stack.env["TAKEDOWN_CLAIM_LEASE"] = "15s"


def drained(stack: Stack) -> bool:
    """Tell whether every case reached its expected end and no notice is still owed."""
    for case in stack.cases():
        if host_of(case) in STAYS_OPEN:
            if case.state != CaseState.ACTIVE or case.steps_done < 3:
                return False
        elif case.state != CaseState.REMOVED:
            return False
    with stack.session() as session:
        owed = session.scalar(
            select(func.count()).select_from(Notice).where(Notice.status.in_(UNFINISHED))
        )
        unbatched = session.scalar(
            select(func.count()).select_from(NoticeItem).where(NoticeItem.notice_id.is_(None))
        )
    return owed == 0 and unbatched == 0


def delivered_steps(
    stack: Stack, notices: dict[int, Notice], items: list[NoticeItem]
) -> Counter[Step]:
    """Count deliveries per (case, round, step), from what the SMTP server accepted."""
    accepted = stack.smtp.count_by_message_id()
    return Counter(
        {
            (i.case_id, i.round, i.step): accepted[notices[i.notice_id].message_id]
            for i in items
            if i.notice_id is not None
        }
    )


def events_of(session: Session, case_ids: Iterable[int]) -> dict[int, list[Event]]:
    """Return each case's events in order."""
    found: dict[int, list[Event]] = {case_id: [] for case_id in case_ids}
    for event in session.scalars(select(Event).order_by(Event.id)):
        found[event.case_id].append(event)
    return found


def test_smtp_faults_defer_refuse_or_leave_uncertain_and_never_send_twice(stack: Stack) -> None:
    _, urls = fault_world()
    inject(stack)
    stack.report(*urls)
    started = time.monotonic()
    stack.start_worker()
    stack.wait_for(lambda: drained(stack), timeout=240, what="every case to reach its end")
    drain = time.monotonic() - started
    with stack.session() as session:
        cases = {c.id: c for c in session.scalars(select(Case))}
        notices = {n.id: n for n in session.scalars(select(Notice))}
        items = list(session.scalars(select(NoticeItem)))
        events = events_of(session, cases)
    hit = {"notice_deferred", "notice_failed", "notice_uncertain"}
    interrupted = {i for i, evs in events.items() if any(e.kind in hit for e in evs)}
    figures = check(stack, "SMTP 421/451/550, drops, stalls", urls, interrupted, drain, 2)
    FAULT_FIGURES.append(figures.line())
    assert (figures.duplicates, figures.lost, figures.early) == (0, 0, 0)
    assert figures.recovered == len(interrupted) > 0
    steps = delivered_steps(stack, notices, items)
    assert_faults_fired(stack, notices)
    assert_each_message_reached_the_relay_at_most_once(stack, notices)
    assert_final_states(cases)
    assert_retries_match_the_transient_faults(stack, notices, events)
    assert_deferred_desks_got_each_step_once(notices, items, steps)
    assert_refused_cases_moved_on(stack, cases, notices, items, events, steps)
    assert_lost_notices_are_uncertain(stack, cases, notices, items, events)


def assert_faults_fired(stack: Stack, notices: dict[int, Notice]) -> None:
    """Every fault struck, and as often as it was set to (550: once per notice)."""
    fired = Counter((f.fault, f.address) for f in stack.smtp.fired())
    expected = Counter({(fault, desk(h)): times for h, (fault, times) in DEFERRED.items()})
    expected.update({(fault, desk(h)): 1 for h, fault in {**LOST, **STALLED}.items()})
    expected[UPSTREAM_FAULT[0], UPSTREAM] = UPSTREAM_FAULT[1]
    expected[GREETING, ""] = GREETING_STALLS
    for host in REFUSED:
        refused = [n for n in notices.values() if n.recipients == desk(host)]
        assert refused and all(n.status == NoticeStatus.FAILED for n in refused), [
            (n.id, n.kind, n.status, n.attempts, n.smtp_reply) for n in refused
        ]
        expected["550", desk(host)] = len(refused)
    assert fired == expected


def assert_each_message_reached_the_relay_at_most_once(
    stack: Stack, notices: dict[int, Notice]
) -> None:
    """Sent: its data arrived once and was kept; uncertain: arrived once; failed: never."""
    transfers, accepted = stack.smtp.transfers(), stack.smtp.count_by_message_id()
    assert set(transfers) <= {n.message_id for n in notices.values()}
    for notice in notices.values():
        arrived = transfers[notice.message_id]
        if notice.status == NoticeStatus.SENT:
            assert (arrived, accepted[notice.message_id]) == (1, 1), notice.id
        elif notice.status == NoticeStatus.UNCERTAIN:
            assert arrived == 1 and accepted[notice.message_id] <= 1, notice.id
        else:
            assert (notice.status, arrived) == (NoticeStatus.FAILED, 0), notice.id


def assert_final_states(cases: dict[int, Case]) -> None:
    """Removed everywhere but at the refused and the never-acting desks: active, waiting."""
    by_host: dict[int, set[str]] = {h: set() for h in range(HOSTS)}
    for case in cases.values():
        by_host[host_of(case)].add(case.state)
        if host_of(case) in STAYS_OPEN:
            assert case.due_at is not None and case.steps_done == 3, case.id
    assert by_host == {
        h: {CaseState.ACTIVE if h in STAYS_OPEN else CaseState.REMOVED} for h in range(HOSTS)
    }


def assert_retries_match_the_transient_faults(
    stack: Stack, notices: dict[int, Notice], events: dict[int, list[Event]]
) -> None:
    """Every 421, 451 and stall before the data cost one retry, and each case was told."""
    transient = {"421", "451", "stall-rcpt", GREETING}
    assert sum(n.attempts - 1 for n in notices.values()) == sum(
        1 for f in stack.smtp.fired() if f.fault in transient
    )
    for case_id, found in events.items():
        told = sum(1 for e in found if e.kind == "notice_deferred")
        listed = {e.detail["notice"] for e in found if e.kind.startswith("notice_") and e.detail}
        assert told == sum(notices[n].attempts - 1 for n in listed), case_id


def assert_deferred_desks_got_each_step_once(
    notices: dict[int, Notice], items: list[NoticeItem], steps: Counter[Step]
) -> None:
    """Each step owed to a desk that deferred or stalled was delivered exactly once."""
    for address in {desk(h) for h in [*DEFERRED, *STALLED]} | {UPSTREAM}:
        owed = [i for i in items if i.recipients == address]
        assert {i.step for i in owed} >= ({2} if address == UPSTREAM else {0}), address
        for item in owed:
            assert notices[item.notice_id or 0].status == NoticeStatus.SENT, item.id
            assert steps[item.case_id, item.round, item.step] == 1, item.id


def assert_refused_cases_moved_on(
    stack: Stack,
    cases: dict[int, Case],
    notices: dict[int, Notice],
    items: list[NoticeItem],
    events: dict[int, list[Event]],
    steps: Counter[Step],
) -> None:
    """550: refusal recorded, nothing reached the desk, the escalation went once instead."""
    for host in REFUSED:
        assert stack.smtp.messages_to(desk(host)) == []
    for case in cases.values():
        if host_of(case) not in REFUSED:
            continue
        own = {i.step: i for i in items if i.case_id == case.id}
        first = notices[own[0].notice_id or 0]
        assert (first.status, first.smtp_code) == (NoticeStatus.FAILED, 550), case.id
        assert own[2].recipients == UPSTREAM and steps[case.id, 0, 2] == 1, case.id
        if 1 in own:  # the chaser fell due before the refusal came back: refused as well
            assert notices[own[1].notice_id or 0].status == NoticeStatus.FAILED, case.id
        failed = [e.detail for e in events[case.id] if e.kind == "notice_failed"]
        assert failed and all("5.1.1 mailbox unavailable" in (d or {})["reply"] for d in failed)
        # Moved on by the refusal, unless the escalation was due before the refusal came.
        kinds = [e.kind for e in events[case.id]]
        escalated = next(
            k for k, e in enumerate(events[case.id]) if (e.detail or {}).get("send") == "escalation"
        )
        assert kinds.index("notice_failed") > escalated or (
            kinds[escalated] == "escalated_after_refusal"
        ), case.id


def assert_lost_notices_are_uncertain(
    stack: Stack,
    cases: dict[int, Case],
    notices: dict[int, Notice],
    items: list[NoticeItem],
    events: dict[int, list[Event]],
) -> None:
    """Lost after the data: uncertain, those notices only, and their cases still removed."""
    lost = {f.message_id: f.fault for f in stack.smtp.fired() if f.fault in LOST.values()}
    uncertain = {n.message_id: n for n in notices.values() if n.status == NoticeStatus.UNCERTAIN}
    assert set(uncertain) == set(lost) and len(lost) == len(LOST)
    accepted = stack.smtp.count_by_message_id()
    for message_id, notice in uncertain.items():
        assert accepted[message_id] == (1 if lost[message_id] == "stall-data" else 0)
        listed = [i.case_id for i in items if i.notice_id == notice.id]
        for case_id in listed:
            kinds = [e.kind for e in events[case_id]]
            assert kinds.count("notice_uncertain") == 1, case_id
            assert cases[case_id].state == CaseState.REMOVED, case_id
            if lost[message_id] == "drop":  # the desk never saw it: its other step did it
                assert any(
                    notices[i.notice_id].status == NoticeStatus.SENT
                    for i in items
                    if i.case_id == case_id and i.notice_id not in (None, notice.id)
                ), case_id
