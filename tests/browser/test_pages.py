"""The desk's pages in-process (no browser): refusals, forms, filters, escaping, headers.

The browser tests follow a newcomer's path; these pin the rules a person would not see:
every refusal's status and message, that nothing is stored when a form is refused, and
that a reported URL only ever reaches the HTML as escaped text.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from deskapp import PASSWORD, Desk, running_desk

LOGIN_TOKEN = re.compile(r'name="login_token" value="([^"]+)"')
NASTY = 'http://nasty.test/a"><img/src=x/onerror=alert(1)><b>bold</b>'


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    """Run the app in-process on SQLite, with a supervisor (sue) and an analyst (al)."""
    with running_desk(tmp_path) as running:
        yield running


def form(desk: Desk, path: str, csrf: str, **fields: str) -> tuple[int, str]:
    """Post a page's form with its CSRF token; return (status, where it redirects or body)."""
    answer = desk.client.post(path, data={"csrf_token": csrf, **fields}, follow_redirects=False)
    return answer.status_code, answer.headers.get("location", answer.text)


@pytest.mark.parametrize("path", ["/", "/report", "/stats", "/cases/1"])
def test_pages_send_whoever_is_not_signed_in_to_the_sign_in_page(desk: Desk, path: str) -> None:
    answer = desk.client.get(path, follow_redirects=False)
    assert (answer.status_code, answer.headers["location"]) == (303, "/login")


def test_sign_in_needs_the_forms_own_token_then_sets_a_strict_cookie(desk: Desk) -> None:
    fields = {"name": "sue", "password": PASSWORD}
    forged = desk.client.post("/login", data={**fields, "login_token": "x" * 32})
    assert forged.status_code == 403 and "takedown_session" not in forged.cookies
    page = desk.client.get("/login")
    token = LOGIN_TOKEN.search(page.text)
    assert token is not None
    wrong = desk.client.post(
        "/login", data={**fields, "password": "wrong" * 4, "login_token": token.group(1)}
    )
    assert wrong.status_code == 401 and "Wrong name or password." in wrong.text
    token = LOGIN_TOKEN.search(desk.client.get("/login").text)
    assert token is not None
    signed = desk.client.post(
        "/login", data={**fields, "login_token": token.group(1)}, follow_redirects=False
    )
    assert (signed.status_code, signed.headers["location"]) == (303, "/")
    cookie = next(h for h in signed.headers.get_list("set-cookie") if "takedown_session=" in h)
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert desk.client.get("/", follow_redirects=False).status_code == 200


def test_an_analyst_cannot_close_from_the_case_page(desk: Desk) -> None:
    case = desk.report("http://a.test/1")[0]["id"]
    csrf = desk.sign_in("al")
    page = desk.client.get(f"/cases/{case}")
    assert "Close case" not in page.text and "Add note" in page.text
    before = desk.snapshot()
    status, body = form(desk, f"/cases/{case}/close", csrf, reason="no")
    assert status == 403 and "Only a supervisor may close a case" in body
    assert desk.snapshot() == before


def test_a_supervisor_holds_releases_closes_and_reopens_from_the_case_page(desk: Desk) -> None:
    case = desk.report("http://a.test/1")[0]["id"]
    csrf = desk.sign_in("sue")
    assert form(desk, f"/cases/{case}/hold", csrf, days="2", reason="police") == (
        303,
        f"/cases/{case}",
    )
    held = desk.case(case)
    assert held.state == "held" and held.due_at == desk.clock() + dt.timedelta(days=2)
    assert "held until" in desk.client.get(f"/cases/{case}").text
    closing = {"code": "duplicate", "confirm": "yes"}
    for action, state in (("release", "new"), ("close", "closed"), ("reopen", "new")):
        assert form(desk, f"/cases/{case}/{action}", csrf, **closing)[0] == 303
        assert desk.case(case).state == state
    kinds = [kind for kind, actor in desk.events(case) if actor == "sue"]
    assert kinds == ["held", "hold_released", "closed", "reopened"]


