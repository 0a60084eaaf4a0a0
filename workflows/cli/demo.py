"""`takedown demo`: the whole workflow against a simulated internet on this machine.

The demo world's servers and abuse desks run in this process, the real `takedown report`
and `takedown worker` as subprocesses on the shipped seconds-scale demo policy, in a
fresh TAKEDOWN_HOME (SQLite, embedded Redis) removed at the end (`workflows.cli.launch`).
The hotline's relay accepts every notice, and what comes back later (a desk's bounce) is
handed to the engine's inbox as an MTA's pipe to `takedown inbox -` would (MailPipe). A
web-form task (Cloudflare takes reports only through its form) is submitted by the demo's
analyst a moment later, and the form reaches the simulated desk (FormClerk).
Progress is read from the database; a table of every case ends the run.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from workflows.cli import launch
from workflows.config.forms import is_form_address
from workflows.config.settings import load_settings
from workflows.engine import notice_actions
from workflows.engine.inbox import take_message
from workflows.engine.runtime import Runtime
from workflows.kinds import CaseState, EventKind, NoticeStatus, Party
from workflows.sim import World, demo_world
from workflows.store import accounts
from workflows.store.db import database_url, make_engine
from workflows.store.models import Case, Event, Notice, NoticeItem, User

POLL = 1.0  # seconds between reads of the database
CLERK = "demo-analyst"  # who submits the web forms in the demo
CLERK_DELAY = 2.0  # seconds a web-form task waits before the demo's analyst submits it
PLAIN_EVERY = 5.0  # seconds between status lines when the output is not a terminal
URL_WIDTH = 45
SETTLED = frozenset({CaseState.REMOVED, CaseState.CLOSED, CaseState.NEEDS_ANALYST})
CLEAR = "\r\033[K"  # back to the start of the line and erase it
# round, kind, party, status, SMTP code, whether it failed after it was sent (bounced)
NoticeRow = tuple[int, str, str, str | None, int | None, bool]


def run_demo(urls: int, limit: float) -> int:
    """Run the demo with URLS reported URLs for at most LIMIT seconds; return the exit code."""
    world = demo_world.build_world()
    # First of all: unshare() moves only the calling thread, so no thread may exist yet.
    isolated = launch.isolate(demo_world.public_addresses(world))
    where = (
        "own network namespace, the sites on their public-looking addresses"
        if isolated
        else "this machine's; the sites answer through a proxy on 127.0.0.1 (TAKEDOWN_FETCH_PROXY)"
    )
    _say(f"takedown demo: {urls} URLs against a simulated internet; nothing leaves this machine")
    _say(f"network: {where}")
    reported = demo_world.demo_urls(urls)
    for url in reported:
        world.put_content(url)
    try:
        with (
            launch.sigterm_interrupts(),
            tempfile.TemporaryDirectory(
                prefix="takedown-demo-", ignore_cleanup_errors=True
            ) as home,
        ):
            _say(f"demo home: {home} (SQLite, embedded Redis, worker log; removed at the end)")
            _say("  (to keep a demo's state and sign in to it: takedown up --demo)")
            return _run(world, isolated, Path(home), reported, limit)
    except KeyboardInterrupt:
        _say("\ninterrupted: the worker and the servers are stopped, the demo home is removed")
        return 130


def _run(world: World, isolated: bool, home: Path, urls: list[str], limit: float) -> int:
    """Serve the world, report URLS, run the worker and watch it; stop; print the summary."""
    engine = make_engine(database_url(None, home))
    pipe = MailPipe()
    try:
        with ExitStack() as running:
            running.callback(pipe.close)  # last: after the desks stopped sending
            env = launch.serve_world(running, world, home, isolated, mailbox=pipe)
            env["TAKEDOWN_RETURN_PATH"] = demo_world.RETURN_PATH  # bounces name their notice
            pipe.open(env)
            clerk = FormClerk(pipe)
            started, deadline = dt.datetime.now(dt.UTC), time.monotonic() + limit
            done = launch.report_urls(env, urls)
            if done.returncode != 0:
                _say(f"takedown report failed (exit {done.returncode}): {done.stderr.strip()}")
                return 1
            ids = [case["id"] for case in json.loads(done.stdout)]
            _say(f"`takedown report` opened cases {ids[0]}-{ids[-1]} and returned at once")
            worker = launch.start_worker(running, env, home)
            _say(f"`takedown worker` started (pid {worker.pid}): 4 threads, the sweep, Redis")
            outcome = _watch(Progress(engine, started), worker, deadline, clerk.poll)
            if outcome == "died":
                _say(f"the worker exited (code {worker.returncode}); its log ends:")
                _say(launch.log_tail(home / "worker.log"))
            _say("stopping the worker and the simulated internet…")
        removed = print_summary(engine, outcome, limit)
        return 0 if removed and outcome != "died" else 1
    finally:
        engine.dispose()


class MailPipe:
    """The hotline's MTA: each message the desks send back goes to the engine's inbox."""

    def __init__(self) -> None:
        """Wait for open(): the engine's settings exist only once the world is served."""
        self._rt: Runtime | None = None

    def open(self, env: dict[str, str]) -> None:
        """Take messages from now on with the engine the environment ENV describes."""
        self._rt = Runtime.from_settings(load_settings(env))

    def close(self) -> None:
        """Release the engine's database; safe to call twice."""
        if self._rt is not None:
            self._rt.close()
            self._rt = None

    @property
    def rt(self) -> Runtime:
        """Return the engine's runtime (open() first)."""
        if self._rt is None:
            raise RuntimeError("the engine's inbox is not open")
        return self._rt

    def __call__(self, raw: bytes) -> None:
        """Take one message as `takedown inbox -` would; it is recorded once by its digest."""
        if self._rt is None:
            raise RuntimeError("mail came back before the engine's inbox was open")
        take_message(self._rt, raw, "pipe")


