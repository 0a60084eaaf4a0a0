"""httpcore network streams on asyncio's own streams, for the re-checker's guarded backend.

Hand-written, not httpcore's AnyIOBackend: anyio's `connect_tcp` races the addresses of a
name (happy eyeballs) in a task group of its own, with events and cancel scopes, for every
connection, and each read and write opens a cancel scope; the guard has already resolved
the name and connects to exactly one checked address at a time. That machinery was an
eighth of the re-checking worker's CPU in a pass of 100,000 re-checks (benchmarks,
workload 2, py-spy). Here a connection is `asyncio.open_connection` to a checked address
(asyncio asks no resolver about a literal address), and each operation is bounded by
`asyncio.timeout`. Errors become httpcore's, as its own backends raise them, with the
operating system's error as their cause (the fetcher names it).
"""

from __future__ import annotations

import asyncio
import select
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore

SocketOption = Any  # httpcore's SOCKET_OPTION union; only passed through


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One TCP (or TLS) connection, as httpcore reads and writes it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Wrap a connection's READER and WRITER."""
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Read at most MAX_BYTES (b"" once the peer has closed)."""
        try:
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)
        except TimeoutError as error:
            raise httpcore.ReadTimeout(error) from error
        except OSError as error:
            raise httpcore.ReadError(error) from error

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Write BUFFER and wait until the connection has taken it."""
        if not buffer:
            return
        try:
            async with asyncio.timeout(timeout):
                self._writer.write(buffer)
                await self._writer.drain()
        except TimeoutError as error:
            raise httpcore.WriteTimeout(error) from error
        except OSError as error:
            raise httpcore.WriteError(error) from error

    async def aclose(self) -> None:
        """Close the connection; nothing is left to flush (every write was drained)."""
        self._writer.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Upgrade to TLS in place, checking the certificate against SERVER_HOSTNAME."""
        try:
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        except TimeoutError as error:
            self._writer.close()
            raise httpcore.ConnectTimeout(error) from error
        except (OSError, ssl.SSLError) as error:
            self._writer.close()
            raise httpcore.ConnectError(error) from error
        return self

    def get_extra_info(self, info: str) -> Any:
        """Answer what httpcore asks of a stream, as its own backends do."""
        if info == "ssl_object":
            return self._writer.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._writer.get_extra_info("sockname")
        if info == "server_addr":
            return self._writer.get_extra_info("peername")
        if info == "socket":
            return self._writer.get_extra_info("socket")
        if info == "is_readable":
            sock = self._writer.get_extra_info("socket")
            return sock is None or sock.fileno() < 0 or _readable(sock)
        return None


async def connect_tcp(
    address: str,
    port: int,
    timeout: float | None = None,
    local_address: str | None = None,
    socket_options: Iterable[SocketOption] | None = None,
) -> AsyncioStream:
    """Connect to ADDRESS on PORT within TIMEOUT: a checked literal address, or the
    operator's proxy as configured (the only name resolved here, by the system)."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                address, port, local_addr=(local_address, 0) if local_address else None
            )
    except TimeoutError as error:
        raise httpcore.ConnectTimeout(error) from error
    except OSError as error:
        raise httpcore.ConnectError(error) from error
    sock = writer.get_extra_info("socket")
    for option in socket_options or ():
        sock.setsockopt(*option)
    return AsyncioStream(reader, writer)


def _readable(sock: socket.socket) -> bool:
    """Tell whether SOCK has something to read (or has been closed by its peer) now."""
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    return bool(poller.poll(0))
