"""The signed-in user's own account page: change one's password with the current one.

The current password is checked under the same throttle as a sign-in (web/client.py): a
locked account or address is answered 429 without hashing. The user's other sessions end;
this one goes on.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from workflows.core.figures import span
from workflows.core.throttle import retry_after
from workflows.store import accounts, user_admin
from workflows.store.throttle import Locked
from workflows.web.auth import DB, SESSION_COOKIE, CurrentUser, Now
from workflows.web.client import checked_password, client_of
from workflows.web.render import render

router = APIRouter(include_in_schema=False)


@router.get("/password")
def password_form(request: Request, user: CurrentUser) -> Response:
    """Show the form that changes one's own password."""
    return render(request, "password.html", page="password")


@router.post("/password")
def change_password(
    request: Request,
    user: CurrentUser,
    session: DB,
    now: Now,
    current: Annotated[str, Form(max_length=accounts.MAX_PASSWORD)] = "",
    new: Annotated[str, Form(max_length=accounts.MAX_PASSWORD)] = "",
    repeat: Annotated[str, Form(max_length=accounts.MAX_PASSWORD)] = "",
) -> Response:
    """Set the new password if the current one is right and the new one is good."""
    problem, status, headers = None, 422, {}
    if new != repeat:
        problem = "The new password and its repetition differ."
    elif not accounts.MIN_PASSWORD <= len(new) <= accounts.MAX_PASSWORD:
        problem = f"The new password needs {accounts.MIN_PASSWORD} to 1024 characters."
    else:
        checked = checked_password(
            request,
            session,
            user.name,
            now,
            lambda: user if accounts.verify_password(user, current) else None,
        )
        if isinstance(checked, Locked):
            wait = retry_after(checked.until, now)
            problem, status = f"Too many failed attempts: try again in {span(wait)}.", 429
            headers = {"Retry-After": str(wait)}
        elif checked is None:
            problem = "That is not your current password."
        else:
            keep = request.cookies.get(SESSION_COOKIE)
            address = client_of(request).address
            user_admin.change_password(session, checked, new, now=now, keep=keep, address=address)
            session.commit()
    if problem is None:
        done = [{"kind": "ok", "text": "Your password is changed; your other sessions ended."}]
        return render(request, "password.html", page="password", messages=done)
    messages = [{"kind": "error", "text": problem}]
    response = render(request, "password.html", status, page="password", messages=messages)
    response.headers.update(headers)
    return response
