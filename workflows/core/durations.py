"""Parse the durations used in configuration and policy files ("30s", "15m", "24h", "3d")."""

from __future__ import annotations

import re

from workflows.errors import ConfigError

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")


def parse_duration(text: str, *, what: str = "duration") -> float:
    """Return the number of seconds in TEXT; a bare number counts as seconds."""
    match = _DURATION.match(text)
    if not match:
        raise ConfigError(f"{what}: {text!r} is not a duration like 30s, 15m, 24h or 3d")
    number, unit = match.groups()
    return float(number) * _UNITS[unit or "s"]


def format_duration(seconds: float) -> str:
    """Return SECONDS in the largest unit that divides it exactly ("90m" stays "90m")."""
    for unit in ("d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size and float(seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    return f"{seconds:g}s"
