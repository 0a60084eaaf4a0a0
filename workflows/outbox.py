"""The outbox: owed items become one notice per recipient per window, then are sent once.

batch_notices  unbatched items for one recipient and kind whose oldest has waited a
               `notice_window` → one Notice row (rendered, Message-ID fixed) per
               `max_notice_urls` URLs, stored before anything is sent
send_notice    SENDING (claimed by the sweep) → send_started_at set by compare-and-set
               → SMTP → SENT | PENDING (4xx, backoff) | FAILED (5xx: the cases move on)
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Sequence
from email.message import EmailMessage
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from workflows.errors import ConfigError
from workflows.mailer import Delivery, send_message
from workflows.models import Case, CaseState, Notice, NoticeItem, NoticeStatus
from workflows.notices import NoticeItem as MailItem
from workflows.notices import (
    NoticeRequest,
    RenderedNotice,
    build_message,
    language_for_country,
    make_message_id,
    render_notice,
)
from workflows.policy import next_step
from workflows.runtime import Runtime
from workflows.store import record, transaction
from workflows.xarf import xarf_report

FIRST_KINDS = ("notice", "referral")


def case_reference(case_id: int) -> str:
    """Return the reference shown to recipients for a case."""
    return f"TD-{case_id:06d}"


def batch_notices(rt: Runtime) -> list[int]:
    """Turn owed items into stored notices; return the new notices' ids."""
    now = rt.clock()
    ready_before = now - dt.timedelta(seconds=rt.policy.notice_window)
    created = []
    with transaction(rt.sessions) as session:
        items = session.scalars(
            select(NoticeItem)
            .where(NoticeItem.notice_id.is_(None))
            .order_by(NoticeItem.due_at, NoticeItem.id)
            .with_for_update(skip_locked=True)
        ).all()
        active = set(
            session.scalars(
                select(Case.id).where(
                    Case.id.in_({i.case_id for i in items}), Case.state == CaseState.ACTIVE
                )
            )
        )
        groups: dict[tuple[str, str], list[NoticeItem]] = defaultdict(list)
        for item in items:
            if item.case_id not in active:
                # Removed (or handed to an analyst) since the step fell due: say nothing.
                record(
                    session,
                    item.case_id,
                    "step_cancelled",
                    now,
                    step=item.step,
                    send=item.kind,
                    to=item.party,
                )
                session.delete(item)
                continue
            groups[(item.recipients, item.kind)].append(item)
        for (recipients, kind), group in groups.items():
            if group[0].due_at > ready_before:
                continue  # wait one window for more URLs owed to the same desk
            size = rt.policy.max_notice_urls
            for start in range(0, len(group), size):
                created.append(
                    _new_notice(session, rt, now, recipients, kind, group[start : start + size])
                )
    return created


def _new_notice(
    session: Session,
    rt: Runtime,
    now: dt.datetime,
    recipients: str,
    kind: str,
    items: Sequence[NoticeItem],
) -> int:
    """Store one rendered notice for ITEMS and attach them to it."""
    items = sorted(items, key=lambda item: item.id)  # the order message_of reloads them in
    cases = {
        c.id: c
        for c in session.scalars(select(Case).where(Case.id.in_([i.case_id for i in items])))
    }
    token = uuid.uuid4().hex[:16]
    notice = Notice(
        kind=kind,
        recipients=recipients,
        status=NoticeStatus.PENDING,
        message_id=f"<pending.{token}>",
        language="en",
        subject="",
        body_text="",
        body_html="",
        attempts=0,
        due_at=now,
        created_at=now,
    )
    session.add(notice)
    session.flush()
    notice.message_id = make_message_id(notice.id, _domain(rt), token)
    thread = _thread_of(session, items) if kind not in FIRST_KINDS else []
    request = NoticeRequest(
        kind=kind,
        recipients=tuple(recipients.split(",")),
        language=language_for_country(items[0].country),
        items=tuple(_mail_item(cases[i.case_id]) for i in items),
        sender=rt.settings.sender or "takedown@localhost",
        sender_name=rt.settings.sender_name,
        notice_ref=f"N-{notice.id:06d}",
        message_id=notice.message_id,
        in_reply_to=thread[0] if thread else None,
        references=tuple(thread),
        sent_at=now,
        network=cases[items[0].case_id].network,
        country=items[0].country,
    )
    rendered = render_notice(request, rt.templates)
    notice.language, notice.subject = request.language, rendered.subject
    notice.body_text, notice.body_html = rendered.text, rendered.html
    notice.in_reply_to, notice.references = request.in_reply_to, " ".join(thread) or None
    notice.xarf = {
        "reports": [
            xarf_report(
                item,
                reporter_org=rt.settings.sender_name,
                reporter_contact=request.sender,
                message_id=notice.message_id,
                country=request.country,
            )
            for item in request.items
        ]
    }
    for item in items:
        item.notice_id = notice.id
    return notice.id


