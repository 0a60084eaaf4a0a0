"""Read a CSV upload of URLs to report: columns url, reference, category (header first)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from workflows.core.intake import check_field, normalize_lines
from workflows.core.urls import NormalizedURL
from workflows.errors import FieldError, RowError

COLUMNS = ("url", "reference", "category")
MAX_BYTES = 5 * 1024 * 1024
MAX_ROWS = 10_000


@dataclass(frozen=True)
class Row:
    """One row to report."""

    number: int  # the line in the file, the header being 1
    url: NormalizedURL
    reference: str | None
    category: str | None


def read_rows(data: bytes) -> list[Row]:
    """Parse and check every row; the first bad one refuses the whole file."""
    if len(data) > MAX_BYTES:
        raise RowError(None, f"the file is larger than {MAX_BYTES // (1024 * 1024)} MiB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise RowError(None, f"not UTF-8 text (byte {error.start + 1})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        records = list(reader)
    except csv.Error as error:
        raise RowError(reader.line_num, f"not CSV: {error}") from None
    header = [c.strip().lower() for c in records[0]] if records else []
    if "url" not in header or any(c not in COLUMNS for c in header):
        raise RowError(1, f"the first row must name the columns: {', '.join(COLUMNS)}")
    if len(set(header)) < len(header):
        raise RowError(1, "a column is named twice")
    rows = [_row(n, header, values) for n, values in enumerate(records[1:], start=2) if any(values)]
    if not rows:
        raise RowError(None, "no URL in the file")
    if len(rows) > MAX_ROWS:
        raise RowError(None, f"more than {MAX_ROWS} rows: split the file")
    return rows


def _row(number: int, header: list[str], values: list[str]) -> Row:
    if len(values) > len(header):
        raise RowError(number, f"{len(values)} values for {len(header)} columns")
    cells = dict(zip(header, values, strict=False))
    try:
        [url] = normalize_lines([("url", cells.get("url", ""))])
        reference = check_field("ref", cells.get("reference") or None, "reference")
        category = check_field("category", cells.get("category") or None, "category")
    except FieldError as error:
        raise RowError(number, error.message) from None
    return Row(number, url, reference, category)
