"""The `takedown` command line.

Exit codes: 0 done; 1 the work could not be completed (e.g. a URL with no route);
2 bad input or configuration (one line on stderr, nothing changed).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import NoReturn

from sqlalchemy.exc import OperationalError

from workflows import __version__
from workflows.config.settings import load_settings
from workflows.core.urls import normalize_url
from workflows.errors import InputError
from workflows.trace.tracer import NetworkTrace, Trace, Tracer


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"takedown: {message} (see takedown --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of every takedown command."""
    parser = _Parser(prog="takedown", description="Notice-and-takedown workflow engine.")
    parser.add_argument("--version", action="version", version=f"takedown {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    trace = commands.add_parser("trace", help="trace one URL to its host, network and route now")
    trace.add_argument("url", help="the URL to trace")
    trace.add_argument("--json", action="store_true", help="print the trace as a JSON object")
    report = commands.add_parser("report", help="open (or join) a case per URL; returns at once")
    report.add_argument("urls", nargs="*", metavar="URL")
    report.add_argument("--file", metavar="PATH", help="read URLs, one per line (- for stdin)")
    report.add_argument("--ref", help="your reference for these URLs")
    report.add_argument("--category", help="content category, e.g. csam")
    report.add_argument("--analyst", help="who reports them")
    report.add_argument("--json", action="store_true", help="print [{id, url, state}]")
    cases = commands.add_parser("cases", help="list cases")
    cases.add_argument("--state", help="only cases in this state")
    cases.add_argument("--json", action="store_true", help="print a list of case objects")
    case = commands.add_parser("case", help="one case with its events, notices and checks")
    case.add_argument("id")
    case.add_argument("--json", action="store_true", help="print the case object")
    worker = commands.add_parser("worker", help="run the worker and the sweep until stopped")
    worker.add_argument("--concurrency", type=int, help="tasks at once (TAKEDOWN_CONCURRENCY)")
    worker.add_argument("--pool", choices=("prefork", "threads", "solo"), default="prefork")
    worker.add_argument(
        "--no-sweep", action="store_true", help="never run the sweep scheduler in this process"
    )
    demo = commands.add_parser(
        "demo", help="the whole workflow against a simulated internet, with live progress"
    )
    demo.add_argument("--urls", type=int, default=36, help="how many URLs to report (6-200)")
    demo.add_argument(
        "--limit",
        type=float,
        default=100.0,
        help="stop after this many seconds even if cases are still open",
    )
    stats = commands.add_parser("stats", help="time-to-removal statistics")
    stats.add_argument("--since", help="only cases reported in this period (30d) or since a date")
    output = stats.add_mutually_exclusive_group()
    output.add_argument("--json", dest="output", action="store_const", const="json")
    output.add_argument("--csv", dest="output", action="store_const", const="csv")
    stats.add_argument("--plot", metavar="FILE.png", help="also write a chart to this PNG file")
    up = commands.add_parser("up", help="worker, sweep and web desk in one command")
    up.add_argument("--port", type=int, default=8000, help="web desk on 127.0.0.1:PORT (8000)")
    up.add_argument("--demo", action="store_true", help="also run the simulated internet")
    purge = commands.add_parser(
        "purge", help="erase the URLs and texts of cases removed or closed long ago"
    )
    purge.add_argument("--older-than", metavar="PERIOD", help="e.g. 365d (TAKEDOWN_RETENTION)")
    purge.add_argument("--dry-run", action="store_true", help="count them, change nothing")
    purge.add_argument("--json", action="store_true", help="print what was purged as JSON")
    from workflows.cli import desk as desk_commands  # serve, user add

    desk_commands.add_parsers(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "trace":
            return trace_command(args.url, as_json=args.json)
        return _case_commands(args)
    except InputError as error:
        print(f"takedown: {error.message}", file=sys.stderr)
        return 2
    except OperationalError as error:  # the database is down or unreachable: not bad input
        reason = str(error.orig or error).strip().splitlines()[0]
        print(f"takedown: cannot use the database: {reason}", file=sys.stderr)
        return 1


def _case_commands(args: argparse.Namespace) -> int:
    """Run the commands that use the case store."""
    from workflows.cli import cases  # the store's imports are not needed by `trace`

    settings = load_settings()
    if args.command == "report":
        return cases.report_command(
            settings, args.urls, args.file, args.ref, args.category, args.analyst, args.json
        )
    if args.command == "cases":
        return cases.cases_command(settings, args.state, args.json)
    if args.command == "case":
        return cases.case_command(settings, args.id, args.json)
    if args.command == "demo":
        from workflows.cli.demo import run_demo

        if not 6 <= args.urls <= 200:
            raise InputError("--urls: between 6 and 200")
        return run_demo(urls=args.urls, limit=args.limit)
    if args.command == "worker":
        from workflows.engine.worker import run_worker

        concurrency = args.concurrency or settings.concurrency
        if concurrency < 1:
            raise InputError("--concurrency: must be at least 1")
        return run_worker(
            settings, concurrency=concurrency, pool=args.pool, sweep_enabled=not args.no_sweep
        )
    if args.command == "purge":
        from workflows.cli.purge import purge_command

        return purge_command(settings, args.older_than, args.dry_run, args.json)
    if args.command == "up":
        from workflows.cli.up import run_up

        if not 0 < args.port < 65536:
            raise InputError(f"--port {args.port}: not a port number (1-65535)")
        return run_up(settings, port=args.port, demo=args.demo)
    if args.command == "stats":
        from workflows.cli.stats import stats_command

        return stats_command(settings, args.since, args.output or "text", args.plot, None)
    if args.command in ("serve", "user"):
        from workflows.cli import desk as desk_commands

        return desk_commands.run(settings, args)
    raise AssertionError(f"unhandled command {args.command}")


def trace_command(raw_url: str, *, as_json: bool) -> int:
    """Trace RAW_URL and print it; exit 1 when no route applies."""
    url = normalize_url(raw_url)
    settings = load_settings()
    tracer = Tracer.from_settings(settings)
    try:
        trace = tracer.trace(url)
    finally:
        tracer.close()
    if as_json:
        print(json.dumps(trace.as_dict(), indent=2, ensure_ascii=False))
    else:
        print(format_trace(trace))
    return 0 if trace.route else 1


def format_trace(trace: Trace) -> str:
    """Return a readable summary of TRACE."""
    lines = [f"URL       {trace.url}"]
    host = (
        trace.host if trace.display_host == trace.host else (f"{trace.host} ({trace.display_host})")
    )
    lines.append(f"Host      {host}")
    if trace.cnames:
        lines.append(f"CNAMEs    {' → '.join([trace.host, *trace.cnames])}")
    for network in trace.networks:
        lines.append(f"Address   {network.ip}")
        lines += ["          " + part for part in _network_lines(network)]
    lines.append(f"Country   {trace.country or '-'}")
    if trace.cdn:
        lines.append(f"CDN       {trace.cdn} (its abuse desk forwards to the origin host)")
    if trace.abuse:
        label = "fallback contacts, no abuse role" if trace.abuse_fallback else ""
        lines.append(f"Abuse     {', '.join(trace.abuse)}" + (f"  ({label})" if label else ""))
    if trace.hotline:
        lines.append(f"Hotline   {trace.hotline['name']} <{trace.hotline['email']}>")
    lines.append(f"Route     {trace.route or 'none'}")
    if trace.reason:
        lines.append(f"Reason    {trace.reason}")
    lines += [f"Note      {note}" for note in trace.notes]
    return "\n".join(lines)


def _network_lines(n: NetworkTrace) -> list[str]:
    if n.special_use:
        return [f"special-use address ({n.special_use}): not looked up, never fetched"]
    lines = []
    if n.asn is not None:
        lines.append(f"AS{n.asn} {n.as_name or ''}".rstrip())
    if n.cidr:
        cached = " (cached)" if n.cached else ""
        lines.append(f"{n.cidr} {n.name or ''} {n.country or ''}".rstrip() + cached)
    if n.abuse:
        lines.append("abuse: " + ", ".join(n.abuse) + (" (fallback)" if n.abuse_fallback else ""))
    if n.cdn:
        lines.append(f"CDN: {n.cdn['name']}")
    if n.error:
        lines.append(f"lookup failed: {n.error['message']}")
    return lines


if __name__ == "__main__":
    sys.exit(main())
