"""An authoritative DNS server for the simulated world, over UDP and TCP on one port.

It answers from the World (CNAME chains followed like a recursive resolver) and fails on
request, per name (`World.dns_faults`):

    servfail, refused  the answer has that rcode
    timeout            no answer at all
    truncate           over UDP an empty answer with TC set; over TCP the full answer

Every answer leaves `world.latency.dns` seconds after its query arrived (at once for 0).
The waits overlap: one thread sends every delayed answer at its time, so 200 queries
arriving together are all answered about one latency later, over UDP and TCP alike.
`queries` logs every query (name, type, transport), `answers` what each one got;
`count_answers` counts the latter by outcome.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import select
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset

from workflows.sim.world import World, normalize

log = logging.getLogger(__name__)

MAX_HOPS = 16
# Short, because tests and the demo change records while clients run (content hops,
# names deleted); real zones use minutes to hours, and the engine honours whatever it gets.
TTL = 1
POLL = 0.5  # seconds per wait; stop() wakes every wait at once through a socket pair
IDLE_TCP = 10.0  # close a TCP connection idle this long, as real servers do
QueryLogEntry = tuple[str, str, str]
AnswerLogEntry = tuple[str, str, str]  # (name, transport, outcome)


def _rdata(rtype: str, value: str) -> dns.rdata.Rdata:
    """Build one rdata from the world's text form."""
    rdtype = dns.rdatatype.from_text(rtype)
    if rdtype == dns.rdatatype.TXT:
        # World TXT values are plain text; split into the 255-byte strings TXT requires.
        raw = value.encode()
        chunks = [raw[i : i + 255] for i in range(0, len(raw), 255)] or [b""]
        return dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, rdtype, chunks)
    return dns.rdata.from_text(
        dns.rdataclass.IN, rdtype, value, origin=dns.name.root, relativize=False
    )


def _rrset(owner: str, rtype: str, values: list[str]) -> dns.rrset.RRset:
    """Build an RRset for an owner name."""
    rdatas = [_rdata(rtype, v) for v in values]
    return dns.rrset.from_rdata_list(dns.name.from_text(owner), TTL, rdatas)


def _soa(owner: str, ttl: int = TTL) -> dns.rrset.RRset:
    """Build a negative-answer SOA for the zone presumed to hold a name (its last two labels);
    TTL is also its minimum, how long the negative answer may be cached (RFC 2308)."""
    zone = ".".join(owner.split(".")[-2:]) or "."
    text = f"ns1.sim.invalid. hostmaster.sim.invalid. 1 3600 600 86400 {ttl}"
    soa = _rrset(zone, "SOA", [text])
    soa.ttl = ttl
    return soa


def _final_rrsets(
    owner: str, records: list[tuple[str, str]], rdtype: dns.rdatatype.RdataType
) -> list[dns.rrset.RRset]:
    """Return the owner's RRsets of the asked type (all types for ANY)."""
    wanted = dns.rdatatype.to_text(rdtype)
    by_type: dict[str, list[str]] = {}
    for rtype, value in records:
        if rdtype == dns.rdatatype.ANY or rtype == wanted:
            by_type.setdefault(rtype, []).append(value)
    return [_rrset(owner, rtype, values) for rtype, values in by_type.items()]


def walk(
    world: World, qname: str, rdtype: dns.rdatatype.RdataType
) -> tuple[list[str], list[dns.rrset.RRset], dns.rcode.Rcode]:
    """Follow CNAMEs like a recursive resolver; return names visited, answer RRsets, rcode."""
    names, current = [qname], qname
    answer: list[dns.rrset.RRset] = []
    first_hop_only = world.is_first_hop_only(qname)
    chasing = rdtype not in (dns.rdatatype.CNAME, dns.rdatatype.ANY)
    while True:
        records = world.lookup(current)
        if records is None:
            return names, answer, dns.rcode.NXDOMAIN
        targets = [value for rtype, value in records if rtype == "CNAME"]
        if not (targets and chasing):
            return names, answer + _final_rrsets(current, records, rdtype), dns.rcode.NOERROR
        if len(answer) >= MAX_HOPS:  # a loop or an absurd chain: stop, as resolvers do
            return names, answer, dns.rcode.NOERROR
        answer.append(_rrset(current, "CNAME", targets[:1]))
        if first_hop_only:
            return names, answer, dns.rcode.NOERROR
        current = targets[0]
        names.append(current)


