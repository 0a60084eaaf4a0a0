"""The chaser decision: which workflow steps are due, one table row per situation."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from workflows.core.policy import Step
from workflows.core.steps import StepsDue, due_steps, past_party, step_due_at

H = 3600.0
T0 = 1_700_000_000.0  # the case's routing
NOTICE = Step(0, 0, "notice", "host")
CHASER = Step(1, 24 * H, "chaser", "host")
ESCALATION = Step(2, 72 * H, "escalation", "upstream")
HOST_NOTICE = (NOTICE, CHASER, ESCALATION)
REFERRAL = Step(0, 0, "referral", "hotline")
TOGETHER = (REFERRAL, Step(1, 0, "notice", "host"), Step(2, 24 * H, "chaser", "host"))


def row(
    name: str,
    done: int,
    sent: Mapping[int, float],
    now: float,
    due: tuple[int, ...],
    next_at: float | None,
    steps: tuple[Step, ...] = HOST_NOTICE,
    routed: float = 0,
    unsent: tuple[int, ...] = (),
    waiting: bool = False,
) -> object:
    """One situation; times in hours from T0, the case's first routing."""
    return pytest.param(steps, done, routed, sent, now, due, next_at, unsent, waiting, id=name)


def at(hours: float) -> float:
    return T0 + hours * H


@pytest.mark.parametrize(
    ("steps", "done", "routed", "sent", "now", "due", "next_at", "unsent", "waiting"),
    [
        row("notice-due-at-routing", 0, {}, 0, (0,), None, waiting=True),
        row("chaser-not-yet-due", 1, {0: 0}, 23, (), 24),
        row("chaser-due-a-day-after-routing", 1, {0: 0}, 24, (1,), None, waiting=True),
        row("escalation-due-after-the-chaser", 2, {0: 0, 1: 24}, 72, (2,), None),
        # Late (a hold, an outage): the notice goes; its chaser waits for it to be sent.
        row("overdue-steps-go-one-at-a-time", 0, {}, 80, (0,), None, waiting=True),
        row("workflow-done", 3, {0: 0, 1: 24}, 99, (), None),
        row("past-the-end-of-the-workflow", 7, {}, 0, (), None),
        row("delayed-notice-pushes-the-chaser-back", 1, {0: 10}, 24, (), 34),
        row("delayed-chaser-due-a-full-gap-after", 1, {0: 10}, 34, (1,), None, waiting=True),
        row("escalation-gap-counts-from-the-chaser", 2, {1: 60}, 72, (), 108),
        row("chaser-waits-out-the-notice-window", 1, {0: 0.25}, 24, (), 24.25),
        # A notice that failed or is uncertain (neither sent nor on its way) holds nothing.
        row("chaser-due-after-a-notice-that-never-went", 1, {}, 24, (1,), None, waiting=True),
        # A notice still in the outbox or being sent (a killed worker, an SMTP outage); a
        # step waiting for a notice falls due when that is sent (engine: next_steps_after).
        row("chaser-waits-while-the-notice-is-on-its-way", 1, {}, 30, (), None, unsent=(0,),
            waiting=True),
        row("its-sending-sets-its-time", 1, {}, 10, (), None, unsent=(0,), waiting=True),
        row("a-skipped-chaser-holds-nothing-back", 2, {0: 50}, 72, (2,), None),
        row("a-later-routing-wins-after-a-hold", 1, {0: 0}, 25, (), 26, routed=2),
        row("equal-afters-fall-due-together", 0, {}, 0, (0, 1), None, TOGETHER, waiting=True),
        row("a-zero-gap-after-a-late-referral", 1, {0: 5}, 5, (1,), None, TOGETHER,
            waiting=True),
        row("zero-gap-after-an-unsent-referral", 1, {}, 1, (1,), None, TOGETHER, unsent=(0,),
            waiting=True),
    ],
)  # fmt: skip
def test_due_steps(
    steps: tuple[Step, ...],
    done: int,
    routed: float,
    sent: Mapping[int, float],
    now: float,
    due: tuple[int, ...],
    next_at: float | None,
    unsent: tuple[int, ...],
    waiting: bool,
) -> None:
    sent_at = {step: at(hours) for step, hours in sent.items()}
    decision = due_steps(steps, done, at(routed), sent_at, at(now), unsent)
    expected = None if next_at is None else at(next_at)
    assert decision == StepsDue(tuple(steps[i] for i in due), expected, waiting)


def test_due_steps_refuses_a_negative_count() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        due_steps(HOST_NOTICE, -1, T0, {}, T0)


@pytest.mark.parametrize(
    ("step", "previous", "due"),
    [
        pytest.param(CHASER, None, T0 + 24 * H, id="from-routing-without-a-sent-notice"),
        pytest.param(CHASER, (NOTICE, T0), T0 + 24 * H, id="notice-sent-on-time"),
        pytest.param(CHASER, (NOTICE, T0 + H), T0 + 25 * H, id="notice-sent-an-hour-late"),
        pytest.param(ESCALATION, (CHASER, T0 + 30 * H), T0 + 78 * H, id="gap-between-the-two"),
        pytest.param(ESCALATION, (CHASER, T0 - H), T0 + 72 * H, id="routing-wins-if-later"),
    ],
)
def test_step_due_at(step: Step, previous: tuple[Step, float] | None, due: float) -> None:
    assert step_due_at(step, T0, previous) == due


@pytest.mark.parametrize(
    ("steps", "done", "party", "expected"),
    [
        pytest.param(HOST_NOTICE, 1, "host", 2, id="host-refused-the-notice-skip-its-chaser"),
        pytest.param(HOST_NOTICE, 2, "host", 2, id="host-refused-the-chaser"),
        pytest.param(HOST_NOTICE, 2, "upstream", 3, id="upstream-refused-nobody-left"),
        pytest.param(TOGETHER, 1, "hotline", 1, id="hotline-refused-the-host-is-next"),
        pytest.param(HOST_NOTICE, 3, "host", 3, id="workflow-already-done"),
    ],
)
def test_past_party(steps: tuple[Step, ...], done: int, party: str, expected: int) -> None:
    assert past_party(steps, done, party) == expected
