"""Time-to-removal statistics: pure computation over rows read from the case store.

(`workflows.store.queries.compute_stats` reads the rows.)

Only columns that survive purging are read (state, route, country, network, asn,
provider and the timestamps of cases; kind, status and times of notices), so purged
cases count like any other.

Definitions (the same for the CLI, the API and the web page):
- time to removal from report is `removed_at - opened_at`; from first notice it is
  `removed_at - first_notice_at`, for cases that had a notice sent; per round: content
  that came back after its removal starts a round of its own (from its reappearance, and
  from the reappeared notice), and each round's removal counts once;
- the median is the middle value (the mean of the two middle ones for an even count); p90
  is the nearest-rank 90th percentile (the smallest value at or above 90 % of the values),
  both exact over every removed case, never estimated from a histogram;
- "removed within 24 h" is a share of the cases whose outcome at 24 h is known: the
  removed ones, plus the ones still open that have been open for 24 h already. A case
  reported an hour ago is not counted as slow, and one that is still online after a week
  is not left out. Cases closed by an analyst without removal are left out;
- the slowest providers are ranked by the median time online after the first notice, a
  case still online counting with its age so far (a lower bound). A provider whose
  notices bounced (refused at sending, or returned later) could not be reached: its
  cases count from their report, not from a notice it never got, and it ranks among the
  worst, above every provider that could be reached, never among the fastest.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from workflows.core.figures import iso
from workflows.kinds import FIRST_NOTICE_KINDS, OPEN_STATES, CaseState, NoticeStatus

WINDOWS = (("24h", 86400.0), ("72h", 3 * 86400.0), ("7d", 7 * 86400.0))
LEAGUE_SIZE = 10


class Timed(Protocol):
    """One removal round's times: a case's current round, or one it finished before."""

    @property
    def opened_at(self) -> dt.datetime: ...
    @property
    def first_notice_at(self) -> dt.datetime | None: ...
    @property
    def removed_at(self) -> dt.datetime | None: ...


@dataclass(frozen=True)
class Round:
    """A removal round a case finished before its content came back."""

    opened_at: dt.datetime  # reported, or reappeared
    first_notice_at: dt.datetime | None
    removed_at: dt.datetime | None


@dataclass(frozen=True)
class CaseRow:
    """The purge-proof columns of one case; the times are of its current round."""

    state: str
    route: str | None
    country: str | None
    network: str | None
    asn: int | None
    provider: str | None
    opened_at: dt.datetime  # reported, or (reappeared) when its content came back
    first_notice_at: dt.datetime | None
    removed_at: dt.datetime | None
    past: tuple[Round, ...] = ()  # rounds removed before the content came back
    bounced: int = 0  # its notices to its host that bounced (refused or returned)


@dataclass(frozen=True)
class NoticeRow:
    """The purge-proof columns of one notice."""

    kind: str
    status: str


@dataclass(frozen=True)
class Durations:
    """Times to removal of a set of cases, and the shares removed within each window."""

    removed: int
    median: float | None  # seconds
    p90: float | None
    within: dict[str, float | None]  # window name → share (0..1), None when nothing is known
    values: tuple[float, ...] = field(default=(), repr=False)  # every time, ascending: charts

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "removed": self.removed,
            "median_s": self.median,
            "p90_s": self.p90,
            "within": dict(self.within),
        }


@dataclass(frozen=True)
class Group:
    """The figures of the cases sharing one country, network, provider or route."""

    key: str
    label: str
    cases: int
    removed: int
    open: int
    oldest_open: float | None  # seconds the longest-open case has been open
    from_report: Durations
    from_notice: Durations

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "key": self.key,
            "label": self.label,
            "cases": self.cases,
            "removed": self.removed,
            "open": self.open,
            "oldest_open_s": self.oldest_open,
            "from_report": self.from_report.as_dict(),
            "from_notice": self.from_notice.as_dict(),
        }


@dataclass(frozen=True)
class LeagueRow:
    """One provider in the league table of the slowest."""

    provider: str
    noticed: int
    removed: int
    online: int
    median_online: float  # seconds online after the first notice; open cases at their age
    median_removal: float | None  # seconds from first notice, removed cases only
    bounced: int = 0  # cases whose notice to this provider bounced: it could not be reached

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "provider": self.provider,
            "noticed": self.noticed,
            "removed": self.removed,
            "online": self.online,
            "median_online_s": self.median_online,
            "median_removal_s": self.median_removal,
            "bounced": self.bounced,
        }


@dataclass(frozen=True)
class Stats:
    """Every figure of `takedown stats`, `GET /api/stats` and the statistics page."""

    since: dt.datetime | None
    now: dt.datetime
    states: dict[str, int]
    overall: Group
    by: dict[str, list[Group]]  # "country", "network", "provider", "route"
    slowest: list[LeagueRow]
    notices: dict[str, int]
    # Removed content that came back: cases it happened to, and how often in all.
    reappeared: dict[str, int] = field(default_factory=lambda: {"cases": 0, "times": 0})

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON form (times in seconds, moments in ISO 8601 UTC)."""
        return {
            "since": iso(self.since),
            "now": iso(self.now),
            "states": dict(self.states),
            "overall": self.overall.as_dict(),
            **{f"by_{name}": [g.as_dict() for g in groups] for name, groups in self.by.items()},
            "slowest_providers": [row.as_dict() for row in self.slowest],
            "notices": dict(self.notices),
            "reappeared": dict(self.reappeared),
        }


