"""The statistics page's charts as plain geometry; the template draws them as inline SVG.

Labels stay data, so the template's autoescaping covers provider names too.
"""

from __future__ import annotations

from typing import Any

from workflows.core.figures import span, unit_for
from workflows.core.stats import WINDOWS, Stats

WIDTH, HEIGHT = 560, 256
LEFT, RIGHT, TOP, BOTTOM = 44, 548, 10, 214  # the plot area inside the view box
ROW, BAR = 26, 16  # league rows: pitch and bar height
MAX_POINTS = 400  # a long curve is thinned to this many steps


def curve(stats: Stats) -> dict[str, Any] | None:
    """Return the share-removed-within-t curves (from report, from first notice), or None."""
    series = [
        ("report", stats.overall.from_report.values),
        ("notice", stats.overall.from_notice.values),
    ]
    longest = max((values[-1] for _, values in series if values), default=0.0)
    if longest <= 0:
        return None
    unit, size = unit_for(longest)
    right = longest * 1.05

    def x(seconds: float) -> float:
        return round(LEFT + (RIGHT - LEFT) * seconds / right, 1)

    def y(share: float) -> float:
        return round(BOTTOM - (BOTTOM - TOP) * share, 1)

    lines = [
        {"kind": kind, "points": " ".join(f"{px},{py}" for px, py in _steps(values, x, y))}
        for kind, values in series
        if values
    ]
    step = _tick_step(right / size)
    xticks = [
        {"at": x(n * step * size), "label": f"{n * step:g}"}
        for n in range(int(right / size / step) + 1)
    ]
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "right": RIGHT,
        "top": TOP,
        "bottom": BOTTOM,
        "unit": unit,
        "lines": lines,
        "xticks": xticks,
        "yticks": [{"at": y(s / 4), "label": f"{25 * s}%"} for s in range(5)],
        "windows": [
            {"at": x(seconds), "label": name} for name, seconds in WINDOWS if seconds <= right
        ],
    }


def _steps(values: tuple[float, ...], x: Any, y: Any) -> list[tuple[float, float]]:
    """Return the corners of the step curve of VALUES (sorted), thinned for long lists."""
    count = len(values)
    stride = max(1, count // MAX_POINTS)
    points = [(x(0.0), y(0.0))]
    for index in [*range(0, count, stride), count - 1]:
        share = (index + 1) / count
        points += [(x(values[index]), points[-1][1]), (x(values[index]), y(share))]
    return points


def _tick_step(span_units: float) -> float:
    """Return a round tick spacing that gives about five ticks over SPAN_UNITS."""
    for step in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000):
        if span_units / step <= 6:
            return step
    return 5000.0


def bars(stats: Stats) -> dict[str, Any] | None:
    """Return the league table as horizontal bars (median time online), or None."""
    if not stats.slowest:
        return None
    longest = max(row.median_online for row in stats.slowest) or 1.0
    left, width = 190, 240
    rows = []
    for index, row in enumerate(stats.slowest):
        note = f"{span(row.median_online)} · " + (
            f"{row.online} online of {row.noticed}" if row.online else f"{row.noticed} removed"
        )
        label = row.provider if len(row.provider) <= 24 else row.provider[:23] + "…"
        rows.append(
            {
                "y": 6 + index * ROW,
                "label": label,
                "online": row.online > 0,
                "width": round(max(2.0, width * row.median_online / longest), 1),
                "note": note,
            }
        )
    return {"width": WIDTH, "height": 12 + len(rows) * ROW, "left": left, "bar": BAR, "rows": rows}
