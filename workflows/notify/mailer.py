"""Deliver notices over SMTP and say what became of each one, never raising for the network.

    status      when                                                     what to do
    sent        the relay took the message for at least one recipient    nothing; `refused`
                                                                         lists the others
    transient   a 4xx reply; refused, reset or timed-out connection;     retry with backoff
                the server hung up before the message had gone out
                (RFC 5321 §4.2.1: 4yz is transient)
    uncertain   the whole message went out, then the connection closed   never resend by
                or timed out before the relay's reply to it: the relay   itself: someone
                may have taken it (RFC 1047: resending duplicates it)    decides
    permanent   a 5xx reply; every recipient refused with 5xx;           record it, move on
                STARTTLS asked for but not offered; a certificate that
                does not verify; AUTH refused (535)

`stage` says where it ended: connect, tls, auth, send (or mail, rcpt, data when the
reply says which) or done. A permanent failure at `tls` or `auth` is our own
configuration, not the recipient's: the caller should not count it as a bounce. Once the
relay has accepted the message, nothing at QUIT can turn "sent" into a failure, or the
notice would be sent twice.

TAKEDOWN_SMTP_URL: `smtp://[user:pass@]host[:port]` (plain, port 25), `?starttls=1`
(STARTTLS required), `smtps://` (implicit TLS, port 465); `?timeout=30s` (the longest wait
for the connection and for each reply of the relay, default 30 s); `?helo=name`;
`?verify=0` skips certificate checks and belongs only to test relays. Credentials over
plain `smtp://` without STARTTLS travel in clear text: use it only on loopback.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import smtplib
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from workflows.core.durations import parse_duration
from workflows.errors import ConfigError

log = logging.getLogger(__name__)

VARIABLE = "TAKEDOWN_SMTP_URL"
MAX_REPLY = 500
_DEFAULT_PORTS = {"smtp": 25, "smtps": 465}
_LOOPBACK = ("localhost", "127.0.0.1", "::1")
_BOOLEANS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}

Status = Literal["sent", "transient", "uncertain", "permanent"]


@dataclass(frozen=True, repr=False)
class SMTPSettings:
    """Where and how to hand notices to the mail relay."""

    host: str
    port: int
    security: Literal["plain", "starttls", "tls"] = "plain"
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0  # seconds to connect, and to wait for each reply
    verify: bool = True  # False only for test relays with self-signed certificates
    helo: str | None = None  # the EHLO name; None: this machine's FQDN

    def __repr__(self) -> str:
        secret = "'***'" if self.password is not None else "None"
        return (
            f"SMTPSettings(host={self.host!r}, port={self.port}, security={self.security!r}, "
            f"username={self.username!r}, password={secret}, timeout={self.timeout}, "
            f"verify={self.verify}, helo={self.helo!r})"
        )


@dataclass(frozen=True)
class Delivery:
    """What became of one message: its status, the deciding reply and refused recipients."""

    status: Status
    code: int | None
    reply: str  # one line, at most MAX_REPLY characters
    refused: dict[str, tuple[int, str]] = field(default_factory=dict)
    stage: str = "done"


class _SetupFailed(Exception):
    """The session cannot be made safe or authenticated as configured."""

    def __init__(self, stage: str, reply: str, code: int | None = None) -> None:
        super().__init__(reply)
        self.stage, self.reply, self.code = stage, reply, code


def parse_smtp_url(url: str, *, password: str | None = None) -> SMTPSettings:
    """Parse TAKEDOWN_SMTP_URL; PASSWORD (from TAKEDOWN_SMTP_PASSWORD_FILE) wins over the URL's."""
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url.strip()):
        raise ConfigError(f"{VARIABLE}: must not contain spaces or control characters")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise ConfigError(f"{VARIABLE}: bad host or port") from None
    if parts.scheme not in _DEFAULT_PORTS:
        raise ConfigError(f"{VARIABLE}: must start with smtp:// or smtps://")
    if not parts.hostname:
        raise ConfigError(f"{VARIABLE}: names no host, like smtp://mail.example:25")
    if parts.path not in ("", "/") or parts.fragment:
        raise ConfigError(f"{VARIABLE}: must not have a path or fragment after the port")
    options = _options(parts.query)
    starttls = options.pop("starttls", False)
    if starttls and parts.scheme == "smtps":
        raise ConfigError(f"{VARIABLE}: smtps:// is TLS already; starttls=1 needs smtp://")
    username = unquote(parts.username) if parts.username else None
    if password is None and parts.password is not None:
        password = unquote(parts.password)
    if password is not None and username is None:
        raise ConfigError(f"{VARIABLE}: a password needs a user name (smtp://user@host)")
    found = SMTPSettings(
        host=parts.hostname,
        port=port or _DEFAULT_PORTS[parts.scheme],
        security="tls" if parts.scheme == "smtps" else "starttls" if starttls else "plain",
        username=username,
        password=password,
        **options,
    )
    if found.username and found.security == "plain" and found.host not in _LOOPBACK:
        log.warning("%s logs in without TLS: use smtps:// or ?starttls=1", VARIABLE)
    return found


