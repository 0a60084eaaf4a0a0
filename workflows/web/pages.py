"""The desk's pages: sign-in, the case list, the report form, a case, the web-form tasks,
the statistics.

Server-rendered with Jinja2 (autoescaped, StrictUndefined); the little JavaScript in
static/ puts in the list's rows rendered here (live.py), ticks ages and reads keys.
Reported URLs are shown as text, never as links or images: an analyst's browser must not
fetch them.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from sqlalchemy import select

from workflows.core.durations import format_duration
from workflows.core.figures import parse_since
from workflows.core.intake import check_field, normalize_lines
from workflows.engine import actions, hand_routing, notice_actions, one_off
from workflows.errors import Conflict, FieldError, InputError, NotFound
from workflows.kinds import Role
from workflows.store.cases import report
from workflows.store.models import Case, InboundMessage, NoticeItem
from workflows.store.queries import compute_stats
from workflows.web import account, bulk_pages, charts, desk, live, signin
from workflows.web.api import hotlines_of
from workflows.web.api_inbox import dead_recipients, inbound_counts, inbound_objects
from workflows.web.api_notices import form_tasks, outbox_runtime
from workflows.web.auth import DB, CurrentUser, Now, OverdueAfter, WakeSweep, Watch
from workflows.web.overview import overview
from workflows.web.render import redirect, render
from workflows.web.timeline import timeline, when

PERIODS = (("7 days", "7d"), ("30 days", "30d"), ("90 days", "90d"), ("all time", "all"))
SUPERVISOR_ACTIONS = frozenset({"close", "reopen", "hold", "release"})

router = APIRouter(include_in_schema=False)
router.include_router(signin.router)
router.include_router(account.router)
router.include_router(live.router)  # /cases/rows, before /cases/{case_id}
router.include_router(bulk_pages.router)  # the case list's bulk bar: /cases/bulk


@router.get("/")
def case_list(
    request: Request, user: CurrentUser, session: DB, now: Now, late: OverdueAfter
) -> Response:
    """Show the cases matching the filters, newest first, with the at-a-glance counts."""
    found, problem = desk.read_filters(request.query_params.multi_items())
    listing = desk.case_list(session, found, now, late)
    messages = desk.report_message(request.query_params)
    if problem:
        messages.insert(0, {"kind": "error", "text": f"{problem} — showing every case instead"})
    messages += bulk_pages.flash_messages(request)
    status = 422 if problem else 200
    return render(
        request,
        "cases.html",
        status,
        page="cases",
        messages=messages,
        filters=found.shown,
        filtered=bool(found.query),
        choices=desk.choices(session),
        overview=overview(session, now, late),
        overdue_after=format_duration(late),
        uncertain=desk.uncertain_notices(session),
        live_url="/cases/rows?" + urlencode(found.query),
        export_query=found.without_paging(),
        **listing,
    )


@router.get("/report")
def report_form(request: Request, user: CurrentUser) -> Response:
    """Show the form that takes a pasted list of URLs."""
    form = {"urls": "", "ref": "", "category": ""}
    return render(request, "report.html", page="report", problems=[], form=form)


@router.post("/report")
def report_urls(
    request: Request,
    user: CurrentUser,
    session: DB,
    now: Now,
    wake_sweep: WakeSweep,
    urls: Annotated[str, Form(max_length=2_000_000)] = "",
    ref: Annotated[str, Form()] = "",
    category: Annotated[str, Form()] = "",
) -> Response:
    """Open or join a case per URL; any bad line refuses them all, naming every bad line."""
    problems, lines = [], []
    for number, text in enumerate(urls.splitlines(), start=1):
        if text.strip() and not text.lstrip().startswith("#"):
            lines.append((f"line {number}", text.strip()))
    normalized = []
    for line in lines:
        try:
            normalized += normalize_lines([line])
        except FieldError as error:
            problems.append(error.message)
    fields = {}
    for name, value in (("ref", ref), ("category", category)):
        try:
            fields[name] = check_field(name, value.strip() or None)
        except FieldError as error:
            problems.append(error.message)
    if not lines:
        problems.append("no URL given: paste one URL per line")
    if problems:
        form = {"urls": urls, "ref": ref, "category": category}
        return render(request, "report.html", 422, page="report", problems=problems, form=form)
    done = report(
        session,
        normalized,
        reference=fields["ref"],
        category=fields["category"],
        analyst=user.name,
        now=now,
    )
    session.commit()
    wake_sweep()
    joined = sum(1 for r in done if r.joined)
    return redirect("/?" + urlencode({"reported": len(done), "joined": joined}))


@router.get("/cases/{case_id}")
def case_page(request: Request, case_id: int, user: CurrentUser, session: DB, now: Now) -> Response:
    """Show one case: its timeline, notices with their full text, checks and actions."""
    return _case(request, session, case_id, user.role, now, error=None, status=200)


def _case(
    request: Request,
    session: Any,
    case_id: int,
    role: str,
    now: Any,
    *,
    error: str | None,
    status: int,
    kept: dict[str, str] | None = None,
) -> Response:
    case = session.get(Case, case_id)
    if case is None:
        return render(request, "missing.html", 404, what=f"case {case_id}")
    detail = desk.case_detail(session, case, now)
    return render(
        request,
        "case.html",
        status,
        page="cases",
        error=error,
        kept=kept or {},  # what a refused form held: shown again to be fixed
        supervisor=role == Role.SUPERVISOR,
        timeline=timeline(detail["case"]["events"]),
        **detail,
    )


@router.post("/cases/{case_id}/route")
def route_by_hand(
    request: Request,
    case_id: int,
    user: CurrentUser,
    session: DB,
    now: Now,
    route: Annotated[str, Form(max_length=40)] = "",
    country: Annotated[str, Form(max_length=20)] = "",
    recipients: Annotated[str, Form(max_length=10_000)] = "",
    reason: Annotated[str, Form(max_length=actions.MAX_TEXT)] = "",
) -> Response:
    """Route a case that needs an analyst from its page: one address per line (or commas)."""
    addresses = [a for a in recipients.replace(",", "\n").splitlines() if a.strip()]
    try:
        hand_routing.route_by_hand(
            session,
            case_id,
            user,
            route=route,
            country=country,
            recipients=addresses,
            now=now,
            routes=request.app.state.policy.workflows,
            hotlines=hotlines_of(request),
            reason=reason.strip() or None,
        )
    except InputError as refused:
        session.rollback()
        return _refused(request, session, case_id, user.role, now, refused)
    session.commit()
    return redirect(f"/cases/{case_id}")


@router.post("/cases/{case_id}/notices")
def one_off_notice(
    request: Request,
    case_id: int,
    user: CurrentUser,
    session: DB,
    now: Now,
    to: Annotated[str, Form(max_length=320)] = "",
    kind: Annotated[str, Form(max_length=20)] = "notice",
    reason: Annotated[str, Form(max_length=actions.MAX_TEXT)] = "",
) -> Response:
    """Send a one-off notice about a case that needs an analyst from its page (one_off.py)."""
    try:
        notice = one_off.send_one_off(
            session,
            outbox_runtime(request),
            case_id,
            user,
            to=to,
            kind=kind,
            now=now,
            reason=reason,
        )
    except InputError as refused:
        session.rollback()
        kept = {"action": "notices", "to": to, "kind": kind, "reason": reason}
        return _refused(request, session, case_id, user.role, now, refused, kept=kept)
    session.commit()
    return redirect(f"/cases/{case_id}#notice-{notice.id}")


@router.post("/cases/{case_id}/{action}")
def case_action(
    request: Request,
    case_id: int,
    action: str,
    user: CurrentUser,
    session: DB,
    now: Now,
    watch: Watch,
    text: Annotated[str, Form(max_length=actions.MAX_TEXT)] = "",
    reason: Annotated[str, Form(max_length=actions.MAX_TEXT)] = "",
    days: Annotated[str, Form(max_length=20)] = "",
    code: Annotated[str, Form(max_length=40)] = "",
    confirm: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """Act on a case from its page's forms; a refusal shows the page again with why."""
    if action in SUPERVISOR_ACTIONS and user.role != Role.SUPERVISOR:
        error = f"Only a supervisor may {action} a case; {user.name} is an {user.role}."
        return _case(request, session, case_id, user.role, now, error=error, status=403)
    try:
        desk.act(
            session,
            case_id,
            action,
            user,
            now,
            text=text,
            reason=reason,
            days=days,
            watch=watch,
            code=code,
            confirm=confirm,
        )
    except InputError as refused:
        session.rollback()
        kept = {"action": action, "code": code, "reason": reason}  # the form, filled again
        return _refused(request, session, case_id, user.role, now, refused, kept=kept)
    session.commit()
    return redirect(f"/cases/{case_id}")


