"""The partner hotline directory: where a report about content abroad is referred.

The directory is an operator-editable TOML file (see `data/hotlines.toml`):

    [hotline.US]
    name = "NCMEC CyberTipline"
    email = "referrals@hotline.example"   # empty or absent: notice the host instead
    website = "https://www.missingkids.org/"
    note = "free text for operators"

Every problem is a `ConfigError` naming the file and line, so start-up stops on it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

from workflows.config.tomlfile import (
    Entry,
    Source,
    country_problem,
    load_toml,
    quote,
    type_name,
    url_problem,
)
from workflows.core.emails import email_problem

KEYS = ("name", "email", "website", "note")
_HINT = 'use [hotline.XX] tables, XX being a country code like "US"'


@dataclass(frozen=True)
class Hotline:
    """One partner hotline, keyed by the country it covers."""

    country: str
    name: str
    email: str | None
    website: str | None
    note: str = ""


class HotlineDirectory:
    """The partner hotlines by ISO 3166-1 alpha-2 country code."""

    def __init__(self, hotlines: Mapping[str, Hotline]) -> None:
        self._by_country = dict(sorted(hotlines.items()))

    def get(self, country: str) -> Hotline | None:
        """Return the hotline for a country code (any case), or None."""
        return self._by_country.get(country.strip().upper())

    def referral_address(self, country: str) -> str | None:
        """Return where to refer a report for this country; None means notice the host."""
        hotline = self.get(country)
        return hotline.email if hotline is not None else None

    def __len__(self) -> int:
        return len(self._by_country)

    def __iter__(self) -> Iterator[Hotline]:
        return iter(self._by_country.values())

    def __contains__(self, country: object) -> bool:
        return isinstance(country, str) and self.get(country) is not None


def load_hotlines(path: Path | None = None) -> HotlineDirectory:
    """Load and validate a hotline directory; None loads the shipped one."""
    if path is None:
        with as_file(files("workflows") / "data" / "hotlines.toml") as shipped:
            return load_hotlines(shipped)
    data, text = load_toml(path)
    return parse_hotlines(Source(path, text), data)


def parse_hotlines(source: Source, data: dict[str, Any]) -> HotlineDirectory:
    """Validate parsed hotline data, naming the line of the first problem."""
    tables = source.sections(data, "hotline", _HINT)
    hotlines = {}
    for country, body in tables.items():
        table = ("hotline", country)
        problem = country_problem(country)
        if problem is not None:
            raise source.error(table, None, f"country {problem}")
        if not isinstance(body, dict):
            raise source.error(table, None, f"must be a table, not {type_name(body)}; {_HINT}")
        hotlines[country] = _hotline(Entry(source, table, body), country)
    return HotlineDirectory(hotlines)


def _hotline(entry: Entry, country: str) -> Hotline:
    """Build one Hotline from its table, refusing unknown keys and unsafe values."""
    entry.check_keys(KEYS)
    name = entry.required_text("name")
    email = entry.text("email")
    if email is not None and (problem := email_problem(email)) is not None:
        raise entry.error("email", f"email {quote(email)} {problem}")
    website = entry.text("website")
    if website is not None and (problem := url_problem(website)) is not None:
        raise entry.error("website", f"website {quote(website)} {problem}")
    note = entry.text("note", multiline=True) or ""
    return Hotline(country=country, name=name, email=email, website=website, note=note)
