"""Tracing stage: trace reported cases and route them, or give them a due time to retry.

    trace_cases   NEW / WAITING / NEEDS_ANALYST  → ACTIVE, or back with a due time

It reads the cases it was given, traces outside any transaction, and writes with
compare-and-set: a stale or duplicate task changes nothing.
"""

from __future__ import annotations

import contextvars
import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from workflows.core.policy import trace_retry_delay
from workflows.core.urls import normalize_url
from workflows.engine.metrics import timed
from workflows.engine.runtime import Runtime
from workflows.kinds import CaseState, EventKind
from workflows.store.cases import record, release
from workflows.store.db import transaction
from workflows.store.models import Case
from workflows.trace.tracer import Trace

TRACEABLE = (CaseState.NEW, CaseState.WAITING, CaseState.NEEDS_ANALYST)
TRACE_PARALLEL = 8  # host names one trace task resolves and looks up at once


def seconds(delta: float) -> dt.timedelta:
    return dt.timedelta(seconds=delta)


def load_cases(rt: Runtime, ids: Sequence[int], states: Sequence[str]) -> list[Case]:
    """Read the cases with IDS that are still in one of STATES."""
    with rt.sessions() as session:
        found = session.scalars(select(Case).where(Case.id.in_(ids), Case.state.in_(states)))
        return list(found)


def awaits_confirmation(case: Case) -> bool:
    """Tell whether CASE waits for an analyst because its content changed: such a case is
    re-checked by the act task, never re-traced, until it is settled."""
    return case.state == CaseState.NEEDS_ANALYST and case.changed_streak > 0


def trace_cases(rt: Runtime, ids: Sequence[int], *, keep_claims: bool = False) -> list[int]:
    """Trace each case and route it, or give it a due time to try again; return the cases
    routed. KEEP_CLAIMS: the routed ones stay claimed, for the caller owes their first
    step at once (the trace task, tasks.py); else the sweep hands them to a steps task."""
    by_host: dict[str, list[Case]] = defaultdict(list)
    for case in load_cases(rt, ids, TRACEABLE):
        if not awaits_confirmation(case):  # changed content is re-checked, not traced
            by_host[case.host].append(case)
    traced = _trace_hosts(rt, list(by_host.values()))
    routed: list[int] = []
    with transaction(rt.sessions) as session:  # one write for the batch; each case by CAS
        for case, result in traced:
            if not result.route:
                _trace_failed(session, rt, case, result)
            elif _route(session, rt, case, result, keep_claims):
                routed.append(case.id)
    return routed


def _trace_hosts(rt: Runtime, groups: list[list[Case]]) -> list[tuple[Case, Trace]]:
    """Trace each group (one host name's cases), the groups side by side: a batch the sweep
    filled with many hosts' cases waits for the slowest host's DNS and RDAP answers, not
    for their sum. Each group is one tracer batch (one resolution per host name, one origin
    per address); the resolver's cache and the RDAP client's per-network lock keep hosts
    that share addresses or networks from asking twice."""

    def trace_group(cases: list[Case]) -> list[tuple[Case, Trace]]:
        done = []
        with rt.tracer.batch():
            for case in cases:
                with timed("trace"):
                    done.append((case, rt.tracer.trace(normalize_url(case.url))))
        return done

    if len(groups) <= 1:
        return [pair for group in groups for pair in trace_group(group)]
    context = contextvars.copy_context()  # the task's log fields, in every thread
    workers = min(TRACE_PARALLEL, len(groups))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="takedown-trace") as pool:
        futures = [pool.submit(context.copy().run, trace_group, group) for group in groups]
        return [pair for future in futures for pair in future.result()]


def routing_of(result: Trace) -> dict[str, Any]:
    """Return the case columns a routed trace sets."""
    hosting = [n for n in result.networks if not n.special_use and not n.error]
    network = next((n for n in hosting if n.country == result.country), None)
    label = (result.cdn or (network.cidr if network else None)) or None
    platform = (result.platform or {}).get("name") if result.route else None
    provider = platform or result.cdn or (network and (network.as_name or network.name)) or None
    return {
        "route": result.route,
        "country": result.country,
        "network": label,
        "asn": network.asn if network else None,
        "provider": provider[:200] if provider else None,
        "recipients": ",".join(result.abuse) or None,
        "trace": result.as_dict(),
    }


def _route(session: Session, rt: Runtime, case: Case, result: Trace, keep_claim: bool) -> bool:
    """Route CASE by RESULT (keeping its claim if asked); tell whether it was."""
    now = rt.clock()
    values = routing_of(result)
    if not release(
        session,
        case,
        state=CaseState.ACTIVE,
        routed_at=now,
        steps_from=None,
        steps_done=0,
        trace_attempts=0,
        last_error=None,
        due_at=now,
        step_due_at=now,  # the first notice is owed at once, by this task or a steps task
        check_due_at=now,
        claimed_until=case.claimed_until if keep_claim else None,
        **values,
    ):
        return False
    record(
        session,
        case.id,
        EventKind.ROUTED,
        now,
        route=result.route,
        country=result.country,
        network=values["network"],
        abuse=result.abuse,
        cdn=result.cdn,
    )
    return True


def _trace_failed(session: Session, rt: Runtime, case: Case, result: Trace) -> None:
    now = rt.clock()
    transient = bool(result.error and not result.error.get("permanent", True))
    if transient:
        delay = trace_retry_delay(rt.policy, case.trace_attempts, rt.rand)
        state = CaseState.WAITING
    else:
        delay, state = rt.policy.retrace_every, CaseState.NEEDS_ANALYST
    changed = release(
        session,
        case,
        state=state,
        trace=result.as_dict(),
        trace_attempts=case.trace_attempts + 1,
        last_error=result.reason,
        due_at=now + seconds(delay),
    )
    if changed and (case.state != state or case.last_error != result.reason):
        record(
            session,
            case.id,
            EventKind.TRACE_FAILED,
            now,
            reason=result.reason,
            transient=transient,
            retry_in=delay,
        )
