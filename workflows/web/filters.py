"""The case list's filters: query parameters in, SQL conditions out."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import and_, func, or_

from workflows.kinds import OPEN_STATES, CaseState
from workflows.store.models import Case

_ASN = re.compile(r"^(?:AS)?(\d{1,10})$", re.IGNORECASE)


class CaseQuery(BaseModel):
    """Which cases: every filter given must match. Unknown parameters: 422."""

    model_config = ConfigDict(extra="forbid")

    state: list[CaseState] = Field(default_factory=list, description="repeat for several")
    route: str | None = Field(None, max_length=32, description="workflow, e.g. host_notice")
    country: str | None = Field(None, pattern=r"^[A-Za-z]{2}$", description="ISO 3166 alpha-2")
    network: str | None = Field(
        None, max_length=120, description="the network's CIDR or CDN name, or an ASN (AS64500)"
    )
    provider: str | None = Field(None, max_length=200, description="CDN or AS name (any case)")
    overdue: bool | None = Field(
        None,
        description="open (not held) and still online `overdue_after` (policy, 72h shipped)"
        " after the first notice, or after the report while no notice has gone out",
    )
    ref: str | None = Field(None, max_length=200, description="the report's reference")
    q: str | None = Field(
        None, min_length=1, max_length=200, description="text in URL, reference or provider"
    )


class CaseFilters(CaseQuery):
    """Filters of GET /api/cases and the case list: which cases, and which page of them."""

    limit: int = Field(100, ge=1, le=500)
    offset: int = Field(0, ge=0, le=10_000_000)


def case_filters(filters: CaseQuery, now: dt.datetime, overdue_after: float) -> list[Any]:
    """Return the WHERE conditions FILTERS ask for; OVERDUE_AFTER is the policy's, in seconds."""
    where: list[Any] = []
    if filters.state:
        where.append(Case.state.in_(filters.state))
    if filters.route is not None:
        where.append(Case.route == filters.route)
    if filters.country is not None:
        where.append(Case.country == filters.country.upper())
    if filters.network is not None:
        asn = _ASN.match(filters.network)
        by_asn = Case.asn == int(asn.group(1)) if asn and int(asn.group(1)) < 2**32 else None
        label = Case.network == filters.network
        where.append(label if by_asn is None else or_(label, by_asn))
    if filters.provider is not None:
        where.append(func.lower(Case.provider) == filters.provider.lower())
    if filters.ref is not None:
        where.append(Case.reference == filters.ref)
    if filters.q is not None:
        pattern = "%" + _escape_like(filters.q.lower()) + "%"
        where.append(
            or_(
                *(
                    func.lower(column).like(pattern, escape="\\")
                    for column in (Case.url, Case.reference, Case.provider, Case.host)
                )
            )
        )
    if filters.overdue is not None:
        late = overdue(now, overdue_after)
        where.append(late if filters.overdue else ~late)
    return where


def overdue(now: dt.datetime, after: float) -> Any:
    """Return the condition "open, not held, and online AFTER seconds past the notice"."""
    late = now - dt.timedelta(seconds=after)
    still_open = [s for s in OPEN_STATES if s != CaseState.HELD]
    # coalesce, not OR: a NULL in an OR would make "not overdue" drop un-noticed cases.
    return and_(
        Case.state.in_(still_open), func.coalesce(Case.first_notice_at, Case.opened_at) <= late
    )


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
