"""The simulated mail: a real SMTP server on 127.0.0.1 with faults, and the abuse desks."""

from __future__ import annotations

import json
import smtplib
from collections.abc import Iterator
from email.message import EmailMessage

import pytest

from workflows.sim.desks import Desk, DeskRunner, urls_in, wait_until
from workflows.sim.smtp import Fired, SMTPServer
from workflows.sim.world import World

SENDER = "notices@hotline.test"
DESK = "abuse@examplehost.example"
URL = "http://uploads.examplehost-uk.test/img/1.bin"
HOST = "uploads.examplehost-uk.test"


@pytest.fixture
def smtp() -> Iterator[SMTPServer]:
    """Run an SMTP server on 127.0.0.1."""
    with SMTPServer() as server:
        yield server


@pytest.fixture
def world() -> World:
    """Return a world where URL is present on a GB address."""
    world = World(records={HOST: [("A", "185.199.108.10")]})
    world.put_content(URL)
    return world


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        """Start at zero."""
        self.now = 0.0

    def __call__(self) -> float:
        """Return the current time."""
        return self.now


def notice(
    to: str = DESK, url: str | None = URL, text: str = "", msgid: str = "<n1@hotline.test>"
) -> EmailMessage:
    """Build a notice with a XARF attachment naming url (none when url is None)."""
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = SENDER, to, "Notice"
    message["Message-ID"] = msgid
    message.set_content(text or "Please remove the content listed in the attachment.\n")
    if url is not None:
        xarf = json.dumps({"Version": "4", "Type": "csam", "url": url}).encode()
        message.add_attachment(xarf, maintype="application", subtype="json", filename="x.json")
    return message


def chaser(first: EmailMessage, msgid: str = "<c1@hotline.test>") -> EmailMessage:
    """Build a chaser replying to a notice."""
    message = notice(to=first["To"], url=None, text=f"Reminder: {URL}\n", msgid=msgid)
    message["In-Reply-To"] = first["Message-ID"]
    return message


def send(smtp: SMTPServer, message: EmailMessage, timeout: float = 5) -> None:
    """Deliver message through a real SMTP conversation."""
    with smtplib.SMTP("127.0.0.1", smtp.port, timeout=timeout) as client:
        client.send_message(message)


def test_delivery_is_recorded_and_parsed(smtp: SMTPServer) -> None:
    send(smtp, notice())
    (received,) = smtp.messages
    assert received.sender == SENDER
    assert received.recipients == [DESK]
    assert received.message["Subject"] == "Notice"
    assert b"Subject: Notice" in received.raw
    assert smtp.messages_to(DESK.upper()) == [received]
    assert smtp.messages_to("other@example.test") == []
    assert smtp.url == f"smtp://127.0.0.1:{smtp.port}"


def test_count_by_message_id(smtp: SMTPServer) -> None:
    send(smtp, notice())
    send(smtp, notice())
    send(smtp, notice(msgid="<n2@hotline.test>"))
    assert smtp.count_by_message_id() == {"<n1@hotline.test>": 2, "<n2@hotline.test>": 1}


@pytest.mark.parametrize("code", [550, 451, 421])
def test_rcpt_fault_refuses_the_recipient(smtp: SMTPServer, code: int) -> None:
    smtp.set_fault(DESK, str(code))
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send(smtp, notice())
    assert refused.value.recipients[DESK][0] == code
    assert smtp.messages == []


def test_550_says_mailbox_unavailable(smtp: SMTPServer) -> None:
    smtp.set_fault(DESK, "550")
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send(smtp, notice())
    assert refused.value.recipients[DESK][1] == b"5.1.1 mailbox unavailable"


def test_421_closes_the_connection(smtp: SMTPServer) -> None:
    smtp.set_fault(DESK, "421")
    client = smtplib.SMTP("127.0.0.1", smtp.port, timeout=5)
    client.ehlo()
    client.mail(SENDER)
    assert client.rcpt(DESK)[0] == 421
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client.noop()
    client.close()


