"""Accounts: Argon2id password hashes, token digests, sessions that expire, sign-in, and
API tokens' last use and revocation (accounts, API and CLI)."""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from deskapp import Desk, running_desk
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from workflows.errors import Conflict, InputError
from workflows.store import accounts
from workflows.store.db import make_engine, migrate, session_factory
from workflows.store.models import Token, User

T0 = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)
PASSWORD = "correct horse battery staple"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "takedown.db"


@pytest.fixture
def sessions(db_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{db_path}")
    migrate(engine)
    yield session_factory(engine)
    engine.dispose()


def stored_bytes(db_path: Path) -> bytes:
    """Return every byte SQLite keeps on disk for the database (main file and its WAL)."""
    return b"".join(
        path.read_bytes()
        for path in (db_path, db_path.with_name(db_path.name + "-wal"))
        if path.exists()
    )


@pytest.mark.real_password_hashing
def test_passwords_are_stored_as_argon2id_with_their_parameters_visible(
    sessions: sessionmaker[Session], db_path: Path
) -> None:
    with sessions() as session:
        user = accounts.create_user(session, "sue", "supervisor", PASSWORD, now=T0)
        session.commit()
        stored = user.password_hash
    assert stored is not None
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert PASSWORD.encode() not in stored_bytes(db_path)
    with sessions() as session:
        found = accounts.find_user(session, "sue")
        assert found is not None
        assert accounts.verify_password(found, PASSWORD)
        assert not accounts.verify_password(found, PASSWORD + "!")
        assert not accounts.verify_password(found, "")


def test_two_users_with_the_same_password_get_different_hashes(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as session:
        first = accounts.create_user(session, "a", "analyst", PASSWORD, now=T0)
        second = accounts.create_user(session, "b", "analyst", PASSWORD, now=T0)
        assert first.password_hash != second.password_hash  # salted


@pytest.mark.real_password_hashing
def test_a_hash_with_weaker_parameters_is_upgraded_at_sign_in(
    sessions: sessionmaker[Session],
) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    with sessions() as session:
        session.add(User(name="old", role="analyst", password_hash=weak, created_at=T0))
        session.commit()
        user = accounts.authenticate(session, "old", PASSWORD)
        assert user is not None
        session.commit()
    with sessions() as session:
        upgraded = accounts.find_user(session, "old")
        assert upgraded is not None and upgraded.password_hash is not None
        assert upgraded.password_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
        assert accounts.verify_password(upgraded, PASSWORD)


def test_sign_in_refuses_unknown_names_wrong_passwords_and_users_without_one(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as session:
        accounts.create_user(session, "sue", "supervisor", PASSWORD, now=T0)
        accounts.create_user(session, "robot", "analyst", now=T0)
        assert accounts.authenticate(session, "nobody", PASSWORD) is None
        assert accounts.authenticate(session, "sue", "wrong password!") is None
        assert accounts.authenticate(session, "robot", "") is None
        signed_in = accounts.authenticate(session, "sue", PASSWORD)
        assert signed_in is not None and signed_in.name == "sue"


def test_api_tokens_are_stored_as_their_sha256_only(
    sessions: sessionmaker[Session], db_path: Path
) -> None:
    with sessions() as session:
        user = accounts.create_user(session, "al", "analyst", now=T0)
        secret = accounts.issue_token(session, user, now=T0)
        session.commit()
        digests = list(session.scalars(select(Token.digest)))
    assert secret.startswith("tda_") and len(secret) >= 40
    assert digests == [hashlib.sha256(secret.encode()).hexdigest()]
    on_disk = stored_bytes(db_path)
    assert secret.encode() not in on_disk and secret[4:].encode() not in on_disk
    assert digests[0].encode() in on_disk


def test_a_token_finds_its_user_only_as_its_own_kind(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        user = accounts.create_user(session, "al", "analyst", now=T0)
        secret = accounts.issue_token(session, user, now=T0)
        found = accounts.user_for_token(session, secret, "api", now=T0)
        assert found is not None and found.name == "al"
        assert accounts.user_for_token(session, secret, "session", now=T0) is None
        assert accounts.user_for_token(session, secret[:-1] + "x", "api", now=T0) is None
        assert accounts.user_for_token(session, "tda_" + "A" * 43, "api", now=T0) is None
        assert accounts.user_for_token(session, "", "api", now=T0) is None


def test_api_tokens_do_not_expire(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        user = accounts.create_user(session, "al", "analyst", now=T0)
        secret = accounts.issue_token(session, user, now=T0)
        later = T0 + dt.timedelta(days=400)
        assert accounts.user_for_token(session, secret, "api", now=later) is not None


def test_a_session_lasts_twelve_hours(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        user = accounts.create_user(session, "sue", "supervisor", PASSWORD, now=T0)
        secret, csrf = accounts.create_session(session, user, now=T0)
        session.commit()
        almost = T0 + accounts.SESSION_LIFETIME - dt.timedelta(seconds=1)
        assert accounts.user_for_token(session, secret, "session", now=almost) is not None
        ended = T0 + accounts.SESSION_LIFETIME
        assert accounts.user_for_token(session, secret, "session", now=ended) is None
        assert accounts.user_for_token(session, secret, "api", now=T0) is None
    assert dt.timedelta(hours=12) == accounts.SESSION_LIFETIME
    assert csrf == accounts.csrf_token(secret) and csrf != secret and secret not in csrf


def test_each_session_has_its_own_csrf_token_and_none_is_stored(
    sessions: sessionmaker[Session], db_path: Path
) -> None:
    with sessions() as session:
        user = accounts.create_user(session, "sue", "supervisor", PASSWORD, now=T0)
        first = accounts.create_session(session, user, now=T0)
        second = accounts.create_session(session, user, now=T0)
        session.commit()
    assert first[1] != second[1]
    on_disk = stored_bytes(db_path)
    for secret, csrf in (first, second):
        assert secret.encode() not in on_disk and csrf.encode() not in on_disk


def test_signing_out_ends_the_session_and_expired_ones_are_swept(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as session:
        user = accounts.create_user(session, "sue", "supervisor", PASSWORD, now=T0)
        old, _ = accounts.create_session(session, user, now=T0)
        current, _ = accounts.create_session(session, user, now=T0 + dt.timedelta(hours=1))
        accounts.end_session(session, current)
        assert accounts.user_for_token(session, current, "session", now=T0) is None
        accounts.create_session(session, user, now=T0 + dt.timedelta(hours=13))
        remaining = session.scalar(select(func.count()).select_from(Token))
        assert accounts.user_for_token(session, old, "session", now=T0) is None
        assert remaining == 1  # the expired session went, the new one stays


@pytest.mark.parametrize(
    ("name", "role", "password", "problem"),
    [
        ("bad name", "analyst", None, "user name"),
        ("", "analyst", None, "user name"),
        ("x" * 121, "analyst", None, "user name"),
        ("al", "boss", None, "role"),
        ("al", "analyst", "short", "password"),
        ("al", "analyst", "x" * 1025, "password"),
    ],
    ids=["space", "empty", "too-long-name", "unknown-role", "short-password", "huge-password"],
)
def test_bad_users_are_refused_and_nothing_is_stored(
    sessions: sessionmaker[Session], name: str, role: str, password: str | None, problem: str
) -> None:
    with sessions() as session:
        with pytest.raises(InputError, match=problem):
            accounts.create_user(session, name, role, password, now=T0)
        session.commit()
        assert session.scalar(select(func.count()).select_from(User)) == 0


def test_a_name_is_taken_once(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        accounts.create_user(session, "al", "analyst", now=T0)
        with pytest.raises(Conflict, match="exists"):
            accounts.create_user(session, "al", "supervisor", now=T0)
        session.commit()
        assert session.scalar(select(func.count()).select_from(User)) == 1


def test_a_tokens_last_use_is_noted_to_the_minute(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        user = accounts.create_user(session, "al", "analyst", now=T0)
        secret = accounts.issue_token(session, user, now=T0)
        web, _ = accounts.create_session(session, user, now=T0)
        session.commit()

    def used(seconds: float) -> list[dt.datetime | None]:
        with sessions() as session:
            at = T0 + dt.timedelta(seconds=seconds)
            assert accounts.user_for_token(session, secret, "api", now=at) is not None
            assert accounts.user_for_token(session, web, "session", now=at) is not None
            session.commit()
            return list(session.scalars(select(Token.last_used_at).order_by(Token.id)))

    assert used(10) == [T0 + dt.timedelta(seconds=10), None]  # sessions are not stamped
    assert used(50) == [T0 + dt.timedelta(seconds=10), None]  # within the minute: no write
    assert used(75) == [T0 + dt.timedelta(seconds=75), None]


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    with running_desk(tmp_path) as running:
        yield running


def token_ids(desk: Desk, name: str, headers: dict[str, str]) -> list[int]:
    answer = desk.client.get(f"/api/users/{name}/tokens", headers=headers)
    assert answer.status_code == 200, answer.text
    return [token["id"] for token in answer.json()]


def test_a_revoked_token_is_refused_at_once(desk: Desk) -> None:
    added = desk.client.post(
        "/api/users", json={"name": "bob", "role": "analyst"}, headers=desk.supervisor
    ).json()
    bob = {"Authorization": f"Bearer {added['token']}"}
    desk.clock.advance(minutes=2)
    assert desk.client.get("/api/me", headers=bob).status_code == 200
    listed = desk.client.get("/api/users/bob/tokens", headers=desk.supervisor)
    (token,) = listed.json()
    assert set(token) == {"id", "user", "created_at", "last_used_at"}
    assert token["user"] == "bob" and token["last_used_at"] != token["created_at"]
    with desk.sessions() as session:
        stored = session.scalars(select(Token.digest).where(Token.id == token["id"])).one()
    assert added["token"] not in listed.text and stored not in listed.text
    revoked = desk.client.delete(f"/api/tokens/{token['id']}", headers=desk.supervisor)
    assert revoked.status_code == 200 and revoked.json() == token
    refused = desk.client.get("/api/me", headers=bob)
    assert refused.status_code == 401 and "revoked" in refused.json()["error"]
    assert desk.client.get("/api/users/bob/tokens", headers=desk.supervisor).json() == []
    again = desk.client.delete(f"/api/tokens/{token['id']}", headers=desk.supervisor)
    assert again.status_code == 404 and again.json()["error"] == f"no API token {token['id']}"


def test_users_list_and_revoke_their_own_tokens_only(desk: Desk) -> None:
    spare = desk.client.post("/api/users/al/tokens", headers=desk.analyst).json()["token"]
    first, second = token_ids(desk, "al", desk.analyst)
    before = desk.snapshot()
    (sues,) = token_ids(desk, "sue", desk.supervisor)
    assert desk.client.delete(f"/api/tokens/{sues}", headers=desk.analyst).status_code == 403
    assert desk.client.get("/api/users/sue/tokens", headers=desk.analyst).status_code == 403
    assert desk.snapshot() == before
    assert desk.client.delete(f"/api/tokens/{second}", headers=desk.analyst).status_code == 200
    assert (
        desk.client.get("/api/me", headers={"Authorization": f"Bearer {spare}"}).status_code == 401
    )
    assert desk.client.delete(f"/api/tokens/{first}", headers=desk.analyst).status_code == 200
    assert desk.client.get("/api/me", headers=desk.analyst).status_code == 401  # its own, too


def test_web_sessions_are_not_api_tokens_and_a_cookie_delete_needs_csrf(desk: Desk) -> None:
    csrf = desk.sign_in("sue")
    with desk.sessions() as session:
        web = session.scalars(select(Token.id).where(Token.kind == "session")).one()
    assert web not in token_ids(desk, "sue", desk.supervisor)
    assert desk.client.delete(f"/api/tokens/{web}", headers=desk.supervisor).status_code == 404
    (own,) = token_ids(desk, "sue", desk.supervisor)
    assert desk.client.delete(f"/api/tokens/{own}").status_code == 403  # the cookie alone
    done = desk.client.delete(f"/api/tokens/{own}", headers={"X-CSRF-Token": csrf})
    assert done.status_code == 200
    assert desk.client.get("/api/me", headers=desk.supervisor).status_code == 401


def test_the_cli_lists_and_revokes_tokens_and_refuses_unknown_ones(
    tmp_path: Path, takedown_command: list[str]
) -> None:
    env = {"PATH": "/usr/bin:/bin", "TAKEDOWN_HOME": str(tmp_path)}

    def takedown(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*takedown_command, *args], env=env, capture_output=True, text=True, timeout=60
        )

    secret = takedown("user", "add", "bob", "--role", "analyst").stdout.splitlines()[-1]
    listed = takedown("user", "tokens", "bob")
    assert listed.returncode == 0 and secret not in listed.stdout
    header, row = listed.stdout.splitlines()
    assert header.split() == ["id", "created", "last", "used"] and row.split()[2] == "never"
    token_id = row.split()[0]
    revoked = takedown("user", "revoke", token_id)
    assert (revoked.returncode, revoked.stdout) == (0, f"revoked API token {token_id} of bob\n")
    engine = make_engine(f"sqlite:///{tmp_path / 'takedown.db'}")
    with session_factory(engine)() as session:
        assert accounts.user_for_token(session, secret, "api") is None
    engine.dispose()
    assert takedown("user", "tokens", "bob").stdout.splitlines()[1:] == ["bob has no API token"]
    for args, problem in (
        (("user", "revoke", token_id), f"no API token {token_id}"),
        (("user", "revoke", "abc"), "'abc' is not a token id"),
        (("user", "revoke", "0"), "'0' is not a token id"),
        (("user", "tokens", "nobody"), "no user 'nobody'"),
        (("user", "tokens", "no body"), "user name 'no body'"),
    ):
        refused = takedown(*args)
        assert refused.returncode == 2 and problem in refused.stderr, (args, refused.stderr)
        assert len(refused.stderr.strip().splitlines()) == 1 and refused.stdout == ""
