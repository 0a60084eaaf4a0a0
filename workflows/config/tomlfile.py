"""Load operator-editable TOML files and name the file and line of every problem.

Shared by the hotline directory, the CDN directory and the workflow policy: each file
is parsed with `tomllib`, and each problem found later is reported as one
`ConfigError` line such as `hotlines.toml:14: [hotline.usa]: ...`, so a bad file
stops start-up with a message an operator can act on.
"""

from __future__ import annotations

import codecs
import json
import re
import tomllib
import unicodedata
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from workflows.errors import ConfigError

# ISO 3166-1 alpha-2 officially assigned codes, plus XK (Kosovo, user-assigned but used
# by the RIRs), so a typo such as "UK" or "EU" cannot silently route nowhere.
_ISO_3166_ALPHA_2 = """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN
    BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ
    DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL
    GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM
    JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME
    MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP
    NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD
    SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO
    TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS XK YE YT ZA ZM ZW
"""
COUNTRY_CODES = frozenset(_ISO_3166_ALPHA_2.split())
_COUNTRY_HINTS = {"UK": 'use "GB" for the United Kingdom', "EL": 'use "GR" for Greece'}

_BARE = r"[A-Za-z0-9_-]+"
_KEY_PART = r"""[A-Za-z0-9_-]+|"(?:[^"\\\n]|\\.)*"|'[^'\n]*'"""
_ENTRY_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")  # [cdn.name], [form.name], …
_KEY = rf"\s*(?:{_KEY_PART})\s*(?:\.\s*(?:{_KEY_PART})\s*)*"
_HEADER = re.compile(rf"\s*\[\[?({_KEY})\]\]?\s*(?:#.*)?$")
_ASSIGN = re.compile(rf"({_KEY})=")
_SYNTAX = re.compile(r"(.*) \(at (?:line (\d+), column (\d+)|end of document)\)$", re.DOTALL)
_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true/false",
    dict: "a table",
    list: "an array",
}


