"""What people do to cases: close, reopen, note, re-check now, confirm, hold and release
(routing by hand: hand_routing.py; a one-off notice: one_off.py; many cases: bulk.py).

Each action is a compare-and-set on the case's version (a worker's claim or another
person's action in between makes it read the case again) and an event whose actor is the
user's name; a close keeps its reason's code (CloseReason) and text on its event. A hold
pauses the workflow: the case goes to HELD with the hold's end as its due time (so it
stays visibly waiting), the sweep never hands it to a worker, and when the hold ends it
returns to the state it came from with its workflow clock moved on by the hold's length,
so no chaser falls due merely because time passed while it was held.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from workflows.core.figures import iso
from workflows.core.policy import removal_watch
from workflows.core.verdict import Evidence
from workflows.errors import BadValue, Conflict, NotFound
from workflows.kinds import (
    CLOSE_REASONS,
    OPEN_STATES,
    TERMINAL_STATES,
    CaseState,
    CheckOutcome,
    CloseReason,
    EventKind,
)
from workflows.store.cases import SYSTEM, record, release, url_key
from workflows.store.models import Case, Check, NoticeItem, User

MAX_HOLD = dt.timedelta(days=365)
MAX_TEXT = 10_000  # a note or a reason
ATTEMPTS = 5  # compare-and-set retries before telling the user to try again


Decide = Callable[[Case], dict[str, Any]]


def _apply(session: Session, case_id: int, decide: Decide) -> tuple[Case, dict[str, Any]]:
    """Write DECIDE's values to the case by compare-and-set, reading it again on a clash."""
    for _ in range(ATTEMPTS):
        case = session.get(Case, case_id, populate_existing=True)
        if case is None:
            raise NotFound(f"no case {case_id}")
        values = decide(case)
        before = {"state": case.state, "version": case.version}
        if release(session, case, **values):
            session.refresh(case)
            return case, before
    raise Conflict(f"case {case_id} kept changing while we acted on it: try again")


apply_change = _apply  # for the actions kept in modules of their own (hand_routing.py)


def apply_values(
    session: Session, case_id: int, decide: Callable[[Case], dict[str, Any] | None]
) -> bool:
    """Write DECIDE's values (None: nothing to write) to the case by compare-and-set, as
    the system, reading it again on a clash; return whether it was written."""
    for _ in range(ATTEMPTS):
        case = session.get(Case, case_id, populate_existing=True)
        if case is None:
            return False
        values = decide(case)
        if values is None:
            return False
        if release(session, case, **values):
            return True
    return False


def check_text(field: str, value: str | None) -> str | None:
    """Return VALUE if it is short enough for a note or a reason, else raise BadValue."""
    if value is not None and len(value) > MAX_TEXT:
        raise BadValue(field, f"at most {MAX_TEXT} characters")
    return value


def close_reason(code: str | None, reason: str | None) -> tuple[CloseReason, str | None]:
    """Return the close reason CODE (required: one of CloseReason) and its text REASON
    (required for `other`), blank text as none; else raise BadValue naming the field."""
    choices = "; ".join(f"{c.value} ({label})" for c, label in CLOSE_REASONS.items())
    if code is None or not str(code).strip():
        raise BadValue("code", f"say why the case is closed, one of: {choices}")
    if code not in CLOSE_REASONS:
        raise BadValue("code", f"{str(code)[:40]!r} is not a close reason; one of: {choices}")
    text = check_text("reason", (reason or "").strip() or None)
    if code == CloseReason.OTHER and text is None:
        raise BadValue("reason", "closing for another reason: say which in the text")
    return CloseReason(code), text


def close(
    session: Session,
    case_id: int,
    user: User,
    *,
    now: dt.datetime,
    code: CloseReason,
    reason: str | None = None,
) -> Case:
    """Close an open case for CODE (and REASON's words): its workflow stops and the URL may
    be reported afresh."""
    code, reason = close_reason(code, reason)

    def decide(case: Case) -> dict[str, Any]:
        if case.state not in OPEN_STATES:
            raise Conflict(f"case {case.id} is {case.state}, not open")
        return {
            "state": CaseState.CLOSED,
            "closed_at": now,
            "open_key": None,
            "due_at": None,
            "check_due_at": None,
            "held_from": None,
            "held_at": None,
        }

    case, before = _apply(session, case_id, decide)
    record(
        session,
        case.id,
        EventKind.CLOSED,
        now,
        user.name,
        code=code,
        reason=reason,
        was=before["state"],
    )
    return case


