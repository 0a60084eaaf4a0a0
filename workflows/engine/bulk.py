"""Bulk actions: one action on many cases, each case done as its single action does it.

    run_bulk    for each selected case, in id order: the single action (actions.py), in a
                savepoint of its own, with its own compare-and-set and its own event by
                the user; a case the action does not apply to (a removed case to close, a
                case gone) is skipped with the reason and the others go on
    select_ids  the cases a filter matches, resolved now; more than MAX_CASES: refused

The action's own input (the close reason, the hold's end, the text) is checked once, before
any case is touched: bad input changes nothing. The pure parts (`check_ids`, `Params`,
`Outcome` and its summary) take no database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from workflows.engine import actions
from workflows.errors import BadValue, Conflict, NotFound
from workflows.kinds import BulkAction, CloseReason
from workflows.store.models import Case, User

MAX_CASES = 1000  # one bulk action at most: a selection past it is refused, never cut
SUPERVISOR_ONLY = frozenset({BulkAction.HOLD, BulkAction.RELEASE, BulkAction.CLOSE})
DONE = {  # what the summary says was done
    BulkAction.HOLD: "held",
    BulkAction.RELEASE: "released",
    BulkAction.CLOSE: "closed",
    BulkAction.RECHECK: "asked a re-check of",
    BulkAction.CONFIRM_REMOVED: "confirmed removed",
    BulkAction.CONFIRM_PRESENT: "confirmed still present",
}
SHOWN_SKIPS = 5  # skipped cases named in a summary; the rest are counted


@dataclass(frozen=True)
class Params:
    """What a bulk action does to each case, checked once (see `params`)."""

    action: BulkAction
    code: CloseReason | None = None  # close
    reason: str | None = None  # close, hold, recheck, confirm
    until: dt.datetime | None = None  # hold


@dataclass
class Outcome:
    """The cases done and those skipped (with why), in the order they were taken."""

    action: BulkAction
    done: list[int] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Return the API's answer."""
        return {
            "action": str(self.action),
            "done": self.done,
            "skipped": [{"id": case_id, "reason": why} for case_id, why in self.skipped],
        }

    def summary(self) -> str:
        """Return one line for the desk, e.g. 'Closed 10 cases, skipped 2 (case 4: …)'."""
        count = len(self.done)
        line = f"{DONE[self.action]} {count} case{'s' * (count != 1)}"
        line = line[0].upper() + line[1:]
        if self.skipped:
            named = "; ".join(why for _, why in self.skipped[:SHOWN_SKIPS])
            more = len(self.skipped) - SHOWN_SKIPS
            named += f"; and {more} more" if more > 0 else ""
            line += f", skipped {len(self.skipped)} ({named})"
        return line + "."


def check_ids(ids: Sequence[int]) -> list[int]:
    """Return IDS once each, in order; refuse none, or more than MAX_CASES (field `ids`)."""
    chosen = list(dict.fromkeys(ids))
    if not chosen:
        raise BadValue("ids", "select at least one case")
    if len(chosen) > MAX_CASES:
        raise BadValue("ids", f"{len(chosen)} cases: at most {MAX_CASES} at once")
    return chosen


def params(
    action: str,
    now: dt.datetime,
    *,
    code: str | None = None,
    reason: str | None = None,
    until: dt.datetime | None = None,
) -> Params:
    """Return the checked input of ACTION; raise BadValue naming the field at fault."""
    if action not in DONE:
        raise BadValue("action", f"{action[:20]!r} is not one of {', '.join(DONE)}")
    kind = BulkAction(action)
    text = actions.check_text("reason", (reason or "").strip() or None)
    if code is not None and kind != BulkAction.CLOSE:
        raise BadValue("code", f"only closing takes a close reason, not {kind}")
    if until is not None and kind != BulkAction.HOLD:
        raise BadValue("until", f"only a hold takes an end, not {kind}")
    if kind == BulkAction.CLOSE:
        reason_code, text = actions.close_reason(code, text)
        return Params(kind, code=reason_code, reason=text)
    if kind == BulkAction.HOLD:
        if until is None:
            raise BadValue("until", "say how long the hold lasts: until (a time) or days")
        return Params(kind, reason=text, until=actions.check_until(until, now))
    if kind == BulkAction.RELEASE and text is not None:
        raise BadValue("reason", "releasing a hold takes no reason")
    return Params(kind, reason=text)


def select_ids(session: Session, where: Sequence[Any]) -> list[int]:
    """Return the ids of the cases matching WHERE now; more than MAX_CASES: BadValue."""
    matching = session.scalar(select(func.count()).select_from(Case).where(*where)) or 0
    if matching > MAX_CASES:
        raise BadValue(
            "filter", f"{matching} cases match: at most {MAX_CASES} at once; narrow the filter"
        )
    return list(session.scalars(select(Case.id).where(*where).order_by(Case.id)))


def run_bulk(
    session: Session,
    ids: Sequence[int],
    todo: Params,
    user: User,
    *,
    now: dt.datetime,
    watch: tuple[float, float],
) -> Outcome:
    """Do TODO to each case of IDS as USER; skip (and say why) those it does not apply to."""
    outcome = Outcome(todo.action)
    for case_id in ids:
        try:
            with session.begin_nested():  # a skipped case leaves nothing half done
                act(session, case_id, todo, user, now=now, watch=watch)
        except (Conflict, NotFound) as refused:
            outcome.skipped.append((case_id, refused.message))
        else:
            outcome.done.append(case_id)
    return outcome


def act(
    session: Session,
    case_id: int,
    todo: Params,
    user: User,
    *,
    now: dt.datetime,
    watch: tuple[float, float],
) -> None:
    """Do TODO to one case through its single action."""
    why = todo.reason
    if todo.action == BulkAction.CLOSE:
        assert todo.code is not None  # params() requires it
        actions.close(session, case_id, user, now=now, code=todo.code, reason=why)
    elif todo.action == BulkAction.HOLD:
        assert todo.until is not None  # params() requires it
        actions.hold(session, case_id, user, todo.until, now=now, reason=why)
    elif todo.action == BulkAction.RELEASE:
        actions.release_hold(session, case_id, user, now=now)
    elif todo.action == BulkAction.RECHECK:
        actions.force_recheck(session, case_id, user, now=now, reason=why)
    else:
        removed = todo.action == BulkAction.CONFIRM_REMOVED
        actions.confirm(session, case_id, user, removed, now=now, reason=why, watch=watch)
