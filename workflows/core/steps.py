"""The chaser decision: which workflow steps are due now, and when the next one falls due.

DESIGN, Chase: `after` counts from the case's routing, and a step never falls due sooner
after the previous step's notice was actually sent than the gap between the two steps,
so an outage that delays a notice does not bring its chaser forward. While the previous
step's notice is still on its way (owed, in the outbox, being sent: a killed worker, an
SMTP outage) the next step waits for it, unless the policy puts no gap between them, and
its due time is set when the notice is sent; a refused, uncertain or skipped step leaves
the next one to its routing time.

Pure: times are epoch seconds. The engine reads the case and when its notices went out,
and applies the decision (the re-trace before a chaser, the recipients, the writes).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from workflows.core.policy import Policy, Step


@dataclass(frozen=True)
class StepsDue:
    """The steps due now, in order, and when the first step after them falls due."""

    due: tuple[Step, ...]
    next_at: float | None  # None: the workflow ends with the due steps, or waits (below)
    waiting: bool = False  # the next step waits until the previous one's notice is sent,
    # whose sending sets its due time (engine/sending.py: next_steps_after)


def next_step(policy: Policy, route: str, steps_done: int) -> Step | None:
    """Return the route's step after `steps_done` steps; None when the workflow is done."""
    if steps_done < 0:
        raise ValueError(f"steps_done must not be negative, not {steps_done}")
    steps = policy.workflows[route]
    return steps[steps_done] if steps_done < len(steps) else None


def step_due_at(step: Step, routed_at: float, previous: tuple[Step, float] | None = None) -> float:
    """Return when a step falls due, given the previous step and when its notice was sent."""
    due = routed_at + step.after
    if previous is None:
        return due
    before, sent_at = previous
    return max(due, sent_at + (step.after - before.after))


def due_steps(
    steps: Sequence[Step],
    done: int,
    routed_at: float,
    sent: Mapping[int, float],
    now: float,
    unsent: Collection[int] = (),
) -> StepsDue:
    """Return the steps due at NOW after DONE steps, and when the next one falls due.

    SENT maps a step's index to when its notice was actually sent, in the case's current
    routing; steps without a sent notice are not in it. UNSENT holds the steps owed whose
    notice has not gone out yet (nor failed): the step after one of them waits.
    """
    if done < 0:
        raise ValueError(f"steps_done must not be negative, not {done}")
    due: list[Step] = []
    for position in range(done, len(steps)):
        if position and steps[position].after > steps[position - 1].after:
            # Owed in this same decision, or owed earlier and still on its way.
            on_its_way = position - 1 >= done or position - 1 in unsent
            if on_its_way and position - 1 not in sent:
                # Its time is set when that notice is sent (engine/sending.py): a look at
                # its routing time found most first notices of a big report still unsent
                # and did nothing, once per URL (benchmarks, workload 3).
                return StepsDue(tuple(due), None, waiting=True)
        sent_at = sent.get(position - 1) if position else None
        previous = None if sent_at is None else (steps[position - 1], sent_at)
        at = step_due_at(steps[position], routed_at, previous)
        if at > now:
            return StepsDue(tuple(due), at)
        due.append(steps[position])
    return StepsDue(tuple(due), None)


def past_party(steps: Sequence[Step], done: int, party: str) -> int:
    """Return the steps done once the ones owed to PARTY, which refused, are passed over."""
    # More mail to the desk that refused a notice would only be refused again.
    while done < len(steps) and steps[done].to == party:
        done += 1
    return done
