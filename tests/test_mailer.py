"""SMTP delivery against a real aiosmtpd relay on 127.0.0.1, one test per failure mode."""

from __future__ import annotations

import asyncio
import email
import email.policy
import shutil
import socket
import ssl
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from workflows.errors import ConfigError
from workflows.notify.mailer import MAX_REPLY, SMTPSettings, one_line, parse_smtp_url, send_message
from workflows.notify.notices import (
    NoticeItem,
    NoticeRequest,
    build_message,
    render_notice,
    template_environment,
)
from workflows.notify.xarf import xarf_reports

SENDER = "notices@hotline.example"
ABUSE = "abuse@host.example"
NOC = "noc@host.example"


@dataclass
class Relay:
    """An aiosmtpd handler that records what it accepts and answers as told."""

    rcpt_replies: dict[str, str] = field(default_factory=dict)  # address → reply
    data_reply: str = "250 2.0.0 Ok: queued as 4XyZ12"
    hang_up_in_data: bool = False
    hang_up_at_quit: bool = False
    hang_up_at_rcpt: bool = False
    silent_at: str | None = None  # "rcpt" or "data": that reply never comes
    envelopes: list[Envelope] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.hang_up_at_rcpt:
            abort(server)  # before the message: nothing can have been delivered
            return "250 never heard"
        if self.silent_at == "rcpt":
            await asyncio.sleep(30)  # cut short when the client gives up and hangs up
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.hang_up_in_data:
            abort(server)  # the whole message arrived; no reply ever goes out
            return "250 never heard"
        if self.silent_at == "data":
            self.envelopes.append(envelope)  # queued, but the relay never says so
            await asyncio.sleep(30)
        if self.data_reply.startswith("250"):
            self.envelopes.append(envelope)
        return self.data_reply

    async def handle_QUIT(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.hang_up_at_quit:
            abort(server)
        return "221 Bye"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            b"hotline",
            b"s3cr:t@pass",
        )
        if ok:
            self.logins.append(data.login.decode())
        return AuthResult(success=ok, handled=False)  # False: aiosmtpd answers 535


Start = Callable[..., tuple[Relay, int]]


