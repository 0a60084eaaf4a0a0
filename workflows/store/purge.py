"""Data retention: erase what identifies a closed case's URL, keep what the figures need.

A case in a terminal state (removed, closed) whose terminal time (removed_at, closed_at)
is older than the retention period is purged, a batch of cases per transaction:

    erased  its URL (it becomes "purged:<id>"), host, reference, trace, abuse recipients,
            last error, content hash and open key; every event's detail; every check's
            address, reason and hash; its owed items' recipients; and the subject, bodies,
            XARF, recipients and relay reply of each notice once every case it lists is
            purged (a notice that also lists a live case keeps its text until that one goes)
    kept    state, route, country, network CIDR, ASN, provider, category, analyst and every
            timestamp; event kinds, actors and times; notice kinds, statuses and times:
            all that `workflows.core.stats` reads, so purged cases still count

Purging a case is a compare-and-set (`purged_at IS NULL`, still terminal, still old), so a
purge run twice, or by two processes at once, purges each case once and records one
`purged` event. On SQLite the erased bytes are overwritten too (secure_delete) and the
write-ahead log is emptied afterwards; PostgreSQL keeps dead rows until VACUUM, and no
purge reaches backups.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Engine, String, and_, cast, literal, null, or_, select, update
from sqlalchemy import text as sql
from sqlalchemy.orm import Session, sessionmaker

from workflows.core.durations import format_duration
from workflows.core.figures import iso
from workflows.kinds import CaseState, EventKind, NoticeStatus
from workflows.store.cases import SYSTEM, record
from workflows.store.db import (
    transaction,
)
from workflows.store.models import Case, Check, Event, InboundMessage, Notice, NoticeItem

BATCH = 500  # cases per transaction: a purge of 100,000 cases never holds them all
NEVER_SENT = "never sent: erased by the retention purge"
_BULK = {"synchronize_session": False}  # bulk statements: no ORM objects to keep in step


@dataclass
class PurgeReport:
    """What one purge did (or, in a dry run, would do)."""

    before: dt.datetime  # cases that reached their terminal state before this
    older_than: float  # seconds
    dry_run: bool
    ids: list[int] = field(default_factory=list)
    more: bool = False  # stopped at its batch limit with cases left to purge

    def as_dict(self) -> dict[str, Any]:
        """Describe the purge for JSON output."""
        return {
            "dry_run": self.dry_run,
            "older_than": format_duration(self.older_than),
            "before": iso(self.before),
            "count": len(self.ids),
            "ids": self.ids,
        }


def purgeable(before: dt.datetime) -> ColumnElement[bool]:
    """Return the condition of a case due for purging: terminal before BEFORE, not purged."""
    return and_(
        Case.purged_at.is_(None),
        or_(
            and_(Case.state == CaseState.REMOVED, Case.removed_at < before),
            and_(Case.state == CaseState.CLOSED, Case.closed_at < before),
        ),
    )


def purge_closed(
    sessions: sessionmaker[Session],
    now: dt.datetime,
    older_than: float,
    *,
    dry_run: bool = False,
    max_batches: int | None = None,
) -> PurgeReport:
    """Purge the cases that closed more than OLDER_THAN seconds before NOW, batch by batch."""
    report = PurgeReport(now - dt.timedelta(seconds=older_than), older_than, dry_run)
    after_id, batches = 0, 0
    while max_batches is None or batches < max_batches:
        with transaction(sessions) as session:
            ids = list(
                session.scalars(
                    select(Case.id)
                    .where(purgeable(report.before), Case.id > after_id)
                    .order_by(Case.id)
                    .limit(BATCH)
                )
            )
            if not ids:
                return report
            after_id = ids[-1]
            report.ids += ids if dry_run else purge_batch(session, ids, report, now)
        batches += 1
    with sessions() as session:
        found = select(Case.id).where(purgeable(report.before), Case.id > after_id).limit(1)
        report.more = session.scalar(found) is not None
    return report


def purge_batch(
    session: Session, ids: list[int], report: PurgeReport, now: dt.datetime
) -> list[int]:
    """Purge those of IDS still due (compare-and-set); return the ones this call purged."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(sql("PRAGMA secure_delete = ON"))  # overwrite, not just unlink
    purged = sorted(
        session.scalars(
            update(Case)
            .where(Case.id.in_(ids), purgeable(report.before))
            .values(
                # Not a URL (no "//"), and unique, so the column stays non-null and tidy.
                url=literal("purged:", String) + cast(Case.id, String),
                host="",
                open_key=None,
                reference=None,
                trace=null(),
                recipients=None,
                last_error=None,
                content_hash=None,
                purged_at=now,
                version=Case.version + 1,
            )
            .returning(Case.id)
            .execution_options(**_BULK)
        )
    )
    if not purged:
        return []
    _erase_details(session, purged)
    _erase_notices(session, purged)
    for case_id in purged:
        record(
            session,
            case_id,
            EventKind.PURGED,
            now,
            SYSTEM,
            older_than=format_duration(report.older_than),
        )
    return purged


def _erase_details(session: Session, purged: list[int]) -> None:
    """Erase the detail of the cases' events, their checks' findings and items' recipients."""
    session.execute(
        update(Event)
        .where(Event.case_id.in_(purged))
        .values(detail=null())
        .execution_options(**_BULK)
    )
    session.execute(
        update(Check)
        .where(Check.case_id.in_(purged))
        .values(address=None, reason=None, sha256=None)
        .execution_options(**_BULK)
    )
    session.execute(
        update(NoticeItem)
        .where(NoticeItem.case_id.in_(purged))
        .values(recipients="")
        .execution_options(**_BULK)
    )


def _erase_notices(session: Session, purged: list[int]) -> None:
    """Erase the texts of the notices that list only purged cases."""
    listed = select(NoticeItem.notice_id).where(
        NoticeItem.case_id.in_(purged), NoticeItem.notice_id.is_not(None)
    )
    live = (
        select(NoticeItem.notice_id)
        .join(Case, Case.id == NoticeItem.case_id)
        .where(NoticeItem.notice_id.in_(listed), Case.purged_at.is_(None))
    )
    ids = list(
        session.scalars(select(Notice.id).where(Notice.id.in_(listed), Notice.id.not_in(live)))
    )
    if not ids:
        return
    # Mail that came back about them (a reply's sender and subject, a bounce's report).
    session.execute(
        update(InboundMessage)
        .where(InboundMessage.notice_id.in_(ids))
        .values(sender=None, subject="", detail=null(), text=None)
        .execution_options(**_BULK)
    )
    session.execute(
        update(Notice)
        .where(Notice.id.in_(ids))
        .values(subject="", body_text="", body_html="", xarf=null(), recipients="", smtp_reply=None)
        .execution_options(**_BULK)
    )
    # A notice still waiting to go out about content gone this long must never go: and
    # without its text it could not. Say so, instead of letting a send fail on it later.
    session.execute(
        update(Notice)
        .where(Notice.id.in_(ids), Notice.status == NoticeStatus.PENDING)
        .values(status=NoticeStatus.FAILED, due_at=None, smtp_reply=NEVER_SENT)
        .execution_options(**_BULK)
    )


def reclaim(engine: Engine, *, wait: bool) -> None:
    """Empty SQLite's write-ahead log, which may still hold erased rows (WAIT: block for it)."""
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as connection:
        # TRUNCATE waits for readers and empties the file; PASSIVE never waits, and leaves
        # old frames to be overwritten as the log is reused.
        mode = "TRUNCATE" if wait else "PASSIVE"
        connection.exec_driver_sql(f"PRAGMA wal_checkpoint({mode})")
