"""Signing in and out of the web desk (a session cookie: HttpOnly, SameSite=Lax)."""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from workflows.store.accounts import SESSION_LIFETIME, authenticate, create_session, end_session
from workflows.web.auth import DB, SESSION_COOKIE, CurrentUser, Now
from workflows.web.render import redirect, render

LOGIN_COOKIE = "takedown_login"  # double-submit token: no one else's page can sign us in

router = APIRouter(include_in_schema=False)


@router.get("/login")
def login_form(request: Request) -> Response:
    """Show the sign-in form with a fresh double-submit token."""
    return _login_page(request, error=None, name="", status=200)


def _login_page(request: Request, *, error: str | None, name: str, status: int) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(
        request, "login.html", status, error=error, name=name, login_token=token, next="/"
    )
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=3600,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
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
    user = authenticate(session, name, password)
    if user is None:
        return _login_page(request, error="Wrong name or password.", name=name, status=401)
    secret, _ = create_session(session, user, now=now)
    session.commit()
    response = redirect("/")
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(request: Request, user: CurrentUser, session: DB) -> Response:
    """End the session (the CSRF token is checked: no other site can sign us out)."""
    end_session(session, request.cookies.get(SESSION_COOKIE, ""))
    session.commit()
    response = redirect("/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
