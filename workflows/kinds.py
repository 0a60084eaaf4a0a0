"""The closed sets of takedown, one enum each, used by the store, the engine, the API and the pages.

    CaseState       where a case stands (OPEN_STATES, WORKABLE_STATES, TERMINAL_STATES)
    NoticeStatus    an outbox row's delivery status
    Role            what a desk user may do

Each is a `StrEnum`, so a member equals its stored string and serialises as it in JSON.
"""

from __future__ import annotations

from enum import StrEnum


class CaseState(StrEnum):
    """Where a case stands; every open state has a due time."""

    NEW = "new"  # reported; its trace is due
    WAITING = "waiting"  # the trace failed for a transient reason; retried with backoff
    NEEDS_ANALYST = "needs_analyst"  # no route (special-use, no contact, NXDOMAIN); re-traced
    ACTIVE = "active"  # routed: notices go out and the URL is re-checked
    HELD = "held"  # paused by a supervisor; due_at is the hold's end, held_from the state after
    REMOVED = "removed"  # terminal: removal confirmed by consecutive checks
    CLOSED = "closed"  # terminal: closed by an analyst


OPEN_STATES = (
    CaseState.NEW,
    CaseState.WAITING,
    CaseState.NEEDS_ANALYST,
    CaseState.ACTIVE,
    CaseState.HELD,
)
# The open states the sweep may hand to a worker: a held case waits for its hold to end.
WORKABLE_STATES = tuple(state for state in OPEN_STATES if state != CaseState.HELD)
TERMINAL_STATES = (CaseState.REMOVED, CaseState.CLOSED)


class NoticeStatus(StrEnum):
    """An outbox row's delivery state."""

    PENDING = "pending"  # built, waiting to be sent (or to be retried after a 4xx)
    SENDING = "sending"  # claimed by a worker; the SMTP conversation may be under way
    SENT = "sent"
    FAILED = "failed"  # permanent refusal (5xx) or bounce: recorded on the cases
    UNCERTAIN = "uncertain"  # a worker died mid-send: never resent automatically


class Role(StrEnum):
    """What a user may do: analysts report, view, note and re-check; supervisors do it all."""

    ANALYST = "analyst"
    SUPERVISOR = "supervisor"
