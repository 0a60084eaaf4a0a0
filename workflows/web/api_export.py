"""GET /api/cases.csv: the cases matching a filter as a spreadsheet, the list's columns.

The case list links here with its own filters ("Export CSV"). Every text cell goes
through core/spreadsheet.py, so a provider named `=HYPERLINK(…)` in RDAP or a pasted
reference stays text in the analyst's spreadsheet. Times are ISO 8601 UTC with their `Z`.
"""

from __future__ import annotations

import datetime as dt
import io
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from sqlalchemy import func, select

from workflows.core.spreadsheet import csv_writer
from workflows.errors import BadValue
from workflows.store.models import Case
from workflows.web.auth import DB, CurrentUser, Now, OverdueAfter
from workflows.web.filters import CaseQuery, case_filters
from workflows.web.rows import list_rows
from workflows.web.words import route_words, state_words

MAX_ROWS = 50_000  # a bigger export is surely a filter forgotten; it is refused, not cut
CHUNK = 1_000
COLUMNS = (
    "case",
    "state",
    "url",
    "host",
    "provider",
    "route",
    "country",
    "notices",
    "open for",
    "reference",
    "opened_at",
    "removed_at",
)

router = APIRouter(tags=["cases"])


@router.get(
    "/cases.csv",
    summary="The cases matching the filters as CSV, newest first",
    response_class=Response,
    responses={
        200: {
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "description": "RFC 4180 CSV, UTF-8, a header row of the columns",
        }
    },
)
def export_cases(
    filters: Annotated[CaseQuery, Query()],
    session: DB,
    now: Now,
    late: OverdueAfter,
    user: CurrentUser,
) -> Response:
    """Return every case matching the filters (the case list's, without paging) as CSV
    with the list's columns and the opened and removed times; 422 above 50,000 cases."""
    where = case_filters(filters, now, late)
    total = session.scalar(select(func.count()).select_from(Case).where(*where)) or 0
    if total > MAX_ROWS:
        raise BadValue("filter", f"{total} cases match; an export holds at most {MAX_ROWS}")
    out = io.StringIO()
    writer = csv_writer(out, COLUMNS)
    writer.writeheader()
    below = None  # keyset paging, newest first: stable while cases are reported meanwhile
    while True:
        page = select(Case).where(*where).order_by(Case.id.desc()).limit(CHUNK)
        cases = list(session.scalars(page if below is None else page.where(Case.id < below)))
        if not cases:
            break
        writer.writerows(csv_row(row) for row in list_rows(session, cases, now))
        below = cases[-1].id
        session.expunge_all()  # keep memory flat over a long export
    stamp = now.astimezone(dt.UTC).strftime("%Y%m%d-%H%M%SZ")
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="cases-{stamp}.csv"'},
    )


def csv_row(row: dict[str, Any]) -> dict[str, Any]:
    """Return one list row as a CSV row: the words the list shows, times with their zone."""
    return {
        "case": row["id"],
        "state": state_words(row["state"]),
        "url": row["url"] or "",  # the whole URL, never shortened
        "host": row["host"] or "",
        "provider": row["provider"] or "",
        "route": route_words(row["route"]) if row["route"] else "",
        "country": row["country"] or "",
        "notices": len(row["notices"]),
        "open for": row["age"],
        "reference": row["reference"] or "",
        "opened_at": row["opened_at"] or "",
        "removed_at": row["removed_at"] or "",
    }
