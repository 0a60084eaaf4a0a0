"""Workloads 1, 3 and 5: a batch of URLs reported at once, until every first notice.

One intake run: a world of the layout (worlds.py), the engine's worker(s) started and
ready, then every URL reported in one `takedown report --file` call; the clock runs from
that call until every case has its first notice accepted by the relay (its
`first_notice_at`, polled every half second). Then the workers stop, and the naive
pipeline is measured on the same simulated servers, the machine quiet again.

    1  10,000 URLs on 500 host names in 100 networks, one worker, embedded defaults
    3  workload 1 at 1,000, 10,000 and 100,000 URLs (host names and networks in proportion)
    5  workload 1 with 1, 2 and 4 workers on PostgreSQL + Redis
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Any

from harness import facts
from harness.metrics import COMMANDS, LONG_LIVED, Counters, Memory
from harness.naive import NaiveRun, naive_intake
from harness.results import Section, Table, Target, judged, mib, ratio, seconds
from harness.sandbox import Services
from harness.stack import EngineStack, Options
from harness.worlds import HOSTS_PER_ADDRESS, RDAP_RATE, REGISTRIES, Layout, build_world

INTAKE = Layout(10_000, 500, 100)
GROWTH = (1_000, 10_000, 100_000)
SCALE_OUT = (1, 2, 4)
TIME_LIMIT = 60.0  # issue 11: workload 1 in at most a minute…
SPEEDUP = 50.0  # …and at least 50 times faster than the naive pipeline
FLAT = 1.10  # "flat": a larger size's time per URL within 10 % of the smaller one's


@dataclass
class IntakeRun:
    """What one intake run measured."""

    layout: Layout
    workers: int
    backend: str
    finished: bool  # every case had its first notice before the timeout
    wall: float
    report_seconds: float
    counters: Counters
    rdap: dict[str, Any]
    notices: facts.Notices
    waiting: int  # cases still without a first notice at the end
    memory: Memory
    sim_cpu: float
    naive: NaiveRun | None

    @property
    def per_url(self) -> float:
        """Return the engine's seconds per URL."""
        return self.wall / self.layout.urls


_done: dict[tuple[Layout, int, str], IntakeRun] = {}  # runs of this invocation, for reuse


def run_intake(
    layout: Layout,
    options: Options,
    workers: int = 1,
    services: Services | None = None,
    naive: bool = True,
) -> IntakeRun:
    """Run one intake: report every URL of LAYOUT at once, wait for every first notice."""
    backend = "postgresql+redis" if services else "embedded"
    key = (layout, workers, backend)
    if key in _done and (_done[key].naive is not None or not naive):
        return _done[key]
    bench = build_world(layout)
    home = options.home(f"intake-{layout.urls}-{workers}w-{backend}")
    print(f"  intake: {layout}, {workers} worker(s), {backend}", flush=True)
    with EngineStack(bench, home, services) as stack:
        stack.start_workers(workers)
        stack.wait_ready()
        before = stack.counters()
        started = time.monotonic()
        report_seconds = stack.report(bench.urls)

        def noticed() -> bool:
            total, waiting = facts.cases_without_first_notice(stack.db)
            return total == layout.urls and waiting == 0

        finished = stack.wait_for(noticed, options.timeout)
        wall = time.monotonic() - started
        seen = stack.counters().since(before)
        rdap = stack.rdap_limits()
        waiting = facts.cases_without_first_notice(stack.db)[1]
        notices = facts.notices(stack.db)
        stack.stop_workers()
        memory = stack.memory()
        sim_cpu = stack.own_cpu()
        sample = (
            naive_intake(stack, bench.urls, options.naive_urls, options.naive_seconds)
            if naive
            else None
        )
    options.done_with(home)
    run = IntakeRun(
        layout, workers, backend, finished, wall, report_seconds, seen, rdap, notices,
        waiting, memory, sim_cpu, sample,
    )  # fmt: skip
    print(f"    {seconds(wall)}{'' if finished else ' (cut: timeout)'}", flush=True)
    _done[key] = run
    return run