def respond(world: World, query: dns.message.Message, transport: str) -> dns.message.Message | None:
    """Build the response to a query; None means stay silent (a simulated timeout)."""
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    if query.opcode() != dns.opcode.QUERY:
        response.set_rcode(dns.rcode.NOTIMP)
        return response
    if len(query.question) != 1:
        response.set_rcode(dns.rcode.FORMERR)
        return response
    question = query.question[0]
    names, answer, rcode = walk(world, _qname(question.name), question.rdtype)
    faults = [f for f in (world.dns_fault(n) for n in names) if f is not None]
    fault = faults[0] if faults else None
    if fault == "timeout":
        return None
    if fault in ("servfail", "refused"):
        response.set_rcode(dns.rcode.SERVFAIL if fault == "servfail" else dns.rcode.REFUSED)
        return response
    if fault == "truncate" and transport == "udp":
        response.flags |= dns.flags.TC
        return response
    for rrset in answer:  # the world's TTL: 1 s by default, realistic minutes if it says
        rrset.ttl = world.dns_ttl
    response.answer = answer
    response.set_rcode(rcode)
    if rcode == dns.rcode.NXDOMAIN or not answer:
        response.authority = [_soa(names[-1], world.dns_ttl)]
    return response


def _qname(name: dns.name.Name) -> str:
    """Return a query name in the world's key form."""
    return normalize(name.to_text(omit_final_dot=True)) if name != dns.name.root else ""


def _to_wire(response: dns.message.Message, query: dns.message.Message, transport: str) -> bytes:
    """Render a response, truncating (TC, empty sections) what the UDP client cannot take."""
    if transport == "tcp":
        return response.to_wire(max_size=65535)
    try:
        return response.to_wire(max_size=max(512, query.payload) if query.edns >= 0 else 512)
    except dns.exception.TooBig:
        response.answer, response.authority, response.additional = [], [], []
        response.flags |= dns.flags.TC
        return response.to_wire()


def _outcome(response: dns.message.Message | None) -> str:
    """Name what a response told the client: its rcode, truncated, or silent (no answer)."""
    if response is None:
        return "silent"
    if response.flags & dns.flags.TC:
        return "truncated"
    return dns.rcode.to_text(response.rcode()).lower()


def _spawn(target: Callable[..., None], *args: object) -> threading.Thread:
    """Start a daemon thread."""
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


class _Postman:
    """Run sends at their due times from one thread, however many wait at once.

    An asyncio event loop in a thread of its own keeps the timers (a heap) and sleeps
    until the earliest is due: no thread per answer, and no wait in a receiving loop.
    """

    def __init__(self) -> None:
        """Prepare; start() runs the loop."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Run the event loop in a daemon thread."""
        loop = asyncio.new_event_loop()
        self._loop, self._thread = loop, _spawn(loop.run_forever)

    def post(self, due: float, send: Callable[[], None]) -> None:
        """Run send at time.monotonic() due, at once if it is past; dropped once stopped."""
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(_arm, loop, due, send)
        except RuntimeError:  # stop() closed the loop since we read it
            return

    def stop(self) -> None:
        """Stop the loop, dropping every send still waiting; safe to call twice."""
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=2)
        if not thread.is_alive():
            loop.close()


def _arm(loop: asyncio.AbstractEventLoop, due: float, send: Callable[[], None]) -> None:
    """Schedule send on loop (its own thread) for time.monotonic() due."""
    loop.call_later(max(0.0, due - time.monotonic()), send)


def _send_datagram(sock: socket.socket, reply: bytes, peer: tuple[Any, ...]) -> None:
    """Send one UDP answer; a vanished client or a closed socket costs only this answer."""
    try:
        sock.sendto(reply, peer)
    except OSError:
        return


