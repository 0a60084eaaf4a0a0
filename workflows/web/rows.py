"""What the case list shows of each case: the page, its live rows and the CSV export alike."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from workflows.core.figures import span
from workflows.kinds import CaseState
from workflows.store.models import Case
from workflows.store.queries import case_objects

LONG = dt.timedelta(hours=24)  # an active case online longer than this is shown in red


def list_rows(session: Session, cases: Sequence[Case], now: dt.datetime) -> list[dict[str, Any]]:
    """Return the list's row of each of CASES: its case object, age and lateness."""
    rows = []
    for case, shown in zip(cases, case_objects(session, cases), strict=True):
        long = case.state == CaseState.ACTIVE and now - case.opened_at > LONG
        rows.append({**shown, "age": age(case, now), "long": long})
    return rows


def age(case: Case, now: dt.datetime) -> str:
    """Return how long the case has been open, or how long its removal took."""
    if case.removed_at is not None:
        return "removed in " + span((case.removed_at - case.opened_at).total_seconds())
    if case.state == CaseState.CLOSED:
        return "closed"
    return span((now - case.opened_at).total_seconds())
