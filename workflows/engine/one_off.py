"""A one-off notice: an analyst tells an address of their choice about a case that needs one.

    send_one_off   NEEDS_ANALYST (unchanged) → one notice of KIND to TO listing the case's
                   URL, stored in the outbox (rendered, Message-ID fixed, pending, due now)
                   before anything is sent; the sweep claims it and sending.py sends it at
                   most once, as every notice

The case's state does not change: a one-off notice starts no workflow (no chaser follows,
nothing re-checks the URL for it), so the case stays with the analysts, who route it by
hand (hand_routing.py) when it is to be chased. Its outbox item belongs to the case's
current round with a negative step (-1, -2, …): a workflow's steps count from 0, so the
unique (case, round, step) key of a one-off never takes a step's, a later routing by hand
starts a new round, and a refusal moves no workflow on (sending.move_on). The item is
attached to its notice at once, so the batcher, which drops the items of cases that are not
active, never sees it.

Never twice: the same kind to the same address for the same case while an earlier one is
pending, being sent, sent or uncertain is refused (409); after a refusal it may go again.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from workflows.core.emails import email_problem
from workflows.core.figures import iso
from workflows.engine.actions import apply_change, check_text
from workflows.engine.outbox import store_notice
from workflows.engine.runtime import Runtime
from workflows.errors import BadValue, Conflict
from workflows.kinds import CaseState, EventKind, NoticeKind, NoticeStatus
from workflows.store.cases import record
from workflows.store.models import Case, DeadRecipient, Notice, NoticeItem, User

ONE_OFF_KINDS = (NoticeKind.NOTICE, NoticeKind.REFERRAL, NoticeKind.ESCALATION)
PARTY = "analyst"  # the item's party: an address the analyst chose, not a workflow's
# What stops the same notice going twice: an earlier one not refused.
_STANDING = (NoticeStatus.PENDING, NoticeStatus.SENDING, NoticeStatus.SENT, NoticeStatus.UNCERTAIN)


def check_kind(kind: str) -> NoticeKind:
    """Return KIND if a one-off notice may be of it, else raise BadValue naming `kind`."""
    if kind not in ONE_OFF_KINDS:
        allowed = ", ".join(ONE_OFF_KINDS)
        raise BadValue("kind", f"{kind[:20]!r} is not one of {allowed}")
    return NoticeKind(kind)


def check_address(to: str) -> str:
    """Return TO stripped if it is a plain address (core/emails.py), else raise BadValue."""
    address = to.strip()
    problem = email_problem(address)
    if problem:
        raise BadValue("to", f"{address[:80]!r} {problem}")
    return address


def send_one_off(
    session: Session,
    rt: Runtime,
    case_id: int,
    user: User,
    *,
    to: str,
    kind: str = NoticeKind.NOTICE,
    now: dt.datetime,
    reason: str | None = None,
) -> Notice:
    """Store a notice of KIND to TO listing the case's URL, to be sent by the sweep."""
    if rt.settings.sender is None:
        raise Conflict("this desk cannot build notices: TAKEDOWN_SENDER (their From) is not set")
    address, notice_kind = check_address(to), check_kind(kind)
    reason = check_text("reason", (reason or "").strip() or None)
    _refuse_dead(session, address, now)

    def decide(case: Case) -> dict[str, Any]:
        if case.state != CaseState.NEEDS_ANALYST:
            raise Conflict(f"case {case.id} is {case.state}: only a case that needs an analyst")
        if not case.url or case.purged_at is not None:
            raise Conflict(f"case {case.id} was purged: its URL is no longer stored")
        _refuse_again(session, case, address, notice_kind)
        # Only the version moves on (an action on the case in between is seen); a worker
        # tracing it again keeps its claim.
        return {"claimed_until": case.claimed_until}

    case, _ = apply_change(session, case_id, decide)
    try:
        with session.begin_nested():  # two one-offs at once: the second finds its step taken
            item = NoticeItem(
                case_id=case.id,
                round=case.round,
                step=_next_step(session, case),
                kind=notice_kind,
                party=PARTY,
                recipients=address,
                country=case.country,
                due_at=now,
                reported_at=case.opened_at,
            )
            session.add(item)
            session.flush()
            notice = session.get_one(Notice, store_notice(session, rt, now, address, kind, [item]))
    except IntegrityError:
        raise Conflict(f"case {case_id} changed while the notice was stored: try again") from None
    record(
        session,
        case.id,
        EventKind.ONE_OFF_NOTICE,
        now,
        user.name,
        notice=notice.id,
        kind_of=notice_kind,
        to=address,
        reason=reason,
        state=case.state,
    )
    return notice


def _next_step(session: Session, case: Case) -> int:
    """Return the step of the case's next one-off in its round: one below the lowest."""
    lowest = session.scalar(
        select(func.min(NoticeItem.step)).where(
            NoticeItem.case_id == case.id, NoticeItem.round == case.round
        )
    )
    return min(lowest or 0, 0) - 1


def _refuse_again(session: Session, case: Case, address: str, kind: NoticeKind) -> None:
    """Refuse a one-off that would repeat one already on its way or delivered."""
    earlier = session.execute(
        select(Notice.id, Notice.status)
        .join(NoticeItem, NoticeItem.notice_id == Notice.id)
        .where(
            NoticeItem.case_id == case.id,
            NoticeItem.party == PARTY,
            NoticeItem.kind == kind,
            func.lower(NoticeItem.recipients) == address.lower(),
            Notice.status.in_(_STANDING),
        )
        .limit(1)
    ).first()
    if earlier is not None:
        notice_id, status = earlier
        raise Conflict(
            f"case {case.id}: a {kind} to {address} is {status} already (N-{notice_id:06d})"
        )


def _refuse_dead(session: Session, address: str, now: dt.datetime) -> None:
    """Refuse an address that hard-bounced and is not to be written to yet."""
    dead = session.get(DeadRecipient, address.lower())
    if dead is not None and dead.until > now:
        raise Conflict(f"{address} bounced ({dead.reason}): not written to until {iso(dead.until)}")