def workload_1(options: Options) -> Section:
    """Intake to notices: one batch, one worker, embedded defaults."""
    layout = INTAKE.scaled(options.scale)
    run = run_intake(layout, options)
    assert run.naive is not None
    naive_time = run.naive.extrapolate(layout.urls)
    section = Section(1, "Intake to notices")
    section.setup = [
        f"{layout}, {layout.networks} abuse desks (one per network), the networks spread "
        f"over {len(REGISTRIES)} registries ({', '.join(r for r, _, _ in REGISTRIES)}).",
        "One `takedown worker --pool threads --concurrency 4`, embedded defaults (SQLite and "
        "an embedded Redis); every URL reported in one `takedown report --file` call "
        f"(the call took {seconds(run.report_seconds)}).",
        "Timed from the report call until every case had its first notice accepted by the "
        "relay (`first_notice_at`).",
    ]
    section.tables = [engine_and_naive(run), counts(run)]
    speedup = naive_time / run.wall
    section.targets = [
        Target(f"≤ {TIME_LIMIT:g} s from report to every first notice", seconds(run.wall),
               judged(options.scale, run.finished and run.wall <= TIME_LIMIT)),
        Target(f"≥ {SPEEDUP:g}× the naive pipeline", f"{speedup:,.1f}×",
               judged(options.scale, run.finished and speedup >= SPEEDUP)),
        one_notice_per_recipient(run),
        one_rdap_query_per_network(run),
    ]  # fmt: skip
    section.notes = [run.naive.describe(layout.urls), *cut(run)]
    return section


def engine_and_naive(run: IntakeRun) -> Table:
    """Return the engine's figures beside the naive pipeline's, extrapolated."""
    assert run.naive is not None
    n, urls = run.naive, run.layout.urls
    seen, other = run.counters, len(run.counters.rdap_paths) - run.counters.rdap_addresses

    def per(value: int) -> str:
        return f"{n.per_url_count(value) * urls:,.0f}"

    table = Table(["", "engine", "naive (extrapolated)", "ratio"])
    table.rows = [
        ["time", seconds(run.wall), seconds(n.extrapolate(urls)),
         ratio(n.extrapolate(urls), run.wall)],
        ["URLs per second", f"{urls / run.wall:,.1f}", f"{1 / n.per_url:,.1f}", ""],
        ["DNS queries", seen.dns_line(), per(n.counters.dns_queries), ""],
        ["RDAP /ip/ address queries", f"{seen.rdap_addresses:,}",
         per(n.counters.rdap_addresses), ""],
        ["other RDAP queries (upstreams, entities)", f"{other:,}",
         per(len(n.counters.rdap_paths) - n.counters.rdap_addresses), ""],
        ["SMTP messages", f"{seen.smtp_messages:,}", per(n.counters.smtp_messages), ""],
        ["web requests (re-checks)", f"{seen.web_requests:,}", per(n.counters.web_requests), ""],
        ["peak memory, engine processes", memory_line(run.memory), "", ""],
        ["peak memory, benchmark process (simulator, naive)", mib(run.memory.own_peak_kib),
         "", ""],
        ["CPU, engine processes / simulator", f"{run.memory.engine_cpu_seconds():,.0f} s / "
         f"{run.sim_cpu:,.0f} s", "", ""],
    ]  # fmt: skip
    return table


def memory_line(memory: Memory) -> str:
    """Return the engine's summed peak with each long-lived process kind in it, and the
    short-lived commands' peaks apart (not summed)."""
    roles = sorted(memory.by_role().items())
    summed = [f"{role} {mib(kib)}" + (f" ({n})" if n > 1 else "")
              for role, (n, kib) in roles if role in LONG_LIVED]  # fmt: skip
    apart = [f"`{role}` {mib(kib // n)}" for role, (n, kib) in roles if role in COMMANDS]
    line = f"{mib(memory.engine_kib)} ({', '.join(summed)})"
    return line + (f"; commands apart: {', '.join(apart)}" if apart else "")


