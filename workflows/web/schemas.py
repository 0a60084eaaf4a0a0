"""The API's request and response bodies (they make the OpenAPI description complete)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, StringConstraints

from workflows.core.intake import FIELD_LIMITS
from workflows.engine.actions import MAX_TEXT
from workflows.kinds import (
    CLOSE_REASONS,
    AuditAction,
    CaseState,
    CheckOutcome,
    CloseReason,
    EventKind,
    NoticeKind,
    NoticeStatus,
    Role,
)

Time = Annotated[str | None, Field(description="ISO 8601 UTC, e.g. 2026-11-25T09:30:00Z")]
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT)]
MAX_URLS = 10_000


class Strict(BaseModel):
    """A request body: unknown fields are refused, so a typo is not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    """Every refusal: what is wrong, and the field when one is to blame."""

    error: str = Field(description="one line naming the problem")
    field: str | None = Field(None, description="the request field at fault, e.g. urls[2]")
    errors: list[dict[str, str]] | None = Field(None, description="all field problems (422)")


class NoticeOut(BaseModel):
    """A notice that listed the case."""

    model_config = ConfigDict(extra="allow")
    id: int
    kind: NoticeKind
    to: list[str]
    status: NoticeStatus
    sent_at: Time
    message_id: str
    subject: str


class CaseOut(BaseModel):
    """A case object (DESIGN.md § Interface): the same as `takedown cases --json`."""

    model_config = ConfigDict(extra="allow")
    id: int
    url: str = Field(description="the normalised URL (text: never render it as a link)")
    host: str
    state: CaseState
    route: str | None = Field(description="the workflow: host_notice, hotline_referral, …")
    country: str | None
    network: str | None
    abuse: list[str]
    reference: str | None
    category: str | None
    analyst: str | None
    opened_at: Time
    routed_at: Time
    first_notice_at: Time
    removed_at: Time = Field(description="null until removal is confirmed")
    removed_by: str | None = Field(
        None, description="what confirmed the removal: status, nxdomain or analyst"
    )
    reappeared: int = Field(0, description="how often removed content came back")
    watched_until: Time = Field(None, description="a removed URL is checked until then")
    closed_at: Time
    due_at: Time = Field(description="when the engine acts next; for a held case, the hold's end")
    held_from: CaseState | None = Field(None, description="a held case's state when the hold ends")
    last_error: str | None
    notices: list[NoticeOut]


class ReportedCase(CaseOut):
    """A case opened or joined by a report."""

    joined: bool = Field(description="true: the URL had an open case already, now joined")


class EventOut(BaseModel):
    """One entry of a case's timeline."""

    at: Time
    actor: str = Field(description="the user's name, or 'takedown' for the engine")
    kind: EventKind
    detail: dict[str, Any] | None


class CheckOut(BaseModel):
    """One re-check of the URL (the body was hashed, never stored)."""

    at: Time
    outcome: CheckOutcome
    http_status: int | None
    sha256: str | None
    address: str | None
    reason: str | None
    content_type: str | None = None
    size: int | None = None
    pdq: str | None = Field(None, description="PDQ hash of a picture (64 hex), quality-gated")
    pdq_quality: int | None = None
    tlsh: str | None = Field(None, description="TLSH of a page's normalised text")
    vantage: str | None = Field(None, description="direct, or the fetch proxy it went through")
    rule: str | None = Field(None, description="why the outcome: the verdict's rule")


class FullNoticeOut(NoticeOut):
    """A notice with its full text."""

    text: str


class CaseDetail(CaseOut):
    """A case with its timeline: trace, events, notices with their text, checks."""

    trace: dict[str, Any] | None
    events: list[EventOut]
    notices: list[FullNoticeOut]  # type: ignore[assignment]  # the fuller form
    checks: list[CheckOut]


class ReportIn(Strict):
    """URLs to report, with an optional reference and category."""

    urls: list[str] = Field(min_length=1, max_length=MAX_URLS)
    ref: str | None = Field(None, max_length=FIELD_LIMITS["ref"])
    category: str | None = Field(None, max_length=FIELD_LIMITS["category"])


class ReasonIn(Strict):
    """Why (optional): kept on the event."""

    reason: Text | None = None


def _close_codes() -> str:
    return "; ".join(f"`{code.value}`: {label}" for code, label in CLOSE_REASONS.items())


class CloseIn(Strict):
    """Why the case is closed: a code from the list, and words (required for `other`)."""

    model_config = ConfigDict(json_schema_extra={"required": ["code"]})
    # Optional here so that a missing code is refused naming `code` with the list of codes.
    code: CloseReason | None = Field(None, description="required, one of: " + _close_codes())
    reason: Text | None = Field(None, description="free text; required when code is `other`")


class OneOffIn(Strict):
    """A one-off notice about a case that needs an analyst, to an address of their choice."""

    to: str = Field(max_length=320, description="the recipient: one plain e-mail address")
    kind: Literal["notice", "referral", "escalation"] = Field(
        "notice", description="the notice's templates: notice, referral or escalation"
    )
    reason: Text | None = Field(None, description="why this address: kept on the event")


