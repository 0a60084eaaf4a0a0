"""Acting stage: owe the due workflow steps of active cases and re-check their URLs.

    act_cases     ACTIVE: owe the due workflow steps (re-tracing before chasers), re-check

It reads the cases it was given, does its I/O outside any transaction, and writes with
compare-and-set: a stale or duplicate task changes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from concurrent.futures import wait
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from workflows.core.policy import Step, trace_retry_delay
from workflows.core.steps import StepsDue, due_steps
from workflows.core.urls import normalize_url
from workflows.core.verdict import Confirmation, classify, next_removal_state
from workflows.engine.runtime import Runtime
from workflows.engine.tracing import load_cases, routing_of, seconds
from workflows.errors import LookupFailed
from workflows.kinds import CaseState, CheckOutcome, EventKind, NoticeKind, Party
from workflows.recheck.fetch import FetchResult
from workflows.store.cases import record, release
from workflows.store.db import transaction
from workflows.store.models import Case, Check, Notice, NoticeItem


def act_cases(rt: Runtime, ids: Sequence[int]) -> None:
    """Owe every due workflow step of each active case, then re-check it if due."""
    cases = load_cases(rt, ids, (CaseState.ACTIVE,))
    fetched = _fetch_due(rt, cases, rt.clock())
    sent = _sent_times(rt, cases)
    for case in cases:
        now = rt.clock()
        values: dict[str, Any] = {}
        items: list[dict[str, Any]] = []
        events: list[tuple[EventKind, dict[str, Any]]] = []
        _due_steps(rt, case, now, sent[case.id], values, items, events)
        check = _recheck(rt, case, now, values, events, fetched.get(case.id))
        _finish(rt, case, now, values, items, events, check)


def _fetch_due(rt: Runtime, cases: Sequence[Case], now: dt.datetime) -> dict[int, FetchResult]:
    """Re-check the URLs due now, a few at once, within a time budget; return what finished.

    A task's cases are mostly one host's (the sweep batches by host), so the process's
    small fetch pool also bounds how hard one host is hit. A fetch that outlives the budget
    is dropped: its case keeps its past check time and the next sweep hands it out again,
    instead of the whole batch overrunning its claim behind one slow host.
    """
    due = {c.id: c.url for c in cases if c.check_due_at is not None and c.check_due_at <= now}
    if not due:
        return {}
    futures = {rt.fetch_pool.submit(rt.fetcher.fetch, url): id_ for id_, url in due.items()}
    finished, _ = wait(futures, timeout=rt.fetch_budget)
    return {futures[f]: f.result() for f in finished}


def _due_steps(
    rt: Runtime,
    case: Case,
    now: dt.datetime,
    sent: Mapping[int, float],
    values: dict[str, Any],
    items: list[dict[str, Any]],
    events: list[tuple[EventKind, dict[str, Any]]],
) -> None:
    """Owe the steps core.steps finds due (re-tracing before a chaser); note the next one."""
    route, routed_at = case.route or "", case.routed_at or now
    done, round_ = case.steps_done, case.round
    decision = _decide(rt, route, done, routed_at, sent, now)
    owed = list(decision.due)
    while owed:
        step = owed.pop(0)
        chases = step.send in (NoticeKind.CHASER, NoticeKind.ESCALATION)
        if chases and (moved := _moved(rt, case)) is not None:
            round_, route, done = _hop(moved, round_, now, values, events), moved["route"], 0
            # The new routing starts its workflow afresh: none of its notices went out yet.
            decision = _decide(rt, route, 0, now, {}, now)
            owed = list(decision.due)
            continue
        try:
            _owe(rt, case, step, round_, now, values, items, events)
        except LookupFailed as error:  # transient: the step stays owed, tried again later
            retry = now + seconds(trace_retry_delay(rt.policy, 0, rt.rand))
            events.append((EventKind.STEP_DELAYED, {"step": step.index, "reason": error.message}))
            values["steps_done"], values["_next_step_at"] = done, retry
            return
        done += 1
    values["steps_done"] = done
    at = decision.next_at
    values["_next_step_at"] = None if at is None else dt.datetime.fromtimestamp(at, dt.UTC)


def _decide(
    rt: Runtime,
    route: str,
    done: int,
    routed_at: dt.datetime,
    sent: Mapping[int, float],
    now: dt.datetime,
) -> StepsDue:
    """Ask core.steps which of the route's steps are due, in epoch seconds."""
    steps = rt.policy.workflows[route]
    return due_steps(steps, done, routed_at.timestamp(), sent, now.timestamp())


def _hop(
    moved: dict[str, Any],
    round_: int,
    now: dt.datetime,
    values: dict[str, Any],
    events: list[tuple[EventKind, dict[str, Any]]],
) -> int:
    """Re-route the case to where its content moved, in a new round; return the round."""
    # The new host serves its own bytes: its first present check sets the hash.
    values.update(
        moved,
        round=round_ + 1,
        route=moved["route"],
        routed_at=now,
        content_hash=None,
        gone_streak=0,
    )
    detail = {"to": moved["network"], "country": moved["country"], "route": moved["route"]}
    events.append((EventKind.HOPPED, detail))
    return round_ + 1


