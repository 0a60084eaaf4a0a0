"""Claims: due cases and notices handed to exactly one worker, with a lease.

A claim sets `claimed_until` by compare-and-set (`FOR UPDATE SKIP LOCKED` on PostgreSQL):
work whose task is lost is handed out again when the lease runs out.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from workflows.kinds import WORKABLE_STATES, CaseState, NoticeStatus
from workflows.store.models import Case, Notice

# The states a trace task handles (a changed needs-analyst case is re-checked instead).
TRACED_BY_TASK = tuple(s for s in WORKABLE_STATES if s not in (CaseState.ACTIVE, CaseState.REMOVED))


@dataclass(frozen=True)
class Claimed:
    """One claimed case: what the sweep needs to hand it to the right task."""

    id: int
    state: str
    host: str
    changed: bool  # it waits for an analyst because its content changed: re-checked, not traced
    step_due: bool  # a workflow step of it is due: the notices queue, not the checks queue


def claim_due(
    session: Session, now: dt.datetime, lease: float, limit: int = 2000, checks: bool = True
) -> list[Claimed]:
    """Claim due cases for LEASE seconds; return each one claimed.

    Due are open cases, and removed ones whose watch check is due (a removed case has a
    due time only while it is watched). CHECKS false: leave the cases due only for a
    re-check (the checks queue is full), claim the rest.
    """
    free = or_(Case.claimed_until.is_(None), Case.claimed_until <= now)
    due = [Case.state.in_((*WORKABLE_STATES, CaseState.REMOVED)), Case.due_at <= now, free]
    if not checks:
        # What the sweep sends to the checks queue (engine.sweep.task_for), left for later.
        step_due = and_(Case.step_due_at.is_not(None), Case.step_due_at <= now)
        due.append(
            or_(
                Case.state.in_(TRACED_BY_TASK),
                and_(Case.state == CaseState.ACTIVE, step_due),
            )
        )
        due.append(or_(Case.state != CaseState.NEEDS_ANALYST, Case.changed_streak == 0))
    candidates = (
        select(Case.id)
        .where(*due)
        .order_by(Case.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)  # PostgreSQL; SQLite serialises writers anyway
    )
    ids = list(session.scalars(candidates))
    if not ids:
        return []
    until = now + dt.timedelta(seconds=lease)
    claimed = session.execute(
        update(Case)
        .where(Case.id.in_(ids), free)
        .values(claimed_until=until, version=Case.version + 1)
        .returning(Case.id, Case.state, Case.host, Case.changed_streak, Case.step_due_at)
    ).all()
    return [
        Claimed(id_, state, host, changed > 0, step_at is not None and step_at <= now)
        for id_, state, host, changed, step_at in claimed
    ]


def claim_notices(session: Session, now: dt.datetime, lease: float, limit: int = 200) -> list[int]:
    """Claim pending notices that are due: PENDING → SENDING, each by one claimer only."""
    candidates = (
        select(Notice.id)
        .where(Notice.status == NoticeStatus.PENDING, Notice.due_at <= now)
        .order_by(Notice.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = list(session.scalars(candidates))
    if not ids:
        return []
    rows = session.execute(
        update(Notice)
        .where(Notice.id.in_(ids), Notice.status == NoticeStatus.PENDING)
        .values(status=NoticeStatus.SENDING, claimed_until=now + dt.timedelta(seconds=lease))
        .returning(Notice.id)
    ).all()
    return [row[0] for row in rows]