class _Replies:
    """The sending side of one TCP connection: whole answers from any thread, in turn.

    Counts the answers still waiting for their time, so the connection's thread can keep
    the connection open until they are sent.
    """

    def __init__(self, conn: socket.socket) -> None:
        """Send on conn."""
        self.conn = conn
        self._changed = threading.Condition()
        self._waiting = 0
        self._last_due = 0.0

    def send(self, reply: bytes) -> bool:
        """Send one length-prefixed answer now; False when the connection is gone."""
        with self._changed:  # one answer at a time: two threads' bytes never interleave
            try:
                self.conn.sendall(len(reply).to_bytes(2, "big") + reply)
            except OSError:
                return False
            return True

    def expect(self, due: float) -> None:
        """Count one answer that send_waited will send at time due."""
        with self._changed:
            self._waiting += 1
            self._last_due = max(self._last_due, due)

    def send_waited(self, reply: bytes) -> None:
        """Send an answer counted by expect."""
        self.send(reply)
        with self._changed:
            self._waiting -= 1
            self._changed.notify_all()

    def drain(self, stop: threading.Event) -> None:
        """Wait until every expected answer is sent, or stop is set, or a second past due."""
        with self._changed:
            while self._waiting and not stop.is_set():
                left = self._last_due + 1.0 - time.monotonic()
                if left <= 0:
                    return
                self._changed.wait(min(left, POLL))