def summarize(
    cases: Sequence[CaseRow],
    notices: Sequence[NoticeRow],
    *,
    since: dt.datetime | None,
    now: dt.datetime,
) -> Stats:
    """Return the statistics of CASES and NOTICES as they stand at NOW."""
    states = {state.value: 0 for state in CaseState}
    for case in cases:
        states[case.state] = states.get(case.state, 0) + 1
    return Stats(
        since=since,
        now=now,
        states=states,
        overall=group_of("all", "all cases", cases, now),
        by={
            "country": groups(cases, now, lambda c: (c.country or "-", c.country or "unknown")),
            "network": groups(cases, now, _network_key),
            "provider": groups(cases, now, lambda c: (c.provider or "-", c.provider or "unknown")),
            "route": groups(cases, now, lambda c: (c.route or "-", c.route or "no route")),
        },
        slowest=league(cases, now),
        notices=notice_counts(notices),
        reappeared={
            "cases": sum(1 for c in cases if c.past),
            "times": sum(len(c.past) for c in cases),
        },
    )


def _network_key(case: CaseRow) -> tuple[str, str]:
    if case.asn is not None:
        return f"AS{case.asn}", case.provider or f"AS{case.asn}"
    return case.network or "-", case.network or "unknown"


def groups(
    cases: Iterable[CaseRow], now: dt.datetime, key: Callable[[CaseRow], tuple[str, str]]
) -> list[Group]:
    """Group CASES by KEY (key, label); the groups with the most cases still open first."""
    grouped: dict[str, list[CaseRow]] = defaultdict(list)
    labels: dict[str, str] = {}
    for case in cases:
        name, label = key(case)
        grouped[name].append(case)
        labels.setdefault(name, label)
    found = [group_of(name, labels[name], rows, now) for name, rows in grouped.items()]
    return sorted(found, key=lambda g: (-g.open, -g.cases, g.key))


def group_of(key: str, label: str, cases: Sequence[CaseRow], now: dt.datetime) -> Group:
    """Return the figures of CASES."""
    still_open = [c for c in cases if c.state in OPEN_STATES]
    return Group(
        key=key,
        label=label,
        cases=len(cases),
        removed=sum(1 for c in cases if c.removed_at is not None),
        open=len(still_open),
        oldest_open=max(((now - c.opened_at).total_seconds() for c in still_open), default=None),
        from_report=durations(cases, now, lambda c: c.opened_at),
        from_notice=durations(cases, now, lambda c: c.first_notice_at),
    )


def durations(
    cases: Iterable[CaseRow], now: dt.datetime, start: Callable[[Timed], dt.datetime | None]
) -> Durations:
    """Return the times to removal counted from START, and the shares within each window.

    Per round: a case whose content came back counts each removal from its round's start.
    """
    removed: list[float] = []
    waiting: list[float] = []  # how long the cases still open have been waiting so far
    for case in cases:
        parts: tuple[Timed, ...] = (*case.past, case)
        for part in parts:
            began = start(part)
            if began is None:
                continue
            if part.removed_at is not None:
                removed.append(max(0.0, (part.removed_at - began).total_seconds()))
            elif case.state in OPEN_STATES:
                waiting.append((now - began).total_seconds())
    removed.sort()
    within = {}
    for name, seconds in WINDOWS:
        known = len(removed) + sum(1 for age in waiting if age >= seconds)
        done = sum(1 for value in removed if value <= seconds)
        within[name] = done / known if known else None
    return Durations(
        removed=len(removed),
        median=statistics.median(removed) if removed else None,
        p90=percentile(removed, 0.9),
        within=within,
        values=tuple(removed),
    )


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """Return the nearest-rank Q-quantile of ORDERED (sorted ascending), None if empty."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def league(cases: Iterable[CaseRow], now: dt.datetime, size: int = LEAGUE_SIZE) -> list[LeagueRow]:
    """Return the SIZE slowest providers after the first notice, slowest first."""
    online: dict[str, list[float]] = defaultdict(list)
    removal: dict[str, list[float]] = defaultdict(list)
    still: dict[str, int] = defaultdict(int)
    bounced: dict[str, int] = defaultdict(int)
    for case in cases:
        if case.provider is None or (case.first_notice_at is None and not case.bounced):
            continue
        # A provider that never got its notice is timed from the report.
        start = case.opened_at if case.bounced else case.first_notice_at
        assert start is not None
        bounced[case.provider] += case.bounced > 0
        if case.removed_at is not None:
            seconds = max(0.0, (case.removed_at - start).total_seconds())
            removal[case.provider].append(seconds)
        elif case.state in OPEN_STATES:
            seconds = (now - start).total_seconds()
            still[case.provider] += 1
        else:
            continue  # closed by an analyst: neither removed nor still online
        online[case.provider].append(seconds)
    rows = [
        LeagueRow(
            provider=name,
            noticed=len(times),
            removed=len(removal[name]),
            online=still[name],
            median_online=statistics.median(times),
            median_removal=statistics.median(removal[name]) if removal[name] else None,
            bounced=bounced[name],
        )
        for name, times in online.items()
    ]
    # A provider that could not be reached is among the worst, however fast the party
    # after it acted.
    rows.sort(key=lambda r: (r.bounced == 0, -r.median_online, -r.online, r.provider))
    return rows[:size]


def notice_counts(notices: Iterable[NoticeRow]) -> dict[str, int]:
    """Count notices sent, bounced (refused or returned) and re-notices (chasers, escalations)."""
    counts = {"sent": 0, "bounces": 0, "re_notices": 0, "pending": 0, "uncertain": 0}
    for notice in notices:
        if notice.status == NoticeStatus.SENT:
            counts["sent"] += 1
            counts["re_notices"] += notice.kind not in FIRST_NOTICE_KINDS
        elif notice.status == NoticeStatus.FAILED:
            counts["bounces"] += 1
        elif notice.status == NoticeStatus.UNCERTAIN:
            counts["uncertain"] += 1
        else:
            counts["pending"] += 1
    return counts
