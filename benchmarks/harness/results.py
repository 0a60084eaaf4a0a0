"""RESULTS.md: the machine, how the run was made, and one section per workload.

Each workload hands back a Section: what it ran (setup lines), its figures (tables), the
issue's targets with what was measured and whether each holds, and notes. A target is
judged only at scale 1: a scaled run (--scale) shows its figures for a quick look, and
says so at the top.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.worlds import LATENCY, RDAP_RATE
from workflows import __version__

MIB = 1024.0


@dataclass
class Target:
    """One target of issue 11: what it asks, what was measured, whether it holds."""

    asks: str
    measured: str
    holds: bool | None  # None: not judged (a scaled run, or not measured)


@dataclass
class Table:
    """A Markdown table."""

    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)


@dataclass
class Section:
    """What one workload ran and measured."""

    number: int
    title: str
    setup: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class RunInfo:
    """How the whole run was made."""

    command: str
    scale: float
    started: dt.datetime
    finished: dt.datetime
    services: str  # workload 5's PostgreSQL and Redis, or "" when it did not run
    machine: list[tuple[str, str]] = field(default_factory=lambda: machine())  # at the start


def machine() -> list[tuple[str, str]]:
    """Return what the run ran on: cores, memory, CPU model, Python, kernel, commit."""
    return [
        ("cores", str(os.cpu_count())),
        ("memory", f"{_mem_total_kib() / MIB / MIB:.1f} GiB"),
        ("CPU", _cpu_model()),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("kernel", f"{platform.system()} {platform.release()}"),
        ("takedown", f"{__version__}, commit {_commit()}"),
    ]


def _mem_total_kib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 0


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _commit() -> str:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        ["git", "-C", str(root), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "unknown"


def render(info: RunInfo, sections: Sequence[Section]) -> str:
    """Return RESULTS.md."""
    lines = [
        "# Benchmark results (issue 11)",
        "",
        f"Written by `{info.command}` on {info.finished:%Y-%m-%d %H:%M} UTC "
        f"({(info.finished - info.started).total_seconds() / 60:.0f} min). "
        "Do not edit: run the command again (benchmarks/README.md says how).",
        "",
    ]
    if info.scale != 1:
        lines += [
            f"> **Scaled run: every workload's sizes are {info.scale:g} × the issue's.** "
            "Its figures are for a quick look; the targets are the issue's and are judged "
            "only in a run at scale 1.",
            "",
        ]
    lines += _table(Table(["machine", ""], [[k, v] for k, v in info.machine]))
    lines += ["", "## How it runs", "", *_how(info), ""]
    lines += ["## Targets", ""]
    summary = Table(["workload", "target", "measured", "holds"])
    for section in sections:
        for target in section.targets:
            summary.rows.append([f"{section.number}", target.asks, target.measured, _holds(target)])
    lines += [*_table(summary), ""]
    for section in sections:
        lines += _section(section)
    return "\n".join(lines).rstrip() + "\n"


def _how(info: RunInfo) -> list[str]:
    latency = LATENCY
    items = [
        f"- Simulated internet (workflows/sim) in the benchmark process: DNS {_ms(latency.dns)}, "
        f"RDAP {_ms(latency.rdap)} with a limit of {RDAP_RATE:g} requests per second per "
        f"registry (429 beyond), web {_ms(latency.web)}, SMTP {_ms(latency.smtp)}.",
        "- Everything runs in a network namespace of its own whose only interface is "
        "loopback: the simulated hosts' public-looking addresses are local there, and no "
        "packet can leave the machine.",
        "- The engine runs as the installed `takedown` command (`report`, `worker`, `serve`) "
        "in a fresh TAKEDOWN_HOME per run, with `benchmarks/bench-policy.toml` (sweep every "
        "1 s, notice window 5 s, chasers after 60 s, re-checks every 10 min).",
        "- Peak memory: the sum of the peak RSS (VmHWM) of the engine's long-lived "
        "processes (workers with their children, the embedded Redis, `serve`); the "
        "benchmark process (the simulated internet and the naive pipeline) apart.",
        "- Naive pipeline (harness/naive.py): the engine's own libraries, one URL at a time, "
        "caches off; measured on a sample of the workload's URLs and extrapolated "
        "(it is linear by construction).",
    ]
    if info.services:
        items.append(f"- Workload 5's services: {info.services}.")
    return items


def _section(section: Section) -> list[str]:
    lines = [f"## {section.number}. {section.title}", ""]
    lines += [f"- {line}" for line in section.setup]
    for table in section.tables:
        lines += ["", *_table(table)]
    if section.targets:
        lines += ["", *_table(Table(
            ["target", "measured", "holds"],
            [[t.asks, t.measured, _holds(t)] for t in section.targets],
        ))]  # fmt: skip
    if section.notes:
        lines += ["", *[f"- {note}" for note in section.notes]]
    return [*lines, ""]


def _table(table: Table) -> list[str]:
    lines = ["| " + " | ".join(table.headers) + " |", "|" + " --- |" * len(table.headers)]
    return lines + ["| " + " | ".join(row) + " |" for row in table.rows]


def _holds(target: Target) -> str:
    return {True: "yes", False: "**no**", None: "not judged"}[target.holds]


def _ms(seconds: float) -> str:
    return f"{1000 * seconds:.0f} ms"


def judged(scale: float, holds: bool) -> bool | None:
    """Return HOLDS for a run at scale 1; None (not judged) for a scaled run."""
    return holds if scale == 1 else None


def seconds(value: float) -> str:
    """Format a duration."""
    if value >= 3600:
        return f"{value / 3600:.1f} h"
    return f"{value:,.1f} s" if value < 100 else f"{value:,.0f} s"


def mib(kib: int) -> str:
    """Format KiB as MiB."""
    return f"{kib / MIB:,.0f} MiB"


def ratio(naive: float, engine: float) -> str:
    """Format how many times faster the engine was."""
    return f"{naive / engine:,.1f}×" if engine > 0 else "-"


def write(path: Path, info: RunInfo, sections: Sequence[Section]) -> None:
    """Write RESULTS.md to PATH."""
    path.write_text(render(info, sections), encoding="utf-8")
