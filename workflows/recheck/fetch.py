"""Re-check a reported URL over HTTP(S): stream its body into its evidence, never store it.

Each hop resolves its host with our resolver and connects only to an address the egress
guard permits (`workflows.recheck.egress`); redirects are followed by hand, each hop guarded
again. The body is hashed chunk by chunk into SHA-256 while its first bytes (at most
`fingerprint.SAMPLE_LIMIT`) go into a bounded buffer, fingerprinted (PDQ of a picture, TLSH
of a page's text) and dropped as soon as the body ends: it is never on disk, never in a
log, never in the result.

Requests look like a current mainstream browser's (User-Agent, Accept, Accept-Language):
hosts hide content from anything that looks like a robot. Bodies are asked for unencoded
(`Accept-Encoding: identity`), so the bytes hashed are the bytes served.

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

import asyncio
import hashlib
import ipaddress
import os
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType

import dns.resolver
import httpx

from workflows.errors import DNSFailure, EgressBlocked
from workflows.kinds import CheckOutcome
from workflows.recheck.egress import (
    Deadline,
    GuardedBackend,
    GuardedTransport,
    IPNetwork,
    Resolutions,
    proxy_origin,
)
from workflows.recheck.fingerprint import SAMPLE_LIMIT, Fingerprints, Sample

DEFAULT_MAX_BYTES = 16 * 1024 * 1024
# A current mainstream browser (TAKEDOWN_FETCH_USER_AGENT overrides it): cloaking hosts
# answer 404 to anything naming a robot, a script or "compatible;".
DEFAULT_USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
BROWSER_HEADERS = {
    "Accept": (
        "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
        "image/apng,*/*;q=0.8"
    ),
    "Accept-Language": "en-GB,en;q=0.9",
    "Accept-Encoding": "identity",
}
MAX_REDIRECTS = 5
REDIRECTS = frozenset({301, 302, 303, 307, 308})
GONE = frozenset({404, 410, 451})  # RFC 9110 §15.5.5, §15.5.11; RFC 7725 (legal reasons)
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class FetchResult:
    """What one re-check saw; status, sha256 and address describe `final_url`."""

    outcome: CheckOutcome
    final_url: str
    status: int | None = None
    sha256: str | None = None  # hex; only for present
    size: int = 0  # body bytes read (hashed, for present)
    content_type: str | None = None  # as served, for present
    fingerprints: Fingerprints | None = None  # for present: PDQ or TLSH where they apply
    vantage: str = "direct"  # the proxy the check went through, or direct
    truncated: bool = False  # the body was longer than max_bytes: the hash is of its start
    address: str | None = None  # the address connected to (the proxy's behind a proxy)
    redirects: tuple[str, ...] = ()  # each Location followed, absolute, in order
    reason: str = ""
    permanent_dns: bool = False  # gone because DNS says the name is permanently broken


@dataclass(frozen=True)
class _Lane:
    """One fetch's own transport, so its deadline and last address are never another's."""

    deadline: Deadline
    backend: GuardedBackend
    transport: GuardedTransport
    resolutions: Resolutions


@dataclass
class _Hop:
    """The state of one fetch as it follows redirects."""

    url: str
    deadline: float
    lane: _Lane
    redirects: list[str] = field(default_factory=list)
    address: str | None = None  # the address the current hop connected to
    vantage: str = "direct"

    def result(
        self,
        outcome: CheckOutcome,
        reason: str,
        *,
        status: int | None = None,
        sha256: str | None = None,
        size: int = 0,
        truncated: bool = False,
        permanent_dns: bool = False,
        content_type: str | None = None,
        fingerprints: Fingerprints | None = None,
    ) -> FetchResult:
        """Return the fetch's result, seen at the current URL."""
        return FetchResult(
            outcome,
            self.url,
            status=status,
            sha256=sha256,
            size=size,
            content_type=content_type,
            fingerprints=fingerprints,
            vantage=self.vantage,
            truncated=truncated,
            address=self.address,
            redirects=tuple(self.redirects),
            reason=reason,
            permanent_dns=permanent_dns,
        )


