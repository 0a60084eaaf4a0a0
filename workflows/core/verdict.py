"""Decide what one re-check means for a case, and when its removal is confirmed.

Pure: takes outcomes, evidence and times, returns decisions; no network, no database.

    present       the same content: the same SHA-256, the same picture (PDQ distance at
                  most PDQ_MATCH: re-encoded, resized) or the same page (TLSH distance at
                  most TLSH_MATCH, or the same normalised text: a dynamic page)
    gone          an explicit removal signal: 404/410/451, the name no longer exists
    changed       200 with other content; never counts toward removal: after
                  `changed_checks` in a row an analyst confirms removed or present
    unreachable   timeouts, 5xx, refused, 401/403/429, TLS errors: not evidence either way
    blocked       the name resolves only to special-use addresses: an analyst must look

Every verdict names the rule that decided it, so the case page can say why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

from workflows.core.similarity import PDQ_MATCH, TLSH_MATCH, pdq_distance, tlsh_distance
from workflows.kinds import CheckOutcome

OUTCOMES = frozenset(CheckOutcome)
# What a fetch can say on its own; `changed` is only ever this module's verdict.
FETCH_OUTCOMES = OUTCOMES - {CheckOutcome.CHANGED}


@dataclass(frozen=True)
class Evidence:
    """What a present check saw of the content: its hashes, never its bytes."""

    sha256: str | None = None
    kind: str = "other"  # picture | page | other
    pdq: str | None = None  # 64 hex; quality-gated
    tlsh: str | None = None  # of the page's normalised text
    text_sha256: str | None = None  # SHA-256 of the page's normalised text

    def as_dict(self) -> dict[str, Any]:
        """Return the evidence as a JSON-ready dict (the case's reference)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Evidence | None:
        """Return the evidence stored by as_dict, or None for none."""
        if not data:
            return None
        known = {k: data.get(k) for k in ("sha256", "pdq", "tlsh", "text_sha256")}
        return cls(kind=str(data.get("kind") or "other"), **known)


class Verdict(NamedTuple):
    """One check's outcome and the rule that decided it."""

    outcome: CheckOutcome
    rule: str


def classify(fetch_outcome: str, evidence: Evidence | None, reference: Evidence | None) -> Verdict:
    """Return the verdict of one check, given what the fetch saw and the case's reference.

    The reference is the evidence of the first present check (or of what an analyst
    confirmed as still present); without one, anything served is the content.
    """
    if fetch_outcome not in FETCH_OUTCOMES:
        raise ValueError(f"unknown fetch outcome {fetch_outcome!r}")
    if fetch_outcome != CheckOutcome.PRESENT:
        outcome = CheckOutcome(fetch_outcome)
        return Verdict(outcome, _RULES[outcome])
    if reference is None or evidence is None:
        return Verdict(CheckOutcome.PRESENT, "content served: the reference for later checks")
    same, rule = compare(evidence, reference)
    return Verdict(CheckOutcome.PRESENT if same else CheckOutcome.CHANGED, rule)


_RULES = {
    CheckOutcome.GONE: "an explicit removal signal",
    CheckOutcome.UNREACHABLE: "no answer to judge by: not evidence either way",
    CheckOutcome.BLOCKED: "special-use address: never fetched",
}


def compare(new: Evidence, reference: Evidence) -> tuple[bool, str]:
    """Tell whether NEW shows the same content as REFERENCE, and by which rule."""
    if new.sha256 is not None and new.sha256 == reference.sha256:
        return True, "the same bytes (SHA-256)"
    if new.pdq and reference.pdq:
        distance = pdq_distance(new.pdq, reference.pdq)
        if distance <= PDQ_MATCH:
            return True, f"the same picture (PDQ distance {distance} ≤ {PDQ_MATCH})"
        return False, f"another picture (PDQ distance {distance} > {PDQ_MATCH})"
    if new.kind != reference.kind:
        return False, f"a {reference.kind} replaced by a {new.kind}"
    if new.text_sha256 is not None and new.text_sha256 == reference.text_sha256:
        return True, "the same page text"
    if new.tlsh and reference.tlsh:
        distance = tlsh_distance(new.tlsh, reference.tlsh)
        if distance <= TLSH_MATCH:
            return True, f"the same page (TLSH distance {distance} ≤ {TLSH_MATCH})"
        return False, f"another page (TLSH distance {distance} > {TLSH_MATCH})"
    return False, "other bytes, and no fingerprint to compare"


def reappeared(new: Evidence | None, reference: Evidence | None) -> str | None:
    """Return why a watched, removed URL serves its content again, or None.

    Only the same bytes or the same picture count: a page template that merely resembles
    the removed page is not the content coming back.
    """
    if new is None or reference is None:
        return None
    if new.sha256 is not None and new.sha256 == reference.sha256:
        return "the same bytes (SHA-256)"
    if new.pdq and reference.pdq:
        distance = pdq_distance(new.pdq, reference.pdq)
        if distance <= PDQ_MATCH:
            return f"the same picture (PDQ distance {distance} ≤ {PDQ_MATCH})"
    return None


@dataclass(frozen=True)
class Confirmation:
    """How many gone checks, how far apart, from how many vantages confirm a removal."""

    checks: int = 2
    spacing: float = 300.0  # seconds between two gone checks that both count
    vantages: int = 1  # distinct vantages (fetch proxies) whose gone checks are needed

    def __post_init__(self) -> None:
        """Refuse a policy that could never, or would always, confirm."""
        if self.checks < 1:
            raise ValueError(f"confirm_gone checks must be at least 1, not {self.checks}")
        if self.spacing < 0:
            raise ValueError(f"confirm_gone spacing must not be negative, not {self.spacing}")
        if not 1 <= self.vantages <= self.checks:
            raise ValueError(f"vantages must be between 1 and {self.checks}, not {self.vantages}")


class RemovalState(NamedTuple):
    """The gone streak after one check, whether removal is confirmed, and the next check."""

    gone_streak: int
    confirmed: bool
    next_check_at: float | None  # when the next confirming check is due; None: none needed
    vantages: frozenset[str] = frozenset()  # the vantages whose gone checks counted


def next_removal_state(
    gone_streak: int,
    last_gone_at: float | None,
    outcome: str,
    now: float,
    confirm: Confirmation,
    vantages: frozenset[str] = frozenset(),
    vantage: str = "direct",
) -> RemovalState:
    """Return the streak, confirmation and next confirming check after a check at NOW.

    The caller stores NOW as the last gone time exactly when the streak grew: a gone
    check closer than `spacing` to the previous counted one does not count twice, so a
    burst of retries can never confirm a removal on its own. A present or changed check
    ends the streak: only consecutive gone checks confirm. With several vantages, the
    streak also needs gone from `confirm.vantages` different ones.
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown check outcome {outcome!r}")
    if outcome in (CheckOutcome.PRESENT, CheckOutcome.CHANGED):
        return RemovalState(0, False, None)
    if outcome == CheckOutcome.GONE:
        too_soon = (
            gone_streak > 0 and last_gone_at is not None and now - last_gone_at < confirm.spacing
        )
        if too_soon:
            assert last_gone_at is not None
            return _state(gone_streak, last_gone_at + confirm.spacing, confirm, vantages)
        seen = (vantages if gone_streak > 0 else frozenset()) | {vantage}
        return _state(gone_streak + 1, now + confirm.spacing, confirm, seen)
    # unreachable, blocked: not evidence either way; the streak waits for a real answer.
    due = now + confirm.spacing if gone_streak > 0 else None
    return _state(gone_streak, due, confirm, vantages)


def _state(
    streak: int, due: float | None, confirm: Confirmation, vantages: frozenset[str]
) -> RemovalState:
    """Build the state for STREAK: confirmed once it reaches the policy's count and vantages."""
    confirmed = streak >= confirm.checks and len(vantages) >= confirm.vantages
    return RemovalState(streak, confirmed, None if confirmed else due, vantages)


def next_changed_streak(streak: int, outcome: str, changed_checks: int) -> tuple[int, bool]:
    """Return the changed streak after a check, and whether it now needs an analyst.

    Changed checks count up; a present or gone check ends the streak; unreachable and
    blocked checks say nothing and leave it as it is.
    """
    if outcome == CheckOutcome.CHANGED:
        return streak + 1, streak + 1 >= changed_checks
    if outcome in (CheckOutcome.PRESENT, CheckOutcome.GONE):
        return 0, False
    return streak, False
