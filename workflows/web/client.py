"""The client behind a request (address, HTTPS) and the sign-in throttle around a password.

The address is the peer's, or what a trusted proxy (TAKEDOWN_TRUSTED_PROXIES) says in
X-Forwarded-For; HTTPS is the connection's, or a trusted proxy's X-Forwarded-Proto
(core/proxies.py). Both the Secure cookie flag and the throttle's address key use them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TypeVar

from fastapi import HTTPException, Request
from sqlalchemy.orm import Session

from workflows.core.proxies import Client, forwarded_client
from workflows.core.throttle import account_key, address_key, retry_after
from workflows.store import throttle
from workflows.store.throttle import Locked

T = TypeVar("T")


def client_of(request: Request) -> Client:
    """Return the request's client, believing forwarding headers from trusted proxies only."""
    found = getattr(request.state, "client", None)
    if isinstance(found, Client):
        return found
    peer = request.client.host if request.client is not None else ""
    found = forwarded_client(
        peer,
        request.url.scheme,
        request.headers.get("x-forwarded-for"),
        request.headers.get("x-forwarded-proto"),
        getattr(request.app.state, "trusted_proxies", ()),
    )
    request.state.client = found
    return found


def too_many(locked: Locked, now: dt.datetime) -> HTTPException:
    """Return the 429 for a locked account or address, with its Retry-After (seconds)."""
    wait = retry_after(locked.until, now)
    what = (
        "unknown API tokens or sessions from this address"
        if locked.key.startswith("token:")
        else "failed sign-ins for this name or from this address"
    )
    return HTTPException(
        429, f"too many {what}: try again in {wait} s", headers={"Retry-After": str(wait)}
    )


def checked_password(
    request: Request, session: Session, name: str, now: dt.datetime, check: Callable[[], T | None]
) -> T | Locked | None:
    """Run CHECK (an Argon2 verification: what it returns, or None for a failure) for NAME,
    unless its account or the client's address is locked: then return the lock, having
    computed no hash at all.

    The attempt is counted and committed first, so parallel attempts cannot all pass a
    lock that none of them has reached yet; a success gives it back.
    """
    address = client_of(request).address
    keys = [account_key(name), address_key(address)]
    locked = throttle.admit(session, keys, now)
    if locked is not None:
        session.rollback()
        return locked
    session.commit()
    found = check()
    throttle.settle(session, keys, now, succeeded=found is not None, name=name, address=address)
    session.commit()
    return found
