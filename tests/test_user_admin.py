"""Supervisors disable and enable users, reset passwords and end sessions; users change
their own password with the old one; the API and the CLI do the same, and every account
and token action is an audit row with its actor (never a secret).

Attacks: a departed analyst's token and session after they are disabled, an analyst
trying the supervisor's actions, a stolen session changing the password without the old
one, a supervisor locking everyone out by disabling themselves.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deskapp import PASSWORD, Desk, running_desk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from test_sign_in_throttle import CountingHasher, sign_in

from workflows.cli.main import main
from workflows.kinds import AuditAction
from workflows.store import accounts
from workflows.store.models import AuditEvent, Token, User

NEW = "a brand new passphrase"
WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"


@pytest.fixture
def desk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Desk]:
    counting = CountingHasher()
    decoy = counting.hash("decoy")
    monkeypatch.setattr(accounts, "hasher", lambda: counting)
    monkeypatch.setattr(accounts, "_decoy_hash", lambda: decoy)
    with running_desk(tmp_path) as running:
        yield running


def actions(desk: Desk) -> list[tuple[str, str, str | None]]:
    """Return (action, actor, subject) of every audit row, oldest first."""
    with desk.sessions() as session:
        rows = session.scalars(select(AuditEvent).order_by(AuditEvent.id))
        return [(r.action, r.actor, r.subject) for r in rows]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def cookie_of(cookies: dict[str, str]) -> dict[str, str]:
    """Return a Cookie header sending COOKIES (the test client's own jar must be empty)."""
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}


def test_a_disabled_users_token_and_session_stop_at_once(desk: Desk) -> None:
    bob = desk.client.post(
        "/api/users", json={"name": "bob", "role": "analyst", "password": PASSWORD},
        headers=desk.supervisor,
    ).json()  # fmt: skip
    assert sign_in(desk.client, "bob", PASSWORD).status_code == 303
    assert desk.client.get("/api/me").status_code == 200  # bob's session cookie
    cookie = dict(desk.client.cookies)
    desk.client.cookies.clear()
    disabled = desk.client.post("/api/users/bob/disable", headers=desk.supervisor)
    assert disabled.status_code == 200 and disabled.json()["disabled_at"] is not None
    assert desk.client.get("/api/me", headers=bearer(bob["token"])).status_code == 401
    assert desk.client.get("/api/me", headers=cookie_of(cookie)).status_code == 401
    assert sign_in(desk.client, "bob", PASSWORD).status_code == 401  # as a wrong password
    again = desk.client.post("/api/users/bob/disable", headers=desk.supervisor)
    assert again.status_code == 409
    assert desk.client.post("/api/users/bob/enable", headers=desk.supervisor).status_code == 200
    assert desk.client.get("/api/me", headers=bearer(bob["token"])).status_code == 200
    assert (
        desk.client.get("/api/me", headers=cookie_of(cookie)).status_code == 401
    )  # sessions stay ended


def test_a_supervisor_cannot_disable_themselves(desk: Desk) -> None:
    refused = desk.client.post("/api/users/sue/disable", headers=desk.supervisor)
    assert refused.status_code == 409 and "themselves" in refused.json()["error"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/users/sue/disable", None),
        ("POST", "/api/users/al/enable", None),
        ("POST", "/api/users/sue/password", {"password": NEW}),
        ("DELETE", "/api/users/sue/sessions", None),
        ("GET", "/api/audit", None),
        ("GET", "/api/locks", None),
    ],
)
def test_analysts_are_refused_account_actions_and_nothing_changes(
    desk: Desk, method: str, path: str, body: Any
) -> None:
    before = desk.snapshot(), actions(desk)
    answer = desk.client.request(method, path, json=body, headers=desk.analyst)
    assert answer.status_code == 403
    assert (desk.snapshot(), actions(desk)) == before


def test_a_reset_password_ends_the_users_sessions(desk: Desk) -> None:
    sign_in(desk.client, "sue", PASSWORD)
    assert desk.client.get("/api/me").status_code == 200
    cookie = dict(desk.client.cookies)
    desk.client.cookies.clear()
    token = desk.add_user("boss", "supervisor")
    answer = desk.client.post("/api/users/sue/password", json={"password": NEW}, headers=token)
    assert answer.status_code == 200 and answer.json()["can_sign_in"] is True
    assert desk.client.get("/api/me", headers=cookie_of(cookie)).status_code == 401
    assert sign_in(desk.client, "sue", PASSWORD).status_code == 401
    assert sign_in(desk.client, "sue", NEW).status_code == 303
    short = desk.client.post("/api/users/sue/password", json={"password": "short"}, headers=token)
    assert short.status_code == 422 and short.json()["field"] == "password"


