"""The HTTP API's contract: who may do what, how it refuses, and that it records who did it."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from deskapp import Desk, running_desk
from sqlalchemy import update

from workflows.kinds import CaseState
from workflows.store.models import Case, Check
from workflows.store.queries import compute_stats

A = "http://files.example/a.jpg"
B = "http://files.example/b.jpg"


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    with running_desk(tmp_path) as running:
        yield running


def operations(desk: Desk) -> list[tuple[str, str]]:
    """Return (method, path) of every API operation, from the OpenAPI description."""
    spec = desk.client.get("/openapi.json").json()
    named = {"{case_id}": "1", "{notice_id}": "1", "{token_id}": "1", "{name}": "al"}
    found = []
    for path, item in spec["paths"].items():
        for name, value in named.items():
            path = path.replace(name, value)
        found += [(method.upper(), path) for method in item]
    return found


def test_every_operation_refuses_a_request_without_a_token_with_401(desk: Desk) -> None:
    desk.report(A)
    before = desk.snapshot()
    found = operations(desk)
    assert len(found) >= 14
    for method, path in found:
        answer = desk.client.request(method, path, json={})
        assert answer.status_code == 401, (method, path)
        assert answer.headers["content-type"] == "application/json"
        assert answer.json()["error"] and answer.headers["www-authenticate"] == "Bearer"
    assert desk.snapshot() == before


def test_a_stranger_with_a_malformed_body_gets_401_not_a_description_of_the_api(
    desk: Desk,
) -> None:
    before = desk.snapshot()
    for method, path in operations(desk):
        answer = desk.client.request(
            method, path, content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert answer.status_code == 401, (method, path, answer.text)
        assert "errors" not in answer.json()
    assert desk.snapshot() == before


@pytest.mark.parametrize(
    "header",
    ["Bearer tda_not-a-real-token", "Bearer ", "Basic c3VlOnB3", "tda_x"],
    ids=["unknown-token", "empty-token", "basic-auth", "no-scheme"],
)
def test_a_bad_authorization_header_is_refused_with_401(desk: Desk, header: str) -> None:
    answer = desk.client.get("/api/cases", headers={"Authorization": header})
    assert answer.status_code == 401 and "error" in answer.json()


SUPERVISOR_ONLY = [
    ("POST", "/api/cases/1/close", {"code": "duplicate"}),
    ("POST", "/api/cases/1/reopen", None),
    ("POST", "/api/cases/1/hold", {"days": 3, "reason": "police"}),
    ("POST", "/api/cases/1/release", None),
    ("GET", "/api/users", None),
    ("POST", "/api/users", {"name": "bob", "role": "analyst"}),
    ("POST", "/api/users/sue/tokens", None),
    ("GET", "/api/users/sue/tokens", None),
    ("DELETE", "/api/tokens/1", None),  # sue's
    ("POST", "/api/notices/1/resolve", {"outcome": "sent"}),
]


@pytest.mark.parametrize(("method", "path", "body"), SUPERVISOR_ONLY)
def test_analysts_are_refused_supervisor_actions_with_403(
    desk: Desk, method: str, path: str, body: Any
) -> None:
    desk.report(A)
    before = desk.snapshot()
    answer = desk.client.request(method, path, json=body, headers=desk.analyst)
    assert answer.status_code == 403 and "supervisor" in answer.json()["error"]
    assert desk.snapshot() == before


def test_a_cookie_session_must_send_its_csrf_token_to_post(desk: Desk) -> None:
    case_id = desk.report(A)[0]["id"]
    csrf = desk.sign_in("sue")
    assert desk.client.get(f"/api/cases/{case_id}").status_code == 200  # reading needs none
    before = desk.snapshot()
    for headers in ({}, {"X-CSRF-Token": "0" * 64}, {"X-CSRF-Token": ""}):
        refused = desk.client.post(f"/api/cases/{case_id}/close", json={}, headers=headers)
        assert refused.status_code == 403 and "CSRF" in refused.json()["error"]
    wrong_form = desk.client.post(f"/api/cases/{case_id}/close", data={"csrf_token": "nope"})
    assert wrong_form.status_code == 403
    assert desk.snapshot() == before
    closed = desk.client.post(
        f"/api/cases/{case_id}/close", json={"code": "duplicate"}, headers={"X-CSRF-Token": csrf}
    )
    assert closed.status_code == 200 and closed.json()["state"] == "closed"
    assert desk.events(case_id)[-1] == ("closed", "sue")


def test_a_form_post_may_carry_the_csrf_token_as_a_field(desk: Desk) -> None:
    csrf = desk.sign_in("al")
    answer = desk.client.post("/api/cases/1/notes", data={"csrf_token": csrf, "text": "x"})
    assert answer.status_code != 403  # past the CSRF check: the API itself wants JSON (422)
    assert answer.status_code == 422


def test_an_expired_or_ended_session_is_refused_with_401(desk: Desk) -> None:
    csrf = desk.sign_in("al")
    me = desk.client.get("/api/me").json()
    assert me == {"name": "al", "role": "analyst", "csrf_token": csrf}
    desk.clock.advance(hours=12)
    assert desk.client.get("/api/me").status_code == 401


def test_a_bearer_token_needs_no_csrf_token_even_with_a_cookie(desk: Desk) -> None:
    desk.sign_in("al")
    answer = desk.client.post("/api/cases", json={"urls": [A]}, headers=desk.supervisor)
    assert answer.status_code == 201 and answer.json()[0]["analyst"] == "sue"


BAD_INPUT = [
    ("POST", "/api/cases", {"urls": []}, "urls"),
    ("POST", "/api/cases", {"urls": [A, "nope"]}, "urls[1]"),
    ("POST", "/api/cases", {"urls": [A, 5]}, "urls[1]"),
    ("POST", "/api/cases", {"urls": ["http://10.0.0.1:99999/"]}, "urls[0]"),
    ("POST", "/api/cases", {"ref": "R"}, "urls"),
    ("POST", "/api/cases", {"urls": [A], "ref": "x" * 201}, "ref"),
    ("POST", "/api/cases", {"urls": [A], "category": "a\x00b"}, "category"),
    ("POST", "/api/cases", {"urls": [A], "analyst": "mallory"}, "analyst"),
    ("POST", "/api/cases", [A], "body"),
    ("POST", "/api/cases/1/hold", {}, "until"),
    ("POST", "/api/cases/1/hold", {"days": 0}, "days"),
    ("POST", "/api/cases/1/hold", {"days": 400}, "days"),
    ("POST", "/api/cases/1/hold", {"until": "2020-01-01T00:00:00Z"}, "until"),
    ("POST", "/api/cases/1/hold", {"until": "2099-01-01T00:00:00"}, "until"),
    ("POST", "/api/cases/1/hold", {"until": "2099-01-01T00:00:00Z", "days": 1}, "until"),
    ("POST", "/api/cases/1/notes", {"text": ""}, "text"),
    ("POST", "/api/cases/1/notes", {}, "text"),
    ("POST", "/api/cases/1/close", {"reason": 5}, "reason"),
    ("POST", "/api/users", {"name": "a b", "role": "analyst"}, "name"),
    ("POST", "/api/users", {"name": "bob", "role": "boss"}, "role"),
    ("POST", "/api/users", {"name": "bob", "role": "analyst", "password": "short"}, "password"),
    ("GET", "/api/cases?limit=0", None, "limit"),
    ("GET", "/api/cases?state=gone", None, "state[0]"),
    ("GET", "/api/cases?colour=red", None, "colour"),
    ("GET", "/api/cases?country=GBR", None, "country"),
    ("GET", "/api/cases/abc", None, "case_id"),
    ("GET", "/api/cases/99999999999", None, "case_id"),
    ("GET", "/api/stats?since=yesterday", None, "since"),
    ("POST", "/api/notices/1/resolve", {"outcome": "maybe"}, "outcome"),
    ("POST", "/api/notices/1/resolve", {}, "outcome"),
    ("POST", "/api/notices/1/resolve", {"outcome": "sent", "reason": 5}, "reason"),
    ("POST", "/api/notices/1/resolve", {"outcome": "sent", "by": "x"}, "by"),
    ("POST", "/api/notices/0/resolve", {"outcome": "sent"}, "notice_id"),
    ("GET", "/api/notices?status=lost", None, "status[0]"),
    ("GET", "/api/notices?limit=501", None, "limit"),
    ("GET", "/api/notices?case=1", None, "case"),
    ("DELETE", "/api/tokens/abc", None, "token_id"),
    ("DELETE", "/api/tokens/99999999999", None, "token_id"),
]


@pytest.mark.parametrize(("method", "path", "body", "field"), BAD_INPUT)
def test_bad_input_is_refused_with_422_naming_the_field(
    desk: Desk, method: str, path: str, body: Any, field: str
) -> None:
    desk.report(A)
    before = desk.snapshot()
    answer = desk.client.request(method, path, json=body, headers=desk.supervisor)
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == field
    assert answer.json()["error"].startswith(f"{field}: ")
    assert desk.snapshot() == before


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/cases/999", None),
        ("POST", "/api/cases/999/close", {"code": "duplicate"}),
        ("POST", "/api/cases/999/reopen", {}),
        ("POST", "/api/cases/999/notes", {"text": "hello"}),
        ("POST", "/api/cases/999/recheck", {}),
        ("POST", "/api/cases/999/hold", {"days": 1}),
        ("POST", "/api/cases/999/release", None),
        ("POST", "/api/users/nobody/tokens", None),
        ("GET", "/api/users/nobody/tokens", None),
        ("DELETE", "/api/tokens/999", None),
        ("POST", "/api/notices/999/resolve", {"outcome": "resend"}),
    ],
)
def test_an_unknown_case_notice_user_or_token_is_404(
    desk: Desk, method: str, path: str, body: Any
) -> None:
    before = desk.snapshot()
    answer = desk.client.request(method, path, json=body, headers=desk.supervisor)
    assert answer.status_code == 404 and "no " in answer.json()["error"]
    assert desk.snapshot() == before


def test_reopening_while_another_case_is_open_for_the_url_is_409(desk: Desk) -> None:
    first = desk.report(A)[0]["id"]
    post = desk.client.post
    closing = {"json": {"code": "duplicate"}, "headers": desk.supervisor}
    assert post(f"/api/cases/{first}/close", **closing).status_code == 200
    second = desk.report(A)[0]
    assert second["id"] != first and not second["joined"]
    before = desk.snapshot()
    answer = post(f"/api/cases/{first}/reopen", headers=desk.supervisor)
    assert answer.status_code == 409
    assert answer.json()["error"] == f"case {second['id']} is open for this URL already"
    assert desk.snapshot() == before
    assert post(f"/api/cases/{second['id']}/close", **closing).status_code == 200
    reopened = post(f"/api/cases/{first}/reopen", json={"reason": "back"}, headers=desk.supervisor)
    assert reopened.status_code == 200 and reopened.json()["state"] == "new"
    assert desk.report(A)[0] == {**desk.report(A)[0], "id": first, "joined": True}


@pytest.mark.parametrize(
    ("action", "body", "state"),
    [
        ("close", {"code": "duplicate"}, CaseState.CLOSED),
        ("reopen", {}, CaseState.NEW),
        ("release", None, CaseState.NEW),
        ("recheck", {}, CaseState.HELD),
    ],
)
def test_an_action_the_state_does_not_allow_is_409(
    desk: Desk, action: str, body: Any, state: CaseState
) -> None:
    case_id = desk.report(A)[0]["id"]
    with desk.sessions() as session:
        session.execute(update(Case).where(Case.id == case_id).values(state=state))
        session.commit()
    before = desk.snapshot()
    answer = desk.client.post(f"/api/cases/{case_id}/{action}", json=body, headers=desk.supervisor)
    assert answer.status_code == 409 and str(case_id) in answer.json()["error"]
    assert desk.snapshot() == before


def test_every_action_is_an_event_by_its_user(desk: Desk) -> None:
    case_id = desk.report(A)[0]["id"]
    post = desk.client.post
    steps = [
        (f"/api/cases/{case_id}/notes", {"text": "seen again on a forum"}, desk.analyst),
        (f"/api/cases/{case_id}/recheck", {"reason": "host says gone"}, desk.analyst),
        (f"/api/cases/{case_id}/hold", {"days": 2, "reason": "police request"}, desk.supervisor),
        (f"/api/cases/{case_id}/hold", {"days": 5}, desk.supervisor),
        (f"/api/cases/{case_id}/release", None, desk.supervisor),
        (
            f"/api/cases/{case_id}/close",
            {"code": "not_illegal", "reason": "out of remit"},
            desk.supervisor,
        ),
        (f"/api/cases/{case_id}/reopen", {}, desk.supervisor),
    ]
    for path, body, headers in steps:
        answer = post(path, json=body, headers=headers)
        assert answer.status_code in (200, 201), (path, answer.text)
    assert post("/api/cases", json={"urls": [A]}, headers=desk.supervisor).json()[0]["joined"]
    assert desk.events(case_id) == [
        ("reported", "al"),
        ("note", "al"),
        ("recheck_requested", "al"),
        ("held", "sue"),
        ("hold_changed", "sue"),
        ("hold_released", "sue"),
        ("closed", "sue"),
        ("reopened", "sue"),
        ("joined", "sue"),
    ]
    timeline = desk.client.get(f"/api/cases/{case_id}", headers=desk.analyst).json()
    assert timeline["events"][1]["detail"] == {"text": "seen again on a forum"}
    assert timeline["events"][3]["detail"]["reason"] == "police request"


def test_a_hold_keeps_a_due_time_at_its_end_and_release_restores_the_state(desk: Desk) -> None:
    case_id = desk.report(A)[0]["id"]
    until = (desk.clock() + dt.timedelta(days=3)).isoformat().replace("+00:00", "Z")
    held = desk.client.post(
        f"/api/cases/{case_id}/hold", json={"until": until}, headers=desk.supervisor
    ).json()
    assert (held["state"], held["due_at"], held["held_from"]) == ("held", until, "new")
    listed = desk.client.get("/api/cases?state=held", headers=desk.analyst).json()
    assert [c["id"] for c in listed] == [case_id]
    released = desk.client.post(f"/api/cases/{case_id}/release", headers=desk.supervisor).json()
    assert (released["state"], released["held_from"]) == ("new", None)
    assert released["due_at"] == desk.clock().isoformat().replace("+00:00", "Z")


def test_the_api_shows_the_same_case_objects_as_the_cli(
    desk: Desk, takedown_command: list[str]
) -> None:
    desk.report(A, B, ref="OP-7", category="csam")
    listed = desk.client.get("/api/cases", headers=desk.analyst).json()
    cli = subprocess.run(
        [*takedown_command, "cases", "--json"],
        env={"PATH": "/usr/bin:/bin", "TAKEDOWN_HOME": str(desk.home)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert [{k: v for k, v in c.items() if k != "held_from"} for c in listed] == json.loads(
        cli.stdout
    )
    assert listed[0]["reference"] == "OP-7" and listed[0]["analyst"] == "al"


def test_a_csv_upload_reports_each_row_with_its_reference(desk: Desk) -> None:
    upload = "url,reference,category\r\nhttp://files.example/1,R-1,csam\r\n\r\n" + f"{B},,\r\n"
    answer = desk.client.post(
        "/api/cases/csv", files={"file": ("urls.csv", upload.encode())}, headers=desk.analyst
    )
    assert answer.status_code == 201, answer.text
    cases = answer.json()
    assert [(c["url"], c["reference"], c["category"]) for c in cases] == [
        ("http://files.example/1", "R-1", "csam"),
        (B, None, None),
    ]


@pytest.mark.parametrize(
    ("upload", "problem"),
    [
        (f"url,reference\n{A},R\nhttp://[::1/,R\n", "row 3: url: "),
        (f"url\n{A}\n{B},extra\n", "row 3: 2 values for 1 columns"),
        (f"link,reference\n{A},R\n", "row 1: the first row must name the columns"),
        (f"url,reference\n{A},{'r' * 201}\n", "row 2: reference: at most 200"),
        ("url\n", "no URL in the file"),
        ("", "row 1: the first row"),
    ],
    ids=["bad-url", "extra-value", "no-header", "long-reference", "no-rows", "empty"],
)
def test_a_bad_csv_row_is_refused_with_422_naming_it_and_nothing_is_stored(
    desk: Desk, upload: str, problem: str
) -> None:
    before = desk.snapshot()
    answer = desk.client.post(
        "/api/cases/csv", files={"file": ("urls.csv", upload.encode())}, headers=desk.analyst
    )
    assert answer.status_code == 422
    assert answer.json()["field"] == "file" and problem in answer.json()["error"]
    assert desk.snapshot() == before


def test_a_csv_that_is_not_utf8_text_is_refused(desk: Desk) -> None:
    answer = desk.client.post(
        "/api/cases/csv", files={"file": ("x.csv", b"url\n\xff\xfe")}, headers=desk.analyst
    )
    assert answer.status_code == 422 and "UTF-8" in answer.json()["error"]


def test_the_filters_find_the_cases_they_name(desk: Desk) -> None:
    ids = [c["id"] for c in desk.report(A, B, "http://other.example/c", ref="OP-1")]
    desk.report("http://other.example/d", ref="OP-2")
    routed = {"state": "active", "route": "host_notice", "country": "DE", "asn": 24940}
    with desk.sessions() as session:
        session.execute(
            update(Case)
            .where(Case.id == ids[0])
            .values(**routed, provider="Hetzner Online", network="94.130.0.0/16")
        )
        session.execute(
            update(Case)
            .where(Case.id == ids[1])
            .values(**routed, first_notice_at=desk.clock() - dt.timedelta(hours=73))
        )
        session.commit()

    def found(query: str) -> list[int]:
        answer = desk.client.get(f"/api/cases?{query}", headers=desk.analyst)
        assert answer.status_code == 200, answer.text
        return sorted(c["id"] for c in answer.json())

    assert found("state=active") == ids[:2]
    assert found("state=new&state=active") == [*ids, ids[2] + 1]
    assert found("country=de&route=host_notice") == ids[:2]
    assert found("network=AS24940") == ids[:2]
    assert found("network=94.130.0.0/16") == ids[:1]
    assert found("provider=hetzner%20online") == ids[:1]
    assert found("ref=OP-1") == ids
    assert found("q=OTHER.example") == [ids[2], ids[2] + 1]
    assert found("q=%25") == []  # a LIKE wildcard is searched for as text
    assert found("overdue=true") == [ids[1]]
    desk.clock.advance(hours=73)  # now the never-noticed ones are late too
    assert found("overdue=true") == [*ids, ids[2] + 1]
    assert found("overdue=false&state=active") == []
    page = desk.client.get("/api/cases?limit=2&offset=1", headers=desk.analyst)
    assert [c["id"] for c in page.json()] == [ids[2], ids[1]]
    assert page.headers["x-total-count"] == "4"


def test_stats_are_the_stats_module_figures_for_the_window(desk: Desk) -> None:
    desk.report(A, B)
    answer = desk.client.get("/api/stats?since=30d", headers=desk.analyst)
    assert answer.status_code == 200
    with desk.sessions() as session:
        since = desk.clock() - dt.timedelta(days=30)
        expected = compute_stats(session, since=since, now=desk.clock()).as_dict()
    assert answer.json() == json.loads(json.dumps(expected))


def test_supervisors_add_users_whose_token_works_at_once(desk: Desk) -> None:
    added = desk.client.post(
        "/api/users", json={"name": "bob", "role": "analyst"}, headers=desk.supervisor
    )
    assert added.status_code == 201
    token = {"Authorization": f"Bearer {added.json()['token']}"}
    assert desk.client.get("/api/me", headers=token).json()["name"] == "bob"
    again = desk.client.post(
        "/api/users", json={"name": "bob", "role": "supervisor"}, headers=desk.supervisor
    )
    assert again.status_code == 409
    users = desk.client.get("/api/users", headers=desk.supervisor).json()
    assert [(u["name"], u["role"], u["can_sign_in"]) for u in users] == [
        ("al", "analyst", False),
        ("bob", "analyst", False),
        ("sue", "supervisor", True),
    ]
    own = desk.client.post("/api/users/bob/tokens", headers=token)
    assert own.status_code == 201 and own.json()["token"] != added.json()["token"]
    assert desk.client.post("/api/users/sue/tokens", headers=token).status_code == 403


def test_the_openapi_description_documents_every_operation_and_refusal(desk: Desk) -> None:
    spec = desk.client.get("/openapi.json").json()
    error = {"$ref": "#/components/schemas/ErrorBody"}
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            where = f"{method.upper()} {path}"
            assert operation.get("summary"), where
            success = [code for code in operation["responses"] if code.startswith("2")]
            assert len(success) == 1, where
            content = operation["responses"][success[0]]["content"]
            # JSON, but for the CSV export (text/csv: GET /api/cases.csv).
            assert (content.get("application/json") or content["text/csv"])["schema"], where
            for code in ("401", "403", "404", "409", "422"):
                refusal = operation["responses"][code]
                assert refusal["content"]["application/json"]["schema"] == error, (where, code)
    assert {"ErrorBody", "CaseOut", "CaseDetail", "ReportIn", "HoldIn"} <= set(
        spec["components"]["schemas"]
    )


def test_responses_keep_case_urls_out_of_referers_and_caches(desk: Desk) -> None:
    answer = desk.client.get("/api/cases", headers=desk.analyst)
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["x-content-type-options"] == "nosniff"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_takedown_serve_answers_over_http_with_a_token_from_user_add(
    tmp_path: Path, takedown_command: list[str]
) -> None:
    env = {"PATH": "/usr/bin:/bin", "TAKEDOWN_HOME": str(tmp_path)}

    def takedown(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*takedown_command, *args], env=env, capture_output=True, text=True, timeout=60
        )

    added = takedown("user", "add", "sue", "--role", "supervisor")
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip().splitlines()[-1]
    for args, problem in (
        (("user", "add", "sue", "--role", "analyst"), "exists already"),
        (("user", "add", "bob", "--role", "boss"), "invalid choice"),
    ):
        refused = takedown(*args)
        assert refused.returncode == 2 and problem in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1 and refused.stdout == ""
    port = free_port()
    server = subprocess.Popen(
        [*takedown_command, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_until_listening(base, server)
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, timeout=30) as client:
            assert client.get("/api/cases").status_code == 401
            made = client.post("/api/cases", json={"urls": [A]}, headers=headers)
            assert made.status_code == 201, made.text
            case = client.get(f"/api/cases/{made.json()[0]['id']}", headers=headers).json()
            assert (case["url"], case["events"][0]["actor"]) == (A, "sue")
            assert client.get("/openapi.json").json()["info"]["title"] == "takedown"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        output, _ = server.communicate(timeout=60)
    # uvicorn shuts down cleanly, then re-raises SIGTERM so the parent sees why it ended.
    assert server.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output


def _wait_until_listening(base: str, server: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 90  # generous: two cores shared with other test runs
    while time.monotonic() < deadline:
        assert server.poll() is None, server.communicate()[0]
        try:
            httpx.get(f"{base}/openapi.json", timeout=5)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError("takedown serve did not start listening within 90 s")


def changed_case(desk: Desk) -> int:
    """Report A and store it as a worker leaves a case whose content changed twice."""
    case_id = desk.report(A)[0]["id"]
    now = desk.clock()
    with desk.sessions() as session:
        session.execute(
            update(Case)
            .where(Case.id == case_id)
            .values(state=CaseState.NEEDS_ANALYST, changed_streak=2, due_at=now)
        )
        for n, sha in enumerate(("aa" * 32, "bb" * 32, "cc" * 32)):
            session.add(
                Check(
                    case_id=case_id,
                    at=now,
                    outcome="present" if n == 0 else "changed",
                    sha256=sha,
                    rule="other bytes, and no fingerprint to compare" if n else None,
                )
            )
        session.commit()
    return case_id


@pytest.mark.parametrize("removed", [True, False])
def test_confirm_settles_a_case_whose_content_changed(desk: Desk, removed: bool) -> None:
    case_id = changed_case(desk)
    answer = desk.client.post(
        f"/api/cases/{case_id}/confirm",
        json={"removed": removed, "reason": "a placeholder page"},
        headers=desk.analyst,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert desk.events(case_id)[-1] == ("confirmed", "al")
    if removed:
        assert (body["state"], body["removed_by"]) == ("removed", "analyst")
        assert body["removed_at"] and body["watched_until"]
    else:
        assert (body["state"], body["removed_by"]) == ("active", None)
        assert desk.case(case_id).evidence == {
            "sha256": "cc" * 32, "kind": "other", "pdq": None, "tlsh": None, "text_sha256": None
        }  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [{}, {"removed": "yes"}, {"removed": True, "extra": 1}, {"removed": None}],
    ids=["missing", "not-a-boolean", "unknown-field", "null"],
)
def test_confirm_refuses_a_bad_body_and_changes_nothing(desk: Desk, body: dict[str, Any]) -> None:
    case_id = changed_case(desk)
    before = desk.snapshot()
    answer = desk.client.post(f"/api/cases/{case_id}/confirm", json=body, headers=desk.analyst)
    assert answer.status_code == 422 and "error" in answer.json()
    assert desk.snapshot() == before


def test_confirm_is_refused_when_nothing_changed(desk: Desk) -> None:
    case_id = desk.report(A)[0]["id"]
    before = desk.snapshot()
    answer = desk.client.post(
        f"/api/cases/{case_id}/confirm", json={"removed": True}, headers=desk.analyst
    )
    assert answer.status_code == 409 and "no changed content" in answer.json()["error"]
    assert desk.snapshot() == before
    missing = desk.client.post(
        "/api/cases/999/confirm", json={"removed": True}, headers=desk.analyst
    )
    assert missing.status_code == 404


def test_the_case_page_offers_the_confirmation_and_its_buttons_settle_the_case(
    desk: Desk,
) -> None:
    case_id = changed_case(desk)
    csrf = desk.sign_in("al")
    page = desk.client.get(f"/cases/{case_id}")
    assert page.status_code == 200
    assert "The URL now serves other content." in page.text
    assert f'action="/cases/{case_id}/confirm-removed"' in page.text
    assert "other bytes, and no fingerprint to compare" in page.text  # each check's rule
    answer = desk.client.post(
        f"/cases/{case_id}/confirm-removed",
        data={"csrf_token": csrf, "reason": "a placeholder page"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    case = desk.case(case_id)
    assert (case.state, case.removed_by) == (CaseState.REMOVED, "analyst")
    assert desk.events(case_id)[-1] == ("confirmed", "al")
    again = desk.client.get(f"/cases/{case_id}")
    assert "The URL now serves other content." not in again.text
