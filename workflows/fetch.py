"""Re-check a reported URL over HTTP(S): stream its body into SHA-256, never store it.

Each hop resolves its host with our resolver and connects only to an address the egress
guard permits (`workflows.egress`); redirects are followed by hand, each hop guarded
again. The body is hashed chunk by chunk and dropped: it is in memory one chunk at a
time, never on disk, never in a log, never in the result.

    outcome      when                                                     evidence of removal
    present      2xx (sha256 of the body, up to max_bytes)                no
    gone         404, 410, 451; the host does not exist (NXDOMAIN, no     yes
                 address, CNAME loop: the permanent DNS failures)
    unreachable  401, 403, 429 and other 4xx; 5xx; 3xx without Location;  no
                 timeouts, refused, reset, TLS errors, the total deadline,
                 too many redirects, a redirect loop, a non-http redirect,
                 SERVFAIL or timeout in DNS
    blocked      the host resolves only to special-use addresses outside  no: an analyst looks
                 the allow-list; never connected to

401 and 403 say the server refuses us, not that the content left; 429 says come back later.

Behind a proxy (TAKEDOWN_FETCH_PROXY) the guard resolves and checks each hop's host before
asking the proxy, and `address` is the proxy's address: the proxy is the operator's and
trusted, and it resolves the name again itself.
"""

from __future__ import annotations

import hashlib
import ipaddress
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType

import dns.resolver
import httpcore
import httpx

from workflows.dns import DNSFailure
from workflows.egress import (
    Deadline,
    EgressBlocked,
    GuardedBackend,
    IPNetwork,
    permitted_addresses,
)

DEFAULT_MAX_BYTES = 16 * 1024 * 1024
DEFAULT_USER_AGENT = "Mozilla/5.0 (compatible; takedown-recheck/0.1)"
MAX_REDIRECTS = 5
REDIRECTS = frozenset({301, 302, 303, 307, 308})
GONE = frozenset({404, 410, 451})  # RFC 9110 §15.5.5, §15.5.11; RFC 7725 (legal reasons)
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class FetchResult:
    """What one re-check saw; status, sha256 and address describe `final_url`."""

    outcome: str  # present | gone | unreachable | blocked
    final_url: str
    status: int | None = None
    sha256: str | None = None  # hex; only for present
    size: int = 0  # body bytes read (hashed, for present)
    truncated: bool = False  # the body was longer than max_bytes: the hash is of its start
    address: str | None = None  # the address connected to (the proxy's behind a proxy)
    redirects: tuple[str, ...] = ()  # each Location followed, absolute, in order
    reason: str = ""
    permanent_dns: bool = False  # gone because DNS says the name is permanently broken


class GuardedTransport(httpx.HTTPTransport):
    """httpx's own transport over an httpcore pool that connects only through the guard."""

    def __init__(
        self, backend: GuardedBackend, verify: bool | ssl.SSLContext, proxy: str | None
    ) -> None:
        """Build the pool; HTTPTransport.__init__ is not called: it builds an unguarded one."""
        context = (
            verify
            if isinstance(verify, ssl.SSLContext)
            else httpx.create_ssl_context(verify, trust_env=False)
        )
        # No keep-alive: every hop and every fetch connects afresh, so each one resolves
        # and is checked again (a pooled connection would hide an NXDOMAIN or a move).
        if proxy is None:
            self._pool = httpcore.ConnectionPool(
                ssl_context=context, max_keepalive_connections=0, network_backend=backend
            )
        else:
            self._pool = httpcore.HTTPProxy(
                proxy_url=proxy,
                ssl_context=context,
                max_keepalive_connections=0,
                network_backend=backend,
            )


@dataclass
class _Hop:
    """The state of one fetch as it follows redirects."""

    url: str
    deadline: float
    redirects: list[str] = field(default_factory=list)
    address: str | None = None  # the address the current hop connected to

    def result(
        self,
        outcome: str,
        reason: str,
        *,
        status: int | None = None,
        sha256: str | None = None,
        size: int = 0,
        truncated: bool = False,
        permanent_dns: bool = False,
    ) -> FetchResult:
        """Return the fetch's result, seen at the current URL."""
        return FetchResult(
            outcome,
            self.url,
            status=status,
            sha256=sha256,
            size=size,
            truncated=truncated,
            address=self.address,
            redirects=tuple(self.redirects),
            reason=reason,
            permanent_dns=permanent_dns,
        )