def counts(run: IntakeRun) -> Table:
    """Return the counts the issue asks about, against what they should be."""
    layout, notices, seen = run.layout, run.notices, run.counters
    others = ", ".join(f"{n} {kind}" for kind, n in sorted(notices.sent_by_kind.items()))
    unsent = ", ".join(f"{n} {s}" for s, n in sorted(notices.unsent_by_status.items()))
    table = Table(["count", "measured", "against"])
    table.rows = [
        ["first notices sent", f"{notices.first_sent:,} to {notices.first_recipients:,} "
         f"recipients (at most {notices.most_to_one} to one)",
         f"{layout.networks:,} recipients"],
        ["notices sent, by kind", others or "none", ""],
        ["notices not sent (at the end)", unsent or "none", ""],
        ["RDAP /ip/ address queries", f"{seen.rdap_addresses:,}",
         f"{layout.networks:,} networks"],
        ["DNS queries", seen.dns_line(), dns_bound(layout)],
        ["RDAP refused (429) / peak requests per second per registry",
         f"{run.rdap['refused']} / {rates(run.rdap['peak_rate'])}",
         f"0 / ≤ {RDAP_RATE:g}"],
    ]  # fmt: skip
    return table


def dns_bound(layout: Layout) -> str:
    """Say what one resolution per host name and one origin lookup per address cost."""
    addresses = min(layout.hosts, layout.networks * HOSTS_PER_ADDRESS)
    return (f"{layout.hosts:,} host names: {2 * layout.hosts:,} A and AAAA, plus "
            f"{addresses + layout.networks:,} TXT (origin AS of each address, each AS's "
            "name)")  # fmt: skip


def rates(peaks: dict[str, int]) -> str:
    """Return each registry's peak requests per second."""
    return ", ".join(f"{registry} {n}" for registry, n in sorted(peaks.items())) or "none"


def one_notice_per_recipient(run: IntakeRun) -> Target:
    """Return the target: every desk got exactly one first notice."""
    n = run.notices
    holds = n.first_recipients == run.layout.networks and n.first_sent == n.first_recipients
    return Target("one first notice per recipient",
                  f"{n.first_sent:,} to {n.first_recipients:,} of {run.layout.networks:,}",
                  holds)  # fmt: skip


def one_rdap_query_per_network(run: IntakeRun, which: str = "") -> Target:
    """Return the target: at most one RDAP address query per network (WHICH: of what run)."""
    queries = run.counters.rdap_addresses
    return Target(f"{which}≤ one RDAP query per network",
                  f"{queries:,} for {run.layout.networks:,}",
                  queries <= run.layout.networks)  # fmt: skip


def cut(run: IntakeRun) -> list[str]:
    """Say so when a run was cut at its timeout."""
    if run.finished:
        return []
    return [f"cut at the timeout ({seconds(run.wall)}): {run.waiting:,} of "
            f"{run.layout.urls:,} cases still had no first notice"]  # fmt: skip


