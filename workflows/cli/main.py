"""The `takedown` command line: the parser, and each command run from its own module.

Only what a command needs is imported when it runs, so `takedown --version` or a bad
flag answers at once. Exit codes: 0 done; 1 the work could not be completed (e.g. a URL
with no route); 2 bad input or configuration (one line on stderr, nothing changed).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from workflows import __version__
from workflows.config.settings import load_settings
from workflows.errors import InputError
from workflows.kinds import Role

DEFAULT_PORT = 8000
MAX_ID = 2**31 - 1  # the id columns' range on PostgreSQL


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
    worker.add_argument(
        "--queues",
        help="comma list of queues to take tasks from (default: all; see TAKEDOWN_QUEUES)",
    )
    demo = commands.add_parser(
        "demo", help="the whole workflow against a simulated internet, with live progress"
    )
    demo.add_argument("--urls", type=int, default=36, help="how many URLs to report (6-200)")
    demo.add_argument(
        "--limit",
        type=_seconds,
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
    up.add_argument(
        "--demo-home",
        metavar="DIR",
        help="where --demo keeps its state (default: the demo folder in TAKEDOWN_HOME)",
    )
    inbox = commands.add_parser(
        "inbox", help="take one returned message (bounce, reply): from FILE, or - for stdin"
    )
    inbox.add_argument("source", nargs="?", metavar="FILE|-", help="one message; - reads stdin")
    inbox.add_argument("--json", action="store_true", help="print what it did as JSON")
    purge = commands.add_parser(
        "purge", help="erase the URLs and texts of cases removed or closed long ago"
    )
    purge.add_argument("--older-than", metavar="PERIOD", help="e.g. 365d (TAKEDOWN_RETENTION)")
    purge.add_argument("--dry-run", action="store_true", help="count them, change nothing")
    purge.add_argument("--json", action="store_true", help="print what was purged as JSON")
    _add_desk_parsers(commands)
    commands.add_parser("migrate", help="upgrade the database schema (workers refuse an old one)")
    health = commands.add_parser(
        "health", help="check the database, schema, Redis, workers, sweep and queues"
    )
    health.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = build_parser()
    if not (sys.argv[1:] if argv is None else argv):
        parser.print_help()  # a bare `takedown` asks what there is: not a mistake, exit 0
        return 0
    args = parser.parse_args(argv)
    try:
        if args.command == "trace":
            from workflows.cli.trace import trace_command  # no store, no web, no Celery

            return trace_command(args.url, as_json=args.json)
        return _store_commands(args)
    except InputError as error:
        print(f"takedown: {error.message}", file=sys.stderr)
        return 2


def _store_commands(args: argparse.Namespace) -> int:
    """Run a command that uses the case store; an unreachable database exits 1."""
    from sqlalchemy.exc import OperationalError  # loaded only by the commands that need it

    try:
        return _case_commands(args)
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
        queues = [q.strip() for q in (args.queues or "").split(",") if q.strip()]
        if args.queues is not None and not queues:
            raise InputError("--queues: name at least one queue")
        return run_worker(
            settings,
            concurrency=concurrency,
            pool=args.pool,
            sweep_enabled=not args.no_sweep,
            queues=queues,
        )
    if args.command == "inbox":
        from workflows.cli.inbox import inbox_command

        return inbox_command(settings, args.source, args.json)
    if args.command == "purge":
        from workflows.cli.purge import purge_command

        return purge_command(settings, args.older_than, args.dry_run, args.json)
    if args.command == "up":
        from workflows.cli.up import run_up

        if not 0 < args.port < 65536:
            raise InputError(f"--port {args.port}: not a port number (1-65535)")
        if args.demo_home is not None and not args.demo:
            raise InputError("--demo-home: only with --demo")
        demo_home = Path(args.demo_home).expanduser() if args.demo_home else None
        return run_up(settings, port=args.port, demo=args.demo, demo_home=demo_home)
    if args.command == "stats":
        from workflows.cli.stats import stats_command

        return stats_command(settings, args.since, args.output or "text", args.plot, None)
    if args.command in ("migrate", "health"):
        from workflows.cli import ops

        if args.command == "migrate":
            return ops.migrate_command(settings)
        return ops.health_command(settings, args.json)
    if args.command in ("serve", "user"):
        from workflows.cli import desk as desk_commands

        return desk_commands.run(settings, args)
    raise AssertionError(f"unhandled command {args.command}")


def _add_desk_parsers(commands: Any) -> None:
    """Add the serve and user commands to the subparsers."""
    serve = commands.add_parser("serve", help="run the web desk and HTTP API (no worker)")
    serve.add_argument("--port", type=_port, default=DEFAULT_PORT, help="default 8000")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    user = commands.add_parser("user", help="manage the desk's users")
    actions = user.add_subparsers(dest="user_command", required=True, parser_class=type(user))
    add = actions.add_parser("add", help="add a user; prints an API token on the last line")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=tuple(role.value for role in Role))
    add.add_argument(
        "--password-file",
        metavar="PATH",
        help="first line: the web sign-in password (none: API tokens only)",
    )
    tokens = actions.add_parser("tokens", help="list a user's API tokens (never their secrets)")
    tokens.add_argument("name")
    revoke = actions.add_parser("revoke", help="revoke an API token: refused from now on")
    revoke.add_argument("token_id", type=_token_id, metavar="TOKEN_ID", help="as listed")
    _add_account_parsers(actions)


def _add_account_parsers(actions: Any) -> None:
    """Add `user list|disable|enable|passwd|logout|audit` (run by cli/users.py)."""
    listed = actions.add_parser("list", help="list users: role, disabled, sign-in locks")
    listed.add_argument("--json", action="store_true", help="print the users as JSON")
    for name, text in (
        ("disable", "disable a user: its sessions end, its API tokens are refused"),
        ("enable", "enable a disabled user (its tokens work again, its sign-in is unlocked)"),
        ("logout", "end every web session of a user"),
    ):
        actions.add_parser(name, help=text).add_argument("name")
    passwd = actions.add_parser("passwd", help="set a user's password; its sessions end")
    passwd.add_argument("name")
    passwd.add_argument(
        "--password-file", metavar="PATH", help="first line: the password (none: a random one)"
    )
    trail = actions.add_parser("audit", help="the audit trail of accounts and tokens")
    trail.add_argument("name", nargs="?", help="only what concerns this user")
    trail.add_argument("--limit", type=int, default=100, help="rows, newest first (100)")
    trail.add_argument("--json", action="store_true", help="print the rows as JSON")


def _seconds(text: str) -> float:
    """Return a positive, finite number of seconds (a limit of -1, 0 or nan means nothing)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a number of seconds") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text[:40]!r}: give a positive number of seconds")
    return value


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)")
    return int(text)


def _token_id(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) <= MAX_ID:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a token id (a number, as listed)")
    return int(text)


if __name__ == "__main__":
    sys.exit(main())
