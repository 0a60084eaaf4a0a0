"""The API's account actions: disable and enable users, reset and change passwords, end
sessions, and what supervisors watch: the audit trail and the sign-in locks.

Every action here is an audit row (store/user_admin.py) with its actor and address.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from workflows.core.figures import iso
from workflows.errors import BadValue, Conflict
from workflows.kinds import Role
from workflows.store import accounts, audit, throttle, user_admin
from workflows.store.throttle import Locked
from workflows.web.api_admin import UserName, acting, user_objects
from workflows.web.auth import DB, SESSION_COOKIE, CurrentUser, Now, Supervisor
from workflows.web.client import checked_password, client_of, too_many
from workflows.web.schemas import (
    AuditOut,
    LockOut,
    Me,
    PasswordChangeIn,
    PasswordIn,
    SessionsEnded,
    UserOut,
)

router = APIRouter(tags=["users"])


@router.post("/users/{name}/disable", response_model=UserOut, summary="Disable a user")
def disable_user(request: Request, name: UserName, user: Supervisor, session: DB, now: Now) -> Any:
    """End the user's sessions and refuse its API tokens until enabled (supervisor).

    409 if it is disabled already, or is the supervisor asking: someone must stay able to
    enable the others."""
    if name == user.name:
        raise Conflict("a supervisor cannot disable themselves")
    disabled = user_admin.disable(session, name, **acting(request, user, now))
    session.commit()
    return user_objects(session, [disabled], now)[0]


@router.post("/users/{name}/enable", response_model=UserOut, summary="Enable a disabled user")
def enable_user(request: Request, name: UserName, user: Supervisor, session: DB, now: Now) -> Any:
    """Let the user in again: its API tokens work again, its sign-in lock is lifted."""
    enabled = user_admin.enable(session, name, **acting(request, user, now))
    session.commit()
    return user_objects(session, [enabled], now)[0]


@router.post("/users/{name}/password", response_model=UserOut, summary="Reset a user's password")
def reset_password(
    request: Request, name: UserName, body: PasswordIn, user: Supervisor, session: DB, now: Now
) -> Any:
    """Set a new password (supervisor): the user's sessions end, its sign-in lock is lifted."""
    changed = user_admin.reset_password(session, name, body.password, **acting(request, user, now))
    session.commit()
    return user_objects(session, [changed], now)[0]


@router.delete(
    "/users/{name}/sessions",
    response_model=SessionsEnded,
    summary="Sign a user out everywhere (web sessions)",
)
def end_sessions(request: Request, name: UserName, user: CurrentUser, session: DB, now: Now) -> Any:
    """End every web session of the user (supervisors for anyone, others their own)."""
    if user.role != Role.SUPERVISOR and user.name != name:
        raise HTTPException(403, "only a supervisor may sign someone else out")
    ended = user_admin.end_sessions(session, name, **acting(request, user, now))
    session.commit()
    return {"user": name, "ended": ended}


@router.post("/me/password", response_model=Me, summary="Change your own password")
def change_password(
    request: Request, body: PasswordChangeIn, user: CurrentUser, session: DB, now: Now
) -> Any:
    """Check the current password (counted like a sign-in: 429 when locked), then set the
    new one; every other session of the user ends, this one goes on."""
    checked = checked_password(
        request,
        session,
        user.name,
        now,
        lambda: user if accounts.verify_password(user, body.current_password) else None,
    )
    if isinstance(checked, Locked):
        raise too_many(checked, now)
    if checked is None:
        raise BadValue("current_password", "not the current password")
    keep = None if request.state.csrf_token is None else request.cookies.get(SESSION_COOKIE)
    address = client_of(request).address
    user_admin.change_password(
        session, checked, body.new_password, now=now, keep=keep, address=address
    )
    session.commit()
    return {"name": user.name, "role": user.role, "csrf_token": request.state.csrf_token}


class AuditQuery(BaseModel):
    """Which audit rows."""

    model_config = ConfigDict(extra="forbid")
    user: str | None = Field(None, max_length=120, description="only rows about this user")
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=2**31 - 1)


@router.get("/audit", response_model=list[AuditOut], summary="The audit trail of accounts")
def audit_trail(query: Annotated[AuditQuery, Query()], user: Supervisor, session: DB) -> Any:
    """Return account and token actions, newest first (supervisor)."""
    rows = audit.audit_events(session, subject=query.user, limit=query.limit, offset=query.offset)
    return [
        {
            "id": row.id,
            "at": iso(row.at),
            "actor": row.actor,
            "action": row.action,
            "subject": row.subject,
            "address": row.address,
            "detail": row.detail,
        }
        for row in rows
    ]


@router.get("/locks", response_model=list[LockOut], summary="Sign-in locks in force")
def sign_in_locks(user: Supervisor, session: DB, now: Now) -> Any:
    """Return the accounts and client addresses locked by failed attempts, longest first."""
    return [
        {
            "kind": row.key.partition(":")[0],
            "key": row.key.partition(":")[2],
            "failures": row.failures,
            "locked_until": iso(row.locked_until),
        }
        for row in throttle.locks(session, now)
    ]