def _refused(
    request: Request,
    session: Any,
    case_id: int,
    role: str,
    now: Any,
    refused: InputError,
    kept: dict[str, str] | None = None,
) -> Response:
    """Show the case again with why the action was refused (404, 409 or 422)."""
    status = 404 if isinstance(refused, NotFound) else 409 if isinstance(refused, Conflict) else 422
    error = refused.message
    return _case(request, session, case_id, role, now, error=error, status=status, kept=kept)


@router.post("/cases/{case_id}/notices/{notice_id}/resolve")
def resolve_notice(
    request: Request,
    case_id: int,
    notice_id: int,
    user: CurrentUser,
    session: DB,
    now: Now,
    outcome: Annotated[str, Form(max_length=20)] = "",
    reason: Annotated[str, Form(max_length=actions.MAX_TEXT)] = "",
) -> Response:
    """Settle an uncertain notice of the case from its page (supervisors)."""
    if user.role != Role.SUPERVISOR:
        error = f"Only a supervisor may settle an uncertain notice; {user.name} is an {user.role}."
        return _case(request, session, case_id, user.role, now, error=error, status=403)
    try:
        listed = session.scalars(
            select(NoticeItem.id).where(
                NoticeItem.case_id == case_id, NoticeItem.notice_id == notice_id
            )
        ).first()
        if listed is None:
            raise NotFound(f"case {case_id} lists no notice {notice_id}")
        why = reason.strip() or None
        notice_actions.resolve(session, notice_id, user, outcome, now=now, reason=why)
    except InputError as refused:
        session.rollback()
        return _refused(request, session, case_id, user.role, now, refused)
    session.commit()
    return redirect(f"/cases/{case_id}#notice-{notice_id}")


