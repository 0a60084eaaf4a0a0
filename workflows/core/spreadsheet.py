"""CSV for spreadsheets: every CSV takedown writes goes through `csv_writer`.

A spreadsheet runs a cell that starts with = + - @ (or a tab or carriage return before
them) as a formula, and the texts in our CSVs come partly from outside: a provider's name
is what a network's owner wrote in RDAP, a reference what an analyst pasted. Such a text
cell is written with a leading apostrophe, which spreadsheets show as plain text (OWASP,
CSV Injection). Numbers are written as they are: -3 is a number, not a formula.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


class Writable(Protocol):
    """Anything csv.writer can write to."""

    def write(self, text: str, /) -> Any:
        """Write TEXT."""


def neutralize(value: Any) -> Any:
    """Return VALUE with a text cell that a spreadsheet would run turned into plain text."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class SafeDictWriter:
    """csv.DictWriter whose text cells are neutralised (header included)."""

    def __init__(self, out: Writable, fieldnames: Sequence[str]) -> None:
        """Write rows with FIELDNAMES to OUT, each ending in CRLF (RFC 4180)."""
        self._fields = list(fieldnames)
        # CRLF, not "\n": the csv module quotes a cell holding a line break only when the
        # break is part of the line terminator, and a bare "\r" left unquoted breaks the row.
        self._writer = csv.writer(out, lineterminator="\r\n")

    def writeheader(self) -> None:
        """Write the header row."""
        self._writer.writerow([neutralize(f) for f in self._fields])

    def writerows(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Write ROWS; a missing field is an empty cell."""
        for row in rows:
            self._writer.writerow([neutralize(row.get(f, "")) for f in self._fields])


def csv_writer(out: Writable, fieldnames: Sequence[str]) -> SafeDictWriter:
    """Return the writer every CSV export uses."""
    return SafeDictWriter(out, fieldnames)
