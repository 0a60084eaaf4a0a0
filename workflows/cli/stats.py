"""`takedown stats`: time-to-removal figures as a table, JSON, CSV or a PNG chart."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from workflows.config.settings import Settings
from workflows.core.figures import parse_since, share, span
from workflows.core.spreadsheet import csv_writer
from workflows.core.stats import WINDOWS, Durations, Group, Stats
from workflows.errors import InputError
from workflows.store.db import opened_store, utcnow
from workflows.store.queries import compute_stats

DIMENSIONS = ("country", "network", "provider", "route")


def stats_command(
    settings: Settings, since: str | None, output: str, plot: str | None, now: dt.datetime | None
) -> int:
    """Print the statistics as OUTPUT ("text", "json", "csv"); write a chart to PLOT (exit
    1, no chart, when no case was reported in the period)."""
    now = now or utcnow()
    start = parse_since(since, now)
    target = Path(plot) if plot else None
    if target is not None and target.suffix.lower() != ".png":
        raise InputError(f"--plot: {plot!r} must name a .png file")
    if target is not None and not target.parent.is_dir():
        raise InputError(f"--plot: folder {str(target.parent)!r} does not exist")
    with opened_store(settings) as sessions, sessions() as session:
        stats = compute_stats(session, since=start, now=now)
    if output == "json":
        print(json.dumps(stats.as_dict(), indent=2))
    elif output == "csv":
        write_csv(stats, sys.stdout)
    else:
        print(format_stats(stats))
    if target is not None and stats.overall.cases == 0:
        # An empty chart would pass for a chart of nothing removed: say so instead.
        period = "in all time" if start is None else f"since {_moment(start)}"
        print(f"takedown: --plot: no case reported {period}: no chart written", file=sys.stderr)
        return 1
    if target is not None:
        from workflows.cli.plot import plot_stats  # matplotlib loads only when asked

        try:
            plot_stats(stats, target)
        except OSError as error:
            raise InputError(f"--plot: cannot write {plot!r}: {error.strerror}") from None
        print(f"chart written to {target}", file=sys.stderr)
    return 0


def _duration_cells(d: Durations) -> list[str]:
    return [str(d.removed), span(d.median), span(d.p90), *(share(d.within[w]) for w, _ in WINDOWS)]


def format_stats(stats: Stats) -> str:
    """Return the readable report: totals, time to removal, the groups, the league."""
    period = f"reported since {_moment(stats.since)}" if stats.since else "all cases"
    states = "  ".join(f"{name} {count}" for name, count in stats.states.items())
    n = stats.notices
    lines = [
        f"takedown stats: {period}, as of {_moment(stats.now)}",
        f"cases {stats.overall.cases}: {states}",
        f"notices sent {n['sent']}, bounces {n['bounces']}, re-notices {n['re_notices']} "
        f"(chasers, escalations), pending {n['pending']}, uncertain {n['uncertain']}",
        f"reappeared after removal: {stats.reappeared['cases']} cases, "
        f"{stats.reappeared['times']} times (each removal counts as a round of its own)",
        "",
    ]
    windows = [f"≤{w}" for w, _ in WINDOWS]
    lines += _table(
        ["time to removal", "removed", "median", "p90", *windows],
        [
            ["from report", *_duration_cells(stats.overall.from_report)],
            ["from first notice", *_duration_cells(stats.overall.from_notice)],
        ],
    )
    for name in DIMENSIONS:
        header = [f"by {name}", "cases", "open", "oldest open", "removed", "median", "p90"]
        rows = [_group_cells(g) for g in stats.by[name]]
        lines += ["", *_table([*header, *windows], rows)]
    lines += [
        "",
        "slowest providers (time online after the first notice; open cases count "
        "with their age so far; a provider whose notices bounced counts from the report "
        "and ranks first)",
    ]
    league = [
        [
            r.provider,
            str(r.noticed),
            str(r.online),
            str(r.bounced),
            span(r.median_online),
            span(r.median_removal),
        ]
        for r in stats.slowest
    ]
    header = [
        "provider, slowest first",
        "noticed",
        "online",
        "bounced",
        "median online",
        "median removal",
    ]
    lines += _table(header, league) if league else ["  (no provider has been noticed yet)"]
    return "\n".join(lines)


def _group_cells(g: Group) -> list[str]:
    d = g.from_report
    label = g.label if g.key in (g.label, "-") else f"{g.key} {g.label}"
    cells = [label, str(g.cases), str(g.open), span(g.oldest_open), str(d.removed)]
    return [*cells, span(d.median), span(d.p90), *(share(d.within[w]) for w, _ in WINDOWS)]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Return aligned lines: the first column left, the others right."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        out = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(out).rstrip()

    return [line(header), *(line(r) for r in rows)]


def _moment(moment: dt.datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def csv_rows(stats: Stats) -> list[dict[str, Any]]:
    """Return one CSV row per group (and one for all cases); times in seconds."""
    rows = [_csv_row("all", stats.overall)]
    for name in DIMENSIONS:
        rows += [_csv_row(name, g) for g in stats.by[name]]
    return rows


def _csv_row(dimension: str, g: Group) -> dict[str, Any]:
    row: dict[str, Any] = {
        "dimension": dimension,
        "key": g.key,
        "label": g.label,
        "cases": g.cases,
        "open": g.open,
        "removed": g.removed,
        "oldest_open_s": g.oldest_open,
    }
    for start, d in (("report", g.from_report), ("notice", g.from_notice)):
        row[f"median_from_{start}_s"], row[f"p90_from_{start}_s"] = d.median, d.p90
        for window, _ in WINDOWS:
            row[f"within_{window}_from_{start}"] = d.within[window]
    return row


def write_csv(stats: Stats, out: Any) -> None:
    """Write the groups as CSV to OUT (a provider's name cannot be a formula)."""
    rows = csv_rows(stats)
    writer = csv_writer(out, list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
