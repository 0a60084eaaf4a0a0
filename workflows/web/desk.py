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

from workflows.core.figures import span
from workflows.engine import actions, notice_actions
from workflows.errors import BadValue, NotFound
from workflows.kinds import OPEN_STATES, CaseState, NoticeStatus
from workflows.store.models import Case, Notice, User
from workflows.store.queries import case_detail as case_view
from workflows.store.queries import case_objects
from workflows.web.app import field_name
from workflows.web.filters import CaseFilters, case_filters
from workflows.web.timeline import when

FILTERS = frozenset(CaseFilters.model_fields)
LONG = dt.timedelta(hours=24)  # an active case online longer than this is shown in red
COUNTED = (  # the at-a-glance counts: (state, label, style)
    (CaseState.ACTIVE, "online (active)", "online"),
    ("overdue", "overdue (72 h after notice)", "online"),
    (CaseState.NEEDS_ANALYST, "need an analyst", "analyst"),
    (CaseState.NEW, "new", ""),
    (CaseState.WAITING, "waiting to retry", ""),
    (CaseState.HELD, "held", ""),
    (CaseState.REMOVED, "removed", "removed"),
    (CaseState.CLOSED, "closed", ""),
)


@dataclass
class Filters:
    """The case list's filters: validated, as shown in the form, as a query string."""

    filters: CaseFilters
    shown: dict[str, Any] = field(default_factory=dict)
    query: list[tuple[str, str]] = field(default_factory=list)


def read_filters(items: Iterable[tuple[str, str]]) -> tuple[Filters, str | None]:
    """Return the filters in query ITEMS (blank ones dropped), or none and the problem."""
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
        problem = f"{field_name(first['loc'])}: {first['msg']} — showing every case instead"
        return Filters(CaseFilters.model_validate({}), {name: "" for name in FILTERS}), problem


def case_list(session: Session, found: Filters, now: dt.datetime) -> dict[str, Any]:
    """Return one page of matching cases, newest first, with the links to the next pages."""
    filters = found.filters
    where = case_filters(filters, now)
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
    rows = []
    for case, shown in zip(cases, case_objects(session, cases), strict=True):
        long = case.state == CaseState.ACTIVE and now - case.opened_at > LONG
        rows.append({**shown, "age": age(case, now), "long": long})
    kept = [(k, v) for k, v in found.query if k != "offset"]

    def page(offset: int) -> str:
        return "/?" + urlencode([*kept, ("offset", str(offset))])

    newer = page(max(0, filters.offset - filters.limit)) if filters.offset else None
    older = page(filters.offset + filters.limit) if filters.offset + len(rows) < total else None
    return {"cases": rows, "total": total, "newer": newer, "older": older}


def age(case: Case, now: dt.datetime) -> str:
    """Return how long the case has been open, or how long its removal took."""
    if case.removed_at is not None:
        return "removed in " + span((case.removed_at - case.opened_at).total_seconds())
    if case.state == CaseState.CLOSED:
        return "closed"
    return span((now - case.opened_at).total_seconds())


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


def counts(session: Session, now: dt.datetime) -> list[dict[str, Any]]:
    """Return the at-a-glance counts: cases per state, and how many are overdue."""
    per_state = dict(session.execute(select(Case.state, func.count()).group_by(Case.state)).all())
    overdue_where = case_filters(CaseFilters.model_validate({"overdue": True}), now)
    overdue = session.scalar(select(func.count()).select_from(Case).where(*overdue_where)) or 0
    per_state["overdue"] = overdue
    found = []
    for state, label, kind in COUNTED:
        value = int(per_state.get(state, 0))
        href = "/?overdue=1" if state == "overdue" else f"/?state={state}"
        if value or state not in (CaseState.WAITING, CaseState.HELD):
            found.append(
                {"state": str(state), "label": label, "kind": kind, "value": value, "href": href}
            )
    uncertain = notice_actions.count_uncertain(session)
    if uncertain:  # not a case state: shown only while some wait for a supervisor
        label = f"notice{'s' * (uncertain != 1)} uncertain"
        found.append(
            {
                "state": "uncertain",
                "label": label,
                "kind": "analyst",
                "value": uncertain,
                "href": "#uncertain",
            }
        )
    return found


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


def still_online(session: Session, now: dt.datetime, limit: int = 8) -> list[dict[str, Any]]:
    """Return the providers with active cases, the longest wait (since notice) first."""
    since = func.min(func.coalesce(Case.first_notice_at, Case.opened_at))
    rows = session.execute(
        select(Case.provider, func.count(), since)
        .where(Case.state == CaseState.ACTIVE)
        .group_by(Case.provider)
        .order_by(since)
        .limit(limit)
    ).all()
    return [
        {
            "provider": provider or "unknown",
            "online": count,
            "longest": span((now - _aware(first)).total_seconds()),
        }
        for provider, count, first in rows
    ]


def _aware(moment: dt.datetime | str) -> dt.datetime:
    """Return MOMENT aware (an aggregate over a UTC column may come back naive or as text)."""
    if isinstance(moment, str):
        moment = dt.datetime.fromisoformat(moment)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


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
        ("route", case.route),
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
        actions.close(session, case_id, user, now=now, reason=why)
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


def _days(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BadValue("days", f"{text[:20]!r} is not a number of days") from None
    if not 0 < value <= 365:
        raise BadValue("days", "between 0 and 365")
    return value
