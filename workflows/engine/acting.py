"""Acting stage: owe the due workflow steps of active cases and re-check their URLs.

    act_cases     ACTIVE: re-check, then owe the due workflow steps (re-tracing before
                  chasers; a chaser waits while the last check saw the content gone)
                  NEEDS_ANALYST with changed content: re-check only (the same content
                  again resumes the workflow, confirmed gone removes it)
                  REMOVED and watched: re-check; the same bytes or picture reopens it

It reads the cases it was given, does its I/O outside any transaction, and writes with
compare-and-set: a stale or duplicate task changes nothing.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from concurrent.futures import wait
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Insert, Table, bindparam, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from workflows.core.policy import Step, removal_watch, trace_retry_delay
from workflows.core.steps import StepsDue, due_steps
from workflows.core.urls import normalize_url
from workflows.core.verdict import (
    Confirmation,
    Evidence,
    Verdict,
    classify,
    next_changed_streak,
    next_removal_state,
    reappeared,
)
from workflows.engine.runtime import Runtime
from workflows.engine.tracing import awaits_confirmation, load_cases, routing_of, seconds
from workflows.errors import LookupFailed
from workflows.kinds import CaseState, CheckOutcome, EventKind, NoticeKind, NoticeStatus, Party
from workflows.recheck.fetch import FetchResult
from workflows.store.cases import event_row, record_rows, release, url_key
from workflows.store.db import transaction
from workflows.store.models import Case, Check, DeadRecipient, Notice, NoticeItem

ACTABLE = (CaseState.ACTIVE, CaseState.NEEDS_ANALYST, CaseState.REMOVED)
CHASING = (NoticeKind.CHASER, NoticeKind.ESCALATION)
ITEM_COLUMNS = (
    "case_id",
    "round",
    "step",
    "kind",
    "party",
    "recipients",
    "country",
    "due_at",
    "reported_at",
)


def act_cases(rt: Runtime, ids: Sequence[int], *, recheck: bool = True) -> None:
    """Re-check each case if due, then owe its due workflow steps; watch removed ones.

    RECHECK false (the steps task): only owe steps, re-checking no URL but those about to
    be chased; a re-check that is due as well is left to the checks queue.
    """
    states = ACTABLE if recheck else (CaseState.ACTIVE,)
    cases = [c for c in load_cases(rt, ids, states) if _actable(c)]
    now = rt.clock()
    active = [c for c in cases if c.state == CaseState.ACTIVE]
    sent = _sent_times(rt, active)
    # Fair chasing: a URL is re-checked just before a chaser or escalation is built.
    fetch = {
        c.id
        for c in active
        if any(
            step.send in CHASING
            for step in _decide(
                rt, c.route or "", c.steps_done, steps_clock(c) or now, sent[c.id], now
            ).due
        )
    }
    if recheck:
        fetch |= {c.id for c in cases if c.check_due_at is not None and c.check_due_at <= now}
    fetched = _fetch_due(rt, cases, now, fetch)
    dead = _dead_recipients(rt, now) if active else frozenset()
    outcomes: list[_Outcome] = []
    for case in cases:
        done = _Outcome(case, rt.clock())
        if case.state == CaseState.REMOVED:
            done.check = _watch(rt, case, done.now, done.values, done.events, fetched.get(case.id))
        else:
            done.check = _recheck(
                rt, case, done.now, done.values, done.events, fetched.get(case.id)
            )
            if case.state == CaseState.ACTIVE and done.state == CaseState.ACTIVE:
                held = done.values.get("gone_streak", case.gone_streak) > 0
                _due_steps(
                    rt,
                    case,
                    done.now,
                    sent[case.id],
                    done.values,
                    done.items,
                    done.events,
                    held,
                    dead,
                )
        _schedule(rt, done)
        outcomes.append(done)
    # All the I/O is done: one transaction writes the batch, each case by compare-and-set;
    # the checks and events of the cases written go in one statement each.
    with transaction(rt.sessions) as session:
        checks: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        for done in outcomes:
            _write(session, done, checks, events)
        if checks:
            session.connection().execute(_check_insert(), checks)
        record_rows(session, events)


@dataclass
class _Outcome:
    """What acting on one case came to, written with the rest of its batch."""

    case: Case
    now: dt.datetime
    values: dict[str, Any] = field(default_factory=dict)
    items: list[dict[str, Any]] = field(default_factory=list)
    events: list[tuple[EventKind, dict[str, Any]]] = field(default_factory=list)
    check: dict[str, Any] | None = None

    @property
    def state(self) -> str:
        """Return the state the case ends in."""
        return str(self.values.get("state", self.case.state))


def _actable(case: Case) -> bool:
    """Tell whether the act task handles CASE: a needs-analyst case only for changed content."""
    if case.state == CaseState.NEEDS_ANALYST:
        return awaits_confirmation(case)
    if case.state == CaseState.REMOVED:
        return case.watch_until is not None
    return True


def _fetch_due(
    rt: Runtime, cases: Sequence[Case], now: dt.datetime, fetch: set[int]
) -> dict[int, FetchResult]:
    """Re-check the cases in FETCH, all at once, within a time budget; return what finished.

    The process's fetch loop (`workflows.recheck.loop`) runs them, at most a few at once
    per host and a few hundred in all. A fetch that outlives the budget is cancelled: its
    case keeps its past check time and the next sweep hands it out again, instead of the
    whole batch overrunning its claim behind one slow host. Checks rotate among the
    vantages (fetch proxies), so consecutive checks come from different ones.
    """
    due = [c for c in cases if c.id in fetch]
    if not due:
        return {}
    fetchers = rt.fetchers
    # The batch resolves each host name once (the vantages share one resolver).
    resolutions = fetchers[0].resolutions()
    futures = {
        rt.fetch_loop.submit(
            fetchers[(c.id + c.checks_made) % len(fetchers)], c.url, resolutions
        ): c.id
        for c in due
    }
    finished, late = wait(futures, timeout=rt.fetch_budget)
    for future in late:
        future.cancel()
    return {futures[f]: f.result() for f in finished if not f.cancelled()}


def _due_steps(
    rt: Runtime,
    case: Case,
    now: dt.datetime,
    sent: StepTimes,
    values: dict[str, Any],
    items: list[dict[str, Any]],
    events: list[tuple[EventKind, dict[str, Any]]],
    gone_seen: bool = False,
    dead: frozenset[str] = frozenset(),
) -> None:
    """Owe the steps core.steps finds due (re-tracing before a chaser); note the next one.

    GONE_SEEN: the last check saw the content gone; a chaser or escalation then waits for
    the confirming check instead of going out for content that may already be down.
    """
    route, routed_at = case.route or "", steps_clock(case) or now
    done, round_ = case.steps_done, case.round
    decision = _decide(rt, route, done, routed_at, sent, now)
    owed = list(decision.due)
    while owed:
        step = owed.pop(0)
        chases = step.send in CHASING
        if chases and gone_seen:
            check_at = values.get("check_due_at", case.check_due_at) or now
            detail = {"step": step.index, "send": step.send, "until": check_at.isoformat()}
            events.append((EventKind.CHASER_HELD, detail))
            values["steps_done"], values["_next_step_at"] = done, check_at
            return
        if chases and (moved := _moved(rt, case)) is not None:
            round_, route, done = _hop(moved, round_, now, values, events), moved["route"], 0
            # The new routing starts its workflow afresh: none of its notices went out yet.
            decision = _decide(rt, route, 0, now, StepTimes(), now)
            owed = list(decision.due)
            continue
        try:
            _owe(rt, case, step, round_, now, values, items, events, dead)
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
    times: StepTimes,
    now: dt.datetime,
) -> StepsDue:
    """Ask core.steps which of the route's steps are due, in epoch seconds."""
    steps = rt.policy.workflows[route]
    stamp = routed_at.timestamp()
    return due_steps(steps, done, stamp, times.sent, now.timestamp(), times.unsent)


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
        steps_from=None,
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
    dead: frozenset[str] = frozenset(),
) -> None:
    """Owe STEP to its party, or record that nobody is known to send it to.

    Addresses that hard-bounced lately (DEAD) are left out; a party all of whose addresses
    bounced is skipped like one with no contact, and the workflow goes on to the next.
    """
    recipients, country = _recipients(rt, case, step.to, values)
    listed = [r for r in recipients.split(",") if r.strip()]
    alive = [r for r in listed if r.strip().lower() not in dead]
    left_out = sorted(set(listed) - set(alive))
    detail = {"step": step.index, "send": step.send, "to": step.to}
    fallback = False
    if left_out and not alive and step.to == Party.HOST:
        # Every abuse address bounced lately: the network's other contacts, if any.
        trace = values.get("trace") or case.trace or {}
        others = [a for a in trace.get("fallback") or [] if a.strip().lower() not in dead]
        alive, fallback = others, bool(others)
    if left_out and not alive:
        events.append(
            (EventKind.STEP_SKIPPED, {**detail, "reason": "bounced lately", "left_out": left_out})
        )
        return
    form = _form_of(rt, case, step.to, values, alive)
    if form is not None:
        # A desk that reads only its web form: the step becomes a task for an analyst.
        recipients, left_out = form, []
    elif left_out:
        recipients = ",".join(alive)
    if not recipients:
        events.append((EventKind.STEP_SKIPPED, {**detail, "reason": "no contact known"}))
        return
    # The first step of the round a reappearance began tells the party it came back.
    back = step.index == 0 and round_ == values.get("reappeared_round", case.reappeared_round)
    items.append(
        {
            "case_id": case.id,
            "round": round_,
            "step": step.index,
            "kind": NoticeKind.REAPPEARED if back else step.send,
            "party": step.to,
            "recipients": recipients,
            "country": country,
            "due_at": now,
            "reported_at": case.opened_at,  # its report, for the outbox's report wait
            # Not columns: told in the item's step_due event (_write).
            **({"left_out": left_out} if left_out else {}),
            **({"fallback": True} if fallback else {}),
        }
    )


