"""Bulk actions on the case list: by ids or by the list's filter, each case as its single
action does it, a case the action does not apply to skipped and said why (issue 14)."""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from deskapp import Desk, running_desk
from sqlalchemy import select, update

from workflows.engine import bulk
from workflows.errors import BadValue
from workflows.kinds import BulkAction, CaseState, CloseReason
from workflows.store.models import Case, Check, Event

NOW = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)


# The pure parts --------------------------------------------------------------------------


def test_ids_are_taken_once_each_in_their_order() -> None:
    assert bulk.check_ids([3, 1, 3, 2, 1]) == [3, 1, 2]


@pytest.mark.parametrize("ids", [[], list(range(1, bulk.MAX_CASES + 2))], ids=["none", "too-many"])
def test_no_ids_or_too_many_are_refused_naming_ids(ids: list[int]) -> None:
    with pytest.raises(BadValue) as refused:
        bulk.check_ids(ids)
    assert refused.value.field == "ids"


@pytest.mark.parametrize(
    ("action", "fields", "field"),
    [
        ("launch", {}, "action"),
        ("close", {}, "code"),
        ("close", {"code": "spam"}, "code"),
        ("close", {"code": "other"}, "reason"),
        ("hold", {}, "until"),
        ("hold", {"until": NOW - dt.timedelta(hours=1)}, "until"),
        ("hold", {"until": NOW + dt.timedelta(days=400)}, "until"),
        ("recheck", {"code": "duplicate"}, "code"),
        ("close", {"code": "duplicate", "until": NOW + dt.timedelta(days=1)}, "until"),
        ("release", {"reason": "why not"}, "reason"),
        ("recheck", {"reason": "x" * 10_001}, "reason"),
    ],
    ids=[
        "unknown-action",
        "close-without-code",
        "close-unknown-code",
        "other-without-words",
        "hold-without-end",
        "hold-in-the-past",
        "hold-too-long",
        "code-for-recheck",
        "end-for-close",
        "reason-for-release",
        "reason-too-long",
    ],
)
def test_bad_input_for_an_action_is_refused_naming_the_field(
    action: str, fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(BadValue) as refused:
        bulk.params(action, NOW, **fields)
    assert refused.value.field == field


def test_the_params_of_each_action_are_kept_checked() -> None:
    end = NOW + dt.timedelta(days=2)
    assert bulk.params("close", NOW, code="duplicate", reason=" of 7 ") == bulk.Params(
        BulkAction.CLOSE, code=CloseReason.DUPLICATE, reason="of 7"
    )
    assert bulk.params("hold", NOW, until=end) == bulk.Params(BulkAction.HOLD, until=end)
    assert bulk.params("confirm_removed", NOW, reason="  ") == bulk.Params(
        BulkAction.CONFIRM_REMOVED
    )


@pytest.mark.parametrize(
    ("action", "done", "skipped", "line"),
    [
        (BulkAction.CLOSE, [1], [], "Closed 1 case."),
        (BulkAction.CLOSE, [1, 2], [(3, "case 3 is removed, not open")],
         "Closed 2 cases, skipped 1 (case 3 is removed, not open)."),
        (BulkAction.RECHECK, [], [(4, "no case 4")],
         "Asked a re-check of 0 cases, skipped 1 (no case 4)."),
        (BulkAction.HOLD, [], [(n, f"case {n} is closed, not open") for n in range(1, 8)],
         "Held 0 cases, skipped 7 (case 1 is closed, not open; case 2 is closed, not open; "
         "case 3 is closed, not open; case 4 is closed, not open; case 5 is closed, not open; "
         "and 2 more)."),
    ],
    ids=["one", "some-skipped", "all-skipped", "many-skipped"],
)  # fmt: skip
def test_the_summary_says_what_was_done_and_why_cases_were_skipped(
    action: BulkAction, done: list[int], skipped: list[tuple[int, str]], line: str
) -> None:
    assert bulk.Outcome(action, done, skipped).summary() == line


# The API ---------------------------------------------------------------------------------


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    with running_desk(tmp_path) as running:
        yield running


def report(desk: Desk, count: int, ref: str = "OP-1") -> list[int]:
    urls = [f"http://files.example/{ref}/{n}.jpg" for n in range(count)]
    return [c["id"] for c in desk.report(*urls, ref=ref)]


def set_state(desk: Desk, case_id: int, **values: Any) -> None:
    with desk.sessions() as session:
        session.execute(update(Case).where(Case.id == case_id).values(**values))
        session.commit()


def bulk_post(desk: Desk, body: dict[str, Any], headers: Any = None) -> Any:
    return desk.client.post("/api/cases/bulk", json=body, headers=headers or desk.supervisor)


def events_of(desk: Desk, kind: str) -> list[tuple[int, str, dict[str, Any] | None]]:
    with desk.sessions() as session:
        rows = session.execute(
            select(Event.case_id, Event.actor, Event.detail)
            .where(Event.kind == kind)
            .order_by(Event.id)
        )
        return [(case_id, actor, detail) for case_id, actor, detail in rows]


def test_a_bulk_close_by_ids_closes_each_case_and_skips_those_it_cannot(desk: Desk) -> None:
    ids = report(desk, 4)
    set_state(desk, ids[1], state=CaseState.REMOVED, open_key=None)
    body = {"action": "close", "ids": [*ids, 999], "code": "duplicate", "reason": "of OP-0"}
    answer = bulk_post(desk, body)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "action": "close",
        "selected": 5,
        "limit": bulk.MAX_CASES,
        "done": [ids[0], ids[2], ids[3]],
        "skipped": [
            {"id": ids[1], "reason": f"case {ids[1]} is removed, not open"},
            {"id": 999, "reason": "no case 999"},
        ],
    }
    assert [desk.case(i).state for i in ids] == ["closed", "removed", "closed", "closed"]
    detail = {"code": "duplicate", "reason": "of OP-0", "was": "new"}
    assert events_of(desk, "closed") == [(i, "sue", detail) for i in (ids[0], ids[2], ids[3])]


