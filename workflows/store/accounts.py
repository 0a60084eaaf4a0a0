"""Users, API tokens and web sessions.

Passwords are hashed with Argon2id (argon2-cffi's defaults, RFC 9106's second recommended
option: m=64 MiB, t=3, p=4; the parameters are part of the stored PHC string, so stronger
ones can be rolled out and old hashes are upgraded at the next sign-in). Tokens and session
secrets are 256-bit random strings handed out once; the database keeps only their SHA-256,
so a copy of it lets nobody sign in. A session's CSRF token is derived from its secret,
so it needs no storage and dies with the session. An API token lives until it is revoked
(its row deleted: the next request with it is refused); its last use is noted to the
minute, so a supervisor can tell a token in use from a forgotten one. A disabled user's
sessions are ended and its API tokens refused until it is enabled again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from contextlib import suppress
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from workflows.errors import Conflict, InputError
from workflows.kinds import Role
from workflows.store.db import utcnow
from workflows.store.models import Token, User

SESSION_LIFETIME = dt.timedelta(hours=12)  # one working day; then sign in again
TOKEN_PREFIXES = {"api": "tda_", "session": "tds_"}  # tell secret scanners what leaked
MIN_PASSWORD = 12  # NIST SP 800-63B §3.1.1.2: length, not composition rules
MAX_PASSWORD = 1024  # bounds the hashing work one request can ask for
USE_GRAIN = dt.timedelta(minutes=1)  # last_used_at's precision: not one write per request
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,119}$")


@cache
def hasher() -> PasswordHasher:
    """Return the Argon2id hasher (argon2-cffi's RFC 9106 low-memory profile)."""
    return PasswordHasher()


@cache
def _decoy_hash() -> str:
    return hasher().hash(secrets.token_urlsafe(16))


def digest(secret: str) -> str:
    """Return the SHA-256 (hex) under which a token or session secret is stored."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def csrf_token(session_secret: str) -> str:
    """Return the CSRF token of a session: only whoever holds the secret can compute it."""
    return hashlib.sha256(b"takedown-csrf:" + session_secret.encode("utf-8")).hexdigest()


def check_name(name: str) -> str:
    """Return NAME if it is a valid user name, else raise InputError."""
    if not _NAME.match(name):
        raise InputError(
            f"user name {name[:40]!r}: 1-120 letters, digits or . _ @ -, starting with a "
            "letter or digit"
        )
    return name


def check_role(role: str) -> Role:
    """Return ROLE as a Role, else raise InputError naming the choices."""
    if role not in set(Role):
        raise InputError(f"role {role[:40]!r} is not one of {', '.join(Role)}")
    return Role(role)


def check_password(password: str) -> str:
    """Return PASSWORD if the policy accepts it, else raise InputError."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InputError(f"password: {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return password


def create_user(
    session: Session,
    name: str,
    role: str,
    password: str | None = None,
    *,
    now: dt.datetime | None = None,
) -> User:
    """Add a user; without a password it can only use API tokens."""
    check_name(name)
    checked = check_role(role)
    hashed = hasher().hash(check_password(password)) if password is not None else None
    if session.scalars(select(User.id).where(User.name == name)).first() is not None:
        raise Conflict(f"user {name!r} exists already")
    user = User(name=name, role=checked, password_hash=hashed, created_at=now or utcnow())
    try:
        with session.begin_nested():  # a concurrent add of the same name loses here
            session.add(user)
    except IntegrityError:
        raise Conflict(f"user {name!r} exists already") from None
    return user


def find_user(session: Session, name: str) -> User | None:
    """Return the user called NAME, if any."""
    return session.scalars(select(User).where(User.name == name)).first()


def issue_token(
    session: Session, user: User, kind: str = "api", *, now: dt.datetime | None = None
) -> str:
    """Store a new token's digest for USER and return the secret (shown once)."""
    now = now or utcnow()
    secret = TOKEN_PREFIXES[kind] + secrets.token_urlsafe(32)
    expires = now + SESSION_LIFETIME if kind == "session" else None
    session.add(
        Token(user_id=user.id, kind=kind, digest=digest(secret), created_at=now, expires_at=expires)
    )
    session.flush()
    return secret


def user_for_token(
    session: Session,
    secret: str,
    kind: str,
    *,
    now: dt.datetime | None = None,
    note_use: bool = True,
) -> User | None:
    """Return the user a live token or session secret belongs to, or None; NOTE_USE: stamp
    an API token's last use (the caller commits)."""
    if not secret.startswith(TOKEN_PREFIXES.get(kind, "\0")) or len(secret) > 200:
        return None
    # Looked up by digest: timing reveals at most a digest prefix, which gives no secret.
    now = now or utcnow()
    found = session.execute(
        select(User, Token)
        .join(Token, Token.user_id == User.id)
        .where(
            Token.digest == digest(secret),
            Token.kind == kind,
            or_(Token.expires_at.is_(None), Token.expires_at > now),
            User.disabled_at.is_(None),  # a disabled user's tokens are refused at once
        )
    ).first()
    if found is None:
        return None
    user, token = found
    if kind == "api" and note_use:
        _note_use(session, token, now)
    return user


def _note_use(session: Session, token: Token, now: dt.datetime) -> None:
    """Stamp the token's last use (the caller commits), at most once per USE_GRAIN."""
    if token.last_used_at is not None and now - token.last_used_at < USE_GRAIN:
        return
    # A statement, not an attribute: a token revoked meanwhile is simply not updated.
    session.execute(update(Token).where(Token.id == token.id).values(last_used_at=now))


def api_tokens(session: Session, user: User) -> list[Token]:
    """Return USER's API tokens, oldest first (only their digests are stored)."""
    return list(
        session.scalars(
            select(Token).where(Token.user_id == user.id, Token.kind == "api").order_by(Token.id)
        )
    )


def find_token(session: Session, token_id: int) -> tuple[Token, User] | None:
    """Return the API token TOKEN_ID and its user, if there is one (sessions are not listed)."""
    found = session.execute(
        select(Token, User)
        .join(User, User.id == Token.user_id)
        .where(Token.id == token_id, Token.kind == "api")
    ).first()
    return None if found is None else (found[0], found[1])


def revoke_token(session: Session, token: Token) -> None:
    """Revoke TOKEN: its row goes, so the next request that presents it is refused."""
    session.execute(delete(Token).where(Token.id == token.id))


def verify_password(user: User, password: str) -> bool:
    """Check PASSWORD against the user's Argon2id hash; upgrade an outdated hash."""
    if user.password_hash is None or len(password) > MAX_PASSWORD:
        return False
    try:
        hasher().verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):  # VerifyMismatchError is one of them
        return False
    if hasher().check_needs_rehash(user.password_hash):
        user.password_hash = hasher().hash(password)
    return True


def authenticate(session: Session, name: str, password: str) -> User | None:
    """Return the user if NAME and PASSWORD match; as slow for unknown names as for known."""
    user = find_user(session, name)
    if user is None:
        # Hash anyway, so response time does not tell which names exist.
        with suppress(VerificationError):
            hasher().verify(_decoy_hash(), password[:MAX_PASSWORD])
        return None
    return user if verify_password(user, password) else None


def create_session(
    session: Session, user: User, *, now: dt.datetime | None = None
) -> tuple[str, str]:
    """Start a web session; return (session secret for the cookie, its CSRF token)."""
    now = now or utcnow()
    session.execute(delete(Token).where(Token.kind == "session", Token.expires_at <= now))
    secret = issue_token(session, user, "session", now=now)
    return secret, csrf_token(secret)


def end_session(session: Session, secret: str) -> None:
    """End the web session whose cookie holds SECRET (signing out)."""
    session.execute(delete(Token).where(Token.kind == "session", Token.digest == digest(secret)))


def end_sessions(session: Session, user: User, *, keep: str | None = None) -> int:
    """End every web session of USER (but the one whose secret is KEEP); return how many."""
    query = delete(Token).where(Token.user_id == user.id, Token.kind == "session")
    if keep is not None:
        query = query.where(Token.digest != digest(keep))
    ended = session.execute(query)
    return int(ended.rowcount or 0)  # type: ignore[attr-defined]


def set_password(session: Session, user: User, password: str, *, keep: str | None = None) -> None:
    """Give USER a new password (the policy's); end every session it had but KEEP's."""
    user.password_hash = hasher().hash(check_password(password))
    end_sessions(session, user, keep=keep)


def set_disabled(session: Session, user: User, disabled_at: dt.datetime | None) -> None:
    """Disable USER at DISABLED_AT (its sessions end; its tokens are refused), or enable it."""
    user.disabled_at = disabled_at
    if disabled_at is not None:
        end_sessions(session, user)
