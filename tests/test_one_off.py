"""A one-off notice: an analyst tells an address of their choice about a case that needs one,
through the outbox (stored before sending, sent once), the case left as it is (issue 14)."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from deskapp import Desk, running_desk
from sqlalchemy import select, update

from workflows.config.settings import load_settings
from workflows.engine.one_off import ONE_OFF_KINDS
from workflows.engine.runtime import Runtime
from workflows.engine.sending import send_notice
from workflows.kinds import CaseState, NoticeStatus
from workflows.store.claims import claim_notices
from workflows.store.db import transaction
from workflows.store.models import DeadRecipient, Event, Notice, NoticeItem
from workflows.web.schemas import OneOffIn

A = "http://nowhere.example/a.jpg"
TO = "owner@site.example"


SETTINGS = {"TAKEDOWN_SENDER": "hotline@hotline.example"}


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    """Run the desk as a hotline configures it: with the From address of its notices."""
    with running_desk(tmp_path) as running:
        state = running.client.app.state  # type: ignore[attr-defined]
        settings = load_settings({"TAKEDOWN_HOME": str(tmp_path), **SETTINGS})
        state.outbox_runtime = Runtime(settings, state.policy, state.engine, running.clock)
        yield running


def test_a_desk_without_a_sender_refuses_a_one_off_and_changes_nothing(tmp_path: Path) -> None:
    with running_desk(tmp_path) as bare:
        case_id = stuck_case(bare)
        before = bare.snapshot()
        answer = one_off(bare, case_id, {"to": TO})
        assert answer.status_code == 409 and "TAKEDOWN_SENDER" in answer.json()["error"]
        assert bare.snapshot() == before


def stuck_case(desk: Desk, url: str = A, **values: Any) -> int:
    """Report URL as a case that needs an analyst (no abuse contact), next traced in an hour."""
    return desk.needing_analyst(url, **{"due_at": desk.clock() + dt.timedelta(hours=1), **values})


def one_off(desk: Desk, case_id: int, body: Any, headers: Any = None) -> Any:
    return desk.client.post(
        f"/api/cases/{case_id}/notices", json=body, headers=headers or desk.analyst
    )


def items(desk: Desk) -> list[tuple[int, int, int, str, str, int | None]]:
    with desk.sessions() as session:
        rows = session.execute(
            select(
                NoticeItem.case_id,
                NoticeItem.round,
                NoticeItem.step,
                NoticeItem.party,
                NoticeItem.recipients,
                NoticeItem.notice_id,
            ).order_by(NoticeItem.id)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def test_a_one_off_notice_is_stored_in_the_outbox_and_the_case_stays(desk: Desk) -> None:
    case_id = stuck_case(desk)
    before = desk.case(case_id)
    answer = one_off(desk, case_id, {"to": TO, "reason": "found on the contact page"})
    assert answer.status_code == 201, answer.text
    shown = answer.json()
    assert (shown["kind"], shown["to"], shown["status"]) == ("notice", [TO], "pending")
    assert shown["cases"] == [case_id] and shown["sent_at"] is None
    notice = desk.stored_notice(shown["id"])
    assert notice.due_at == desk.clock() and A in notice.body_text
    assert notice.message_id == shown["message_id"] and "pending" not in notice.message_id
    assert items(desk) == [(case_id, 0, -1, "analyst", TO, shown["id"])]
    after = desk.case(case_id)
    assert (after.state, after.due_at, after.steps_done, after.round) == (
        before.state,
        before.due_at,
        before.steps_done,
        before.round,
    )
    with desk.sessions() as session:
        event = session.scalars(
            select(Event).where(Event.case_id == case_id).order_by(Event.id.desc()).limit(1)
        ).one()
    assert (event.kind, event.actor) == ("one_off_notice", "al")
    assert event.detail == {
        "notice": shown["id"],
        "kind_of": "notice",
        "to": TO,
        "reason": "found on the contact page",
        "state": "needs_analyst",
    }


def test_a_second_one_off_to_another_address_takes_the_next_step_down(desk: Desk) -> None:
    case_id = stuck_case(desk)
    assert one_off(desk, case_id, {"to": TO}).status_code == 201
    assert one_off(
        desk, case_id, {"to": "abuse@registrar.example", "kind": "escalation"}
    ).is_success
    assert [step for _, _, step, *_ in items(desk)] == [-1, -2]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"to": "not an address"}, "to"),
        ({"to": "a@b@c.example"}, "to"),
        ({"to": "x@y.example\nBcc: z@w.example"}, "to"),
        ({"to": "abuse@localhost"}, "to"),
        ({"to": ""}, "to"),
        ({}, "to"),
        ({"to": TO, "kind": "chaser"}, "kind"),
        ({"to": TO, "reason": "x" * 10_001}, "reason"),
        ({"to": TO, "cc": "x@y.example"}, "cc"),
    ],
    ids=["words", "two-ats", "header-injection", "special-use", "empty", "missing", "chaser",
         "long-reason", "unknown-field"],
)  # fmt: skip
def test_a_bad_one_off_is_refused_with_422_naming_the_field_and_changes_nothing(
    desk: Desk, body: dict[str, Any], field: str
) -> None:
    case_id = stuck_case(desk)
    before = desk.snapshot()
    answer = one_off(desk, case_id, body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == field and answer.json()["error"].startswith(f"{field}: ")
    assert desk.snapshot() == before


def test_only_a_case_that_needs_an_analyst_gets_a_one_off(desk: Desk) -> None:
    active = stuck_case(desk, state=CaseState.ACTIVE)
    before = desk.snapshot()
    answer = one_off(desk, active, {"to": TO})
    assert (
        answer.status_code == 409 and "only a case that needs an analyst" in answer.json()["error"]
    )
    assert one_off(desk, 999, {"to": TO}).status_code == 404
    assert desk.snapshot() == before


def test_the_same_one_off_is_never_sent_twice_but_may_go_again_after_a_refusal(
    desk: Desk,
) -> None:
    case_id = stuck_case(desk)
    first = one_off(desk, case_id, {"to": TO}).json()
    before = desk.snapshot()
    again = one_off(desk, case_id, {"to": TO.upper()})
    assert again.status_code == 409
    assert again.json()["error"] == (
        f"case {case_id}: a notice to {TO.upper()} is pending already (N-{first['id']:06d})"
    )
    assert desk.snapshot() == before
    with desk.sessions() as session:
        session.execute(
            update(Notice).where(Notice.id == first["id"]).values(status=NoticeStatus.FAILED)
        )
        session.commit()
    assert one_off(desk, case_id, {"to": TO}).status_code == 201


def test_an_address_that_bounced_is_refused_while_it_is_dead(desk: Desk) -> None:
    case_id = stuck_case(desk)
    with desk.sessions() as session:
        session.add(
            DeadRecipient(
                address=TO,
                until=desk.clock() + dt.timedelta(days=1),
                reason="550 no such user",
                recorded_at=desk.clock(),
            )
        )
        session.commit()
    answer = one_off(desk, case_id, {"to": TO})
    assert answer.status_code == 409 and "550 no such user" in answer.json()["error"]


class Relay:
    """An SMTP relay that keeps every message, answering REPLY to its data."""

    def __init__(self, reply: str) -> None:
        self.reply, self.messages = reply, []  # type: list[Envelope]

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.messages.append(envelope)
        return self.reply


@pytest.fixture
def relay_runtime(desk: Desk, request: pytest.FixtureRequest) -> Iterator[tuple[Runtime, Relay]]:
    """Yield a worker's runtime on the desk's database, sending to a real relay."""
    relay = Relay(getattr(request, "param", "250 OK"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(relay, hostname="127.0.0.1", port=port, server_hostname="relay.test")
    controller.start()
    settings = load_settings(
        {
            "TAKEDOWN_HOME": str(desk.home),
            "TAKEDOWN_SMTP_URL": f"smtp://127.0.0.1:{port}",
            **SETTINGS,
        }
    )
    runtime = Runtime.from_settings(settings)
    runtime.clock = desk.clock
    try:
        yield runtime, relay
    finally:
        runtime.close()
        controller.stop()


def sweep_sends(rt: Runtime) -> list[str]:
    """Claim the due notices as the sweep does and send each as the send task does."""
    with transaction(rt.sessions) as session:
        claimed = claim_notices(session, rt.clock(), rt.lease)
    return [send_notice(rt, notice_id) for notice_id in claimed]


def test_the_sweep_sends_a_one_off_once_and_the_case_stays(
    desk: Desk, relay_runtime: tuple[Runtime, Relay]
) -> None:
    rt, relay = relay_runtime
    case_id = stuck_case(desk)
    notice_id = one_off(desk, case_id, {"to": TO}).json()["id"]
    assert sweep_sends(rt) == [NoticeStatus.SENT]
    assert sweep_sends(rt) == []  # never twice
    (message,) = relay.messages
    assert message.rcpt_tos == [TO] and A.encode() in message.content  # type: ignore[operator]
    notice = desk.stored_notice(notice_id)
    assert (notice.status, notice.sent_at) == (NoticeStatus.SENT, desk.clock())
    case = desk.case(case_id)
    assert case.state == CaseState.NEEDS_ANALYST and case.first_notice_at == desk.clock()
    assert desk.events(case_id)[-2:] == [("one_off_notice", "al"), ("notice_sent", "takedown")]


@pytest.mark.parametrize("relay_runtime", ["550 no such mailbox"], indirect=True)
def test_a_refused_one_off_moves_no_workflow_on(
    desk: Desk, relay_runtime: tuple[Runtime, Relay]
) -> None:
    rt, _ = relay_runtime
    case_id = stuck_case(desk)
    one_off(desk, case_id, {"to": TO})
    before = desk.case(case_id)
    assert sweep_sends(rt) == [NoticeStatus.FAILED]
    after = desk.case(case_id)
    assert (after.state, after.steps_done, after.round, after.version) == (
        before.state,
        before.steps_done,
        before.round,
        before.version,
    )
    assert desk.events(case_id)[-1] == ("notice_failed", "takedown")


def test_routing_by_hand_after_a_one_off_starts_a_new_round(desk: Desk) -> None:
    case_id = stuck_case(desk)
    one_off(desk, case_id, {"to": TO})
    body = {"route": "no_partner", "country": "US", "recipients": ["abuse@host.example"]}
    routed = desk.client.post(f"/api/cases/{case_id}/route", json=body, headers=desk.analyst)
    assert routed.status_code == 200, routed.text
    assert desk.case(case_id).round == 1  # the workflow's step 0 never meets the one-off's key


def test_the_case_page_sends_a_one_off_with_its_csrf_token(desk: Desk) -> None:
    case_id = stuck_case(desk)
    csrf = desk.sign_in("al")
    page = desk.client.get(f"/cases/{case_id}").text
    assert f'action="/cases/{case_id}/notices"' in page
    form = {"to": TO, "kind": "notice", "reason": "contact page"}
    without = desk.client.post(f"/cases/{case_id}/notices", data=form, follow_redirects=False)
    assert without.status_code == 403
    bad = desk.client.post(
        f"/cases/{case_id}/notices", data={**form, "to": "nope", "csrf_token": csrf}
    )
    assert bad.status_code == 422 and "to: &#39;nope&#39;" in bad.text
    assert 'value="nope"' in bad.text  # kept to be fixed
    assert items(desk) == []
    sent = desk.client.post(
        f"/cases/{case_id}/notices", data={**form, "csrf_token": csrf}, follow_redirects=False
    )
    assert sent.status_code == 303
    notice_id = items(desk)[0][5]
    assert sent.headers["location"] == f"/cases/{case_id}#notice-{notice_id}"
    page = desk.client.get(f"/cases/{case_id}").text
    assert f"One-off notice</b> notice N-{notice_id:06d} to {TO} · contact page" in page
    active = stuck_case(desk, "http://nowhere.example/b.jpg", state=CaseState.ACTIVE)
    assert f'action="/cases/{active}/notices"' not in desk.client.get(f"/cases/{active}").text


def test_the_api_offers_exactly_the_kinds_a_one_off_may_be() -> None:
    assert get_args(OneOffIn.model_fields["kind"].annotation) == ONE_OFF_KINDS
