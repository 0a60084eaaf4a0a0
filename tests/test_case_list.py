"""The case list, live and readable: its live rows, counters, words, URLs, overdue and CSV.

In-process (tests/deskapp.py) with a hand clock; the browser test of the same list is
tests/browser/test_live_list.py.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deskapp import Desk, running_desk
from sqlalchemy import update

from workflows.core.routing import Route
from workflows.core.spreadsheet import FORMULA_STARTS
from workflows.kinds import CaseState
from workflows.store.models import Case
from workflows.web import api_export
from workflows.web.overview import overview
from workflows.web.render import environment
from workflows.web.words import (
    LONGEST_SHOWN,
    ROUTE_WORDS,
    STATE_WORDS,
    route_words,
    wrap_host,
    wrap_url,
)

HOSTILE = 'http://x.test/<script>/"a&b'
POLICY = Path(__file__).resolve().parents[1] / "workflows" / "data" / "demo-policy.toml"


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    """Run the app on the demo policy (overdue_after = 30s) with a hand clock."""
    with running_desk(tmp_path, TAKEDOWN_POLICY=str(POLICY)) as running:
        yield running


def set_case(desk: Desk, case_id: int, **values: Any) -> None:
    """Change a stored case as the engine would have."""
    with desk.sessions() as session:
        session.execute(update(Case).where(Case.id == case_id).values(**values))
        session.commit()


def rows(desk: Desk, query: str) -> dict[str, Any]:
    """Call the live endpoint as the list's script does; return its JSON."""
    answer = desk.client.get(f"/cases/rows?{query}")
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    found: dict[str, Any] = answer.json()
    return found


# -- words ----------------------------------------------------------------------------


def test_every_state_and_route_reads_as_words() -> None:
    assert set(STATE_WORDS) == {str(s) for s in CaseState}
    assert set(ROUTE_WORDS) == {str(r) for r in Route}
    assert all("_" not in words for words in [*STATE_WORDS.values(), *ROUTE_WORDS.values()])


@pytest.mark.parametrize(
    ("route", "words"),
    [
        ("no_partner", "notice the host (no partner hotline)"),
        ("hotline_referral", "refer to the partner hotline"),
        ("host_notice", "notice the host"),
        (None, "–"),
    ],
)
def test_routes_read_as_what_happens(route: str | None, words: str) -> None:
    assert route_words(route) == words


def test_the_list_its_filters_and_the_case_page_use_the_same_words(desk: Desk) -> None:
    case = desk.report("http://a.test/1")[0]["id"]
    set_case(desk, case, state="needs_analyst", route="no_partner", country="US")
    desk.sign_in("al")
    listed = desk.client.get("/").text
    assert "needs an analyst</span>" in listed and "needs_analyst</span>" not in listed
    assert '<td class="muted route">notice the host (no partner hotline)</td>' in listed
    assert '<option value="no_partner" >notice the host (no partner hotline)</option>' in listed
    page = desk.client.get(f"/cases/{case}").text
    assert ">needs an analyst</span>" in page
    assert "<td>notice the host (no partner hotline)</td>" in page
    live = rows(desk, f"shown={case}")["updated"][0]["html"]
    assert "needs an analyst" in live and "notice the host (no partner hotline)" in live


def test_every_time_on_the_case_page_says_its_zone(desk: Desk) -> None:
    case = desk.report("http://a.test/1")[0]["id"]
    desk.sign_in("al")
    page = desk.client.get(f"/cases/{case}").text
    times = re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d( UTC)?", page)
    assert times and all(zone == " UTC" for zone in times)
    listed = desk.client.get("/").text
    assert re.search(r'title="opened \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"', listed)


# -- URLs -----------------------------------------------------------------------------