def steps_clock(case: Case) -> dt.datetime | None:
    """Return when CASE's workflow steps count from: its routing, unless a refusal brought
    a step forward or a hold moved them on (steps_from)."""
    return case.steps_from or case.routed_at


def _dead_recipients(rt: Runtime, now: dt.datetime) -> frozenset[str]:
    """Return the addresses skipped now because they hard-bounced (engine/inbox.py)."""
    with rt.sessions() as session:
        return frozenset(
            session.scalars(select(DeadRecipient.address).where(DeadRecipient.until > now))
        )


@dataclass
class StepTimes:
    """A case's steps of its current round: when each was sent, and which are on their way."""

    sent: dict[int, float] = field(default_factory=dict)  # step → epoch seconds sent
    unsent: set[int] = field(default_factory=set)  # owed, not sent yet, not failed


def _sent_times(rt: Runtime, cases: Sequence[Case]) -> dict[int, StepTimes]:
    """Return when each case's notices of its current round were sent, and which are not yet."""
    rounds = {case.id: case.round for case in cases}
    times = {case_id: StepTimes() for case_id in rounds}
    if not rounds:
        return times
    # A web form waiting for its analyst holds the next step as a notice on its way does.
    on_the_way = (NoticeStatus.PENDING, NoticeStatus.SENDING, NoticeStatus.FORM)
    with rt.sessions() as session:
        rows = session.execute(
            select(
                NoticeItem.case_id,
                NoticeItem.round,
                NoticeItem.step,
                NoticeItem.notice_id,
                Notice.sent_at,
                Notice.status,
            )
            .outerjoin(Notice, NoticeItem.notice_id == Notice.id)
            .where(NoticeItem.case_id.in_(rounds))
        )
        for case_id, round_, step, notice_id, sent_at, status in rows:
            if round_ != rounds[case_id]:
                continue
            if sent_at is not None:
                times[case_id].sent[step] = sent_at.timestamp()
            elif notice_id is None or status in on_the_way:
                times[case_id].unsent.add(step)
    return times


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
        if trace.get("platform") and trace.get("network_abuse"):
            # On a platform the network that hosts it is the party above the platform.
            return ",".join(trace["network_abuse"]), country
        return ",".join(rt.tracer.upstream_contacts(trace)), country
    if party == Party.REGISTRAR:
        # A registrar that also hosts the content was told already, as the host.
        host = {a.lower() for a in trace.get("abuse") or []}
        found = [a for a in rt.tracer.registrar_contacts(trace) if a.lower() not in host]
        return ",".join(found), country
    return values.get("recipients", case.recipients) or "", country


