"""Claims: due cases and notices handed to exactly one worker, with a lease.

A claim sets `claimed_until` by compare-and-set (`FOR UPDATE SKIP LOCKED` on PostgreSQL):
work whose task is lost is handed out again when the lease runs out.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, not_, or_, select, update
from sqlalchemy.orm import Session

from workflows.kinds import FIRST_NOTICE_KINDS, WORKABLE_STATES, CaseState, NoticeStatus
from workflows.store.models import Case, Notice

CLAIM_LIMIT = 2000  # cases one claim takes at most (one sweep's)
HOSTS_COUNTED = 50  # host names a trace claim counts the due cases of in one query
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
    session: Session,
    now: dt.datetime,
    lease: float,
    limit: int = CLAIM_LIMIT,
    checks: bool = True,
    traces: bool = True,
    steps: bool = True,
) -> list[Claimed]:
    """Claim due cases for LEASE seconds, the first LIMIT by due time; return each claimed.

    Due are open cases, and removed ones whose watch check is due (a removed case has a
    due time only while it is watched). Which work is claimed (engine.sweep.task_for):
    CHECKS false leaves the cases due only for a re-check (the checks queue is full),
    TRACES false the cases to trace (claimed apart, by claim_traces), STEPS false the
    cases with a workflow step due.
    """
    chosen = (("steps", steps), ("trace", traces), ("check", checks))
    kinds = [kind for kind, on in chosen if on]
    ids = [id_ for id_, _host in _first_due(session, now, limit, kinds)]
    return _claim(session, ids, now, lease)


def claim_traces(session: Session, now: dt.datetime, lease: float, limit: int) -> list[Claimed]:
    """Claim due cases to trace, about LIMIT, whole host names at a time: the host names
    whose cases fell due first, each with every case of it due, as many host names as fit
    in LIMIT (at least one; a host name with more than LIMIT due gives its first LIMIT).

    A trace task resolves each host name once for all its cases (trace.tracer.batch); a
    claim of the first LIMIT cases of a report that lists its 5,000 host names in turn
    would hold each host name once, and resolve it once per case."""
    hosts = list(dict.fromkeys(host for _id, host in _first_due(session, now, limit, ["trace"])))
    if not hosts:
        return []
    # The traced states alone: the (host, state, due_at) index skips a host name's active cases.
    due = [Case.due_at <= now, _free(now), _tracing()]
    chosen: list[str] = []
    total = 0
    # Counted a few host names at a time: a report listing its host names in turn gives a
    # new host name each case, and the first few fill the claim.
    for start in range(0, len(hosts), HOSTS_COUNTED):
        some = hosts[start : start + HOSTS_COUNTED]
        counts = dict(
            session.execute(
                select(Case.host, func.count()).where(*due, Case.host.in_(some)).group_by(Case.host)
            ).all()
        )
        for host in some:
            if chosen and total + counts.get(host, 0) > limit:
                break
            chosen.append(host)
            total += counts.get(host, 0)
        else:
            continue
        break
    candidates = (
        select(Case.id)
        .where(*due, Case.host.in_(chosen))
        .order_by(Case.due_at, Case.id)
        .limit(limit)
        .with_for_update(skip_locked=True)  # PostgreSQL; SQLite: one writer
    )
    return _claim(session, list(session.scalars(candidates)), now, lease)


def _first_due(
    session: Session, now: dt.datetime, limit: int, kinds: list[str]
) -> list[tuple[int, str]]:
    """Return (id, host) of the first LIMIT due, unclaimed cases of KINDS, by due time.

    Each kind is read as walks of an index in due order, a state at a time, each
    stopping at LIMIT (`_walks`), merged here: the cost follows the cases claimed, not the
    cases open. One query over the states made SQLite read and sort every due case of
    them: each sweep of a 100,000-URL intake sorted the cases waiting to be traced twice
    (for the traces, and to find the re-checks among them: 60-170 ms a sweep).
    """
    rows: list[tuple[Any, int, str]] = []  # (due_at, id, host): due_at is never None here
    for conditions, order in _walks(now, kinds):
        walk = (
            select(Case.due_at, Case.id, Case.host)
            .where(Case.due_at <= now, _free(now), *conditions)  # each walk names its state
            .order_by(*order, Case.id)
            .limit(limit)
            .with_for_update(skip_locked=True)  # PostgreSQL; SQLite: one writer
        )
        rows += [(due_at, id_, host) for due_at, id_, host in session.execute(walk)]
    rows.sort()
    return [(id_, host) for _due_at, id_, host in rows[:limit]]


def _walks(
    now: dt.datetime, kinds: list[str]
) -> list[tuple[list[ColumnElement[bool]], tuple[Any, ...]]]:
    """Return, for KINDS of due work, the index walks that find it: (conditions, order).

    A state at a time, in due order, on the (state, due_at) index; the steps on the
    (state, step_due_at) index, in the order their steps fell due, since an active case
    with a step due is one among many due for a re-check only.
    """
    step_due = and_(Case.step_due_at.is_not(None), Case.step_due_at <= now)
    untraced = Case.changed_streak == 0
    by_due = (Case.due_at,)
    walks: list[tuple[list[ColumnElement[bool]], tuple[Any, ...]]] = []
    if "steps" in kinds:
        walks.append(([Case.state == CaseState.ACTIVE, step_due], (Case.step_due_at,)))
    if "trace" in kinds:
        walks += [
            ([Case.state == CaseState.NEW], by_due),
            ([Case.state == CaseState.WAITING], by_due),
            ([Case.state == CaseState.NEEDS_ANALYST, untraced], by_due),
        ]
    if "check" in kinds:
        walks += [
            ([Case.state == CaseState.ACTIVE, not_(step_due)], by_due),
            ([Case.state == CaseState.REMOVED], by_due),
            # Changed content waiting for an analyst: re-checked, not traced (only a
            # re-check makes a streak, and only an analyst's case waits on one).
            ([Case.state == CaseState.NEEDS_ANALYST, not_(untraced)], by_due),
        ]
    return walks


def _free(now: dt.datetime) -> ColumnElement[bool]:
    """Return the condition of a case nobody holds a claim on at NOW."""
    return or_(Case.claimed_until.is_(None), Case.claimed_until <= now)


def _tracing() -> ColumnElement[bool]:
    """Return the condition of a case a trace task handles (engine.sweep.task_for)."""
    return and_(Case.state.in_(TRACED_BY_TASK), Case.changed_streak == 0)


def _claim(session: Session, ids: list[int], now: dt.datetime, lease: float) -> list[Claimed]:
    """Claim the cases of IDS that are still free, for LEASE seconds."""
    if not ids:
        return []
    until = now + dt.timedelta(seconds=lease)
    claimed = session.execute(
        update(Case)
        .where(Case.id.in_(ids), _free(now))
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
        # First notices before chasers and the rest: time to removal starts with them.
        .order_by(case((Notice.kind.in_(FIRST_NOTICE_KINDS), 0), else_=1), Notice.due_at)
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