def _mail_item(case: Case) -> MailItem:
    trace = case.trace or {}
    return MailItem(
        case_id=case.id,
        reference=case_reference(case.id),
        url=case.url,
        host=case.host,
        addresses=tuple(trace.get("addresses") or ()),
        category=case.category,
        reported_at=case.opened_at,
        first_notified_at=case.first_notice_at,
        content_sha256=case.content_hash,
    )


def _thread_of(session: Session, items: Sequence[NoticeItem]) -> list[str]:
    """Return the Message-IDs of the first notices these items' cases got (threading)."""
    ids = []
    for item in items:
        first = session.scalars(
            select(Notice.message_id)
            .join(NoticeItem, NoticeItem.notice_id == Notice.id)
            .where(
                NoticeItem.case_id == item.case_id,
                NoticeItem.round == item.round,
                NoticeItem.kind.in_(FIRST_KINDS),
            )
            .order_by(Notice.id)
            .limit(1)
        ).first()
        if first and first not in ids:
            ids.append(first)
    return ids[:20]


def _domain(rt: Runtime) -> str:
    sender = rt.settings.sender or "takedown@localhost"
    return sender.rpartition("@")[2] or "localhost"


def send_notice(rt: Runtime, notice_id: int) -> str:
    """Send one claimed notice at most once; return its new status."""
    now = rt.clock()
    with transaction(rt.sessions) as session:
        notice = session.get(Notice, notice_id)
        if notice is None or notice.status != NoticeStatus.SENDING:
            return notice.status if notice else "missing"
        if notice.send_started_at is not None:
            # An earlier run began the SMTP conversation and died: it may have been sent.
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
            .values(send_started_at=now, attempts=Notice.attempts + 1)
        )
        if getattr(started, "rowcount", 0) != 1:
            return NoticeStatus.SENDING
    delivery = send_message(message, rt.smtp)
    with transaction(rt.sessions) as session:
        notice = session.get_one(Notice, notice_id)
        return _deliver(session, rt, notice, delivery, rt.clock())


def message_of(session: Session, notice: Notice, rt: Runtime) -> EmailMessage:
    """Rebuild the e-mail from the stored rendering (what is sent is what was stored)."""
    case_ids = _case_ids(session, notice.id)
    cases = {c.id: c for c in session.scalars(select(Case).where(Case.id.in_(case_ids)))}
    request = NoticeRequest(
        kind=notice.kind,
        recipients=tuple(notice.recipients.split(",")),
        language=notice.language,
        items=tuple(_mail_item(cases[i]) for i in case_ids),
        sender=rt.settings.sender or "takedown@localhost",
        sender_name=rt.settings.sender_name,
        notice_ref=f"N-{notice.id:06d}",
        message_id=notice.message_id,
        in_reply_to=notice.in_reply_to,
        references=tuple((notice.references or "").split()),
        sent_at=notice.created_at,
    )
    rendered = RenderedNotice(notice.subject, notice.body_text, notice.body_html)
    return build_message(request, rendered, (notice.xarf or {}).get("reports") or [])