def _form_of(
    rt: Runtime, case: Case, party: str, values: dict[str, Any], addresses: list[str]
) -> str | None:
    """Return the web form a step's party takes reports through (TAKEDOWN_FORMS), or None.

    The host matches by the AS of the networks it was routed to, the reported host name or
    its abuse addresses; any other party by its abuse addresses. A partner hotline takes
    referrals by e-mail, always.
    """
    if party == Party.HOTLINE or not len(rt.forms):
        return None
    asns: list[int | None] = []
    host = ""
    trace = values.get("trace") or case.trace or {}
    if party == Party.HOST and not trace.get("platform"):
        # (A platform's desk matches by its own addresses only, not by the network under it.)
        country = values.get("country", case.country)
        networks = [n for n in trace.get("networks") or [] if isinstance(n, dict)]
        asns = [n.get("asn") for n in networks if n.get("country") == country] or [
            n.get("asn") for n in networks
        ]
        host = case.host or ""
    form = rt.forms.match(asns, host, addresses)
    return None if form is None else form.url


def _evidence(result: FetchResult) -> Evidence | None:
    """Return the evidence of a present fetch, None for any other outcome."""
    if result.outcome != CheckOutcome.PRESENT:
        return None
    found = result.fingerprints
    if found is None:
        return Evidence(sha256=result.sha256)
    return Evidence(
        sha256=result.sha256,
        kind=found.kind,
        pdq=found.pdq,
        tlsh=found.tlsh,
        text_sha256=found.text_sha256,
    )


