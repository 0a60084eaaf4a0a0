"""Sending the outbox's notices, each at most once, and what each outcome does to the cases.

send_notice    SENDING (claimed by the sweep) → send_started_at set by compare-and-set,
               the claim renewed for a whole lease → SMTP → SENT | PENDING (4xx, backoff)
               | FAILED (5xx: the cases move on) | UNCERTAIN (lost after the whole
               message went out: never resent; a supervisor settles it as sent or has
               it resent, workflows/notice_actions.py). A run whose claim ran out
               meanwhile changes nothing, unless it learnt that a notice nobody is
               sending now (uncertain, or pending again to be resent) was sent.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from workflows.config.settings import VERP_TOKEN
from workflows.core.policy import Step, trace_retry_delay
from workflows.core.steps import next_step, past_party, step_due_at
from workflows.engine.metrics import timed
from workflows.engine.outbox import notice_request
from workflows.engine.runtime import Runtime
from workflows.errors import ConfigError
from workflows.kinds import CaseState, EventKind, NoticeStatus, Party
from workflows.notify.mailer import Delivery
from workflows.notify.notices import RenderedNotice, build_message
from workflows.store.cases import SYSTEM, record, record_each, release
from workflows.store.db import transaction
from workflows.store.models import Case, DeadRecipient, Notice, NoticeItem

log = logging.getLogger(__name__)
RECORD_ATTEMPTS = 4  # writes of a known outcome tried before it is left to the sweep
MOVE_ON_ATTEMPTS = 5  # compare-and-set tries of one refusal on a case others are changing


def send_notice(rt: Runtime, notice_id: int) -> str:
    """Send one claimed notice at most once; return its new status."""
    now = rt.clock()
    with transaction(rt.sessions) as session:
        begun = _begin(session, rt, notice_id, now)
    if isinstance(begun, str):
        return begun
    message, token = begun
    with timed("send") as timer:
        delivery = rt.relay.send(message, return_path(rt, token))
        timer.set(delivery.status)
    for attempt in range(1, RECORD_ATTEMPTS + 1):
        try:
            return _record_outcome(rt, notice_id, now, delivery)
        except OperationalError:
            # Only this run knows the outcome; given up, the sweep would have to call a
            # delivered notice uncertain. A dropped connection is worth a few tries.
            if attempt == RECORD_ATTEMPTS:
                raise
            log.warning("notice %d: could not record its outcome (try %d)", notice_id, attempt)
            time.sleep(0.25 * 2**attempt)
    raise AssertionError("unreachable")


def return_path(rt: Runtime, token: str | None) -> str | None:
    """Return a notice's own envelope sender (VERP) from its token; None: the From address."""
    pattern = rt.settings.return_path
    if pattern is None or not token:
        return None
    return pattern.replace(VERP_TOKEN, token)


def _record_outcome(rt: Runtime, notice_id: int, started: dt.datetime, delivery: Delivery) -> str:
    """Write one delivery's outcome, if this run still owns the notice."""
    with transaction(rt.sessions) as session:
        ours = session.scalars(
            select(Notice)
            .where(
                Notice.id == notice_id,
                Notice.status == NoticeStatus.SENDING,
                Notice.send_started_at == started,
            )
            .with_for_update()
        ).first()
        if ours is None:
            notice = session.get_one(Notice, notice_id, with_for_update=True)
            return _settled_meanwhile(session, notice, delivery, rt)
        return _deliver(session, rt, ours, delivery, rt.clock())