def reopen(
    session: Session, case_id: int, user: User, *, now: dt.datetime, reason: str | None = None
) -> Case:
    """Reopen a closed or removed case: it is traced again and its notices start over."""
    check_text("reason", reason)

    def decide(case: Case) -> dict[str, Any]:
        if case.state not in TERMINAL_STATES:
            raise Conflict(f"case {case.id} is {case.state}, not closed or removed")
        if case.purged_at is not None:
            raise Conflict(f"case {case.id} was purged: its URL is no longer stored")
        other = session.scalars(select(Case.id).where(Case.open_key == url_key(case.url))).first()
        if other is not None:
            raise Conflict(f"case {other} is open for this URL already")
        # A new round: the (case, round, step) keys of the first notices stay spent.
        return {
            "state": CaseState.NEW,
            "open_key": url_key(case.url),
            "due_at": now,
            "round": case.round + 1,
            "steps_done": 0,
            "trace_attempts": 0,
            "gone_streak": 0,
            "last_gone_at": None,
            "content_hash": None,
            "check_due_at": None,
            "closed_at": None,
            "removed_at": None,
            "first_notice_at": None,
            "last_error": None,
        }

    try:
        with session.begin_nested():  # a report of the same URL in between wins the key
            case, before = _apply(session, case_id, decide)
    except IntegrityError:
        raise Conflict(f"another case was opened for the URL of case {case_id}") from None
    record(session, case.id, EventKind.REOPENED, now, user.name, reason=reason, was=before["state"])
    return case


def add_note(session: Session, case_id: int, user: User, text: str, *, now: dt.datetime) -> Case:
    """Add an analyst's note to a case's timeline (the case itself does not change)."""
    if not text.strip():
        raise BadValue("text", "the note is empty")
    check_text("text", text)
    case = session.get(Case, case_id)
    if case is None:
        raise NotFound(f"no case {case_id}")
    record(session, case.id, EventKind.NOTE, now, user.name, text=text)
    return case


def force_recheck(
    session: Session, case_id: int, user: User, *, now: dt.datetime, reason: str | None = None
) -> Case:
    """Make an open case due now: an active one is re-checked, the others traced again."""

    def decide(case: Case) -> dict[str, Any]:
        if case.state == CaseState.HELD:
            raise Conflict(f"case {case.id} is held until {iso(case.due_at)}: release it first")
        if case.state not in OPEN_STATES:
            raise Conflict(f"case {case.id} is {case.state}, not open")
        values: dict[str, Any] = {"due_at": now}
        if case.state == CaseState.ACTIVE or case.changed_streak > 0:
            values["check_due_at"] = now
        return values

    check_text("reason", reason)
    case, before = _apply(session, case_id, decide)
    record(
        session,
        case.id,
        EventKind.RECHECK_REQUESTED,
        now,
        user.name,
        reason=reason,
        was=before["state"],
    )
    return case


def confirm(
    session: Session,
    case_id: int,
    user: User,
    removed: bool,
    *,
    now: dt.datetime,
    watch: tuple[float, float],
    reason: str | None = None,
) -> Case:
    """Settle a case whose content changed: REMOVED confirms removal, else still present.

    Removed: the case is removed by the analyst's word and watched (WATCH: every, for, in
    seconds) like any removal. Present: what the URL serves now becomes the content later
    checks are compared with, and the workflow goes on where it stood.
    """
    check_text("reason", reason)
    latest = session.scalars(
        select(Check)
        .where(Check.case_id == case_id, Check.outcome == CheckOutcome.CHANGED)
        .order_by(Check.id.desc())
        .limit(1)
    ).first()

    def decide(case: Case) -> dict[str, Any]:
        if case.changed_streak == 0 or latest is None:
            raise Conflict(f"case {case.id} has no changed content to confirm")
        if case.state not in (CaseState.ACTIVE, CaseState.NEEDS_ANALYST):
            raise Conflict(f"case {case.id} is {case.state}: nothing to confirm")
        if removed:
            return {
                "state": CaseState.REMOVED,
                "removed_at": now,
                "removed_by": "analyst",
                "open_key": None,
                "changed_streak": 0,
                "last_error": None,
                **removal_watch(now, *watch),
            }
        evidence = Evidence(
            sha256=latest.sha256,
            kind="picture" if latest.pdq else "page" if latest.text_sha256 else "other",
            pdq=latest.pdq,
            tlsh=latest.tlsh,
            text_sha256=latest.text_sha256,
        )
        return {
            "state": CaseState.ACTIVE,
            "evidence": evidence.as_dict(),
            "content_hash": latest.sha256,
            "changed_streak": 0,
            "last_error": None,
            "due_at": now,
        }

    case, before = _apply(session, case_id, decide)
    record(
        session,
        case.id,
        EventKind.CONFIRMED,
        now,
        user.name,
        removed=removed,
        reason=reason,
        was=before["state"],
    )
    return case