def _check_row(
    case: Case, now: dt.datetime, result: FetchResult, verdict: Verdict
) -> dict[str, Any]:
    """Return the Check row of one fetch and its verdict: the evidence, never the body."""
    found = result.fingerprints
    return {
        "case_id": case.id,
        "at": now,
        "outcome": verdict.outcome,
        "http_status": result.status,
        "sha256": result.sha256,
        "address": result.address,
        "reason": result.reason,
        "content_type": result.content_type,
        "size": result.size if result.outcome == CheckOutcome.PRESENT else None,
        "pdq": found.pdq if found else None,
        "pdq_quality": found.pdq_quality if found else None,
        "tlsh": found.tlsh if found else None,
        "text_sha256": found.text_sha256 if found else None,
        "vantage": result.vantage,
        "rule": verdict.rule,
    }


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
    reference = Evidence.from_dict(case.evidence)
    evidence = _evidence(result)
    verdict = classify(result.outcome, evidence, reference)
    outcome = verdict.outcome
    values["checks_made"] = case.checks_made + 1
    if outcome == CheckOutcome.PRESENT and reference is None and evidence is not None:
        values["evidence"], values["content_hash"] = evidence.as_dict(), result.sha256
    vantages = min(2, len(rt.fetchers), rt.policy.confirm_checks)
    confirm = Confirmation(rt.policy.confirm_checks, rt.policy.confirm_spacing, vantages)
    last_gone = case.last_gone_at.timestamp() if case.last_gone_at else None
    seen = frozenset(filter(None, (case.gone_vantages or "").split("\n")))
    state = next_removal_state(
        case.gone_streak, last_gone, outcome, now.timestamp(), confirm, seen, result.vantage
    )
    values["gone_streak"] = state.gone_streak
    values["gone_vantages"] = "\n".join(sorted(state.vantages)) or None
    if state.gone_streak > case.gone_streak:
        values["last_gone_at"] = now  # only a check that counted starts the next spacing
    changed, needs_analyst = next_changed_streak(
        case.changed_streak, outcome, rt.policy.changed_checks
    )
    if case.state == CaseState.NEEDS_ANALYST and outcome != CheckOutcome.PRESENT:
        changed = max(changed, 1)  # it waits for an analyst (or proof) until it leaves
    values["changed_streak"] = changed
    after = state.next_check_at or now.timestamp() + rt.policy.recheck_every
    values["check_due_at"] = dt.datetime.fromtimestamp(after, dt.UTC)
    if state.confirmed:
        by = "nxdomain" if result.permanent_dns else "status"
        values.update(
            state=CaseState.REMOVED,
            removed_at=now,
            removed_by=by,
            open_key=None,
            **removal_watch(now, rt.policy.watch_every, rt.policy.watch_for),
        )
        detail = {"checks": state.gone_streak, "by": by, "vantages": sorted(state.vantages)}
        events.append((EventKind.REMOVED, detail))
    elif case.state == CaseState.NEEDS_ANALYST and outcome == CheckOutcome.PRESENT:
        # The content it was first reported with is served again: chasing goes on.
        values.update(state=CaseState.ACTIVE, last_error=None)
        events.append((EventKind.RESUMED, {"rule": verdict.rule}))
    elif case.state == CaseState.ACTIVE and needs_analyst:
        reason = f"content changed: confirm removal ({verdict.rule})"
        values.update(state=CaseState.NEEDS_ANALYST, last_error=reason)
        events.append((EventKind.CONTENT_CHANGED, {"checks": changed, "rule": verdict.rule}))
    return _check_row(case, now, result, verdict)