class FormClerk:
    """The demo's analyst: marks each web-form task submitted a moment after it appears
    (the provider's form then reaches its simulated desk: launch.FormBackend)."""

    def __init__(self, pipe: MailPipe) -> None:
        self.pipe = pipe

    def poll(self) -> None:
        """Submit the form tasks that have waited CLERK_DELAY seconds."""
        rt = self.pipe.rt
        now = dt.datetime.now(dt.UTC)
        with rt.sessions() as session:
            due = [
                task
                for task in notice_actions.form_tasks(session)
                if (now - _aware(task.created_at)).total_seconds() >= CLERK_DELAY
            ]
            if not due:
                return
            clerk = session.scalar(select(User).where(User.name == CLERK))
            if clerk is None:
                clerk = accounts.create_user(session, CLERK, "analyst", None, now=now)
            for task in due:
                notice_actions.submit_form(session, task.id, clerk, now=now, forms=rt.forms)
            session.commit()


def _aware(moment: dt.datetime) -> dt.datetime:
    """Return MOMENT as UTC (SQLite gives back naive times)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _say(text: str) -> None:
    """Print one line at once."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _watch(
    progress: Progress,
    worker: subprocess.Popen[bytes],
    deadline: float,
    each: Callable[[], None] = lambda: None,
) -> str:
    """Poll until every case settled ("done"), the deadline ("limit") or the worker died;
    run EACH at every poll."""
    try:
        while True:
            each()
            settled = progress.poll()
            if worker.poll() is not None:
                return "died"
            if settled:
                return "done"
            if time.monotonic() >= deadline:
                return "limit"
            time.sleep(POLL)
    finally:
        progress.finish()


