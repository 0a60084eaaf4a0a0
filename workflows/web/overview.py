"""The case list's at-a-glance figures: cases per state, how many are overdue, and which
providers still have content online, all read from ONE grouped query, so the counters and
the "Still online, by provider" panel cannot disagree (as "Nothing is online" beside
"8 online" once did). The page and its live updates (GET /cases/rows) both use it.

    per (state, provider, overdue?) group: how many cases, the longest wait since notice
      → counts       sum per state; overdue = sum of the overdue groups
      → still online the active groups per provider; their sum is the "online" counter
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import case as when_then
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from workflows.core.durations import format_duration
from workflows.core.figures import span
from workflows.engine import notice_actions
from workflows.kinds import CaseState
from workflows.store.models import Case
from workflows.web.filters import overdue

OVERDUE = "overdue"
COUNTED = (  # the at-a-glance counts: (state, label, style); {after} is overdue_after
    (CaseState.ACTIVE, "online (active)", "online"),
    (OVERDUE, "overdue ({after} after notice)", "online"),
    (CaseState.NEEDS_ANALYST, "need an analyst", "analyst"),
    (CaseState.NEW, "new", ""),
    (CaseState.REMOVED, "removed", "removed"),
    (CaseState.CLOSED, "closed", ""),
    # Hidden while zero, and last: one that appears live moves no other counter.
    (CaseState.WAITING, "waiting to retry", ""),
    (CaseState.HELD, "held", ""),
)
SHOWN_IF_ANY = (CaseState.WAITING, CaseState.HELD)
LISTED = 8  # providers listed by name in the panel; the rest are summed up


@dataclass
class Overview:
    """The counters and the still-online panel of one moment."""

    counts: list[dict[str, Any]]
    online: list[dict[str, Any]]  # providers with active cases, the longest wait first
    online_total: int  # = the "online (active)" counter
    rest: dict[str, int] = field(default_factory=dict)  # providers not listed: how many, cases


def overview(
    session: Session, now: dt.datetime, overdue_after: float, listed: int = LISTED
) -> Overview:
    """Return the counters and still-online panel at NOW from one grouped query."""
    since = func.coalesce(Case.first_notice_at, Case.opened_at)
    late = when_then((overdue(now, overdue_after), 1), else_=0)
    # Grouped over a subquery, so GROUP BY names columns, not an expression whose bound
    # parameters PostgreSQL would not recognise as the selected one.
    each = select(
        Case.state.label("state"),
        Case.provider.label("provider"),
        late.label("late"),
        since.label("since"),
    ).subquery()
    rows = session.execute(
        select(each.c.state, each.c.provider, each.c.late, func.count(), func.min(each.c.since))
        .group_by(each.c.state, each.c.provider, each.c.late)
        .order_by(each.c.state, each.c.provider, each.c.late)
    ).all()
    per_state: dict[str, int] = defaultdict(int)
    online: dict[str | None, list[Any]] = {}
    for state, provider, is_late, count, first in rows:
        per_state[state] += count
        per_state[OVERDUE] += count if is_late else 0
        if state == CaseState.ACTIVE:
            found = online.setdefault(provider, [0, _aware(first)])
            found[0] += count
            found[1] = min(found[1], _aware(first))
    ranked = sorted(online.items(), key=lambda item: (item[1][1], str(item[0])))
    shown = [_provider(provider, n, first, now) for provider, (n, first) in ranked[:listed]]
    rest = [n for _, (n, _) in ranked[listed:]]
    counts = _counts(per_state, format_duration(overdue_after))
    uncertain = notice_actions.count_uncertain(session)
    if uncertain:  # not a case state: shown only while some wait for a supervisor
        label = f"notice{'s' * (uncertain != 1)} uncertain"
        counts.append(
            {
                "state": "uncertain",
                "label": label,
                "kind": "analyst",
                "value": uncertain,
                "href": "#uncertain",
            }
        )
    return Overview(
        counts=counts,
        online=shown,
        online_total=per_state[CaseState.ACTIVE],
        rest={"providers": len(rest), "online": sum(rest)} if rest else {},
    )


def _counts(per_state: dict[str, int], after: str) -> list[dict[str, Any]]:
    found = []
    for state, label, kind in COUNTED:
        value = per_state.get(state, 0)
        if value or state not in SHOWN_IF_ANY:
            href = "/?overdue=1" if state == OVERDUE else f"/?state={state}"
            found.append(
                {
                    "state": str(state),
                    "label": label.format(after=after),
                    "kind": kind,
                    "value": value,
                    "href": href,
                }
            )
    return found


def _provider(provider: str | None, count: int, first: dt.datetime, now: dt.datetime) -> Any:
    return {
        "provider": provider or "unknown",
        # Only a named provider can be filtered on; "unknown" is every case without one.
        "href": "/?" + urlencode({"state": "active", "provider": provider}) if provider else None,
        "online": count,
        "longest": span((now - first).total_seconds()),
    }


def _aware(moment: dt.datetime | str) -> dt.datetime:
    """Return MOMENT aware (an aggregate over a UTC column may come back naive or as text)."""
    if isinstance(moment, str):
        moment = dt.datetime.fromisoformat(moment)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