def _options(query: str) -> dict[str, Any]:
    """Read starttls, verify, timeout and helo from the URL's query; refuse anything else."""
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise ConfigError(f"{VARIABLE}: the part after ? is not name=value pairs") from None
    found: dict[str, Any] = {}
    for name, value in pairs:
        if name in found:
            raise ConfigError(f"{VARIABLE}: {name} is given twice")
        if name in ("starttls", "verify"):
            if value.lower() not in _BOOLEANS:
                raise ConfigError(f"{VARIABLE}: {name} must be 1 or 0")
            found[name] = _BOOLEANS[value.lower()]
        elif name == "timeout":
            found[name] = parse_duration(value, what=f"{VARIABLE} timeout")
            if found[name] <= 0:
                raise ConfigError(f"{VARIABLE}: timeout must be more than zero")
        elif name == "helo":
            if not value:
                raise ConfigError(f"{VARIABLE}: helo needs a host name")
            found[name] = value
        else:
            raise ConfigError(
                f"{VARIABLE}: unknown option {name!r} (starttls, verify, timeout, helo)"
            )
    return found


def send_message(
    message: EmailMessage, settings: SMTPSettings, *, envelope_from: str | None = None
) -> Delivery:
    """Send MESSAGE through the relay in SETTINGS over a connection of its own and report
    the outcome; never raise for SMTP. (Relay.send keeps connections between messages.)"""
    delivery, smtp = _send_on(message, settings, envelope_from, None)
    if smtp is not None:
        _quit(smtp)
    return delivery


def _send_on(
    message: EmailMessage, settings: SMTPSettings, envelope_from: str | None, smtp: _Client | None
) -> tuple[Delivery, _Client | None]:
    """Send MESSAGE over SMTP, an open connection, or a new one when None; return the
    outcome and the connection if it can carry another message (closed otherwise)."""
    stage = ["connect" if smtp is None else "send"]  # where the session is, read on failure
    keep = False  # whether the session is clean for another message afterwards
    try:
        if smtp is None:
            smtp = _open(settings, stage)
        smtp.new_message()
        stage[0] = "send"  # MAIL, RCPT and DATA: their own errors say which
        refused = smtp.send_message(message, from_addr=envelope_from)
        code, reply = smtp.data_reply
        delivery = Delivery("sent", code, one_line(reply), _clean(refused))
        log.info(
            "sent %s via %s:%d: %s",
            message["Message-ID"],
            settings.host,
            settings.port,
            delivery.reply,
        )
        keep = True
    except _SetupFailed as exc:
        delivery = Delivery("permanent", exc.code, one_line(exc.reply), stage=exc.stage)
    except smtplib.SMTPRecipientsRefused as exc:
        delivery = _all_refused(exc.recipients)
        keep = True  # smtplib said RSET: the session is clean again
    except smtplib.SMTPResponseException as exc:
        delivery = _by_code(exc.smtp_code, exc.smtp_error, _stage_of(exc, stage[0]))
        # After a refused MAIL, RCPT or DATA smtplib says RSET; 421 closes the session.
        keep = stage[0] == "send" and exc.smtp_code != 421
    except ssl.SSLCertVerificationError as exc:
        delivery = Delivery(
            "permanent", None, one_line(exc.verify_message or str(exc)), stage="tls"
        )
    except (smtplib.SMTPException, OSError) as exc:
        if smtp is not None and smtp.message_sent:
            delivery = Delivery("uncertain", None, _lost(exc), stage="data")
        else:
            delivery = Delivery("transient", None, _lost(exc), stage=stage[0])
            if smtp is not None:
                smtp.lost_early = smtp.replies == 0 and not _timed_out(exc)
    except BaseException:  # a task's time limit, a shutdown: no connection left behind
        if smtp is not None:
            smtp.close()
        raise
    if smtp is not None and not (keep and smtp.sock is not None):  # 421: smtplib closed it
        _quit(smtp)
        smtp = None
    return delivery, smtp