def test_fault_hits_only_its_recipient_and_only_times_attempts(smtp: SMTPServer) -> None:
    smtp.set_fault(DESK, "451", times=1)
    with smtplib.SMTP("127.0.0.1", smtp.port, timeout=5) as client:
        refused = client.send_message(notice(), to_addrs=[DESK, "other@example.test"])
    assert refused == {DESK: (451, b"4.3.0 local error in processing, try again later")}
    assert smtp.messages[0].recipients == ["other@example.test"]
    send(smtp, notice())  # greylisting over: the retry goes through
    assert len(smtp.messages_to(DESK)) == 1


def test_drop_during_data_disconnects_and_records_nothing(smtp: SMTPServer) -> None:
    smtp.set_fault(DESK, "drop")
    with pytest.raises(smtplib.SMTPServerDisconnected):
        send(smtp, notice())
    assert smtp.messages == []
    assert smtp.transfers() == {"<n1@hotline.test>": 1}  # the data did arrive
    assert smtp.fired() == [Fired("drop", DESK, "<n1@hotline.test>")]
    smtp.set_fault(DESK, None)
    send(smtp, notice())
    assert len(smtp.messages) == 1
    assert smtp.transfers() == {"<n1@hotline.test>": 2}


def test_stall_at_rcpt_times_the_client_out_before_the_message(smtp: SMTPServer) -> None:
    smtp.set_fault(DESK, "stall-rcpt", times=1)
    with pytest.raises(smtplib.SMTPServerDisconnected, match="timed out"):
        send(smtp, notice(), timeout=0.5)
    assert (smtp.messages, smtp.transfers()) == ([], {})
    assert smtp.fired() == [Fired("stall-rcpt", DESK, "")]
    send(smtp, notice())  # used up: the next attempt goes through
    assert len(smtp.messages_to(DESK)) == 1


def test_stall_after_data_keeps_the_message_and_never_answers(smtp: SMTPServer) -> None:
    smtp.set_fault(DESK, "stall-data", times=1)
    with pytest.raises(smtplib.SMTPServerDisconnected, match="timed out"):
        send(smtp, notice(), timeout=0.5)
    assert [m.recipients for m in smtp.messages] == [[DESK]]  # the relay queued it
    assert smtp.transfers() == {"<n1@hotline.test>": 1}
    assert smtp.fired() == [Fired("stall-data", DESK, "<n1@hotline.test>")]


def test_stall_at_the_greeting_times_the_client_out(smtp: SMTPServer) -> None:
    smtp.stall_greetings(1)
    with pytest.raises(smtplib.SMTPServerDisconnected, match="timed out"):
        smtplib.SMTP("127.0.0.1", smtp.port, timeout=0.5)
    assert smtp.fired() == [Fired("stall-greeting", "", "")]
    send(smtp, notice())  # only the next connection stalled
    assert len(smtp.messages) == 1


def test_a_stall_ends_with_the_server_hanging_up_after_stall_seconds(smtp: SMTPServer) -> None:
    smtp.stall_seconds = 0.2
    smtp.set_fault(DESK, "stall-rcpt")
    with pytest.raises(smtplib.SMTPServerDisconnected) as closed:
        send(smtp, notice(), timeout=60)
    assert "timed out" not in str(closed.value)  # the server gave up first


def test_unknown_fault_is_refused(smtp: SMTPServer) -> None:
    with pytest.raises(ValueError, match="unknown SMTP fault"):
        smtp.set_fault(DESK, "552")
    assert smtp.fired() == []


def test_wait_for_returns_false_on_timeout(smtp: SMTPServer) -> None:
    assert not smtp.wait_for(lambda messages: len(messages) > 0, timeout=0.05)
    send(smtp, notice())
    assert smtp.wait_for(lambda messages: len(messages) == 1, timeout=1)


# -- desks ----------------------------------------------------------------------------------


def test_urls_come_from_xarf_then_from_the_text() -> None:
    listed = notice(text="Also see http://other.test/a, and more.\n")
    assert urls_in(listed) == [URL]
    plain = notice(url=None, text="Found:\n  http://Other.TEST/a, and (https://x.test/b).\n")
    assert urls_in(plain) == ["http://other.test/a", "https://x.test/b"]


def test_prompt_desk_takes_content_down_after_a_notice(smtp: SMTPServer, world: World) -> None:
    desk = Desk(DESK, "prompt", world, delay=0.05)
    with DeskRunner(world, smtp, [desk]) as runner:
        send(smtp, notice())
        assert wait_until(lambda: world.content(URL).state == "404")  # type: ignore[union-attr]
    assert [entry[1:] for entry in runner.entries()] == [
        (DESK, "received", URL),
        (DESK, "removed", URL),
    ]


