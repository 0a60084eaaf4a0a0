"""An SMTP server (aiosmtpd) that records every accepted message and fails on request.

Faults are set per recipient address and count each use:

    421, 451, 550  answered to RCPT TO (421 also closes the connection, RFC 5321 §3.8)
    stall-rcpt     RCPT TO gets no answer: the client must give up before the message
    drop           the recipient is accepted; once the message data has arrived the
                   connection closes before any reply: the message is not recorded
    stall-data     the message data is recorded (the relay queued it), then no reply
                   ever comes

`stall_greetings(n)` makes the next n connections wait for a greeting that never comes.
A stall lasts `stall_seconds` at most, or until the client hangs up. After drop and the
stalls the client cannot tell whether its message went through; every fault that fires
is logged in `fired()`, and every message whose data arrived in `transfers()`.

A slow relay: the reply to each message's data (and a drop's hang-up) comes `latency`
seconds after the data arrived (0: at once); the message is accepted, and recorded in
`messages`, only then. Connections wait side by side on aiosmtpd's event loop. The server
knows no World: a caller with one sets `server.latency = world.latency.smtp`.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from typing import AnyStr, NamedTuple, cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

FAULTS = frozenset({"421", "451", "550", "drop", "stall-rcpt", "stall-data"})
REPLIES = {
    "421": "421 4.3.2 service shutting down, closing transmission channel",
    "451": "451 4.3.0 local error in processing, try again later",
    "550": "550 5.1.1 mailbox unavailable",
}
AT_RCPT = frozenset({*REPLIES, "stall-rcpt"})
AT_DATA = frozenset({"drop", "stall-data"})
GREETING = "stall-greeting"
# aiosmtpd would otherwise greet with socket.getfqdn(), a query to the system resolver.
SERVER_NAME = "mx.sim.test"


class Received(NamedTuple):
    """One accepted message: envelope sender and recipients, parsed message, raw bytes."""

    sender: str
    recipients: list[str]
    message: EmailMessage
    raw: bytes


class Fired(NamedTuple):
    """One fault that struck: its kind, the recipient ("" at the greeting), the Message-ID."""

    fault: str
    address: str
    message_id: str  # "" when it struck before the message was sent


class SMTPServer:
    """A threaded SMTP server on a free port that records messages; use as a context manager."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        stall_seconds: float = 60.0,
        latency: float = 0.0,
    ) -> None:
        """Prepare a server on host; port 0 picks a free port at start().

        latency: seconds between a message's data arriving and the reply to it; the
        attribute of that name may be changed while the server runs.
        """
        self.host = host
        self.port = port
        self.stall_seconds = stall_seconds  # longest a stall lasts before the server hangs up
        self.latency = latency
        self.messages: list[Received] = []
        self._faults: dict[str, tuple[str, int | None]] = {}
        self._greeting_stalls = 0
        self._fired: list[Fired] = []
        self._transfers: Counter[str] = Counter()
        self._changed = threading.Condition()
        self._controller: _Controller | None = None

    @property
    def url(self) -> str:
        """Return the TAKEDOWN_SMTP_URL form, smtp://host:port."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"smtp://{host}:{self.port}"

    def start(self) -> SMTPServer:
        """Bind and serve in aiosmtpd's thread."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            # Binding here, not in aiosmtpd, gives port 0 a real port before its self-test.
            sock.bind((self.host, self.port))
            self.port = sock.getsockname()[1]
            controller = _Controller(_Recorder(self), sock)
            controller.start()
        except BaseException:
            sock.close()
            raise
        self._controller = controller
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; safe to call twice."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SMTPServer:
        """Start on entering the with-block."""
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        """Stop on leaving the with-block."""
        self.stop()

    def set_fault(self, address: str, fault: str | None, times: int | None = None) -> None:
        """Fail mail to address in the given way (the next `times` attempts), or heal it."""
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"unknown SMTP fault {fault!r}")
        with self._changed:
            if fault is None:
                self._faults.pop(address.lower(), None)
            else:
                self._faults[address.lower()] = (fault, times)

    def stall_greetings(self, times: int) -> None:
        """Leave the next `times` connections without a greeting."""
        with self._changed:
            self._greeting_stalls = times

    def take_fault(self, address: str, kinds: frozenset[str], message_id: str = "") -> str | None:
        """Return the fault of address if it is one of kinds, counting one use of it."""
        with self._changed:
            fault, times = self._faults.get(address.lower(), (None, None))
            if fault is None or fault not in kinds or times == 0:
                return None
            if times is not None:
                self._faults[address.lower()] = (fault, times - 1)
            self._fired.append(Fired(fault, address.lower(), message_id))
            return fault

    def take_greeting_stall(self) -> bool:
        """Say whether this connection's greeting stalls, counting one use."""
        with self._changed:
            if self._greeting_stalls <= 0:
                return False
            self._greeting_stalls -= 1
            self._fired.append(Fired(GREETING, "", ""))
            return True

    def fired(self) -> list[Fired]:
        """Return every fault that struck so far, in order."""
        with self._changed:
            return list(self._fired)

    def transferred(self, message_id: str) -> None:
        """Count one arrival of a message's data, whatever became of it then."""
        with self._changed:
            self._transfers[message_id] += 1

    def transfers(self) -> Counter[str]:
        """Count the arrivals of message data per Message-ID, accepted or not."""
        with self._changed:
            return Counter(self._transfers)

    def accept(self, received: Received) -> None:
        """Record a message and wake everyone waiting for one."""
        with self._changed:
            self.messages.append(received)
            self._changed.notify_all()

    def snapshot(self) -> list[Received]:
        """Return a copy of the messages received so far."""
        with self._changed:
            return list(self.messages)

    def count_received(self) -> int:
        """Return how many messages were accepted so far."""
        with self._changed:
            return len(self.messages)

    def messages_to(self, address: str) -> list[Received]:
        """Return the messages whose envelope had address as a recipient."""
        wanted = address.lower()
        return [m for m in self.snapshot() if wanted in (r.lower() for r in m.recipients)]

    def count_by_message_id(self) -> Counter[str]:
        """Count accepted SMTP transactions per Message-ID ("" for none)."""
        return Counter(message_id(m.message) for m in self.snapshot())

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 5.0) -> bool:
        """Wait until predicate(messages) holds; False if it still does not after timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(list(self.messages)), timeout)


def message_id(message: EmailMessage) -> str:
    """Return a message's Message-ID ("" for none)."""
    return str(message.get("Message-ID", "")).strip()


