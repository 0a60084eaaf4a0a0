"""Decide what one re-check means for a case, and when its removal is confirmed.

Pure: takes outcomes, hashes and times, returns decisions; no network, no database.

    present       the content is still served with the hash first seen
    gone          404/410/451, the name no longer exists, or the content changed
    unreachable   timeouts, 5xx, refused, TLS errors: not evidence either way
    blocked       the name resolves only to special-use addresses: an analyst must look
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from workflows.kinds import CheckOutcome

OUTCOMES = frozenset(CheckOutcome)


def classify(result_outcome: str, sha256: str | None, first_sha256: str | None) -> CheckOutcome:
    """Return the verdict of one check, given its fetch outcome and the case's first hash."""
    if result_outcome not in OUTCOMES:
        raise ValueError(f"unknown fetch outcome {result_outcome!r}")
    if result_outcome != CheckOutcome.PRESENT:
        return CheckOutcome(result_outcome)
    if first_sha256 is not None and sha256 is not None and sha256 != first_sha256:
        # Hosts often replace removed content with a placeholder page served with 200.
        return CheckOutcome.GONE
    return CheckOutcome.PRESENT


@dataclass(frozen=True)
class Confirmation:
    """How many gone checks, how far apart, confirm a removal (the policy's confirm_gone)."""

    checks: int = 2
    spacing: float = 300.0  # seconds between two gone checks that both count

    def __post_init__(self) -> None:
        """Refuse a policy that could never, or would always, confirm."""
        if self.checks < 1:
            raise ValueError(f"confirm_gone checks must be at least 1, not {self.checks}")
        if self.spacing < 0:
            raise ValueError(f"confirm_gone spacing must not be negative, not {self.spacing}")


class RemovalState(NamedTuple):
    """The gone streak after one check, whether removal is confirmed, and the next check."""

    gone_streak: int
    confirmed: bool
    next_check_at: float | None  # when the next confirming check is due; None: none needed


def next_removal_state(
    gone_streak: int,
    last_gone_at: float | None,
    outcome: str,
    now: float,
    confirm: Confirmation,
) -> RemovalState:
    """Return the streak, confirmation and next confirming check after a check at NOW.

    The caller stores NOW as the last gone time exactly when the streak grew: a gone
    check closer than `spacing` to the previous counted one does not count twice, so a
    burst of retries can never confirm a removal on its own.
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown check outcome {outcome!r}")
    if outcome == CheckOutcome.PRESENT:
        return RemovalState(0, False, None)
    if outcome == CheckOutcome.GONE:
        too_soon = (
            gone_streak > 0 and last_gone_at is not None and now - last_gone_at < confirm.spacing
        )
        if too_soon:
            assert last_gone_at is not None
            return _state(gone_streak, last_gone_at + confirm.spacing, confirm)
        return _state(gone_streak + 1, now + confirm.spacing, confirm)
    # unreachable, blocked: not evidence either way; the streak waits for a real answer.
    return _state(gone_streak, now + confirm.spacing if gone_streak > 0 else None, confirm)


def _state(streak: int, due: float | None, confirm: Confirmation) -> RemovalState:
    """Build the state for STREAK: confirmed once it reaches the policy's count."""
    confirmed = streak >= confirm.checks
    return RemovalState(streak, confirmed, None if confirmed else due)
