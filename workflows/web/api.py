"""The HTTP API under /api: cases and the actions on them (users and stats: api_admin.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, File, Path, Query, Request, Response, UploadFile
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from workflows.config.hotlines import HotlineDirectory, load_hotlines
from workflows.core.intake import check_field, normalize_lines
from workflows.engine import actions, hand_routing
from workflows.errors import BadValue, NotFound
from workflows.store.cases import report
from workflows.store.models import Case
from workflows.store.queries import case_detail, case_objects
from workflows.web import (
    api_admin,
    api_bulk,
    api_export,
    api_inbox,
    api_notices,
    api_users,
    csv_upload,
)
from workflows.web.auth import DB, CurrentUser, Now, OverdueAfter, Supervisor, WakeSweep, Watch
from workflows.web.filters import CaseFilters, case_filters
from workflows.web.schemas import (
    CaseDetail,
    CaseOut,
    CloseIn,
    ConfirmIn,
    ErrorBody,
    HoldIn,
    NoteIn,
    ReasonIn,
    ReportedCase,
    ReportIn,
    RouteIn,
)

DESCRIPTION = """\
Report URLs, follow their cases, and act on them.

**Authentication**: `Authorization: Bearer <token>` (a token from `takedown user add` or
`POST /api/users/{name}/tokens`), or the web desk's session cookie, in which case every
POST or DELETE must carry the session's CSRF token in the `X-CSRF-Token` header. API
tokens last until revoked (`DELETE /api/tokens/{id}`); a revoked token is refused at once.

