"""Where the benchmarks run: a network namespace of their own, and workload 5's services.

`isolate()` moves the benchmark process (and so every `takedown` process it starts) into a
new network namespace whose only interface is loopback, and makes the whole SIM_PREFIX
local on it: the simulated hosts' public-looking addresses answer here, and a packet to
any other address fails at once (ENETUNREACH). Nothing can leave the machine.

PostgreSQL and Redis of the host are TCP services on 127.0.0.1, out of the namespace's
reach; unix sockets are not tied to a network namespace. PostgreSQL is reached through
its own socket directory (/var/run/postgresql) when it has one, else, like Redis, through
a relay (`workflows.sim.relay`) on a unix socket, started before the namespace is entered.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import redis

from harness.worlds import SIM_PREFIX
from workflows.engine.broker import client_url
from workflows.sim.netns import isolate_network

POSTGRES_SOCKETS = Path("/var/run/postgresql")


def isolate() -> None:
    """Enter a loopback-only network namespace with SIM_PREFIX local; exit if we may not."""
    if not isolate_network():
        raise SystemExit(
            "benchmarks: cannot enter a network namespace of our own (needs root or an "
            "unprivileged user namespace); refusing to run where traffic could leave"
        )
    ip = shutil.which("ip")
    if ip is None:
        raise SystemExit("benchmarks: iproute2's `ip` is needed to put the sites on loopback")
    command = [ip, "route", "add", "local", str(SIM_PREFIX), "dev", "lo"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"benchmarks: {' '.join(command)} failed: {done.stderr.strip()}")


@dataclass
class Services:
    """PostgreSQL and Redis for workload 5: a bench database and a Redis database of ours."""

    database_url: str  # as the engine takes it (TAKEDOWN_DATABASE_URL)
    redis_url: str  # as the engine takes it (TAKEDOWN_REDIS_URL)
    shown: str  # what RESULTS.md says they are
    admin_url: str  # libpq URL of the server's maintenance database
    database: str
    folder: str  # the relays' sockets
    relays: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def create(self) -> None:
        """Create the bench database (dropping a leftover one first)."""
        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            connection.execute(f'CREATE DATABASE "{self.database}"')

    def reset(self) -> None:
        """Give the next run a new, empty bench database and an empty Redis database."""
        self.create()
        client = redis.Redis.from_url(client_url(self.redis_url))
        client.flushdb()
        client.close()

    def close(self) -> None:
        """Drop the bench database, empty the Redis database, stop the relays."""
        try:
            client = redis.Redis.from_url(client_url(self.redis_url))
            client.flushdb()
            client.close()
            with psycopg.connect(self.admin_url, autocommit=True) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        finally:
            for relay in self.relays:
                relay.kill()
                relay.wait()
            shutil.rmtree(self.folder, ignore_errors=True)


def start_services(database: str, redis_url: str) -> Services:
    """Prepare the services of DATABASE and REDIS_URL (TCP URLs); call before isolate()."""
    folder = tempfile.mkdtemp(prefix="takedown-bench-relay-")
    db = urlsplit(database)
    name = db.path.strip("/")
    port = db.port or 5432
    user = f"{db.username}@" if db.username else ""
    sockets = POSTGRES_SOCKETS if (POSTGRES_SOCKETS / f".s.PGSQL.{port}").exists() else None
    relays = []
    if sockets is None:  # libpq finds a server's socket as <dir>/.s.PGSQL.<port>
        relays.append(_relay(f"{folder}/.s.PGSQL.{port}", f"{db.hostname}:{port}"))
        sockets = Path(folder)
    local = f"host={sockets}&port={port}"
    r = urlsplit(redis_url)
    relays.append(_relay(f"{folder}/redis.sock", f"{r.hostname}:{r.port or 6379}"))
    number = r.path.strip("/") or "0"
    return Services(
        database_url=f"postgresql://{user}/{name}?{local}",
        redis_url=f"redis+socket://{folder}/redis.sock?virtual_host={number}",
        shown=f"PostgreSQL {db.hostname}:{port}/{name} (via {sockets}), "
        f"Redis {r.hostname}:{r.port or 6379}/{number} (via a unix-socket relay)",
        admin_url=f"postgresql://{user}/postgres?{local}",
        database=name,
        folder=folder,
        relays=relays,
    )


def _relay(path: str, address: str) -> subprocess.Popen[bytes]:
    """Start a relay from the unix socket PATH to the TCP ADDRESS; return it once ready."""
    relay = subprocess.Popen(
        [sys.executable, "-m", "workflows.sim.relay", path, address],
        stdout=subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if not k.startswith("TAKEDOWN_")},
    )
    assert relay.stdout is not None
    if relay.stdout.readline().strip() != b"ready":
        relay.kill()
        raise SystemExit(f"benchmarks: the relay to {address} did not start")
    return relay