class ConfirmIn(Strict):
    """An analyst's word on changed content: removed, or still present."""

    removed: StrictBool  # true or false only: "yes" or 1 are refused, not guessed
    reason: Text | None = None


class RouteIn(Strict):
    """Route a case that needs an analyst by hand: its workflow starts, the first notice
    to RECIPIENTS (for hotline_referral: to the country's partner hotline)."""

    route: str = Field(
        max_length=40, description="the workflow: host_notice, hotline_referral or no_partner"
    )
    country: str = Field(max_length=20, description="ISO 3166 alpha-2, e.g. GB (not UK)")
    recipients: list[Annotated[str, StringConstraints(max_length=320)]] = Field(
        default_factory=list,
        max_length=20,
        description="the host's abuse addresses, the analyst's choice",
    )
    reason: Text | None = None


class NoteIn(Strict):
    """A note for the case's timeline."""

    text: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT)]


class HoldIn(Strict):
    """Pause the workflow until a time, or for a number of days (give one of the two)."""

    until: AwareDatetime | None = Field(None, description="the hold's end, with a time zone")
    days: float | None = Field(None, gt=0, le=365, description="the hold's length in days")
    reason: Text | None = None


class UserIn(Strict):
    """A new user; without a password it signs in with API tokens only."""

    name: str = Field(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")
    role: Role
    password: str | None = Field(None, min_length=12, max_length=1024)


class UserOut(BaseModel):
    """A user as supervisors see them (never a hash or a token)."""

    name: str
    role: Role
    created_at: Time
    can_sign_in: bool = Field(description="has a password for the web desk")
    disabled_at: Time = Field(None, description="set: its sessions and API tokens are refused")
    locked_until: Time = Field(None, description="web sign-in locked by failed attempts until")
    failed_sign_ins: int = Field(0, description="failed sign-ins counted toward a lock")


class PasswordIn(Strict):
    """A new password set by a supervisor (the user's sessions end)."""

    password: str = Field(min_length=12, max_length=1024)


class PasswordChangeIn(Strict):
    """A user's own new password, with the current one."""

    current_password: str = Field(max_length=1024)
    new_password: str = Field(min_length=12, max_length=1024)


class SessionsEnded(BaseModel):
    """How many web sessions of a user were ended."""

    user: str
    ended: int


class AuditOut(BaseModel):
    """One account or token action: who did what to whom, when, from where."""

    id: int
    at: Time
    actor: str = Field(description="a user's name, cli:<login> or takedown")
    action: AuditAction
    subject: str | None = Field(description="the user acted on")
    address: str | None = Field(description="the client's address (web requests)")
    detail: dict[str, Any] | None


class LockOut(BaseModel):
    """A sign-in lock: an account, a client address, or an address sending unknown tokens."""

    kind: Literal["account", "address", "token"]
    key: str = Field(description="the user's name, or the address (IPv6: its /64)")
    failures: int
    locked_until: Time


class TokenOut(BaseModel):
    """A new API token: shown once, only its SHA-256 is stored."""

    user: str
    token: str = Field(description="send as 'Authorization: Bearer <token>'")


class UserCreated(UserOut):
    """A new user and their first API token."""

    token: str


class Me(BaseModel):
    """The signed-in user."""

    name: str
    role: Role
    csrf_token: str | None = Field(description="for cookie sessions: send as X-CSRF-Token")


class TokenInfo(BaseModel):
    """An API token as listed: never its secret (only its SHA-256 is stored)."""

    id: int = Field(description="to revoke it: DELETE /api/tokens/{id}")
    user: str
    created_at: Time
    last_used_at: Time = Field(description="to the minute; null if never used")


class ListedNotice(NoticeOut):
    """A notice in the outbox, with the cases it lists."""

    created_at: Time
    attempts: int = Field(description="SMTP conversations begun")
    smtp_code: int | None = Field(description="the relay's last reply code, if any")
    smtp_reply: str | None
    cases: list[int] = Field(description="the ids of the cases it lists")


class SubmittedIn(Strict):
    """An analyst's word that a web-form task was submitted through the provider's form."""

    reference: Text | None = Field(
        None, description="the provider's ticket or confirmation number, if it gave one"
    )


class FormTask(ListedNotice):
    """A notice to a web-form desk, waiting for an analyst to submit it."""

    form: str = Field(description="the form's address, where the text is to be submitted")
    name: str | None = Field(description="the provider, from TAKEDOWN_FORMS")
    note: str | None = Field(description="what the provider's form asks for")
    text: str = Field(description="the prefilled text: the notice that would have been mailed")
    urls: list[str] = Field(description="the reported URLs it lists, as text")


class ResolveIn(Strict):
    """A supervisor's decision about an uncertain notice."""

    outcome: Literal["sent", "resend"] = Field(
        description="sent: it did arrive (checked with the recipient or the relay's log); "
        "resend: send it again now, with the same Message-ID"
    )
    reason: Text | None = None
