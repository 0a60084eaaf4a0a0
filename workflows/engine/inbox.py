"""Mail that comes back: bounces, delays, replies and auto-replies, each acted on once.

take_message reads one raw message (`workflows.notify.inbound` classifies it) and, in one
transaction with the message's row (its SHA-256 digest is unique, so the same message
read twice — a pipe and the mailbox, or a crash before the mailbox was marked — counts
once):

    bounce       the notice named by its return-path token (else by the returned
                 original's Message-ID) turns from sent to failed, each failed address is
                 skipped for every case for the policy's `dead_contact_for`, and when all
                 its recipients failed its cases move on to the next party, as after a 5xx
                 at send time (compare-and-set: a late bounce never undoes an analyst)
    delay        a `delivery_delayed` event on the notice's cases; nothing moves
    reply        a `reply` event (sender, subject, text) on each case it concerns (threaded
                 to one of our notices, or a case reference in the subject), and those
                 cases are re-checked at once
    auto_reply   an `auto_reply` event on the cases it concerns: it is not an answer
    other        kept, with its text, for an analyst
    unreadable   kept, with why, never fatal
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from workflows.engine.actions import force_recheck
from workflows.engine.runtime import Runtime
from workflows.engine.sending import move_on
from workflows.errors import Conflict
from workflows.kinds import EventKind, NoticeStatus
from workflows.notify.inbound import Inbound, read_message
from workflows.notify.mailbox import read_mailbox
from workflows.store.cases import SYSTEM, record
from workflows.store.db import transaction
from workflows.store.models import (
    Case,
    DeadRecipient,
    InboundMessage,
    Notice,
    NoticeItem,
    User,
)

log = logging.getLogger(__name__)
REPLY_TEXT = 5000  # characters of a reply kept on its cases' events
OTHER_TEXT = 20000  # characters of an unmatched message kept for an analyst
_INBOX = User(name=SYSTEM, role="system")  # the actor of re-checks a reply asks for


@dataclass
class Taken:
    """What one inbound message was and did."""

    kind: str
    new: bool  # False: the same message was taken before; nothing was done again
    notice_id: int | None = None
    cases: list[int] = field(default_factory=list)  # the cases it concerns
    moved: list[int] = field(default_factory=list)  # cases moved on to the next party

    def line(self) -> str:
        """Return one line for the command line."""
        if not self.new:
            return f"{self.kind}: taken before, nothing done again"
        notice = f"notice {self.notice_id}" if self.notice_id else "no notice of ours"
        cases = ", ".join(str(c) for c in self.cases) or "none"
        moved = f"; moved on: {', '.join(str(c) for c in self.moved)}" if self.moved else ""
        return f"{self.kind}: {notice}; cases {cases}{moved}"


def take_message(rt: Runtime, raw: bytes, source: str, mailbox_uid: str | None = None) -> Taken:
    """Read one message and act on it once; return what it was and did."""
    found = read_message(raw, rt.settings.return_path)
    try:
        with transaction(rt.sessions) as session:
            seen = session.scalars(
                select(InboundMessage.id).where(InboundMessage.digest == found.digest)
            ).first()
            if seen is not None:
                return Taken(found.kind, new=False)
            return _take(session, rt, found, source, mailbox_uid)
    except IntegrityError:  # the same message, taken at the same moment by another process
        return Taken(found.kind, new=False)


def _take(
    session: Session, rt: Runtime, found: Inbound, source: str, mailbox_uid: str | None
) -> Taken:
    """Store FOUND's row first (its digest is the once-only key), then act on it."""
    now = rt.clock()
    notice = _notice_of(session, found)
    cases = _cases_of(session, found, notice)
    detail: dict[str, Any] = {
        "failures": [[f.recipient, f.status, f.diagnostic] for f in found.failures] or None,
        "references": list(found.references[:10]) or None,
        "cases": cases or None,
        "problem": found.problem,
    }
    keep_text = found.kind == "other" or (found.kind == "reply" and not cases)
    session.add(
        InboundMessage(
            digest=found.digest,
            source=source,
            mailbox_uid=mailbox_uid,
            received_at=now,
            kind=found.kind,
            notice_id=notice.id if notice else None,
            sender=found.sender,
            subject=found.subject,
            detail={k: v for k, v in detail.items() if v is not None} or None,
            text=found.text[:OTHER_TEXT] if keep_text else None,
        )
    )
    session.flush()  # a twin taken meanwhile fails here, before anything is acted on
    taken = Taken(found.kind, new=True, notice_id=notice.id if notice else None, cases=cases)
    if found.kind == "bounce" and notice is not None:
        taken.moved = _bounced(session, rt, found, notice, now)
    elif found.kind == "delay" and notice is not None:
        for case_id in cases:
            record(session, case_id, EventKind.DELIVERY_DELAYED, now, **_about(found, notice))
    elif found.kind == "reply":
        for case_id in cases:
            text = found.text[:REPLY_TEXT]
            record(session, case_id, EventKind.REPLY, now, **_about(found, notice), text=text)
            _recheck(session, case_id, found, now)
    elif found.kind == "auto_reply":
        for case_id in cases:
            record(session, case_id, EventKind.AUTO_REPLY, now, **_about(found, notice))
    log.info("inbox: %s", taken.line())
    return taken


