"""The outbox: owed items become one notice per recipient per window, stored before sending.

batch_notices  unbatched items for one recipient and kind whose oldest has waited a
               `notice_window` → one Notice row (rendered, Message-ID fixed) per
               `max_notice_urls` URLs, stored before anything is sent; `workflows.engine.sending`
               sends each one at most once.

A batch reported together gets one first notice per recipient: a first notice waits
while URLs reported in the same report are still being traced or acted on (their
recipients are not known or not owed yet), so 10,000 URLs on one desk's network are one
notice, not one per window their traces finished in. It waits

    while some are new (never traced) or routed       as long as that lasts, up to
    with their first step not owed yet                 BATCH_WAIT_LIMIT (a safety net)
    while some only wait to retry a failed trace       BATCH_WAIT notice windows

A trace that failed for now may wait long for its retry; the rest of its report goes out.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import uuid
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row, and_, func, or_, select
from sqlalchemy.orm import Session

from workflows.config.forms import is_form_address
from workflows.engine.runtime import Runtime
from workflows.kinds import FIRST_NOTICE_KINDS, CaseState, EventKind, NoticeKind, NoticeStatus
from workflows.notify.notices import NoticeItem as MailItem
from workflows.notify.notices import (
    NoticeRequest,
    language_for_country,
    make_message_id,
    render_notice,
)
from workflows.notify.xarf import xarf_report
from workflows.store.cases import record
from workflows.store.db import transaction
from workflows.store.models import Case, Notice, NoticeItem

log = logging.getLogger(__name__)
BATCH_WAIT = 5  # notice windows a first notice waits for its report's traces to retry
BATCH_WAIT_LIMIT = 900.0  # seconds it waits at most for a report still being traced


def case_reference(case_id: int) -> str:
    """Return the reference shown to recipients for a case."""
    return f"TD-{case_id:06d}"


def batch_notices(rt: Runtime, most: int | None = None) -> list[int]:
    """Turn owed items into stored notices; return the new notices' ids.

    Only the groups (recipient, kind) whose oldest item has waited a window are read, and
    the report wait is decided on a few aggregate rows: this runs in every sweep, inside a
    write transaction, while a big report's 10,000 items wait for its traces. MOST: stop
    after the group that makes it reached (the sweep builds the rest a second later, so a
    report's 1,000 notices are sent while the rest are built, not after), first notices
    first, then the groups that waited longest.
    """
    now = rt.clock()
    ready_before = now - dt.timedelta(seconds=rt.policy.notice_window)
    limit = now - dt.timedelta(seconds=BATCH_WAIT_LIMIT)
    longest = now - dt.timedelta(seconds=BATCH_WAIT * rt.policy.notice_window)
    created: list[int] = []
    with transaction(rt.sessions) as session:
        # One read of the waiting items, by group and report, from their index alone.
        by_report = session.execute(
            select(
                NoticeItem.recipients,
                NoticeItem.kind,
                NoticeItem.reported_at,
                func.min(NoticeItem.due_at),
            )
            .where(NoticeItem.notice_id.is_(None))
            .group_by(NoticeItem.recipients, NoticeItem.kind, NoticeItem.reported_at)
        ).all()
        oldest: dict[tuple[str, str], dt.datetime] = {}
        for recipients, kind, _report, first in by_report:
            key = (recipients, kind)
            oldest[key] = min(first, oldest.get(key, first))
        groups = [(r, k, at) for (r, k), at in oldest.items() if at <= ready_before]
        ready = sorted(groups, key=lambda row: (row[1] not in FIRST_NOTICE_KINDS, row[2]))
        first_groups = {(r, k) for r, k, _ in ready if k in FIRST_NOTICE_KINDS}
        waiting = _waiting_reports(session, by_report, first_groups, limit, longest)
        for recipients, kind, _oldest in ready:
            if most is not None and len(created) >= most:
                break
            # A report's URLs go together: those of a report still being traced wait (its
            # other URLs may be owed to this desk too); the other reports' go now. A group
            # all of whose reports wait is not read at all: while a 100,000-URL report is
            # traced, every sweep would read its items only to hold them.
            held = waiting.get((recipients, kind))
            if held and held.every:
                continue
            group = _ready_items(session, now, recipients, kind, held.reports if held else ())
            size = rt.policy.max_notice_urls
            for start in range(0, len(group), size):
                created.append(
                    _new_notice(session, rt, now, recipients, kind, group[start : start + size])
                )
    return created


@dataclass
class Held:
    """A group's items that wait for the rest of their reports' traces."""

    reports: set[dt.datetime] = field(default_factory=set)  # their reports (opened_at)
    every: bool = True  # every report of the group waits: none of its items go now


def _waiting_reports(
    session: Session,
    by_report: Sequence[Row[str, str, dt.datetime | None, dt.datetime]],
    first: set[tuple[str, str]],
    limit: dt.datetime,
    longest: dt.datetime,
) -> dict[tuple[str, str], Held]:
    """Return, for each first-notice group of FIRST with items that wait for the rest of
    their report's traces, which reports they are and whether they are all of it.
    BY_REPORT: each group's reports (reported_at) and when its oldest item of each fell due.
    """
    if not first:
        return {}
    tracing, retrying = _busy_reports(session)
    if not tracing and not retrying:
        return {}
    waiting: dict[tuple[str, str], Held] = defaultdict(Held)
    for recipients, kind, opened, oldest in by_report:
        if (recipients, kind) not in first:
            continue
        if opened is not None and (
            (opened in tracing and oldest > limit) or (opened in retrying and oldest > longest)
        ):
            waiting[(recipients, kind)].reports.add(opened)
        else:  # another report's, or owed before items carried their report: not held
            waiting[(recipients, kind)].every = False
    return {group: held for group, held in waiting.items() if held.reports}


def _ready_items(
    session: Session,
    now: dt.datetime,
    recipients: str,
    kind: str,
    held: Collection[dt.datetime] = (),
) -> list[NoticeItem]:
    """Return a ready group's items but those of the reports HELD (their opened_at); drop
    (recording it) those whose case left ACTIVE."""
    query = select(NoticeItem).where(
        NoticeItem.notice_id.is_(None),
        NoticeItem.recipients == recipients,
        NoticeItem.kind == kind,
    )
    if held:
        query = query.where(
            or_(NoticeItem.reported_at.is_(None), NoticeItem.reported_at.not_in(held))
        )
    items = session.scalars(
        query.order_by(NoticeItem.due_at, NoticeItem.id).with_for_update(
            skip_locked=True, of=NoticeItem
        )
    ).all()
    active = set(
        session.scalars(
            select(Case.id).where(
                Case.id.in_({i.case_id for i in items}), Case.state == CaseState.ACTIVE
            )
        )
    )
    kept = []
    for item in items:
        if item.case_id in active:
            kept.append(item)
            continue
        # Removed (or handed to an analyst) since the step fell due: say nothing.
        record(
            session,
            item.case_id,
            EventKind.STEP_CANCELLED,
            now,
            step=item.step,
            send=item.kind,
            to=item.party,
        )
        session.delete(item)
    return kept


def _busy_reports(session: Session) -> tuple[set[dt.datetime], set[dt.datetime]]:
    """Return the reports (their opened_at: one report call stamps all its URLs alike)
    some of whose URLs are still being traced (new) or routed with their first step not
    owed yet; and those some of whose traces wait to retry."""
    unowed = and_(Case.state == CaseState.ACTIVE, Case.steps_done == 0)
    busy = or_(Case.state.in_((CaseState.NEW, CaseState.WAITING)), unowed)
    tracing: set[dt.datetime] = set()
    retrying: set[dt.datetime] = set()
    for at, state in session.execute(select(Case.opened_at, Case.state).where(busy).distinct()):
        (retrying if state == CaseState.WAITING else tracing).add(at)
    return tracing, retrying


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
    # A web-form desk's notice is a task on the desk, never mailed: an analyst submits it.
    form = is_form_address(recipients)
    notice = Notice(
        kind=kind,
        recipients=recipients,
        status=NoticeStatus.FORM if form else NoticeStatus.PENDING,
        message_id=f"<pending.{token}>",
        language="en",
        subject="",
        body_text="",
        body_html="",
        attempts=0,
        due_at=None if form else now,
        created_at=now,
        # Names the notice in its return path (VERP): 80 random bits, never guessable.
        return_token=secrets.token_hex(10),
    )
    session.add(notice)
    session.flush()
    notice.message_id = make_message_id(notice.id, _domain(rt), token)
    starts = kind in FIRST_NOTICE_KINDS and kind != NoticeKind.REAPPEARED  # its own thread
    thread = [] if starts else _thread_of(session, items, kind)
    notice.language = language_for_country(items[0].country)
    notice.in_reply_to, notice.references = thread[0] if thread else None, " ".join(thread) or None
    listed = [cases[i.case_id] for i in items]
    request = notice_request(
        rt, notice, listed, network=listed[0].network, country=items[0].country
    )
    rendered = render_notice(request, rt.templates)
    notice.subject = rendered.subject
    notice.body_text, notice.body_html = rendered.text, rendered.html
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
    if form:
        desk = rt.forms.by_url(recipients)
        for case_id in dict.fromkeys(i.case_id for i in items):
            record(
                session,
                case_id,
                EventKind.FORM_TASK,
                now,
                notice=notice.id,
                kind_of=kind,
                to=recipients,
                name=desk.name if desk else None,
            )
    return notice.id


store_notice = _new_notice  # for a notice an analyst sends by hand (one_off.py)


def notice_request(
    rt: Runtime,
    notice: Notice,
    cases: Sequence[Case],
    *,
    network: str | None = None,
    country: str | None = None,
) -> NoticeRequest:
    """Return what NOTICE's mail needs, from the notice row and the CASES it lists, in order."""
    return NoticeRequest(
        kind=notice.kind,
        recipients=tuple(notice.recipients.split(",")),
        language=notice.language,
        items=tuple(mail_item(case) for case in cases),
        sender=rt.settings.sender or "takedown@localhost",
        sender_name=rt.settings.sender_name,
        notice_ref=f"N-{notice.id:06d}",
        message_id=notice.message_id,
        in_reply_to=notice.in_reply_to,
        references=tuple((notice.references or "").split()),
        sent_at=notice.created_at,  # the Date header: when the notice was built and stored
        network=network,
        country=country,
    )


def mail_item(case: Case) -> MailItem:
    """Return what a notice lists of one case."""
    trace = case.trace or {}
    return MailItem(
        case_id=case.id,
        reference=case_reference(case.id),
        url=case.url,
        host=case.host,
        addresses=tuple(trace.get("addresses") or ()),
        category=case.category,
        reported_at=case.opened_at,
        first_notified_at=case.first_notice_at or _first_ever_notice(case),
        content_sha256=case.content_hash,
    )


def _first_ever_notice(case: Case) -> dt.datetime | None:
    """Return when the case's very first notice went, from its past rounds (reappeared)."""
    for finished in case.past_rounds or []:
        if finished.get("first_notice_at"):
            return dt.datetime.fromisoformat(finished["first_notice_at"])
    return None


def _thread_of(session: Session, items: Sequence[NoticeItem], kind: str) -> list[str]:
    """Return the Message-IDs a notice of KIND for ITEMS threads to.

    Chasers and escalations: the first notices of the items' cases in this round. A
    reappeared notice: the first notices of each case's latest earlier round, which it
    cites.
    """
    ids = []
    where: tuple[Any, ...]
    order: tuple[Any, ...]
    for item in items:
        if kind == NoticeKind.REAPPEARED:
            where = (NoticeItem.round < item.round,)
            order = (NoticeItem.round.desc(), Notice.id)
        else:
            where, order = (NoticeItem.round == item.round,), (Notice.id,)
        first = session.scalars(
            select(Notice.message_id)
            .join(NoticeItem, NoticeItem.notice_id == Notice.id)
            .where(
                NoticeItem.case_id == item.case_id,
                *where,
                NoticeItem.kind.in_(FIRST_NOTICE_KINDS),
            )
            .order_by(*order)
            .limit(1)
        ).first()
        if first and first not in ids:
            ids.append(first)
    return ids[:20]


def _domain(rt: Runtime) -> str:
    sender = rt.settings.sender or "takedown@localhost"
    return sender.rpartition("@")[2] or "localhost"
