"""The case commands: report, cases, case."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select

from workflows.config.settings import Settings
from workflows.core.intake import check_field, normalize_lines
from workflows.core.urls import NormalizedURL
from workflows.errors import InputError
from workflows.kinds import CLOSE_REASONS, CaseState, EventKind
from workflows.store.cases import report
from workflows.store.db import (
    opened_store,
    transaction,
    utcnow,
)
from workflows.store.models import Case
from workflows.store.queries import case_detail, case_objects


def read_urls(args: Sequence[str], file: str | None) -> list[NormalizedURL]:
    """Normalise every URL given; the first bad one refuses them all, naming its line."""
    lines: list[tuple[str, str]] = [(f"argument {i + 1}", url) for i, url in enumerate(args)]
    if file is not None:
        lines += [
            (f"{'stdin' if file == '-' else file}:{n}", text) for n, text in _file_lines(file)
        ]
    if not lines:
        raise InputError("no URL given: pass URLs or --file PATH (- for stdin)")
    return normalize_lines(lines)


def _file_lines(file: str) -> Iterable[tuple[int, str]]:
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
    except (OSError, ValueError) as error:  # ValueError: undecodable, or a NUL in the path
        raise InputError(f"cannot read {file!r}: {error}".replace("\n", " ")) from None
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            yield number, line


def report_command(
    settings: Settings,
    urls: Sequence[str],
    file: str | None,
    ref: str | None,
    category: str | None,
    analyst: str | None,
    as_json: bool,
) -> int:
    """Open or join a case per URL and return at once; a worker does the rest."""
    normalized = read_urls(urls, file)
    fields = {
        k: check_field(k, v, f"--{k}")
        for k, v in (("ref", ref), ("category", category), ("analyst", analyst))
    }
    with opened_store(settings) as sessions, transaction(sessions) as session:
        done = report(
            session,
            normalized,
            reference=fields["ref"],
            category=fields["category"],
            analyst=fields["analyst"],
            now=utcnow(),
        )
    from workflows.engine import wake  # redis: only for the commands that report

    wake.nudge(settings)  # a worker traces them now, not at its next sweep
    if as_json:
        print(
            json.dumps(
                [{"id": r.id, "url": r.url, "state": r.state, "joined": r.joined} for r in done],
                indent=2,
            )
        )
    else:
        for r in done:
            joined = "  (joined the open case)" if r.joined else ""
            print(f"{r.id:>7}  {r.state:<13} {r.url}{joined}")
    return 0


def cases_command(settings: Settings, state: str | None, as_json: bool) -> int:
    """List cases, newest first."""
    if state is not None and state not in set(CaseState):
        choices = ", ".join(CaseState)
        raise InputError(f"--state: {state!r} is not one of {choices}")
    with opened_store(settings) as sessions, sessions() as session:
        query = select(Case).order_by(Case.id.desc())
        if state is not None:
            query = query.where(Case.state == state)
        objects = case_objects(session, list(session.scalars(query)))
    if as_json:
        print(json.dumps(objects, indent=2))
        return 0
    print(f"{'id':>7}  {'state':<13} {'route':<16} {'cc':<3} {'notices':>7}  url")
    for c in objects:
        print(
            f"{c['id']:>7}  {c['state']:<13} {c['route'] or '-':<16} {c['country'] or '-':<3} "
            f"{len(c['notices']):>7}  {c['url']}"
        )
    return 0


def case_command(settings: Settings, case_id: str, as_json: bool) -> int:
    """Show one case with its events, notices and checks."""
    if not case_id.isdigit():
        raise InputError(f"case id {case_id!r} is not a number")
    with opened_store(settings) as sessions, sessions() as session:
        case = session.get(Case, int(case_id))
        if case is None:
            raise InputError(f"no case {case_id}")
        detail = case_detail(session, case)
    if as_json:
        print(json.dumps(detail, indent=2, ensure_ascii=False))
    else:
        print(format_case(detail))
    return 0


def readable(value: Any) -> str:
    """Return an event detail's value as text a reader expects: no Python reprs."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(readable(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {readable(v)}" for k, v in value.items() if v is not None)
    return str(value)


def format_case(c: dict[str, Any]) -> str:
    """Return a readable page for one case."""
    lines = [
        f"Case {c['id']}  {c['state']}  {c['url']}",
        f"Route    {c['route'] or '-'}  country {c['country'] or '-'}  "
        f"network {c['network'] or '-'}",
        f"Opened   {c['opened_at']}   first notice {c['first_notice_at'] or '-'}   "
        f"removed {c['removed_at'] or '-'}",
    ]
    if c["last_error"]:
        lines.append(f"Problem  {c['last_error']}")
    lines.append("\nTimeline")
    labels = {str(code): label for code, label in CLOSE_REASONS.items()}
    for e in c["events"]:
        shown = dict(e["detail"] or {})
        if e["kind"] == EventKind.CLOSED and shown.get("code") in labels:
            shown["code"] = f"{shown['code']} ({labels[shown['code']]})"  # the desk's words
        detail = "; ".join(
            f"{k.replace('_', ' ')}: {readable(v)}"
            for k, v in shown.items()
            if v not in (None, [], {}, "")
        )
        lines.append(f"  {e['at']}  {e['kind']:<22} {detail} · {e['actor']}".rstrip())
    for n in c["notices"]:
        lines.append(
            f"\nNotice {n['id']} ({n['kind']}, {n['status']}) to {', '.join(n['to'])}"
            f"  sent {n['sent_at'] or '-'}  {n['message_id']}"
        )
        lines.append(f"  Subject: {n['subject']}")
    if c["checks"]:
        lines.append("\nChecks")
        lines += [
            f"  {k['at']}  {k['outcome']:<11} {k['http_status'] or '-'}  {k['reason'] or ''}"
            for k in c["checks"]
        ]
    return "\n".join(lines)
