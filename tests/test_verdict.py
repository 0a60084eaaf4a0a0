"""Verdicts on re-checks: pure decisions, one table row per branch."""

from __future__ import annotations

from typing import Any

import pytest
import tlsh

from workflows.core.verdict import (
    Confirmation,
    Evidence,
    RemovalState,
    classify,
    next_changed_streak,
    next_removal_state,
    reappeared,
)

POLICY = Confirmation(checks=2, spacing=300.0)


PIC = "0" * 64
PIC_NEAR = "f" * 6 + "0" * 58  # 24 bits away: within PDQ_MATCH (31)
PIC_FAR = "f" * 16 + "0" * 48  # 64 bits away
BYTES_A = Evidence(sha256="aa")
PICTURE = Evidence(sha256="aa", kind="picture", pdq=PIC)
PAGE = Evidence(sha256="aa", kind="page", text_sha256="t1", tlsh=None)


def ev(**fields: Any) -> Evidence:
    """Return evidence with FIELDS."""
    return Evidence(**fields)


@pytest.mark.parametrize(
    ("outcome", "evidence", "reference", "expected", "rule"),
    [
        pytest.param("present", BYTES_A, None, "present", "reference",
                     id="first-content-is-the-reference"),
        pytest.param("present", BYTES_A, BYTES_A, "present", "SHA-256", id="same-bytes"),
        pytest.param("present", ev(sha256="bb"), BYTES_A, "changed", "no fingerprint",
                     id="other-bytes-are-changed-never-gone"),
        pytest.param("present", ev(sha256="bb", kind="picture", pdq=PIC_NEAR), PICTURE, "present",
                     "PDQ distance 24", id="re-encoded-picture-is-present"),
        pytest.param("present", ev(sha256="bb", kind="picture", pdq=PIC_FAR), PICTURE, "changed",
                     "PDQ distance 64", id="another-picture-is-changed"),
        pytest.param("present", ev(sha256="bb", kind="page", text_sha256="t1"), PAGE, "present",
                     "same page text", id="dynamic-page-same-text"),
        pytest.param("present", ev(sha256="bb", kind="page", text_sha256="t2"), PICTURE, "changed",
                     "picture replaced by a page", id="soft-404-page-instead-of-picture"),
        pytest.param("gone", None, BYTES_A, "gone", "explicit", id="gone-stays-gone"),
        pytest.param("unreachable", None, BYTES_A, "unreachable", "not evidence",
                     id="unreachable-is-no-evidence"),
        pytest.param("blocked", None, None, "blocked", "special-use",
                     id="blocked-goes-to-an-analyst"),
    ],
)  # fmt: skip
def test_classify(
    outcome: str,
    evidence: Evidence | None,
    reference: Evidence | None,
    expected: str,
    rule: str,
) -> None:
    verdict = classify(outcome, evidence, reference)
    assert verdict.outcome == expected
    assert rule in verdict.rule


def test_pages_compare_by_tlsh_distance_when_their_text_differs() -> None:
    words = " ".join(f"word{n % 37} gallery picture {n}" for n in range(200))
    base = tlsh.hash(words.encode())
    near = tlsh.hash(words.replace("word3 ", "word4 ", 2).encode())
    other = tlsh.hash(" ".join(f"other{n % 11} text {n * 7}" for n in range(200)).encode())
    reference = ev(sha256="a", kind="page", text_sha256="x", tlsh=base)
    same = classify("present", ev(sha256="b", kind="page", text_sha256="y", tlsh=near), reference)
    changed = classify(
        "present", ev(sha256="c", kind="page", text_sha256="z", tlsh=other), reference
    )
    assert same.outcome == "present" and "TLSH distance" in same.rule
    assert changed.outcome == "changed" and "TLSH distance" in changed.rule


def test_only_the_same_bytes_or_picture_count_as_reappeared() -> None:
    assert reappeared(BYTES_A, BYTES_A) == "the same bytes (SHA-256)"
    assert "PDQ distance 24" in (
        reappeared(ev(sha256="b", kind="picture", pdq=PIC_NEAR), PICTURE) or ""
    )
    assert reappeared(ev(sha256="b", kind="picture", pdq=PIC_FAR), PICTURE) is None
    assert reappeared(ev(sha256="b", kind="page", text_sha256="t1"), PAGE) is None  # a template
    assert reappeared(None, PICTURE) is None


def test_evidence_round_trips_through_its_stored_form() -> None:
    assert Evidence.from_dict(PICTURE.as_dict()) == PICTURE
    assert Evidence.from_dict(None) is None


@pytest.mark.parametrize(
    ("streak", "outcome", "expected"),
    [
        pytest.param(0, "changed", (1, False), id="first-changed"),
        pytest.param(1, "changed", (2, True), id="second-changed-needs-an-analyst"),
        pytest.param(1, "present", (0, False), id="present-ends-it"),
        pytest.param(1, "gone", (0, False), id="gone-ends-it"),
        pytest.param(1, "unreachable", (1, False), id="unreachable-says-nothing"),
    ],
)
def test_next_changed_streak(streak: int, outcome: str, expected: tuple[int, bool]) -> None:
    assert next_changed_streak(streak, outcome, 2) == expected


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
        row("changed-resets-streak", 1, 1000, "changed", 1400, (0, False, None)),
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
    assert state[:3] == expected
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
    assert state[:3] == (2, True, None)


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


def test_two_vantages_must_both_see_it_gone() -> None:
    policy = Confirmation(checks=2, spacing=300.0, vantages=2)
    first = next_removal_state(0, None, "gone", 0.0, policy, frozenset(), "proxy a:1")
    same = next_removal_state(1, 0.0, "gone", 300.0, policy, first.vantages, "proxy a:1")
    other = next_removal_state(1, 0.0, "gone", 300.0, policy, first.vantages, "proxy b:1")
    assert (first.confirmed, same.confirmed, other.confirmed) == (False, False, True)
    assert other.vantages == {"proxy a:1", "proxy b:1"}
    later = next_removal_state(2, 300.0, "gone", 600.0, policy, same.vantages, "proxy b:1")
    assert later.confirmed


def test_a_confirmation_cannot_ask_for_more_vantages_than_checks() -> None:
    with pytest.raises(ValueError, match="vantages"):
        Confirmation(checks=1, spacing=0, vantages=2)
