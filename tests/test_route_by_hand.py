"""Routing by hand: a case that needs an analyst gets its route, country and recipients
from the API or its page, and its workflow starts at once (issue 14)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deskapp import Desk, running_desk
from sqlalchemy import select

from workflows.config.hotlines import load_hotlines
from workflows.kinds import CaseState
from workflows.store.models import Event, NoticeItem

A = "http://nowhere.example/a.jpg"
DESK = "abuse@host.example"
DATA = Path(__file__).parent / "data"


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    with running_desk(tmp_path) as running:
        yield running


def stuck_case(desk: Desk, **values: Any) -> int:
    """Report A as a case that needs an analyst (no abuse contact), traced once."""
    return desk.needing_analyst(A, **{"trace_attempts": 1, **values})


def route(desk: Desk, case_id: int, body: dict[str, Any], headers: Any = None) -> Any:
    return desk.client.post(
        f"/api/cases/{case_id}/route", json=body, headers=headers or desk.analyst
    )


def routed_event(desk: Desk, case_id: int) -> Event:
    with desk.sessions() as session:
        return session.scalars(
            select(Event).where(Event.case_id == case_id).order_by(Event.id.desc()).limit(1)
        ).one()


def test_routing_by_hand_starts_the_workflow_with_the_analysts_recipients(desk: Desk) -> None:
    case_id = stuck_case(desk)
    desk.clock.advance(minutes=5)
    body = {"route": "host_notice", "country": "GB", "recipients": [DESK, "ABUSE@host.example"]}
    answer = route(desk, case_id, body)
    assert answer.status_code == 200, answer.text
    shown = answer.json()
    assert (shown["state"], shown["route"], shown["country"]) == ("active", "host_notice", "GB")
    assert shown["abuse"] == [DESK]  # one address once, whatever its case
    case, now = desk.case(case_id), desk.clock()
    assert (case.routed_at, case.steps_done, case.recipients) == (now, 0, DESK)
    assert case.step_due_at == now and case.due_at == now and case.last_error is None
    assert case.routed_at >= case.opened_at
    event = routed_event(desk, case_id)
    assert (event.kind, event.actor) == ("routed", "al")
    assert event.detail is not None
    assert event.detail["abuse_source"] == "analyst" and event.detail["by_hand"] is True


def test_a_case_with_refused_notices_is_routed_in_a_new_round(desk: Desk) -> None:
    case_id = stuck_case(desk)
    desk.notice(case_id, status="failed")  # round 0, step 0: refused
    answer = route(desk, case_id, {"route": "no_partner", "country": "US", "recipients": [DESK]})
    assert answer.status_code == 200, answer.text
    assert desk.case(case_id).round == 1  # its first step's key is free again
    with desk.sessions() as session:
        assert session.scalars(select(NoticeItem.round)).all() == [0]


def test_a_referral_by_hand_goes_to_the_countrys_partner_hotline(desk: Desk) -> None:
    # The shipped directory lists no referral address; the test one has one for the US.
    desk.client.app.state.hotlines = load_hotlines(DATA / "test-hotlines.toml")  # type: ignore[attr-defined]
    case_id = stuck_case(desk)
    answer = route(desk, case_id, {"route": "hotline_referral", "country": "us"})
    assert answer.status_code == 200, answer.text
    case = desk.case(case_id)
    assert (case.route, case.country) == ("hotline_referral", "US")
    assert case.trace is not None and case.trace["hotline"]["email"]
    no_partner = stuck_case_again(desk, case_id)
    refused = route(desk, no_partner, {"route": "hotline_referral", "country": "GB"})
    assert refused.status_code == 422 and refused.json()["field"] == "country"


def stuck_case_again(desk: Desk, case_id: int) -> int:
    """Close CASE_ID and report its URL afresh as a case that needs an analyst."""
    closed = desk.client.post(
        f"/api/cases/{case_id}/close", json={"code": "duplicate"}, headers=desk.supervisor
    )
    assert closed.is_success
    return stuck_case(desk)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"route": "fast_lane", "country": "GB", "recipients": [DESK]}, "route"),
        ({"route": "host_notice", "country": "UK", "recipients": [DESK]}, "country"),
        ({"route": "host_notice", "country": "XX", "recipients": [DESK]}, "country"),
        ({"route": "host_notice", "country": "GB", "recipients": []}, "recipients"),
        ({"route": "host_notice", "country": "GB", "recipients": [DESK, "a b@x"]}, "recipients[1]"),
        ({"route": "no_partner", "country": "GB", "recipients": ["x@y\nBcc:z@w"]}, "recipients[0]"),
        ({"route": "host_notice", "country": "GB", "recipients": [DESK], "to": "x"}, "to"),
        ({"country": "GB", "recipients": [DESK]}, "route"),
    ],
    ids=["route", "uk", "xx", "no-recipient", "space", "header-injection", "unknown", "missing"],
)  # fmt: skip
def test_bad_routing_is_refused_with_422_naming_the_field(
    desk: Desk, body: dict[str, Any], field: str
) -> None:
    case_id = stuck_case(desk)
    before = desk.snapshot()
    answer = route(desk, case_id, body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == field
    assert desk.snapshot() == before


def test_uk_is_refused_with_the_hint_to_write_gb(desk: Desk) -> None:
    answer = route(desk, stuck_case(desk), {"route": "host_notice", "country": "UK",
                                            "recipients": [DESK]})  # fmt: skip
    assert "GB" in answer.json()["error"]


@pytest.mark.parametrize(
    "values", [{"state": CaseState.ACTIVE}, {"changed_streak": 2}], ids=["active", "changed"]
)
def test_only_a_case_that_needs_an_analyst_is_routed_by_hand(
    desk: Desk, values: dict[str, Any]
) -> None:
    case_id = stuck_case(desk, **values)
    before = desk.snapshot()
    answer = route(desk, case_id, {"route": "host_notice", "country": "GB", "recipients": [DESK]})
    assert answer.status_code == 409, answer.text
    assert desk.snapshot() == before
    missing = route(desk, 999, {"route": "host_notice", "country": "GB", "recipients": [DESK]})
    assert missing.status_code == 404


def test_the_case_page_routes_by_hand_with_its_csrf_token(desk: Desk) -> None:
    case_id = stuck_case(desk)
    csrf = desk.sign_in("al")
    page = desk.client.get(f"/cases/{case_id}")
    assert f'action="/cases/{case_id}/route"' in page.text
    form = {"route": "host_notice", "country": "GB", "recipients": f"{DESK}\n"}
    without = desk.client.post(f"/cases/{case_id}/route", data=form, follow_redirects=False)
    assert without.status_code == 403 and desk.case(case_id).state == CaseState.NEEDS_ANALYST
    bad = desk.client.post(
        f"/cases/{case_id}/route", data={**form, "country": "UK", "csrf_token": csrf}
    )
    assert bad.status_code == 422 and "GB" in bad.text
    answer = desk.client.post(
        f"/cases/{case_id}/route", data={**form, "csrf_token": csrf}, follow_redirects=False
    )
    assert answer.status_code == 303, answer.text
    assert (desk.case(case_id).state, desk.case(case_id).recipients) == (CaseState.ACTIVE, DESK)
    assert desk.events(case_id)[-1] == ("routed", "al")
    assert f'action="/cases/{case_id}/route"' not in desk.client.get(f"/cases/{case_id}").text