def _deliver(
    session: Session, rt: Runtime, notice: Notice, delivery: Delivery, now: dt.datetime
) -> str:
    """Record a delivery attempt's outcome on the notice and its cases."""
    if delivery.status == "sent":
        settle(session, notice, NoticeStatus.SENT, now, delivery)
        return NoticeStatus.SENT
    if delivery.status == "transient":
        delay = min(3600.0, 30.0 * 2 ** min(notice.attempts, 7)) * (0.5 + rt.rand() / 2)
        notice.status, notice.send_started_at = NoticeStatus.PENDING, None
        notice.due_at, notice.claimed_until = now + dt.timedelta(seconds=delay), None
        notice.smtp_code, notice.smtp_reply = delivery.code, delivery.reply
        return NoticeStatus.PENDING
    settle(session, notice, NoticeStatus.FAILED, now, delivery)
    party = (
        session.scalars(select(NoticeItem.party).where(NoticeItem.notice_id == notice.id)).first()
        or "host"
    )
    for case_id in _case_ids(session, notice.id):
        _move_on(session, rt, case_id, now, delivery.reply, party)
    return NoticeStatus.FAILED


def settle(
    session: Session, notice: Notice, status: str, now: dt.datetime, delivery: Delivery | None
) -> None:
    """Give NOTICE its final status and tell each of its cases."""
    notice.status, notice.claimed_until = status, None
    if delivery is not None:
        notice.smtp_code, notice.smtp_reply = delivery.code, delivery.reply
    if status == NoticeStatus.SENT:
        notice.sent_at = now
    kinds = {"sent": "notice_sent", "failed": "notice_failed"}
    kind = kinds.get(str(status), "notice_uncertain")
    refused = dict(delivery.refused) if delivery and delivery.refused else None
    for case_id in _case_ids(session, notice.id):
        record(
            session,
            case_id,
            kind,
            now,
            notice=notice.id,
            kind_of=notice.kind,
            to=notice.recipients,
            message_id=notice.message_id,
            reply=delivery.reply if delivery else None,
            refused={k: list(v) for k, v in refused.items()} if refused else None,
        )
        if status == NoticeStatus.SENT:
            session.execute(
                update(Case)
                .where(Case.id == case_id, Case.first_notice_at.is_(None))
                .values(first_notice_at=now)
            )


def _case_ids(session: Session, notice_id: int) -> list[int]:
    return list(
        session.scalars(
            select(NoticeItem.case_id)
            .where(NoticeItem.notice_id == notice_id)
            .order_by(NoticeItem.id)
        )
    )


def _move_on(
    session: Session, rt: Runtime, case_id: int, now: dt.datetime, reply: str, party: str
) -> None:
    """After PARTY refused, bring the next step to another party forward, or hand over."""
    case = session.get(Case, case_id)
    if case is None or case.state != CaseState.ACTIVE:
        return
    done = case.steps_done
    while (step := next_step(rt.policy, case.route or "", done)) is not None and step.to == party:
        done += 1  # more mail to the desk that refused it would only be refused again
    values: dict[str, Any]
    if step is not None:
        values = {
            "routed_at": now - dt.timedelta(seconds=step.after),
            "due_at": now,
            "steps_done": done,
        }
        record(
            session,
            case_id,
            "escalated_after_refusal",
            now,
            step=step.index,
            send=step.send,
            to=step.to,
            skipped=done - case.steps_done,
        )
    else:
        values = {
            "state": CaseState.NEEDS_ANALYST,
            "last_error": f"notice refused: {reply}",
            "due_at": now + dt.timedelta(seconds=rt.policy.retrace_every),
            "steps_done": done,
        }
        record(session, case_id, "needs_analyst", now, reason=f"notice refused: {reply}")
    session.execute(
        update(Case).where(Case.id == case_id).values(version=Case.version + 1, **values)
    )
