"""Closing asks why: a reason from a short list (CloseReason) and words, and the case page
confirms before it closes (issue 14)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deskapp import Desk, running_desk
from sqlalchemy import select

from workflows.cli.cases import format_case
from workflows.engine.actions import close_reason
from workflows.errors import BadValue
from workflows.kinds import CLOSE_REASONS, CaseState, CloseReason
from workflows.store.models import Event

A = "http://files.example/a.jpg"


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    with running_desk(tmp_path) as running:
        yield running


def test_every_close_reason_has_a_label() -> None:
    assert list(CLOSE_REASONS) == list(CloseReason)
    assert all(label and label == label.strip() for label in CLOSE_REASONS.values())


@pytest.mark.parametrize(
    ("code", "reason", "field"),
    [
        (None, "dup", "code"),
        ("", None, "code"),
        ("spam", None, "code"),
        ("other", None, "reason"),
        ("other", "   ", "reason"),
        ("duplicate", "x" * 10_001, "reason"),
    ],
    ids=["missing", "blank", "unknown", "other-without-words", "other-blank-words", "too-long"],
)
def test_a_close_reason_is_refused_naming_the_field(
    code: str | None, reason: str | None, field: str
) -> None:
    with pytest.raises(BadValue) as refused:
        close_reason(code, reason)
    assert refused.value.field == field


def test_a_missing_or_unknown_code_lists_the_choices() -> None:
    for code in (None, "spam"):
        with pytest.raises(BadValue) as refused:
            close_reason(code, None)
        assert all(reason.value in refused.value.message for reason in CloseReason)


def test_a_close_reason_keeps_its_words_stripped_and_drops_blank_ones() -> None:
    assert close_reason("duplicate", "  of case 12 ") == (CloseReason.DUPLICATE, "of case 12")
    assert close_reason("not_illegal", "  ") == (CloseReason.NOT_ILLEGAL, None)
    assert close_reason("other", "asked by the court") == (CloseReason.OTHER, "asked by the court")


def closed_event(desk: Desk, case_id: int) -> Event:
    with desk.sessions() as session:
        return session.scalars(
            select(Event).where(Event.case_id == case_id, Event.kind == "closed")
        ).one()


def test_the_api_closes_with_a_code_and_words_kept_on_the_event(desk: Desk) -> None:
    case_id = desk.report(A)[0]["id"]
    body = {"code": "handled_elsewhere", "reason": "NCMEC has it"}
    answer = desk.client.post(f"/api/cases/{case_id}/close", json=body, headers=desk.supervisor)
    assert answer.status_code == 200 and answer.json()["state"] == "closed"
    event = closed_event(desk, case_id)
    assert event.actor == "sue"
    assert event.detail == {"code": "handled_elsewhere", "reason": "NCMEC has it", "was": "new"}
    desk.sign_in("sue")
    page = desk.client.get(f"/cases/{case_id}").text
    assert "<b>Closed</b> · Another hotline or the platform handles it · NCMEC has it" in page


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (None, "code"),
        ({}, "code"),
        ({"reason": "dup"}, "code"),
        ({"code": "spam"}, "code"),
        ({"code": "other"}, "reason"),
        ({"code": "other", "reason": ""}, "reason"),
        ({"code": "duplicate", "why": "x"}, "why"),
    ],
    ids=["no-body", "empty", "words-only", "unknown", "other", "other-blank", "unknown-field"],
)
def test_the_api_refuses_a_close_without_its_reason_and_changes_nothing(
    desk: Desk, body: Any, field: str
) -> None:
    case_id = desk.report(A)[0]["id"]
    before = desk.snapshot()
    answer = desk.client.post(f"/api/cases/{case_id}/close", json=body, headers=desk.supervisor)
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == field and answer.json()["error"].startswith(f"{field}: ")
    if field == "code" and body != {"code": "spam"}:
        assert "not_illegal" in answer.json()["error"]  # the choices are listed
    assert desk.snapshot() == before


def test_the_openapi_description_lists_the_codes_and_their_labels(desk: Desk) -> None:
    spec = desk.client.get("/openapi.json").json()
    close_in = spec["components"]["schemas"]["CloseIn"]
    assert close_in["required"] == ["code"]
    assert all(
        label in close_in["properties"]["code"]["description"] for label in CLOSE_REASONS.values()
    )


def page_form(desk: Desk, case_id: int, csrf: str, **fields: str) -> Any:
    return desk.client.post(
        f"/cases/{case_id}/close", data={"csrf_token": csrf, **fields}, follow_redirects=False
    )


def test_the_case_page_offers_the_reasons_and_asks_for_a_confirmation(desk: Desk) -> None:
    case_id = desk.report(A)[0]["id"]
    csrf = desk.sign_in("sue")
    page = desk.client.get(f"/cases/{case_id}").text
    for code, label in CLOSE_REASONS.items():
        assert f'<option value="{code}">{label}</option>' in page
    assert 'name="confirm" value="yes" required' in page
    before = desk.snapshot()
    unconfirmed = page_form(desk, case_id, csrf, code="other", reason="court order")
    assert unconfirmed.status_code == 422 and "confirm: tick “I confirm”" in unconfirmed.text
    assert '<option value="other" selected>' in unconfirmed.text  # the form is kept
    assert 'value="court order"' in unconfirmed.text
    no_reason = page_form(desk, case_id, csrf, confirm="yes")
    assert no_reason.status_code == 422 and "code: say why the case is closed" in no_reason.text
    assert desk.snapshot() == before
    done = page_form(desk, case_id, csrf, code="other", reason="court order", confirm="yes")
    assert (done.status_code, done.headers["location"]) == (303, f"/cases/{case_id}")
    assert desk.case(case_id).state == CaseState.CLOSED
    assert closed_event(desk, case_id).detail == {
        "code": "other",
        "reason": "court order",
        "was": "new",
    }
    assert (
        "<b>Closed</b> · Other (say why) · court order" in desk.client.get(f"/cases/{case_id}").text
    )


def test_takedown_case_shows_the_close_reason_in_words() -> None:
    detail = {"code": "law_enforcement", "reason": "police op 7", "was": "active"}
    case = {
        "id": 7,
        "state": "closed",
        "url": A,
        "route": None,
        "country": None,
        "network": None,
        "opened_at": "2026-12-01T09:00:00Z",
        "first_notice_at": None,
        "removed_at": None,
        "last_error": None,
        "events": [
            {"at": "2026-12-01T10:00:00Z", "kind": "closed", "actor": "sue", "detail": detail}
        ],
        "notices": [],
        "checks": [],
    }
    assert (
        "closed                 code: law_enforcement (Law enforcement asked us to stop); "
        "reason: police op 7; was: active · sue"
    ) in format_case(case)