def _watch(
    rt: Runtime,
    case: Case,
    now: dt.datetime,
    values: dict[str, Any],
    events: list[tuple[EventKind, dict[str, Any]]],
    result: FetchResult | None,
) -> dict[str, Any] | None:
    """Check a removed, watched URL; reopen the case when its content came back."""
    if result is None:
        values["due_at"] = case.due_at  # not checked in time: the next sweep hands it out again
        return None
    reference = Evidence.from_dict(case.evidence)
    evidence = _evidence(result)
    verdict = classify(result.outcome, evidence, reference)
    back = reappeared(evidence, reference) if verdict.outcome == CheckOutcome.PRESENT else None
    if back is not None:
        _reopen(rt, case, now, values, events, back)
        return _check_row(case, now, result, verdict)
    following = now + seconds(rt.policy.watch_every)
    if case.watch_until is None or following > case.watch_until:
        values.update(check_due_at=None, due_at=None, watch_until=None)
        events.append((EventKind.WATCH_ENDED, {"since": iso_or_none(case.removed_at)}))
    else:
        values.update(check_due_at=following, due_at=following)
    return _check_row(case, now, result, verdict)


def _reopen(
    rt: Runtime,
    case: Case,
    now: dt.datetime,
    values: dict[str, Any],
    events: list[tuple[EventKind, dict[str, Any]]],
    rule: str,
) -> None:
    """Reopen a removed case whose content came back: a new round, its workflow afresh."""
    detail: dict[str, Any] = {"rule": rule, "removed_at": iso_or_none(case.removed_at)}
    with rt.sessions() as session:
        other = session.scalar(select(Case.id).where(Case.open_key == url_key(case.url)))
    if other is not None:
        # The URL was reported again meanwhile: that open case carries on; this one stops.
        values.update(check_due_at=None, due_at=None, watch_until=None)
        events.append((EventKind.REAPPEARED, {**detail, "followed_by": other}))
        return
    round_ = case.round + 1
    finished = {
        "opened_at": iso_or_none(case.reopened_at or case.opened_at),
        "first_notice_at": iso_or_none(case.first_notice_at),
        "removed_at": iso_or_none(case.removed_at),
    }
    values.update(
        reopened_at=now,
        past_rounds=[*(case.past_rounds or []), finished],
        first_notice_at=None,  # the round's own first notice (the reappeared one) sets it
        state=CaseState.ACTIVE,
        open_key=url_key(case.url),
        round=round_,
        steps_done=0,
        routed_at=now,
        steps_from=None,
        removed_at=None,
        removed_by=None,
        watch_until=None,
        gone_streak=0,
        gone_vantages=None,
        last_gone_at=None,
        changed_streak=0,
        reappeared=case.reappeared + 1,
        reappeared_round=round_,
        check_due_at=now + seconds(rt.policy.recheck_every),
        due_at=now,
    )
    events.append((EventKind.REAPPEARED, {**detail, "round": round_}))


