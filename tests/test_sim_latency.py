"""The simulated internet's latencies and RDAP rate limit: slow answers that overlap."""

from __future__ import annotations

import json
import smtplib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from typing import TypeVar

import dns.exception
import dns.message
import dns.query
import dns.rcode
import httpx
import pytest

from workflows.sim import Latency, SimInternet, WebServer, World, sample_world
from workflows.sim.smtp import SMTPServer

T = TypeVar("T")
SLOW = 0.3  # seconds of latency in these tests (SMTP: twice that)
EARLY = 0.01  # clock slack: an answer may come this much before its latency is up
OVERLAPPED = 2.0  # seconds within which every concurrent answer must come
RIPE_IP = "/ip/185.199.108.10"  # a ripencc network of the sample world
ARIN_IP = "/ip/66.175.208.20"  # an arin network of the sample world
URL = "http://uploads.examplehost-uk.test/img/1.bin"


@pytest.fixture
def sim() -> Iterator[SimInternet]:
    """Run the sample world on free 127.0.0.1 ports."""
    with SimInternet(sample_world()) as running:
        yield running


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    """Return an HTTP client that ignores proxy settings and holds many connections."""
    limits = httpx.Limits(max_connections=64)
    with httpx.Client(trust_env=False, timeout=5, limits=limits) as client:
        yield client


def together(count: int, task: Callable[[], T]) -> tuple[list[tuple[float, T]], float]:
    """Run task in count threads released at once; return (seconds, result) each and the total."""
    gate = threading.Barrier(count)

    def timed() -> tuple[float, T]:
        gate.wait()
        started = time.monotonic()
        result = task()
        return time.monotonic() - started, result

    started = time.monotonic()
    with ThreadPoolExecutor(count) as pool:
        results = list(pool.map(lambda _: timed(), range(count)))
    return results, time.monotonic() - started


def test_no_latency_and_no_rate_limit_by_default() -> None:
    world = World()
    assert world.latency == Latency(0.0, 0.0, 0.0, 0.0)
    assert world.rdap_rate is None
    with pytest.raises(ValueError, match="latency dns"):
        Latency(dns=-1)
    with pytest.raises(ValueError, match="rdap_rate"):
        World(rdap_rate=0)


# -- DNS --------------------------------------------------------------------------------------


def test_dns_answers_wait_for_the_latency_side_by_side_over_udp(sim: SimInternet) -> None:
    sim.world.latency = Latency(dns=SLOW)

    def ask() -> dns.message.Message:
        query = dns.message.make_query("uploads.examplehost-uk.test", "A")
        return dns.query.udp(query, "127.0.0.1", port=sim.dns.port, timeout=5)

    answers, total = together(20, ask)
    assert all(took >= SLOW - EARLY for took, _ in answers)
    assert all(answer.rcode() == dns.rcode.NOERROR and answer.answer for _, answer in answers)
    assert total < OVERLAPPED  # one after another they would take 6 s
    assert len(sim.dns.queries) == 20
    assert sim.dns.count_answers(transport="udp") == {"noerror": 20}


def test_dns_answers_on_one_tcp_connection_overlap(sim: SimInternet) -> None:
    sim.world.latency = Latency(dns=SLOW)
    queries = [dns.message.make_query(f"n{i}.tinylnk.test", "A", id=i) for i in range(10)]
    wire = b"".join(len(w).to_bytes(2, "big") + w for w in (q.to_wire() for q in queries))
    connection = socket.create_connection(("127.0.0.1", sim.dns.port), timeout=5)
    with connection as sock, sock.makefile("rb") as stream:
        started = time.monotonic()
        sock.sendall(wire)  # all ten pipelined before any answer
        answers = []
        for _ in queries:
            size = int.from_bytes(stream.read(2), "big")
            answers.append(dns.message.from_wire(stream.read(size)))
        took = time.monotonic() - started
    assert sorted(a.id for a in answers) == list(range(10))
    assert all(a.rcode() == dns.rcode.NXDOMAIN for a in answers)
    assert SLOW - EARLY <= took < OVERLAPPED  # one after another they would take 3 s


def test_dns_faults_keep_their_behaviour_and_are_late_too(sim: SimInternet) -> None:
    def ask(name: str, tcp: bool = False, timeout: float = 5) -> dns.message.Message:
        send = dns.query.tcp if tcp else dns.query.udp
        query = dns.message.make_query(name, "A")
        return send(query, "127.0.0.1", port=sim.dns.port, timeout=timeout)

    sim.world.latency = Latency(dns=SLOW)
    started = time.monotonic()
    assert ask("flaky.badlinks.test").rcode() == dns.rcode.SERVFAIL
    assert time.monotonic() - started >= SLOW - EARLY
    with pytest.raises(dns.exception.Timeout):
        ask("slow.badlinks.test", timeout=2 * SLOW)
    sim.world.latency = Latency()  # back to at once, on the running server
    started = time.monotonic()
    assert ask("go.tinylnk.test", tcp=True).rcode() == dns.rcode.NOERROR
    assert time.monotonic() - started < SLOW
    assert sim.dns.count_answers() == {"servfail": 1, "silent": 1, "noerror": 1}


