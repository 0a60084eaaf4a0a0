"""The API's users, tokens (issue, list, revoke), the signed-in user and the statistics."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from workflows.core.figures import iso, parse_since
from workflows.core.throttle import account_key
from workflows.errors import BadValue, InputError, NotFound
from workflows.kinds import Role
from workflows.store import accounts, throttle, user_admin
from workflows.store.models import Token, User
from workflows.store.queries import compute_stats
from workflows.web.auth import DB, CurrentUser, Now, Supervisor
from workflows.web.client import client_of
from workflows.web.schemas import Me, TokenInfo, TokenOut, UserCreated, UserIn, UserOut

router = APIRouter()
UserName = Annotated[str, Path(max_length=120, description="the user's name")]
TokenId = Annotated[int, Path(ge=1, le=2**31 - 1, description="the token's id, as listed")]


def user_objects(session: Session, users: list[User], now: dt.datetime) -> list[dict[str, Any]]:
    """Return what the API shows of USERS, with their sign-in locks."""
    found = throttle.states(session, [account_key(u.name) for u in users], now)
    return [user_object(u, found.get(account_key(u.name))) for u in users]


def user_object(user: User, state: throttle.State | None = None) -> dict[str, Any]:
    """Return what the API shows of a user (STATE: its failed sign-ins and lock, if any)."""
    return {
        "name": user.name,
        "role": user.role,
        "created_at": iso(user.created_at),
        "can_sign_in": user.password_hash is not None,
        "disabled_at": iso(user.disabled_at),
        "locked_until": iso(state.locked_until) if state else None,
        "failed_sign_ins": state.failures if state else 0,
    }


@router.get("/me", response_model=Me, tags=["users"], summary="The signed-in user")
def me(request: Request, user: CurrentUser) -> Any:
    """Return the user and, for a cookie session, its CSRF token."""
    return {"name": user.name, "role": user.role, "csrf_token": request.state.csrf_token}


@router.get("/users", response_model=list[UserOut], tags=["users"], summary="List users")
def list_users(user: Supervisor, session: DB, now: Now) -> Any:
    """Return every user, by name, with their sign-in locks (supervisor)."""
    return user_objects(session, list(session.scalars(select(User).order_by(User.name))), now)


@router.post(
    "/users",
    status_code=201,
    response_model=UserCreated,
    tags=["users"],
    summary="Add a user, with a first API token",
)
def add_user(request: Request, body: UserIn, user: Supervisor, session: DB, now: Now) -> Any:
    """Create the user (supervisor); 409 if the name is taken. The token is shown once."""
    created, token = user_admin.add_user(
        session, body.name, body.role, body.password, **acting(request, user, now)
    )
    session.commit()
    return {**user_object(created), "token": token}


@router.post(
    "/users/{name}/tokens",
    status_code=201,
    response_model=TokenOut,
    tags=["users"],
    summary="Issue another API token for a user",
)
def add_token(request: Request, name: UserName, user: CurrentUser, session: DB, now: Now) -> Any:
    """Issue a token (supervisors for anyone, others for themselves); shown once."""
    owner = _owner(session, user, name, "issue tokens for")
    token = user_admin.issue_token(session, owner, **acting(request, user, now))
    session.commit()
    return {"user": owner.name, "token": token}


def acting(request: Request, user: User, now: dt.datetime) -> dict[str, Any]:
    """Return who acts, when and from where, for the audit row of an action."""
    return {"actor": user.name, "now": now, "address": client_of(request).address}


def _owner(session: Session, user: User, name: str, doing: str) -> User:
    """Return the user NAME if USER may act on their tokens (supervisors, or themselves)."""
    if user.role != Role.SUPERVISOR and user.name != name:
        raise HTTPException(403, f"only a supervisor may {doing} someone else")
    owner = accounts.find_user(session, name)
    if owner is None:
        raise NotFound(f"no user {name!r}")
    return owner


def token_object(token: Token, owner: User) -> dict[str, Any]:
    """Return what the API shows of an API token: never its secret or digest."""
    return {
        "id": token.id,
        "user": owner.name,
        "created_at": iso(token.created_at),
        "last_used_at": iso(token.last_used_at),
    }


@router.get(
    "/users/{name}/tokens",
    response_model=list[TokenInfo],
    tags=["users"],
    summary="List a user's API tokens (never their secrets)",
)
def list_tokens(name: UserName, user: CurrentUser, session: DB) -> Any:
    """Return the user's API tokens, oldest first (supervisors for anyone, others their own)."""
    owner = _owner(session, user, name, "list the tokens of")
    return [token_object(token, owner) for token in accounts.api_tokens(session, owner)]


@router.delete(
    "/tokens/{token_id}",
    response_model=TokenInfo,
    tags=["users"],
    summary="Revoke an API token: it is refused from now on",
)
def revoke_token(
    request: Request, token_id: TokenId, user: CurrentUser, session: DB, now: Now
) -> Any:
    """Revoke the token (supervisors any, others their own); return what it was."""
    found = accounts.find_token(session, token_id)
    if found is None:
        raise NotFound(f"no API token {token_id}")
    token, owner = found
    if user.role != Role.SUPERVISOR and owner.id != user.id:
        raise HTTPException(403, "only a supervisor may revoke someone else's token")
    shown = token_object(token, owner)
    user_admin.revoke_token(session, token, owner, **acting(request, user, now))
    session.commit()
    return shown


class StatsQuery(BaseModel):
    """The statistics' window."""

    model_config = ConfigDict(extra="forbid")
    since: str | None = Field(
        None,
        max_length=40,
        description="only cases reported since: a duration back from now (30d, 12h) or an "
        "ISO 8601 time with a time zone",
    )


def since_time(text: str | None, now: dt.datetime) -> dt.datetime | None:
    """Return the window's start from a duration (30d) or an ISO time; refuse anything else."""
    try:
        return parse_since(text, now, label="since")
    except InputError as error:
        raise BadValue("since", error.message.removeprefix("since: ")) from None


@router.get(
    "/stats",
    response_model=dict[str, Any],
    tags=["statistics"],
    summary="Time-to-removal statistics",
)
def stats(query: Annotated[StatsQuery, Query()], user: CurrentUser, session: DB, now: Now) -> Any:
    """Return median, p90 and shares removed within 24 h / 72 h / 7 d, by group, and more."""
    return compute_stats(session, since=since_time(query.since, now), now=now).as_dict()
