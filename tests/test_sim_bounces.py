"""Mail that comes back from the simulated internet: bounces in the formats real MTAs write
(Postfix, Exim, Exchange), a delay report, an out-of-office and a person's reply, each
read by the engine's classifier as what it is; the desks that send them; and a late bounce
delivered into a real Dovecot mailbox that the engine reads and acts on once.
"""

from __future__ import annotations

import datetime as dt
import shutil
import smtplib
import tempfile
from collections.abc import Iterator
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest
from engine_harness import claim_first_notice, engine_runtime, hosta_stack, hosta_world
from sqlalchemy import select
from stack import Stack

from workflows.engine.inbox import poll_mailbox
from workflows.engine.runtime import Runtime
from workflows.engine.sending import send_notice
from workflows.kinds import CaseState, NoticeStatus
from workflows.notify.inbound import read_message
from workflows.notify.notices import (
    NoticeItem,
    NoticeRequest,
    build_message,
    render_notice,
    template_environment,
)
from workflows.notify.xarf import xarf_reports
from workflows.sim.bounces import FORMATS, Answered, returned_mail
from workflows.sim.desks import Desk, DeskRunner
from workflows.sim.imapserver import DovecotServer
from workflows.sim.smtp import Received, SMTPServer
from workflows.sim.world import World
from workflows.store.models import DeadRecipient, InboundMessage, Notice

RETURN_PATH = "bounces+{token}@hotline.example"
TOKEN = "0f1e2d3c4b5a69788796"
VERP = RETURN_PATH.format(token=TOKEN)
DESK = "abuse@hosta.example"
UPSTREAM = "abuse@upstream.example"
URL = "http://files.hosta.test/1"
NOTICE_ID = "<takedown.notice.7.0123456789abcdef@hotline.example>"
WHEN = dt.datetime(2026, 12, 7, 9, 20, tzinfo=dt.UTC)


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def engine_notice() -> EmailMessage:
    """Return a notice for URL as the engine builds it: text, HTML and a XARF report."""
    item = NoticeItem(
        case_id=42,
        reference="TD-000042",
        url=URL,
        host="files.hosta.test",
        addresses=("185.199.108.10",),
        category="csam",
        reported_at=WHEN - dt.timedelta(hours=1),
        first_notified_at=None,
        content_sha256="ab" * 32,
    )
    request = NoticeRequest(
        kind="notice",
        recipients=(DESK,),
        language="en",
        items=(item,),
        sender="reports@hotline.example",
        sender_name="Example Hotline",
        notice_ref="N-000007",
        message_id=NOTICE_ID,
        in_reply_to=None,
        references=(),
        sent_at=WHEN - dt.timedelta(minutes=5),
    )
    rendered = render_notice(request, template_environment())
    return build_message(request, rendered, xarf_reports(request))


def send(smtp: SMTPServer, message: EmailMessage, sender: str = VERP) -> None:
    """Send MESSAGE to DESK with envelope sender SENDER, as the engine's mailer does."""
    with smtplib.SMTP("127.0.0.1", smtp.port, timeout=5) as client:
        client.send_message(message, from_addr=sender, to_addrs=[DESK])


@pytest.fixture(scope="module")
def received() -> Received:
    """Return the engine-shaped notice as the simulated relay accepted it."""
    with SMTPServer() as smtp:
        send(smtp, engine_notice())
        (accepted,) = smtp.snapshot()
    return accepted


def answer(received: Received, kind: str, bounce_format: str = "postfix", serial: int = 1) -> bytes:
    return returned_mail(kind, Answered(received, DESK, WHEN, serial), bounce_format).as_bytes()


# What the engine makes of each


@pytest.mark.parametrize("bounce_format", FORMATS)
def test_each_bounce_format_reads_as_a_bounce_of_the_desk_naming_its_notice(
    received: Received, bounce_format: str
) -> None:
    found = read_message(answer(received, "bounce", bounce_format), RETURN_PATH)
    assert found.kind == "bounce", found.problem
    assert [f.recipient for f in found.failures] == [DESK]
    assert found.failures[0].status.startswith("5.1.")
    assert found.tokens == (TOKEN,)
    assert NOTICE_ID in found.references and found.case_refs == (42,)


@pytest.mark.parametrize(
    ("kind", "expected", "tokens"),
    [
        pytest.param("delay", "delay", (TOKEN,), id="delay-report"),
        pytest.param("auto_reply", "auto_reply", (TOKEN,), id="out-of-office"),
        pytest.param("reply", "reply", (), id="person-replies"),
    ],
)
def test_delays_and_replies_read_as_what_they_are_threaded_to_the_notice(
    received: Received, kind: str, expected: str, tokens: tuple[str, ...]
) -> None:
    found = read_message(answer(received, kind), RETURN_PATH)
    assert found.kind == expected, found.problem
    assert found.tokens == tokens  # a reply goes to the notice's From, not its return path
    assert NOTICE_ID in found.references
    if kind == "delay":
        assert [(f.recipient, f.status) for f in found.failures] == [(DESK, "4.4.7")]
    if kind == "reply":
        assert found.sender == DESK and "Removed, thanks" in found.text