def load_toml(path: Path) -> tuple[dict[str, Any], str]:
    """Read and parse a TOML file; raise ConfigError naming the line of any syntax error."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the file: {exc.strerror or exc}") from exc
    # Editors on Windows often save a byte-order mark, which TOML refuses: drop it.
    raw = raw.removeprefix(codecs.BOM_UTF8)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{path}:{line}: the file is not valid UTF-8") from exc
    return parse_toml(path, text), text


def parse_toml(path: Path, text: str) -> dict[str, Any]:
    """Parse TOML TEXT read from PATH; raise ConfigError naming the line of a syntax error."""
    text = text.removeprefix("\ufeff")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_syntax_message(path, text, str(exc))) from exc
    except RecursionError as exc:
        line = _deepest_line(text)
        raise ConfigError(
            f"{path}:{line}: TOML syntax: arrays or tables nested too deeply"
        ) from exc
    except ValueError as exc:
        # Not TOMLDecodeError: int() refuses over 4300 digits (CVE-2020-10735).
        found = re.search(r"[0-9](?:_?[0-9]){4300}", text)
        line = text.count("\n", 0, found.start()) + 1 if found else 1
        raise ConfigError(
            f"{path}:{line}: TOML syntax: a number has more than 4300 digits"
        ) from exc


def _deepest_line(text: str) -> int:
    """Return the line where [ and { nest deepest (brackets in strings count too: a hint)."""
    depth = deepest = 0
    line = found = 1
    for char in text:
        if char == "\n":
            line += 1
        elif char in "[{":
            depth += 1
            if depth > deepest:
                deepest, found = depth, line
        elif char in "]}":
            depth -= 1
    return found


def _syntax_message(path: Path, text: str, message: str) -> str:
    """Turn tomllib's "msg (at line N, column M)" into "path:N: TOML syntax: msg"."""
    found = _SYNTAX.match(message)
    if found is None:
        return f"{path}: TOML syntax: {message}"
    problem, line, column = found.groups()
    if line is None:
        last = text.rstrip().count("\n") + 1
        return f"{path}:{last}: TOML syntax: {problem} at the end of the file"
    return f"{path}:{line}: TOML syntax: {problem} (column {column})"


def line_of(text: str, table: str | Sequence[str], key: str | None = None) -> int:
    """Return the likely line of `[table]` or of `key` in it, else the table's line, else 1."""
    want = tuple(_key_parts(table)) if isinstance(table, str) else tuple(table)
    table_line = key_line = 0
    current: tuple[str, ...] = ()
    for number, line in _statement_lines(text):
        header = _HEADER.match(line)
        assign = None if header else _ASSIGN.match(line)
        if header is not None:
            current = full = tuple(_key_parts(header.group(1)))
        elif assign is not None:
            full = current + tuple(_key_parts(assign.group(1)))
        else:
            continue
        inside = full[: len(want)] == want
        # An assignment to a parent key holds the table as an inline table.
        holds = assign is not None and want[: len(full)] == full
        if want and not table_line and (inside or holds):
            table_line = number
        if key is not None and not key_line:
            dotted = inside and full[len(want) : len(want) + 1] == (key,)
            key_line = number if dotted or (holds and _inline_key(line, key)) else 0
    return key_line or table_line or 1


def _statement_lines(text: str) -> list[tuple[int, str]]:
    """Number the lines as TOML does (LF only), leaving out multi-line string bodies."""
    result: list[tuple[int, str]] = []
    open_quote = ""
    for number, line in enumerate(text.split("\n"), 1):
        if open_quote:
            if line.count(open_quote) % 2:
                open_quote = ""
            continue
        result.append((number, line.lstrip()))
        open_quote = next((q for q in ('"""', "'''") if line.count(q) % 2), "")
    return result


def _key_parts(key: str) -> list[str]:
    """Split a dotted TOML key into its unquoted parts."""
    parts = []
    for part in re.findall(_KEY_PART, key):
        if part.startswith('"'):
            try:
                part = tomllib.loads(f"k = {part}")["k"]
            except tomllib.TOMLDecodeError:
                part = part[1:-1]
        elif part.startswith("'"):
            part = part[1:-1]
        parts.append(part)
    return parts


def _inline_key(line: str, key: str) -> bool:
    """Tell whether `key = ` appears inside an inline table on this line."""
    quoted = key if re.fullmatch(_BARE, key) else json.dumps(key)
    return re.search(rf"[{{,]\s*{re.escape(quoted)}\s*=", line) is not None


def table_name(table: Sequence[str]) -> str:
    """Write table parts as a TOML dotted name, quoting parts that are not bare keys."""
    return ".".join(p if re.fullmatch(_BARE, p) else quote(p) for p in table)


def where(path: Path | str, text: str, table: str | Sequence[str], key: str | None = None) -> str:
    """Format `path:line` for a table, or a key in it."""
    return f"{path}:{line_of(text, table, key)}"


def quote(value: object, limit: int = 60) -> str:
    """Show a value on one line, escaping control and line-break characters."""
    # JSON spelling matches TOML for strings, numbers and booleans (true, not True).
    shown = json.dumps(value, ensure_ascii=False, default=str)
    shown = "".join(_escape(c) for c in shown)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def _escape(char: str) -> str:
    """Escape a character that could break a one-line message."""
    unsafe = unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp", "Cs")
    return f"\\u{ord(char):04x}" if unsafe else char


def type_name(value: object) -> str:
    """Name the TOML type of a parsed value, for messages like "must be a string"."""
    if isinstance(value, datetime | date | time):
        return "a date/time"
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def text_problem(value: str, *, multiline: bool = False) -> str | None:
    """Describe a control character in free text, or return None."""
    allowed = "\n\t" if multiline else ""
    for char in value:
        if char not in allowed and unicodedata.category(char) in ("Cc", "Zl", "Zp"):
            return f"contains the control character {quote(char)}"
    return None


def country_problem(code: str) -> str | None:
    """Describe why `code` is not an ISO 3166-1 alpha-2 country code, or return None."""
    if code in COUNTRY_CODES:
        return None
    hint = _COUNTRY_HINTS.get(code.upper())
    if hint is None and code.upper() in COUNTRY_CODES:
        hint = f'write it in capitals: "{code.upper()}"'
    return 'must be an ISO 3166 alpha-2 code like "US"' + (f"; {hint}" if hint else "")


def url_problem(url: str) -> str | None:
    """Describe why `url` is not an absolute http(s) URL, or return None."""
    if any(char.isspace() or unicodedata.category(char) == "Cc" for char in url):
        return "must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced "[" in the host
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        return 'must be an http(s) URL like "https://example.org/"'
    return None


@dataclass(frozen=True)
class Source:
    """A parsed file's path and text, used to name the line of each problem."""

    path: Path
    text: str

    def error(self, table: Sequence[str], key: str | None, problem: str) -> ConfigError:
        """Build the one-line error for a problem in `[table]`, at `key` if given."""
        label = f" [{table_name(table)}]:" if table else ""
        return ConfigError(f"{where(self.path, self.text, table, key)}:{label} {problem}")

    def named_entries(self, data: dict[str, Any], section: str, hint: str) -> list[Entry]:
        """Return the `[section.name]` tables as Entries, refusing any other top-level key,
        a name that is not a short lowercase key and a value that is not a table."""
        entries = []
        for key, body in self.sections(data, section, hint).items():
            table = (section, key)
            if not _ENTRY_NAME.fullmatch(key):
                problem = "must be 1-40 lowercase letters, digits, '-' or '_'"
                raise self.error(table, None, f"the table name {problem}; {hint}")
            if not isinstance(body, dict):
                raise self.error(table, None, f"must be a table, not {type_name(body)}; {hint}")
            entries.append(Entry(self, table, body))
        return entries

    def sections(self, data: dict[str, Any], section: str, hint: str) -> dict[str, Any]:
        """Return the `[section]` table after refusing any other top-level key."""
        for key in data:
            if key != section:
                raise self.error((), key, f"unknown top-level key {quote(key)}; {hint}")
        found = data.get(section, {})
        if not isinstance(found, dict):
            raise self.error((), section, f"{section} must be a table of tables; {hint}")
        return found


@dataclass(frozen=True)
class Entry:
    """One `[section.name]` table of a file, with checks that name its lines."""

    source: Source
    table: tuple[str, ...]
    data: dict[str, Any]

    def error(self, key: str | None, problem: str) -> ConfigError:
        """Build the error for a problem in this table, at `key` if given."""
        return self.source.error(self.table, key, problem)

    def check_keys(self, allowed: Collection[str]) -> None:
        """Refuse any key this kind of entry does not know, naming it."""
        for key in self.data:
            if key not in allowed:
                known = ", ".join(sorted(allowed))
                raise self.error(key, f"unknown key {quote(key)} (known keys: {known})")

    def text(self, key: str, *, multiline: bool = False) -> str | None:
        """Return a string value, None when absent or empty; refuse other types."""
        value = self.data.get(key)
        if value is not None and not isinstance(value, str):
            raise self.error(key, f"{key} must be a string, not {type_name(value)}")
        if not value:
            return None
        problem = text_problem(value, multiline=multiline)
        if problem is not None:
            raise self.error(key, f"{key} {problem}")
        return value

    def required_text(self, key: str) -> str:
        """Return a string value that must be present and not blank."""
        value = self.text(key)
        if value is None or not value.strip():
            raise self.error(key, f"{key} is required and must not be empty")
        return value

    def array(self, key: str, example: str) -> list[Any]:
        """Return an array value, an empty list when absent; refuse other types."""
        value = self.data.get(key, [])
        if not isinstance(value, list):
            raise self.error(key, f"{key} must be an array like {example}, not {type_name(value)}")
        return value