@pytest.mark.parametrize(
    ("action", "fields", "status", "message"),
    [
        pytest.param(
            "hold", {"days": "lots"}, 422, "days: &#39;lots&#39; is not a number", id="days"
        ),
        pytest.param("hold", {"days": "400"}, 422, "days: between 0 and 365", id="too-long"),
        pytest.param("notes", {"text": "   "}, 422, "text: the note is empty", id="empty-note"),
        pytest.param("reopen", {}, 409, "is new, not closed or removed", id="reopen-open"),
        pytest.param("launch", {}, 404, "no action &#39;launch&#39;", id="unknown-action"),
    ],
)
def test_a_refused_action_shows_the_case_again_with_why_and_changes_nothing(
    desk: Desk, action: str, fields: dict[str, str], status: int, message: str
) -> None:
    case = desk.report("http://a.test/1")[0]["id"]
    csrf = desk.sign_in("sue")
    before = desk.snapshot()
    answer = form(desk, f"/cases/{case}/{action}", csrf, **fields)
    assert answer[0] == status and message in answer[1]
    assert desk.snapshot() == before


def test_the_report_page_names_every_bad_line_and_stores_nothing(desk: Desk) -> None:
    csrf = desk.sign_in("al")
    before = desk.snapshot()
    urls = "http://ok.test/1\n# a comment\nftp://bad.test/\n\nhttp://x y.test/\n"
    status, body = form(desk, "/report", csrf, urls=urls, ref="R" * 201)
    assert status == 422
    assert (
        "line 3: scheme &#39;ftp&#39;" in body and "line 5: " in body and "ref: at most 200" in body
    )
    assert "ftp://bad.test/" in body  # the pasted text is kept for fixing
    assert desk.snapshot() == before
    status, where = form(desk, "/report", csrf, urls="http://ok.test/1\nhttp://ok.test/1#x")
    assert (status, where) == (303, "/?reported=2&joined=1")
    assert "Reported 2 URLs: 1 new case, 1 joined" in desk.client.get(where).text


def test_reported_urls_reach_the_html_only_as_escaped_text(desk: Desk) -> None:
    case = desk.report(NASTY)[0]["id"]
    desk.sign_in("al")
    for path in ("/", f"/cases/{case}", "/?q=nasty"):
        page = desk.client.get(path)
        assert "<img" not in page.text and "<b>bold" not in page.text
        assert "nasty.test/a&#34;&gt;&lt;img/src=x/onerror=alert(1)&gt;" in page.text
        # No link or source leaves the desk (its own links may carry the search text).
        assert not re.search(r'(href|src)="(?!/)[^"]*nasty', page.text)
        assert not re.search(r'(href|src)="/[^"]*nasty.test', page.text)
        assert "script-src 'self'" in page.headers["content-security-policy"]


def test_the_case_list_filters_and_counts(desk: Desk) -> None:
    first, second = (c["id"] for c in desk.report("http://a.test/1", "http://b.test/2", ref="R1"))
    csrf = desk.sign_in("sue")
    form(desk, f"/cases/{second}/close", csrf, code="duplicate", confirm="yes")
    closed = desk.client.get("/?state=closed").text
    assert f'data-id="{second}"' in closed and f'data-id="{first}"' not in closed
    assert 'data-live="/cases/rows?state=closed"' in closed
    assert f'data-id="{first}"' in desk.client.get("/?q=a.test&ref=R1").text
    bad = desk.client.get("/?country=Narnia")
    assert bad.status_code == 422 and "country: String should match pattern" in bad.text
    assert f'data-id="{first}"' in bad.text  # every case, as the message says
    one = desk.client.get("/?limit=1")
    assert one.text.count("<tr data-id=") == 1 and "older →" in one.text


def test_the_stats_page_takes_a_period_and_refuses_a_bad_one(desk: Desk) -> None:
    desk.report("http://a.test/1")
    desk.sign_in("al")
    page = desk.client.get("/stats?since=7d")
    assert page.status_code == 200 and "Slowest providers" in page.text
    assert "<b>7 days</b>" in page.text
    bad = desk.client.get("/stats?since=soon")
    assert bad.status_code == 422 and "--since: &#39;soon&#39; is neither" in bad.text