def workload_3(options: Options) -> Section:
    """Growth: workload 1 at three sizes; the time per URL must stay flat or fall."""
    layouts = [Layout(n, n // 20, n // 100).scaled(options.scale) for n in GROWTH]
    runs = [run_intake(layout, options, naive=layout == INTAKE.scaled(options.scale))
            for layout in layouts]  # fmt: skip
    section = Section(3, "Growth: time per URL from 1,000 to 100,000 URLs")
    section.setup = [
        "Workload 1 (one worker, embedded defaults) at each size, with 20 URLs per host name "
        "and 5 host names per network, as in workload 1.",
    ]
    table = Table(["URLs", "host names", "networks", "time", "ms per URL", "URLs/s",
                   "RDAP /ip/", "DNS queries", "first notices / recipients",
                   "peak memory (engine)"])  # fmt: skip
    for run in runs:
        table.rows.append([
            f"{run.layout.urls:,}", f"{run.layout.hosts:,}", f"{run.layout.networks:,}",
            seconds(run.wall) + ("" if run.finished else " (cut)"),
            f"{1000 * run.per_url:.1f}", f"{run.layout.urls / run.wall:,.0f}",
            f"{run.counters.rdap_addresses:,}", f"{run.counters.dns_queries:,}",
            f"{run.notices.first_sent:,} / {run.notices.first_recipients:,}",
            mib(run.memory.engine_kib),
        ])  # fmt: skip
    section.tables = [table]
    flat = all(
        later.finished and later.per_url <= FLAT * earlier.per_url
        for earlier, later in itertools.pairwise(runs)
    )
    trend = " → ".join(f"{1000 * run.per_url:.1f}" for run in runs)
    section.targets = [
        Target(f"time per URL flat or falling (each size ≤ {FLAT:.2f}× the one before)",
               f"{trend} ms", judged(options.scale, flat)),
        *[one_rdap_query_per_network(run, f"{run.layout.urls:,} URLs: ") for run in runs],
    ]  # fmt: skip
    naive = next((run.naive for run in runs if run.naive is not None), None)
    if naive is not None:
        section.notes.append(f"{naive.describe(runs[-1].layout.urls)}, "
                             f"{ratio(naive.extrapolate(runs[-1].layout.urls), runs[-1].wall)} "
                             "the engine's time at the largest size")  # fmt: skip
    for run in runs:
        section.notes += cut(run)
    return section


def workload_5(options: Options, services: Services) -> Section:
    """Scale-out: workload 1 on PostgreSQL + Redis with 1, 2 and 4 workers."""
    layout = INTAKE.scaled(options.scale)
    runs = [run_intake(layout, options, workers, services, naive=workers == SCALE_OUT[0])
            for workers in SCALE_OUT]  # fmt: skip
    section = Section(5, "Scale-out: 1, 2 and 4 workers on PostgreSQL + Redis")
    section.setup = [
        f"Workload 1 ({layout}) with N `takedown worker --pool threads --concurrency 4` "
        "processes sharing PostgreSQL and Redis (each run on an emptied database).",
    ]
    table = Table(["workers", "time", "URLs/s", "RDAP /ip/ (networks)", "RDAP refused",
                   "peak RDAP requests/s per registry", "first notices / recipients",
                   "peak memory (engine)"])  # fmt: skip
    section.targets = []
    for run in runs:
        table.rows.append([
            str(run.workers), seconds(run.wall) + ("" if run.finished else " (cut)"),
            f"{layout.urls / run.wall:,.1f}",
            f"{run.counters.rdap_addresses:,} ({layout.networks:,})", str(run.rdap["refused"]),
            rates(run.rdap["peak_rate"]),
            f"{run.notices.first_sent:,} / {run.notices.first_recipients:,}",
            memory_line(run.memory),
        ])  # fmt: skip
        peak = max(run.rdap["peak_rate"].values(), default=0)
        section.targets += [
            one_rdap_query_per_network(run, f"{run.workers} worker(s): "),
            Target(f"{run.workers} worker(s): no registry above {RDAP_RATE:g} requests/s",
                   f"peak {peak}/s, {run.rdap['refused']} refused",
                   peak <= RDAP_RATE and run.rdap["refused"] == 0),
        ]  # fmt: skip
    section.tables = [table]
    naive = runs[0].naive
    if naive is not None:
        section.notes.append(naive.describe(layout.urls) + ", " + ", ".join(
            f"{ratio(naive.extrapolate(layout.urls), run.wall)} with {run.workers}"
            for run in runs))  # fmt: skip
    for run in runs:
        section.notes += cut(run)
    return section
