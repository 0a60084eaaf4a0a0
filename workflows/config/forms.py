"""Web-form desks: providers that take abuse reports only through a form on their site.

A step addressed to such a party becomes a task on the desk (the form's address and a
prefilled text) instead of an e-mail. The directory is an operator-editable TOML file
(TAKEDOWN_FORMS; see `data/forms.toml`, whose header documents the format):

    [form.examplehost]
    name = "Example Host"
    match = { asns = [64500], domains = ["examplehost.test"], abuse = ["abuse@examplehost.test"] }
    url = "https://examplehost.test/report-abuse"
    note = "free text for analysts: what the form asks for"

A party matches a form when the network it was traced to is in one of `asns`, the
reported URL's host is one of `domains` or under one, or one of its abuse addresses is
in `abuse` (compared without case). Every problem is a `ConfigError` naming the file and
line, so start-up stops on it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

from workflows.config.tomlfile import Entry, Source, load_toml, quote, url_problem
from workflows.core.emails import email_problem

KEYS = ("name", "match", "url", "note")
MATCH_KEYS = ("asns", "domains", "abuse")
MAX_ASN = 4294967295
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_HINT = 'use [form.name] tables, name being lowercase like "examplehost"'


@dataclass(frozen=True)
class FormDesk:
    """One provider whose abuse desk is a web form."""

    key: str
    name: str
    url: str
    asns: frozenset[int] = frozenset()
    domains: tuple[str, ...] = ()
    abuse: frozenset[str] = frozenset()
    note: str = ""

    def matches(self, asns: Iterable[int | None], host: str, addresses: Iterable[str]) -> bool:
        """Tell whether a party (its networks' ASNs, the URL's host, its addresses) is ours."""
        if any(asn in self.asns for asn in asns if asn is not None):
            return True
        host = host.lower().rstrip(".")
        if any(host == d or host.endswith("." + d) for d in self.domains):
            return True
        return any(a.strip().lower() in self.abuse for a in addresses)


class FormDirectory:
    """The web-form desks, matched in file order (the first that matches wins)."""

    def __init__(self, forms: Iterable[FormDesk]) -> None:
        self._forms = list(forms)
        self._by_url = {form.url: form for form in self._forms}

    def match(
        self, asns: Iterable[int | None], host: str, addresses: Iterable[str]
    ) -> FormDesk | None:
        """Return the form desk of a party, or None when it takes e-mail."""
        asns, addresses = list(asns), list(addresses)
        return next((f for f in self._forms if f.matches(asns, host, addresses)), None)

    def by_url(self, url: str) -> FormDesk | None:
        """Return the form desk whose address is URL (a task's recipient), or None."""
        return self._by_url.get(url)

    def __len__(self) -> int:
        return len(self._forms)

    def __iter__(self) -> Iterator[FormDesk]:
        return iter(self._forms)


def is_form_address(recipients: str) -> bool:
    """Tell whether a step's recipients are a form's address rather than e-mail addresses."""
    return recipients.startswith(("https://", "http://"))


def load_forms(path: Path | None = None) -> FormDirectory:
    """Load and validate a form directory; None loads the shipped one."""
    if path is None:
        with as_file(files("workflows") / "data" / "forms.toml") as shipped:
            return load_forms(shipped)
    data, text = load_toml(path)
    return parse_forms(Source(path, text), data)


def parse_forms(source: Source, data: dict[str, Any]) -> FormDirectory:
    """Validate parsed form data, naming the line of the first problem."""
    forms: list[FormDesk] = []
    urls: dict[str, str] = {}
    for entry in source.named_entries(data, "form", _HINT):
        key = entry.table[1]
        form = _form(entry, key)
        if form.url in urls:
            raise entry.error("url", f"url is also the form of [form.{urls[form.url]}]")
        urls[form.url] = key
        forms.append(form)
    return FormDirectory(forms)


def _form(entry: Entry, key: str) -> FormDesk:
    """Build one FormDesk from its table, refusing unknown keys and bad values."""
    entry.check_keys(KEYS)
    name = entry.required_text("name")
    url = entry.required_text("url")
    if (problem := url_problem(url)) is not None:
        raise entry.error("url", f"url {quote(url)} {problem}")
    if not url.startswith("https://"):
        raise entry.error("url", f"url {quote(url)} must be https: analysts paste reports into it")
    body = entry.data.get("match")
    if not isinstance(body, dict):
        example = '{ asns = [64500], domains = ["examplehost.test"] }'
        raise entry.error("match", f"match is required and must be a table like {example}")
    match = Entry(entry.source, (*entry.table, "match"), body)
    match.check_keys(MATCH_KEYS)
    asns, domains, abuse = _asns(match), _domains(match), _abuse(match)
    if not (asns or domains or abuse):
        raise entry.error("match", "match needs at least one of asns, domains or abuse")
    return FormDesk(
        key=key,
        name=name,
        url=url,
        asns=asns,
        domains=domains,
        abuse=abuse,
        note=entry.text("note", multiline=True) or "",
    )


def _asns(entry: Entry) -> frozenset[int]:
    """Return the AS numbers, each a whole number from 1 to 4294967295."""
    asns: set[int] = set()
    for asn in entry.array("asns", "[64500]"):
        if not isinstance(asn, int) or isinstance(asn, bool):
            raise entry.error("asns", f"asns must hold numbers like 64500, not {quote(asn)}")
        if not 1 <= asn <= MAX_ASN:
            raise entry.error("asns", f"asns: {asn} is not an AS number (1 to {MAX_ASN})")
        asns.add(asn)
    return frozenset(asns)


def _domains(entry: Entry) -> tuple[str, ...]:
    """Return the domains, lowercase host names (a URL's host matches them and below)."""
    domains = []
    for domain in entry.array("domains", '["examplehost.test"]'):
        if not isinstance(domain, str):
            example = 'names like "examplehost.test"'
            raise entry.error("domains", f"domains must hold {example}, not {quote(domain)}")
        name = domain.strip().lower().rstrip(".")
        labels = name.split(".")
        if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
            problem = "is not a host name like examplehost.test (IDNs in xn-- form)"
            raise entry.error("domains", f"domains: {quote(domain)} {problem}")
        domains.append(name)
    return tuple(domains)


def _abuse(entry: Entry) -> frozenset[str]:
    """Return the abuse addresses that stand for the form, lowercase."""
    addresses = set()
    for address in entry.array("abuse", '["abuse@examplehost.test"]'):
        if not isinstance(address, str):
            example = 'addresses like "abuse@examplehost.test"'
            raise entry.error("abuse", f"abuse must hold {example}, not {quote(address)}")
        if (problem := email_problem(address)) is not None:
            raise entry.error("abuse", f"abuse: {quote(address)} {problem}")
        addresses.add(address.strip().lower())
    return frozenset(addresses)
