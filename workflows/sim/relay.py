"""Relay a unix socket to a TCP service: how an isolated test namespace reaches host Redis.

Inside the test session's network namespace only its own loopback exists, so the machine's
Redis on 127.0.0.1:6379 is out of reach; unix sockets are not tied to a network namespace.
Started before the namespace is entered, this relay keeps the host's network and forwards
each connection on its socket to the TCP address.

    python -m workflows.sim.relay SOCKET_PATH HOST:PORT
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        with contextlib.suppress(ConnectionError, OSError):
            writer.close()


async def serve(path: str, host: str, port: int) -> None:
    """Accept on PATH forever; connect each client to HOST:PORT."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    server = await asyncio.start_unix_server(handle, path=path)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> int:
    """Run the relay until killed."""
    path, address = argv
    host, _, port = address.rpartition(":")
    asyncio.run(serve(path, host, int(port)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
