"""RDAP over HTTP: redirects held to the egress rule, and every answer read under a cap.

Every RDAP answer (an address's network, its parent, a domain) is fetched by `get_answer`,
and the tracer's client connects through `EgressBackend`:

    redirects   followed here, never by httpx, at most MAX_REDIRECTS. A target must be
                https, unless it is the first URL's own origin (TAKEDOWN_RDAP_BASE may be
                plain http, as the simulated internet's is); file:, ftp: and the rest never
    connecting  every host but TAKEDOWN_RDAP_BASE's is resolved with our resolver, and only
                a globally routable address (or one in TAKEDOWN_FETCH_ALLOW) is connected
                to, the very address checked: the rule of the re-checker's guard
                (recheck/egress.py), NAT64, 6to4 and Teredo judged by the IPv4 they carry
    body        read as a stream and given up past MAX_BODY bytes; a longer declared
                Content-Length before any of it is read

    rdap_refused       a redirect to another scheme, past MAX_REDIRECTS,   permanent: the
                       or an unreadable Location; a server whose name       same redirect
                       resolves only to special-use addresses               comes again
    rdap_malformed     an answer larger than MAX_BODY                       transient
    rdap_unavailable   connection error, timeout, a server name that        transient
                       does not resolve

The base is the operator's choice and is connected to as configured (its name through the
system resolver, as before): it may well be a mirror on a private address.
"""

from __future__ import annotations

import ipaddress
import itertools
import ssl
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import dns.resolver
import httpcore
import httpx

from workflows.core.special_use import special_use
from workflows.errors import DNSFailure, EgressBlocked, LookupFailed
from workflows.trace.dns import resolve_host

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
SocketOption = Any  # httpcore's SOCKET_OPTION union; only passed through
MAX_BODY = 4 * 1024 * 1024  # bytes: network and domain objects are kilobytes, not MiB
MAX_REDIRECTS = 5  # rdap.org sends one, ARIN one more (to the registry holding it)
REDIRECTS = frozenset({301, 302, 303, 307, 308})
# No compression: a cap on decoded bytes must not be outrun by one inflated chunk.
ACCEPT = {"Accept": "application/rdap+json", "Accept-Encoding": "identity"}
DEFAULT_PORTS = {"http": 80, "https": 443}
SHOWN = 200  # characters of a refused Location kept in the message


@dataclass(frozen=True)
class Answer:
    """The final answer to one RDAP GET."""

    status: int
    retry_after: str | None  # the Retry-After header of a non-200 answer
    body: bytes  # a 200's body only, at most MAX_BODY bytes


def get_answer(http: httpx.Client, url: str, max_body: int = MAX_BODY) -> Answer:
    """GET URL, following at most MAX_REDIRECTS permitted redirects; read a 200's body."""
    first = origin(httpx.URL(url))
    current = url
    for followed in itertools.count():
        answer, location = _get_once(http, current, max_body)
        if location is None:
            return answer
        if followed == MAX_REDIRECTS:
            raise _refused(f"redirect refused: more than {MAX_REDIRECTS} redirects", url)
        current = redirect_target(current, location, first, url)
    raise AssertionError("unreachable")


def origin(url: httpx.URL) -> tuple[str, str, int | None]:
    """Return URL's (scheme, host, port), the port filled in for http and https."""
    return url.scheme, url.host, url.port or DEFAULT_PORTS.get(url.scheme)


def redirect_target(
    current: str, location: str, first: tuple[str, str, int | None], url: str
) -> str:
    """Return the URL LOCATION points to from CURRENT, if a redirect may go there."""
    try:
        target = httpx.URL(current).join(location)
    except httpx.InvalidURL:
        reason = f"redirect refused: unreadable location {location[:SHOWN]!r}"
        raise _refused(reason, url) from None
    shown = str(target)[:SHOWN]
    # The first URL's own origin is the operator's base (or the registry we chose): its
    # scheme is whatever it was configured with. Anywhere else: https, checked on connect.
    if origin(target) != first and target.scheme != "https":
        raise _refused(f"redirect refused: {shown} is not https", url)
    return str(target)