@dataclass
class _Group:
    """The events of one poll that read the same, shown as one line."""

    at: dt.datetime
    per_case: bool
    cases: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def render(self, text: str, started: dt.datetime) -> str:
        """Return the line: when, which cases, what happened."""
        when = f"{(self.at - started).total_seconds():6.1f}s  "
        if not self.per_case:
            return when + text
        who = _which_cases(self.cases)
        if self.seconds:
            low, high = f"{min(self.seconds):.1f}", f"{max(self.seconds):.1f}"
            text += f" {low} s" if low == high else f" {low}-{high} s"
        return f"{when}{who} {text}"


class Progress:
    """Print notable events and a status line from the database, once per poll."""

    def __init__(self, engine: Engine, started: dt.datetime) -> None:
        """Watch ENGINE's cases, timing everything from STARTED."""
        self.engine, self.started = engine, started
        self.tty = sys.stdout.isatty()
        self.last_event = 0
        self.status, self.printed, self.printed_at = "", "", -PLAIN_EVERY
        self.opened: dict[int, dt.datetime] = {}

    def poll(self) -> bool:
        """Print what happened since the last poll; tell whether every case has settled."""
        with Session(self.engine) as session:
            lines = self._events(session)
            states = _counts(session, Case.state)
            notices = _counts(session, Notice.status)
        for line in lines:
            sys.stdout.write((CLEAR if self.tty else "") + line + "\n")
        self._show_status(states, notices)
        return bool(states) and set(states) <= SETTLED

    def finish(self) -> None:
        """Leave the last status line on screen."""
        if self.tty:
            sys.stdout.write("\n")
        elif self.printed != self.status:
            sys.stdout.write(self.status + "\n")
        sys.stdout.flush()

    def _show_status(self, states: dict[str, int], notices: dict[str, int]) -> None:
        """Rewrite the status line in place on a terminal; else print one every few seconds."""
        elapsed = (dt.datetime.now(dt.UTC) - self.started).total_seconds()
        waiting = [CaseState.WAITING] if states.get(CaseState.WAITING) else []
        shown = [CaseState.NEW, *waiting, CaseState.ACTIVE, CaseState.REMOVED]
        counts = "  ".join(f"{s} {states.get(s, 0)}" for s in [*shown, CaseState.NEEDS_ANALYST])
        sent, failed = notices.get(NoticeStatus.SENT, 0), notices.get(NoticeStatus.FAILED, 0)
        self.status = f"{elapsed:6.1f}s  [{counts}  | notices sent {sent}  failed {failed}]"
        if self.tty:
            sys.stdout.write(CLEAR + self.status)
        elif elapsed - self.printed_at >= PLAIN_EVERY:
            sys.stdout.write(self.status + "\n")
            self.printed, self.printed_at = self.status, elapsed
        sys.stdout.flush()

    def _events(self, session: Session) -> list[str]:
        """Return one line per group of like events since the last poll."""
        query = select(Event).where(Event.id > self.last_event).order_by(Event.id)
        groups: dict[str, _Group] = {}
        for event in session.scalars(query):
            self.last_event = event.id
            described = self._describe(session, event)
            if described is None:
                continue
            text, seconds, per_case = described
            group = groups.setdefault(text, _Group(event.at, per_case))
            group.cases.append(event.case_id)
            if seconds is not None:
                group.seconds.append(seconds)
        return [group.render(text, self.started) for text, group in groups.items()]

    def _describe(self, session: Session, event: Event) -> tuple[str, float | None, bool] | None:
        """Return (text, seconds, per case) for a notable event, else None."""
        detail = event.detail or {}
        if event.kind in (EventKind.NOTICE_SENT, EventKind.NOTICE_FAILED):
            return _notice_text(session, event.kind, detail), None, False
        if event.kind == EventKind.REMOVED:
            if event.case_id not in self.opened:
                rows = session.execute(select(Case.id, Case.opened_at)).tuples()
                self.opened.update({case_id: opened for case_id, opened in rows})
            return "removed after", (event.at - self.opened[event.case_id]).total_seconds(), True
        text = _case_text(event.kind, detail)
        return None if text is None else (text, None, True)


