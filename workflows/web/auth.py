"""Who is asking: API tokens (Authorization: Bearer) or the web session cookie.

A cookie is sent by the browser on its own, so a cookie-authenticated unsafe request must
also prove it came from our page: the X-CSRF-Token header or the csrf_token form field,
equal to the session's CSRF token (OWASP's synchronizer token pattern). A bearer token is
never sent by a browser on its own, so it needs no CSRF token.

An unknown token or session counts against the client's address (core/throttle.py): a
client that keeps presenting them is answered 429 with Retry-After for a while. A
disabled user's tokens and sessions are unknown from the moment it is disabled.
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.types import Scope

from workflows.core.throttle import address_key
from workflows.engine import wake
from workflows.kinds import Role
from workflows.store import throttle
from workflows.store.accounts import csrf_token, user_for_token
from workflows.store.models import User
from workflows.web.client import client_of, too_many

SESSION_COOKIE = "takedown_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


@dataclass(frozen=True)
class Credentials:
    """What the request presented: a bearer token, a session cookie, a CSRF token."""

    bearer: str | None
    cookie: str | None
    csrf: str | None
    malformed: bool  # an Authorization header that is not "Bearer <token>"


def db(request: Request) -> Iterator[Session]:
    """Yield a database session for one request; endpoints commit what they change."""
    with request.app.state.sessions() as session:
        yield session


def watch_removed(request: Request) -> tuple[float, float]:
    """Return the policy's watch of removed URLs: (every, for) in seconds."""
    policy = request.app.state.policy
    return (float(policy.watch_every), float(policy.watch_for))


def overdue_after(request: Request) -> float:
    """Return the policy's `overdue_after`: how long online after the notice is late."""
    return float(request.app.state.policy.overdue_after)


def sweep_waker(request: Request) -> Callable[[], bool]:
    """Return what wakes the sweep after a report's commit (engine/wake.py)."""
    settings = request.app.state.settings
    return lambda: wake.nudge(settings)


def clock(request: Request) -> dt.datetime:
    """Return the app's current time (injected in tests)."""
    now: dt.datetime = request.app.state.clock()
    return now


async def credentials(request: Request) -> Credentials:
    """Read the credentials of REQUEST (the form only when a cookie needs its CSRF field)."""
    header = request.headers.get("authorization")
    bearer, malformed = None, False
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            bearer = value.strip()
        else:
            malformed = True
    cookie = request.cookies.get(SESSION_COOKIE)
    csrf = request.headers.get(CSRF_HEADER)
    content_type = request.headers.get("content-type", "")
    wants_form = request.method in UNSAFE_METHODS and content_type.startswith(_FORMS)
    if bearer is None and cookie and csrf is None and wants_form:
        field = (await request.form()).get(CSRF_FIELD)
        csrf = field if isinstance(field, str) else None
    return Credentials(bearer, cookie, csrf, malformed)


async def signed_in(scope: Scope) -> bool:
    """Tell whether a request carries a valid API token or session, before its body is read
    (the body limit's test for bulk uploads; CSRF and roles are checked later, as always)."""
    request = Request(scope)
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    bearer = value.strip() if scheme.lower() == "bearer" else None
    cookie = request.cookies.get(SESSION_COOKIE)
    state = request.app.state

    def lookup() -> bool:
        with state.sessions() as session:
            if bearer:
                found = user_for_token(session, bearer, "api", now=state.clock(), note_use=False)
            elif cookie:
                found = user_for_token(session, cookie, "session", now=state.clock())
            else:
                found = None
            return found is not None

    return await run_in_threadpool(lookup)


def unauthenticated(message: str) -> HTTPException:
    """Return the 401 to raise (API: JSON; the app sends pages to /login instead)."""
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


def current_user(
    request: Request,
    creds: Annotated[Credentials, Depends(credentials)],
    session: Annotated[Session, Depends(db)],
) -> User:
    """Return the signed-in user, or refuse: 401 without valid credentials, 403 without CSRF."""
    now = request.app.state.clock()
    if creds.malformed:
        raise unauthenticated("Authorization: expected 'Bearer <token>'")
    if creds.bearer is not None:
        user = user_for_token(session, creds.bearer, "api", now=now)
        if user is None:
            raise _refused(
                request, session, now, "the API token is not valid (revoked or mistyped)"
            )
        session.commit()  # its last use, kept even when the request is then refused
        request.state.user, request.state.csrf_token = user, None
        return user
    if not creds.cookie:
        raise unauthenticated("authentication required: send 'Authorization: Bearer <token>'")
    user = user_for_token(session, creds.cookie, "session", now=now)
    if user is None:
        raise _refused(request, session, now, "the session has expired or ended: sign in again")
    expected = csrf_token(creds.cookie)
    if request.method in UNSAFE_METHODS and not hmac.compare_digest(
        (creds.csrf or "").encode("utf-8"), expected.encode("utf-8")
    ):
        raise HTTPException(403, f"CSRF token missing or wrong: send the {CSRF_HEADER} header")
    request.state.user, request.state.csrf_token = user, expected
    return user


def _refused(request: Request, session: Session, now: dt.datetime, message: str) -> HTTPException:
    """Count an unknown token or session against the client's address: 401, or 429 once
    the address is locked (a valid token from there still works: only guessing stops)."""
    key = address_key(client_of(request).address, "token")
    locked = throttle.admit(session, [key], now)
    session.commit()
    return unauthenticated(message) if locked is None else too_many(locked, now)


def require_role(role: str) -> Callable[[User], User]:
    """Return a dependency that lets through users with ROLE (supervisors pass every role)."""
    wanted = Role(role)

    def dependency(user: Annotated[User, Depends(current_user)]) -> User:
        if user.role != wanted and user.role != Role.SUPERVISOR:
            raise HTTPException(403, f"this needs the {wanted} role; {user.name} is {user.role}")
        return user

    return dependency


CurrentUser = Annotated[User, Depends(current_user)]
Supervisor = Annotated[User, Depends(require_role(Role.SUPERVISOR))]
DB = Annotated[Session, Depends(db)]
Now = Annotated[dt.datetime, Depends(clock)]
WakeSweep = Annotated[Callable[[], bool], Depends(sweep_waker)]
Watch = Annotated[tuple[float, float], Depends(watch_removed)]
OverdueAfter = Annotated[float, Depends(overdue_after)]