**Roles**: `analyst` reports, views, adds notes, asks for re-checks, routes a case that
needs an analyst by hand or sends it a one-off notice; `supervisor` may also close (with a
reason's `code`), reopen and hold cases, settle uncertain notices and manage users.
`POST /api/cases/bulk` does one action to many cases, each as its single action would, for
the role that single action needs.

**Uncertain notices**: a notice whose worker died mid-send, or whose relay fell silent
after the message data, may or may not have arrived; it is never resent automatically.
`GET /api/notices?status=uncertain` lists them; a supervisor settles each with
`POST /api/notices/{id}/resolve` (`sent`, or `resend` with the same Message-ID).

**Errors** are JSON `{"error": "…", "field": "…"}`: 401 unauthenticated, 403 wrong role
or missing CSRF token, 404 unknown case, notice, user or token, 409 the case's (or
notice's) state does not allow it, 413 a body over its limit (read no further), 422 bad
input (the field is named), 429 too many failed sign-ins or unknown tokens (wait
`Retry-After` seconds). Times are ISO 8601 UTC.
"""

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No valid API token or session"},
    403: {"model": ErrorBody, "description": "Wrong role, or a cookie POST without CSRF token"},
    404: {"model": ErrorBody, "description": "No such case, notice, user or token"},
    409: {"model": ErrorBody, "description": "The case's (or notice's) state does not allow this"},
    413: {"model": ErrorBody, "description": "The request body is larger than allowed"},
    422: {"model": ErrorBody, "description": "Bad input: `field` names it"},
    429: {
        "model": ErrorBody,
        "description": "Too many failed sign-ins or unknown tokens: wait Retry-After seconds",
        "headers": {"Retry-After": {"description": "seconds", "schema": {"type": "integer"}}},
    },
}
MAX_ID = 2**31 - 1  # the id columns' range on PostgreSQL
CSVFile = Annotated[UploadFile, File(description="UTF-8 CSV; header row: url, reference, category")]
CaseId = Annotated[int, Path(ge=1, le=MAX_ID, description="the case's id")]

router = APIRouter(prefix="/api", responses=ERRORS)
cases = APIRouter(tags=["cases"])


def objects(session: Session, found: Sequence[Case]) -> list[dict[str, Any]]:
    """Return the case objects of FOUND (views.py, shared with the CLI), held_from added."""
    shown = case_objects(session, found)
    for obj, case in zip(shown, found, strict=True):
        obj["held_from"] = case.held_from
    return shown


def reported(session: Session, pairs: Sequence[tuple[int, bool]]) -> list[dict[str, Any]]:
    """Return the case objects of reported (case id, joined) pairs, in their order."""
    found = {c.id: c for c in session.scalars(select(Case).where(Case.id.in_(dict(pairs))))}
    shown = objects(session, [found[case_id] for case_id, _ in pairs])
    return [{**obj, "joined": joined} for obj, (_, joined) in zip(shown, pairs, strict=True)]


@cases.post(
    "/cases",
    status_code=201,
    response_model=list[ReportedCase],
    summary="Report URLs: open a case per URL, or join its open case",
)
def report_cases(
    body: ReportIn, user: CurrentUser, session: DB, now: Now, wake_sweep: WakeSweep
) -> Any:
    """Normalise every URL (the first bad one refuses them all) and open or join cases."""
    urls = normalize_lines([(f"urls[{i}]", url) for i, url in enumerate(body.urls)])
    ref, category = check_field("ref", body.ref), check_field("category", body.category)
    done = report(session, urls, reference=ref, category=category, analyst=user.name, now=now)
    session.commit()
    wake_sweep()
    return reported(session, [(r.id, r.joined) for r in done])


@cases.post(
    "/cases/csv",
    status_code=201,
    response_model=list[ReportedCase],
    summary="Report URLs from a CSV file (columns url, reference, category)",
)
def report_csv(
    file: CSVFile, user: CurrentUser, session: DB, now: Now, wake_sweep: WakeSweep
) -> Any:
    """Report every row; a bad row refuses the whole file, naming the row."""
    rows = csv_upload.read_rows(file.file.read(csv_upload.MAX_BYTES + 1))
    done = []
    for row in rows:
        done += report(
            session,
            [row.url],
            reference=row.reference,
            category=row.category,
            analyst=user.name,
            now=now,
        )
    session.commit()
    wake_sweep()
    return reported(session, [(r.id, r.joined) for r in done])


@cases.get(
    "/cases",
    response_model=list[CaseOut],
    summary="List cases, newest first, filtered",
    responses={200: {"headers": {"X-Total-Count": {"description": "matches, all pages"}}}},
)
def list_cases(
    response: Response,
    filters: Annotated[CaseFilters, Query()],
    session: DB,
    now: Now,
    late: OverdueAfter,
    user: CurrentUser,
) -> Any:
    """Return one page of the cases matching every filter given."""
    where = case_filters(filters, now, late)
    total = session.scalar(select(func.count()).select_from(Case).where(*where))
    response.headers["X-Total-Count"] = str(total or 0)
    page = session.scalars(
        select(Case)
        .where(*where)
        .order_by(Case.id.desc())
        .limit(filters.limit)
        .offset(filters.offset)
    )
    return objects(session, list(page))


@cases.get("/cases/{case_id}", response_model=CaseDetail, summary="One case with its timeline")
def get_case(case_id: CaseId, session: DB, user: CurrentUser) -> Any:
    """Return the case with its trace, events, notices (full text) and checks."""
    case = session.get(Case, case_id)
    if case is None:
        raise NotFound(f"no case {case_id}")
    return {**case_detail(session, case), "held_from": case.held_from}


def _done(session: Session, case: Case) -> dict[str, Any]:
    session.commit()
    return objects(session, [case])[0]


@cases.post("/cases/{case_id}/close", response_model=CaseOut, summary="Close an open case")
def close_case(
    case_id: CaseId, user: Supervisor, session: DB, now: Now, body: CloseIn | None = None
) -> Any:
    """Stop the case's workflow (supervisor), saying why: `code` from the list, and `reason`
    in words (required for `other`). 422 naming the field without them."""
    given = body or CloseIn.model_validate({})
    code, reason = actions.close_reason(given.code, given.reason)
    return _done(session, actions.close(session, case_id, user, now=now, code=code, reason=reason))


@cases.post(
    "/cases/{case_id}/reopen", response_model=CaseOut, summary="Reopen a closed or removed case"
)
def reopen_case(
    case_id: CaseId, user: Supervisor, session: DB, now: Now, body: ReasonIn | None = None
) -> Any:
    """Trace the URL again and start its notices over (supervisor); 409 if another is open."""
    reason = body.reason if body else None
    return _done(session, actions.reopen(session, case_id, user, now=now, reason=reason))


def hotlines_of(request: Request) -> HotlineDirectory:
    """Return the partner hotline directory (read once per app, as the policy is)."""
    state = request.app.state
    if getattr(state, "hotlines", None) is None:
        state.hotlines = load_hotlines(state.settings.hotlines)
    directory: HotlineDirectory = state.hotlines
    return directory


@cases.post(
    "/cases/{case_id}/route",
    response_model=CaseOut,
    summary="Route a case that needs an analyst by hand: its workflow starts",
)
def route_case(
    case_id: CaseId, body: RouteIn, request: Request, user: CurrentUser, session: DB, now: Now
) -> Any:
    """Set the route, country and recipients (the analyst's choice); the first notice is
    owed at once. 409 unless the case needs an analyst; 422 naming the bad field."""
    case = hand_routing.route_by_hand(
        session,
        case_id,
        user,
        route=body.route,
        country=body.country,
        recipients=body.recipients,
        now=now,
        routes=request.app.state.policy.workflows,
        hotlines=hotlines_of(request),
        reason=body.reason,
    )
    return _done(session, case)


@cases.post("/cases/{case_id}/notes", status_code=201, response_model=CaseOut, summary="Add a note")
def add_note(case_id: CaseId, body: NoteIn, user: CurrentUser, session: DB, now: Now) -> Any:
    """Add the note to the case's timeline as an event by the user."""
    return _done(session, actions.add_note(session, case_id, user, body.text, now=now))


@cases.post(
    "/cases/{case_id}/recheck", response_model=CaseOut, summary="Re-check (or re-trace) now"
)
def recheck_case(
    case_id: CaseId, user: CurrentUser, session: DB, now: Now, body: ReasonIn | None = None
) -> Any:
    """Make the case due now: an active case is re-checked, an untraced one traced."""
    reason = body.reason if body else None
    return _done(session, actions.force_recheck(session, case_id, user, now=now, reason=reason))


@cases.post(
    "/cases/{case_id}/confirm",
    response_model=CaseOut,
    summary="Settle a case whose content changed: removed, or still present",
)
def confirm_case(
    case_id: CaseId, body: ConfirmIn, user: CurrentUser, session: DB, now: Now, watch: Watch
) -> Any:
    """Confirm changed content removed (watched from now on) or present (the new reference)."""
    case = actions.confirm(
        session, case_id, user, body.removed, now=now, reason=body.reason, watch=watch
    )
    return _done(session, case)


@cases.post(
    "/cases/{case_id}/hold",
    response_model=CaseOut,
    summary="Hold a case: pause its workflow until a time",
)
def hold_case(case_id: CaseId, body: HoldIn, user: Supervisor, session: DB, now: Now) -> Any:
    """Pause the workflow (e.g. while police ask for time); the sweep resumes it at the end."""
    if (body.until is None) == (body.days is None):
        raise BadValue("until", "give either until (a time) or days, not both")
    until = body.until or now + dt.timedelta(days=body.days or 0)
    case = actions.hold(session, case_id, user, until, now=now, reason=body.reason)
    return _done(session, case)


@cases.post("/cases/{case_id}/release", response_model=CaseOut, summary="End a hold now")
def release_case(case_id: CaseId, user: Supervisor, session: DB, now: Now) -> Any:
    """Return a held case to its workflow at once (supervisor)."""
    return _done(session, actions.release_hold(session, case_id, user, now=now))


router.include_router(api_bulk.router)  # before cases: /cases/bulk is no case id
router.include_router(cases)
router.include_router(api_export.router)  # GET /cases.csv
router.include_router(api_notices.router)
router.include_router(api_inbox.router)
router.include_router(api_admin.router)
router.include_router(api_users.router)
