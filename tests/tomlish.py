"""Hypothesis strategies for arbitrary TOML documents: any value type, nesting and layout.

The loaders' own fuzz tests (test_policy, test_hotlines) give them these with keys drawn
mostly from the names the loader knows, so the documents get past the first checks and
reach the deeper ones: every TOML type (dates and times too) at every place.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

ZONES = (
    dt.UTC,
    dt.timezone(dt.timedelta(hours=5, minutes=30)),
    dt.timezone(-dt.timedelta(hours=8)),
)
SCALARS = st.one_of(
    st.text(max_size=12),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.datetimes(timezones=st.one_of(st.none(), st.sampled_from(ZONES))),
    st.dates(),
    st.times(),
)


def keys(known: Sequence[str]) -> st.SearchStrategy[str]:
    """Return mostly the loader's own names, sometimes any text at all."""
    return st.one_of(st.sampled_from(list(known)), st.text(max_size=6))


def values(known: Sequence[str]) -> st.SearchStrategy[Any]:
    """Return any TOML value: scalars, arrays and tables nested a few levels deep."""
    return st.recursive(
        SCALARS,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(keys(known), inner, max_size=3),
        ),
        max_leaves=12,
    )


@dataclass(frozen=True)
class Each:
    """A table whose keys come from KEYS, each holding a SCHEMA (e.g. one per country)."""

    keys: st.SearchStrategy[str]
    schema: Any


@dataclass(frozen=True)
class Whole:
    """A table that holds every key of FIELDS (each value still shaped, or anything)."""

    fields: dict[str, Any]


Schema = dict[str, Any] | list[Any] | Each | Whole | st.SearchStrategy[Any]


def shaped(schema: Schema, known: Sequence[str]) -> st.SearchStrategy[Any]:
    """Return data mostly of SCHEMA's shape (a dict: a table; [s]: an array), else anything.

    Every table may lack any of its keys or hold an unknown one, and every value may be
    replaced by any TOML value: each check of a loader gets its turn.
    """
    anything = values(known)
    if isinstance(schema, dict | Whole):
        parts = {k: shaped(v, known) for k, v in getattr(schema, "fields", schema).items()}
        if isinstance(schema, Whole):
            fields = st.fixed_dictionaries(parts)
        else:
            fields = st.fixed_dictionaries({}, optional=parts)
        nothing = st.just({})
        unknown = st.dictionaries(keys(known), anything, max_size=1)
        extra = st.one_of(nothing, nothing, nothing, unknown)
        table = st.tuples(fields, extra).map(lambda pair: {**pair[1], **pair[0]})
    elif isinstance(schema, Each):
        table = st.dictionaries(schema.keys, shaped(schema.schema, known), max_size=3)
    elif isinstance(schema, list):
        table = st.lists(shaped(schema[0], known), min_size=1, max_size=3)
    else:
        return st.one_of(schema, schema, SCALARS)
    return st.one_of(table, table, table, anything)


def documents(known: Sequence[str], schema: Schema | None = None) -> st.SearchStrategy[str]:
    """Return TOML text, written with [headers] or inline: any tables, or SCHEMA-shaped ones."""
    tables = st.dictionaries(keys(known), values(known), max_size=4)
    if schema is not None:
        top = shaped(schema, known).filter(lambda data: isinstance(data, dict))
        tables = st.one_of(tables, top, top, top)
    return st.tuples(tables, st.booleans()).map(lambda drawn: write_toml(*drawn))


def write_toml(data: dict[str, Any], headers: bool) -> str:
    """Write DATA as TOML; tables get [headers] (and arrays of them [[headers]]) if HEADERS."""
    lines: list[str] = []
    _write_table(lines, (), data, headers)
    return "\n".join(lines) + "\n"


def _write_table(
    lines: list[str], path: tuple[str, ...], data: dict[str, Any], headers: bool
) -> None:
    nested = {}
    for key, value in data.items():
        if headers and (_is_table(value) or _is_table_array(value)):
            nested[key] = value
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in nested.items():
        name = ".".join(_key(part) for part in (*path, key))
        if isinstance(value, dict):
            lines.append(f"[{name}]")
            _write_table(lines, (*path, key), value, headers)
        else:
            for table in value:
                lines.append(f"[[{name}]]")
                _write_table(lines, (*path, key), table, False)


def _is_table(value: Any) -> bool:
    return isinstance(value, dict)


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _key(key: str) -> str:
    return _string(key)


def _string(text: str) -> str:
    """Write any string as a TOML basic string (JSON's escapes are TOML's, bar DEL)."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _value(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, float):
        return repr(value)  # "1e+16" and "0.1" are TOML floats too
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return str(value)
