"""Verdicts on re-checks: pure decisions, one table row per branch."""

from __future__ import annotations

import pytest

from workflows.core.verdict import Confirmation, RemovalState, classify, next_removal_state

POLICY = Confirmation(checks=2, spacing=300.0)


@pytest.mark.parametrize(
    ("outcome", "sha256", "first", "expected"),
    [
        pytest.param("present", "aa", None, "present", id="first-check-sets-no-baseline"),
        pytest.param("present", "aa", "aa", "present", id="same-hash-is-present"),
        pytest.param("present", "bb", "aa", "gone", id="changed-hash-is-gone-placeholder"),
        pytest.param("present", None, "aa", "present", id="present-without-hash-stays-present"),
        pytest.param("gone", None, "aa", "gone", id="gone-stays-gone"),
        pytest.param("unreachable", None, "aa", "unreachable", id="unreachable-is-no-evidence"),
        pytest.param("blocked", None, None, "blocked", id="blocked-goes-to-an-analyst"),
    ],
)
def test_classify(outcome: str, sha256: str | None, first: str | None, expected: str) -> None:
    assert classify(outcome, sha256, first) == expected


def test_classify_refuses_an_unknown_outcome() -> None:
    with pytest.raises(ValueError, match="unknown fetch outcome 'maybe'"):
        classify("maybe", None, None)


def row(
    name: str,
    streak: int,
    last_gone_at: float | None,
    outcome: str,
    now: float,
    expected: tuple[int, bool, float | None],
    policy: Confirmation = POLICY,
) -> object:
    """Return one table row of next_removal_state, named for what it shows."""
    return pytest.param(streak, last_gone_at, outcome, now, policy, expected, id=name)


@pytest.mark.parametrize(
    ("streak", "last_gone_at", "outcome", "now", "policy", "expected"),
    [
        row("first-gone-starts-streak", 0, None, "gone", 1000, (1, False, 1300)),
        row("spaced-second-gone-confirms", 1, 1000, "gone", 1300, (2, True, None)),
        row("gone-too-soon-counts-once", 1, 1000, "gone", 1100, (1, False, 1300)),
        row("stale-last-gone-ignored-without-streak", 0, 500, "gone", 600, (1, False, 900)),
        row("streak-without-time-counts", 1, None, "gone", 1000, (2, True, None)),
        row("confirmed-stays-confirmed", 2, 1000, "gone", 2000, (3, True, None)),
        row("one-check-policy-confirms-at-once", 0, None, "gone", 1000, (1, True, None),
            Confirmation(checks=1, spacing=0)),
        row("present-resets-streak", 1, 1000, "present", 1400, (0, False, None)),
        row("unreachable-keeps-streak", 1, 1000, "unreachable", 1400, (1, False, 1700)),
        row("blocked-keeps-streak", 1, 1000, "blocked", 1400, (1, False, 1700)),
        row("unreachable-without-streak-needs-nothing", 0, None, "unreachable", 1000,
            (0, False, None)),
    ],
)  # fmt: skip
def test_next_removal_state(
    streak: int,
    last_gone_at: float | None,
    outcome: str,
    now: float,
    policy: Confirmation,
    expected: tuple[int, bool, float | None],
) -> None:
    state = next_removal_state(streak, last_gone_at, outcome, now, policy)
    assert state == expected
    assert isinstance(state, RemovalState)


def test_next_removal_state_refuses_an_unknown_outcome() -> None:
    with pytest.raises(ValueError, match="unknown check outcome"):
        next_removal_state(0, None, "maybe", 0.0, POLICY)


def test_a_burst_of_gone_retries_never_confirms_on_its_own() -> None:
    streak, last_gone_at = 0, None
    for now in (0.0, 10.0, 20.0, 290.0):
        state = next_removal_state(streak, last_gone_at, "gone", now, POLICY)
        if state.gone_streak > streak:  # the caller stores now only when the streak grew
            last_gone_at = now
        streak = state.gone_streak
        assert not state.confirmed
    state = next_removal_state(streak, last_gone_at, "gone", 300.0, POLICY)
    assert state == (2, True, None)


def test_unreachable_between_gone_checks_does_not_break_the_streak() -> None:
    first = next_removal_state(0, None, "gone", 0.0, POLICY)
    middle = next_removal_state(first.gone_streak, 0.0, "unreachable", 300.0, POLICY)
    last = next_removal_state(middle.gone_streak, 0.0, "gone", 600.0, POLICY)
    assert (first.confirmed, middle.confirmed, last.confirmed) == (False, False, True)


@pytest.mark.parametrize(
    ("checks", "spacing", "message"),
    [
        pytest.param(0, 300.0, "at least 1", id="zero-checks"),
        pytest.param(2, -1.0, "must not be negative", id="negative-spacing"),
    ],
)
def test_confirmation_refuses_a_policy_that_cannot_work(
    checks: int, spacing: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Confirmation(checks, spacing)
