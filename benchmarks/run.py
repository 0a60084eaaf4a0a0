"""Run issue 11's benchmark workloads on the simulated internet and rewrite RESULTS.md.

    python benchmarks/run.py [--workloads 1,2,3,4,5] [--scale F] [--output benchmarks/RESULTS.md]

    1  intake to notices: 10,000 URLs on 500 host names in 100 networks, one batch
    2  re-check pass: 100,000 open cases due at once on 2,000 host names
    3  growth: workload 1 at 1,000, 10,000 and 100,000 URLs
    4  latency under load: 20 URLs a second for 5 minutes, report → notice accepted
    5  scale-out: workload 1 with 1, 2 and 4 workers on PostgreSQL + Redis

Each workload runs the real engine (`takedown report`, `worker`, `serve`) against the
simulated internet with realistic latencies, inside a network namespace whose only
interface is loopback (nothing can leave the machine), and measures a naive pipeline
(the same libraries, one URL at a time) in the same run. `--scale 0.1` shrinks every
workload's sizes for a quick try; RESULTS.md then says so, and judges no time target.
RESULTS.md is rewritten after each workload, so an interrupted run keeps what it did.
Nothing here is a test: it measures and writes down. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from harness import results
from harness.arrivals import workload_4
from harness.intake import workload_1, workload_3, workload_5
from harness.recheck import workload_2
from harness.sandbox import Services, isolate, start_services
from harness.stack import Options

from workflows.store.db import utcnow

HERE = Path(__file__).resolve().parent
TITLES = {
    1: "Intake to notices",
    2: "Re-check pass",
    3: "Growth",
    4: "Latency under load",
    5: "Scale-out",
}


def parse(argv: list[str] | None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="1,2,3,4,5", help="comma list (1,2,3,4,5)")
    parser.add_argument("--scale", type=float, default=1.0, help="size factor (0.1: quick try)")
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--naive-urls", type=int, default=200, help="naive sample, URLs")
    parser.add_argument("--naive-seconds", type=float, default=60.0, help="naive sample, time")
    parser.add_argument("--timeout", type=float, default=1800.0, help="longest engine run, s")
    parser.add_argument("--keep", action="store_true", help="keep each run's TAKEDOWN_HOME")
    parser.add_argument(
        "--database-url",
        default="postgresql://postgres@127.0.0.1:5432/takedown_bench",
        help="workload 5: a database this command creates and drops",
    )
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/9",
        help="workload 5: a Redis database this command empties",
    )
    args = parser.parse_args(argv)
    try:
        args.workloads = sorted({int(n) for n in args.workloads.split(",") if n.strip()})
    except ValueError:
        parser.error(f"--workloads: numbers 1-5, comma-separated, not {args.workloads!r}")
    if not args.workloads or not set(args.workloads) <= set(TITLES):
        parser.error("--workloads: numbers 1-5")
    if not 0 < args.scale <= 1:
        parser.error("--scale: above 0, at most 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the workloads asked for; return 0 when every one ran to its end."""
    args = parse(argv)
    # Relays to the host's services first: inside the namespace 127.0.0.1:6379 is not theirs.
    services = start_services(args.database_url, args.redis_url) if 5 in args.workloads else None
    try:
        isolate()  # before any thread exists: unshare() moves only the calling thread
        if services is not None:
            services.create()
    except BaseException:
        if services is not None:
            services.close()
        raise
    options = Options(args.scale, args.naive_urls, args.naive_seconds, args.timeout)
    options.keep = args.keep
    info = results.RunInfo(
        command=shlex.join(["python", "benchmarks/run.py", *(argv or sys.argv[1:])]),
        scale=args.scale,
        started=utcnow(),
        finished=utcnow(),
        services=services.shown if services else "",
    )
    sections: list[results.Section] = []
    failed = 0
    try:
        for number in args.workloads:
            print(f"workload {number}: {TITLES[number]}", flush=True)
            section = _run(number, options, services)
            failed += section.title.endswith("(failed)")
            sections.append(section)
            info.finished = utcnow()
            results.write(args.output, info, sections)
    finally:
        if services is not None:
            services.close()
        if args.keep:
            print(f"homes kept under {options.root}")
        else:
            shutil.rmtree(options.root, ignore_errors=True)
    print(f"wrote {args.output}")
    return 1 if failed else 0


def _run(number: int, options: Options, services: Services | None) -> results.Section:
    """Run one workload; a failure becomes a section saying what went wrong."""
    runners: dict[int, Callable[[], results.Section]] = {
        1: lambda: workload_1(options),
        2: lambda: workload_2(options),
        3: lambda: workload_3(options),
        4: lambda: workload_4(options),
        5: lambda: workload_5(options, services) if services else _no_services(),
    }
    try:
        return runners[number]()
    except Exception as error:  # noqa: BLE001 - one workload's failure is its section
        traceback.print_exc()
        return results.Section(
            number,
            f"{TITLES[number]} (failed)",
            notes=[f"`{type(error).__name__}`: {str(error).strip().splitlines()[0][:300]}"],
        )


def _no_services() -> results.Section:
    raise RuntimeError("workload 5 needs PostgreSQL and Redis")


if __name__ == "__main__":
    sys.exit(main())
