"""The audit trail of accounts and tokens: append-only rows, one per action.

Cases keep their own timeline (events); what happens to users, passwords, sessions and
API tokens is recorded here, by whom (a user's name, or `cli:<login>` for the command
line) and from which client address, never with a secret.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from workflows.kinds import AuditAction
from workflows.store.models import AuditEvent


def record(
    session: Session,
    action: AuditAction,
    *,
    actor: str,
    now: dt.datetime,
    subject: str | None = None,
    address: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Add one audit row (the caller commits it with the change it records)."""
    session.add(
        AuditEvent(
            at=now,
            actor=actor[:120],
            action=action,
            subject=subject,
            address=address[:64] if address else None,
            detail=detail,
        )
    )


def audit_events(
    session: Session, *, subject: str | None = None, limit: int = 100, offset: int = 0
) -> list[AuditEvent]:
    """Return audit rows, newest first; only those about SUBJECT when given."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit).offset(offset)
    if subject is not None:
        query = query.where(AuditEvent.subject == subject)
    return list(session.scalars(query))
