"""Failed sign-ins lock an account and a client address (429 with Retry-After), shared by
every web process through the database; a locked attempt costs no Argon2 hash; unknown
API tokens from one address are throttled the same way; supervisors see the locks.

Attacks: guessing one account's password, spraying one password over many names, forty
attempts at once racing past the lock, a second web process, a flood of made-up tokens.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from conftest import CHEAP_ARGON2, SERVICE_URLS
from deskapp import PASSWORD, Desk, TestClient, running_desk
from sqlalchemy.orm import Session, sessionmaker

from workflows.config.settings import load_settings
from workflows.core.throttle import ACCOUNT, ADDRESS, TOKEN, account_key, address_key
from workflows.store import accounts, throttle
from workflows.store.db import database_url, make_engine, migrate, session_factory
from workflows.web.app import create_app

WRONG = "not the password at all"
BACKENDS = ["sqlite"] + (["postgresql"] if SERVICE_URLS["database"] else [])


class CountingHasher(PasswordHasher):
    """A cheap Argon2id that counts its verifications (each one a real hash)."""

    def __init__(self) -> None:
        super().__init__(**CHEAP_ARGON2)
        self.verified = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.verified += 1
        return super().verify(hash, password)


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> CountingHasher:
    """Make every Argon2 hash cheap and counted (the decoy for unknown names too)."""
    counting = CountingHasher()
    decoy = counting.hash("decoy password, never anyone's")
    monkeypatch.setattr(accounts, "hasher", lambda: counting)
    monkeypatch.setattr(accounts, "_decoy_hash", lambda: decoy)
    return counting


@pytest.fixture
def desk(tmp_path: Path, hashes: CountingHasher) -> Iterator[Desk]:
    with running_desk(tmp_path) as running:
        yield running


def sign_in(client: TestClient, name: str, password: str, **headers: str) -> Any:
    """Fill in and send the sign-in form as a browser would; return the answer."""
    form = client.get("/login", headers=headers)
    token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert token is not None, form.text
    fields = {"name": name, "password": password, "login_token": token.group(1)}
    return client.post("/login", data=fields, headers=headers, follow_redirects=False)


def test_failed_sign_ins_lock_the_account_with_429_and_retry_after(
    desk: Desk, hashes: CountingHasher
) -> None:
    for _ in range(ACCOUNT.threshold):
        assert sign_in(desk.client, "sue", WRONG).status_code == 401
    hashed = hashes.verified
    locked = sign_in(desk.client, "sue", PASSWORD)  # the right one, but too late
    assert locked.status_code == 429 and locked.headers["retry-after"] == "60"
    assert "Too many failed sign-ins" in locked.text
    assert hashes.verified == hashed  # refused before any hash
    desk.clock.advance(seconds=59)
    assert sign_in(desk.client, "sue", PASSWORD).status_code == 429
    desk.clock.advance(seconds=2)
    assert sign_in(desk.client, "sue", PASSWORD).status_code == 303  # the lock is over
    assert sign_in(desk.client, "sue", WRONG).status_code == 401  # a success starts afresh


def test_each_further_failure_doubles_the_lock_up_to_its_cap(desk: Desk) -> None:
    waits = []
    for _ in range(ACCOUNT.threshold - 1):
        sign_in(desk.client, "sue", WRONG)
    for _ in range(7):
        assert sign_in(desk.client, "sue", WRONG).status_code == 401
        refused = sign_in(desk.client, "sue", WRONG)
        assert refused.status_code == 429
        waits.append(int(refused.headers["retry-after"]))
        desk.clock.advance(seconds=waits[-1])
    assert waits == [60, 120, 240, 480, 900, 900, 900]


def test_a_name_that_does_not_exist_is_locked_like_one_that_does(desk: Desk) -> None:
    for name in ("sue", "nobody"):
        answers = [sign_in(desk.client, name, WRONG).status_code for _ in range(6)]
        assert answers == [401] * 5 + [429], name


def test_spraying_one_password_over_many_names_locks_the_address(
    desk: Desk, hashes: CountingHasher
) -> None:
    for n in range(ADDRESS.threshold):
        assert sign_in(desk.client, f"user{n}", "Spring2026!Spring").status_code == 401
    hashed = hashes.verified
    refused = sign_in(desk.client, "sue", PASSWORD)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    assert hashes.verified == hashed
    with desk.sessions() as session:
        locked = {row.key for row in throttle.locks(session, desk.clock())}
    assert locked == {address_key("testclient")}  # no account reached its threshold


@pytest.mark.parametrize("backend", BACKENDS)
def test_forty_attempts_at_once_cannot_slip_past_the_lock(tmp_path: Path, backend: str) -> None:
    # Four "processes" (engines) on one database, forty threads guessing at once: each
    # attempt is counted before its hash, so exactly `threshold` are let through.
    url = f"sqlite:///{tmp_path / 'takedown.db'}"
    if backend == "postgresql":
        url = database_url(SERVICE_URLS["database"], tmp_path)
    engines = [make_engine(url) for _ in range(4)]
    migrate(engines[0])
    factories = [session_factory(engine) for engine in engines]
    now = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
    key = account_key(f"sue-{uuid.uuid4().hex}")  # a database shared with other tests
    admitted: list[int] = []
    start = threading.Barrier(40)

    def attempt(n: int) -> None:
        with factories[n % 4]() as session:
            start.wait()
            if throttle.admit(session, [key], now) is None:
                admitted.append(n)
            session.commit()

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for engine in engines:
        engine.dispose()
    assert len(admitted) == ACCOUNT.threshold


def test_another_web_process_sees_the_lock(desk: Desk, tmp_path: Path) -> None:
    second = create_app(load_settings({"TAKEDOWN_HOME": str(tmp_path)}), clock=desk.clock)
    with TestClient(second, raise_server_exceptions=False) as other:
        for _ in range(ACCOUNT.threshold):
            assert sign_in(other, "sue", WRONG).status_code == 401
    assert sign_in(desk.client, "sue", PASSWORD).status_code == 429


def test_supervisors_see_the_lock_and_a_reset_lifts_it(desk: Desk) -> None:
    for _ in range(ACCOUNT.threshold):
        sign_in(desk.client, "al", WRONG)  # al has no password: every try fails
    listed = {u["name"]: u for u in desk.client.get("/api/users", headers=desk.supervisor).json()}
    until = (desk.clock() + dt.timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    assert listed["al"]["locked_until"] == until
    assert listed["al"]["failed_sign_ins"] == ACCOUNT.threshold
    assert listed["sue"]["locked_until"] is None
    locks = desk.client.get("/api/locks", headers=desk.supervisor).json()
    assert {"kind": "account", "key": "al", "failures": 5, "locked_until": until} in locks
    assert desk.client.get("/api/locks", headers=desk.analyst).status_code == 403
    reset = desk.client.post(
        "/api/users/al/password", json={"password": PASSWORD}, headers=desk.supervisor
    )
    assert reset.status_code == 200 and reset.json()["locked_until"] is None
    assert sign_in(desk.client, "al", PASSWORD).status_code == 303


def test_the_cli_user_list_shows_the_lock(
    desk: Desk, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from workflows.cli.main import main

    for _ in range(ACCOUNT.threshold):
        sign_in(desk.client, "sue", WRONG)
    monkeypatch.setenv("TAKEDOWN_HOME", str(desk.home))
    monkeypatch.setattr("workflows.cli.users.utcnow", desk.clock)
    assert main(["user", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    (sue,) = [line for line in lines if line.startswith("sue ")]
    assert "sign-in locked until" in sue and "(5 failures)" in sue


def test_a_locked_password_change_costs_no_hash(desk: Desk, hashes: CountingHasher) -> None:
    change = {"current_password": WRONG, "new_password": "a brand new passphrase"}
    answers = [
        desk.client.post("/api/me/password", json=change, headers=desk.supervisor)
        for _ in range(ACCOUNT.threshold + 1)
    ]
    assert [a.status_code for a in answers] == [422] * ACCOUNT.threshold + [429]
    assert answers[-1].json()["error"].startswith("too many failed sign-ins")
    hashed = hashes.verified
    right = {**change, "current_password": PASSWORD}
    refused = desk.client.post("/api/me/password", json=right, headers=desk.supervisor)
    assert refused.status_code == 429 and hashes.verified == hashed
    assert sign_in(desk.client, "sue", PASSWORD).status_code == 429  # the same account lock


def test_made_up_api_tokens_from_one_address_get_429_but_good_tokens_still_work(
    desk: Desk,
) -> None:
    bogus = {"Authorization": "Bearer tda_" + "x" * 43}
    answers = [desk.client.get("/api/me", headers=bogus) for _ in range(TOKEN.threshold + 1)]
    assert [a.status_code for a in answers[:-1]] == [401] * TOKEN.threshold
    assert answers[-1].status_code == 429 and answers[-1].headers["retry-after"] == "60"
    assert "unknown API tokens" in answers[-1].json()["error"]
    assert desk.client.get("/api/me", headers=desk.analyst).status_code == 200
    desk.clock.advance(minutes=1, seconds=1)
    assert desk.client.get("/api/me", headers=bogus).status_code == 401


def test_forgotten_failures_start_again_from_one(sessions: sessionmaker[Session]) -> None:
    now = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
    key = account_key("sue")
    with sessions() as session:
        for _ in range(ACCOUNT.threshold - 1):
            assert throttle.admit(session, [key], now) is None
        later = now + ACCOUNT.forget + dt.timedelta(seconds=1)
        assert throttle.admit(session, [key], later) is None
        assert throttle.states(session, [key], later)[key].failures == 1
        session.commit()


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'takedown.db'}")
    migrate(engine)
    yield session_factory(engine)
    engine.dispose()