def test_ending_a_users_sessions_signs_them_out_everywhere(desk: Desk) -> None:
    sign_in(desk.client, "sue", PASSWORD)
    first = dict(desk.client.cookies)
    desk.client.cookies.clear()
    sign_in(desk.client, "sue", PASSWORD)
    desk.client.cookies.clear()
    ended = desk.client.delete("/api/users/sue/sessions", headers=desk.supervisor)
    assert ended.json() == {"user": "sue", "ended": 2}
    assert desk.client.get("/api/me", headers=cookie_of(first)).status_code == 401
    assert desk.client.get("/api/me", headers=desk.supervisor).status_code == 200  # API token
    assert desk.client.delete("/api/users/sue/sessions", headers=desk.analyst).status_code == 403
    own = desk.client.delete("/api/users/al/sessions", headers=desk.analyst)
    assert own.json() == {"user": "al", "ended": 0}


def test_users_change_their_own_password_only_with_the_old_one(desk: Desk) -> None:
    csrf = desk.sign_in("sue")  # a session, as if stolen: its thief lacks the password
    other = desk.client.cookies.get("takedown_session")
    desk.client.cookies.clear()
    stolen = {**cookie_of({"takedown_session": other or ""}), "X-CSRF-Token": csrf}
    wrong = {"current_password": "guessing-the-password", "new_password": NEW}
    before = desk.snapshot()
    refused = desk.client.post("/api/me/password", json=wrong, headers=stolen)
    assert refused.status_code == 422 and refused.json()["field"] == "current_password"
    missing = desk.client.post("/api/me/password", json={"new_password": NEW}, headers=stolen)
    assert missing.status_code == 422 and missing.json()["field"] == "current_password"
    assert desk.snapshot() == before
    assert sign_in(desk.client, "sue", PASSWORD).status_code == 303
    me = desk.client.get("/api/me").json()
    right = {"current_password": PASSWORD, "new_password": NEW}
    changed = desk.client.post(
        "/api/me/password", json=right, headers={"X-CSRF-Token": me["csrf_token"]}
    )
    assert changed.status_code == 200 and changed.json()["name"] == "sue"
    assert desk.client.get("/api/me").status_code == 200  # this session goes on
    assert (
        desk.client.get("/api/me", headers=cookie_of({"takedown_session": other or ""})).status_code
        == 401
    )
    assert desk.client.get("/api/me", headers=desk.supervisor).status_code == 200  # tokens stay
    assert sign_in(desk.client, "sue", NEW).status_code == 303


def test_every_account_and_token_action_is_audited_without_secrets(desk: Desk) -> None:
    sup = desk.supervisor
    added = desk.client.post(
        "/api/users", json={"name": "bob", "role": "analyst", "password": PASSWORD}, headers=sup
    ).json()
    spare = desk.client.post("/api/users/bob/tokens", headers=sup).json()["token"]
    (first, second) = [
        t["id"] for t in desk.client.get("/api/users/bob/tokens", headers=sup).json()
    ]
    desk.client.delete(f"/api/tokens/{second}", headers=sup)
    assert sign_in(desk.client, "bob", PASSWORD).status_code == 303
    csrf = desk.client.get("/api/me").json()["csrf_token"]
    change = {"current_password": PASSWORD, "new_password": NEW}
    desk.client.post("/api/me/password", json=change, headers={"X-CSRF-Token": csrf})
    desk.client.post("/logout", headers={"X-CSRF-Token": csrf})
    desk.client.cookies.clear()
    for _ in range(5):
        sign_in(desk.client, "bob", "wrong, wrong, wrong")
    desk.client.post("/api/users/bob/password", json={"password": PASSWORD}, headers=sup)
    desk.client.delete("/api/users/bob/sessions", headers=sup)
    desk.client.post("/api/users/bob/disable", headers=sup)
    desk.client.post("/api/users/bob/enable", headers=sup)
    trail = desk.client.get("/api/audit?user=bob&limit=50", headers=sup)
    assert [(r["action"], r["actor"]) for r in reversed(trail.json())] == [
        ("user_added", "sue"),
        ("token_issued", "sue"),
        ("token_issued", "sue"),
        ("token_revoked", "sue"),
        ("signed_in", "bob"),
        ("password_changed", "bob"),
        ("signed_out", "bob"),
        ("sign_in_locked", "takedown"),
        ("password_reset", "sue"),
        ("sessions_ended", "sue"),
        ("user_disabled", "sue"),
        ("user_enabled", "sue"),
    ]
    assert {r["address"] for r in trail.json()} == {"testclient"}
    assert trail.json()[-1]["detail"] == {"role": "analyst", "can_sign_in": True}
    assert {first, second} == {
        r["detail"]["token_id"] for r in trail.json() if r["detail"] and "token_id" in r["detail"]
    }
    with desk.sessions() as session:
        digests = list(session.scalars(select(Token.digest)))
    for secret in (added["token"], spare, PASSWORD, NEW, *digests):
        assert secret not in trail.text


@pytest.mark.parametrize("action", list(AuditAction), ids=str)
def test_every_audit_action_is_recorded_somewhere(action: AuditAction) -> None:
    sources = [p for p in WORKFLOWS.rglob("*.py") if p.name != "kinds.py"]
    name = f"AuditAction.{action.name}"
    assert any(name in path.read_text(encoding="utf-8") for path in sources), name