def hold(
    session: Session,
    case_id: int,
    user: User,
    until: dt.datetime,
    *,
    now: dt.datetime,
    reason: str | None = None,
) -> Case:
    """Pause an open case's workflow until UNTIL (a held case's hold is moved to UNTIL)."""
    check_text("reason", reason)
    check_until(until, now)

    def decide(case: Case) -> dict[str, Any]:
        if case.state not in OPEN_STATES:
            raise Conflict(f"case {case.id} is {case.state}, not open")
        if case.state == CaseState.HELD:
            return {"due_at": until}
        return {
            "state": CaseState.HELD,
            "held_from": case.state,
            "held_at": now,
            "due_at": until,
            "steps_done": min(_unsent_steps(session, case), default=case.steps_done),
        }

    case, before = _apply(session, case_id, decide)
    if before["state"] != CaseState.HELD:
        _withdraw_unsent(session, case)
    record(
        session,
        case.id,
        EventKind.HELD if before["state"] != CaseState.HELD else EventKind.HOLD_CHANGED,
        now,
        user.name,
        until=iso(until),
        reason=reason,
        was=before["state"],
    )
    return case


def check_until(until: dt.datetime, now: dt.datetime) -> dt.datetime:
    """Return UNTIL if a hold may end then, else raise BadValue naming `until`."""
    if until.tzinfo is None:
        raise BadValue("until", "give a time zone, e.g. 2026-12-01T09:00:00Z")
    if until <= now:
        raise BadValue("until", "the hold must end in the future")
    if until - now > MAX_HOLD:
        raise BadValue("until", f"a hold lasts at most {MAX_HOLD.days} days")
    return until


def _unsent(case: Case) -> Any:
    return (
        NoticeItem.case_id == case.id,
        NoticeItem.round == case.round,
        NoticeItem.notice_id.is_(None),
    )


def _unsent_steps(session: Session, case: Case) -> list[int]:
    """Return the steps owed by CASE but not yet put in a notice."""
    return list(session.scalars(select(NoticeItem.step).where(*_unsent(case))))


def _withdraw_unsent(session: Session, case: Case) -> None:
    """Take back the owed steps; the hold set steps_done so they fall due again after it."""
    # Should one be batched meanwhile, its notice goes out, and the unique (case, round,
    # step) key keeps the step from being owed a second time after the hold.
    session.execute(delete(NoticeItem).where(*_unsent(case)))


def release_hold(session: Session, case_id: int, user: User, *, now: dt.datetime) -> Case:
    """End a hold now: the case goes back to its workflow."""
    return _release(session, case_id, user.name, EventKind.HOLD_RELEASED, now)


def release_due_holds(session: Session, now: dt.datetime) -> int:
    """Return held cases whose hold has ended to their workflow (the sweep calls this)."""
    due = session.scalars(
        select(Case.id).where(Case.state == CaseState.HELD, Case.due_at <= now).limit(500)
    ).all()
    released = 0
    for case_id in due:
        try:
            _release(session, case_id, SYSTEM, EventKind.HOLD_ENDED, now)
        except Conflict:
            continue  # released or closed by someone meanwhile
        released += 1
    return released


def _release(session: Session, case_id: int, actor: str, kind: EventKind, now: dt.datetime) -> Case:
    def decide(case: Case) -> dict[str, Any]:
        if case.state != CaseState.HELD:
            raise Conflict(f"case {case.id} is {case.state}, not held")
        back = case.held_from or CaseState.NEW
        values: dict[str, Any] = {
            "state": back,
            "held_from": None,
            "held_at": None,
            "due_at": now,
        }
        if back == CaseState.ACTIVE:
            values["check_due_at"] = now  # is it still there after the pause?
            clock = case.steps_from or case.routed_at
            if clock is not None and case.held_at is not None:
                values["steps_from"] = clock + (now - case.held_at)  # steps move on, not routing
        return values

    case, _ = _apply(session, case_id, decide)
    record(session, case.id, kind, now, actor, state=case.state)
    return case