@router.get("/forms")
def forms_page(request: Request, user: CurrentUser, session: DB) -> Response:
    """Show the web-form tasks waiting for an analyst: the form, the text to paste."""
    tasks = form_tasks(request, session, notice_actions.form_tasks(session))
    return render(request, "forms.html", page="forms", tasks=tasks, when=when)


@router.post("/forms/{notice_id}/submitted")
def form_submitted(
    request: Request,
    notice_id: int,
    user: CurrentUser,
    session: DB,
    now: Now,
    reference: Annotated[str, Form(max_length=actions.MAX_TEXT)] = "",
) -> Response:
    """Mark a web-form task submitted (any analyst); its cases go on."""
    try:
        notice_actions.submit_form(
            session,
            notice_id,
            user,
            now=now,
            reference=reference.strip() or None,
            forms=request.app.state.forms,
        )
    except InputError as refused:
        session.rollback()
        status = 404 if isinstance(refused, NotFound) else 409
        tasks = form_tasks(request, session, notice_actions.form_tasks(session))
        messages = [{"kind": "error", "text": refused.message}]
        return render(
            request, "forms.html", status, page="forms", tasks=tasks, when=when, messages=messages
        )
    session.commit()
    return redirect("/forms")


@router.get("/mail")
def mail_page(request: Request, user: CurrentUser, session: DB, now: Now) -> Response:
    """Show the mail that matched nothing (kept for an analyst), counts and dead addresses."""
    limit = 50
    unmatched = session.scalars(
        select(InboundMessage)
        .where(InboundMessage.kind.in_(("other", "unreadable")))
        .order_by(InboundMessage.id.desc())
        .limit(limit)
    )
    return render(
        request,
        "mail.html",
        page="mail",
        unmatched=inbound_objects(list(unmatched)),
        limit=limit,
        counts=inbound_counts(session),
        dead=dead_recipients(session, now),
        when=when,
    )


@router.get("/stats")
def stats_page(request: Request, user: CurrentUser, session: DB, now: Now) -> Response:
    """Show time to removal, the slowest providers and the breakdowns, for a period."""
    period = request.query_params.get("since", "30d")
    messages, status = [], 200
    try:
        since = None if period == "all" else parse_since(period, now)
    except InputError as error:
        messages, status, period = [{"kind": "error", "text": error.message}], 422, "30d"
        since = parse_since(period, now)
    stats = compute_stats(session, since=since, now=now)
    periods = [
        {"label": label, "href": f"/stats?since={value}", "here": value == period}
        for label, value in PERIODS
    ]
    label = "in all time" if since is None else f"since {when(since.isoformat())}"
    return render(
        request,
        "stats.html",
        status,
        page="stats",
        messages=messages,
        s=stats,
        windows=list(stats.overall.from_report.within),
        periods=periods,
        period_label=label,
        curve=charts.curve(stats),
        bars=charts.bars(stats),
    )
