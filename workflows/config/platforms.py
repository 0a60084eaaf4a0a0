"""Platforms: services whose users publish the content (image hosts, file lockers, blogs).

For a URL on such a service the party that can remove the content at once is the
platform, not the network under it (a cloud provider or CDN would only forward the notice,
or cut off the whole service). A rule matches the reported URL's host name by suffix: the
platform's own domain and every name under it (a blog service's user subdomains, a file
host's download servers). The directory is an operator-editable TOML file
(TAKEDOWN_PLATFORMS; see `data/platforms.toml`, whose header documents the format):

    [platform.exampleblogs]
    name = "Example Blogs"
    hosts = ["exampleblogs.test"]               # the host or any name under it
    abuse = ["abuse@exampleblogs.test"]         # or: form = "https://..." (one of the two)
    source = "https://exampleblogs.test/abuse"  # where the desk was verified
    note = "free text for analysts"

A platform whose desk is a web form gets the form's address as its recipient: the engine
turns a step to it into a form task (workflows.config.forms.is_form_address). Every
problem is a `ConfigError` naming the file and line, so start-up stops on it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

from workflows.config.forms import is_form_address
from workflows.config.tomlfile import Entry, Source, load_toml, quote, url_problem
from workflows.core.emails import email_problem

KEYS = ("name", "hosts", "abuse", "form", "source", "note")
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_HINT = 'use [platform.name] tables, name being lowercase like "exampleblogs"'


@dataclass(frozen=True)
class Platform:
    """One platform and its abuse desk: e-mail addresses or a web form."""

    key: str
    name: str
    hosts: tuple[str, ...]
    abuse: tuple[str, ...] = ()
    form: str | None = None
    source: str | None = None
    note: str = ""

    @property
    def desk(self) -> tuple[str, ...]:
        """Return the recipients of a notice to the platform: its form, else its e-mails."""
        return (self.form,) if self.form else self.abuse


@dataclass(frozen=True)
class PlatformMatch:
    """A platform a host name belongs to, and the rule's host it matched."""

    platform: Platform
    host: str

    def as_dict(self) -> dict[str, Any]:
        """Return the trace's `platform` object."""
        found = self.platform
        return {
            "key": found.key,
            "name": found.name,
            "matched": self.host,
            "abuse": list(found.abuse),
            "form": found.form,
            "source": found.source,
        }


class PlatformDirectory:
    """The known platforms, matched by the most specific host suffix."""

    def __init__(self, platforms: Iterable[Platform]) -> None:
        self._platforms = list(platforms)
        self._by_host = {host: p for p in self._platforms for host in p.hosts}

    def match(self, host: str | None) -> PlatformMatch | None:
        """Return the platform HOST (a URL's host name) is on, the longest rule first."""
        name = (host or "").strip().lower().rstrip(".")
        if not name or ":" in name or name.replace(".", "").isdigit():
            return None  # an IP literal is nobody's platform
        labels = name.split(".")
        for start in range(len(labels) - 1):
            suffix = ".".join(labels[start:])
            if suffix in self._by_host:
                return PlatformMatch(self._by_host[suffix], suffix)
        return None

    def get(self, key: str) -> Platform | None:
        """Return the platform with this key, or None."""
        return next((p for p in self._platforms if p.key == key), None)

    def __len__(self) -> int:
        return len(self._platforms)

    def __iter__(self) -> Iterator[Platform]:
        return iter(self._platforms)


def load_platforms(path: Path | None = None) -> PlatformDirectory:
    """Load and validate a platform directory; None loads the shipped one."""
    if path is None:
        with as_file(files("workflows") / "data" / "platforms.toml") as shipped:
            return load_platforms(shipped)
    data, text = load_toml(path)
    return parse_platforms(Source(path, text), data)


def parse_platforms(source: Source, data: dict[str, Any]) -> PlatformDirectory:
    """Validate parsed platform data, naming the line of the first problem."""
    owners: dict[str, str] = {}  # host -> key of the platform listing it
    platforms = []
    for entry in source.named_entries(data, "platform", _HINT):
        key = entry.table[1]
        platform = _platform(entry, key)
        for host in platform.hosts:
            other = owners.setdefault(host, key)
            if other != key:
                problem = f"{quote(host)} is listed under both [platform.{other}] and"
                raise entry.error("hosts", f"hosts: {problem} [platform.{key}]")
        platforms.append(platform)
    return PlatformDirectory(platforms)


def _platform(entry: Entry, key: str) -> Platform:
    """Build one Platform from its table, refusing unknown keys and bad values."""
    entry.check_keys(KEYS)
    name = entry.required_text("name")
    hosts = _hosts(entry)
    abuse, form = _abuse(entry), _form(entry)
    if bool(abuse) == bool(form):
        example = 'abuse = ["abuse@exampleblogs.test"] or form = "https://exampleblogs.test/report"'
        raise entry.error(None, f"needs exactly one desk: {example}")
    found = entry.text("source")
    if found is not None and (problem := url_problem(found)) is not None:
        raise entry.error("source", f"source {quote(found)} {problem}")
    return Platform(
        key=key,
        name=name,
        hosts=hosts,
        abuse=abuse,
        form=form,
        source=found,
        note=entry.text("note", multiline=True) or "",
    )


def _hosts(entry: Entry) -> tuple[str, ...]:
    """Return the host names (lowercase; a URL's host matches them and below), at least one."""
    hosts: list[str] = []
    for host in entry.array("hosts", '["exampleblogs.test"]'):
        if not isinstance(host, str):
            example = 'names like "exampleblogs.test"'
            raise entry.error("hosts", f"hosts must hold {example}, not {quote(host)}")
        name = host.strip().lower().rstrip(".")
        labels = name.split(".")
        # Two labels at least, and a top-level label with a letter: never an IP address,
        # never a whole top-level domain.
        if (
            len(labels) < 2
            or not all(_LABEL.fullmatch(label) for label in labels)
            or labels[-1].isdigit()
        ):
            problem = "is not a host name like exampleblogs.test (IDNs in xn-- form)"
            raise entry.error("hosts", f"hosts: {quote(host)} {problem}")
        if name in hosts:
            raise entry.error("hosts", f"hosts lists {quote(host)} twice")
        hosts.append(name)
    if not hosts:
        raise entry.error("hosts", 'hosts needs at least one host name, like ["exampleblogs.test"]')
    return tuple(hosts)


def _abuse(entry: Entry) -> tuple[str, ...]:
    """Return the desk's e-mail addresses, each safe to put in a mail header."""
    addresses: list[str] = []
    for address in entry.array("abuse", '["abuse@exampleblogs.test"]'):
        if not isinstance(address, str):
            example = 'addresses like "abuse@exampleblogs.test"'
            raise entry.error("abuse", f"abuse must hold {example}, not {quote(address)}")
        if (problem := email_problem(address)) is not None:
            raise entry.error("abuse", f"abuse: {quote(address)} {problem}")
        addresses.append(address.strip().lower())
    return tuple(dict.fromkeys(addresses))


def _form(entry: Entry) -> str | None:
    """Return the desk's web form: an https URL the engine takes for a form task."""
    form = entry.text("form")
    if form is None:
        return None
    if (problem := url_problem(form)) is not None:
        raise entry.error("form", f"form {quote(form)} {problem}")
    # A step's recipients are a comma list; a form address is a task only when https.
    if not form.startswith("https://") or "," in form or not is_form_address(form):
        problem = "must be an https URL without commas: analysts paste reports into it"
        raise entry.error("form", f"form {quote(form)} {problem}")
    return form
