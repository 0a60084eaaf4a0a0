"""The case list's live updates: rows, counters and the still-online panel, rendered here.

static/cases.js polls GET /cases/rows with the page's own filters and the ids of the rows it
shows (`shown`). The answer brings the cases of the filter's first page that the page does
not show: new ones reported by anyone, and older ones that have come to match (a case that
now needs an analyst, on a list of those); the shown rows as they are now; the counters and
the still-online panel. A shown row that no longer matches stays, with its new state: rows
never vanish under the analyst's eyes. The answer carries HTML rendered by the
same Jinja macros as the page (autoescaped), so a row that arrives live is exactly the
row a reload would show, and a reported URL reaches the browser only as escaped text:
the script never builds markup from case data.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from workflows.errors import BadValue
from workflows.store.models import Case
from workflows.web import desk
from workflows.web.auth import DB, CurrentUser, Now, OverdueAfter
from workflows.web.filters import case_filters
from workflows.web.overview import Overview, overview
from workflows.web.render import environment
from workflows.web.rows import list_rows

MAX_ID = 2**31 - 1
MAX_SHOWN = 500  # the longest page the list shows (CaseFilters.limit)

router = APIRouter(include_in_schema=False)


@router.get("/cases/rows")
def live_rows(
    request: Request,
    response: Response,
    user: CurrentUser,
    session: DB,
    now: Now,
    late: OverdueAfter,
) -> dict[str, Any]:
    """Return the first page's matching cases not shown, the shown rows as they are now, the
    counters and the still-online panel; 422 JSON naming a bad parameter."""
    response.headers["Cache-Control"] = "no-store"  # reported URLs: never kept in a cache
    params = request.query_params
    shown = _ids(params.get("shown", ""))
    found, problem = desk.read_filters(params.multi_items())
    if problem is not None:
        field, _, message = problem.partition(": ")
        raise BadValue(field, message)
    where = case_filters(found.filters, now, late)
    missing: list[Case] = []
    if found.filters.offset == 0:  # later pages stay as they were: the analyst pages on
        first = select(Case.id).where(*where).order_by(Case.id.desc()).limit(found.filters.limit)
        ids = set(session.scalars(first)) - set(shown)
        missing = list(
            session.scalars(select(Case).where(Case.id.in_(ids)).order_by(Case.id.desc()))
        )
    again = list(session.scalars(select(Case).where(Case.id.in_(shown)).order_by(Case.id.desc())))
    total = session.scalar(select(func.count()).select_from(Case).where(*where)) or 0
    return {
        "rows": _rendered(session, missing, now),
        "updated": _rendered(session, again, now),
        # A whole page of them: the page is out of date, better reloaded than patched.
        "more": len(missing) == found.filters.limit and bool(shown),
        "total": total,
        **overview_html(session, now, late),
    }


def overview_html(session: Session, now: dt.datetime, late: float) -> dict[str, str]:
    """Return the counters and the still-online panel as the page renders them."""
    macros = environment().get_template("_overview.html").module
    found: Overview = overview(session, now, late)
    return {"counts": str(macros.counts(found)), "online": str(macros.online(found))}  # type: ignore[attr-defined]


def _rendered(session: Session, cases: list[Case], now: dt.datetime) -> list[dict[str, Any]]:
    macro = environment().get_template("_case_row.html").module.case_row  # type: ignore[attr-defined]
    return [{"id": row["id"], "html": str(macro(row))} for row in list_rows(session, cases, now)]


def _whole(text: str, name: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) > MAX_ID:
        raise BadValue(name, f"case ids (whole numbers from 0, by commas), not {text[:20]!r}")
    return int(text)


def _ids(text: str) -> list[int]:
    ids = [_whole(part.strip(), "shown") for part in text.split(",") if part.strip()]
    if len(ids) > MAX_SHOWN:
        raise BadValue("shown", f"at most {MAX_SHOWN} case ids, not {len(ids)}")
    return ids
