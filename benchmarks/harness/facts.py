"""What the engine's database says about a run: cases noticed, notices sent, checks made.

Read with plain queries on the engine's own tables (workflows/store/models.py), so the
figures are the engine's record, not the harness's guess.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from workflows.kinds import FIRST_NOTICE_KINDS, NoticeStatus
from workflows.store.models import Case, Check, Notice, NoticeItem

FIRST_KINDS = tuple(str(kind) for kind in FIRST_NOTICE_KINDS)


def cases_without_first_notice(db: Engine) -> tuple[int, int]:
    """Return (cases, cases whose first notice was not accepted yet)."""
    with Session(db) as session:
        total = session.scalar(select(func.count(Case.id))) or 0
        waiting = session.scalar(select(func.count(Case.id)).where(Case.first_notice_at.is_(None)))
    return total, waiting or 0


def cases_checked_since(db: Engine, since: dt.datetime) -> int:
    """Return how many cases have a check made at or after SINCE."""
    with Session(db) as session:
        found = session.scalar(
            select(func.count(func.distinct(Check.case_id))).where(Check.at >= since)
        )
    return found or 0


def checks_since(db: Engine, since: dt.datetime) -> Counter[str]:
    """Count the checks made at or after SINCE by outcome."""
    with Session(db) as session:
        rows = session.execute(
            select(Check.outcome, func.count(Check.id))
            .where(Check.at >= since)
            .group_by(Check.outcome)
        )
        return Counter({outcome: count for outcome, count in rows})


@dataclass
class Notices:
    """The notices of a run: how many of each kind were sent, and to how many desks."""

    sent_by_kind: Counter[str]
    unsent_by_status: Counter[str]
    first_sent: int  # first notices (notice, referral, reappeared) accepted by the relay
    first_recipients: int  # distinct recipients of those
    most_to_one: int  # the most first notices one recipient got

    @property
    def others_sent(self) -> int:
        """Return the notices sent that are not first notices (chasers, escalations)."""
        return sum(n for kind, n in self.sent_by_kind.items() if kind not in FIRST_KINDS)


def notices(db: Engine) -> Notices:
    """Summarise every notice of the run."""
    with Session(db) as session:
        rows = session.execute(select(Notice.kind, Notice.status, Notice.recipients)).all()
    sent = Counter(kind for kind, status, _ in rows if status == NoticeStatus.SENT)
    unsent = Counter(status for _, status, _ in rows if status != NoticeStatus.SENT)
    per_recipient = Counter(
        recipients
        for kind, status, recipients in rows
        if status == NoticeStatus.SENT and kind in FIRST_KINDS
    )
    return Notices(
        sent_by_kind=sent,
        unsent_by_status=unsent,
        first_sent=sum(per_recipient.values()),
        first_recipients=len(per_recipient),
        most_to_one=max(per_recipient.values(), default=0),
    )


def notice_latencies(db: Engine) -> list[float]:
    """Return, per case, the seconds from its report to its first notice's acceptance."""
    with Session(db) as session:
        rows = session.execute(
            select(Case.opened_at, func.min(Notice.sent_at))
            .join(NoticeItem, NoticeItem.case_id == Case.id)
            .join(Notice, Notice.id == NoticeItem.notice_id)
            .where(Notice.kind.in_(FIRST_KINDS), Notice.sent_at.is_not(None))
            .group_by(Case.id, Case.opened_at)
        ).all()
    return [(sent - opened).total_seconds() for opened, sent in rows if sent and opened]