def _which_cases(ids: list[int], shown: int = 8) -> str:
    """Return "case 4", "cases 4, 16" or, for many, "29 cases (2, 13, 14, …)"."""
    unique = sorted(set(ids))
    if len(unique) == 1:
        return f"case {unique[0]}"
    if len(unique) <= shown:
        return "cases " + ", ".join(map(str, unique))
    return f"{len(unique)} cases (" + ", ".join(map(str, unique[: shown - 2])) + ", …)"


def _counts(session: Session, column: Any) -> dict[str, int]:
    """Count cases or notices by a state column."""
    rows = session.execute(select(column, func.count()).group_by(column)).tuples()
    return {str(value): int(count) for value, count in rows}


def _case_text(kind: str, d: dict[str, Any]) -> str | None:
    """Describe a notable case event (the case ids are added by the caller), else None."""
    if kind == EventKind.ROUTED:
        via = f" via {d['cdn']}" if d.get("cdn") else ""
        to = ", ".join(d.get("abuse") or [])
        if d.get("route") == "hotline_referral":
            to = "the partner hotline"  # the host's desk is noticed only if the hotline is slow
        return f"routed {d.get('route')} {d.get('country')}{via} → {to}"
    if kind == EventKind.TRACE_FAILED:
        state = "trace failed, retrying" if d.get("transient") else "needs an analyst"
        return f"{state}: {_reason(d.get('reason'))}"
    if kind == EventKind.NEEDS_ANALYST:
        return f"needs an analyst: {_reason(d.get('reason'))}"
    if kind == EventKind.HOPPED:
        return f"hopped to {d.get('country')} ({d.get('to')}): re-routed {d.get('route')}"
    if kind == EventKind.ESCALATED_AFTER_REFUSAL:
        return f"refused: the {d.get('send')} to the {d.get('to')} is brought forward"
    if kind == EventKind.FORM_TASK:
        head = f"{d.get('kind_of')} N-{int(d.get('notice') or 0):06d}"
        return f"{head} is a web form to submit ({d.get('name')}: {d.get('to')})"
    if kind == EventKind.FORM_SUBMITTED:
        notice = f"N-{int(d.get('notice') or 0):06d}"
        return f"web form {notice} submitted to {d.get('name')} by the demo's analyst"
    if kind == EventKind.BOUNCED:
        status = (d.get("reason") or "").partition(" ")[0]
        return (
            f"bounced later: the relay returned the notice to {d.get('to')} ({status}); moving on"
        )
    return None


def _reason(reason: str | None) -> str:
    """Return a reason without the engine's own "needs an analyst" ending."""
    return (reason or "").removesuffix(": needs an analyst")


def _notice_text(session: Session, kind: str, d: dict[str, Any]) -> str:
    """Describe one sent or refused notice, with how many URLs it lists."""
    notice_id = int(d.get("notice") or 0)
    count = session.scalar(
        select(func.count()).select_from(NoticeItem).where(NoticeItem.notice_id == notice_id)
    )
    head, listed = f"{d.get('kind_of')} N-{notice_id:06d}", f"{count} URL{'s' * (count != 1)}"
    if kind == EventKind.NOTICE_SENT:
        return f"{head} sent to {d.get('to')} ({listed})"
    code = session.scalar(select(Notice.smtp_code).where(Notice.id == notice_id))
    return f"{head} to {d.get('to')} refused: {code or ''} {d.get('reply')} ({listed})"