def test_a_hostile_url_is_escaped_text_that_wraps_at_its_separators() -> None:
    pieces = ["http:/", "/", "x.test/", "&lt;script&gt;/", "&#34;a&amp;", "b"]
    assert str(wrap_url(HOSTILE)) == "<wbr>".join(f'<span class="seg">{p}</span>' for p in pieces)
    row = (
        environment()
        .get_template("_case_row.html")
        .module.case_row(  # type: ignore[attr-defined]
            {"id": 1, "state": "new", "url": HOSTILE, "host": "x.test", "provider": None}
            | {"route": None, "country": None, "notices": [], "age": "1s", "long": False}
            | {"opened_at": "2026-12-07T14:05:00Z", "removed_at": None, "closed_at": None}
            | {"reference": None}
        )
    )
    assert "<script>" not in row and '"a&b' not in row
    assert 'title="http://x.test/&lt;script&gt;/&#34;a&amp;b"' in row
    assert "href=" not in row.replace('href="/cases/1"', "")  # the case is a link, never the URL


def test_a_very_long_url_keeps_its_head_and_its_tail_visible() -> None:
    url = "http://files.example.test/" + "a" * 400 + "/the-distinguishing-tail.jpg?id=77"
    shown = re.sub(r"<[^>]+>", "", str(wrap_url(url)))
    assert len(shown) < LONGEST_SHOWN
    assert shown.startswith("http://files.example.test/")
    assert shown.endswith("/the-distinguishing-tail.jpg?id=77") and " … " in shown


def segments(markup: str) -> list[str]:
    return re.findall(r'<span class="seg">([^<]*)</span>', markup)


def test_a_url_wraps_only_after_separators_and_a_host_after_its_dots() -> None:
    url = str(wrap_url("https://h.test/path/to/file-1.jpg?a=1&b=2"))
    assert segments(url) == [
        "https:/",
        "/",
        "h.test/",
        "path/",
        "to/",
        "file-1.jpg?",
        "a=",
        "1&amp;",
        "b=",
        "2",
    ]
    assert segments(str(wrap_host("images.quick-host.test"))) == ["images.", "quick-host.", "test"]


# -- live rows ------------------------------------------------------------------------


def test_live_rows_bring_the_cases_of_the_filter_that_the_page_does_not_show(desk: Desk) -> None:
    first = desk.report("http://a.test/1", ref="OP-1")[0]["id"]
    desk.report("http://b.test/2", ref="OP-2")
    desk.sign_in("al")
    assert [r["id"] for r in rows(desk, "ref=OP-1")["rows"]] == [first]
    assert rows(desk, f"ref=OP-1&shown={first}")["rows"] == []
    later = [c["id"] for c in desk.report("http://c.test/3", "http://c.test/4", ref="OP-1")]
    desk.report("http://d.test/5", ref="OP-2")
    found = rows(desk, f"ref=OP-1&shown={first}")
    assert [r["id"] for r in found["rows"]] == later[::-1]  # newest first
    assert found["total"] == 3 and not found["more"]
    assert all(r["html"].startswith(f'<tr data-id="{r["id"]}"') for r in found["rows"])
    assert rows(desk, f"ref=OP-1&shown={first}&offset=1")["rows"] == []  # not the first page
    capped = rows(desk, f"ref=OP-1&shown={first}&limit=2")
    assert [r["id"] for r in capped["rows"]] == later[::-1] and capped["more"]


def test_a_case_that_comes_to_match_the_filter_appears_in_its_place(desk: Desk) -> None:
    ids = [c["id"] for c in desk.report("http://a.test/1", "http://a.test/2", "http://a.test/3")]
    set_case(desk, ids[0], state="needs_analyst")
    set_case(desk, ids[2], state="needs_analyst")
    desk.sign_in("al")
    shown = f"state=needs_analyst&shown={ids[2]},{ids[0]}"
    assert rows(desk, shown)["rows"] == []
    set_case(desk, ids[1], state="needs_analyst")  # e.g. every notice to it was refused
    assert [r["id"] for r in rows(desk, shown)["rows"]] == [ids[1]]