def _begin(
    session: Session, rt: Runtime, notice_id: int, now: dt.datetime
) -> tuple[EmailMessage, str | None] | str:
    """Mark a claimed notice begun and return its message and return-path token, or the
    status it keeps instead."""
    notice = session.get(Notice, notice_id)
    if notice is None or notice.status != NoticeStatus.SENDING:
        return notice.status if notice else "missing"
    if notice.send_started_at is not None:
        if notice.claimed_until is not None and notice.claimed_until > now:
            return NoticeStatus.SENDING  # a redelivered task: the run that began is still on
        # The run that began the SMTP conversation died: it may have been sent.
        settle(session, notice, NoticeStatus.UNCERTAIN, now, None)
        return NoticeStatus.UNCERTAIN
    try:
        # Built before the start mark: a message that cannot be built was never sent.
        message = message_of(session, notice, rt)
    except (ValueError, ConfigError) as error:
        failed = Delivery("permanent", None, f"cannot build the message: {error}", {})
        settle(session, notice, NoticeStatus.FAILED, now, failed)
        return NoticeStatus.FAILED
    started = session.execute(
        update(Notice)
        .where(
            Notice.id == notice_id,
            Notice.send_started_at.is_(None),
            Notice.status == NoticeStatus.SENDING,
        )
        # The lease runs from now, not from the claim: a task that waited in the queue
        # still gets a whole lease for the conversation before the sweep judges it dead.
        .values(
            send_started_at=now,
            attempts=Notice.attempts + 1,
            claimed_until=now + dt.timedelta(seconds=rt.lease),
        )
    )
    if getattr(started, "rowcount", 0) != 1:
        return NoticeStatus.SENDING
    return message, notice.return_token


def _settled_meanwhile(session: Session, notice: Notice, delivery: Delivery, rt: Runtime) -> str:
    """Keep what was decided while the send outlived its claim, unless it is now known sent."""
    # Pending again: a supervisor asked for the uncertain notice to be resent and no run has
    # claimed it yet. It went out after all, so the resend would deliver it twice.
    nobody_sending = (NoticeStatus.UNCERTAIN, NoticeStatus.PENDING)
    if delivery.status == "sent" and notice.status in nobody_sending:
        settle(
            session, notice, NoticeStatus.SENT, rt.clock(), delivery, workflows=rt.policy.workflows
        )
        return NoticeStatus.SENT
    log.warning(
        "notice %d became %s while it was being sent; its outcome (%s: %s) changes nothing",
        notice.id,
        notice.status,
        delivery.status,
        delivery.reply,
    )
    return notice.status


def message_of(session: Session, notice: Notice, rt: Runtime) -> EmailMessage:
    """Rebuild the e-mail from the stored rendering (what is sent is what was stored)."""
    case_ids = _case_ids(session, notice.id)
    cases = {c.id: c for c in session.scalars(select(Case).where(Case.id.in_(case_ids)))}
    request = notice_request(rt, notice, [cases[i] for i in case_ids])
    rendered = RenderedNotice(notice.subject, notice.body_text, notice.body_html)
    return build_message(request, rendered, (notice.xarf or {}).get("reports") or [])


def _deliver(
    session: Session, rt: Runtime, notice: Notice, delivery: Delivery, now: dt.datetime
) -> str:
    """Record a delivery attempt's outcome on the notice and its cases."""
    if delivery.status == "sent":
        settle(session, notice, NoticeStatus.SENT, now, delivery, workflows=rt.policy.workflows)
        return NoticeStatus.SENT
    if delivery.status == "uncertain":
        settle(session, notice, NoticeStatus.UNCERTAIN, now, delivery)
        return NoticeStatus.UNCERTAIN
    if delivery.status == "transient":
        _defer(session, rt, notice, delivery, now)
        return NoticeStatus.PENDING
    settle(session, notice, NoticeStatus.FAILED, now, delivery)
    refused = session.scalars(
        select(NoticeItem).where(NoticeItem.notice_id == notice.id).order_by(NoticeItem.id)
    )
    for item in refused:
        move_on(session, rt, item, now, delivery.reply)
    return NoticeStatus.FAILED


def _defer(
    session: Session, rt: Runtime, notice: Notice, delivery: Delivery, now: dt.datetime
) -> None:
    """Put NOTICE back to be sent again after a backoff, and tell its cases why."""
    # The policy's retry backoff (trace_retry) paces notices as it paces traces: with the
    # shipped policy 1 minute, doubling, at most an hour; seconds in the tests and the demo.
    delay = trace_retry_delay(rt.policy, max(notice.attempts - 1, 0), rt.rand)
    notice.status, notice.send_started_at = NoticeStatus.PENDING, None
    notice.due_at, notice.claimed_until = now + dt.timedelta(seconds=delay), None
    notice.smtp_code, notice.smtp_reply = delivery.code, delivery.reply
    for case_id in _case_ids(session, notice.id):
        record(
            session,
            case_id,
            EventKind.NOTICE_DEFERRED,
            now,
            notice=notice.id,
            kind_of=notice.kind,
            to=notice.recipients,
            code=delivery.code,
            reply=delivery.reply,
            attempts=notice.attempts,
            retry_in=round(delay, 3),
        )


