"""The API's bulk action: one action on many cases, chosen by id or by the list's filter."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException
from pydantic import AwareDatetime, BaseModel, Field
from sqlalchemy.orm import Session

from workflows.engine import bulk
from workflows.errors import BadValue
from workflows.kinds import BulkAction, CloseReason, Role
from workflows.store.models import User
from workflows.web.auth import DB, CurrentUser, Now, OverdueAfter, Watch
from workflows.web.filters import CaseQuery, case_filters
from workflows.web.schemas import Strict, Text

MAX_ID = 2**31 - 1  # the id columns' range on PostgreSQL

router = APIRouter(tags=["cases"])


class BulkIn(Strict):
    """One action on many cases: `ids`, or `filter` (the query fields of GET /api/cases,
    resolved when the request arrives), with the action's own fields."""

    action: BulkAction = Field(
        description="hold, release and close: supervisors; recheck and confirm_*: analysts"
    )
    ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] | None = Field(
        None, min_length=1, max_length=bulk.MAX_CASES, description="the cases, by id"
    )
    filter: CaseQuery | None = Field(
        None, description=f"every case matching it now (at most {bulk.MAX_CASES}; no paging)"
    )
    code: CloseReason | None = Field(None, description="close: why (see the close action)")
    reason: Text | None = Field(None, description="close (required for `other`), hold, etc.")
    until: AwareDatetime | None = Field(None, description="hold: its end, with a time zone")
    days: float | None = Field(None, gt=0, le=365, description="hold: its length in days")


class Skipped(BaseModel):
    """A selected case the action did not apply to."""

    id: int
    reason: str = Field(description="why, e.g. 'case 7 is removed, not open'")


class BulkOut(BaseModel):
    """What was done: every selected case is in one of the two lists."""

    action: BulkAction
    selected: int = Field(description="the cases selected (by id, or matching the filter)")
    limit: int = Field(description="the most cases one bulk action takes")
    done: list[int]
    skipped: list[Skipped]


@router.post(
    "/cases/bulk",
    response_model=BulkOut,
    summary="Do one action to many cases: hold, release, close, recheck, confirm",
)
def bulk_action(
    body: BulkIn, user: CurrentUser, session: DB, now: Now, watch: Watch, late: OverdueAfter
) -> Any:
    """Each case as its single action would do it, with its own event by the user; a case
    the action does not apply to is skipped and said why. 403 if the single action is for
    supervisors; 422 naming the field for bad input or a filter matching too many."""
    if body.action in bulk.SUPERVISOR_ONLY and user.role != Role.SUPERVISOR:
        raise HTTPException(403, f"{body.action} is for supervisors; {user.name} is {user.role}")
    todo = bulk.params(
        body.action, now, code=body.code, reason=body.reason, until=_until(body, now)
    )
    ids = selection(session, body, now, late)
    outcome = bulk.run_bulk(session, ids, todo, user, now=now, watch=watch)
    session.commit()
    return {**outcome.as_dict(), "selected": len(ids), "limit": bulk.MAX_CASES}


def _until(body: BulkIn, now: dt.datetime) -> dt.datetime | None:
    """Return the hold's end from `until` or `days` (one of the two, for a hold only)."""
    if body.days is not None and body.until is not None:
        raise BadValue("until", "give either until (a time) or days, not both")
    if body.days is not None:
        if body.action != BulkAction.HOLD:
            raise BadValue("days", f"only a hold takes days, not {body.action}")
        return now + dt.timedelta(days=body.days)
    return body.until


def selection(session: Session, body: BulkIn, now: dt.datetime, overdue_after: float) -> list[int]:
    """Return the selected case ids: the given ones, or those matching the filter now
    (OVERDUE_AFTER: the policy's, in seconds, for its `overdue` field)."""
    if body.ids is not None and body.filter is None:
        return bulk.check_ids(body.ids)
    if body.filter is None or body.ids is not None:
        raise BadValue("ids", "give either ids (a list of cases) or filter, not both")
    return bulk.select_ids(session, case_filters(body.filter, now, overdue_after))


def role_allows(user: User, action: str) -> bool:
    """Tell whether USER may do ACTION in bulk (the desk shows only those)."""
    return action not in bulk.SUPERVISOR_ONLY or user.role == Role.SUPERVISOR