def test_bounces_have_the_shape_of_the_mtas_they_imitate(received: Received) -> None:
    postfix = message_of(answer(received, "bounce", "postfix"))
    assert postfix.get_content_type() == "multipart/report"
    assert postfix.get_param("report-type") == "delivery-status"
    assert [p.get_content_type() for p in postfix.iter_parts()] == [
        "text/plain",
        "message/delivery-status",
        "text/rfc822-headers",
    ]
    assert str(postfix["From"]).startswith("MAILER-DAEMON@mail.hotline.example")
    exim = message_of(answer(received, "bounce", "exim"))
    assert exim["X-Failed-Recipients"] == DESK and exim.get_content_type() == "text/plain"
    body = str(exim.get_content())
    assert body.startswith("This message was created automatically by mail delivery software.")
    assert f"\n  {DESK}\n" in body and NOTICE_ID in body  # indented; the copy follows
    exchange = message_of(answer(received, "bounce", "exchange"))
    assert str(exchange["Subject"]).startswith("Undeliverable: ")
    assert "Delivery has failed to these recipients or groups" in str(
        exchange.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    )
    assert [p.get_content_type() for p in exchange.iter_parts()][1:] == [
        "message/delivery-status",
        "message/rfc822",
    ]
    for raw in (answer(received, "bounce", f) for f in FORMATS):
        assert message_of(raw)["To"] == VERP and message_of(raw)["Return-Path"] == "<>"


def test_out_of_office_and_reply_answer_the_notice(received: Received) -> None:
    away = message_of(answer(received, "auto_reply"))
    assert away["Auto-Submitted"] == "auto-replied" and away["In-Reply-To"] == NOTICE_ID
    assert away["To"] == VERP  # RFC 3834 §3.1.5: to the return path
    reply = message_of(answer(received, "reply"))
    assert reply["To"] == "reports@hotline.example" and reply["References"] == NOTICE_ID
    subject = " ".join(str(reply["Subject"]).split())  # the parser keeps a fold's space
    assert (
        subject == "Re: [N-000007] Child sexual abuse material on your network: 1 URL (TD-000042)"
    )


def test_the_same_inputs_give_the_same_bytes_and_another_serial_another_message(
    received: Received,
) -> None:
    for kind, bounce_format in [*(("bounce", f) for f in FORMATS), ("delay", "postfix")]:
        once = answer(received, kind, bounce_format)
        assert once == answer(received, kind, bounce_format)
        other = message_of(answer(received, kind, bounce_format, serial=2))
        assert other["Message-ID"] != message_of(once)["Message-ID"]


def test_unknown_kinds_and_formats_are_refused(received: Received) -> None:
    with pytest.raises(ValueError, match="bounce format"):
        answer(received, "bounce", "sendmail")
    with pytest.raises(ValueError, match="kind"):
        answer(received, "complaint")


def message_of(raw: bytes) -> EmailMessage:
    parsed = message_from_bytes(raw, policy=default)
    assert isinstance(parsed, EmailMessage)
    return parsed


# The desks that send them


@pytest.fixture
def smtp() -> Iterator[SMTPServer]:
    with SMTPServer() as server:
        yield server


@pytest.fixture
def world() -> World:
    built = World(records={"files.hosta.test": [("A", "185.199.108.10")]})
    built.put_content(URL)
    return built


def state(world: World) -> str:
    site = world.content(URL)
    assert site is not None
    return site.state


@pytest.mark.parametrize(
    ("behaviour", "logged", "kind", "content"),
    [
        pytest.param("late_bounce", "bounced", "bounce", "present", id="late-bounce"),
        pytest.param("delayed", "delay-reported", "delay", "present", id="delayed"),
        pytest.param("out_of_office", "auto-replied", "auto_reply", "present", id="away"),
        pytest.param("replies", "replied", "reply", "404", id="replies"),
    ],
)
def test_desk_sends_its_answer_to_the_mailbox_after_its_delay(
    smtp: SMTPServer, world: World, behaviour: str, logged: str, kind: str, content: str
) -> None:
    clock = FakeClock()
    mailbox: list[bytes] = []
    desk = Desk(DESK, behaviour, world, delay=5)
    runner = DeskRunner(world, smtp, [desk], clock=clock, mailbox=mailbox.append)
    send(smtp, engine_notice())
    runner.poll()
    clock.now = 4.9
    runner.poll()
    assert mailbox == [] and state(world) == "present"
    clock.now = 5.0
    runner.poll()
    (raw,) = mailbox
    assert read_message(raw, RETURN_PATH).kind == kind
    assert state(world) == content  # only the replying desk took the content down
    assert runner.entries(logged) == [(5.0, DESK, logged, URL)]
    clock.now = 1e6
    runner.poll()
    assert len(mailbox) == 1  # one answer per message, then nothing


