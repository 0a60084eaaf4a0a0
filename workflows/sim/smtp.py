"""An SMTP server (aiosmtpd) that records every accepted message and fails on request.

Faults are set per recipient address. "421", "451" and "550" are answered to RCPT TO
(421 also closes the connection, as RFC 5321 §3.8 requires); "drop" accepts the
recipient, then closes the connection once the message data has arrived, before any
reply: the message is not recorded and the client cannot tell whether it went through.
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
from typing import NamedTuple, cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

FAULTS = frozenset({"421", "451", "550", "drop"})
REPLIES = {
    "421": "421 4.3.2 service shutting down, closing transmission channel",
    "451": "451 4.3.0 local error in processing, try again later",
    "550": "550 5.1.1 mailbox unavailable",
}
# aiosmtpd would otherwise greet with socket.getfqdn(), a query to the system resolver.
SERVER_NAME = "mx.sim.test"


class Received(NamedTuple):
    """One accepted message: envelope sender and recipients, parsed message, raw bytes."""

    sender: str
    recipients: list[str]
    message: EmailMessage
    raw: bytes


class SMTPServer:
    """A threaded SMTP server on a free port that records messages; use as a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Prepare a server on host; port 0 picks a free port at start()."""
        self.host = host
        self.port = port
        self.messages: list[Received] = []
        self._faults: dict[str, tuple[str, int | None]] = {}
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

    def take_fault(self, address: str, kinds: frozenset[str]) -> str | None:
        """Return the fault of address if it is one of kinds, counting one use of it."""
        with self._changed:
            fault, times = self._faults.get(address.lower(), (None, None))
            if fault not in kinds or times == 0:
                return None
            if times is not None:
                self._faults[address.lower()] = (fault, times - 1)
            return fault

    def accept(self, received: Received) -> None:
        """Record a message and wake everyone waiting for one."""
        with self._changed:
            self.messages.append(received)
            self._changed.notify_all()

    def snapshot(self) -> list[Received]:
        """Return a copy of the messages received so far."""
        with self._changed:
            return list(self.messages)

    def messages_to(self, address: str) -> list[Received]:
        """Return the messages whose envelope had address as a recipient."""
        wanted = address.lower()
        return [m for m in self.snapshot() if wanted in (r.lower() for r in m.recipients)]

    def count_by_message_id(self) -> Counter[str]:
        """Count accepted SMTP transactions per Message-ID ("" for none)."""
        return Counter(str(m.message.get("Message-ID", "")).strip() for m in self.snapshot())

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 5.0) -> bool:
        """Wait until predicate(messages) holds; False if it still does not after timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(list(self.messages)), timeout)


class _Recorder:
    """aiosmtpd handler: applies the faults, records what is accepted."""

    def __init__(self, owner: SMTPServer) -> None:
        """Serve owner."""
        self.owner = owner

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        """Refuse a recipient with its fault, or accept it."""
        fault = self.owner.take_fault(address, frozenset(REPLIES))
        if fault is None:
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(options)
            return "250 OK"
        if fault == "421" and server.transport is not None:
            # Close after aiosmtpd has written the reply, which happens before the next tick.
            asyncio.get_running_loop().call_soon(server.transport.close)
        return REPLIES[fault]

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Record the message, or drop the connection when a recipient says so."""
        dropped = [r for r in envelope.rcpt_tos if self.owner.take_fault(r, frozenset({"drop"}))]
        if dropped and server.transport is not None:
            server.transport.close()
            return "451 4.3.0 connection dropped"  # never seen: the connection is gone
        raw = cast(bytes, envelope.original_content)
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        sender = envelope.mail_from or ""
        self.owner.accept(Received(sender, list(envelope.rcpt_tos), parsed, raw))
        return "250 2.0.0 message accepted"


class _Controller(Controller):
    """aiosmtpd Controller serving on a socket we bound ourselves."""

    def __init__(self, handler: _Recorder, sock: socket.socket) -> None:
        """Serve handler on sock, greeting with a fixed name."""
        self._sock = sock
        host, port = sock.getsockname()[:2]
        super().__init__(handler, hostname=host, port=port, server_hostname=SERVER_NAME)

    def _create_server(self) -> Awaitable[asyncio.AbstractServer]:
        """Listen on the pre-bound socket instead of binding host:port again."""
        return self.loop.create_server(self._factory_invoker, sock=self._sock)