class Fetcher:
    """Fetch URLs for re-checks; one fetch at a time per instance (a lock serialises them)."""

    def __init__(
        self,
        resolver: dns.resolver.Resolver,
        *,
        allow: Sequence[IPNetwork] = (),
        proxy: str | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        deadline: float = 30.0,
        connect_timeout: float = 10.0,
        user_agent: str = DEFAULT_USER_AGENT,
        clock: Callable[[], float] = time.monotonic,
        verify: bool | ssl.SSLContext = True,
    ) -> None:
        """Prepare a fetcher; ALLOW lists operator-approved special-use networks."""
        if min(max_bytes, deadline, connect_timeout) <= 0:
            raise ValueError("max_bytes, deadline and connect_timeout must be positive")
        if not user_agent.isprintable():  # a CR or LF would break every request
            raise ValueError(f"the User-Agent must be one line of text, not {user_agent!r}")
        self.resolver = resolver
        self.allow = tuple(ipaddress.ip_network(net) for net in allow)
        self.proxy = proxy
        self.max_bytes = max_bytes
        self.deadline = deadline
        self.connect_timeout = connect_timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._deadline = Deadline(clock)
        self._backend = GuardedBackend(resolver, self.allow, self._deadline, _origin_of(proxy))
        self._client = httpx.Client(
            transport=GuardedTransport(self._backend, verify, proxy),
            headers={"User-Agent": user_agent, "Accept-Encoding": "identity"},
            follow_redirects=False,
            trust_env=False,  # no proxy, certificate or netrc settings from the environment
        )

    def fetch(self, url: str) -> FetchResult:
        """Fetch URL, following up to five redirects; never raise for network problems."""
        with self._lock:
            hop = _Hop(url, self._clock() + self.deadline)
            self._deadline.at = hop.deadline
            try:
                return self._follow(hop)
            finally:
                self._deadline.at = float("inf")

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()

    def __enter__(self) -> Fetcher:
        """Return self for a with-block."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close on leaving the with-block."""
        self.close()

    def _follow(self, hop: _Hop) -> FetchResult:
        """Fetch hop by hop until an outcome, a loop or too many redirects."""
        seen = {hop.url}
        while True:
            outcome = self._guarded_hop(hop)
            if isinstance(outcome, FetchResult):
                return outcome
            hop.url = outcome
            hop.redirects.append(outcome)
            if outcome in seen:
                return hop.result("unreachable", f"redirect loop back to {outcome}")
            if len(hop.redirects) > MAX_REDIRECTS:
                return hop.result("unreachable", f"more than {MAX_REDIRECTS} redirects")
            seen.add(outcome)

    def _guarded_hop(self, hop: _Hop) -> FetchResult | str:
        """Fetch one hop; return its result, or the next URL when it redirects."""
        self._backend.last_address = hop.address = None
        try:
            url = httpx.URL(hop.url)
            if url.scheme not in DEFAULT_PORTS:
                return hop.result("unreachable", f"not an http(s) URL: {url.scheme or '-'}")
            if self.proxy is not None:
                # The proxy resolves the name itself: check it here, before asking it.
                permitted_addresses(self.resolver, url.raw_host.decode("ascii"), self.allow)
            return self._request(hop, url)
        except DNSFailure as error:
            outcome = "gone" if error.permanent else "unreachable"
            return hop.result(outcome, f"dns: {error.message}", permanent_dns=error.permanent)
        except EgressBlocked as error:
            return hop.result("blocked", error.message)
        except httpx.InvalidURL as error:
            return hop.result("unreachable", f"invalid URL: {error}")
        except httpx.TransportError as error:
            hop.address = self._backend.last_address
            return hop.result("unreachable", self._describe(error, hop.deadline))

    def _request(self, hop: _Hop, url: httpx.URL) -> FetchResult | str:
        """Send one GET; classify its status, hashing the body of a 2xx."""
        left = hop.deadline - self._clock()
        if left <= 0:
            return hop.result("unreachable", f"deadline exceeded ({self.deadline:g}s)")
        self._client.cookies.clear()  # no cookies kept, not even from an earlier hop
        timeout = httpx.Timeout(left, connect=min(self.connect_timeout, left))
        request = self._client.build_request("GET", url, timeout=timeout)
        response = self._client.send(request, stream=True)
        try:
            hop.address = self._backend.last_address
            status, location = response.status_code, response.headers.get("location")
            if status in REDIRECTS and location:
                return str(url.join(location))
            if 200 <= status < 300:
                return self._hash_body(hop, response)
            outcome = "gone" if status in GONE else "unreachable"
            return hop.result(outcome, f"HTTP {status}", status=status)
        finally:
            response.close()

    def _hash_body(self, hop: _Hop, response: httpx.Response) -> FetchResult:
        """Stream the body into SHA-256 up to max_bytes and the deadline; keep only the hash."""
        digest, size, status = hashlib.sha256(), 0, response.status_code
        try:
            for chunk in response.iter_raw():  # raw: the bytes as served, never decoded
                room = self.max_bytes - size
                digest.update(chunk[:room])
                size += min(len(chunk), room)
                if len(chunk) > room:
                    reason = f"HTTP {status}, body truncated at {size} bytes"
                    sha256 = digest.hexdigest()
                    return hop.result(
                        "present", reason, status=status, sha256=sha256, size=size, truncated=True
                    )
                if self._clock() >= hop.deadline:
                    raise httpx.ReadTimeout("deadline exceeded")
        except httpx.TransportError as error:
            # A partial hash would read as changed content (gone): report none.
            reason = f"{self._describe(error, hop.deadline)} after {size} body bytes"
            return hop.result("unreachable", reason, status=status, size=size)
        sha256 = digest.hexdigest()
        return hop.result("present", f"HTTP {status}", status=status, sha256=sha256, size=size)

    def _describe(self, error: httpx.TransportError, deadline: float) -> str:
        """Say why a transport error happened: TLS, the deadline, a timeout or the network."""
        cause: BaseException | None = error
        while cause is not None:
            if isinstance(cause, ssl.SSLError):
                return f"tls: {cause}"
            cause = cause.__cause__ or cause.__context__
        if isinstance(error, httpx.TimeoutException):
            if self._clock() >= deadline:
                return f"deadline exceeded ({self.deadline:g}s)"
            return f"timeout: {type(error).__name__} {error}".rstrip()
        if isinstance(error, httpx.ProxyError):
            return f"proxy: {error}"
        return f"{type(error).__name__}: {error}"


def _origin_of(proxy: str | None) -> tuple[str, int] | None:
    """Return the (host, port) httpcore will connect to for PROXY."""
    if proxy is None:
        return None
    url = httpx.URL(proxy)
    if url.scheme not in DEFAULT_PORTS or not url.host:
        raise ValueError(f"the fetch proxy must be an http(s) URL, not {proxy!r}")
    return url.raw_host.decode("ascii"), url.port or DEFAULT_PORTS[url.scheme]
