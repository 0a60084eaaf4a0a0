"""The closed sets of takedown, one enum each, used by the store, the engine, the API and the pages.

    CaseState       where a case stands (OPEN_STATES, WORKABLE_STATES, TERMINAL_STATES)
    NoticeStatus    an outbox row's delivery status
    NoticeKind      what a workflow step sends, and a notice's templates (FIRST_NOTICE_KINDS)
    Party           whom a workflow step goes to
    CheckOutcome    what one re-check of a URL found
    EventKind       what a case's timeline records
    Role            what a desk user may do
    AuditAction     what an account's audit trail records
    CloseReason     why a case was closed (CLOSE_REASONS: the words people read)
    BulkAction      what the case list does to many cases at once

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
    FORM = "form"  # a task on the desk: an analyst submits it through the party's web form


class NoticeKind(StrEnum):
    """What a workflow step sends; each kind has its templates in every language."""

    NOTICE = "notice"  # the first notice of the content to a recipient
    CHASER = "chaser"  # a reminder, threaded to the earlier message to the same recipient
    REFERRAL = "referral"  # the report handed to the partner hotline of the hosting country
    ESCALATION = "escalation"  # a notice to someone with power over the recipient
    REAPPEARED = "reappeared"  # removed content came back: cites the earlier notice


# The kinds that open a thread; a notice of any other kind chases an earlier one.
FIRST_NOTICE_KINDS = (NoticeKind.NOTICE, NoticeKind.REFERRAL, NoticeKind.REAPPEARED)


class Party(StrEnum):
    """Whom a workflow step goes to."""

    HOST = "host"  # the abuse contacts found by the trace
    HOTLINE = "hotline"  # the partner hotline's referral address
    UPSTREAM = "upstream"  # the abuse contact of the network's parent (the upstream)
    REGISTRAR = "registrar"  # the abuse contact of the domain's registrar (RDAP domain)


class CheckOutcome(StrEnum):
    """What one re-check of a URL found (see workflows.core.verdict)."""

    PRESENT = "present"  # the same content is still served (bytes, picture or page)
    GONE = "gone"  # an explicit signal: 404/410/451, the name no longer exists
    CHANGED = "changed"  # 200 with other content: never counts toward removal
    UNREACHABLE = "unreachable"  # timeouts, 5xx, refused, TLS errors: not evidence either way
    BLOCKED = "blocked"  # the name resolves only to special-use addresses: an analyst looks


class EventKind(StrEnum):
    """What a case's timeline records: the `kind` of an event row."""

    REPORTED = "reported"
    JOINED = "joined"  # the URL was reported again while its case was open
    ROUTED = "routed"
    TRACE_FAILED = "trace_failed"
    NEEDS_ANALYST = "needs_analyst"
    STEP_DUE = "step_due"
    STEP_DELAYED = "step_delayed"  # the step's recipients could not be looked up yet
    STEP_SKIPPED = "step_skipped"  # no contact known for the step's party
    STEP_CANCELLED = "step_cancelled"  # the case left ACTIVE before the step was sent
    NOTICE_SENT = "notice_sent"
    NOTICE_DEFERRED = "notice_deferred"  # a temporary refusal: retried after a backoff
    NOTICE_FAILED = "notice_failed"
    NOTICE_UNCERTAIN = "notice_uncertain"
    NOTICE_RESEND = "notice_resend"  # a supervisor decided an uncertain notice goes again
    ESCALATED_AFTER_REFUSAL = "escalated_after_refusal"
    CHECKED = "checked"
    HOPPED = "hopped"  # the content moved to another network or country
    REMOVED = "removed"
    CLOSED = "closed"
    REOPENED = "reopened"
    NOTE = "note"
    RECHECK_REQUESTED = "recheck_requested"
    HELD = "held"
    HOLD_CHANGED = "hold_changed"
    HOLD_RELEASED = "hold_released"
    HOLD_ENDED = "hold_ended"
    PURGED = "purged"  # what identified the closed case's URL was erased (retention)
    CONTENT_CHANGED = "content_changed"  # changed checks in a row: an analyst must confirm
    CONFIRMED = "confirmed"  # an analyst confirmed changed content removed, or present
    RESUMED = "resumed"  # the changed content's original was served again: chasing resumes
    CHASER_HELD = "chaser_held"  # the last check saw it gone: the chaser waits for proof
    REAPPEARED = "reappeared"  # a watched, removed URL serves its content again
    WATCH_ENDED = "watch_ended"  # a removed URL's watch ran its course
    BOUNCED = "bounced"  # a delivery status notification: the notice never arrived
    DELIVERY_DELAYED = "delivery_delayed"  # the relay is still trying: nothing moves
    REPLY = "reply"  # the recipient answered (sender and text; purge erases it)
    AUTO_REPLY = "auto_reply"  # an out-of-office or a ticket system's acknowledgement
    CONTACT_FALLBACK = "contact_fallback"  # the host's abuse desk is dead: its other roles
    FORM_TASK = "form_task"  # a step to a web-form desk became a task on the desk
    FORM_SUBMITTED = "form_submitted"  # an analyst submitted that form: as if sent
    ONE_OFF_NOTICE = "one_off_notice"  # an analyst sent a notice to an address of their choice