def test_live_rows_refresh_the_shown_rows_whatever_the_filter(desk: Desk) -> None:
    case = desk.report("http://a.test/1")[0]["id"]
    desk.sign_in("al")
    set_case(desk, case, state="removed", removed_at=desk.clock())
    found = rows(desk, f"state=new&shown={case}")
    assert found["rows"] == [] and found["total"] == 0
    (row,) = found["updated"]
    assert row["id"] == case and 'data-state="removed"' in row["html"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("shown=-1", "shown"),
        ("shown=1e3", "shown"),
        ("shown=99999999999", "shown"),
        ("shown=1,x", "shown"),
        ("shown=" + ",".join(["1"] * 501), "shown"),
        ("country=Narnia", "country"),
        ("limit=0", "limit"),
        ("state=gone", "state"),
    ],
)
def test_live_rows_refuse_bad_input_as_json(desk: Desk, query: str, field: str) -> None:
    desk.sign_in("al")
    answer = desk.client.get(f"/cases/rows?{query}")
    assert answer.status_code == 422
    assert answer.json()["field"].startswith(field), answer.json()


def test_live_rows_need_a_session(desk: Desk) -> None:
    answer = desk.client.get("/cases/rows", follow_redirects=False)
    assert (answer.status_code, answer.headers["location"]) == (303, "/login")


# -- counters and the still-online panel ----------------------------------------------


def seed_online(desk: Desk, providers: int) -> list[int]:
    """Report a case per provider (two for the first), make them active; return the ids."""
    urls = [f"http://p{n}.test/x" for n in range(providers)] + ["http://p0.test/y"]
    ids = [c["id"] for c in desk.report(*urls)]
    for n, case in enumerate(ids):
        noticed = desk.clock() - dt.timedelta(minutes=n + 1)
        set_case(
            desk, case, state="active", provider=f"AS-{n % providers}", first_notice_at=noticed
        )
    return ids


def test_counters_and_still_online_come_from_one_snapshot_and_agree(desk: Desk) -> None:
    seed_online(desk, providers=11)
    closed = desk.report("http://gone.test/1")[0]["id"]
    set_case(desk, closed, state="closed", closed_at=desk.clock())
    with desk.sessions() as session:
        found = overview(session, desk.clock(), 30.0)
    counters = {c["state"]: c["value"] for c in found.counts}
    assert counters["active"] == 12 == found.online_total
    assert sum(p["online"] for p in found.online) + found.rest["online"] == 12
    assert (len(found.online), found.rest["providers"]) == (8, 3)
    assert found.online[0]["provider"] == "AS-0" and found.online[0]["online"] == 2
    assert counters["closed"] == 1 and counters["overdue"] == 12  # noticed over 30s ago


def test_nothing_online_and_a_zero_counter_show_together(desk: Desk) -> None:
    desk.report("http://a.test/1")
    desk.sign_in("al")
    live = rows(desk, "")
    assert "Nothing is online right now." in live["online"]
    assert '<b data-count="active">0</b>' in live["counts"]


def test_the_page_and_its_live_update_show_the_same_counters(desk: Desk) -> None:
    seed_online(desk, providers=2)
    desk.sign_in("al")
    page = desk.client.get("/").text
    live = rows(desk, "")
    assert live["counts"].strip() in page and live["online"].strip() in page
    assert '<b data-count="active">3</b>' in live["counts"]
    assert 'data-online="3"' in live["online"]
    desk.report("http://new.test/1")  # someone else reports: the next poll counts it
    assert '<b data-count="new">1</b>' in rows(desk, "")["counts"]


# -- overdue follows the policy -------------------------------------------------------


