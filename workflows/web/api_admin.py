"""The API's users, tokens, the signed-in user and the statistics."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from workflows import accounts
from workflows.actions import BadValue
from workflows.errors import InputError
from workflows.models import Role, User
from workflows.stats import compute_stats
from workflows.stats_cli import parse_since
from workflows.views import iso
from workflows.web.auth import DB, CurrentUser, Now, Supervisor
from workflows.web.schemas import Me, TokenOut, UserCreated, UserIn, UserOut

router = APIRouter()
UserName = Annotated[str, Path(max_length=120, description="the user's name")]


def user_object(user: User) -> dict[str, Any]:
    """Return what the API shows of a user."""
    return {
        "name": user.name,
        "role": user.role,
        "created_at": iso(user.created_at),
        "can_sign_in": user.password_hash is not None,
    }


@router.get("/me", response_model=Me, tags=["users"], summary="The signed-in user")
def me(request: Request, user: CurrentUser) -> Any:
    """Return the user and, for a cookie session, its CSRF token."""
    return {"name": user.name, "role": user.role, "csrf_token": request.state.csrf_token}


@router.get("/users", response_model=list[UserOut], tags=["users"], summary="List users")
def list_users(user: Supervisor, session: DB) -> Any:
    """Return every user, by name (supervisor)."""
    return [user_object(u) for u in session.scalars(select(User).order_by(User.name))]


@router.post(
    "/users",
    status_code=201,
    response_model=UserCreated,
    tags=["users"],
    summary="Add a user, with a first API token",
)
def add_user(body: UserIn, user: Supervisor, session: DB, now: Now) -> Any:
    """Create the user (supervisor); 409 if the name is taken. The token is shown once."""
    created = accounts.create_user(session, body.name, body.role, body.password, now=now)
    token = accounts.issue_token(session, created, now=now)
    session.commit()
    return {**user_object(created), "token": token}


@router.post(
    "/users/{name}/tokens",
    status_code=201,
    response_model=TokenOut,
    tags=["users"],
    summary="Issue another API token for a user",
)
def add_token(name: UserName, user: CurrentUser, session: DB, now: Now) -> Any:
    """Issue a token (supervisors for anyone, others for themselves); shown once."""
    if user.role != Role.SUPERVISOR and user.name != name:
        raise HTTPException(403, "only a supervisor may issue tokens for someone else")
    owner = accounts.find_user(session, name)
    if owner is None:
        raise accounts.NotFound(f"no user {name!r}")
    token = accounts.issue_token(session, owner, now=now)
    session.commit()
    return {"user": owner.name, "token": token}


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
