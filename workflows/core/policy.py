"""The workflow policy as data: what is sent to whom and when, and how often work is retried.

`workflows.config.policy` reads and validates the operator's file into these types; the
helpers here are pure: they take the policy, data and times (epoch seconds) and return
decisions (which steps are due: `workflows.core.steps`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from workflows.core.routing import Route
from workflows.kinds import NoticeKind, Party

# What a step may send; a `reappeared` notice is the engine's, when removed content comes back.
SENDS = tuple(kind.value for kind in NoticeKind if kind != NoticeKind.REAPPEARED)
RECIPIENTS = tuple(party.value for party in Party)
ROUTES = tuple(route.value for route in Route)


@dataclass(frozen=True)
class Step:
    """One step of a workflow: what to send, to whom, how long after the case's routing."""

    index: int  # position in the workflow from 0, i.e. the steps done before this one
    after: float  # seconds from the case's routing
    send: str  # a NoticeKind
    to: str  # a Party


@dataclass(frozen=True)
class Policy:
    """The validated policy; durations in seconds."""

    sweep_every: float
    recheck_every: float
    confirm_checks: int
    confirm_spacing: float
    notice_window: float
    retrace_every: float
    trace_retry_first: float
    trace_retry_max: float
    max_notice_urls: int
    workflows: Mapping[str, tuple[Step, ...]]  # by route name, every Route present
    changed_checks: int = 2  # consecutive changed checks before an analyst must confirm
    watch_every: float = 86400.0  # how often a removed URL is checked again
    watch_for: float = 90 * 86400.0  # for how long after its removal (0: not watched)
    inbox_every: float = 60.0  # how often TAKEDOWN_IMAP_URL is polled
    dead_contact_for: float = 7 * 86400.0  # how long a hard-bounced address is skipped
    overdue_after: float = 72 * 3600.0  # a case still online this long after notice is late


def removal_watch(now: dt.datetime, every: float, period: float) -> dict[str, dt.datetime | None]:
    """Return the case columns that keep a URL removed at NOW watched (`watch_removed`):
    its first check EVERY seconds on (never past the watch), and the watch's end."""
    if period <= 0:
        return {"check_due_at": None, "due_at": None, "watch_until": None}
    first = now + dt.timedelta(seconds=min(every, period))
    return {
        "check_due_at": first,
        "due_at": first,
        "watch_until": now + dt.timedelta(seconds=period),
    }


def trace_retry_delay(policy: Policy, attempt: int, rand: Callable[[], float]) -> float:
    """Return the wait before retry `attempt` (from 0) of a transiently failed trace."""
    if attempt < 0:
        raise ValueError(f"attempt must not be negative, not {attempt}")
    # Doubling from `first`, capped at `max`; the exponent is capped so 2.0**n cannot
    # overflow (a float product that does becomes inf, and the cap applies).
    backoff = min(policy.trace_retry_max, policy.trace_retry_first * 2.0 ** min(attempt, 1000))
    # Jitter in [50 %, 100 %] spreads a burst of failures (an RDAP outage) over time and
    # never retries sooner than half the backoff.
    return backoff * (0.5 + 0.5 * min(max(rand(), 0.0), 1.0))
