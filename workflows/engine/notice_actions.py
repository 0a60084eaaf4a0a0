"""What a supervisor decides about a notice whose delivery is uncertain.

A notice turns uncertain when its worker died mid-send or the relay fell silent after the
message data: it may have left or not, so the engine never resends it by itself
(sending.py). A supervisor who checked with the recipient or the relay's log settles it:

    sent     as if the relay had accepted it: sent_at now, its cases' first notice stamped
    resend   pending and due now, never begun: the sweep claims it afresh and sends it

Either is a compare-and-set on the status (uncertain → …), so two people deciding at once
cannot both win, and an event by the supervisor on each of its cases. A resent notice keeps
its Message-ID: a recipient that did get the first copy sees the same message again, and
its mail system can tell it is one (RFC 5322 §3.6.4).

A notice to a web-form desk (TAKEDOWN_FORMS) is a task instead: an analyst pastes its text
into the provider's form and marks it submitted (`submit_form`, form → sent by
compare-and-set); from then on the workflow goes on as after a sent notice, its next step
counting from the submission.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from workflows.config.forms import FormDirectory
from workflows.engine.actions import apply_values, check_text
from workflows.engine.sending import settle
from workflows.errors import BadValue, Conflict, NotFound
from workflows.kinds import CaseState, EventKind, NoticeStatus
from workflows.store.cases import record
from workflows.store.models import Notice, NoticeItem, User

OUTCOMES = ("sent", "resend")


def resolve(
    session: Session,
    notice_id: int,
    user: User,
    outcome: str,
    *,
    now: dt.datetime,
    reason: str | None = None,
) -> Notice:
    """Settle an uncertain notice as sent, or put it back to be sent again (see above)."""
    if outcome not in OUTCOMES:
        raise BadValue("outcome", f"{outcome[:20]!r} is not one of {', '.join(OUTCOMES)}")
    check_text("reason", reason)
    decided = {"outcome": outcome, "reason": reason}
    notice = session.get(Notice, notice_id)
    if notice is None:
        raise NotFound(f"no notice {notice_id}")
    if outcome == "resend" and not notice.recipients:
        raise Conflict(f"notice {notice_id} was erased by the retention policy: it cannot be sent")
    values: dict[str, Any] = {"status": NoticeStatus.SENT, "claimed_until": None}
    if outcome == "resend":
        # send_started_at cleared: the run that claims it next owns a fresh, whole attempt.
        values = {
            "status": NoticeStatus.PENDING,
            "due_at": now,
            "send_started_at": None,
            "claimed_until": None,
        }
    changed = session.execute(
        update(Notice)
        .where(Notice.id == notice_id, Notice.status == NoticeStatus.UNCERTAIN)
        .values(**values)
    )
    session.refresh(notice)
    if getattr(changed, "rowcount", 0) != 1:
        raise Conflict(f"notice {notice_id} is {notice.status}, not uncertain")
    if outcome == "sent":
        settle(
            session,
            notice,
            NoticeStatus.SENT,
            now,
            None,
            actor=user.name,
            outcome=outcome,
            reason=reason,
        )
        return notice
    for case_id in cases_of(session, [notice.id])[notice.id]:
        record(
            session,
            case_id,
            EventKind.NOTICE_RESEND,
            now,
            user.name,
            notice=notice.id,
            kind_of=notice.kind,
            to=notice.recipients,
            message_id=notice.message_id,
            **decided,
        )
    return notice


def submit_form(
    session: Session,
    notice_id: int,
    user: User,
    *,
    now: dt.datetime,
    reference: str | None = None,
    forms: FormDirectory | None = None,
) -> Notice:
    """Mark a web-form task submitted by USER (REFERENCE: the provider's ticket, if any);
    its cases' workflows go on as after a sent notice. FORMS: the directory, for the name."""
    check_text("reference", reference)
    notice = session.get(Notice, notice_id)
    if notice is None:
        raise NotFound(f"no notice {notice_id}")
    changed = session.execute(
        update(Notice)
        .where(Notice.id == notice_id, Notice.status == NoticeStatus.FORM)
        .values(status=NoticeStatus.SENT, claimed_until=None)
    )
    session.refresh(notice)
    if getattr(changed, "rowcount", 0) != 1:
        raise Conflict(f"notice {notice_id} is {notice.status}, not a web form to submit")
    desk = forms.by_url(notice.recipients) if forms is not None else None
    settle(
        session,
        notice,
        NoticeStatus.SENT,
        now,
        None,
        actor=user.name,
        event=EventKind.FORM_SUBMITTED,
        reference=reference,
        name=desk.name if desk else None,
    )
    # Its next step counts from now: the cases work their steps out at once.
    for case_id in cases_of(session, [notice.id])[notice.id]:
        apply_values(
            session,
            case_id,
            lambda case: {"due_at": now} if case.state == CaseState.ACTIVE else None,
        )
    return notice


def form_tasks(session: Session, limit: int = 100) -> list[Notice]:
    """Return the web-form tasks waiting for an analyst, oldest first."""
    return list(
        session.scalars(
            select(Notice)
            .where(Notice.status == NoticeStatus.FORM)
            .order_by(Notice.id)
            .limit(limit)
        )
    )


def cases_of(session: Session, notice_ids: Sequence[int]) -> dict[int, list[int]]:
    """Return the ids of the cases each notice lists, in the order it lists them."""
    found: dict[int, list[int]] = defaultdict(list)
    rows = session.execute(
        select(NoticeItem.notice_id, NoticeItem.case_id)
        .where(NoticeItem.notice_id.in_(notice_ids))
        .order_by(NoticeItem.id)
    )
    for notice_id, case_id in rows:
        if notice_id is not None:
            found[notice_id].append(case_id)
    return found


def count_uncertain(session: Session) -> int:
    """Return how many notices wait for a supervisor's decision."""
    waiting = select(func.count()).select_from(Notice)
    return session.scalar(waiting.where(Notice.status == NoticeStatus.UNCERTAIN)) or 0
