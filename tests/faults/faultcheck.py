"""The invariants every fault scenario must keep, checked from the database and the SMTP log.

every reported URL has exactly one case
every case is terminal, or open with a due time (visibly waiting)
no (case, round, step) was delivered twice, counted at the SMTP server
every removal was confirmed by consecutive gone checks
no chaser or escalation was sent sooner after the step before it than the policy's gap
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

from conftest import FAULT_FIGURES
from faultstack import NEVER
from sqlalchemy import select
from sqlalchemy.orm import Session
from stack import DATA, Stack

from workflows.config.policy import load_policy
from workflows.kinds import OPEN_STATES, CaseState
from workflows.store.models import Case, Check, Notice, NoticeItem


@dataclass
class Figures:
    """What one scenario shows, for the suite's summary and the README."""

    scenario: str
    reported: int
    recovered: int  # cases open when a fault struck that reached a terminal or waiting state
    duplicates: int  # (case, round, step) delivered more than once
    lost: int  # reported URLs with no case, or open cases with no due time
    drain_seconds: float
    early: int = 0  # steps sent sooner after the step before them than the policy's gap

    def line(self) -> str:
        """Return the scenario's summary line."""
        return (
            f"{self.scenario}: {self.reported} URLs reported, {self.recovered} cases "
            f"recovered, {self.duplicates} duplicates delivered, {self.lost} cases lost, "
            f"{self.early} steps early, drained in {self.drain_seconds:.1f} s"
        )


def check(
    stack: Stack,
    scenario: str,
    urls: list[str],
    interrupted: set[int],
    drain_seconds: float,
    confirm_checks: int,
) -> Figures:
    """Check every invariant; return the scenario's figures."""
    with stack.session() as session:
        cases = list(session.scalars(select(Case)))
        per_url = Counter(c.url for c in cases)
        lost = len(set(urls) - set(per_url)) + sum(
            1 for c in cases if c.state in OPEN_STATES and c.due_at is None
        )
        assert all(n == 1 for n in per_url.values()), "a URL has two cases"
        delivered = stack.smtp.count_by_message_id()
        steps: Counter[tuple[int, int, int]] = Counter()
        for message_id, times in delivered.items():
            notice = session.scalars(select(Notice).where(Notice.message_id == message_id)).one()
            for item in session.scalars(
                select(NoticeItem).where(NoticeItem.notice_id == notice.id)
            ):
                steps[(item.case_id, item.round, item.step)] += times
        duplicates = sum(1 for n in steps.values() if n > 1)
        for case in cases:
            if case.state == CaseState.REMOVED:
                last = list(
                    session.scalars(
                        select(Check.outcome)
                        .where(Check.case_id == case.id)
                        .order_by(Check.id.desc())
                        .limit(confirm_checks)
                    )
                )
                assert last == ["gone"] * confirm_checks, f"case {case.id} removed unconfirmed"
        settled = {c.id for c in cases if c.state not in OPEN_STATES or c.due_at is not None}
        early = _early_steps(session, {c.id: c.route or "" for c in cases})
    recovered = len(interrupted & settled)
    return Figures(scenario, len(urls), recovered, duplicates, lost, drain_seconds, early)


def _early_steps(session: Session, routes: dict[int, str]) -> int:
    """Count steps sent sooner after the previous step's sending than the policy's gap."""
    policy = load_policy(DATA / "test-policy.toml")
    sent: dict[tuple[int, int], dict[int, float]] = {}
    rows = session.execute(
        select(NoticeItem.case_id, NoticeItem.round, NoticeItem.step, Notice.sent_at)
        .join(Notice, NoticeItem.notice_id == Notice.id)
        .where(Notice.sent_at.is_not(None))
    )
    for case_id, round_, step, sent_at in rows:
        sent.setdefault((case_id, round_), {})[step] = sent_at.timestamp()
    early = 0
    for (case_id, _), steps in sent.items():
        plan = policy.workflows.get(routes.get(case_id, ""), ())
        for step, at in steps.items():
            if 0 < step < len(plan) and step - 1 in steps:
                gap = plan[step].after - plan[step - 1].after
                early += at - steps[step - 1] < gap
    return early


def removable(urls: list[str]) -> list[str]:
    """Return the URLs of the fault world whose desks act (not the NEVER hosts)."""
    return [u for u in urls if int(u.split("host")[1].split(".")[0]) not in NEVER]


def record_figures(
    stack: Stack, scenario: str, urls: list[str], interrupted: set[int], started: float
) -> Figures:
    """Check the invariants, add the scenario's line to the summary, demand 0 lost, 0 twice."""
    figures = check(stack, scenario, urls, interrupted, time.monotonic() - started, 2)
    FAULT_FIGURES.append(figures.line())
    assert (figures.duplicates, figures.lost, figures.early) == (0, 0, 0)
    return figures


def drain_and_check(
    stack: Stack, scenario: str, urls: list[str], interrupted: set[int], started: float
) -> Figures:
    """Wait until every removable case is confirmed removed, then record_figures."""
    stack.wait_for(
        lambda: all(stack.case(u).state == CaseState.REMOVED for u in removable(urls)),
        timeout=150,
        what="every removable case to be confirmed removed",
    )
    figures = record_figures(stack, scenario, urls, interrupted, started)
    assert figures.recovered == len(interrupted) > 0
    return figures
