"""The API's view of the mail that came back: what the inbox took, and which addresses
bounced lately. Mail that matched nothing is kept here for an analyst (its text), never
dropped silently; the desk's Mail page shows the same."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from workflows.core.figures import iso
from workflows.notify.inbound import Kind
from workflows.store.models import DeadRecipient, InboundMessage
from workflows.web.auth import DB, CurrentUser, Now
from workflows.web.schemas import Time

router = APIRouter(tags=["inbox"])


class InboxFilters(BaseModel):
    """Filters of GET /api/inbox. Unknown parameters: 422."""

    model_config = ConfigDict(extra="forbid")
    kind: list[Kind] = Field(
        default_factory=list, description="repeat for several; other: matched nothing"
    )
    limit: int = Field(100, ge=1, le=500)
    offset: int = Field(0, ge=0, le=10_000_000)


class InboundOut(BaseModel):
    """One message the inbox took, newest first."""

    id: int
    received_at: Time
    source: str = Field(description="file, stdin (an MTA's pipe) or imap")
    kind: str = Field(description="bounce, delay, reply, auto_reply, other or unreadable")
    notice: int | None = Field(description="the notice it concerned, if any")
    sender: str | None
    subject: str
    detail: dict[str, Any] | None = Field(description="what it said and what it did")
    text: str | None = Field(description="kept for an analyst when it matched nothing")


class DeadOut(BaseModel):
    """An address skipped for every case because it bounced lately."""

    address: str
    until: Time
    reason: str
    notice: int | None
    recorded_at: Time


def inbound_objects(messages: list[InboundMessage]) -> list[dict[str, Any]]:
    """Return the API objects of MESSAGES."""
    return [
        {
            "id": m.id,
            "received_at": iso(m.received_at),
            "source": m.source,
            "kind": m.kind,
            "notice": m.notice_id,
            "sender": m.sender,
            "subject": m.subject,
            "detail": m.detail,
            "text": m.text,
        }
        for m in messages
    ]


def inbound_counts(session: Session) -> dict[str, int]:
    """Return how many messages the inbox took, by kind."""
    rows = session.execute(select(InboundMessage.kind, func.count()).group_by(InboundMessage.kind))
    return {str(kind): int(count) for kind, count in rows}


def dead_recipients(session: Session, now: dt.datetime) -> list[dict[str, Any]]:
    """Return the addresses skipped now, the longest-dead last to come back first."""
    rows = session.scalars(
        select(DeadRecipient).where(DeadRecipient.until > now).order_by(DeadRecipient.until.desc())
    )
    return [
        {
            "address": r.address,
            "until": iso(r.until),
            "reason": r.reason,
            "notice": r.notice_id,
            "recorded_at": iso(r.recorded_at),
        }
        for r in rows
    ]


@router.get(
    "/inbox",
    response_model=list[InboundOut],
    summary="List the mail the inbox took, newest first (kind=other: matched nothing)",
    responses={200: {"headers": {"X-Total-Count": {"description": "matches, all pages"}}}},
)
def list_inbox(
    response: Response,
    filters: Annotated[InboxFilters, Query()],
    user: CurrentUser,
    session: DB,
) -> Any:
    """Return one page of the inbound messages of the kinds given (all without)."""
    where = [InboundMessage.kind.in_(filters.kind)] if filters.kind else []
    total = session.scalar(select(func.count()).select_from(InboundMessage).where(*where))
    response.headers["X-Total-Count"] = str(total or 0)
    page = session.scalars(
        select(InboundMessage)
        .where(*where)
        .order_by(InboundMessage.id.desc())
        .limit(filters.limit)
        .offset(filters.offset)
    )
    return inbound_objects(list(page))


@router.get(
    "/dead-recipients",
    response_model=list[DeadOut],
    summary="List the addresses skipped for every case because they bounced lately",
)
def list_dead(user: CurrentUser, session: DB, now: Now) -> Any:
    """Return the addresses whose time as dead has not run out."""
    return dead_recipients(session, now)
