"""Registry placeholder mailboxes: addresses a registry puts on records it does not run.

Regional and national registries publish their own mailbox on records whose holder's
contact they withhold or never had: an IRT object every delegation of a national registry
points to (KRNIC's `IRT-KRNIC-KR`), an RIR's own desk on the blocks it hands out, ARIN's
generic contacts on space it transferred to another registry. A notice sent there reaches
a registry that "does not operate the referring network", not the host. The trace passes
such an address over (and says so), and uses it only when nothing else is known.

The list is an operator-editable TOML file (TAKEDOWN_PLACEHOLDERS; see
`data/placeholders.toml`, whose header documents the format):

    [placeholder.krnic]
    registry = "KRNIC (KISA), the Korean national registry"
    addresses = ["hostmaster@nic.or.kr"]
    note = "where it was seen"

Every problem is a `ConfigError` naming the file and line, so start-up stops on it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

from workflows.config.tomlfile import Entry, Source, load_toml, quote
from workflows.core.emails import email_problem

KEYS = ("registry", "addresses", "note")
_HINT = 'use [placeholder.name] tables, name being lowercase like "krnic"'


@dataclass(frozen=True)
class Placeholder:
    """The placeholder mailboxes of one registry."""

    key: str
    registry: str
    addresses: tuple[str, ...]
    note: str = ""


class PlaceholderList:
    """The known placeholder addresses, compared without case."""

    def __init__(self, entries: Iterable[Placeholder]) -> None:
        self._entries = list(entries)
        self._by_address = {a: e for e in self._entries for a in e.addresses}

    def __contains__(self, address: object) -> bool:
        return isinstance(address, str) and address.strip().lower() in self._by_address

    def registry_of(self, address: str) -> str | None:
        """Return the registry whose placeholder ADDRESS is, or None."""
        found = self._by_address.get(address.strip().lower())
        return found.registry if found else None

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Placeholder]:
        return iter(self._entries)


def load_placeholders(path: Path | None = None) -> PlaceholderList:
    """Load and validate a placeholder list; None loads the shipped one."""
    if path is None:
        return shipped_placeholders()
    data, text = load_toml(path)
    return parse_placeholders(Source(path, text), data)


@functools.cache
def shipped_placeholders() -> PlaceholderList:
    """Return the shipped placeholder list (read once per process)."""
    with as_file(files("workflows") / "data" / "placeholders.toml") as shipped:
        data, text = load_toml(shipped)
        return parse_placeholders(Source(shipped, text), data)


def parse_placeholders(source: Source, data: dict[str, Any]) -> PlaceholderList:
    """Validate parsed placeholder data, naming the line of the first problem."""
    owners: dict[str, str] = {}  # address -> key of the entry listing it
    entries = []
    for entry in source.named_entries(data, "placeholder", _HINT):
        key = entry.table[1]
        entry.check_keys(KEYS)
        addresses = _addresses(entry)
        for address in addresses:
            other = owners.setdefault(address, key)
            if other != key:
                problem = f"{quote(address)} is listed under both [placeholder.{other}] and"
                raise entry.error("addresses", f"addresses: {problem} [placeholder.{key}]")
        entries.append(
            Placeholder(
                key=key,
                registry=entry.required_text("registry"),
                addresses=addresses,
                note=entry.text("note", multiline=True) or "",
            )
        )
    return PlaceholderList(entries)


def _addresses(entry: Entry) -> tuple[str, ...]:
    """Return the entry's addresses, lowercase, at least one, each once."""
    found: list[str] = []
    for address in entry.array("addresses", '["hostmaster@registry.example"]'):
        if not isinstance(address, str):
            example = 'addresses like "hostmaster@registry.example"'
            raise entry.error("addresses", f"addresses must hold {example}, not {quote(address)}")
        if (problem := email_problem(address)) is not None:
            raise entry.error("addresses", f"addresses: {quote(address)} {problem}")
        if address.lower() in found:
            raise entry.error("addresses", f"addresses lists {quote(address)} twice")
        found.append(address.lower())
    if not found:
        raise entry.error("addresses", "addresses needs at least one address")
    return tuple(found)
