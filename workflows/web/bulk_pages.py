"""The case list's bulk bar: one action on the ticked cases, or on all matching the filter.

The form posts here (with its CSRF token, as every form); the answer is a redirect back to
the list with one line saying what was done ("Closed 10 cases, skipped 2 (…)"). That line
travels in the redirect's query string, signed with the session's CSRF token, so a link
made by someone else cannot put words on an analyst's desk.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from typing import Annotated
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from workflows.engine import actions, bulk
from workflows.errors import BadValue, InputError
from workflows.kinds import Role
from workflows.web import desk
from workflows.web.auth import DB, CurrentUser, Now, OverdueAfter, Watch
from workflows.web.filters import case_filters
from workflows.web.render import redirect

MAX_FLASH = 600  # characters of a summary carried back to the list

router = APIRouter(include_in_schema=False)


@router.post("/cases/bulk")
def bulk_action(
    request: Request,
    user: CurrentUser,
    session: DB,
    now: Now,
    watch: Watch,
    late: OverdueAfter,
    action: Annotated[str, Form(max_length=40)] = "",
    ids: Annotated[list[int] | None, Form(max_length=bulk.MAX_CASES)] = None,
    scope: Annotated[str, Form(max_length=20)] = "picked",
    query: Annotated[str, Form(max_length=4000)] = "",  # the list's filters, as in its URL
    code: Annotated[str, Form(max_length=40)] = "",
    reason: Annotated[str, Form(max_length=actions.MAX_TEXT)] = "",
    days: Annotated[str, Form(max_length=20)] = "",
    confirm: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """Do ACTION to the ticked cases (or all matching the list's QUERY), then go back."""
    found, problem = desk.read_filters(parse_qsl(query))
    back = "/?" + found.without_paging() if found.query else "/"
    try:
        if problem:
            raise BadValue("filter", problem)
        if action in bulk.SUPERVISOR_ONLY and user.role != Role.SUPERVISOR:
            raise BadValue("action", f"only a supervisor may {action} cases; {user.name} is not")
        todo = bulk.params(
            action,
            now,
            code=code or None if action == "close" else None,
            reason=reason if action != "release" else "",  # the bar's one text box
            until=hold_end(days, now) if action == "hold" else None,
        )
        desk.confirmed(confirm, "apply it to the cases")
        if scope == "all":
            chosen = bulk.select_ids(session, case_filters(found.filters, now, late))
        else:
            chosen = bulk.check_ids(ids or [])
        outcome = bulk.run_bulk(session, chosen, todo, user, now=now, watch=watch)
    except InputError as refused:
        session.rollback()
        return redirect(flashed(request, back, "error", f"Nothing done: {refused.message}"))
    session.commit()
    kind = "ok" if outcome.done or not outcome.skipped else "error"
    return redirect(flashed(request, back, kind, outcome.summary()))


def flashed(request: Request, back: str, kind: str, text: str) -> str:
    """Return BACK with the line to show there, signed for this session."""
    text = text if len(text) <= MAX_FLASH else text[: MAX_FLASH - 1] + "…"
    joiner = "&" if "?" in back else "?"
    signed = {"flash": text, "flash_kind": kind, "flash_sig": _sign(request, kind, text)}
    return back + joiner + urlencode(signed)


def flash_messages(request: Request) -> list[dict[str, str]]:
    """Return the line a bulk action left for the list, if this session signed it."""
    params = request.query_params
    text, kind = params.get("flash", ""), params.get("flash_kind", "")
    if not text or kind not in ("ok", "error"):
        return []
    if not hmac.compare_digest(params.get("flash_sig", ""), _sign(request, kind, text)):
        return []
    return [{"kind": kind, "text": text}]


def _sign(request: Request, kind: str, text: str) -> str:
    """Return the signature of a flash line: the session's CSRF token is the key."""
    key = (getattr(request.state, "csrf_token", None) or "").encode()
    if not key:
        return "-"  # no session (an API token): nothing is shown
    return hmac.new(key, f"{kind}\n{text}".encode(), hashlib.sha256).hexdigest()[:32]


def hold_end(days: str, now: dt.datetime) -> dt.datetime:
    """Return when a hold of DAYS (the form's text) ends; BadValue naming `days` if bad."""
    try:
        value = float(days)
    except ValueError:
        raise BadValue("days", f"{days[:20]!r} is not a number of days") from None
    if not 0 < value <= 365:
        raise BadValue("days", "between 0 and 365")
    return now + dt.timedelta(days=value)
