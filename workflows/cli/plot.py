"""`takedown stats --plot`: the time-to-removal distribution and the slowest providers, as PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: render to a file only

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from workflows.core.figures import span, unit_for
from workflows.core.stats import WINDOWS, Stats

REPORT, NOTICE, SLOW, CALM = "#1f5f8b", "#e08a1e", "#b03a2e", "#7f8c8d"
MAX_NAME = 32  # characters of a provider's name on the chart


def plot_stats(stats: Stats, target: Path) -> None:
    """Write a two-panel chart of STATS to TARGET (PNG)."""
    # Constrained layout makes room for titles, labels and long provider names, and the
    # tight bounding box keeps whatever still reaches past the edge on the canvas.
    figure, (left, right) = plt.subplots(
        1,
        2,
        figsize=(13, 5.8),
        dpi=110,
        gridspec_kw={"width_ratios": [1.15, 1]},
        layout="constrained",
    )
    try:
        _distribution(left, stats)
        _league(right, stats)
        o = stats.overall
        period = f"since {stats.since:%Y-%m-%d %H:%M} UTC" if stats.since else "at any time"
        figure.suptitle(
            f"Time to removal — cases reported {period}\n{o.cases} cases, "
            f"{o.removed} removed, {o.open} still open (as of {stats.now:%Y-%m-%d %H:%M} UTC)",
            fontsize=12,
        )
        figure.savefig(target, format="png", bbox_inches="tight", pad_inches=0.25)
    finally:
        plt.close(figure)


def _distribution(ax: Axes, stats: Stats) -> None:
    """Draw the share of removed cases taken down within t, from report and first notice."""
    series = [
        ("from report", stats.overall.from_report, REPORT),
        ("from first notice", stats.overall.from_notice, NOTICE),
    ]
    longest = max((d.values[-1] for _, d, _ in series if d.values), default=0.0)
    ax.set_title("Removed cases: share taken down within t", fontsize=11, loc="left")
    if longest <= 0:
        _empty(ax, "no case has been removed yet")
        return
    unit, size = unit_for(longest)
    for label, d, color in series:
        if not d.values:
            continue
        xs = [v / size for v in d.values]
        ys = [(i + 1) / len(xs) for i in range(len(xs))]
        text = f"{label}: median {span(d.median)}, p90 {span(d.p90)}"
        ax.step([0.0, *xs], [0.0, *ys], where="post", color=color, linewidth=2, label=text)
    for name, seconds in WINDOWS:
        if seconds <= longest * 1.05:
            ax.axvline(seconds / size, color=CALM, linestyle=":", linewidth=1)
            ax.text(seconds / size, 1.0, f" {name}", color=CALM, fontsize=9, va="top")
    ax.set_xlim(left=0, right=longest / size * 1.05)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(f"time to removal ({unit})")
    ax.set_ylabel("share of removed cases")
    ax.yaxis.set_major_formatter(lambda y, _pos: f"{100 * y:.0f}%")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=9, frameon=False)


def _league(ax: Axes, stats: Stats) -> None:
    """Draw the slowest providers: median time online after the first notice."""
    ax.set_title("Slowest providers: median time online after notice", fontsize=11, loc="left")
    rows = list(reversed(stats.slowest))  # barh draws bottom-up: the slowest on top
    if not rows:
        _empty(ax, "no provider has been noticed yet")
        return
    unit, size = unit_for(max(r.median_online for r in rows))
    values = [r.median_online / size for r in rows]
    colors = [SLOW if r.online else CALM for r in rows]
    names = [_short(r.provider) for r in rows]
    bars = ax.barh(names, values, color=colors, height=0.6)
    for bar, r in zip(bars, rows, strict=True):
        note = f"  {r.online} online of {r.noticed}" if r.online else f"  {r.noticed} removed"
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, note, va="center", fontsize=9)
    ax.set_xlim(0, max(values) * 1.35)
    ax.set_xlabel(f"median time online ({unit})\nred: content still online at some cases")
    ax.tick_params(axis="y", labelsize=9)
    ax.grid(True, axis="x", alpha=0.3)


def _short(name: str, most: int = MAX_NAME) -> str:
    """Return NAME cut to MOST characters (a provider's name may have 200)."""
    return name if len(name) <= most else name[: most - 1].rstrip() + "…"


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color=CALM)
    ax.set_xticks([])
    ax.set_yticks([])
