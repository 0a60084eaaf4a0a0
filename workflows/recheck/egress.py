"""The egress guard of the re-checker: connect only to addresses we resolved and checked.

A fetcher that lets the HTTP library resolve names can be steered into the hotline's own
network by a name that answers differently the second time (DNS rebinding). Here the
httpcore network backend resolves every host itself, through our resolver, refuses
special-use addresses (`addresses.special_use`) unless the operator allow-listed them,
and connects to exactly the address it checked; TLS still uses the host name for SNI and
the certificate check, because httpcore passes the URL's host to `start_tls`.

Every stream it returns also honours the whole fetch's deadline: httpx has per-operation
timeouts only, so a server dripping one byte at a time would otherwise never time out.
Name resolution is bounded by the resolver's own lifetime (TAKEDOWN_DNS_TIMEOUT), which
counts against the deadline but can overrun it by at most that much.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import dns.resolver
import httpcore
import httpx

from workflows.core.special_use import special_use
from workflows.errors import EgressBlocked
from workflows.recheck.streams import SocketOption, connect_tcp
from workflows.trace.dns import resolve_host

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
PROXY_PORTS = {"http": 80, "https": 443}


def is_permitted(address: str, allow: Sequence[IPNetwork]) -> bool:
    """Tell whether ADDRESS may be connected to: public unicast, or inside ALLOW."""
    ip = ipaddress.ip_address(address)
    if special_use(ip) is None:
        return True
    return any(ip.version == net.version and ip in net for net in allow)


def permitted_addresses(
    resolver: dns.resolver.Resolver, host: str, allow: Sequence[IPNetwork]
) -> tuple[str, ...]:
    """Resolve HOST with our resolver; return its permitted addresses, A records first.

    Raises DNSFailure when the name does not resolve and EgressBlocked when every
    address is refused. Refused addresses beside permitted ones are dropped silently,
    as routing ignores them (README: special-use addresses).
    """
    addresses = resolve_host(resolver, host).addresses
    permitted = tuple(a for a in addresses if is_permitted(a, allow))
    if not permitted:
        refused = ", ".join(f"{a} is {special_use(a)}" for a in addresses)
        raise EgressBlocked(f"{host} resolves only to special-use addresses: {refused}")
    return permitted


class Deadline:
    """The monotonic time by which the current fetch must be over."""

    def __init__(self, clock: Callable[[], float]) -> None:
        """Start with no deadline set."""
        self._clock = clock
        self.at = float("inf")

    def cap(self, timeout: float | None, error: type[Exception]) -> float:
        """Return TIMEOUT shortened to the time left; raise ERROR when none is left."""
        left = self.at - self._clock()
        if left <= 0:
            raise error("deadline exceeded")
        return left if timeout is None else min(timeout, left)


class Resolutions:
    """The permitted addresses of each host name, resolved once for a batch of fetches.

    Fetches of one batch (one task's re-checks, seconds long) that connect to the same host
    share one resolution, asked once even when they start together; between batches the
    resolver's cache honours the records' TTLs. Failures are shared too: every fetch of
    the host sees the same DNSFailure or EgressBlocked. Used on the fetch loop only.
    """

    def __init__(self, resolver: dns.resolver.Resolver, allow: Sequence[IPNetwork]) -> None:
        """Resolve with RESOLVER, permitting ALLOW beside public addresses."""
        self._resolver = resolver
        self._allow = tuple(allow)
        self._pending: dict[str, asyncio.Future[tuple[str, ...]]] = {}

    async def permitted(self, host: str) -> tuple[str, ...]:
        """Return HOST's permitted addresses (`permitted_addresses`), resolving it once."""
        found = self._pending.get(host)
        if found is None:
            work = asyncio.to_thread(permitted_addresses, self._resolver, host, self._allow)
            found = self._pending[host] = asyncio.ensure_future(work)
        # Shielded: one fetch cancelled at its budget must not cancel the others' answer.
        return await asyncio.shield(found)


class DeadlineStream(httpcore.AsyncNetworkStream):
    """A network stream whose every operation ends by the fetch's deadline."""

    def __init__(self, stream: httpcore.AsyncNetworkStream, deadline: Deadline) -> None:
        """Wrap STREAM."""
        self._stream = stream
        self._deadline = deadline

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Read at most MAX_BYTES, giving up at the deadline."""
        limit = self._deadline.cap(timeout, httpcore.ReadTimeout)
        return await self._stream.read(max_bytes, limit)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Write BUFFER, giving up at the deadline."""
        await self._stream.write(buffer, self._deadline.cap(timeout, httpcore.WriteTimeout))

    async def aclose(self) -> None:
        """Close the underlying stream."""
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Upgrade to TLS, checking the certificate against SERVER_HOSTNAME (the URL's host)."""
        limit = self._deadline.cap(timeout, httpcore.ConnectTimeout)
        tls = await self._stream.start_tls(ssl_context, server_hostname, limit)
        return DeadlineStream(tls, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        """Return what the underlying stream says about itself."""
        return self._stream.get_extra_info(info)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore backend that resolves and checks every host before connecting to it.

    `trusted` is the operator's proxy (host, port): connections to it are not guarded,
    and the fetcher checks each URL's host itself before asking the proxy. The address
    of the latest connection is kept in `last_address`: one backend serves one fetch (the
    fetcher builds one per fetch). Sockets are asyncio's (`streams`), so one event
    loop holds hundreds of re-checks at once; names are resolved by the same resolver and
    code as everywhere else (`permitted_addresses`), on a thread, so the guard is the one
    the tracer's resolution and the tests prove.
    """

    def __init__(
        self,
        resolutions: Resolutions,
        deadline: Deadline,
        trusted: tuple[str, int] | None = None,
    ) -> None:
        """Guard connections with RESOLUTIONS, ending each by DEADLINE."""
        self._resolutions = resolutions
        self._deadline = deadline
        self._trusted = trusted
        self.last_address: str | None = None

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Connect to the first permitted address of HOST that accepts, never to another."""
        if self._trusted == (host, port):
            candidates: tuple[str, ...] = (host,)
        else:
            candidates = await self._resolutions.permitted(host)
        failure: Exception = httpcore.ConnectError(f"no address of {host} accepted")
        for address in candidates:
            limit = self._deadline.cap(timeout, httpcore.ConnectTimeout)
            try:
                stream = await connect_tcp(address, port, limit, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error
                continue
            self.last_address = str(stream.get_extra_info("server_addr")[0])
            return DeadlineStream(stream, self._deadline)
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Refuse: a re-check never talks to a local socket."""
        raise httpcore.ConnectError("unix sockets are not used by the re-checker")

    async def sleep(self, seconds: float) -> None:
        """Sleep (httpcore uses it between connection retries)."""
        await asyncio.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport over an httpcore pool that connects only through the guard."""

    def __init__(self, backend: GuardedBackend, context: ssl.SSLContext, proxy: str | None) -> None:
        """Build the pool; AsyncHTTPTransport.__init__ is not called: it builds an unguarded
        one."""
        # No keep-alive: every hop and every fetch connects afresh, so each one resolves
        # and is checked again (a pooled connection would hide an NXDOMAIN or a move).
        if proxy is None:
            self._pool = httpcore.AsyncConnectionPool(
                ssl_context=context, max_keepalive_connections=0, network_backend=backend
            )
        else:
            self._pool = httpcore.AsyncHTTPProxy(
                proxy_url=proxy,
                ssl_context=context,
                max_keepalive_connections=0,
                network_backend=backend,
            )


def proxy_origin(proxy: str | None) -> tuple[str, int] | None:
    """Return the (host, port) httpcore will connect to for PROXY."""
    if proxy is None:
        return None
    url = httpx.URL(proxy)
    if url.scheme not in PROXY_PORTS or not url.host:
        raise ValueError(f"the fetch proxy must be an http(s) URL, not {proxy!r}")
    return url.raw_host.decode("ascii"), url.port or PROXY_PORTS[url.scheme]
