"""The case store's tables (SQLAlchemy 2): cases, their events, notices and checks.

Times are stored as naive UTC and returned aware (UTC), the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Store aware datetimes as naive UTC; give them back aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        """Convert to naive UTC for storage."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store: pass an aware UTC time")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        """Mark stored values as UTC."""
        return None if value is None else value.replace(tzinfo=dt.UTC)


class Base(DeclarativeBase):
    """Declarative base of every table."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {dt.datetime: UTCDateTime, dict[str, Any]: JSON}


class Case(Base):
    """One reported URL, from report to removal."""

    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    # SHA-256 of url while the case is open, NULL once terminal: a unique column that makes
    # "one open case per URL" hold on SQLite and PostgreSQL alike (NULLs never collide).
    # A hash, because a btree index entry cannot hold an 8000-octet URL.
    open_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    host: Mapped[str] = mapped_column(String(255))  # indexed with state and due_at (below)
    state: Mapped[str] = mapped_column(String(20))  # indexed with due_at (below)
    route: Mapped[str | None] = mapped_column(String(32))
    country: Mapped[str | None] = mapped_column(String(2))
    network: Mapped[str | None] = mapped_column(String(120))  # the routing network's CIDR
    # Kept when a closed case is purged, for the anonymised statistics (by ASN, provider).
    asn: Mapped[int | None] = mapped_column(index=True)
    provider: Mapped[str | None] = mapped_column(String(200))  # CDN or AS name
    recipients: Mapped[str | None] = mapped_column(Text)  # the host's abuse desk, comma-joined
    trace: Mapped[dict[str, Any] | None]
    reference: Mapped[str | None] = mapped_column(String(200))
    category: Mapped[str | None] = mapped_column(String(64))
    analyst: Mapped[str | None] = mapped_column(String(120))
    content_hash: Mapped[str | None] = mapped_column(String(64))  # first hash seen present
    opened_at: Mapped[dt.datetime] = mapped_column(index=True)
    routed_at: Mapped[dt.datetime | None]
    # The clock the workflow's steps count from when it is not routed_at: moved forward to
    # bring a step forward after a refusal, or on by a hold's length (routed_at stays).
    steps_from: Mapped[dt.datetime | None]
    first_notice_at: Mapped[dt.datetime | None]
    removed_at: Mapped[dt.datetime | None]
    closed_at: Mapped[dt.datetime | None]
    due_at: Mapped[dt.datetime | None] = mapped_column(index=True)
    claimed_until: Mapped[dt.datetime | None]
    check_due_at: Mapped[dt.datetime | None]
    # When the next workflow step falls due (None: none to come); the sweep sends a case
    # whose step is due to the notices queue, one due only for a re-check to the checks queue.
    step_due_at: Mapped[dt.datetime | None]
    round: Mapped[int] = mapped_column(default=0)  # +1 each time the content hops
    steps_done: Mapped[int] = mapped_column(default=0)
    trace_attempts: Mapped[int] = mapped_column(default=0)
    gone_streak: Mapped[int] = mapped_column(default=0)
    last_gone_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    purged_at: Mapped[dt.datetime | None]  # URL, trace and texts erased (data retention)
    held_from: Mapped[str | None] = mapped_column(String(20))  # the state a hold returns to
    held_at: Mapped[dt.datetime | None]  # when the hold began: the workflow clock pauses
    version: Mapped[int] = mapped_column(default=0)  # compare-and-set guard
    # The evidence later checks are compared with (core.verdict.Evidence): the first
    # present check's, or what an analyst confirmed as still present.
    evidence: Mapped[dict[str, Any] | None]
    changed_streak: Mapped[int] = mapped_column(default=0)
    gone_vantages: Mapped[str | None] = mapped_column(Text)  # vantages of the gone streak
    checks_made: Mapped[int] = mapped_column(default=0)  # rotates checks among vantages
    removed_by: Mapped[str | None] = mapped_column(String(20))  # status | nxdomain | analyst
    reappeared: Mapped[int] = mapped_column(default=0)  # times removed content came back
    reappeared_round: Mapped[int | None]  # the round its latest reappearance began
    watch_until: Mapped[dt.datetime | None]  # a removed URL is checked until then
    reopened_at: Mapped[dt.datetime | None]  # when its content last came back: the round's start
    # The removal rounds before the current one, for time to removal per round (kept when
    # the case is purged: times only): [{"opened_at", "first_notice_at", "removed_at"}].
    past_rounds: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)


class Event(Base):
    """An append-only record of something that happened to a case."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    at: Mapped[dt.datetime]
    actor: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(40))
    detail: Mapped[dict[str, Any] | None]


class Notice(Base):
    """One e-mail to one recipient, listing every URL due for it: the outbox row."""

    __tablename__ = "notices"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    recipients: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(5))
    status: Mapped[str] = mapped_column(String(20), index=True)
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    in_reply_to: Mapped[str | None] = mapped_column(String(255))
    references: Mapped[str | None] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text)
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    xarf: Mapped[dict[str, Any] | None]
    attempts: Mapped[int] = mapped_column(default=0)
    due_at: Mapped[dt.datetime | None] = mapped_column(index=True)
    claimed_until: Mapped[dt.datetime | None]
    # Set, by compare-and-set, just before the SMTP conversation: a run that finds it set
    # cannot know whether the mail left, so it marks the notice uncertain, never resends.
    send_started_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime]
    sent_at: Mapped[dt.datetime | None]
    smtp_code: Mapped[int | None]
    smtp_reply: Mapped[str | None] = mapped_column(Text)
    # The per-notice part of the envelope sender (VERP): a bounce names its notice by it.
    return_token: Mapped[str | None] = mapped_column(String(64), unique=True)


