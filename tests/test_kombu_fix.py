"""Celery 5.7's reaction to a lost broker connection — collect it, then close it — must
not raise while a message is unacknowledged (engine/kombu_fix.py): the worker reported it
as an unrecoverable error and exited, so a Redis restart under load stopped the engine.
The whole failure is reproduced by tests/faults/test_redis_restart.py (a worker with
tasks in flight whose Redis is killed), which fails without the fix; this test pins the
fix's own promise on a real Redis."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from kombu.connection import Connection
from kombu.entity import Exchange, Queue
from kombu.messaging import Consumer, Producer

from workflows.config.settings import load_settings
from workflows.engine import kombu_fix
from workflows.engine.broker import Broker


@pytest.fixture(name="in_flight")
def in_flight_fixture(tmp_path: Path) -> Iterator[Any]:
    """Yield a connection to a Redis that held one delivered, unacknowledged message and
    has just gone away."""
    kombu_fix.apply()
    with Broker(load_settings({"TAKEDOWN_HOME": str(tmp_path)})) as broker:
        connection: Any = Connection(broker.url)  # type: ignore[no-untyped-call]
        queue = Queue("kombu-fix", Exchange("kombu-fix"), "kombu-fix")  # type: ignore[no-untyped-call]
        channel = connection.default_channel
        producer: Any = Producer(channel)  # type: ignore[no-untyped-call]
        producer.publish(
            {"ids": [1]}, exchange=queue.exchange, routing_key="kombu-fix", declare=[queue]
        )
        got: list[Any] = []
        with Consumer(channel, [queue], callbacks=[lambda _, m: got.append(m)], no_ack=False):  # type: ignore[no-untyped-call]
            connection.drain_events(timeout=5)
        assert got and not got[0].acknowledged  # in flight, as an acks_late task is
        with contextlib.suppress(redis.RedisError):
            broker.client.shutdown(nosave=True)  # type: ignore[union-attr]  # the outage
        yield connection


def test_with_the_fix_a_collected_connection_closes_quietly(in_flight: Any) -> None:
    in_flight.collect(socket_timeout=1)  # what Celery's consumer does first
    assert in_flight._default_channel is None  # nothing stale left for close() to restore
    in_flight.close()  # then this
