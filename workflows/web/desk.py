"""What the desk's pages read and do: the case list's data, a case's facts, the actions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from workflows.engine import actions, notice_actions
from workflows.errors import BadValue, NotFound
from workflows.kinds import OPEN_STATES, CaseState, NoticeStatus
from workflows.store.models import Case, Notice, User
from workflows.store.queries import case_detail as case_view
from workflows.web.app import field_name
from workflows.web.filters import CaseFilters, case_filters
from workflows.web.rows import age, list_rows
from workflows.web.timeline import when
from workflows.web.words import route_words

FILTERS = frozenset(CaseFilters.model_fields)
PAGING = ("limit", "offset")


@dataclass
class Filters:
    """The case list's filters: validated, as shown in the form, as a query string."""

    filters: CaseFilters
    shown: dict[str, Any] = field(default_factory=dict)
    query: list[tuple[str, str]] = field(default_factory=list)

    def without_paging(self) -> str:
        """Return the query string of the filters alone (links to all matching cases)."""
        return urlencode([(k, v) for k, v in self.query if k not in PAGING])


def read_filters(items: Iterable[tuple[str, str]]) -> tuple[Filters, str | None]:
    """Return the filters in query ITEMS (blank and unknown ones dropped), or none and the
    problem ("country: String should match…")."""
    query = [(k, v.strip()) for k, v in items if k in FILTERS and v.strip()]
    data: dict[str, Any] = dict(query)  # the last of a repeated parameter wins…
    data.pop("state", None)
    shown = {name: "" for name in FILTERS} | data
    states = [v for k, v in query if k == "state"]  # …but states add up, as in the API
    if states:
        data["state"], shown["state"] = states, states[0]
    try:
        return Filters(CaseFilters.model_validate(data), shown, query), None
    except ValidationError as error:
        first = error.errors()[0]
        problem = f"{field_name(first['loc'])}: {first['msg']}"
        return Filters(CaseFilters.model_validate({}), {name: "" for name in FILTERS}), problem


def case_list(
    session: Session, found: Filters, now: dt.datetime, overdue_after: float
) -> dict[str, Any]:
    """Return one page of matching cases, newest first, with the links to the next pages."""
    filters = found.filters
    where = case_filters(filters, now, overdue_after)
    total = session.scalar(select(func.count()).select_from(Case).where(*where)) or 0
    cases = list(
        session.scalars(
            select(Case)
            .where(*where)
            .order_by(Case.id.desc())
            .limit(filters.limit)
            .offset(filters.offset)
        )
    )
    rows = list_rows(session, cases, now)
    kept = [(k, v) for k, v in found.query if k != "offset"]

    def page(offset: int) -> str:
        return "/?" + urlencode([*kept, ("offset", str(offset))])

    newer = page(max(0, filters.offset - filters.limit)) if filters.offset else None
    older = page(filters.offset + filters.limit) if filters.offset + len(rows) < total else None
    return {"cases": rows, "total": total, "newer": newer, "older": older}


def report_message(params: Mapping[str, str]) -> list[dict[str, str]]:
    """Return the confirmation shown after a report (its counts come in the redirect)."""
    reported, joined = params.get("reported", ""), params.get("joined", "0")
    if not reported.isdigit() or not joined.isdigit():
        return []
    opened = int(reported) - int(joined)
    text = (
        f"Reported {reported} URL{'s' * (reported != '1')}: {opened} new case{'s' * (opened != 1)}"
    )
    if int(joined):
        text += f", {joined} joined an open case of the same URL"
    return [{"kind": "ok", "text": text + ". The engine traces them now; states update live."}]


def choices(session: Session) -> dict[str, list[str]]:
    """Return the values the filters offer: the states, and the routes etc. seen so far."""

    def seen(column: Any) -> list[str]:
        rows = session.scalars(select(column).where(column.is_not(None)).distinct().limit(300))
        return sorted(str(value) for value in rows)

    return {
        "states": [str(s) for s in CaseState],
        "routes": seen(Case.route),
        "countries": seen(Case.country),
        "providers": seen(Case.provider),
    }