def takedown(monkeypatch: pytest.MonkeyPatch, desk: Desk, *args: str) -> int:
    monkeypatch.setenv("TAKEDOWN_HOME", str(desk.home))
    monkeypatch.setattr("getpass.getuser", lambda: "operator")
    return main(list(args))


def test_the_cli_disables_enables_resets_and_signs_out(
    desk: Desk, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sign_in(desk.client, "sue", PASSWORD)
    assert takedown(monkeypatch, desk, "user", "logout", "sue") == 0
    assert capsys.readouterr().out == "ended 1 web session of sue\n"
    assert desk.client.get("/api/me").status_code == 401
    assert takedown(monkeypatch, desk, "user", "disable", "al") == 0
    assert desk.client.get("/api/me", headers=desk.analyst).status_code == 401
    assert takedown(monkeypatch, desk, "user", "disable", "al") == 2
    assert "takedown: user 'al' is disabled already" in capsys.readouterr().err
    assert takedown(monkeypatch, desk, "user", "enable", "al") == 0
    assert desk.client.get("/api/me", headers=desk.analyst).status_code == 200
    capsys.readouterr()
    assert takedown(monkeypatch, desk, "user", "passwd", "al") == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[-2] == "the new password, shown once:"
    assert sign_in(desk.client, "al", printed[-1]).status_code == 303
    password_file = desk.home / "password.txt"
    password_file.write_text(NEW + "\n")
    assert (
        takedown(monkeypatch, desk, "user", "passwd", "al", "--password-file", str(password_file))
        == 0
    )
    assert desk.client.get("/api/me").status_code == 401  # the reset ended that session
    assert takedown(monkeypatch, desk, "user", "logout", "nobody") == 2
    assert capsys.readouterr().err == "takedown: no user 'nobody'\n"
    assert takedown(monkeypatch, desk, "user", "audit", "al", "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert [(r["action"], r["actor"]) for r in shown[:5]] == [
        ("password_reset", "cli:operator"),
        ("signed_in", "al"),
        ("password_reset", "cli:operator"),
        ("user_enabled", "cli:operator"),
        ("user_disabled", "cli:operator"),
    ]


@settings(
    max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None
)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["disable", "enable", "password", "sessions"]),
            st.sampled_from(["bob", "al", "nobody"]),
            st.sampled_from(["sue", "al"]),
        ),
        max_size=8,
    )
)
def test_any_sequence_of_account_actions_keeps_a_disabled_user_out_and_audits_each_change(
    desk: Desk, steps: list[tuple[str, str, str]]
) -> None:
    who = {"sue": desk.supervisor, "al": desk.analyst}
    if not hasattr(desk, "bob"):  # the desk lives on from one example to the next
        desk.bob = desk.add_user("bob", "analyst")  # type: ignore[attr-defined]
    tokens = {**who, "bob": desk.bob}  # type: ignore[attr-defined]
    desk.clock.advance(hours=2)  # the previous example's refused tokens are forgotten
    for action, name, actor in steps:
        before = len(actions(desk))
        if action == "sessions":
            answer = desk.client.delete(f"/api/users/{name}/sessions", headers=who[actor])
        else:
            body = {"password": NEW} if action == "password" else None
            answer = desk.client.post(f"/api/users/{name}/{action}", json=body, headers=who[actor])
        assert answer.status_code in (200, 401, 403, 404, 409), answer.text
        assert len(actions(desk)) == before + (answer.status_code == 200)
    with desk.sessions() as session:
        users = {u.name: u for u in session.scalars(select(User))}
        for user in users.values():
            kinds = session.scalars(select(Token.kind).where(Token.user_id == user.id)).all()
            if user.disabled_at is not None:
                assert set(kinds) <= {"api"}  # no session survives
    for name, token in tokens.items():
        me = desk.client.get("/api/me", headers=token).status_code
        assert me == (401 if users[name].disabled_at is not None else 200), name


def test_the_password_page_changes_ones_own_password_with_the_old_one(desk: Desk) -> None:
    assert sign_in(desk.client, "sue", PASSWORD).status_code == 303
    page = desk.client.get("/password")
    assert page.status_code == 200 and 'href="/password"' in page.text
    csrf = desk.client.get("/api/me").json()["csrf_token"]

    def change(current: str, new: str, repeat: str | None = None) -> Any:
        fields = {"csrf_token": csrf, "current": current, "new": new, "repeat": repeat or new}
        return desk.client.post("/password", data=fields)

    assert change(PASSWORD, NEW, "something else entirely").status_code == 422
    assert change(PASSWORD, "short").status_code == 422
    wrong = change("not my password at all", NEW)
    assert wrong.status_code == 422 and "not your current password" in wrong.text
    done = change(PASSWORD, NEW)
    assert done.status_code == 200 and "Your password is changed" in done.text
    assert desk.client.get("/api/me").status_code == 200  # this session goes on
    assert ("password_changed", "sue", "sue") in actions(desk)
    for _ in range(5):  # the count started afresh at the success
        change("still guessing, still wrong", NEW)
    locked = change(NEW, "yet another passphrase")
    assert locked.status_code == 429 and locked.headers["retry-after"] == "60"