async def stall(server: SMTP, seconds: float) -> None:
    """Say nothing for SECONDS, then hang up; the client hanging up first cuts it short."""
    try:
        await asyncio.sleep(seconds)
    finally:
        # Also when cancelled: a stall at the greeting is outside aiosmtpd's own cleanup.
        if server.transport is not None:
            server.transport.close()


class _Recorder:
    """aiosmtpd handler: applies the faults, records what is accepted."""

    def __init__(self, owner: SMTPServer) -> None:
        """Serve owner."""
        self.owner = owner

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        """Refuse a recipient with its fault, stall, or accept it."""
        fault = self.owner.take_fault(address, AT_RCPT)
        if fault is None:
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(options)
            return "250 OK"
        if fault == "stall-rcpt":
            await stall(server, self.owner.stall_seconds)
            return "451 4.4.2 timed out"  # never seen: the connection is gone
        if fault == "421" and server.transport is not None:
            # Close after aiosmtpd has written the reply, which happens before the next tick.
            asyncio.get_running_loop().call_soon(server.transport.close)
        return REPLIES[fault]

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Record the message, unless a recipient's fault drops it; maybe never answer."""
        raw = cast(bytes, envelope.original_content)
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        found = message_id(parsed)
        self.owner.transferred(found)
        if self.owner.latency > 0:
            await asyncio.sleep(self.owner.latency)
        faults = {self.owner.take_fault(r, AT_DATA, found) for r in envelope.rcpt_tos}
        if "drop" in faults:
            if server.transport is not None:
                server.transport.close()
            return "451 4.3.0 connection dropped"  # never seen: the connection is gone
        sender = envelope.mail_from or ""
        self.owner.accept(Received(sender, list(envelope.rcpt_tos), parsed, raw))
        if "stall-data" in faults:
            await stall(server, self.owner.stall_seconds)
        return "250 2.0.0 message accepted"


class _SimSMTP(SMTP):
    """aiosmtpd's SMTP whose greeting, its first reply, can stall."""

    _greeted = False

    async def push(self, status: AnyStr) -> None:
        """Send a reply; the greeting only if no greeting stall is owed."""
        if not self._greeted:
            self._greeted = True
            recorder = cast(_Recorder, self.event_handler)
            if recorder.owner.take_greeting_stall():
                await stall(self, recorder.owner.stall_seconds)
                return
        await super().push(status)


class _Controller(Controller):
    """aiosmtpd Controller serving on a socket we bound ourselves."""

    def __init__(self, handler: _Recorder, sock: socket.socket) -> None:
        """Serve handler on sock, greeting with a fixed name."""
        self._sock = sock
        host, port = sock.getsockname()[:2]
        super().__init__(handler, hostname=host, port=port, server_hostname=SERVER_NAME)

    def factory(self) -> SMTP:
        """Serve each connection with the SMTP whose greeting can stall."""
        return _SimSMTP(self.handler, **self.SMTP_kwargs)

    def _create_server(self) -> Awaitable[asyncio.AbstractServer]:
        """Listen on the pre-bound socket instead of binding host:port again."""
        return self.loop.create_server(self._factory_invoker, sock=self._sock)