class NoticeItem(Base):
    """One case's step owed to one recipient; the unique key makes a step send once."""

    __tablename__ = "notice_items"
    __table_args__ = (UniqueConstraint("case_id", "round", "step", name="uq_item_case_step"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    round: Mapped[int] = mapped_column(Integer)
    step: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))
    party: Mapped[str] = mapped_column(String(20))  # host | hotline | upstream
    recipients: Mapped[str] = mapped_column(Text)
    country: Mapped[str | None] = mapped_column(String(2))
    due_at: Mapped[dt.datetime]
    notice_id: Mapped[int | None] = mapped_column(ForeignKey("notices.id"), index=True)
    # The case's report (its opened_at: one report call stamps all its URLs alike), so the
    # outbox's report wait reads the items alone (None: owed before migration 0010).
    reported_at: Mapped[dt.datetime | None]


class Check(Base):
    """One re-check of a case's URL; the body was hashed, never stored."""

    __tablename__ = "checks"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    at: Mapped[dt.datetime]
    outcome: Mapped[str] = mapped_column(String(20))
    http_status: Mapped[int | None]
    sha256: Mapped[str | None] = mapped_column(String(64))
    address: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    # The evidence: what was served, and its fingerprints (never the body itself).
    content_type: Mapped[str | None] = mapped_column(String(200))
    size: Mapped[int | None]
    pdq: Mapped[str | None] = mapped_column(String(64))
    pdq_quality: Mapped[int | None]
    tlsh: Mapped[str | None] = mapped_column(String(80))
    text_sha256: Mapped[str | None] = mapped_column(String(64))
    vantage: Mapped[str | None] = mapped_column(String(300))  # direct, or the proxy's host
    rule: Mapped[str | None] = mapped_column(Text)  # why the outcome: core.verdict's rule


# The items not in a notice yet, by group and report, read from the index alone each sweep
# (engine/outbox.py): a 100,000-URL report's items wait there while it is traced.
Index(
    "ix_notice_items_waiting",
    NoticeItem.notice_id,
    NoticeItem.recipients,
    NoticeItem.kind,
    NoticeItem.reported_at,
    NoticeItem.due_at,
)
# The sweep's claims find due work through these, at a cost that follows what they claim
# (store/claims.py, migration 0010); they serve lookups by state or host alone as well.
Index("ix_cases_state_due", Case.state, Case.due_at)
Index("ix_cases_state_step_due", Case.state, Case.step_due_at)
Index("ix_cases_host_state_due", Case.host, Case.state, Case.due_at)
# The reports still being traced, for the outbox's report wait (engine/outbox.py): read
# from the index alone, not from every case of a report being traced, each sweep.
Index("ix_cases_state_steps_opened", Case.state, Case.steps_done, Case.opened_at)


class User(Base):
    """A person at the desk (or a program with an API token)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str | None] = mapped_column(Text)  # Argon2id (PHC string); None: no login
    created_at: Mapped[dt.datetime]
    disabled_at: Mapped[dt.datetime | None]  # set: its tokens and sessions are refused


class Token(Base):
    """An API token or a web session: only the secret's SHA-256 is stored, never the secret."""

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # api | session
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime | None]  # None: valid until revoked (API tokens)
    last_used_at: Mapped[dt.datetime | None]  # API tokens: to the minute (accounts.USE_GRAIN)


class InboundMessage(Base):
    """One message read from the mailbox or a pipe: its digest makes it count once.

    Only what deciding needs is kept: a reply's text lives in its cases' `reply` events
    (erased with them by purge); the text of a message that matched nothing is kept here
    for an analyst.
    """

    __tablename__ = "inbound_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 of the raw bytes
    source: Mapped[str] = mapped_column(String(20))  # file | stdin | imap
    mailbox_uid: Mapped[str | None] = mapped_column(String(64), index=True)  # "validity:uid"
    received_at: Mapped[dt.datetime]
    kind: Mapped[str] = mapped_column(String(20), index=True)  # notify.inbound.Kind
    notice_id: Mapped[int | None] = mapped_column(Integer, index=True)
    sender: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict[str, Any] | None]
    text: Mapped[str | None] = mapped_column(Text)  # "other" only: for an analyst


class DeadRecipient(Base):
    """An address that hard-bounced: skipped for every case until `until`."""

    __tablename__ = "dead_recipients"

    address: Mapped[str] = mapped_column(String(320), primary_key=True)
    until: Mapped[dt.datetime]
    reason: Mapped[str] = mapped_column(Text)
    notice_id: Mapped[int | None] = mapped_column(Integer)
    recorded_at: Mapped[dt.datetime]


class AuditEvent(Base):
    """An append-only record of an account or token action: who did what to whom, when."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(120))  # a user's name, or cli:<login>
    action: Mapped[str] = mapped_column(String(40))  # kinds.AuditAction
    subject: Mapped[str | None] = mapped_column(String(120), index=True)  # the user acted on
    address: Mapped[str | None] = mapped_column(String(64))  # the client's, for web requests
    detail: Mapped[dict[str, Any] | None]


class Throttle(Base):
    """Failed sign-ins (or unknown tokens) of one account or client address, and its lock.

    Shared through the database, so every web process counts the same attempts.
    """

    __tablename__ = "throttles"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)  # core.throttle keys
    failures: Mapped[int] = mapped_column(default=0)
    last_at: Mapped[dt.datetime]  # the latest attempt counted
    locked_until: Mapped[dt.datetime | None]
