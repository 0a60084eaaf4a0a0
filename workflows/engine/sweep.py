"""The sweep: claim due work from the database and hand it to the queue, grouped.

Only the holder of the Redis sweep lock runs it, every `sweep_every`; running it twice is
harmless all the same, because every claim is a compare-and-set with a lease. Work is
grouped by host, so one task traces or re-checks many URLs of one site together. With
TAKEDOWN_RETENTION set, it also purges the cases closed longer ago (workflows/purge.py).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from workflows.core.durations import format_duration
from workflows.engine.actions import release_due_holds
from workflows.engine.outbox import batch_notices
from workflows.engine.runtime import Runtime
from workflows.engine.sending import settle
from workflows.engine.tasks import queue_of
from workflows.kinds import FIRST_NOTICE_KINDS, CaseState, NoticeStatus
from workflows.store.claims import CLAIM_LIMIT, Claimed, claim_due, claim_notices, claim_traces
from workflows.store.db import transaction
from workflows.store.models import Notice, NoticeItem
from workflows.store.purge import purge_closed, reclaim

SEND_CHUNK = 8  # notices in one send task
# Notices claimed for sending (SENDING) at most at once: ten send tasks' worth, seconds of
# sending, so no claim waits out its lease in the queue. Counted in the database, not in
# the notices queue, which the steps tasks share.
SENDING_MOST = 10 * SEND_CHUNK
NOTICE_CLAIM = 200  # notices one sweep claims at most
TRACE, STEPS, CHECK, SEND = "takedown.trace", "takedown.steps", "takedown.check", "takedown.send"
INBOX = "takedown.inbox"
BATCH = 25  # cases per steps task: one host's URLs travel together
# Cases per trace task: a trace task traces its host names side by side
# (tracing.TRACE_PARALLEL), and cases are claimed whole host names at a time, so a task
# of 25 held one host name of a big report's 20 URLs each and waited on its DNS and RDAP
# answers alone; 100 are about five.
TRACE_BATCH = 100
CHECK_BATCH = 200  # cases per check task, of one host: re-checked at once by the fetch loop
CHECK_BACKLOG = 10  # check tasks waiting in their queue past which no more are claimed
# Trace tasks kept waiting in their queue at most: a big report is claimed as fast as the
# workers trace it, so no claim outlives its lease (TAKEDOWN_CLAIM_LEASE) in the queue and
# is handed out twice. 10 tasks are 1,000 cases: a few seconds of tracing, and even one at
# a time at a registry's 10 RDAP requests a second (each on a new network) inside the lease.
TRACE_BACKLOG = 10
# Notices one sweep builds at most (rendered text, HTML and an X-ARF report per URL: some
# 50 ms each for 100 URLs): a report owed to 1,000 desks is built over a few sweeps, and
# its first notices go out meanwhile, not after a sweep of 50 s that claimed nothing.
BUILD_LIMIT = 20
PURGE_EVERY = 3600.0  # seconds between retention purges
PURGE_BATCHES = 10  # batches of purge.BATCH cases per sweep: no sweep runs long
Publish = Callable[[str, Sequence[int]], None]
Backlog = Callable[[str], int]  # queue name → tasks waiting in it
# (checks queue, queues behind) → whether the workers taking the first take one of the others
Shares = Callable[[str, Sequence[str]], bool]
URGENT_BACKLOG = 4  # trace or notices tasks waiting past which re-checks are held back
CHECKS_HOLD_LIMIT = 60.0  # seconds re-checks are held back before they trickle again
# Seconds between two trickled check tasks: a sweep's worth each sweep, with sweeps a second
# apart while work waits, was 200 re-checks a second, most of a worker, in a big intake.
TRICKLE_EVERY = 10.0
log = logging.getLogger("takedown.sweep")


@dataclass
class SweepReport:
    """What one sweep handed out."""

    traced: int = 0
    stepped: int = 0  # cases handed to the steps task (notices queue)
    acted: int = 0  # cases handed to the check task (checks queue)
    notices_built: int = 0
    notices_sent: int = 0
    recovered: int = 0
    purged: int = 0
    checks_held: bool = False  # the checks queue was full: re-checks were left for later
    more: bool = False  # due work was left for a full queue or a claim's limit: sweep soon
    tasks: list[tuple[str, list[int]]] = field(default_factory=list)


def sweep(
    rt: Runtime, publish: Publish, backlog: Backlog | None = None, shares: Shares | None = None
) -> SweepReport:
    """Claim everything due now and publish its tasks, after each claim is committed.

    BACKLOG tells how many tasks wait in a queue: while the checks queue holds
    CHECK_BACKLOG or more, cases due only for a re-check stay unclaimed, so a big pass is
    claimed as fast as the workers take it, never faster than their claims last. While the
    trace or notices queue is behind (URGENT_BACKLOG, counting the send tasks this sweep
    hands out) and the workers that take re-checks take that queue as well (SHARES; None:
    assume they do), re-checks wait: a big report is traced and noticed first, its first
    re-checks after. Held for CHECKS_HOLD_LIMIT (an overload rather than a burst), one
    check task's worth goes out every TRICKLE_EVERY all the same, so they never starve.
    Cases to trace are claimed only to fill the trace queue up to TRACE_BACKLOG tasks: a
    100,000-URL report waits in the database, not in the queue, where claims would lapse
    unworked and go out twice. Work left this way sets the report's MORE: the scheduler sweeps
    again soon (engine/worker.py), not a `sweep_every` later.
    """
    now = rt.clock()
    report = SweepReport(recovered=recover_notices(rt, now))
    with transaction(rt.sessions) as session:
        # Holds that have ended go back to work (workflows/actions.py), claimable just below.
        release_due_holds(session, now)
    # Notices first: how many send tasks this sweep hands out decides whether re-checks wait.
    report.notices_built = len(batch_notices(rt, BUILD_LIMIT))
    report.more = report.notices_built >= BUILD_LIMIT
    with transaction(rt.sessions) as session:
        # Read the clock again: the notices just built are due from when they were built,
        # and go out in this sweep's tasks, not a sweep later.
        most = send_room(session)
        sending = claim_notices(session, rt.clock(), rt.lease, most) if most else []
    report.notices_sent = len(sending)
    report.more |= len(sending) == most or most == 0
    # A few notices a task, sent side by side (tasks.send_task): the relay's round trips,
    # not the worker's threads, set the pace of a burst of notices.
    sends = [(SEND, sending[i : i + SEND_CHUNK]) for i in range(0, len(sending), SEND_CHUNK)]
    # This sweep's send tasks count among the first notices owed: they are being sent.
    held = checks_wait(backlog, shares, owed=first_notices_owed(rt))
    rt.checks_held_since = (rt.checks_held_since or now) if held else None
    # Urgent work first, yet re-checks never starve: held past CHECKS_HOLD_LIMIT (an
    # overload, not a burst), one check task's worth goes out every TRICKLE_EVERY.
    trickle = (
        held
        and not checks_full(backlog)
        and (now - (rt.checks_held_since or now)).total_seconds() >= CHECKS_HOLD_LIMIT
        and (
            rt.checks_trickled_at is None
            or (now - rt.checks_trickled_at).total_seconds() >= TRICKLE_EVERY
        )
    )
    if trickle:
        rt.checks_trickled_at = now
    room = trace_room(backlog)  # None: no bound (no broker to ask)
    with transaction(rt.sessions) as session:
        claimed = claim_due(session, now, rt.lease, CLAIM_LIMIT, not held, traces=room is None)
        report.more |= len(claimed) == CLAIM_LIMIT or held or room == 0
        if room:
            traces = claim_traces(session, now, rt.lease, room)
            report.more |= bool(traces)  # whole host names: fewer than ROOM may leave more
            claimed += traces
        if trickle:
            claimed += claim_due(session, now, rt.lease, CHECK_BATCH, traces=False, steps=False)
    report.checks_held = held
    groups: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for case in claimed:
        groups[task_for(case)][case.host].append(case.id)
    # Published most urgent first (a worker takes its queues in turn, each in order).
    report.tasks += sends
    for task in (STEPS, TRACE, CHECK):
        report.tasks += batches(task, groups.get(task, {}))
    report.traced = _count(report.tasks, TRACE)
    report.stepped = _count(report.tasks, STEPS)
    report.acted = _count(report.tasks, CHECK)
    if inbox_due(rt, now):
        report.tasks.append((INBOX, []))
    for task, ids in report.tasks:
        publish(task, ids)
    report.purged = purge_due(rt, now)  # last: a failed purge must not hold up the work
    return report


def task_for(case: Claimed) -> str:
    """Return the task a claimed case goes to.

    trace   not routed yet (new, waiting, needs an analyst to trace it)
    steps   active with a workflow step due: owe it now, on the notices queue
    check   active with only a re-check due; removed and watched; changed content
    """
    if case.state == CaseState.ACTIVE and case.step_due:
        return STEPS
    if case.state in (CaseState.ACTIVE, CaseState.REMOVED) or case.changed:
        return CHECK
    return TRACE


def batches(task: str, by_host: dict[str, list[int]]) -> list[tuple[str, list[int]]]:
    """Split one task's cases into batches of at most TRACE_BATCH, BATCH (steps) or CHECK_BATCH
    (checks: the fetch loop re-checks them at once) cases, a host's cases together.

    A host with more than a batch fills batches of its own; hosts with fewer share one, so
    a trickle of reports (one case on each of twenty hosts a second) makes one task, not
    twenty: a task costs the same few queries and broker round trips whatever its size,
    and per-case tasks were most of the work under a steady load (benchmarks, workload 4).
    A shared check batch writes its results when its slowest fetch ends, which the fetch
    deadline (TAKEDOWN_FETCH_DEADLINE) bounds.
    """
    size = {CHECK: CHECK_BATCH, TRACE: TRACE_BATCH}.get(task, BATCH)
    found: list[tuple[str, list[int]]] = []
    shared: list[int] = []
    for _host, ids in sorted(by_host.items()):
        for start in range(0, len(ids), size):
            chunk = ids[start : start + size]
            if len(chunk) == size:
                found.append((task, chunk))
                continue
            if len(shared) + len(chunk) > size:
                found.append((task, shared))
                shared = []
            shared = shared + chunk
    if shared:
        found.append((task, shared))
    return found


def checks_wait(backlog: Backlog | None, shares: Shares | None, owed: int = 0) -> bool:
    """Tell whether re-checks wait this sweep: their queue is full, or urgent work is behind
    on the workers that would run them — tasks waiting in the trace or notices queue, or
    OWED send tasks' worth of first notices the database holds unsent (first_notices_owed:
    those being sent, this sweep's among them, and a big report's not yet in a notice)."""
    if backlog is None:
        return False
    if checks_full(backlog):
        return True
    checks = queue_of(CHECK)
    urgent = sorted({queue_of(TRACE), queue_of(STEPS), queue_of(SEND)} - {checks})
    extra = {queue_of(SEND): owed}
    behind = [
        queue
        for queue in urgent
        if _waiting(backlog, queue) + extra.get(queue, 0) >= URGENT_BACKLOG
    ]
    return bool(behind) and (shares is None or shares(checks, behind))


def first_notices_owed(rt: Runtime) -> int:
    """Return, in send tasks' worth, the first notices the database holds unsent: notices
    being sent or due to be, and a big report's owed URLs not yet in a notice (a check
    batch's worth or more count as a burst). What the queues do not show: tasks already
    running, and the notices a report still being traced will make."""
    with rt.sessions() as session:
        # Being sent, and first notices due but left pending for a full notices queue.
        due_first = and_(
            Notice.status == NoticeStatus.PENDING,
            Notice.kind.in_(FIRST_NOTICE_KINDS),
            Notice.due_at <= rt.clock(),
        )
        sending = session.scalar(
            select(func.count())
            .select_from(Notice)
            .where(or_(Notice.status == NoticeStatus.SENDING, due_first))
        )
        unbatched = session.scalar(
            select(func.count())
            .select_from(NoticeItem)
            .where(NoticeItem.notice_id.is_(None), NoticeItem.kind.in_(FIRST_NOTICE_KINDS))
        )
    burst = URGENT_BACKLOG if (unbatched or 0) >= CHECK_BATCH else 0
    return -(-(sending or 0) // SEND_CHUNK) + burst


def send_room(session: Session) -> int:
    """Return how many notices this sweep may claim for sending: up to SENDING_MOST being
    sent at once. A report owed to 1,000 desks waits in the database, pending, not claimed
    in the queue, where its claims would lapse before their turn and go back."""
    sending = session.scalar(
        select(func.count()).select_from(Notice).where(Notice.status == NoticeStatus.SENDING)
    )
    return min(NOTICE_CLAIM, max(0, SENDING_MOST - (sending or 0)))


def trace_room(backlog: Backlog | None) -> int | None:
    """Return how many cases to trace this sweep may claim: enough to fill the trace queue
    up to TRACE_BACKLOG tasks; None when there is no queue to ask (no bound)."""
    if backlog is None:
        return None
    return max(0, TRACE_BACKLOG - _waiting(backlog, queue_of(TRACE))) * TRACE_BATCH


def checks_full(backlog: Backlog | None) -> bool:
    """Tell whether CHECK_BACKLOG or more check tasks wait: then no re-check is claimed."""
    return backlog is not None and _waiting(backlog, queue_of(CHECK)) >= CHECK_BACKLOG


def _waiting(backlog: Backlog, queue: str) -> int:
    """Return BACKLOG of QUEUE, 0 when the broker cannot say (the sweep goes on)."""
    try:
        return backlog(queue)
    except Exception:  # noqa: BLE001 - a full queue only costs duplicate work, never a case
        log.warning("could not read the length of queue %s", queue)
        return 0


def _count(tasks: list[tuple[str, list[int]]], name: str) -> int:
    return sum(len(ids) for task, ids in tasks if task == name)


def inbox_due(rt: Runtime, now: dt.datetime) -> bool:
    """Tell whether the mailbox (TAKEDOWN_IMAP_URL) is to be read now: every `inbox_every`.

    Reading it is a task of its own (the sweep does no I/O but the database's and the
    broker's); two reads at once are harmless, each message counting once by its digest.
    """
    if rt.settings.imap_url is None or (rt.inbox_due_at is not None and now < rt.inbox_due_at):
        return False
    rt.inbox_due_at = now + dt.timedelta(seconds=rt.policy.inbox_every)
    return True


def purge_due(rt: Runtime, now: dt.datetime) -> int:
    """Purge cases past TAKEDOWN_RETENTION, at most once an hour; return how many."""
    period = rt.settings.retention
    if period is None or (rt.purge_due_at is not None and now < rt.purge_due_at):
        return 0
    done = purge_closed(rt.sessions, now, period, max_batches=PURGE_BATCHES)
    # A backlog (the first run after enabling it) goes on at the next sweep, a bit at a time.
    rt.purge_due_at = now + dt.timedelta(seconds=0 if done.more else PURGE_EVERY)
    if done.ids:
        reclaim(rt.engine, wait=False)
        log.info(
            "retention: purged %d cases removed or closed more than %s ago",
            len(done.ids),
            format_duration(period),
        )
    return len(done.ids)


def recover_notices(rt: Runtime, now: dt.datetime) -> int:
    """Release notices whose sender vanished: unsent ones go back, begun ones turn uncertain."""
    with transaction(rt.sessions) as session:
        expired = session.scalars(
            select(Notice)
            .where(Notice.status == NoticeStatus.SENDING, Notice.claimed_until <= now)
            .with_for_update(skip_locked=True)
        ).all()
        for notice in expired:
            if notice.send_started_at is None:
                notice.status, notice.claimed_until = NoticeStatus.PENDING, None
            else:
                # It may have left: resending could deliver it twice. An analyst decides.
                settle(session, notice, NoticeStatus.UNCERTAIN, now, None)
    return len(expired)