def test_overdue_follows_the_policys_overdue_after(desk: Desk) -> None:
    ids = [c["id"] for c in desk.report("http://a.test/1", "http://b.test/2", "http://c.test/3")]
    set_case(desk, ids[0], state="active", first_notice_at=desk.clock())
    set_case(desk, ids[1], state="held", held_from="active", first_notice_at=desk.clock())
    desk.sign_in("al")

    def overdue() -> list[int]:
        answer = desk.client.get("/api/cases?overdue=true", headers=desk.analyst)
        return sorted(c["id"] for c in answer.json())

    assert overdue() == []
    desk.clock.advance(seconds=29)
    assert overdue() == []
    desk.clock.advance(seconds=1)  # 30s: the demo policy's overdue_after
    assert overdue() == [ids[0], ids[2]]  # never a held case; the un-noticed from its report
    page = desk.client.get("/").text
    assert "overdue (30s after notice)" in page and "72 h" not in page
    assert '<b data-count="overdue">2</b>' in page


def test_the_shipped_policy_labels_overdue_with_its_own_duration(tmp_path: Path) -> None:
    with running_desk(tmp_path) as shipped:
        shipped.sign_in("al")
        assert "overdue (3d after notice)" in shipped.client.get("/").text


# -- CSV export -----------------------------------------------------------------------


def export(desk: Desk, query: str = "") -> list[dict[str, str]]:
    answer = desk.client.get(f"/api/cases.csv?{query}", headers=desk.analyst)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert answer.headers["content-disposition"].startswith('attachment; filename="cases-')
    return list(csv.DictReader(io.StringIO(answer.text)))


def test_the_export_carries_the_lists_columns_and_its_filter(desk: Desk) -> None:
    keep = desk.report("http://a.test/1?x=1", ref="OP-1")[0]["id"]
    desk.report("http://b.test/2", ref="OP-2")
    set_case(desk, keep, state="removed", route="no_partner", country="US", provider="Hoster")
    set_case(desk, keep, removed_at=desk.clock() + dt.timedelta(hours=2))
    (row,) = export(desk, "ref=OP-1")
    assert list(row) == list(api_export.COLUMNS)
    assert row["case"] == str(keep) and row["url"] == "http://a.test/1?x=1"
    assert (row["state"], row["route"]) == ("removed", "notice the host (no partner hotline)")
    assert row["open for"] == "removed in 2.0h" and row["notices"] == "0"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row["opened_at"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row["removed_at"])
    assert len(export(desk)) == 2


def test_the_export_neutralises_formula_cells(desk: Desk) -> None:
    case = desk.report("http://a.test/1", ref="=HYPERLINK(1)")[0]["id"]
    set_case(desk, case, provider="+cmd|' /C calc'!A0")
    (row,) = export(desk)
    assert row["reference"] == "'=HYPERLINK(1)" and row["provider"] == "'+cmd|' /C calc'!A0"
    assert not any(value.startswith(FORMULA_STARTS) for value in row.values())


def test_the_list_links_its_export_with_its_filters_but_not_its_page(desk: Desk) -> None:
    desk.sign_in("al")
    page = desk.client.get("/?ref=OP-1&state=active&state=new&limit=10&offset=10").text
    assert 'href="/api/cases.csv?ref=OP-1&amp;state=active&amp;state=new"' in page


def test_the_export_refuses_a_bad_filter_and_too_many_cases(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = desk.client.get("/api/cases.csv?country=Narnia", headers=desk.analyst)
    assert bad.status_code == 422 and bad.json()["field"] == "country"
    paged = desk.client.get("/api/cases.csv?limit=10", headers=desk.analyst)
    assert paged.status_code == 422  # every matching case, never a page of them
    desk.report("http://a.test/1", "http://a.test/2")
    monkeypatch.setattr(api_export, "MAX_ROWS", 1)
    many = desk.client.get("/api/cases.csv", headers=desk.analyst)
    assert many.status_code == 422 and "2 cases match" in many.json()["error"]
    assert desk.client.get("/api/cases.csv").status_code == 401