def print_summary(engine: Engine, outcome: str, limit: float) -> int:
    """Print the table of every case and the totals; return how many cases were removed."""
    with Session(engine) as session:
        cases = list(session.scalars(select(Case).order_by(Case.id)))
        items = _notice_rows(session)
        notices = _counts(session, Notice.status)
    header = ["case", "URL", "route", "cc", "notices", "state", "removed in"]
    _say("\n" + _table(header, [_row(case, items[case.id]) for case in cases]) + "\n")
    times = sorted(
        (c.removed_at - c.opened_at).total_seconds() for c in cases if c.removed_at is not None
    )
    totals = f"removed {len(times)} of {len(cases)}"
    if times:
        p90 = times[math.ceil(0.9 * len(times)) - 1]  # nearest rank
        totals += f"; time to removal median {statistics.median(times):.1f} s, p90 {p90:.1f} s"
    sent, failed = notices.get(NoticeStatus.SENT, 0), notices.get(NoticeStatus.FAILED, 0)
    _say(f"{totals}; notices sent {sent}, failed {failed}")
    _explain(cases, outcome, limit)
    return len(times)


def _explain(cases: list[Case], outcome: str, limit: float) -> None:
    """Say what the cases waiting for an analyst show, and which were left open."""
    waiting = [c for c in cases if c.state == CaseState.NEEDS_ANALYST]
    if waiting:
        _say(f"{len(waiting)} need an analyst: with no route nothing is sent and nothing fetched;")
        _say("the engine keeps re-tracing them until an analyst decides:")
        for case in waiting:
            _say(f"  case {case.id} {case.host}: {_reason(case.last_error)}")
    still_open = [c for c in cases if c.state not in SETTLED]
    if still_open:
        why = f"the --limit of {limit:g} s" if outcome == "limit" else "the worker's exit"
        _say(f"still open at {why}: {_which_cases([c.id for c in still_open])}")


def _notice_rows(session: Session) -> defaultdict[int, list[NoticeRow]]:
    """Return each case's owed notice steps in order, with their notices' status."""
    query = (
        select(NoticeItem, Notice.status, Notice.smtp_code, Notice.sent_at)
        .outerjoin(Notice, Notice.id == NoticeItem.notice_id)
        .order_by(NoticeItem.case_id, NoticeItem.round, NoticeItem.step)
    )
    found: defaultdict[int, list[NoticeRow]] = defaultdict(list)
    for item, status, code, sent_at in session.execute(query).tuples():
        bounced = status == NoticeStatus.FAILED and sent_at is not None
        kind = f"{item.kind} (web form)" if is_form_address(item.recipients) else item.kind
        found[item.case_id].append((item.round, kind, item.party, status, code, bounced))
    return found


def _notices_column(items: list[NoticeRow]) -> str:
    """Summarise a case's notices, e.g. "notice, chaser → upstream" or "notice ✗550"."""
    text, current = "", 0
    for round_, kind, party, status, code, bounced in items:
        label = "→ upstream" if party == Party.UPSTREAM else kind
        if status == NoticeStatus.FAILED:
            label += " ✗bounced" if bounced else f" ✗{code or ''}"
        elif status != NoticeStatus.SENT:
            label += "…"  # owed, or being sent
        separator = " " if party == Party.UPSTREAM else ", "
        if round_ != current:  # the content hopped: a new round of notices to its new host
            label, separator, current = f"hop → {label}", ", ", round_
        text = label if not text else text + separator + label
    return text or "-"


def _row(case: Case, items: list[NoticeRow]) -> list[str]:
    """Return one case's table cells."""
    url = case.url.removeprefix("http://")
    url = url if len(url) <= URL_WIDTH else url[: URL_WIDTH - 1] + "…"
    removed_in = "-"
    if case.removed_at is not None:
        removed_in = f"{(case.removed_at - case.opened_at).total_seconds():.1f} s"
    cells = [case.route or "-", case.country or "-", _notices_column(items), case.state]
    return [str(case.id), url, *cells, removed_in]


def _table(header: list[str], rows: list[list[str]]) -> str:
    """Return ROWS in aligned columns under HEADER; the first and last align right."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        """Return one row, aligned."""
        aligned = [
            cell.rjust(width) if i in (0, len(cells) - 1) else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(aligned).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows)])