def test_a_bulk_action_by_filter_takes_every_matching_case_now(desk: Desk) -> None:
    mine, theirs = report(desk, 3, "OP-7"), report(desk, 2, "OP-8")
    answer = bulk_post(desk, {"action": "hold", "filter": {"ref": "OP-7"}, "days": 2})
    assert answer.status_code == 200, answer.text
    assert answer.json()["done"] == sorted(mine) and answer.json()["selected"] == 3
    assert {desk.case(i).state for i in mine} == {"held"}
    assert {desk.case(i).state for i in theirs} == {"new"}
    until = desk.case(mine[0]).due_at
    assert until == desk.clock() + dt.timedelta(days=2)
    states = {"action": "release", "filter": {"state": ["held"], "q": "op-7"}}
    released = bulk_post(desk, states)
    assert released.json()["done"] == sorted(mine)
    assert [actor for _, actor, _ in events_of(desk, "hold_released")] == ["sue"] * 3


def test_a_filter_matching_more_than_the_limit_is_refused_and_nothing_changes(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    report(desk, 4)
    monkeypatch.setattr(bulk, "MAX_CASES", 3)
    before = desk.snapshot()
    answer = bulk_post(desk, {"action": "recheck", "filter": {"ref": "OP-1"}})
    assert answer.status_code == 422
    assert answer.json()["field"] == "filter"
    assert answer.json()["error"] == ("filter: 4 cases match: at most 3 at once; narrow the filter")
    assert desk.snapshot() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "close", "ids": [1]}, "code"),
        ({"action": "close", "ids": [1], "code": "spam"}, "code"),
        ({"action": "close", "ids": [1], "code": "other"}, "reason"),
        ({"action": "close", "code": "duplicate"}, "ids"),
        ({"action": "close", "code": "duplicate", "ids": [1], "filter": {}}, "ids"),
        ({"action": "recheck", "ids": []}, "ids"),
        ({"action": "recheck", "ids": [0]}, "ids[0]"),
        ({"action": "recheck", "ids": ["x"]}, "ids[0]"),
        ({"action": "recheck", "filter": {"limit": 5}}, "filter.limit"),
        ({"action": "recheck", "filter": {"state": ["gone"]}}, "filter.state[0]"),
        ({"action": "recheck", "filter": {"colour": "red"}}, "filter.colour"),
        ({"action": "hold", "ids": [1]}, "until"),
        ({"action": "hold", "ids": [1], "days": 0}, "days"),
        ({"action": "hold", "ids": [1], "days": 1, "until": "2099-01-01T00:00:00Z"}, "until"),
        ({"action": "close", "ids": [1], "code": "duplicate", "days": 1}, "days"),
        ({"action": "launch", "ids": [1]}, "action"),
        ({"ids": [1]}, "action"),
        ({"action": "recheck", "ids": [1], "by": "x"}, "by"),
    ],
    ids=[
        "no-code", "unknown-code", "other-without-words", "no-selection", "ids-and-filter",
        "empty-ids", "zero-id", "text-id", "paging", "unknown-state", "unknown-filter",
        "hold-without-end", "hold-zero-days", "days-and-until", "days-for-close",
        "unknown-action", "no-action", "unknown-field",
    ],
)  # fmt: skip
def test_bad_bulk_input_is_refused_with_422_naming_the_field_and_changes_nothing(
    desk: Desk, body: dict[str, Any], field: str
) -> None:
    report(desk, 2)
    before = desk.snapshot()
    answer = bulk_post(desk, body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == field and answer.json()["error"].startswith(f"{field}: ")
    assert desk.snapshot() == before


@pytest.mark.parametrize(
    "body",
    [
        {"action": "close", "code": "duplicate"},
        {"action": "hold", "days": 1},
        {"action": "release"},
    ],
    ids=["close", "hold", "release"],
)
def test_analysts_are_refused_the_supervisors_bulk_actions_with_403(
    desk: Desk, body: dict[str, Any]
) -> None:
    ids = report(desk, 2)
    before = desk.snapshot()
    answer = bulk_post(desk, {**body, "ids": ids}, headers=desk.analyst)
    assert answer.status_code == 403 and "supervisor" in answer.json()["error"]
    assert desk.snapshot() == before


def test_an_analyst_rechecks_in_bulk_each_as_an_event_of_theirs(desk: Desk) -> None:
    ids = report(desk, 3)
    set_state(desk, ids[2], state=CaseState.HELD, due_at=desk.clock() + dt.timedelta(days=1))
    answer = bulk_post(desk, {"action": "recheck", "ids": ids, "reason": "host says gone"},
                       headers=desk.analyst)  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.json()["done"] == ids[:2]
    (skipped,) = answer.json()["skipped"]
    assert skipped["id"] == ids[2] and "release it first" in skipped["reason"]
    assert [(i, actor) for i, actor, _ in events_of(desk, "recheck_requested")] == [
        (ids[0], "al"),
        (ids[1], "al"),
    ]


def changed(desk: Desk, case_id: int) -> None:
    """Store the case as one whose content changed: an analyst must confirm."""
    set_state(desk, case_id, state=CaseState.NEEDS_ANALYST, changed_streak=2)
    with desk.sessions() as session:
        session.add(Check(case_id=case_id, at=desk.clock(), outcome="changed", sha256="ab" * 32))
        session.commit()


def test_confirming_in_bulk_settles_changed_cases_and_skips_the_others(desk: Desk) -> None:
    ids = report(desk, 3)
    changed(desk, ids[0])
    changed(desk, ids[1])
    removed = bulk_post(desk, {"action": "confirm_removed", "ids": ids}, headers=desk.analyst)
    assert removed.status_code == 200, removed.text
    assert removed.json()["done"] == ids[:2]
    assert removed.json()["skipped"] == [
        {"id": ids[2], "reason": f"case {ids[2]} has no changed content to confirm"}
    ]
    case = desk.case(ids[0])
    assert (case.state, case.removed_by) == ("removed", "analyst")
    changed(desk, ids[2])
    present = bulk_post(desk, {"action": "confirm_present", "ids": [ids[2]]}, headers=desk.analyst)
    assert present.json()["done"] == [ids[2]] and desk.case(ids[2]).state == "active"


def test_a_case_changed_by_someone_else_meanwhile_is_done_on_its_new_state(desk: Desk) -> None:
    # Each case is read afresh and written by compare-and-set: a hold put on by someone
    # between the request's selection and its turn is seen, not overwritten.
    ids = report(desk, 2)
    set_state(desk, ids[1], version=Case.version + 1, state=CaseState.CLOSED, open_key=None)
    answer = bulk_post(desk, {"action": "hold", "ids": ids, "days": 1})
    assert answer.json()["done"] == [ids[0]]
    assert answer.json()["skipped"][0]["reason"] == f"case {ids[1]} is closed, not open"
    assert desk.case(ids[1]).state == "closed"


def test_the_bulk_endpoint_is_described_with_its_actions(desk: Desk) -> None:
    spec = desk.client.get("/openapi.json").json()
    operation = spec["paths"]["/api/cases/bulk"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    name = schema["$ref"].rpartition("/")[2]
    action = spec["components"]["schemas"][name]["properties"]["action"]
    found = spec["components"]["schemas"][action["$ref"].rpartition("/")[2]]["enum"]
    assert sorted(found) == sorted(BulkAction)


# The desk's bulk bar -------------------------------------------------------------------


def bar(desk: Desk, csrf: str, **fields: Any) -> Any:
    return desk.client.post(
        "/cases/bulk", data={"csrf_token": csrf, **fields}, follow_redirects=False
    )


def flash_of(desk: Desk, location: str) -> str:
    """Return the flash lines the list shows at LOCATION."""
    page = desk.client.get(location).text
    return " | ".join(
        html.unescape(line.split(">", 1)[1].split("</div>", 1)[0])
        for line in page.splitlines()
        if line.startswith('<div class="flash ')
    )


def test_the_list_shows_the_bulk_bar_and_a_box_per_case(desk: Desk) -> None:
    ids = report(desk, 2)
    desk.sign_in("al")
    page = desk.client.get("/?ref=OP-1").text
    for case_id in ids:
        assert f'<input type="checkbox" name="ids" value="{case_id}" form="bulk"' in page
    assert 'action="/cases/bulk"' in page and 'name="query" value="ref=OP-1"' in page
    assert 'all <span id="bulk-total">2</span> matching' in page
    assert 'src="/static/bulk.js"' in page
    assert 'value="recheck"' in page and 'value="close"' not in page  # an analyst's actions
    desk.sign_in("sue")
    page = desk.client.get("/").text
    assert 'value="close"' in page and 'value="law_enforcement"' in page


def test_a_bulk_close_from_the_list_redirects_back_with_what_was_done(desk: Desk) -> None:
    ids = report(desk, 3)
    set_state(desk, ids[0], state=CaseState.REMOVED, open_key=None)
    csrf = desk.sign_in("sue")
    fields = {"action": "close", "ids": ids, "code": "not_illegal", "reason": "adult",
              "confirm": "yes", "query": "ref=OP-1&offset=100", "days": "7"}  # fmt: skip
    answer = bar(desk, csrf, **fields)
    assert answer.status_code == 303
    location = answer.headers["location"]
    assert urlsplit(location).path == "/" and parse_qs(urlsplit(location).query)["ref"] == ["OP-1"]
    assert flash_of(desk, location) == (
        f"Closed 2 cases, skipped 1 (case {ids[0]} is removed, not open)."
    )
    assert [desk.case(i).state for i in ids] == ["removed", "closed", "closed"]
    # The line is signed for this session: the same words in a link made elsewhere show nothing.
    forged = location.replace("Closed+2", "Closed+20")
    assert flash_of(desk, forged) == ""


def test_the_bar_acts_on_all_cases_matching_the_lists_filter(desk: Desk) -> None:
    mine, theirs = report(desk, 3, "OP-7"), report(desk, 1, "OP-8")
    csrf = desk.sign_in("sue")
    fields = {"action": "hold", "scope": "all", "query": "ref=OP-7", "days": "3",
              "reason": "police", "confirm": "yes"}  # fmt: skip
    answer = bar(desk, csrf, **fields)
    assert flash_of(desk, answer.headers["location"]) == "Held 3 cases."
    assert [desk.case(i).state for i in [*mine, *theirs]] == ["held", "held", "held", "new"]


@pytest.mark.parametrize(
    ("who", "fields", "message"),
    [
        ("sue", {"action": "close", "code": "duplicate"}, "confirm: tick “I confirm”"),
        ("sue", {"action": "close", "confirm": "yes"}, "code: say why the case is closed"),
        ("sue", {"action": "hold", "days": "lots", "confirm": "yes"},
         "days: 'lots' is not a number of days"),
        ("sue", {"action": "recheck", "confirm": "yes", "ids": []},
         "ids: select at least one case"),
        ("al", {"action": "close", "code": "duplicate", "confirm": "yes"},
         "action: only a supervisor may close cases; al is not"),
    ],
    ids=["unconfirmed", "no-reason", "bad-days", "nothing-ticked", "analyst-closes"],
)  # fmt: skip
def test_a_refused_bulk_action_changes_nothing_and_says_why(
    desk: Desk, who: str, fields: dict[str, Any], message: str
) -> None:
    ids = report(desk, 2)
    csrf = desk.sign_in(who)
    before = desk.snapshot()
    answer = bar(desk, csrf, **{"ids": ids, **fields})
    assert answer.status_code == 303
    assert flash_of(desk, answer.headers["location"]).startswith(f"Nothing done: {message}")
    assert desk.snapshot() == before


def test_the_bulk_bar_needs_the_sessions_csrf_token(desk: Desk) -> None:
    ids = report(desk, 1)
    desk.sign_in("sue")
    before = desk.snapshot()
    fields = {"action": "recheck", "ids": ids, "confirm": "yes"}
    answer = desk.client.post("/cases/bulk", data=fields, follow_redirects=False)
    assert answer.status_code == 403
    assert desk.snapshot() == before
