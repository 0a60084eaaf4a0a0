"""Routing by hand: an analyst gives a case that needs one its route, country and recipients.

    route_by_hand   NEEDS_ANALYST (no route: NXDOMAIN, a special-use address, no abuse
                    contact, every notice refused) → ACTIVE, routed now, its workflow from
                    its first step, owed at once to the recipients the analyst chose

The values are those the tracer's routing sets (engine/tracing.py `_route`): routed_at
now, steps_done 0, due, step and check due now. The event is `routed` with the analyst as
actor and `abuse_source` "analyst", so the timeline and the statistics can tell a hand's
choice from a trace's. A case whose content changed waits for a confirmation instead
(removed or still present): routing it would chase content nobody has looked at.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from workflows.config.hotlines import HotlineDirectory
from workflows.config.tomlfile import country_problem
from workflows.core.emails import email_problem
from workflows.core.routing import Route
from workflows.engine.actions import apply_change, check_text
from workflows.errors import BadValue, Conflict
from workflows.kinds import CaseState, EventKind
from workflows.store.cases import record
from workflows.store.models import Case, NoticeItem, User

MAX_RECIPIENTS = 20
ROUTES = tuple(r.value for r in Route)


def check_route(route: str, routes: Collection[str]) -> str:
    """Return ROUTE if it is a workflow of the policy, else raise BadValue naming `route`."""
    if route not in ROUTES or route not in routes:
        raise BadValue("route", f"{route[:40]!r} is not one of {', '.join(ROUTES)}")
    return route


def check_country(country: str) -> str:
    """Return COUNTRY as an ISO 3166 alpha-2 code in capitals, else raise BadValue."""
    code = country.strip().upper()
    problem = country_problem(code)
    if problem:
        raise BadValue("country", f"{country[:20]!r} {problem}")
    return code


def check_recipients(recipients: Sequence[str]) -> list[str]:
    """Return the addresses, each checked (core/emails.py) and once; else raise BadValue."""
    if len(recipients) > MAX_RECIPIENTS:
        raise BadValue("recipients", f"at most {MAX_RECIPIENTS} addresses")
    chosen: dict[str, str] = {}
    for index, given in enumerate(recipients):
        address = given.strip()
        problem = email_problem(address)
        if problem:
            raise BadValue(f"recipients[{index}]", f"{address[:80]!r} {problem}")
        chosen.setdefault(address.lower(), address)
    return list(chosen.values())


def route_by_hand(
    session: Session,
    case_id: int,
    user: User,
    *,
    route: str,
    country: str,
    recipients: Sequence[str],
    now: dt.datetime,
    routes: Collection[str],
    hotlines: HotlineDirectory,
    reason: str | None = None,
) -> Case:
    """Route a case that needs an analyst as USER chose: its workflow starts now."""
    route, code = check_route(route, routes), check_country(country)
    chosen, reason = check_recipients(recipients), check_text("reason", reason)
    hotline = hotlines.get(code) if route == Route.HOTLINE_REFERRAL else None
    if route == Route.HOTLINE_REFERRAL and (hotline is None or not hotline.email):
        raise BadValue("country", f"no partner hotline takes referrals for {code}")
    if not chosen and route != Route.HOTLINE_REFERRAL:
        raise BadValue("recipients", "give at least one address to send the notice to")

    def decide(case: Case) -> dict[str, Any]:
        if case.state != CaseState.NEEDS_ANALYST:
            raise Conflict(f"case {case.id} is {case.state}: only a case that needs an analyst")
        if case.changed_streak > 0:
            raise Conflict(f"case {case.id}'s content changed: confirm it removed or present")
        trace = dict(case.trace or {})
        if hotline is not None:
            trace["hotline"] = {"country": code, "name": hotline.name, "email": hotline.email}
        return {
            "state": CaseState.ACTIVE,
            "route": route,
            "country": code,
            "recipients": ",".join(chosen) or None,
            "trace": trace,
            # A new round when this one owed steps already (every notice refused): the
            # (case, round, step) keys of those stay spent, as after a reopen.
            "round": case.round + 1 if _owed_before(session, case) else case.round,
            "routed_at": now,
            "steps_from": None,
            "steps_done": 0,
            "trace_attempts": 0,
            "last_error": None,
            "due_at": now,
            "step_due_at": now,  # the first notice is owed at once, as after a trace
            "check_due_at": now,
            "claimed_until": None,
        }

    case, before = apply_change(session, case_id, decide)
    record(
        session,
        case.id,
        EventKind.ROUTED,
        now,
        user.name,
        route=route,
        country=code,
        network=case.network,
        abuse=chosen,
        abuse_source="analyst",  # the analyst's choice, not a trace's
        by_hand=True,
        hotline=hotline.email if hotline else None,
        reason=reason,
        was=before["state"],
    )
    return case


def _owed_before(session: Session, case: Case) -> bool:
    owed = select(NoticeItem.id).where(
        NoticeItem.case_id == case.id, NoticeItem.round == case.round
    )
    return session.scalars(owed.limit(1)).first() is not None