class DNSServer:
    """A threaded DNS server answering from a World; use as a context manager."""

    def __init__(self, world: World, host: str = "127.0.0.1", port: int = 0) -> None:
        """Prepare a server for world; port 0 picks a free port at start()."""
        self.world = world
        self.host = host
        self.port = port
        self.queries: list[QueryLogEntry] = []
        self.answers: list[AnswerLogEntry] = []  # what each query got, faults included
        self._log_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self._servers: list[threading.Thread] = []
        self._connections: list[threading.Thread] = []  # only the TCP accept thread adds
        self._udp: socket.socket | None = None
        self._tcp: socket.socket | None = None
        self._postman = _Postman()  # sends the answers that wait for world.latency.dns

    @property
    def address(self) -> str:
        """Return "host:port", bracketing an IPv6 host."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def clear_log(self) -> None:
        """Forget the queries and answers seen so far."""
        with self._log_lock:
            self.queries.clear()
            self.answers.clear()

    def count_answers(self, name: str | None = None, transport: str | None = None) -> Counter[str]:
        """Count answers by outcome (noerror, nxdomain, servfail, refused, truncated, silent)."""
        with self._log_lock:
            return Counter(
                outcome
                for qname, via, outcome in self.answers
                if name in (None, qname) and transport in (None, via)
            )

    def start(self) -> DNSServer:
        """Bind UDP and TCP on the same port and start serving."""
        self._stop.clear()
        self._udp, self._tcp = self._bind()
        self._wake = socket.socketpair()
        self.port = self._udp.getsockname()[1]
        self._postman.start()
        self._servers = [_spawn(self._serve_udp), _spawn(self._serve_tcp)]
        return self

    def stop(self) -> None:
        """Stop serving and close every socket; safe to call twice."""
        self._stop.set()
        if self._wake is not None:
            self._wake[1].send(b"x")  # never drained: every select() now returns at once
        # Servers first: once the accept thread is gone, no connection thread can appear.
        for thread in self._servers:
            thread.join(timeout=2)
        for thread in self._connections:  # read only now: the accept thread replaces the list
            thread.join(timeout=2)
        self._servers, self._connections = [], []
        self._postman.stop()  # answers still waiting for their time are never sent
        for sock in (self._udp, self._tcp, *(self._wake or ())):
            if sock is not None:
                sock.close()
        self._udp = self._tcp = self._wake = None

    def __enter__(self) -> DNSServer:
        """Start on entering the with-block."""
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        """Stop on leaving the with-block."""
        self.stop()

    def _bind(self) -> tuple[socket.socket, socket.socket]:
        """Bind a UDP and a TCP socket to one port, retrying when port 0 gives a busy TCP port."""
        family = socket.AF_INET6 if ipaddress.ip_address(self.host).version == 6 else socket.AF_INET
        for _ in range(50):
            udp = socket.socket(family, socket.SOCK_DGRAM)
            tcp = socket.socket(family, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                udp.bind((self.host, self.port))
                tcp.bind((self.host, udp.getsockname()[1]))
                tcp.listen(32)
            except OSError:
                udp.close()
                tcp.close()
                if self.port:
                    raise
                continue
            return udp, tcp
        raise OSError(f"no port free for both UDP and TCP on {self.host}")

    def _handle(self, data: bytes, transport: str) -> bytes | None:
        """Turn one wire query into a wire response (or None to stay silent)."""
        try:
            query = dns.message.from_wire(data)
        except dns.exception.DNSException:
            return None  # malformed packets are dropped, as many servers do
        qname = _qname(query.question[0].name) if query.question else ""
        if query.question:
            entry = (qname, dns.rdatatype.to_text(query.question[0].rdtype), transport)
            with self._log_lock:
                self.queries.append(entry)
        try:
            response = respond(self.world, query, transport)
            wire = None if response is None else _to_wire(response, query, transport)
        except Exception:  # a bad record or a bug costs one answer, never the serving thread
            log.exception("simulated DNS server failed on %s", query.question)
            response = dns.message.make_response(query)
            response.set_rcode(dns.rcode.SERVFAIL)
            wire = response.to_wire()
        with self._log_lock:
            self.answers.append((qname, transport, _outcome(response)))
        return wire

    def _serve_udp(self) -> None:
        """Answer UDP queries until stopped."""
        sock = self._udp
        assert sock is not None
        while not self._stop.is_set():
            if not self._readable(sock):
                continue
            try:
                data, peer = sock.recvfrom(65535)
            except OSError:
                continue  # a vanished client must not stop the server
            arrived = time.monotonic()
            reply = self._handle(data, "udp")
            if reply is None:
                continue
            delay = self.world.latency.dns
            if delay > 0:
                self._postman.post(arrived + delay, partial(_send_datagram, sock, reply, peer))
            else:
                _send_datagram(sock, reply, peer)

    def _serve_tcp(self) -> None:
        """Accept TCP connections until stopped, one thread each."""
        listener = self._tcp
        assert listener is not None
        while not self._stop.is_set():
            if not self._readable(listener):
                continue
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            self._connections = [t for t in self._connections if t.is_alive()]
            self._connections.append(_spawn(self._serve_connection, conn))

    def _serve_connection(self, conn: socket.socket) -> None:
        """Answer length-prefixed queries on one connection until EOF, idle or stop.

        Answers that wait for the world's latency are sent by the postman, possibly after
        the client sent more queries; the connection stays open until they are out.
        """
        replies = _Replies(conn)
        with conn:
            try:
                while True:
                    head = self._recv_exact(conn, 2)
                    data = self._recv_exact(conn, int.from_bytes(head, "big")) if head else None
                    if data is None:
                        return
                    arrived = time.monotonic()
                    reply = self._handle(data, "tcp")
                    if reply is None:
                        continue
                    delay = self.world.latency.dns
                    if delay <= 0:
                        if not replies.send(reply):
                            return
                        continue
                    replies.expect(arrived + delay)
                    self._postman.post(arrived + delay, partial(replies.send_waited, reply))
            finally:
                replies.drain(self._stop)

    def _readable(self, sock: socket.socket) -> bool:
        """Wait up to POLL for data on sock; False on timeout or when stop() was called."""
        wake = self._wake
        if wake is None or self._stop.is_set():
            return False
        try:
            ready = select.select([sock, wake[0]], [], [], POLL)[0]
        except (OSError, ValueError):  # closed under us by a stop() that gave up waiting
            return False
        return sock in ready and not self._stop.is_set()

    def _recv_exact(self, conn: socket.socket, size: int) -> bytes | None:
        """Read exactly size bytes; None on EOF, error, idle timeout or stop."""
        buf, idle = b"", 0.0
        while len(buf) < size:
            if self._stop.is_set() or idle > IDLE_TCP:
                return None
            if not self._readable(conn):
                idle += POLL
                continue
            try:
                chunk = conn.recv(size - len(buf))
            except OSError:
                return None
            if not chunk:
                return None
            buf, idle = buf + chunk, 0.0
        return buf