def settle(
    session: Session,
    notice: Notice,
    status: str,
    now: dt.datetime,
    delivery: Delivery | None,
    *,
    actor: str = SYSTEM,
    event: EventKind | None = None,
    workflows: Mapping[str, Sequence[Step]] | None = None,
    **detail: Any,
) -> None:
    """Give NOTICE its final status and tell each of its cases (DETAIL: more for the events;
    EVENT: their kind, when not the status's own). Sent, the steps that waited for it fall
    due by the policy's WORKFLOWS (next_steps_after)."""
    notice.status, notice.claimed_until = status, None
    if delivery is not None:
        notice.smtp_code, notice.smtp_reply = delivery.code, delivery.reply
    if status == NoticeStatus.SENT:
        notice.sent_at = now
    kinds: dict[str, EventKind] = {
        NoticeStatus.SENT: EventKind.NOTICE_SENT,
        NoticeStatus.FAILED: EventKind.NOTICE_FAILED,
    }
    kind = event or kinds.get(str(status), EventKind.NOTICE_UNCERTAIN)
    refused = dict(delivery.refused) if delivery and delivery.refused else None
    case_ids = _case_ids(session, notice.id)
    # One statement each for all the notice's cases: per case, they were most of the time
    # a big notice took to settle.
    record_each(
        session,
        case_ids,
        kind,
        now,
        actor,
        notice=notice.id,
        kind_of=notice.kind,
        to=notice.recipients,
        message_id=notice.message_id,
        reply=delivery.reply if delivery else None,
        refused={k: list(v) for k, v in refused.items()} if refused else None,
        **detail,
    )
    if status == NoticeStatus.SENT and case_ids:
        session.execute(
            update(Case)
            .where(Case.id.in_(case_ids), Case.first_notice_at.is_(None))
            .values(first_notice_at=now)
        )
        next_steps_after(session, notice, now, workflows)


def next_steps_after(
    session: Session,
    notice: Notice,
    sent_at: dt.datetime,
    workflows: Mapping[str, Sequence[Step]] | None,
) -> None:
    """Set when the step after NOTICE's falls due for each case that waited for it to be
    sent (core.steps: waiting): the policy's gap after SENT_AT, not before its time from
    the case's routing. Without the policy's WORKFLOWS (an analyst settling it), at once:
    the steps task works it out. One statement for all the notice's cases."""
    rows = session.execute(
        select(
            Case.id,
            Case.route,
            Case.round,
            Case.steps_done,
            Case.routed_at,
            Case.steps_from,
            Case.due_at,
            NoticeItem.step,
            NoticeItem.round,
        )
        .join(NoticeItem, NoticeItem.case_id == Case.id)
        .where(
            NoticeItem.notice_id == notice.id,
            Case.state == CaseState.ACTIVE,
            Case.step_due_at.is_(None),
        )
    ).all()
    changes: list[dict[str, Any]] = []
    for case_id, route, round_, done, routed_at, steps_from, due_at, step, item_round in rows:
        if item_round != round_ or done != step + 1:
            continue  # not the step its workflow waits on
        at = sent_at
        if workflows is not None:
            steps = workflows.get(route or "", ())
            if done >= len(steps):
                continue  # the workflow ends with this notice
            clock = (steps_from or routed_at or sent_at).timestamp()
            then = step_due_at(steps[done], clock, (steps[step], sent_at.timestamp()))
            at = dt.datetime.fromtimestamp(then, dt.UTC)
        changes.append(
            {"case": case_id, "at": at, "due": at if due_at is None else min(due_at, at)}
        )
    if changes:
        session.connection().execute(
            update(Case)
            .where(Case.id == bindparam("case"), Case.step_due_at.is_(None))
            .values(step_due_at=bindparam("at"), due_at=bindparam("due")),
            changes,
        )


def _fallback(session: Session, case: Case, refused: NoticeItem, now: dt.datetime) -> list[str]:
    """Return the host's fallback contacts (the trace's other roles) a refused notice to the
    host leaves to try: none that refused, none dead, none the case wrote to already."""
    if refused.party != Party.HOST:
        return []
    tried = {
        a.strip().lower()
        for a in f"{refused.recipients},{case.recipients or ''}".split(",")
        if a.strip()
    }
    candidates = [a for a in (case.trace or {}).get("fallback") or [] if a.lower() not in tried]
    if not candidates:
        return []
    dead = set(
        session.scalars(
            select(DeadRecipient.address).where(
                DeadRecipient.address.in_([a.lower() for a in candidates]),
                DeadRecipient.until > now,
            )
        )
    )
    return [a for a in candidates if a.lower() not in dead]