# -- RDAP -------------------------------------------------------------------------------------


def test_rdap_answers_wait_for_the_latency_side_by_side(
    sim: SimInternet, http: httpx.Client
) -> None:
    sim.world.latency = Latency(rdap=SLOW)
    answers, total = together(20, lambda: http.get(sim.rdap_base + RIPE_IP))
    assert all(took >= SLOW - EARLY for took, _ in answers)
    assert all(response.status_code == 200 for _, response in answers)
    assert total < OVERLAPPED  # one after another they would take 6 s


def test_rdap_requests_count_for_the_registry_of_their_network(
    sim: SimInternet, http: httpx.Client
) -> None:
    entity, unknown = "/entity/ORG-PIXELFORGE-NET", "/ip/8.8.8.8"
    paths = [RIPE_IP, ARIN_IP, "/autnum/AS205012", entity, unknown, "/nothing/here"]
    assert [http.get(sim.rdap_base + p).status_code for p in paths] == [200] * 4 + [404, 400]
    assert sim.rdap.by_registry() == {"ripencc": 2, "arin": 2, "other": 2}
    assert sim.rdap.peak_rate() == {"ripencc": 2, "arin": 2, "other": 2}
    assert sim.rdap.refused == 0
    sim.rdap.clear_log()
    assert (sim.rdap.by_registry(), sim.rdap.peak_rate(), sim.rdap.refused) == ({}, {}, 0)


def test_rdap_rate_limit_refuses_a_burst_per_registry(sim: SimInternet, http: httpx.Client) -> None:
    sim.world.rdap_rate = 10
    answers, _ = together(30, lambda: http.get(sim.rdap_base + RIPE_IP))
    statuses = [response.status_code for _, response in answers]
    refused = [response for _, response in answers if response.status_code == 429]
    answered = sim.rdap.by_registry()["ripencc"]
    assert set(statuses) == {200, 429}
    assert 10 <= answered <= 15  # a full bucket, and at most half a second's refill
    assert answered + sim.rdap.refused == 30 == answered + len(refused)
    assert sim.rdap.peak_rate() == {"ripencc": 30}
    first = refused[0]
    assert first.headers["Retry-After"] == "1"
    assert first.headers["Content-Type"] == "application/rdap+json"
    assert json.loads(first.content)["errorCode"] == 429
    # Another registry has a rate of its own; no limit at all answers everything.
    assert http.get(sim.rdap_base + ARIN_IP).status_code == 200
    sim.world.rdap_rate = None
    assert http.get(sim.rdap_base + RIPE_IP).status_code == 200
    assert sim.rdap.faults_served == {}  # the limit comes before, and is not, a fault


# -- web and SMTP -----------------------------------------------------------------------------


def test_web_responses_wait_for_the_latency_side_by_side(http: httpx.Client) -> None:
    world = World(latency=Latency(web=SLOW))
    world.put_content(URL, size=512)
    with WebServer(world) as web:
        target = web.base_url + "/img/1.bin"
        host = {"Host": "uploads.examplehost-uk.test"}
        answers, total = together(20, lambda: http.get(target, headers=host))
    assert all(took >= SLOW - EARLY for took, _ in answers)
    assert all(r.status_code == 200 and len(r.content) == 512 for _, r in answers)
    assert total < OVERLAPPED  # one after another they would take 6 s
    assert len(world.fetches(URL)) == 20


def test_smtp_data_reply_waits_for_the_latency_side_by_side() -> None:
    def deliver(smtp: SMTPServer, number: int) -> float:
        message = EmailMessage()
        message["From"], message["To"] = "notices@hotline.test", "abuse@examplehost.example"
        message["Message-ID"], message["Subject"] = f"<n{number}@hotline.test>", "Notice"
        message.set_content("Please remove the content.\n")
        with smtplib.SMTP("127.0.0.1", smtp.port, "hotline.test", timeout=5) as client:
            client.ehlo()
            client.mail("notices@hotline.test")
            client.rcpt("abuse@examplehost.example")
            started = time.monotonic()
            code, _ = client.data(message.as_bytes())
            assert code == 250
            return time.monotonic() - started

    with SMTPServer(latency=2 * SLOW) as smtp:
        numbers = iter(range(5))
        answers, total = together(5, lambda: deliver(smtp, next(numbers)))
        assert all(took >= 2 * SLOW - EARLY for took, _ in answers)
        assert total < OVERLAPPED  # one after another: 3 s of replies alone
        assert smtp.count_received() == 5
        smtp.latency = 0.0  # on the running server
        assert deliver(smtp, 5) < SLOW
