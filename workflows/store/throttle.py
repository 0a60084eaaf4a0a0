"""Counting failed sign-ins in the database, so every web process sees the same locks.

The rules are core.throttle's. An attempt is counted (`admit`) and committed before its
password is hashed; `settle` then gives the count back on success (an account starts
afresh) or records the lock a failure started. Each count is one UPDATE of `failures =
failures + 1` guarded by "not locked", so two processes counting at once cannot both slip
past a lock, and a locked key is refused with no write at all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import case, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from workflows.core.figures import iso
from workflows.core.throttle import LIMITS, limit_of, lock_for
from workflows.kinds import AuditAction
from workflows.store import audit
from workflows.store.models import Throttle

_LONGEST_FORGET = max(limit.forget for limit in LIMITS.values())


@dataclass(frozen=True)
class Locked:
    """A key that refuses attempts until a time."""

    key: str
    until: dt.datetime


def admit(session: Session, keys: Sequence[str], now: dt.datetime) -> Locked | None:
    """Count one attempt against every key, or, if one of them is locked, none: return it.

    The caller commits before the expensive check, so parallel attempts see the count.
    """
    _sweep(session, now)
    with session.begin_nested() as counting:
        for key in keys:
            locked = _count(session, key, now)
            if locked is not None:
                counting.rollback()
                return locked
    return None


def _count(session: Session, key: str, now: dt.datetime, *, again: bool = True) -> Locked | None:
    """Add one failure to KEY unless it is locked (then return the lock)."""
    limit = limit_of(key)
    unlocked = or_(Throttle.locked_until.is_(None), Throttle.locked_until <= now)
    counted = session.execute(
        update(Throttle)
        .where(Throttle.key == key, unlocked)
        .values(
            failures=case((Throttle.last_at < now - limit.forget, 1), else_=Throttle.failures + 1),
            last_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if counted.rowcount == 0:  # type: ignore[attr-defined]
        until = session.scalar(select(Throttle.locked_until).where(Throttle.key == key))
        if until is not None:
            return Locked(key, until)
        try:
            with session.begin_nested():
                session.add(Throttle(key=key, failures=1, last_at=now))
        except IntegrityError:  # another process counted its first failure meanwhile
            return _count(session, key, now, again=False) if again else None
    failures = session.scalar(select(Throttle.failures).where(Throttle.key == key)) or 0
    lock = lock_for(limit, failures)
    if lock is not None:
        session.execute(
            update(Throttle)
            .where(Throttle.key == key)
            .values(locked_until=now + lock)
            .execution_options(synchronize_session=False)
        )
    return None


def settle(
    session: Session,
    keys: Sequence[str],
    now: dt.datetime,
    *,
    succeeded: bool,
    name: str | None = None,
    address: str | None = None,
) -> None:
    """Give the attempt back on success (accounts start afresh); audit locks on failure."""
    if not succeeded:
        for row in session.scalars(select(Throttle).where(Throttle.key.in_(keys))):
            if row.locked_until is not None and row.locked_until > now:
                detail = {"key": row.key, "failures": row.failures, "until": iso(row.locked_until)}
                audit.record(
                    session,
                    AuditAction.SIGN_IN_LOCKED,
                    actor="takedown",
                    now=now,
                    subject=name if row.key.startswith("account:") else None,
                    address=address,
                    detail=detail,
                )
        return
    for key in keys:
        if key.startswith("account:"):
            clear(session, key)
            continue
        session.execute(
            update(Throttle)
            .where(Throttle.key == key, Throttle.failures > 0)
            .values(failures=Throttle.failures - 1)
            .execution_options(synchronize_session=False)
        )
        failures = session.scalar(select(Throttle.failures).where(Throttle.key == key))
        if failures is not None and lock_for(limit_of(key), failures) is None:
            session.execute(
                update(Throttle)
                .where(Throttle.key == key)
                .values(locked_until=None)
                .execution_options(synchronize_session=False)
            )


def clear(session: Session, key: str) -> None:
    """Forget KEY's failures and lift its lock (a supervisor enabled or reset the account)."""
    session.execute(delete(Throttle).where(Throttle.key == key))


def locks(session: Session, now: dt.datetime, keys: Sequence[str] | None = None) -> list[Throttle]:
    """Return the keys locked at NOW (only among KEYS when given), the longest lock first."""
    query = select(Throttle).where(Throttle.locked_until > now)
    if keys is not None:
        query = query.where(Throttle.key.in_(keys))
    return list(session.scalars(query.order_by(Throttle.locked_until.desc(), Throttle.key)))


def _sweep(session: Session, now: dt.datetime) -> None:
    """Delete the rows every rule has forgotten, so strangers' names do not pile up."""
    session.execute(
        delete(Throttle).where(
            Throttle.last_at < now - _LONGEST_FORGET,
            or_(Throttle.locked_until.is_(None), Throttle.locked_until <= now),
        )
    )


@dataclass(frozen=True)
class State:
    """What a key's failures amount to now."""

    failures: int
    locked_until: dt.datetime | None


def states(session: Session, keys: Sequence[str], now: dt.datetime) -> dict[str, State]:
    """Return the current failures and lock of each of KEYS that has any."""
    found = {}
    for row in session.scalars(select(Throttle).where(Throttle.key.in_(keys))):
        locked = row.locked_until if row.locked_until and row.locked_until > now else None
        if locked is None and row.last_at < now - limit_of(row.key).forget:
            continue  # forgotten: the next failure counts from one
        found[row.key] = State(row.failures, locked)
    return found