def _owe(
    rt: Runtime,
    case: Case,
    step: Step,
    round_: int,
    now: dt.datetime,
    values: dict[str, Any],
    items: list[dict[str, Any]],
    events: list[tuple[EventKind, dict[str, Any]]],
) -> None:
    """Owe STEP to its party, or record that nobody is known to send it to."""
    recipients, country = _recipients(rt, case, step.to, values)
    if not recipients:
        reason = "no contact known"
        detail = {"step": step.index, "send": step.send, "to": step.to, "reason": reason}
        events.append((EventKind.STEP_SKIPPED, detail))
        return
    items.append(
        {
            "case_id": case.id,
            "round": round_,
            "step": step.index,
            "kind": step.send,
            "party": step.to,
            "recipients": recipients,
            "country": country,
            "due_at": now,
        }
    )


def _sent_times(rt: Runtime, cases: Sequence[Case]) -> dict[int, dict[int, float]]:
    """Return when each case's notices of its current round were actually sent, by step."""
    rounds = {case.id: case.round for case in cases}
    sent: dict[int, dict[int, float]] = {case_id: {} for case_id in rounds}
    if not rounds:
        return sent
    with rt.sessions() as session:
        rows = session.execute(
            select(NoticeItem.case_id, NoticeItem.round, NoticeItem.step, Notice.sent_at)
            .join(Notice, NoticeItem.notice_id == Notice.id)
            .where(NoticeItem.case_id.in_(rounds), Notice.sent_at.is_not(None))
        )
        for case_id, round_, step, sent_at in rows:
            if sent_at is not None and round_ == rounds[case_id]:
                sent[case_id][step] = sent_at.timestamp()
    return sent


def _moved(rt: Runtime, case: Case) -> dict[str, Any] | None:
    """Re-trace the URL; return the new routing if it hopped to another network or country."""
    result = rt.tracer.trace(normalize_url(case.url))
    if not result.route:
        return None
    fresh = routing_of(result)
    if (fresh["network"], fresh["country"]) == (case.network, case.country):
        return None
    return fresh


def _recipients(
    rt: Runtime, case: Case, party: str, values: dict[str, Any]
) -> tuple[str, str | None]:
    """Return the addresses and country of the party a step goes to."""
    trace = values.get("trace") or case.trace or {}
    country = values.get("country", case.country)
    if party == Party.HOTLINE:
        hotline = trace.get("hotline") or {}
        return hotline.get("email") or "", country
    if party == Party.UPSTREAM:
        return ",".join(rt.tracer.upstream_contacts(trace)), country
    return values.get("recipients", case.recipients) or "", country


def _recheck(
    rt: Runtime,
    case: Case,
    now: dt.datetime,
    values: dict[str, Any],
    events: list[tuple[EventKind, dict[str, Any]]],
    result: FetchResult | None,
) -> dict[str, Any] | None:
    """Fold a finished re-check into VALUES; return the Check row, or None without one."""
    if result is None:
        return None
    outcome = classify(result.outcome, result.sha256, case.content_hash)
    if outcome == CheckOutcome.PRESENT and case.content_hash is None:
        values["content_hash"] = result.sha256
    confirm = Confirmation(rt.policy.confirm_checks, rt.policy.confirm_spacing)
    last_gone = case.last_gone_at.timestamp() if case.last_gone_at else None
    state = next_removal_state(case.gone_streak, last_gone, outcome, now.timestamp(), confirm)
    values["gone_streak"] = state.gone_streak
    if state.gone_streak > case.gone_streak:
        values["last_gone_at"] = now  # only a check that counted starts the next spacing
    if state.confirmed:
        values.update(
            state=CaseState.REMOVED, removed_at=now, open_key=None, check_due_at=None, due_at=None
        )
        events.append((EventKind.REMOVED, {"checks": state.gone_streak}))
    else:
        after = state.next_check_at or now.timestamp() + rt.policy.recheck_every
        values["check_due_at"] = dt.datetime.fromtimestamp(after, dt.UTC)
    return {
        "case_id": case.id,
        "at": now,
        "outcome": outcome,
        "http_status": result.status,
        "sha256": result.sha256,
        "address": result.address,
        "reason": result.reason,
    }


def _finish(
    rt: Runtime,
    case: Case,
    now: dt.datetime,
    values: dict[str, Any],
    items: list[dict[str, Any]],
    events: list[tuple[EventKind, dict[str, Any]]],
    check: dict[str, Any] | None,
) -> None:
    """Write the case, its owed items, its check and events in one compare-and-set."""
    next_step_at = values.pop("_next_step_at", None)
    if values.get("state") != CaseState.REMOVED:
        check_at = values.get("check_due_at", case.check_due_at)
        due = [t for t in (next_step_at, check_at) if t is not None]
        values["due_at"] = min(due) if due else now + seconds(rt.policy.recheck_every)
    with transaction(rt.sessions) as session:
        if not release(session, case, **values):
            return  # someone else acted on this case meanwhile: their write stands
        for item in items:
            session.execute(_item_insert(session).values(**item).on_conflict_do_nothing())
            record(
                session,
                case.id,
                EventKind.STEP_DUE,
                now,
                step=item["step"],
                send=item["kind"],
                to=item["party"],
                recipients=item["recipients"],
            )
        if check is not None:
            session.add(Check(**check))
            record(
                session,
                case.id,
                EventKind.CHECKED,
                now,
                outcome=check["outcome"],
                status=check["http_status"],
                reason=check["reason"] or None,
            )
        for kind, detail in events:
            record(session, case.id, kind, now, **detail)


def _item_insert(session: Session) -> Any:
    module = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return module.insert(NoticeItem)