def abort(server: SMTP) -> None:
    """Drop the client's connection at once, as a crashing relay would."""
    assert isinstance(server.transport, asyncio.Transport)
    server.transport.abort()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def start_relay() -> Iterator[Start]:
    """Start aiosmtpd relays on free loopback ports; stop them all afterwards."""
    controllers: list[Controller] = []

    def start(relay: Relay | None = None, **kwargs: Any) -> tuple[Relay, int]:
        relay = relay or Relay()
        port = free_port()
        controller = Controller(
            relay, hostname="127.0.0.1", port=port, server_hostname="relay.test", **kwargs
        )
        controller.start()
        controllers.append(controller)
        return relay, port

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Make a self-signed certificate for 127.0.0.1 with the openssl command."""
    openssl = shutil.which("openssl")
    assert openssl, "the TLS tests need the openssl command (cryptography is not installed)"
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=relay.test",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return context


def message(*recipients: str) -> EmailMessage:
    found = EmailMessage()
    found["From"] = f"Example Hotline <{SENDER}>"
    found["To"] = ", ".join(recipients or (ABUSE,))
    found["Subject"] = "[N-000017] Child sexual abuse material on your network"
    found["Message-ID"] = "<takedown.notice.17.9f3a@hotline.example>"
    found.set_content("Dear abuse team,\n")
    return found


def settings(port: int, **changes: Any) -> SMTPSettings:
    return replace(SMTPSettings("127.0.0.1", port, timeout=5.0), **changes)


# Delivery


def test_sends_and_the_relay_receives_the_message(start_relay: Start) -> None:
    relay, port = start_relay()
    delivery = send_message(message(ABUSE, NOC), settings(port))

    assert (delivery.status, delivery.code, delivery.refused) == ("sent", 250, {})
    assert delivery.reply == "2.0.0 Ok: queued as 4XyZ12"  # the queue id, for the record
    [envelope] = relay.envelopes
    assert envelope.mail_from == SENDER
    assert envelope.rcpt_tos == [ABUSE, NOC]
    assert isinstance(envelope.content, bytes)
    received = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert received["Message-ID"] == "<takedown.notice.17.9f3a@hotline.example>"


def test_sends_with_a_separate_envelope_sender(start_relay: Start) -> None:
    relay, port = start_relay()
    bounces = "bounces+17@hotline.example"
    assert send_message(message(), settings(port), envelope_from=bounces).status == "sent"
    assert relay.envelopes[0].mail_from == bounces


def test_sends_a_rendered_notice_end_to_end(start_relay: Start) -> None:
    relay, port = start_relay()
    at = datetime(2025, 1, 20, 10, 30, tzinfo=UTC)
    item = NoticeItem(
        42,
        "TD-000042",
        "http://files.example/a.jpg",
        "files.example",
        ("185.199.108.10",),
        "csam",
        at,
        None,
        None,
    )
    request = NoticeRequest(
        "notice",
        (ABUSE,),
        "de",
        (item,),
        SENDER,
        "Beschwerdestelle",
        "N-000017",
        "<takedown.notice.17.9f3a@hotline.example>",
        None,
        (),
        at,
    )
    built = build_message(
        request, render_notice(request, template_environment()), xarf_reports(request)
    )

    assert send_message(built, settings(port)).status == "sent"
    content = relay.envelopes[0].content
    assert isinstance(content, bytes)
    received = email.message_from_bytes(content, policy=email.policy.default)
    assert received["Auto-Submitted"] == "auto-generated"
    assert [p.get_filename() for p in received.iter_attachments()] == ["xarf-TD-000042.json"]


def test_sends_over_starttls(start_relay: Start, server_tls: ssl.SSLContext) -> None:
    relay, port = start_relay(tls_context=server_tls, require_starttls=True)
    delivery = send_message(message(), settings(port, security="starttls", verify=False))
    assert delivery.status == "sent"
    assert len(relay.envelopes) == 1


def test_sends_over_implicit_tls(start_relay: Start, server_tls: ssl.SSLContext) -> None:
    relay, port = start_relay(ssl_context=server_tls)
    delivery = send_message(message(), settings(port, security="tls", verify=False))
    assert delivery.status == "sent"
    assert len(relay.envelopes) == 1


def test_refuses_to_send_when_starttls_is_not_offered(start_relay: Start) -> None:
    relay, port = start_relay()
    delivery = send_message(message(), settings(port, security="starttls", verify=False))
    assert (delivery.status, delivery.stage) == ("permanent", "tls")
    assert "STARTTLS" in delivery.reply
    assert relay.envelopes == []


def test_refuses_a_certificate_that_does_not_verify(
    start_relay: Start, server_tls: ssl.SSLContext
) -> None:
    relay, port = start_relay(tls_context=server_tls)
    delivery = send_message(message(), settings(port, security="starttls"))
    assert (delivery.status, delivery.stage) == ("permanent", "tls")
    assert "certificate" in delivery.reply
    assert relay.envelopes == []


def test_logs_in_with_user_and_password(start_relay: Start) -> None:
    relay = Relay()
    _, port = start_relay(relay, authenticator=relay.authenticate, auth_require_tls=False)
    url = f"smtp://hotline:s3cr%3At%40pass@127.0.0.1:{port}?timeout=5"
    assert send_message(message(), parse_smtp_url(url)).status == "sent"
    assert relay.logins == ["hotline"]
    assert len(relay.envelopes) == 1


def test_wrong_password_is_permanent_and_sends_nothing(start_relay: Start) -> None:
    relay = Relay()
    _, port = start_relay(relay, authenticator=relay.authenticate, auth_require_tls=False)
    delivery = send_message(message(), settings(port, username="hotline", password="wrong"))
    assert (delivery.status, delivery.code, delivery.stage) == ("permanent", 535, "auth")
    assert "wrong" not in repr(delivery)
    assert relay.envelopes == []


def test_relay_without_auth_is_permanent_when_we_have_credentials(start_relay: Start) -> None:
    _, port = start_relay()
    delivery = send_message(message(), settings(port, username="hotline", password="x"))
    assert (delivery.status, delivery.stage) == ("permanent", "auth")


# Refusals and faults


def test_421_at_rcpt_is_transient(start_relay: Start) -> None:
    relay, port = start_relay(Relay(rcpt_replies={ABUSE: "421 4.3.2 Service shutting down"}))
    delivery = send_message(message(ABUSE, NOC), settings(port))
    assert (delivery.status, delivery.code, delivery.stage) == ("transient", 421, "rcpt")
    assert relay.envelopes == []


def test_451_at_data_is_transient(start_relay: Start) -> None:
    _, port = start_relay(Relay(data_reply="451 4.3.0 Try again later"))
    delivery = send_message(message(), settings(port))
    assert (delivery.status, delivery.code, delivery.stage) == ("transient", 451, "data")
    assert delivery.reply == "4.3.0 Try again later"


def test_554_at_data_is_permanent(start_relay: Start) -> None:
    _, port = start_relay(Relay(data_reply="554 5.7.1 Message rejected"))
    delivery = send_message(message(), settings(port))
    assert (delivery.status, delivery.code, delivery.stage) == ("permanent", 554, "data")


def test_550_for_every_recipient_is_permanent(start_relay: Start) -> None:
    refusal = "550 5.1.1 No such user"
    _, port = start_relay(Relay(rcpt_replies={ABUSE: refusal, NOC: refusal}))
    delivery = send_message(message(ABUSE, NOC), settings(port))
    assert (delivery.status, delivery.code, delivery.stage) == ("permanent", 550, "rcpt")
    assert delivery.refused == {
        ABUSE: (550, "5.1.1 No such user"),
        NOC: (550, "5.1.1 No such user"),
    }


def test_every_recipient_refused_with_one_4xx_is_transient(start_relay: Start) -> None:
    replies = {ABUSE: "550 5.1.1 No such user", NOC: "450 4.2.1 Mailbox busy"}
    _, port = start_relay(Relay(rcpt_replies=replies))
    delivery = send_message(message(ABUSE, NOC), settings(port))
    assert delivery.status == "transient"
    assert set(delivery.refused) == {ABUSE, NOC}


def test_one_of_two_recipients_refused_is_sent_with_the_refusal(start_relay: Start) -> None:
    relay, port = start_relay(Relay(rcpt_replies={NOC: "550 5.1.1 No such user"}))
    delivery = send_message(message(ABUSE, NOC), settings(port))
    assert delivery.status == "sent"
    assert delivery.refused == {NOC: (550, "5.1.1 No such user")}
    assert relay.envelopes[0].rcpt_tos == [ABUSE]


def test_connection_closed_after_the_message_is_uncertain(start_relay: Start) -> None:
    _, port = start_relay(Relay(hang_up_in_data=True))
    delivery = send_message(message(), settings(port))
    # The relay may have queued it before it died: sending again could deliver it twice.
    assert (delivery.status, delivery.code, delivery.stage) == ("uncertain", None, "data")
    assert "closed the connection" in delivery.reply


def test_relay_silent_after_the_message_is_uncertain(start_relay: Start) -> None:
    relay, port = start_relay(Relay(silent_at="data"))
    delivery = send_message(message(), settings(port, timeout=0.5))
    assert (delivery.status, delivery.code, delivery.stage) == ("uncertain", None, "data")
    assert delivery.reply == "the relay stopped answering (timed out)"
    assert len(relay.envelopes) == 1  # it did arrive: this is why it must not be resent


def test_connection_closed_before_the_message_is_transient(start_relay: Start) -> None:
    relay, port = start_relay(Relay(hang_up_at_rcpt=True))
    delivery = send_message(message(), settings(port))
    assert (delivery.status, delivery.code, delivery.stage) == ("transient", None, "send")
    assert "closed the connection" in delivery.reply
    assert relay.envelopes == []


def test_relay_silent_before_the_message_is_transient(start_relay: Start) -> None:
    relay, port = start_relay(Relay(silent_at="rcpt"))
    delivery = send_message(message(), settings(port, timeout=0.5))
    assert (delivery.status, delivery.code, delivery.stage) == ("transient", None, "send")
    assert delivery.reply == "the relay stopped answering (timed out)"
    assert relay.envelopes == []


def test_hang_up_at_quit_after_acceptance_still_counts_as_sent(start_relay: Start) -> None:
    relay, port = start_relay(Relay(hang_up_at_quit=True))
    assert send_message(message(), settings(port)).status == "sent"  # never sent twice
    assert len(relay.envelopes) == 1


def test_nothing_listening_is_transient() -> None:
    delivery = send_message(message(), settings(free_port()))
    assert (delivery.status, delivery.code, delivery.stage) == ("transient", None, "connect")
    assert delivery.reply == "connection refused"


def test_relay_that_never_answers_is_transient() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts the TCP connection, never says 220
        port = silent.getsockname()[1]
        delivery = send_message(message(), settings(port, timeout=0.3))
    assert (delivery.status, delivery.stage) == ("transient", "connect")
    assert delivery.reply == "the relay stopped answering (timed out)"


def test_reply_is_one_short_line() -> None:
    long = "550-first line\r\n550 " + "x" * 2000
    line = one_line(long.encode())
    assert "\n" not in line and "\r" not in line
    assert len(line) == MAX_REPLY


# TAKEDOWN_SMTP_URL


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example", SMTPSettings("mail.example", 25)),
        ("smtp://Mail.Example:2525/", SMTPSettings("mail.example", 2525)),
        ("smtp://mail.example:587?starttls=1", SMTPSettings("mail.example", 587, "starttls")),
        ("smtps://mail.example", SMTPSettings("mail.example", 465, "tls")),
        ("smtps://[2001:db8::25]:4650", SMTPSettings("2001:db8::25", 4650, "tls")),
        (
            "smtp://us%40er:p%40ss%3Aw@mail.example?timeout=2m&verify=0&helo=hotline.example",
            SMTPSettings(
                "mail.example",
                25,
                username="us@er",
                password="p@ss:w",
                timeout=120.0,
                verify=False,
                helo="hotline.example",
            ),
        ),
    ],
)
def test_parse_smtp_url(url: str, expected: SMTPSettings) -> None:
    assert parse_smtp_url(url) == expected


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://mail.example", "smtp:// or smtps://"),
        ("mail.example:25", "smtp:// or smtps://"),
        ("smtp://", "names no host"),
        ("smtp://mail.example:99999", "bad host or port"),
        ("smtp://mail.example:port", "bad host or port"),
        ("smtp://mail.example/path", "path"),
        ("smtps://mail.example?starttls=1", "starttls=1 needs smtp://"),
        ("smtp://mail.example?starttls=maybe", "starttls must be 1 or 0"),
        ("smtp://mail.example?timeout=soon", "timeout"),
        ("smtp://mail.example?timeout=0", "more than zero"),
        ("smtp://mail.example?tls=1", "unknown option 'tls'"),
        ("smtp://mail.example?verify=0&verify=1", "given twice"),
        ("smtp://:hunter2@mail.example", "needs a user name"),
        ("smtp://user:hunter2@mail.example\r\nX", "control characters"),
    ],
)
def test_parse_smtp_url_refuses(url: str, problem: str) -> None:
    with pytest.raises(ConfigError, match="TAKEDOWN_SMTP_URL") as caught:
        parse_smtp_url(url)
    assert problem in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_password_from_the_file_wins_over_the_url() -> None:
    found = parse_smtp_url("smtp://hotline:old@mail.example", password="from-file")
    assert (found.username, found.password) == ("hotline", "from-file")


def test_password_from_the_file_needs_a_user_in_the_url() -> None:
    with pytest.raises(ConfigError, match="needs a user name"):
        parse_smtp_url("smtp://mail.example", password="from-file")


def test_settings_never_show_the_password() -> None:
    found = parse_smtp_url("smtp://hotline:hunter2@mail.example")
    assert "hunter2" not in repr(found) and "hunter2" not in str(found)
    assert "password='***'" in repr(found)


def test_settings_warn_about_a_password_in_clear_text(caplog: pytest.LogCaptureFixture) -> None:
    parse_smtp_url("smtp://hotline:hunter2@mail.example")
    assert "without TLS" in caplog.text and "hunter2" not in caplog.text


def test_nothing_logged_contains_the_password(
    start_relay: Start, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG", logger="workflows")
    relay = Relay()
    _, port = start_relay(relay, authenticator=relay.authenticate, auth_require_tls=False)
    url = f"smtp://hotline:s3cr%3At%40pass@127.0.0.1:{port}?timeout=5"
    assert send_message(message(), parse_smtp_url(url)).status == "sent"
    assert "sent <takedown.notice.17.9f3a@hotline.example>" in caplog.text
    assert "s3cr" not in caplog.text