def test_reaction_waits_for_the_delay(smtp: SMTPServer, world: World) -> None:
    clock = FakeClock()
    runner = DeskRunner(world, smtp, [Desk(DESK, "prompt", world, 60, "410")], clock=clock)
    send(smtp, notice())
    runner.poll()
    clock.now = 59.0
    runner.poll()
    assert world.content(URL).state == "present"  # type: ignore[union-attr]
    clock.now = 60.0
    runner.poll()
    assert world.content(URL).state == "410"  # type: ignore[union-attr]
    assert runner.entries("removed") == [(60.0, DESK, "removed", URL)]


def test_after_chaser_desk_acts_only_on_a_chaser(smtp: SMTPServer, world: World) -> None:
    clock = FakeClock()
    runner = DeskRunner(world, smtp, [Desk(DESK, "after_chaser", world, 1)], clock=clock)
    first = notice()
    send(smtp, first)
    runner.poll()
    clock.now = 10.0
    runner.poll()
    assert world.content(URL).state == "present"  # type: ignore[union-attr]
    send(smtp, chaser(first))
    runner.poll()
    clock.now = 11.0
    runner.poll()
    assert world.content(URL).state == "404"  # type: ignore[union-attr]


def test_hop_desk_moves_the_host_to_another_network(smtp: SMTPServer, world: World) -> None:
    clock = FakeClock()
    hop = Desk(DESK, "hop", world, hop_to=["91.218.2.31", "2a01:4f8::31"])
    runner = DeskRunner(world, smtp, [hop], clock=clock)
    send(smtp, notice())
    runner.poll()
    assert world.lookup(HOST) == [("A", "91.218.2.31"), ("AAAA", "2a01:4f8::31")]
    assert world.content(URL).state == "present"  # type: ignore[union-attr]
    assert runner.entries("hopped") == [(0.0, DESK, "hopped", URL)]


def test_never_desk_does_nothing(smtp: SMTPServer, world: World) -> None:
    clock = FakeClock()
    runner = DeskRunner(world, smtp, [Desk(DESK, "never", world)], clock=clock)
    first = notice()
    send(smtp, first)
    send(smtp, chaser(first))
    clock.now = 1e6
    runner.poll()
    assert world.content(URL).state == "present"  # type: ignore[union-attr]
    assert [entry[2] for entry in runner.entries()] == ["received", "received"]


def test_bounce_desk_refuses_mail(smtp: SMTPServer, world: World) -> None:
    bounce = Desk(DESK, "bounce", world)
    with DeskRunner(world, smtp, [bounce]), pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send(smtp, notice())
    assert refused.value.recipients[DESK][0] == 550


def test_hotline_removes_after_a_referral_and_replies_nothing(
    smtp: SMTPServer, world: World
) -> None:
    clock = FakeClock()
    hotline = Desk("referrals@hotline.example", "hotline", world, delay=5)
    runner = DeskRunner(world, smtp, [hotline], clock=clock)
    send(smtp, notice(to="referrals@hotline.example"))
    runner.poll()
    clock.now = 5.0
    runner.poll()
    assert world.content(URL).state == "404"  # type: ignore[union-attr]
    assert len(smtp.messages) == 1


def test_desks_ignore_mail_to_others_and_act_once_per_url(smtp: SMTPServer, world: World) -> None:
    clock = FakeClock()
    runner = DeskRunner(world, smtp, [Desk(DESK, "prompt", world)], clock=clock)
    send(smtp, notice(to="someone@else.test"))
    runner.poll()
    assert world.content(URL).state == "present"  # type: ignore[union-attr]
    send(smtp, notice())
    send(smtp, notice(msgid="<n2@hotline.test>"))
    runner.poll()
    assert len(runner.entries("removed")) == 1


def test_desk_declarations_are_validated(world: World) -> None:
    with pytest.raises(ValueError, match="behaviour"):
        Desk(DESK, "sometimes", world)
    with pytest.raises(ValueError, match="hop_to"):
        Desk(DESK, "hop", world)
    with pytest.raises(ValueError, match="removal"):
        Desk(DESK, "prompt", world, removal="500")
