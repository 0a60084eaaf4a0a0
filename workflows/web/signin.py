"""Signing in and out of the web desk (a session cookie: HttpOnly, SameSite=Lax, and
Secure whenever the request came over HTTPS, directly or through a trusted proxy).

Failed sign-ins are counted per account and per client address before any password is
hashed (web/client.py, core/throttle.py): a locked one is answered 429 with Retry-After
and costs no Argon2 hash.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from workflows.core.figures import span
from workflows.core.throttle import retry_after
from workflows.kinds import AuditAction
from workflows.store import audit
from workflows.store.accounts import SESSION_LIFETIME, authenticate, create_session, end_session
from workflows.store.models import User
from workflows.store.throttle import Locked
from workflows.web.auth import DB, SESSION_COOKIE, CurrentUser, Now
from workflows.web.client import checked_password, client_of
from workflows.web.render import redirect, render

LOGIN_COOKIE = "takedown_login"  # double-submit token: no one else's page can sign us in

router = APIRouter(include_in_schema=False)


@router.get("/login")
def login_form(request: Request) -> Response:
    """Show the sign-in form with a fresh double-submit token."""
    return _login_page(request, error=None, name="", status=200)


def _login_page(
    request: Request,
    *,
    error: str | None,
    name: str,
    status: int,
    headers: dict[str, str] | None = None,
) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(
        request, "login.html", status, error=error, name=name, login_token=token, next="/"
    )
    response.headers.update(headers or {})
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=3600,
        httponly=True,
        samesite="strict",
        secure=client_of(request).https,
        path="/login",
    )
    return response


@router.post("/login")
def login(
    request: Request,
    session: DB,
    now: Now,
    name: Annotated[str, Form(max_length=120)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    login_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Check the name and password; start a session (HttpOnly, SameSite=Lax cookie)."""
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not hmac.compare_digest(expected.encode(), login_token.encode()):
        error = "The sign-in form had expired (or cookies are off): please sign in again."
        return _login_page(request, error=error, name=name, status=403)
    found = checked_password(
        request, session, name, now, lambda: _enabled(authenticate(session, name, password))
    )
    if isinstance(found, Locked):
        wait = retry_after(found.until, now)
        error = f"Too many failed sign-ins for this name or from here: try again in {span(wait)}."
        headers = {"Retry-After": str(wait)}
        return _login_page(request, error=error, name=name, status=429, headers=headers)
    if found is None:
        return _login_page(request, error="Wrong name or password.", name=name, status=401)
    secret, _ = create_session(session, found, now=now)
    audit.record(
        session,
        AuditAction.SIGNED_IN,
        actor=name,
        now=now,
        subject=name,
        address=client_of(request).address,
    )
    session.commit()
    response = redirect("/")
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=client_of(request).https,
        path="/",
    )
    response.delete_cookie(LOGIN_COOKIE, path="/login", secure=client_of(request).https)
    return response


def _enabled(user: User | None) -> User | None:
    """Return USER unless disabled: a disabled account's password is as good as a wrong one,
    so guessing it teaches nothing."""
    return user if user is not None and user.disabled_at is None else None


@router.post("/logout")
def logout(request: Request, user: CurrentUser, session: DB, now: Now) -> Response:
    """End the session (the CSRF token is checked: no other site can sign us out)."""
    end_session(session, request.cookies.get(SESSION_COOKIE, ""))
    audit.record(
        session,
        AuditAction.SIGNED_OUT,
        actor=user.name,
        now=now,
        subject=user.name,
        address=client_of(request).address,
    )
    session.commit()
    response = redirect("/login")
    response.delete_cookie(SESSION_COOKIE, path="/", secure=client_of(request).https)
    return response
