"""The web desk in-process for tests: the app on SQLite in a tmp home, users, a hand clock."""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from starlette.exceptions import StarletteDeprecationWarning

from workflows.config.settings import load_settings
from workflows.kinds import CaseState, NoticeStatus
from workflows.store import accounts
from workflows.store.models import Case, Event, Notice, NoticeItem, Token, User
from workflows.web.app import create_app

with warnings.catch_warnings():
    # Starlette 1.x asks for httpx2, which is not packaged yet; httpx works the same here.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

PASSWORD = "correct horse battery staple"


class Clock:
    """A clock the test moves by hand, from the real time (the CLI stamps with it)."""

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC).replace(microsecond=0)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


class Desk:
    """A running app, its client, a supervisor and an analyst with API tokens."""

    def __init__(self, home: Path, client: TestClient, clock: Clock) -> None:
        self.home, self.client, self.clock = home, client, clock
        self.sessions = client.app.state.sessions  # type: ignore[attr-defined]
        self.supervisor = self.add_user("sue", "supervisor", PASSWORD)
        self.analyst = self.add_user("al", "analyst")

    def add_user(self, name: str, role: str, password: str | None = None) -> dict[str, str]:
        """Create a user with a token; return the Authorization header."""
        with self.sessions() as session:
            user = accounts.create_user(session, name, role, password, now=self.clock())
            token = accounts.issue_token(session, user, now=self.clock())
            session.commit()
        return {"Authorization": f"Bearer {token}"}

    def report(self, *urls: str, **fields: Any) -> list[dict[str, Any]]:
        """Report URLs through the API as the analyst."""
        answer = self.client.post(
            "/api/cases", json={"urls": list(urls), **fields}, headers=self.analyst
        )
        assert answer.status_code == 201, answer.text
        found: list[dict[str, Any]] = answer.json()
        return found

    def sign_in(self, name: str = "sue") -> str:
        """Start a web session for NAME as the login page would; return its CSRF token."""
        with self.sessions() as session:
            user = accounts.find_user(session, name)
            assert user is not None
            secret, csrf = accounts.create_session(session, user, now=self.clock())
            session.commit()
        self.client.cookies.set("takedown_session", secret)
        return csrf

    def events(self, case_id: int) -> list[tuple[str, str]]:
        """Return (kind, actor) of each event of a case, in order."""
        with self.sessions() as session:
            rows = session.execute(
                select(Event.kind, Event.actor).where(Event.case_id == case_id).order_by(Event.id)
            )
            return [(kind, actor) for kind, actor in rows]

    def needing_analyst(self, url: str, **values: Any) -> int:
        """Report URL and store it as a trace that found no abuse contact leaves it (due
        now; VALUES over that); return the case id."""
        case_id: int = self.report(url)[0]["id"]
        with self.sessions() as session:
            session.execute(
                update(Case)
                .where(Case.id == case_id)
                .values(
                    {
                        "state": CaseState.NEEDS_ANALYST,
                        "last_error": "no abuse contact",
                        "due_at": self.clock(),
                        **values,
                    }
                )
            )
            session.commit()
        return case_id

    def case(self, case_id: int) -> Case:
        """Return the stored case."""
        with self.sessions() as session:
            case = session.get(Case, case_id)
            assert case is not None
            return case

    def notice(self, *case_ids: int, status: str = NoticeStatus.UNCERTAIN, step: int = 0) -> int:
        """Store a notice listing CASE_IDS as the outbox would, begun (sent or not); its id."""
        now, to = self.clock(), "abuse@host.example"
        with self.sessions() as session:
            notice = Notice(
                kind="notice",
                recipients=to,
                language="en",
                status=status,
                message_id=f"<n{step}.{'-'.join(map(str, case_ids))}@hotline.example>",
                subject="Notice",
                body_text="Please remove.",
                body_html="<p>Please remove.</p>",
                attempts=1,
                created_at=now,
                send_started_at=now,
                sent_at=now if status == NoticeStatus.SENT else None,
            )
            session.add(notice)
            session.flush()
            for case_id in case_ids:
                session.add(
                    NoticeItem(
                        case_id=case_id,
                        round=0,
                        step=step,
                        kind="notice",
                        party="host",
                        recipients=to,
                        due_at=now,
                        notice_id=notice.id,
                    )
                )
            session.commit()
            return notice.id

    def stored_notice(self, notice_id: int) -> Notice:
        """Return the stored notice."""
        with self.sessions() as session:
            return session.get_one(Notice, notice_id)

    def snapshot(self) -> list[Any]:
        """Return everything an API call could change, to compare before and after."""
        with self.sessions() as session:
            return [
                [_row(c) for c in session.scalars(select(Case).order_by(Case.id))],
                [_row(e) for e in session.scalars(select(Event).order_by(Event.id))],
                [_row(i) for i in session.scalars(select(NoticeItem).order_by(NoticeItem.id))],
                [_row(n) for n in session.scalars(select(Notice).order_by(Notice.id))],
                [_row(u) for u in session.scalars(select(User).order_by(User.id))],
                [_row(t) for t in session.scalars(select(Token).order_by(Token.id))],
            ]


# Bookkeeping of authentication, not a change a request made: every token use stamps it.
UNCOMPARED = frozenset({"last_used_at"})


def _row(obj: Any) -> tuple[Any, ...]:
    return tuple(getattr(obj, c.key) for c in obj.__table__.columns if c.key not in UNCOMPARED)


@contextmanager
def running_desk(home: Path, **env: str) -> Iterator[Desk]:
    """Run the app on SQLite under HOME with a hand clock (ENV: more TAKEDOWN_* settings)."""
    clock = Clock()
    app = create_app(load_settings({"TAKEDOWN_HOME": str(home), **env}), clock=clock)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Desk(home, client, clock)


def count(session: Session, model: Any) -> int:
    """Return how many rows MODEL's table holds."""
    return len(session.scalars(select(model)).all())
