"""The API's outbox: list notices (e.g. the uncertain ones), settle an uncertain one, list
the web-form tasks and mark one submitted, send a one-off notice about a case."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from workflows.core.figures import iso
from workflows.engine import notice_actions, one_off
from workflows.engine.runtime import Runtime
from workflows.kinds import NoticeStatus
from workflows.store.models import Case, Notice
from workflows.store.queries import notice_object
from workflows.web.auth import DB, CurrentUser, Now, Supervisor
from workflows.web.schemas import FormTask, ListedNotice, OneOffIn, ResolveIn, SubmittedIn

MAX_ID = 2**31 - 1  # the id columns' range on PostgreSQL
NoticeId = Annotated[int, Path(ge=1, le=MAX_ID, description="the notice's id (N-000042: 42)")]

router = APIRouter(tags=["notices"])


class NoticeFilters(BaseModel):
    """Filters of GET /api/notices. Unknown parameters: 422."""

    model_config = ConfigDict(extra="forbid")
    status: list[NoticeStatus] = Field(
        default_factory=list, description="repeat for several; uncertain: waiting for a decision"
    )
    limit: int = Field(100, ge=1, le=500)
    offset: int = Field(0, ge=0, le=10_000_000)


def listed(session: Session, notices: Sequence[Notice]) -> list[dict[str, Any]]:
    """Return the API objects of NOTICES, each with the ids of its cases."""
    cases = notice_actions.cases_of(session, [n.id for n in notices])
    return [
        {
            **notice_object(notice),
            "created_at": iso(notice.created_at),
            "attempts": notice.attempts,
            "smtp_code": notice.smtp_code,
            "smtp_reply": notice.smtp_reply,
            "cases": cases.get(notice.id, []),
        }
        for notice in notices
    ]


@router.get(
    "/notices",
    response_model=list[ListedNotice],
    summary="List notices, oldest first (status=uncertain: those waiting for a decision)",
    responses={200: {"headers": {"X-Total-Count": {"description": "matches, all pages"}}}},
)
def list_notices(
    response: Response,
    filters: Annotated[NoticeFilters, Query()],
    user: CurrentUser,
    session: DB,
) -> Any:
    """Return one page of the notices with any of the statuses given (all without)."""
    where = [Notice.status.in_(filters.status)] if filters.status else []
    total = session.scalar(select(func.count()).select_from(Notice).where(*where))
    response.headers["X-Total-Count"] = str(total or 0)
    page = session.scalars(
        select(Notice).where(*where).order_by(Notice.id).limit(filters.limit).offset(filters.offset)
    )
    return listed(session, list(page))


@router.post(
    "/notices/{notice_id}/resolve",
    response_model=ListedNotice,
    summary="Settle an uncertain notice: it was sent, or send it again",
)
def resolve_notice(
    notice_id: NoticeId, body: ResolveIn, user: Supervisor, session: DB, now: Now
) -> Any:
    """Decide an uncertain notice (supervisor); 409 unless it is uncertain."""
    notice = notice_actions.resolve(
        session, notice_id, user, body.outcome, now=now, reason=body.reason
    )
    session.commit()
    return listed(session, [notice])[0]


def form_tasks(
    request: Request, session: Session, notices: Sequence[Notice]
) -> list[dict[str, Any]]:
    """Return the API objects of web-form tasks: the form, its text and the URLs it lists."""
    forms = request.app.state.forms
    found = listed(session, notices)
    ids = {case_id for task in found for case_id in task["cases"]}
    urls = {i: u for i, u in session.execute(select(Case.id, Case.url).where(Case.id.in_(ids)))}
    by_id = {n.id: n for n in notices}
    for task in found:
        notice = by_id[task["id"]]
        desk = forms.by_url(notice.recipients)
        task.update(
            form=notice.recipients,
            name=desk.name if desk else None,
            note=desk.note if desk else None,
            text=notice.body_text,
            urls=[urls[i] for i in task["cases"] if i in urls],
        )
    return found


@router.get(
    "/forms",
    response_model=list[FormTask],
    summary="List the web-form tasks waiting for an analyst, oldest first",
)
def list_forms(
    request: Request,
    user: CurrentUser,
    session: DB,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Any:
    """Return the notices addressed to web-form desks that nobody has submitted yet."""
    return form_tasks(request, session, notice_actions.form_tasks(session, limit))


@router.post(
    "/notices/{notice_id}/submitted",
    response_model=ListedNotice,
    summary="Mark a web-form task submitted: its cases go on as after a sent notice",
)
def submitted(
    request: Request,
    notice_id: NoticeId,
    body: SubmittedIn,
    user: CurrentUser,
    session: DB,
    now: Now,
) -> Any:
    """Record that USER submitted the form (any analyst); 409 unless it waits as a form."""
    notice = notice_actions.submit_form(
        session, notice_id, user, now=now, reference=body.reference, forms=request.app.state.forms
    )
    session.commit()
    return listed(session, [notice])[0]


def outbox_runtime(request: Request) -> Runtime:
    """Return what building a notice needs (settings, templates), made once per app; it
    opens no connection: the sweep and the worker send what is stored."""
    state = request.app.state
    if getattr(state, "outbox_runtime", None) is None:
        state.outbox_runtime = Runtime(state.settings, state.policy, state.engine, state.clock)
    runtime: Runtime = state.outbox_runtime
    return runtime


@router.post(
    "/cases/{case_id}/notices",
    status_code=201,
    response_model=ListedNotice,
    summary="Send a one-off notice about a case that needs an analyst to an address",
)
def one_off_notice(
    request: Request,
    case_id: Annotated[int, Path(ge=1, le=MAX_ID, description="the case's id")],
    body: OneOffIn,
    user: CurrentUser,
    session: DB,
    now: Now,
) -> Any:
    """Store a notice listing the case's URL to `to`, sent by the outbox like every notice
    (at most once); the case's state does not change and no workflow starts. 409 unless
    the case needs an analyst, or when the same notice to that address is on its way or
    was delivered; 422 naming the field for a bad address."""
    notice = one_off.send_one_off(
        session,
        outbox_runtime(request),
        case_id,
        user,
        to=body.to,
        kind=body.kind,
        now=now,
        reason=body.reason,
    )
    session.commit()
    return listed(session, [notice])[0]