class Role(StrEnum):
    """What a user may do: analysts report, view, note and re-check; supervisors do it all."""

    ANALYST = "analyst"
    SUPERVISOR = "supervisor"


class AuditAction(StrEnum):
    """What the audit trail records: every account and token action, the `action` of a row."""

    USER_ADDED = "user_added"
    USER_DISABLED = "user_disabled"  # its sessions ended, its tokens refused while disabled
    USER_ENABLED = "user_enabled"
    PASSWORD_RESET = "password_reset"  # by a supervisor or the command line
    PASSWORD_CHANGED = "password_changed"  # by the user, with the old password
    SESSIONS_ENDED = "sessions_ended"  # a supervisor (or the command line) signed them out
    TOKEN_ISSUED = "token_issued"
    TOKEN_REVOKED = "token_revoked"
    SIGNED_IN = "signed_in"
    SIGNED_OUT = "signed_out"
    SIGN_IN_LOCKED = "sign_in_locked"  # failed sign-ins locked an account or an address


class CloseReason(StrEnum):
    """Why an analyst closed a case: the code kept on its `closed` event (labels below)."""

    NOT_ILLEGAL = "not_illegal"
    DUPLICATE = "duplicate"
    LAW_ENFORCEMENT = "law_enforcement"
    HANDLED_ELSEWHERE = "handled_elsewhere"
    UNREACHABLE = "unreachable"
    REPORTED_IN_ERROR = "reported_in_error"
    OTHER = "other"  # the free text is then required: it is the reason


# What each close reason reads as, on the desk, in the API's description and the CLI.
CLOSE_REASONS: dict[CloseReason, str] = {
    CloseReason.NOT_ILLEGAL: "Assessed: not illegal or out of remit",
    CloseReason.DUPLICATE: "Duplicate of another case",
    CloseReason.LAW_ENFORCEMENT: "Law enforcement asked us to stop",
    CloseReason.HANDLED_ELSEWHERE: "Another hotline or the platform handles it",
    CloseReason.UNREACHABLE: "Nobody can be reached: given up",
    CloseReason.REPORTED_IN_ERROR: "Reported in error",
    CloseReason.OTHER: "Other (say why)",
}


class BulkAction(StrEnum):
    """What the case list does to many selected cases, each as its single action would."""

    HOLD = "hold"
    RELEASE = "release"
    CLOSE = "close"
    RECHECK = "recheck"
    CONFIRM_REMOVED = "confirm_removed"
    CONFIRM_PRESENT = "confirm_present"