class Relay:
    """The relay of SETTINGS with connections kept open between messages, for any thread.

    A connection per notice costs the greeting, EHLO (and STARTTLS, EHLO again, AUTH) and
    QUIT before and after its four exchanges (MAIL, RCPT, DATA, the message): at 50 ms a
    round trip, half of each notice's time (issue 11's latency workload). A kept
    connection serves at most PER_CONNECTION messages (Exchange's receive connectors take
    20 by default) and is dropped after IDLE seconds unused (relays hang up on idle
    sessions: Postfix after 300 s). A kept connection that proves dead before anything of
    the message was accepted is replaced at once by a new one for the same message: nothing
    left, so nothing can arrive twice."""

    def __init__(
        self,
        settings: SMTPSettings,
        *,
        idle: float = 20.0,
        per_connection: int = 20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.idle = idle
        self.per_connection = per_connection
        self.clock = clock
        self._kept: list[tuple[_Client, float]] = []  # open connections, when last used
        self._lock = threading.Lock()
        self.opened = 0  # connections opened, for tests and benchmarks

    def send(self, message: EmailMessage, envelope_from: str | None = None) -> Delivery:
        """Send MESSAGE over a kept connection if one is open, else a new one."""
        kept = self._take()
        if kept is not None:
            delivery, smtp = _send_on(message, self.settings, envelope_from, kept)
            if not _stale(delivery, kept):
                self._give_back(smtp)
                return delivery
            if smtp is not None:
                _quit(smtp)
        self.opened += 1
        delivery, smtp = _send_on(message, self.settings, envelope_from, None)
        self._give_back(smtp)
        return delivery

    def _take(self) -> _Client | None:
        """Return a kept connection used recently, closing the ones idle for too long."""
        now, stale = self.clock(), []
        with self._lock:
            while self._kept:
                smtp, used = self._kept.pop()
                if now - used <= self.idle:
                    break
                stale.append(smtp)
            else:
                smtp = None
        for old in stale:
            _quit(old)
        return smtp

    def _give_back(self, smtp: _Client | None) -> None:
        if smtp is None:
            return
        if smtp.messages >= self.per_connection:
            _quit(smtp)
            return
        with self._lock:
            self._kept.append((smtp, self.clock()))

    def close(self) -> None:
        """Say goodbye on every kept connection."""
        with self._lock:
            kept, self._kept = self._kept, []
        for smtp, _ in kept:
            _quit(smtp)


def _stale(delivery: Delivery, smtp: _Client) -> bool:
    """Tell whether a kept connection proved dead before the relay answered anything of
    the message (closed under us, or 421 to MAIL): then a new connection may carry it. A
    relay that stalls (a timeout) is not dead: that is a transient failure like any other."""
    if delivery.status != "transient" or smtp.message_sent:
        return False
    return smtp.lost_early or (delivery.stage == "mail" and delivery.code == 421)


class _Client(smtplib.SMTP):
    """smtplib.SMTP that keeps the relay's answer to DATA and knows when the message left."""

    data_reply: tuple[int, bytes] = (0, b"")
    message_sent = False  # the whole message, final dot included, went out
    _go_ahead = False  # the last reply was 354: what is sent next is the message
    messages = 0  # messages begun on this connection
    replies = 0  # replies read for the current message
    lost_early = False  # the connection was gone before any reply to the current message

    def new_message(self) -> None:
        """Forget the last message's marks before the next one on this connection."""
        self.data_reply, self.message_sent, self._go_ahead = (0, b""), False, False
        self.replies, self.lost_early = 0, False
        self.messages += 1

    def data(self, msg: Any) -> tuple[int, bytes]:
        """Send the message body and remember the relay's reply (its queue id, for the record)."""
        self.data_reply = super().data(msg)
        return self.data_reply

    def getreply(self) -> tuple[int, bytes]:
        """Read a reply, noting whether it invites the message (354)."""
        reply = super().getreply()
        self._go_ahead = reply[0] == 354
        self.replies += 1
        return reply

    def send(self, s: Any) -> None:
        """Send S; after a 354, once it is all sent, the message's fate is the relay's."""
        super().send(s)
        if self._go_ahead:
            self.message_sent = True


class _TLSClient(_Client, smtplib.SMTP_SSL):
    """The same over implicit TLS (smtps://, RFC 8314 §3)."""


def _open(settings: SMTPSettings, stage: list[str]) -> _Client:
    """Connect, secure and log in as SETTINGS say; close the connection if any step fails."""
    context = _tls_context(settings.verify)
    common: dict[str, Any] = {"local_hostname": settings.helo, "timeout": settings.timeout}
    smtp: _Client
    if settings.security == "tls":
        smtp = _TLSClient(settings.host, settings.port, context=context, **common)
    else:
        smtp = _Client(settings.host, settings.port, **common)
    try:
        if settings.security == "starttls":
            stage[0] = "tls"
            smtp.ehlo()
            if not smtp.has_extn("starttls"):  # RFC 3207: never fall back to clear text
                raise _SetupFailed("tls", "the relay does not offer STARTTLS")
            smtp.starttls(context=context)
            smtp.ehlo()
        if settings.username is not None:
            stage[0] = "auth"
            _login(smtp, settings.username, settings.password or "")
    except BaseException:
        smtp.close()
        raise
    return smtp


def _login(smtp: _Client, username: str, password: str) -> None:
    try:
        smtp.login(username, password)
    except smtplib.SMTPNotSupportedError:
        raise _SetupFailed("auth", "the relay does not offer AUTH") from None
    except (smtplib.SMTPResponseException, smtplib.SMTPServerDisconnected):
        raise  # decided by the reply code (535 permanent, 454 transient) or as a hang-up
    except smtplib.SMTPException as exc:  # "No suitable authentication method found."
        raise _SetupFailed("auth", str(exc)) from None


@functools.cache
def _tls_context(verify: bool) -> ssl.SSLContext:
    """Return the TLS context of relay connections, built once per process: loading the
    system's CA certificates took 50 ms of every notice sent (py-spy, 10,000-URL intake)."""
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _quit(smtp: _Client) -> None:
    """Say goodbye (RFC 5321 §4.1.1.10) if still connected; a failure here changes nothing."""
    with contextlib.suppress(smtplib.SMTPException, OSError):
        if smtp.sock is not None:
            smtp.quit()
    smtp.close()


def _stage_of(exc: smtplib.SMTPResponseException, stage: str) -> str:
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return "mail"
    if isinstance(exc, smtplib.SMTPDataError):
        return "data"
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return "auth"
    if isinstance(exc, smtplib.SMTPConnectError):
        return "connect"
    return stage


def _by_code(code: int, reply: bytes | str, stage: str) -> Delivery:
    """Decide by the reply code: 5yz is permanent, anything else is worth a retry."""
    status: Status = "permanent" if 500 <= code <= 599 else "transient"
    return Delivery(status, code, one_line(reply), stage=stage)


def _all_refused(recipients: dict[str, tuple[int, bytes]]) -> Delivery:
    """Every recipient was refused: permanent only if every refusal was a 5xx."""
    refused = _clean(recipients)
    codes = [code for code, _ in refused.values()]
    status: Status = "permanent" if codes and all(500 <= c <= 599 for c in codes) else "transient"
    code, reply = next(iter(refused.values()), (None, "every recipient was refused"))
    return Delivery(status, code, reply, refused, stage="rcpt")


def _lost(exc: smtplib.SMTPException | OSError) -> str:
    """Say in one line how the session was lost without an answer."""
    if _timed_out(exc):
        reply = "the relay stopped answering (timed out)"
    elif isinstance(exc, smtplib.SMTPServerDisconnected):
        reply = f"the relay closed the connection ({exc})"
    elif isinstance(exc, ConnectionRefusedError):
        reply = "connection refused"
    else:
        reply = f"{type(exc).__name__}: {exc}"
    return one_line(reply)


def _timed_out(exc: BaseException) -> bool:
    """Tell whether the relay stopped answering (rather than hung up or refused)."""
    # smtplib turns a reply that timed out into SMTPServerDisconnected; the cause says so.
    return isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError)


def _clean(refused: dict[str, tuple[int, bytes]]) -> dict[str, tuple[int, str]]:
    return {address: (code, one_line(reply)) for address, (code, reply) in refused.items()}


def one_line(reply: bytes | str) -> str:
    """Make a server reply one printable line of at most MAX_REPLY characters."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return text if len(text) <= MAX_REPLY else text[: MAX_REPLY - 1] + "…"
