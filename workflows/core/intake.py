"""Intake: reported URLs and their fields checked before anything is stored.

The CLI, the API, the CSV upload and the report page share these, so the same input gets
the same answer everywhere; the first bad item refuses the whole batch, naming where.
"""

from __future__ import annotations

from collections.abc import Sequence

from workflows.core.urls import NormalizedURL, normalize_url
from workflows.errors import FieldError, URLError

# The case columns' sizes: the same limits for the CLI and the API.
FIELD_LIMITS = {"ref": 200, "category": 64, "analyst": 120}


def normalize_lines(lines: Sequence[tuple[str, str]]) -> list[NormalizedURL]:
    """Normalise (where, URL) pairs; the first bad one refuses them all, naming where it was."""
    urls = []
    for where, text in lines:
        try:
            urls.append(normalize_url(text))
        except URLError as error:
            raise FieldError(where, error.message) from None
    return urls


def check_field(name: str, value: str | None, label: str | None = None) -> str | None:
    """Return VALUE if it fits field NAME (length, no control characters); else refuse it."""
    limit = FIELD_LIMITS[name]
    if value is None:
        return None
    if len(value) > limit or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise FieldError(label or name, f"at most {limit} characters, no control characters")
    return value
