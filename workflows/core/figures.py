"""How times and figures are shown and asked for: ISO times, spans, units, shares, `--since`.

The CLI, the API and the pages share these, so a figure reads the same everywhere.
"""

from __future__ import annotations

import datetime as dt

from workflows.core.durations import parse_duration
from workflows.errors import ConfigError, InputError

UNITS = (("days", 86400.0), ("hours", 3600.0), ("minutes", 60.0), ("seconds", 1.0))


def iso(moment: dt.datetime | None) -> str | None:
    """Return MOMENT as ISO 8601 UTC with a Z, or None."""
    if moment is None:
        return None
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_since(text: str | None, now: dt.datetime, label: str = "--since") -> dt.datetime | None:
    """Return the start of the period: NOW minus a duration ("30d"), or an ISO 8601 date
    (UTC unless it names a zone). The CLI, the API and the pages share it; LABEL names the
    option or field in the error."""
    if text is None:
        return None
    try:
        seconds = parse_duration(text, what=label)
    except ConfigError:
        try:
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise InputError(
                f"{label}: {text!r} is neither a duration like 30d or 12h nor an ISO date"
            ) from None
        return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    if seconds <= 0:
        raise InputError(f"{label}: must be more than zero")
    try:
        return now - dt.timedelta(seconds=seconds)
    except OverflowError:  # further back than the calendar goes
        raise InputError(f"{label}: {text!r} reaches back before the year 1") from None


def span(seconds: float | None) -> str:
    """Return SECONDS in a readable unit: 42s, 12.5m, 3.2h, 4.1d; '-' for None."""
    if seconds is None:
        return "-"
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f}m"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def unit_for(longest: float) -> tuple[str, float]:
    """Return the unit (name, seconds) that shows LONGEST seconds as a number of at least 2."""
    for name, size in UNITS:
        if longest >= 2 * size:
            return name, size
    return "seconds", 1.0


def share(value: float | None) -> str:
    """Return a share as a whole percentage; '-' when unknown."""
    return "-" if value is None else f"{100 * value:.0f}%"