class Fetcher:
    """Fetch URLs for re-checks: `afetch` on an event loop, `fetch` from plain code.

    Each fetch has a transport, a deadline and a guarded backend of its own, so hundreds of
    them share one event loop (`FetchLoop`) and a host that drips its body holds only its
    own fetch up to the deadline. A Fetcher holds no connection between fetches.
    """

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
        self._headers = {"User-Agent": user_agent, **BROWSER_HEADERS}
        self._origin = proxy_origin(proxy)
        # What the case's checks record as where they came from: the proxy's host, not its
        # URL (which may hold a password).
        self.vantage = (
            "direct" if self._origin is None else f"proxy {self._origin[0]}:{self._origin[1]}"
        )
        self._context = (
            verify
            if isinstance(verify, ssl.SSLContext)
            else httpx.create_ssl_context(verify, trust_env=False)
        )

    def fetch(self, url: str) -> FetchResult:
        """Fetch URL from code without an event loop (tests, the command line)."""
        return asyncio.run(self.afetch(url))

    def resolutions(self) -> Resolutions:
        """Return a fresh memo of host names' resolutions, for one batch of fetches."""
        return Resolutions(self.resolver, self.allow)

    async def afetch(self, url: str, resolutions: Resolutions | None = None) -> FetchResult:
        """Fetch URL, following up to five redirects; never raise for network problems.

        RESOLUTIONS: the batch's memo of resolved host names (`Resolutions`); None: this
        fetch resolves its hosts itself."""
        deadline = Deadline(self._clock)
        deadline.at = self._clock() + self.deadline
        resolutions = resolutions or self.resolutions()
        backend = GuardedBackend(resolutions, deadline, self._origin)
        # The transport alone, no httpx client: the fetcher follows redirects itself, keeps
        # no cookie and reads no setting from the environment, and a client's layers
        # (cookies, auth, redirects, its construction) cost a tenth of a re-check's CPU.
        async with GuardedTransport(backend, self._context, self.proxy) as transport:
            lane = _Lane(deadline, backend, transport, resolutions)
            return await self._follow(_Hop(url, deadline.at, lane, vantage=self.vantage))

    def close(self) -> None:
        """Nothing to release: every fetch closes its own transport (kept for with-blocks)."""

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

    async def _follow(self, hop: _Hop) -> FetchResult:
        """Fetch hop by hop until an outcome, a loop or too many redirects."""
        seen = {hop.url}
        while True:
            outcome = await self._guarded_hop(hop)
            if isinstance(outcome, FetchResult):
                return outcome
            hop.url = outcome
            hop.redirects.append(outcome)
            if outcome in seen:
                return hop.result(CheckOutcome.UNREACHABLE, f"redirect loop back to {outcome}")
            if len(hop.redirects) > MAX_REDIRECTS:
                return hop.result(CheckOutcome.UNREACHABLE, f"more than {MAX_REDIRECTS} redirects")
            seen.add(outcome)

    async def _guarded_hop(self, hop: _Hop) -> FetchResult | str:
        """Fetch one hop; return its result, or the next URL when it redirects."""
        hop.lane.backend.last_address = hop.address = None
        try:
            url = httpx.URL(hop.url)
            if url.scheme not in DEFAULT_PORTS:
                return hop.result(
                    CheckOutcome.UNREACHABLE, f"not an http(s) URL: {url.scheme or '-'}"
                )
            if self.proxy is not None:
                # The proxy resolves the name itself: check it here, before asking it.
                await hop.lane.resolutions.permitted(url.raw_host.decode("ascii"))
            return await self._request(hop, url)
        except DNSFailure as error:
            outcome = CheckOutcome.GONE if error.permanent else CheckOutcome.UNREACHABLE
            return hop.result(outcome, f"dns: {error.message}", permanent_dns=error.permanent)
        except EgressBlocked as error:
            return hop.result(CheckOutcome.BLOCKED, error.message)
        except httpx.InvalidURL as error:
            return hop.result(CheckOutcome.UNREACHABLE, f"invalid URL: {error}")
        except httpx.TransportError as error:
            hop.address = hop.lane.backend.last_address
            return hop.result(CheckOutcome.UNREACHABLE, self._describe(error, hop.deadline))

    async def _request(self, hop: _Hop, url: httpx.URL) -> FetchResult | str:
        """Send one GET; classify its status, hashing the body of a 2xx."""
        left = hop.deadline - self._clock()
        if left <= 0:
            return hop.result(CheckOutcome.UNREACHABLE, f"deadline exceeded ({self.deadline:g}s)")
        timeout = httpx.Timeout(left, connect=min(self.connect_timeout, left))
        # No Cookie header, ever: none is kept, not even from an earlier hop.
        request = httpx.Request(
            "GET", url, headers=self._headers, extensions={"timeout": timeout.as_dict()}
        )
        response = await hop.lane.transport.handle_async_request(request)
        try:
            hop.address = hop.lane.backend.last_address
            status, location = response.status_code, response.headers.get("location")
            if status in REDIRECTS and location:
                return str(url.join(location))
            if 200 <= status < 300:
                return await self._hash_body(hop, response)
            outcome = CheckOutcome.GONE if status in GONE else CheckOutcome.UNREACHABLE
            return hop.result(outcome, f"HTTP {status}", status=status)
        finally:
            await response.aclose()

    async def _hash_body(self, hop: _Hop, response: httpx.Response) -> FetchResult:
        """Stream the body into SHA-256 and a bounded sample; keep only their fingerprints."""
        digest, size, status = hashlib.sha256(), 0, response.status_code
        content_type = response.headers.get("content-type")
        sample = Sample(min(self.max_bytes, SAMPLE_LIMIT))
        truncated = False
        try:
            async for chunk in response.aiter_raw():  # raw: the bytes as served, never decoded
                room = self.max_bytes - size
                digest.update(chunk[:room])
                sample.feed(chunk[:room])
                size += min(len(chunk), room)
                if len(chunk) > room:
                    truncated = True
                    break
                if self._clock() >= hop.deadline:
                    raise httpx.ReadTimeout("deadline exceeded")
        except httpx.TransportError as error:
            # A partial hash would read as changed content: report none.
            sample.clear()
            reason = f"{self._describe(error, hop.deadline)} after {size} body bytes"
            return hop.result(CheckOutcome.UNREACHABLE, reason, status=status, size=size)
        try:
            # Decoding a picture or a page and hashing it is CPU work: off the loop, beside
            # the sockets. Any other body's answer is immediate: the hop to a thread and
            # back would cost more than it (a re-check pass of random bytes: py-spy).
            if sample.costly(content_type):
                found = await asyncio.to_thread(
                    sample.fingerprints, content_type, complete=not truncated
                )
            else:
                found = sample.fingerprints(content_type, complete=not truncated)
        finally:
            sample.clear()  # the body's bytes go now, whatever happened
        reason = f"HTTP {status}" + (f", body truncated at {size} bytes" if truncated else "")
        return hop.result(
            CheckOutcome.PRESENT,
            reason,
            status=status,
            sha256=digest.hexdigest(),
            size=size,
            truncated=truncated,
            content_type=content_type[:200] if content_type else None,
            fingerprints=found,
        )

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
        # asyncio's sockets say "All connection attempts failed": name the cause beneath.
        cause = error
        while cause is not None:
            if isinstance(cause, OSError) and cause.errno:
                return f"{type(error).__name__}: [Errno {cause.errno}] {os.strerror(cause.errno)}"
            cause = cause.__cause__ or cause.__context__
        return f"{type(error).__name__}: {error}"