def _about(found: Inbound, notice: Notice | None) -> dict[str, Any]:
    """Return the event detail every inbound message gives its cases."""
    return {
        "from": found.sender,
        "subject": found.subject,
        "notice": notice.id if notice else None,
        "message_id": found.message_id,
    }


def _notice_of(session: Session, found: Inbound) -> Notice | None:
    """Return the notice FOUND concerns: by its return-path token, else by Message-ID."""
    if found.tokens:
        by_token = session.scalars(
            select(Notice).where(Notice.return_token.in_(found.tokens))
        ).first()
        if by_token is not None:
            return by_token
    if found.references:
        return session.scalars(
            select(Notice).where(Notice.message_id.in_(found.references)).order_by(Notice.id.desc())
        ).first()
    return None


def _cases_of(session: Session, found: Inbound, notice: Notice | None) -> list[int]:
    """Return the cases FOUND concerns: its notice's and those its subject names."""
    ids: list[int] = []
    if notice is not None:
        ids += session.scalars(
            select(NoticeItem.case_id).where(NoticeItem.notice_id == notice.id)
        ).all()
    if found.case_refs:
        ids += session.scalars(select(Case.id).where(Case.id.in_(found.case_refs))).all()
    return sorted(set(ids))


def _bounced(
    session: Session, rt: Runtime, found: Inbound, notice: Notice, now: dt.datetime
) -> list[int]:
    """Mark the failed addresses dead; when every recipient failed, fail the notice and
    move its cases on. Return the cases moved on."""
    recipients = {r.strip().lower() for r in notice.recipients.split(",") if r.strip()}
    failed = {f.recipient for f in found.failures} & recipients
    if not failed and found.tokens:
        # The token names this notice, but the report names an address we never wrote
        # to (an alias the relay expanded): the notice's own recipients failed.
        failed = set(recipients)
    reason = "; ".join(f"{f.status} {f.diagnostic}".strip() for f in found.failures)
    reason = reason or "bounced"
    for address in sorted(failed):
        _mark_dead(
            session,
            address,
            now + dt.timedelta(seconds=rt.policy.dead_contact_for),
            reason,
            notice.id,
            now,
        )
    if failed != recipients:
        return []  # someone it was sent to got it: the cases wait for their answer
    # Sent → failed once (compare-and-set): the same bounce read twice, or a second bounce
    # for the same notice, moves nothing again. A bounce may also beat the sending run's
    # own record of the relay's acceptance (sending: it then keeps this outcome), or come
    # for a notice left uncertain: it proves the notice left, and failed.
    arrived = (NoticeStatus.SENT, NoticeStatus.SENDING, NoticeStatus.UNCERTAIN)
    turned = session.execute(
        update(Notice)
        .where(Notice.id == notice.id, Notice.status.in_(arrived))
        .values(status=NoticeStatus.FAILED, smtp_reply=reason[:500])
    )
    if getattr(turned, "rowcount", 0) != 1:
        return []
    moved = []
    items = session.scalars(
        select(NoticeItem).where(NoticeItem.notice_id == notice.id).order_by(NoticeItem.id)
    ).all()
    for item in items:
        record(
            session,
            item.case_id,
            EventKind.BOUNCED,
            now,
            **_about(found, notice),
            to=notice.recipients,
            reason=reason[:500],
        )
        if move_on(session, rt, item, now, f"bounced: {reason}"[:500]):
            moved.append(item.case_id)
    return moved


def _mark_dead(
    session: Session,
    address: str,
    until: dt.datetime,
    reason: str,
    notice_id: int,
    now: dt.datetime,
) -> None:
    """Skip ADDRESS for every case until UNTIL (a later bounce extends it)."""
    row = session.get(DeadRecipient, address, with_for_update=True)
    if row is None:
        session.add(
            DeadRecipient(
                address=address,
                until=until,
                reason=reason[:500],
                notice_id=notice_id,
                recorded_at=now,
            )
        )
        session.flush()
        return
    row.until, row.reason, row.notice_id, row.recorded_at = until, reason[:500], notice_id, now


def _recheck(session: Session, case_id: int, found: Inbound, now: dt.datetime) -> None:
    """Re-check a case a reply concerns at once ("removed" or not, the URL tells)."""
    with contextlib.suppress(Conflict):  # closed, removed or held: nothing to re-check
        force_recheck(session, case_id, _INBOX, now=now, reason=f"reply from {found.sender}")


def poll_mailbox(rt: Runtime) -> list[Taken]:
    """Take every message in TAKEDOWN_IMAP_URL not taken yet; return what each did."""
    if rt.imap is None:
        return []
    taken: list[Taken] = []
    read_mailbox(rt.imap, lambda uid, raw: taken.append(take_message(rt, raw, "imap", uid)))
    return taken