def test_an_unknown_case_is_a_404_page(desk: Desk) -> None:
    desk.sign_in("al")
    answer = desk.client.get("/cases/999")
    assert answer.status_code == 404 and "No case 999" in answer.text


def test_signing_out_ends_the_session(desk: Desk) -> None:
    csrf = desk.sign_in("al")
    assert form(desk, "/logout", "wrong")[0] == 403  # no other site can sign us out
    assert form(desk, "/logout", csrf) == (303, "/login")
    assert desk.client.get("/", follow_redirects=False).headers["location"] == "/login"


def test_an_uncertain_notice_warns_and_only_supervisors_get_its_buttons(desk: Desk) -> None:
    case = desk.report("http://a.test/1")[0]["id"]
    notice = desk.notice(case)
    action = f"/cases/{case}/notices/{notice}/resolve"
    csrf = desk.sign_in("al")
    page = desk.client.get(f"/cases/{case}").text
    assert 'id="uncertain-warning"' in page and "Delivery uncertain" in page
    assert action not in page and "A supervisor decides whether it arrived" in page
    before = desk.snapshot()
    status, body = form(desk, action, csrf, outcome="sent")
    assert status == 403 and "Only a supervisor may settle an uncertain notice" in body
    assert desk.snapshot() == before
    desk.sign_in("sue")
    page = desk.client.get(f"/cases/{case}").text
    assert f'action="{action}"' in page
    assert 'name="outcome" value="sent"' in page and 'name="outcome" value="resend"' in page


@pytest.mark.parametrize(("outcome", "status"), [("sent", "sent"), ("resend", "pending")])
def test_a_supervisor_settles_an_uncertain_notice_from_the_case_page(
    desk: Desk, outcome: str, status: str
) -> None:
    case = desk.report("http://a.test/1")[0]["id"]
    notice = desk.notice(case)
    csrf = desk.sign_in("sue")
    action = f"/cases/{case}/notices/{notice}/resolve"
    assert form(desk, action, csrf, outcome=outcome, reason="checked the relay's log") == (
        303,
        f"/cases/{case}#notice-{notice}",
    )
    assert desk.stored_notice(notice).status == status
    page = desk.client.get(f"/cases/{case}").text
    assert "uncertain-warning" not in page and action not in page
    assert "as decided by a supervisor" in page and "checked the relay&#39;s log" in page
    again = form(desk, action, csrf, outcome=outcome)
    assert again[0] == 409 and f"notice {notice} is {status}, not uncertain" in again[1]


@pytest.mark.parametrize(
    ("where", "fields", "status", "message"),
    [
        pytest.param("other", {"outcome": "sent"}, 404, "lists no notice", id="not-its-notice"),
        pytest.param("own", {"outcome": "maybe"}, 422, "outcome: &#39;maybe&#39; is not", id="bad"),
        pytest.param("own", {}, 422, "outcome: &#39;&#39; is not one of sent, resend", id="none"),
    ],
)
def test_a_refused_decision_shows_the_case_again_with_why(
    desk: Desk, where: str, fields: dict[str, str], status: int, message: str
) -> None:
    case, other = (c["id"] for c in desk.report("http://a.test/1", "http://b.test/2"))
    notice = desk.notice(case)
    csrf = desk.sign_in("sue")
    before = desk.snapshot()
    shown = case if where == "own" else other
    answer = form(desk, f"/cases/{shown}/notices/{notice}/resolve", csrf, **fields)
    assert answer[0] == status and message in answer[1]
    assert form(desk, f"/cases/{case}/notices/{notice}/resolve", "forged", outcome="sent")[0] == 403
    assert desk.snapshot() == before


def test_the_case_list_counts_uncertain_notices_and_links_to_their_cases(desk: Desk) -> None:
    case = desk.report("http://a.test/1")[0]["id"]
    desk.sign_in("al")
    assert 'data-count="uncertain"' not in desk.client.get("/").text  # none: no count shown
    notice = desk.notice(case)
    page = desk.client.get("/").text
    assert '<b data-count="uncertain">1</b><span>notice uncertain</span>' in page
    assert f'href="/cases/{case}#notice-{notice}"' in page
