"""Workload 4: reports arriving at 20 URLs a second for 5 minutes; report → notice latency.

One worker and `takedown serve` run on the embedded defaults; the benchmark posts 20 URLs
a second to the HTTP API (`POST /api/cases`, one call a second, on schedule: a late call
is sent at once, never bunched up), in workload 1's world with its URLs shuffled, so new
host names and networks keep arriving. When the last call is in and every reported case
has its first notice accepted, the latency of each case is its first notice's `sent_at`
minus its `opened_at`, both stamped by the engine.

The naive pipeline cannot keep up with 20 URLs a second (it does a few a second), so its
latency grows with the queue: it is modelled from its measured time per URL, as one
queue served in arrival order.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Sequence

import httpx

from harness import facts
from harness.intake import INTAKE, memory_line
from harness.naive import naive_intake
from harness.results import Section, Table, Target, judged, mib, seconds
from harness.stack import POLICY, EngineStack, Options
from harness.worlds import build_world
from workflows.config.policy import load_policy

RATE = 20  # URLs a second…
DURATION = 300.0  # …for five minutes
PORT = 8111  # the API's port on the namespace's loopback
SLACK = 5.0  # issue 11: p99 within the notice window plus 5 s


def workload_4(options: Options) -> Section:
    """Latency under load: steady arrivals through the API, until every first notice."""
    layout = INTAKE.scaled(options.scale)
    duration = max(10.0, DURATION * options.scale)
    bench = build_world(layout)
    urls = list(bench.urls)
    random.Random(11).shuffle(urls)
    urls = urls[: int(RATE * duration)]
    home = options.home("arrivals")
    window = load_policy(POLICY).notice_window
    print(f"  arrivals: {RATE} URLs/s for {seconds(duration)} ({len(urls):,} URLs)", flush=True)
    with EngineStack(bench, home) as stack:
        stack.start_workers(1)
        stack.wait_ready()
        stack.serve(PORT)
        token = _token(stack)
        before = stack.counters()
        calls = _post_steadily(urls, token)
        reported = time.monotonic()
        finished = stack.wait_for(
            lambda: facts.cases_without_first_notice(stack.db) == (len(urls), 0),
            options.timeout,
        )
        drained = time.monotonic() - reported
        seen = stack.counters().since(before)
        latencies = sorted(facts.notice_latencies(stack.db))
        notices = facts.notices(stack.db)
        stack.stop_workers()
        memory = stack.memory()
        naive = naive_intake(stack, bench.urls, options.naive_urls, options.naive_seconds)
    options.done_with(home)
    modelled = sorted(queue_latencies(len(urls), naive.per_url))
    p99 = percentile(latencies, 99)
    print(f"    p50 {seconds(percentile(latencies, 50))}, p99 {seconds(p99)}", flush=True)
    section = Section(4, "Latency under load")
    section.setup = [
        f"{RATE} URLs a second for {seconds(duration)} ({len(urls):,} URLs, one "
        f"`POST /api/cases` a second) into workload 1's world ({layout}), shuffled.",
        "One `takedown worker --pool threads --concurrency 4` and `takedown serve`, embedded "
        "defaults; latency = a case's first notice `sent_at` − its `opened_at`.",
    ]
    table = Table(["", "engine", "naive (modelled)"])
    table.rows = [
        ["report → notice accepted, p50", seconds(percentile(latencies, 50)),
         seconds(percentile(modelled, 50))],
        ["p99", seconds(p99), seconds(percentile(modelled, 99))],
        ["max", seconds(latencies[-1] if latencies else 0), seconds(modelled[-1])],
        ["cases with a first notice", f"{len(latencies):,} of {len(urls):,}", ""],
        ["first notices sent / recipients",
         f"{notices.first_sent:,} / {notices.first_recipients:,}", ""],
        ["API call (20 URLs), p50 / p99", f"{1000 * percentile(calls, 50):.0f} ms / "
         f"{1000 * percentile(calls, 99):.0f} ms", ""],
        ["after the last call, until every first notice", seconds(drained), ""],
        ["DNS queries / RDAP /ip/ address queries / SMTP messages",
         f"{seen.dns_queries:,} / {seen.rdap_addresses:,} ({layout.networks:,} networks) / "
         f"{seen.smtp_messages:,}", ""],
        ["peak memory, engine processes", memory_line(memory), ""],
        ["peak memory, benchmark process (simulator, naive)", mib(memory.own_peak_kib), ""],
    ]  # fmt: skip
    section.tables = [table]
    section.targets = [
        Target(f"p99 ≤ notice window + {SLACK:g} s ({window + SLACK:g} s)", seconds(p99),
               judged(options.scale, finished and p99 <= window + SLACK)),
    ]  # fmt: skip
    section.notes = [
        naive.describe(len(urls)) + f"; as one queue fed {RATE} URLs a second, its "
        "latency is modelled from that time per URL"
    ]
    if not finished:
        section.notes.append(f"cut at the timeout: {len(urls) - len(latencies):,} cases "
                             "without a first notice")  # fmt: skip
    return section


def _token(stack: EngineStack) -> str:
    """Create an analyst and return its API token (the last line `user add` prints)."""
    done = stack.takedown("user", "add", "bench", "--role", "analyst")
    if done.returncode != 0:
        raise RuntimeError(f"takedown user add failed: {done.stderr}")
    return done.stdout.strip().splitlines()[-1]


def _post_steadily(urls: Sequence[str], token: str) -> list[float]:
    """Post RATE URLs a second on schedule; return each call's seconds."""
    calls = []
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{PORT}", headers=headers, timeout=60) as api:
        start = time.monotonic()
        for n, first in enumerate(range(0, len(urls), RATE)):
            wait = start + n - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            sent = time.monotonic()
            body = {"urls": list(urls[first : first + RATE]), "ref": f"BENCH-4-{n}"}
            answer = api.post("/api/cases", json=body)
            if answer.status_code != 201:
                raise RuntimeError(f"POST /api/cases: {answer.status_code} {answer.text[:300]}")
            calls.append(time.monotonic() - sent)
    return calls


def queue_latencies(urls: int, per_url: float) -> list[float]:
    """Return each URL's latency through one sequential server of PER_URL seconds a URL,
    fed RATE URLs a second: it finishes a URL after the one before, or on its arrival."""
    latencies, free = [], 0.0
    for n in range(urls):
        arrives = n // RATE
        free = max(free, arrives) + per_url
        latencies.append(free - arrives)
    return latencies


def percentile(values: Sequence[float], p: int) -> float:
    """Return the P-th percentile (1-99) of VALUES, interpolated; 0 for none."""
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]
