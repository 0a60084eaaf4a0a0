"""Account and token actions, each with its audit row: the API and the CLI share these.

`actor` is who acts (a supervisor's name, the user themselves, or `cli:<login>` for the
command line, which runs with the database's own rights); `address` the client's, for
web requests. The caller commits: the change and its audit row go in together.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from workflows.core.throttle import account_key
from workflows.errors import Conflict, NotFound
from workflows.kinds import AuditAction
from workflows.store import accounts, audit, throttle
from workflows.store.models import Token, User


def find(session: Session, name: str) -> User:
    """Return the user NAME, or raise NotFound."""
    user = accounts.find_user(session, name)
    if user is None:
        raise NotFound(f"no user {name!r}")
    return user


def add_user(
    session: Session,
    name: str,
    role: str,
    password: str | None,
    *,
    actor: str,
    now: dt.datetime,
    address: str | None = None,
) -> tuple[User, str]:
    """Create the user with a first API token; return both (the token is shown once)."""
    user = accounts.create_user(session, name, role, password, now=now)
    detail = {"role": str(user.role), "can_sign_in": password is not None}
    audit.record(
        session,
        AuditAction.USER_ADDED,
        actor=actor,
        now=now,
        subject=name,
        address=address,
        detail=detail,
    )
    return user, issue_token(session, user, actor=actor, now=now, address=address)


def issue_token(
    session: Session, user: User, *, actor: str, now: dt.datetime, address: str | None = None
) -> str:
    """Issue an API token for USER; return the secret (its id is audited, never the secret)."""
    secret = accounts.issue_token(session, user, now=now)
    found = session.scalar(select(Token.id).where(Token.digest == accounts.digest(secret)))
    audit.record(
        session,
        AuditAction.TOKEN_ISSUED,
        actor=actor,
        now=now,
        subject=user.name,
        address=address,
        detail={"token_id": found},
    )
    return secret


def revoke_token(
    session: Session,
    token: Token,
    owner: User,
    *,
    actor: str,
    now: dt.datetime,
    address: str | None = None,
) -> None:
    """Revoke TOKEN of OWNER: refused from the next request on."""
    accounts.revoke_token(session, token)
    audit.record(
        session,
        AuditAction.TOKEN_REVOKED,
        actor=actor,
        now=now,
        subject=owner.name,
        address=address,
        detail={"token_id": token.id},
    )


def disable(
    session: Session, name: str, *, actor: str, now: dt.datetime, address: str | None = None
) -> User:
    """Disable NAME: its sessions end and its API tokens are refused until it is enabled."""
    user = find(session, name)
    if user.disabled_at is not None:
        raise Conflict(f"user {name!r} is disabled already")
    accounts.set_disabled(session, user, now)
    audit.record(
        session, AuditAction.USER_DISABLED, actor=actor, now=now, subject=name, address=address
    )
    return user


def enable(
    session: Session, name: str, *, actor: str, now: dt.datetime, address: str | None = None
) -> User:
    """Enable NAME again: its API tokens work again and its sign-in lock is lifted."""
    user = find(session, name)
    if user.disabled_at is None:
        raise Conflict(f"user {name!r} is not disabled")
    accounts.set_disabled(session, user, None)
    throttle.clear(session, account_key(name))
    audit.record(
        session, AuditAction.USER_ENABLED, actor=actor, now=now, subject=name, address=address
    )
    return user


def reset_password(
    session: Session,
    name: str,
    password: str,
    *,
    actor: str,
    now: dt.datetime,
    address: str | None = None,
) -> User:
    """Give NAME a new password: its sessions end and its sign-in lock is lifted."""
    user = find(session, name)
    accounts.set_password(session, user, password)
    throttle.clear(session, account_key(name))
    audit.record(
        session, AuditAction.PASSWORD_RESET, actor=actor, now=now, subject=name, address=address
    )
    return user


def change_password(
    session: Session,
    user: User,
    password: str,
    *,
    now: dt.datetime,
    keep: str | None = None,
    address: str | None = None,
) -> None:
    """Set USER's own new password (the old one was checked); its other sessions end."""
    accounts.set_password(session, user, password, keep=keep)
    audit.record(
        session,
        AuditAction.PASSWORD_CHANGED,
        actor=user.name,
        now=now,
        subject=user.name,
        address=address,
    )


def end_sessions(
    session: Session, name: str, *, actor: str, now: dt.datetime, address: str | None = None
) -> int:
    """Sign NAME out everywhere; return how many sessions ended."""
    user = find(session, name)
    ended = accounts.end_sessions(session, user)
    audit.record(
        session,
        AuditAction.SESSIONS_ENDED,
        actor=actor,
        now=now,
        subject=name,
        address=address,
        detail={"ended": ended},
    )
    return ended
