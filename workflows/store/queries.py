"""Read-side queries: case objects as the CLI and the API show them (DESIGN.md § Interface),
and the rows the statistics are computed from."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from workflows.core.figures import iso
from workflows.core.stats import CaseRow, NoticeRow, Round, Stats, summarize
from workflows.kinds import NoticeStatus, Party
from workflows.store.models import Case, Check, Event, Notice, NoticeItem


def case_objects(session: Session, cases: Sequence[Case]) -> list[dict[str, Any]]:
    """Return the JSON objects of CASES, each with its notices (one query for all)."""
    notices: dict[int, list[dict[str, Any]]] = defaultdict(list)
    rows = session.execute(
        select(NoticeItem.case_id, Notice)
        .join(Notice, Notice.id == NoticeItem.notice_id)
        .where(NoticeItem.case_id.in_([c.id for c in cases]))
        .order_by(Notice.id)
    ).all()
    for case_id, notice in rows:
        notices[case_id].append(notice_object(notice))
    return [case_object(case, notices[case.id]) for case in cases]


def case_object(case: Case, notices: list[dict[str, Any]]) -> dict[str, Any]:
    """Return one case's JSON object."""
    return {
        "id": case.id,
        "url": case.url,
        "host": case.host,
        "state": case.state,
        "route": case.route,
        "country": case.country,
        "network": case.network,
        "asn": case.asn,
        "provider": case.provider,
        "abuse": case.recipients.split(",") if case.recipients else [],
        "reference": case.reference,
        "category": case.category,
        "analyst": case.analyst,
        "opened_at": iso(case.opened_at),
        "routed_at": iso(case.routed_at),
        "first_notice_at": iso(case.first_notice_at),
        "removed_at": iso(case.removed_at),
        "removed_by": case.removed_by,
        "reappeared": case.reappeared,
        "watched_until": iso(case.watch_until),
        "closed_at": iso(case.closed_at),
        "due_at": iso(case.due_at),
        "last_error": case.last_error,
        "notices": notices,
    }


def notice_object(notice: Notice) -> dict[str, Any]:
    """Return a notice's summary as listed on a case."""
    return {
        "id": notice.id,
        "kind": notice.kind,
        "to": [r for r in notice.recipients.split(",") if r],  # empty once purged
        "status": notice.status,
        "sent_at": iso(notice.sent_at),
        "message_id": notice.message_id,
        "subject": notice.subject,
    }


def case_detail(session: Session, case: Case) -> dict[str, Any]:
    """Return a case with its events, notices (full text) and checks."""
    found = case_objects(session, [case])[0]
    found["trace"] = case.trace
    found["events"] = [
        {"at": iso(e.at), "actor": e.actor, "kind": e.kind, "detail": e.detail}
        for e in session.scalars(select(Event).where(Event.case_id == case.id).order_by(Event.id))
    ]
    texts = {
        n.id: n
        for n in session.scalars(
            select(Notice).where(Notice.id.in_([n["id"] for n in found["notices"]]))
        )
    }
    for notice in found["notices"]:
        notice["text"] = texts[notice["id"]].body_text
    found["checks"] = [
        {
            "at": iso(c.at),
            "outcome": c.outcome,
            "http_status": c.http_status,
            "sha256": c.sha256,
            "address": c.address,
            "reason": c.reason,
            "content_type": c.content_type,
            "size": c.size,
            "pdq": c.pdq,
            "pdq_quality": c.pdq_quality,
            "tlsh": c.tlsh,
            "vantage": c.vantage,
            "rule": c.rule,
        }
        for c in session.scalars(select(Check).where(Check.case_id == case.id).order_by(Check.id))
    ]
    return found


def _case_row(*row: Any) -> CaseRow:
    """Return a case's statistics row: its current round's times, and its earlier rounds."""
    state, route, country, network, asn, provider = row[:6]
    opened_at, first_notice_at, removed_at, reopened_at, past_rounds = row[6:]
    past = tuple(
        Round(
            opened_at=_at(r.get("opened_at")) or opened_at,
            first_notice_at=_at(r.get("first_notice_at")),
            removed_at=_at(r.get("removed_at")),
        )
        for r in past_rounds or []
    )
    return CaseRow(
        state,
        route,
        country,
        network,
        asn,
        provider,
        reopened_at or opened_at,
        first_notice_at,
        removed_at,
        past,
    )


def _at(text: str | None) -> dt.datetime | None:
    """Return an ISO 8601 time stored in JSON, or None."""
    return dt.datetime.fromisoformat(text) if text else None


def _bounced_cases(session: Session, since: dt.datetime | None) -> dict[int, int]:
    """Return, by case, how many of its current round's notices to its host bounced."""
    query = (
        select(NoticeItem.case_id, func.count())
        .join(Notice, Notice.id == NoticeItem.notice_id)
        .join(Case, Case.id == NoticeItem.case_id)
        .where(
            Notice.status == NoticeStatus.FAILED,
            NoticeItem.party == Party.HOST,
            NoticeItem.round == Case.round,
        )
        .group_by(NoticeItem.case_id)
    )
    if since is not None:
        query = query.where(Case.opened_at >= since)
    return {case_id: int(count) for case_id, count in session.execute(query)}


def compute_stats(session: Session, *, since: dt.datetime | None, now: dt.datetime) -> Stats:
    """Read the cases reported (and notices made) since SINCE and summarise them at NOW."""
    ids_query = select(Case.id)
    cases = select(
        Case.state,
        Case.route,
        Case.country,
        Case.network,
        Case.asn,
        Case.provider,
        Case.opened_at,
        Case.first_notice_at,
        Case.removed_at,
        Case.reopened_at,
        Case.past_rounds,
    )
    notices = select(Notice.kind, Notice.status)
    if since is not None:
        cases = cases.where(Case.opened_at >= since)
        ids_query = ids_query.where(Case.opened_at >= since)
        notices = notices.where(Notice.created_at >= since)
    cases, ids_query = cases.order_by(Case.id), ids_query.order_by(Case.id)
    ids = list(session.scalars(ids_query))
    case_rows = [_case_row(*row) for row in session.execute(cases)]
    bounced = _bounced_cases(session, since)
    case_rows = [replace(r, bounced=bounced.get(i, 0)) for i, r in zip(ids, case_rows, strict=True)]
    notice_rows = [NoticeRow(*row) for row in session.execute(notices)]
    return summarize(case_rows, notice_rows, since=since, now=now)