def _get_once(http: httpx.Client, url: str, max_body: int) -> tuple[Answer, str | None]:
    """GET URL once; return its answer and, for a redirect, its Location."""
    try:
        with http.stream("GET", url, headers=ACCEPT, follow_redirects=False) as response:
            status = response.status_code
            location = response.headers.get("Location")
            if status in REDIRECTS and location is not None:
                return Answer(status, None, b""), location
            if status != 200:
                return Answer(status, response.headers.get("Retry-After"), b""), None
            return Answer(200, None, read_capped(response, max_body, url)), None
    except httpx.HTTPError as error:
        raise LookupFailed(
            f"RDAP request failed: {type(error).__name__}: {url}",
            kind="rdap_unavailable",
            permanent=False,
        ) from None
    except EgressBlocked as error:  # from EgressBackend, on connecting
        raise _refused(f"connection refused: {error.message}", url) from None
    except DNSFailure as error:  # from EgressBackend: more likely our resolver than theirs
        raise LookupFailed(
            f"RDAP server's name does not resolve: {error.message}: {url}",
            kind="rdap_unavailable",
            permanent=False,
        ) from None


def read_capped(response: httpx.Response, max_body: int, url: str) -> bytes:
    """Return RESPONSE's body; LookupFailed as soon as it is known to pass MAX_BODY bytes."""
    declared = response.headers.get("Content-Length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > max_body:
        raise _too_large(max_body, url)
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > max_body:
            raise _too_large(max_body, url)
    return bytes(body)


def _too_large(max_body: int, url: str) -> LookupFailed:
    return LookupFailed(
        f"RDAP answer larger than {max_body} bytes: {url}", kind="rdap_malformed", permanent=False
    )


def _refused(reason: str, url: str) -> LookupFailed:
    return LookupFailed(f"RDAP {reason}: {url}", kind="rdap_refused", permanent=True)


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def is_permitted(address: str, allow: Sequence[IPNetwork]) -> bool:
    """Tell whether ADDRESS may be connected to: public unicast, or inside ALLOW."""
    ip = ipaddress.ip_address(address)
    return special_use(ip) is None or any(ip.version == n.version and ip in n for n in allow)


class EgressBackend(httpcore.NetworkBackend):
    """An httpcore backend that connects only to addresses it resolved and checked.

    TRUSTED, the base's (host, port), is connected to as given; every other host is
    resolved with RESOLVER and only its permitted addresses are tried, so a name that
    answers differently the second time (DNS rebinding) cannot steer a connection.
    """

    def __init__(
        self,
        resolver: dns.resolver.Resolver,
        allow: Sequence[IPNetwork] = (),
        trusted: tuple[str, int] | None = None,
    ) -> None:
        """Resolve with RESOLVER, permitting ALLOW beside public addresses."""
        self._resolver = resolver
        self._allow = tuple(allow)
        self._trusted = trusted
        self._socket = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.NetworkStream:
        """Connect to the first permitted address of HOST that accepts, never to another."""
        if self._trusted == (host, port):
            return self._socket.connect_tcp(host, port, timeout, local_address, socket_options)
        addresses = resolve_host(self._resolver, host).addresses
        permitted = [a for a in addresses if is_permitted(a, self._allow)]
        if not permitted:
            reasons = ", ".join(f"{a} is {special_use(a)}" for a in addresses)
            if _is_literal(host):
                raise EgressBlocked(f"{host} is {special_use(host)}")
            raise EgressBlocked(f"{host} resolves only to special-use addresses: {reasons}")
        failure: Exception = httpcore.ConnectError(f"no address of {host} accepted")
        for address in permitted:
            try:
                return self._socket.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error
        raise failure

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.NetworkStream:
        """Refuse: RDAP never talks to a local socket."""
        raise httpcore.ConnectError("unix sockets are not used for RDAP")

    def sleep(self, seconds: float) -> None:
        """Sleep (httpcore uses it between connection retries)."""
        time.sleep(seconds)


class EgressTransport(httpx.HTTPTransport):
    """httpx's own transport over an httpcore pool that connects only through BACKEND."""

    def __init__(self, backend: EgressBackend, context: ssl.SSLContext) -> None:
        """Build the pool; HTTPTransport.__init__ is not called: it builds an unguarded one."""
        limits = httpx.Limits()  # httpx's defaults, as the plain client had
        self._pool = httpcore.ConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )


def rdap_http(
    resolver: dns.resolver.Resolver,
    *,
    timeout: float,
    base: str | None = None,
    allow: Sequence[str] = (),
    verify: ssl.SSLContext | bool = True,
) -> httpx.Client:
    """Return the HTTP client of RDAP lookups: guarded connections, no redirects of its own."""
    trusted = None
    if base is not None:  # an http(s) URL (settings.py checked it)
        _, host, port = origin(httpx.URL(base))
        trusted = (host, port) if port is not None else None
    networks = [ipaddress.ip_network(cidr, strict=False) for cidr in allow]
    backend = EgressBackend(resolver, networks, trusted)
    context = httpx.create_ssl_context(verify=verify, trust_env=False)
    return httpx.Client(
        transport=EgressTransport(backend, context),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
    )
