"""One lifecycle for the simulated HTTP servers: bind, serve in a thread, stop, with-block.

Each connection gets a daemon thread of its own at once, as ThreadingHTTPServer gives
it, so a request that waits (a simulated latency, a dripping body) never holds another
connection's request. A thread that served one connection waits a while for the next
instead of ending: starting a thread per connection made a small request cost about a
third more CPU. The listen backlog is deep, so a benchmark's burst of connections waits
in the kernel instead of being dropped into a SYN retry.

`DelayedHandler.answer_after` holds a response until a given number of seconds after its
request line arrived; `HTTPService.stopping` cuts every such wait short at stop().

The accept loop sleeps in a selector until a connection or stop() arrives (a socket pair
wakes it): socketserver's serve_forever polls for its shutdown flag instead, and a
simulated internet of 60 web servers polling every 10 ms kept a fifth of a core busy
doing nothing, in every test that ran one.
"""

from __future__ import annotations

import ipaddress
import queue
import selectors
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self

BACKLOG = 1024  # pending connections the kernel queues (capped by net.core.somaxconn)
IDLE_WORKER = 10.0  # seconds a connection thread waits for the next connection, then ends
Job = tuple[Any, Any] | None  # (request, client address); None: end the thread


class _Workers:
    """Daemon threads that serve one connection each, and then wait for the next one.

    Hand-made: socketserver's ThreadingMixIn starts a thread per connection, and
    concurrent.futures' pool caps its threads and joins them at interpreter exit, where
    a client reading an endless body would hold the interpreter forever. Here, as with
    ThreadingMixIn, every connection is served at once: by an idle thread if there is
    one, else by a new one.
    """

    def __init__(self, serve: Callable[[Any, Any], None]) -> None:
        """Serve each connection with serve(request, client_address)."""
        self._serve = serve
        self._jobs: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # threads waiting that no queued connection is promised to
        self._live = 0

    def submit(self, request: Any, client_address: Any) -> None:
        """Serve one connection, in an idle thread or a new one."""
        with self._lock:
            spawn = self._idle == 0
            if spawn:
                self._live += 1
            else:
                self._idle -= 1  # one waiting thread is now promised this connection
        self._jobs.put((request, client_address))
        if spawn:
            threading.Thread(target=self._work, daemon=True).start()

    def close(self) -> None:
        """End every thread once it has finished its connection."""
        with self._lock:
            live = self._live
        for _ in range(live):
            self._jobs.put(None)

    def _work(self) -> None:
        """Serve connections until idle for IDLE_WORKER seconds or closed."""
        while True:
            try:
                job = self._jobs.get(timeout=IDLE_WORKER)
            except queue.Empty:
                if self._retire():
                    return
                continue
            if job is None:
                with self._lock:
                    self._live -= 1
                return
            self._serve(*job)
            with self._lock:
                self._idle += 1

    def _retire(self) -> bool:
        """End an idle thread unless every waiting one is promised a queued connection."""
        with self._lock:
            if self._idle == 0:  # then a connection is queued for this thread: stay
                return False
            self._idle -= 1
            self._live -= 1
            return True


class LocalHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its owner and never does reverse DNS."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = BACKLOG

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], owner: object
    ) -> None:
        """Bind address for owner, picking the socket family from the address."""
        self.owner = owner
        is_v6 = ipaddress.ip_address(address[0]).version == 6
        self.address_family = socket.AF_INET6 if is_v6 else socket.AF_INET
        self._workers = _Workers(self.process_request_thread)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve a connection in a thread of its own (an idle one, else a new one)."""
        self._workers.submit(request, client_address)

    def server_close(self) -> None:
        """Close the socket and end every connection thread once its connection is done."""
        super().server_close()
        self._workers.close()

    def server_bind(self) -> None:
        """Bind without HTTPServer's getfqdn(), which would ask the system resolver."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


class DelayedHandler(BaseHTTPRequestHandler):
    """A request handler that notes when each request line arrived, to answer it later."""

    arrived = 0.0  # time.monotonic() when the current request's line was read

    def parse_request(self) -> bool:
        """Note the arrival of the request line just read, then parse it as usual."""
        self.arrived = time.monotonic()
        return super().parse_request()

    def answer_after(self, seconds: float, stopping: threading.Event) -> None:
        """Wait until SECONDS after the request line arrived, or until stopping is set."""
        left = self.arrived + seconds - time.monotonic()
        if left > 0:
            stopping.wait(left)


class HTTPService:
    """A threaded HTTP server owned by a simulated service; subclasses name the handler.

    `stopping` is set from stop() on: a handler that waits or streams ends on it.
    """

    handler: ClassVar[type[BaseHTTPRequestHandler]]

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Prepare to serve on host; port 0 picks a free port at start()."""
        self.host = host
        self.port = port
        self.stopping = threading.Event()
        self._httpd: LocalHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None

    @property
    def address(self) -> str:
        """Return "host:port" ("[v6]:port" for IPv6)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def start(self) -> Self:
        """Bind and serve in a daemon thread."""
        self.stopping.clear()
        self._httpd = LocalHTTPServer((self.host, self.port), self.handler, self)
        self.port = self._httpd.server_address[1]
        self._wake = socket.socketpair()
        self._thread = threading.Thread(
            target=_accept, args=(self._httpd, self._wake[0]), daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end every wait and stream, close the socket; safe to call twice."""
        self.stopping.set()
        if self._wake is not None:
            self._wake[1].send(b"x")  # wakes the accept loop, which returns
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        if self._httpd is not None:
            self._httpd.server_close()
            self._httpd = None
        if self._wake is not None:
            for end in self._wake:
                end.close()
            self._wake = None

    def __enter__(self) -> Self:
        """Start on entering the with-block."""
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        """Stop on leaving the with-block."""
        self.stop()


def _accept(httpd: LocalHTTPServer, wake: socket.socket) -> None:
    """Accept and hand out HTTPD's connections until WAKE is readable (stop())."""
    with selectors.DefaultSelector() as selector:
        selector.register(httpd, selectors.EVENT_READ)
        selector.register(wake, selectors.EVENT_READ)
        while True:
            events = selector.select()
            if any(key.fileobj is wake for key, _ in events):
                return
            try:
                request, client_address = httpd.get_request()
            except OSError:
                continue  # the client gave up before we accepted it
            try:
                httpd.process_request(request, client_address)
            except Exception:  # noqa: BLE001 - as socketserver: report it, keep serving
                httpd.handle_error(request, client_address)
                httpd.shutdown_request(request)