def uncertain_notices(session: Session, limit: int = 20) -> list[dict[str, Any]]:
    """Return the notices waiting for a supervisor's decision, oldest first, with a case."""
    notices = list(
        session.scalars(
            select(Notice)
            .where(Notice.status == NoticeStatus.UNCERTAIN)
            .order_by(Notice.id)
            .limit(limit)
        )
    )
    cases = notice_actions.cases_of(session, [n.id for n in notices])
    return [
        {
            "id": n.id,
            "kind": n.kind,
            "to": n.recipients.replace(",", ", "),
            "case": cases[n.id][0],
            "cases": len(cases[n.id]),
        }
        for n in notices
        if cases.get(n.id)
    ]


def case_detail(session: Session, case: Case, now: dt.datetime) -> dict[str, Any]:
    """Return what the case page shows: the case, its facts, its trace, how long it has been."""
    detail = case_view(session, case)
    shown_age = age(case, now)
    if case.state in OPEN_STATES:
        shown_age = f"open for {shown_age}"
    provider = " ".join(p for p in (f"AS{case.asn}" if case.asn else "", case.provider or "") if p)
    facts = [
        ("reference", case.reference),
        ("category", case.category),
        ("reported by", case.analyst),
        ("route", route_words(case.route) if case.route else None),
        ("country", case.country),
        ("network", case.network),
        ("AS · provider", provider or None),
        ("abuse desk", ", ".join(detail["abuse"]) or None),
        ("opened", when(detail["opened_at"])),
        ("routed", when(detail["routed_at"])),
        ("first notice", when(detail["first_notice_at"])),
        ("removed", when(detail["removed_at"])),
        ("closed", when(detail["closed_at"])),
        ("next action" if case.state != CaseState.HELD else "held until", when(detail["due_at"])),
        ("after the hold", case.held_from),
        ("problem", case.last_error),
    ]
    shown = [(label, value) for label, value in facts if value not in (None, "", "–")]
    return {
        "case": detail,
        "facts": shown,
        "trace": case.trace,
        "age": shown_age,
        "is_open": case.state in OPEN_STATES,
        # Changed content waits for an analyst's word: removed, or still present.
        "confirmable": case.changed_streak > 0
        and case.state in (CaseState.ACTIVE, CaseState.NEEDS_ANALYST),
    }


def act(
    session: Session,
    case_id: int,
    action: str,
    user: User,
    now: dt.datetime,
    *,
    text: str,
    reason: str,
    days: str,
    watch: tuple[float, float],
    code: str = "",
    confirm: str = "",
) -> None:
    """Do ACTION to the case as USER; InputError (404, 409, 422) when it cannot be done."""
    why = reason.strip() or None
    if action in ("confirm-removed", "confirm-present"):
        removed = action == "confirm-removed"
        actions.confirm(session, case_id, user, removed, now=now, reason=why, watch=watch)
    elif action == "notes":
        actions.add_note(session, case_id, user, text, now=now)
    elif action == "recheck":
        actions.force_recheck(session, case_id, user, now=now)
    elif action == "close":
        reason_code, why = actions.close_reason(code or None, why)
        confirmed(confirm, "close the case")
        actions.close(session, case_id, user, now=now, code=reason_code, reason=why)
    elif action == "reopen":
        actions.reopen(session, case_id, user, now=now, reason=why)
    elif action == "release":
        actions.release_hold(session, case_id, user, now=now)
    elif action == "hold":
        actions.hold(
            session, case_id, user, now + dt.timedelta(days=_days(days)), now=now, reason=why
        )
    else:
        raise NotFound(f"no action {action!r}")


def confirmed(confirm: str, what: str) -> None:
    """Refuse (field `confirm`) unless the form's "I confirm" box was ticked: a page without
    JavaScript confirms as surely as one with it."""
    if confirm != "yes":
        raise BadValue("confirm", f"tick “I confirm” to {what}")


def _days(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BadValue("days", f"{text[:20]!r} is not a number of days") from None
    if not 0 < value <= 365:
        raise BadValue("days", "between 0 and 365")
    return value