def iso_or_none(at: dt.datetime | None) -> str | None:
    """Return AT in ISO 8601, or None."""
    return None if at is None else at.isoformat()


def _schedule(rt: Runtime, done: _Outcome) -> None:
    """Set the case's next due times: its next step's, and the earlier of that and its
    next re-check as when it is handed out again."""
    case, now, values, state = done.case, done.now, done.values, done.state
    if "_next_step_at" in values:
        values["step_due_at"] = values.pop("_next_step_at")
    elif state == CaseState.ACTIVE and case.state != CaseState.ACTIVE:
        values["step_due_at"] = now  # resumed or reopened: its steps are worked out next
    elif state != CaseState.ACTIVE:
        values["step_due_at"] = None
    if state not in (CaseState.REMOVED, CaseState.ACTIVE):
        values.setdefault("due_at", values.get("check_due_at", case.check_due_at))
    elif state == CaseState.ACTIVE and "due_at" not in values:
        check_at = values.get("check_due_at", case.check_due_at)
        step_at = values.get("step_due_at", case.step_due_at)
        due = [t for t in (step_at, check_at) if t is not None]
        values["due_at"] = min(due) if due else now + seconds(rt.policy.recheck_every)


def _write(
    session: Session,
    done: _Outcome,
    checks: list[dict[str, Any]],
    events: list[dict[str, Any]],
) -> None:
    """Write the case and its owed items, and add its check and events to CHECKS and
    EVENTS (written with the batch's): all or, if someone else acted on the case
    meanwhile, nothing (their write stands)."""
    case, now = done.case, done.now
    if not release(session, case, **done.values):
        return
    for item in done.items:
        dialect = session.get_bind().dialect.name
        session.execute(_item_insert(dialect), {f"item_{k}": item[k] for k in ITEM_COLUMNS})
        bounced = {k: item[k] for k in ("left_out", "fallback") if k in item}
        events.append(
            event_row(
                case.id,
                EventKind.STEP_DUE,
                now,
                step=item["step"],
                send=item["kind"],
                to=item["party"],
                recipients=item["recipients"],
                **bounced,
            )
        )
    check = done.check
    if check is not None:
        checks.append(check)
        events.append(
            event_row(
                case.id,
                EventKind.CHECKED,
                now,
                outcome=check["outcome"],
                status=check["http_status"],
                reason=check["reason"] or None,
            )
        )
    events.extend(event_row(case.id, kind, now, **detail) for kind, detail in done.events)


@functools.cache
def _check_insert() -> Insert:
    """Return the INSERT of one check, built once (the ORM's unit of work cost more)."""
    return insert(cast(Table, Check.__table__))


@functools.cache
def _item_insert(dialect: str) -> Any:
    """Return the INSERT of one owed item (nothing if the step is owed already), built once
    per dialect with its values bound as item_*."""
    module = postgresql if dialect == "postgresql" else sqlite
    values: dict[str, Any] = {name: bindparam(f"item_{name}") for name in ITEM_COLUMNS}
    return module.insert(NoticeItem).values(values).on_conflict_do_nothing()
