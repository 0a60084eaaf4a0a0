"""Connections to the mail relay kept open between notices (mailer.Relay), against aiosmtpd.

A kept connection saves the greeting, EHLO and QUIT of every notice; it must never cost a
notice its "at most once": one that proves dead before the relay accepted anything of the
message is replaced by a new connection for the same message, and one that dies after the
message went out leaves it uncertain, never sent again.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from workflows.notify.mailer import Relay, SMTPSettings, send_message

SENDER = "reports@hotline.example"


@dataclass
class Recorder:
    """Records each accepted message with the connection (session) it came over."""

    accepted: list[tuple[int, list[str]]] = field(default_factory=list)  # (session, to)
    sessions: list[SMTP] = field(default_factory=list)  # every connection, in order
    mail_replies: list[str] = field(default_factory=list)  # answers to the next MAILs
    refuse: set[str] = field(default_factory=set)  # recipients answered 550
    hang_up_in_data: bool = False

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list
    ) -> list[str]:
        session.host_name = hostname
        self.sessions.append(server)
        return responses

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list
    ) -> str:
        if self.mail_replies:
            reply = self.mail_replies.pop(0)
            if reply.startswith("421"):
                await server.push(reply)
                assert isinstance(server.transport, asyncio.Transport)
                server.transport.close()
            return reply
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.hang_up_in_data:
            assert isinstance(server.transport, asyncio.Transport)
            server.transport.abort()  # the whole message arrived; no reply ever goes out
            return "250 never heard"
        self.accepted.append((id(session), list(envelope.rcpt_tos)))
        return "250 2.0.0 Ok: queued"


@pytest.fixture
def relay_server() -> Iterator[tuple[Recorder, Controller]]:
    recorder = Recorder()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(recorder, hostname="127.0.0.1", port=port, server_hostname="relay.test")
    controller.start()
    yield recorder, controller
    controller.stop()


def settings_of(controller: Controller) -> SMTPSettings:
    return SMTPSettings("127.0.0.1", controller.port, timeout=5.0, helo="hotline.test")


def notice(n: int, to: str = "abuse@host.example") -> EmailMessage:
    message = EmailMessage()
    message["From"] = SENDER
    message["To"] = to
    message["Subject"] = f"[N-{n:06d}] notice"
    message["Message-ID"] = f"<takedown.notice.{n}@hotline.example>"
    message.set_content("Dear abuse team,\n")
    return message


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_notices_share_one_connection(relay_server: tuple[Recorder, Controller]) -> None:
    recorder, controller = relay_server
    with closing(Relay(settings_of(controller))) as relay:
        outcomes = [relay.send(notice(n), SENDER).status for n in range(3)]
    assert outcomes == ["sent"] * 3
    assert len(recorder.accepted) == 3 and len({s for s, _ in recorder.accepted}) == 1
    assert relay.opened == 1 and len(recorder.sessions) == 1


def test_without_a_relay_each_notice_has_its_own_connection(
    relay_server: tuple[Recorder, Controller],
) -> None:
    recorder, controller = relay_server
    for n in range(2):
        assert send_message(notice(n), settings_of(controller)).status == "sent"
    assert len({s for s, _ in recorder.accepted}) == 2


def test_a_connection_the_relay_dropped_is_replaced_and_the_notice_sent_once(
    relay_server: tuple[Recorder, Controller],
) -> None:
    recorder, controller = relay_server
    with closing(Relay(settings_of(controller))) as relay:
        assert relay.send(notice(1)).status == "sent"
        # The relay hangs up on the idle session (as Postfix does after its timeout).
        first = recorder.sessions[0]
        assert isinstance(first.transport, asyncio.Transport)
        controller.loop.call_soon_threadsafe(first.transport.abort)
        assert relay.send(notice(2)).status == "sent"
    assert [to for _, to in recorder.accepted] == [["abuse@host.example"]] * 2
    assert relay.opened == 2


def test_421_at_mail_on_a_kept_connection_sends_the_notice_on_a_new_one(
    relay_server: tuple[Recorder, Controller],
) -> None:
    recorder, controller = relay_server
    with closing(Relay(settings_of(controller))) as relay:
        assert relay.send(notice(1)).status == "sent"
        recorder.mail_replies.append("421 4.7.0 too many messages in this session")
        delivery = relay.send(notice(2))
    assert delivery.status == "sent" and len(recorder.accepted) == 2 and relay.opened == 2


def test_a_refused_recipient_leaves_the_connection_usable(
    relay_server: tuple[Recorder, Controller],
) -> None:
    recorder, controller = relay_server
    recorder.refuse.add("dead@host.example")
    with closing(Relay(settings_of(controller))) as relay:
        refused = relay.send(notice(1, "dead@host.example"))
        sent = relay.send(notice(2))
    assert (refused.status, refused.code, sent.status) == ("permanent", 550, "sent")
    assert relay.opened == 1


def test_a_message_lost_after_it_went_out_is_uncertain_and_never_sent_again(
    relay_server: tuple[Recorder, Controller],
) -> None:
    recorder, controller = relay_server
    with closing(Relay(settings_of(controller))) as relay:
        assert relay.send(notice(1)).status == "sent"
        recorder.hang_up_in_data = True
        lost = relay.send(notice(2))
        recorder.hang_up_in_data = False
        after = relay.send(notice(3))
    assert (lost.status, after.status) == ("uncertain", "sent")
    assert len(recorder.sessions) == 2  # the lost message went once, on the kept connection
    assert relay.opened == 2


def test_an_idle_connection_is_dropped_and_a_busy_one_retired(
    relay_server: tuple[Recorder, Controller],
) -> None:
    recorder, controller = relay_server
    clock = Clock()
    with closing(Relay(settings_of(controller), idle=20, per_connection=2, clock=clock)) as relay:
        relay.send(notice(1))
        clock.now += 21  # idle too long: a new connection
        relay.send(notice(2))
        relay.send(notice(3))  # the second message on that one: then it is retired
        relay.send(notice(4))
    assert relay.opened == 3
    assert len(recorder.accepted) == 4