def _moved_past(session: Session, refused: NoticeItem) -> bool:
    """Tell whether a later step of the refused item's case is owed to another party."""
    later = select(NoticeItem.id).where(
        NoticeItem.case_id == refused.case_id,
        NoticeItem.round == refused.round,
        NoticeItem.step > refused.step,
        NoticeItem.party != refused.party,
    )
    return session.scalars(later.limit(1)).first() is not None


def _case_ids(session: Session, notice_id: int) -> list[int]:
    return list(
        session.scalars(
            select(NoticeItem.case_id)
            .where(NoticeItem.notice_id == notice_id)
            .order_by(NoticeItem.id)
        )
    )


def move_on(
    session: Session, rt: Runtime, refused: NoticeItem, now: dt.datetime, reply: str
) -> bool:
    """After a party refused a case's step, bring the next step to another party forward.

    A compare-and-set on the case's version, as every state change: a refusal that learns
    of a late bounce must not undo what an analyst did meanwhile (a close, a hold). Return
    whether the case changed.
    """
    if refused.step < 0:
        return False  # a one-off notice by an analyst (one_off.py): no workflow step to pass
    for _ in range(MOVE_ON_ATTEMPTS):
        case = session.get(Case, refused.case_id, populate_existing=True)
        if case is None or case.state != CaseState.ACTIVE or case.round != refused.round:
            return False  # closed, held, or the content hopped: the refusal concerns the past
        values, event = _next_party(session, rt, case, refused, now, reply)
        # release: compare-and-set, and the claim dropped. A task holding the case now
        # (a re-check) will lose its own write; its claim must not keep the sweep from
        # the step just brought forward for the whole lease.
        if release(session, case, **values):
            if event is not None:
                record(session, case.id, event[0], now, **event[1])
            return True
    log.warning("case %d changed under every try to move it on; the sweep retries", refused.case_id)
    return False


def _next_party(
    session: Session, rt: Runtime, case: Case, refused: NoticeItem, now: dt.datetime, reply: str
) -> tuple[dict[str, Any], tuple[EventKind, dict[str, Any]] | None]:
    """Decide what a refusal of REFUSED does to CASE: its new values and event."""
    fallback = _fallback(session, case, refused, now)
    if fallback and not _moved_past(session, refused):
        # The host's abuse desk cannot be reached: its network's other contacts (noc,
        # technical…) get the workflow afresh, in a new round, before the upstream does.
        values = {
            "round": case.round + 1,
            "routed_at": now,
            "steps_from": None,
            "steps_done": 0,
            "recipients": ",".join(fallback),
            "due_at": now,
        }
        detail = {"from": refused.recipients, "to": fallback, "round": case.round + 1}
        return values, (EventKind.CONTACT_FALLBACK, detail)
    done = past_party(rt.policy.workflows[case.route or ""], case.steps_done, refused.party)
    step = next_step(rt.policy, case.route or "", done)
    if step is None and _moved_past(session, refused):
        # A refusal arriving late (after retries): the workflow already went on to another
        # party, whose answer the case is waiting for. Only the record changes.
        return {"steps_done": done}, None
    if step is not None:
        values = {
            # The steps' clock, not routed_at (a fact: the case's routing time): the step
            # falls due now, and routed_at never shows a time before the report.
            "steps_from": now - dt.timedelta(seconds=step.after),
            "due_at": now,
            "steps_done": done,
        }
        detail = {
            "step": step.index,
            "send": step.send,
            "to": step.to,
            "skipped": done - case.steps_done,
        }
        return values, (EventKind.ESCALATED_AFTER_REFUSAL, detail)
    values = {
        "state": CaseState.NEEDS_ANALYST,
        "last_error": f"notice refused: {reply}",
        "due_at": now + dt.timedelta(seconds=rt.policy.retrace_every),
        "steps_done": done,
    }
    return values, (EventKind.NEEDS_ANALYST, {"reason": f"notice refused: {reply}"})
