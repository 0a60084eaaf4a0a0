"""Benchmark: tracing a batch of URLs, the engine's way against a naive baseline.

    python benchmarks/trace_batch.py [--urls 200] [--networks 10]

Both run in this process against the simulated internet (real DNS and RDAP servers on
127.0.0.1, inside a loopback-only network namespace where the process may), with the
engine's own RDAP rate limit (TAKEDOWN_RDAP_RATE, 5 requests a second per registry, as
the registries expect). The engine's tracer caches each RDAP answer by its network's
range; the baseline is the same tracer with that cache off (TAKEDOWN_RDAP_CACHE_TTL=1ms),
which is what a script calling ipwhois once per URL does. Reported: wall time, RDAP
requests served, and the ratios. Nothing here is a test: it prints what it measured.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

from workflows.config.settings import load_settings
from workflows.core.urls import normalize_url
from workflows.sim import SimInternet, World
from workflows.sim.netns import isolate_network
from workflows.trace.tracer import Tracer


def world_of(urls: int, networks: int) -> tuple[World, list[str]]:
    """Return a world of NETWORKS hosting networks and URLS URLs spread over them."""
    built = World()
    for n in range(networks):
        built.add_network(
            cidr=f"185.{200 + n // 200}.{n % 200}.0/24",
            asn=210000 + n,
            name=f"BENCH{n}-NET",
            country="GB",
            abuse=[f"abuse@bench{n}.example"],
        )
        built.set_records(f"files.bench{n}.test", [("A", f"185.{200 + n // 200}.{n % 200}.10")])
    found = [f"http://files.bench{k % networks}.test/f/{k}" for k in range(urls)]
    return built, found


def run(sim: SimInternet, urls: list[str], cache_ttl: str) -> tuple[float, int, int]:
    """Trace every URL with one tracer; return seconds, RDAP requests and routed URLs."""
    env = {**sim.env(), "TAKEDOWN_HOME": tempfile.mkdtemp(), "TAKEDOWN_RDAP_CACHE_TTL": cache_ttl}
    tracer = Tracer.from_settings(load_settings(env))
    sim.rdap.clear_log()
    started = time.perf_counter()
    try:
        routed = sum(1 for url in urls if tracer.trace(normalize_url(url)).route)
    finally:
        tracer.close()
    return time.perf_counter() - started, len(sim.rdap.requests), routed


def main() -> int:
    """Run both ways and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=int, default=200)
    parser.add_argument("--networks", type=int, default=10)
    args = parser.parse_args()
    isolated = isolate_network()
    world, urls = world_of(args.urls, args.networks)
    with SimInternet(world) as sim:
        engine = run(sim, urls, "24h")
        naive = run(sim, urls, "1ms")
    where = "own network namespace" if isolated else "host loopback"
    print(f"{len(urls)} URLs over {args.networks} networks ({where}, pid {os.getpid()})")
    print(f"{'':10}{'seconds':>10}{'RDAP requests':>16}{'routed':>8}")
    for name, (seconds, requests, routed) in (("engine", engine), ("naive", naive)):
        print(f"{name:10}{seconds:10.2f}{requests:16d}{routed:8d}")
    print(
        f"ratio naive/engine: {naive[0] / engine[0]:.1f}x the time, "
        f"{naive[1] / max(engine[1], 1):.1f}x the RDAP requests"
    )
    return 0 if engine[2] == naive[2] == len(urls) else 1


if __name__ == "__main__":
    sys.exit(main())
