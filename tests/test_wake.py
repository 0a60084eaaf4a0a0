"""The sweeper's Redis side. A report wakes the sweep: a worker that sweeps once a minute
traces a reported URL in seconds, on the embedded Redis and on a real one; the nudge is a
hint that never fails a report. And the sweeper reads from the workers' heartbeats whether
re-checks share their workers with traces and notices."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ISOLATED, SERVICE_URLS, SIM_ADDRESSES
from engine_harness import hosta_world
from stack import Stack, stack_of

from workflows.config.settings import load_settings
from workflows.engine import health, wake
from workflows.engine.broker import Broker, SweepLock
from workflows.engine.worker import CATCH_UP, Scheduler, next_sweep
from workflows.kinds import CaseState

URL = "http://files.hosta.test/wake/a.jpg"
BACKENDS = ["embedded"] + (["services"] if all(SERVICE_URLS.values()) else [])
DATA = Path(__file__).parent / "data"


@pytest.fixture(params=BACKENDS)
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Broker]:
    env = {"TAKEDOWN_HOME": str(tmp_path)}
    if request.param == "services":
        env["TAKEDOWN_REDIS_URL"] = SERVICE_URLS["redis"] or ""
    with Broker(load_settings(env)) as running:
        assert running.client is not None
        running.client.delete(wake.WAKE_KEY)
        running.settings = load_settings(env)  # type: ignore[attr-defined]
        yield running


def test_a_nudge_ends_the_wait_and_a_burst_of_them_wakes_it_once(broker: Broker) -> None:
    client, settings = broker.client, broker.settings  # type: ignore[attr-defined]
    assert client is not None
    stopping = threading.Event()
    began = time.monotonic()
    assert not wake.pause(client, began + 0.3, stopping)  # nobody reported: the full wait
    assert time.monotonic() - began >= 0.29
    assert all(wake.nudge(settings) for _ in range(5))
    began = time.monotonic()
    assert wake.pause(client, began + 30, stopping)  # at once
    assert time.monotonic() - began < 2
    assert not wake.pause(client, time.monotonic() + 0.3, stopping)  # the burst was one


def test_a_stopping_scheduler_stops_waiting_within_a_slice(broker: Broker) -> None:
    assert broker.client is not None
    stopping = threading.Event()
    threading.Timer(0.2, stopping.set).start()
    began = time.monotonic()
    assert not wake.pause(broker.client, began + 60, stopping)
    assert time.monotonic() - began < wake.SLICE + 1


def test_a_stopping_scheduler_told_through_its_own_key_stops_at_once(broker: Broker) -> None:
    # A worker's shutdown must not sit out a BLPOP slice; nor may the stop wake another
    # scheduler's wait (it is on the stopping one's own key) or count as a nudge.
    client = broker.client
    assert client is not None
    stopping, key = threading.Event(), wake.stop_key("worker-a")
    client.delete(key)

    def stop() -> None:
        stopping.set()
        wake.unblock(client, key)

    threading.Timer(0.2, stop).start()
    began = time.monotonic()
    assert not wake.pause(client, began + 60, stopping, key)
    assert time.monotonic() - began < 0.2 + wake.SLICE / 2
    other = threading.Event()
    began = time.monotonic()
    assert not wake.pause(client, began + 0.3, other, wake.stop_key("worker-b"))
    assert time.monotonic() - began >= 0.29  # worker-b was not woken
    assert not client.exists(key)  # the stopping one took its token
    wake.unblock(client, key)  # a stop nobody waits for does not stay behind
    assert 0 < client.ttl(key) <= 60


def test_a_nudge_without_redis_gives_up_quietly(tmp_path: Path) -> None:
    # No embedded Redis runs in this home: nothing to wake, and no error.
    assert not wake.nudge(load_settings({"TAKEDOWN_HOME": str(tmp_path)}))
    # A configured Redis that does not answer: given up within its timeout.
    dead = load_settings(
        {"TAKEDOWN_HOME": str(tmp_path), "TAKEDOWN_REDIS_URL": "redis://127.0.0.1:1/0"}
    )
    began = time.monotonic()
    assert not wake.nudge(dead)
    assert time.monotonic() - began < 3 * wake.NUDGE_TIMEOUT + 1


def test_a_report_is_traced_at_once_by_a_worker_that_sweeps_once_a_minute(
    tmp_path: Path,
) -> None:
    # The embedded defaults only: nudging a configured Redis is the same two calls, tested
    # above on both; a real worker costs seconds of CI.
    policy = tmp_path / "slow-sweep.toml"
    policy.write_text(
        (DATA / "test-policy.toml")
        .read_text()
        .replace('sweep_every = "0.5s"', 'sweep_every = "60s"')
    )
    home = tmp_path / "home"
    home.mkdir()
    world = hosta_world(URL)
    with stack_of(world, [], home, "embedded", SERVICE_URLS, ISOLATED, SIM_ADDRESSES) as stack:
        stack.env["TAKEDOWN_POLICY"] = str(policy)
        stack.start_worker()
        stack.wait_for(lambda: "sweep lock taken" in stack.worker_log(), 60, "the sweeper")
        time.sleep(1.0)  # its first sweep (of nothing) is over: the next is a minute away
        began = time.monotonic()
        stack.report(URL)
        stack.wait_for(lambda: _routed(stack), 20, "the case routed")
        assert time.monotonic() - began < 20  # not the minute the sweep would have waited


def _routed(stack: Stack) -> bool:
    return any(c.state != CaseState.NEW for c in stack.cases())


def test_the_sweeper_sees_whether_re_checks_share_their_workers(broker: Broker) -> None:
    client = broker.client
    assert client is not None
    client.delete(health.WORKERS)
    scheduler = Scheduler(None, SweepLock(client, 30.0), "sweeper")  # type: ignore[arg-type]
    everything = ["takedown", "takedown.checks", "takedown.notices"]
    health.Heartbeat(client, "one@a", everything).beat()
    assert scheduler.shares("takedown.checks", ["takedown"])  # the one worker does all
    health.Heartbeat(client, "fetcher@b", ["takedown.checks"]).beat()
    assert not scheduler.shares("takedown.checks", ["takedown"])  # a fetcher is free for them
    client.delete(health.WORKERS)
    health.Heartbeat(client, "fetcher@b", ["takedown.checks"]).beat()
    gone = json.dumps({"queues": everything, "seen": time.time() - 10 * health.STALE_AFTER})
    client.hset(health.WORKERS, "gone@c", gone)  # a worker long dead does not count
    assert not scheduler.shares("takedown.checks", ["takedown"])
    client.delete(health.WORKERS)


def test_a_sweep_that_left_work_is_followed_within_a_second_whatever_the_interval() -> None:
    assert next_sweep(100.0, 100.5, 30.0, more=False) == 130.0
    assert next_sweep(100.0, 100.5, 30.0, more=True) == 100.0 + CATCH_UP
    assert next_sweep(100.0, 100.2, 0.5, more=True) == 100.5  # a shorter interval stays
    assert next_sweep(100.0, 140.0, 30.0, more=False) == 140.0 + 7.5  # a long one rests