@pytest.mark.parametrize("bounce_format", FORMATS)
def test_a_late_bounce_desk_bounces_every_notice_in_its_format(
    smtp: SMTPServer, world: World, bounce_format: str
) -> None:
    mailbox: list[bytes] = []
    desk = Desk(DESK, "late_bounce", world, bounce_format=bounce_format)
    runner = DeskRunner(world, smtp, [desk], clock=FakeClock(), mailbox=mailbox.append)
    first = engine_notice()
    send(smtp, first)
    chaser = engine_notice()
    chaser.replace_header("Message-ID", "<takedown.notice.8.0123456789abcdef@hotline.example>")
    send(smtp, chaser, sender=RETURN_PATH.format(token="ab" * 10))
    runner.poll()
    found = [read_message(raw, RETURN_PATH) for raw in mailbox]
    assert [(f.kind, f.tokens) for f in found] == [("bounce", (TOKEN,)), ("bounce", ("ab" * 10,))]
    assert len({f.digest for f in found}) == 2  # two messages, not one taken twice
    assert state(world) == "present"


def test_a_failing_mailbox_is_logged_and_the_desks_go_on(smtp: SMTPServer, world: World) -> None:
    def refuse(raw: bytes) -> None:
        raise OSError("the mailbox is gone")

    desks = [Desk(DESK, "late_bounce", world), Desk("abuse@other.example", "prompt", world)]
    runner = DeskRunner(world, smtp, desks, clock=FakeClock(), mailbox=refuse)
    send(smtp, engine_notice())
    with smtplib.SMTP("127.0.0.1", smtp.port, timeout=5) as client:
        client.send_message(engine_notice(), from_addr=VERP, to_addrs=["abuse@other.example"])
    runner.poll()
    assert runner.entries("undelivered") == [(0.0, DESK, "undelivered", URL)]
    assert state(world) == "404"  # the other desk still acted


def test_desk_declarations_of_a_bounce_format_are_validated(world: World) -> None:
    with pytest.raises(ValueError, match="bounce_format"):
        Desk(DESK, "late_bounce", world, bounce_format="qmail")


# End to end: the engine's notice, the relay's late bounce, Dovecot, the engine's inbox


@pytest.fixture
def dovecot() -> Iterator[DovecotServer]:
    # Dovecot's own user must reach the mail folder: not under pytest's private tmp_path.
    folder = Path(tempfile.mkdtemp(prefix="takedown-imap-", dir="/tmp"))
    try:
        with DovecotServer(folder) as server:
            yield server
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def stack(tmp_path: Path, dovecot: DovecotServer) -> Iterator[Stack]:
    with hosta_stack(tmp_path, hosta_world(URL, upstream=UPSTREAM)) as up:
        up.env["TAKEDOWN_RETURN_PATH"] = RETURN_PATH
        up.env["TAKEDOWN_IMAP_URL"] = dovecot.url
        up.env["TAKEDOWN_IMAP_PASSWORD"] = dovecot.password
        yield up


@pytest.fixture
def rt(stack: Stack) -> Iterator[Runtime]:
    with engine_runtime(stack) as runtime:
        yield runtime


def test_a_late_bounce_in_the_mailbox_fails_the_notice_and_moves_the_case_on_once(
    stack: Stack, rt: Runtime, dovecot: DovecotServer
) -> None:
    clock = FakeClock()
    desk = Desk(DESK, "late_bounce", stack.world, delay=30, bounce_format="exim")
    runner = DeskRunner(
        stack.world, stack.smtp, [desk], clock=clock, mailbox=dovecot.deliver, wall_clock=rt.clock
    )
    notice_id = claim_first_notice(stack, rt, URL)
    assert send_notice(rt, notice_id) == NoticeStatus.SENT  # the relay accepted it
    runner.poll()
    assert poll_mailbox(rt) == []  # nothing has come back yet
    clock.now = 30.0
    runner.poll()  # the relay gives up on the desk's mail server and returns the notice
    assert runner.entries("bounced") == [(30.0, DESK, "bounced", URL)]
    (taken,) = poll_mailbox(rt)
    case = stack.case(URL)
    assert (taken.kind, taken.notice_id, taken.moved) == ("bounce", notice_id, [case.id])
    with rt.sessions() as session:
        notice = session.get(Notice, notice_id)
        dead = session.get(DeadRecipient, DESK)
        rows = session.scalars(select(InboundMessage.source)).all()
    assert notice is not None and notice.status == NoticeStatus.FAILED
    assert dead is not None and dead.notice_id == notice_id and "5.1.1" in dead.reason
    assert rows == ["imap"]
    # Moved on to the escalation, due now; the content is still online.
    assert (case.state, case.steps_done, case.due_at) == (CaseState.ACTIVE, 2, rt.clock())
    assert state(stack.world) == "present"
    assert poll_mailbox(rt) == []  # read once: nothing moves twice
    kinds = [str(e.kind) for e in stack.events(case.id)]
    assert kinds.count("bounced") == 1 and kinds.count("escalated_after_refusal") == 1
