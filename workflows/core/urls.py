"""Check a reported URL and bring it to the one normalised form takedown stores and traces.

Pure: no network, no database. Everything refused raises URLError with a message that names
the problem; everything accepted comes back as a NormalizedURL whose `url` is printable ASCII
and normalises to itself again. Positions in messages count characters from 1.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

import idna

from workflows.errors import URLError

__all__ = ["DEFAULT_PORTS", "MAX_URL_OCTETS", "HostKind", "NormalizedURL", "normalize_url"]

HostKind = Literal["domain", "ipv4", "ipv6"]

DEFAULT_PORTS = {"http": 80, "https": 443}  # RFC 9110 §4.2.1, §4.2.2
MAX_URL_OCTETS = 8000  # RFC 9110 §4.1: the length senders and recipients should support
MAX_INPUT_CHARS = 65536  # bound the work done on one paste before looking closer
MAX_HOST_INPUT_CHARS = 1024  # the idna package refuses longer input; no real host comes near
MAX_LABEL_OCTETS = 63  # RFC 1035 §2.3.4
MAX_HOST_OCTETS = 253  # RFC 1035 §2.3.4: 255 octets on the wire is 253 in text

_ASCII_WHITESPACE = " \t\n\r\x0b\x0c"
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")  # RFC 3986 §3.1
_AFTER_SCHEME = re.compile(r"([^/?]*)([^?]*)(?:\?(.*))?", re.DOTALL)  # authority, path, query
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")  # LDH plus '_' seen on the web
_REFUSED_CATEGORIES = {
    "Cc": "control character",
    "Cf": "invisible format character",
    "Cs": "unpaired surrogate",
    "Zl": "line separator",
    "Zp": "paragraph separator",
    "Zs": "space character",
}


@dataclass(frozen=True, slots=True)
class NormalizedURL:
    """A reported URL in normalised form, with the parts takedown traces."""

    url: str
    scheme: str
    host: str
    host_kind: HostKind
    port: int | None
    path: str
    query: str | None
    display_host: str
    notes: tuple[str, ...] = ()

    @property
    def authority(self) -> str:
        """Return host and port as written in the URL (IPv6 in brackets)."""
        return _authority(self.host, self.host_kind, self.port)

    @property
    def effective_port(self) -> int:
        """Return the TCP port a client connects to."""
        return DEFAULT_PORTS[self.scheme] if self.port is None else self.port

    def __str__(self) -> str:
        """Return the normalised URL."""
        return self.url


def normalize_url(raw: str) -> NormalizedURL:
    """Check a reported URL and return its normalised form, or raise URLError naming the problem."""
    scheme, rest = _split_scheme(_clean(raw))
    match = _AFTER_SCHEME.fullmatch(rest.partition("#")[0])  # the fragment never reaches a server
    assert match is not None  # every string matches: all three groups may be empty
    authority, path, query = match.group(1), match.group(2), match.group(3)
    if "\\" in authority:
        raise URLError(
            f"backslash in the host part '{_clip(authority)}': browsers read '\\' as '/' in "
            "http URLs, which hides the real host (WHATWG URL §4.4)"
        )
    userinfo, at, hostport = authority.rpartition("@")  # RFC 3986 §3.2.1: host is after the last @
    notes: list[str] = []
    host_text, port_text, bracketed = _split_hostport(hostport)
    parse = _parse_ipv6 if bracketed else _parse_name
    host, kind, display = parse(host_text, notes)
    if at:  # credentials never stay in the URL; the note shows the trick
        notes.insert(0, _userinfo_note(userinfo, host))
    port = _parse_port(port_text, scheme)
    path = _encode_non_ascii(path) or "/"  # RFC 9110 §4.2.3: an empty path is "/"
    query = None if query is None else _encode_non_ascii(query)
    url = f"{scheme}://{_authority(host, kind, port)}{path}"
    url += "" if query is None else f"?{query}"
    if len(url) > MAX_URL_OCTETS:
        raise URLError(
            f"the URL is {len(url)} octets after normalisation: the limit is {MAX_URL_OCTETS} "
            "(RFC 9110 §4.1; longer URLs are not served reliably)"
        )
    return NormalizedURL(url, scheme, host, kind, port, path, query, display, tuple(notes))


def _authority(host: str, kind: HostKind, port: int | None) -> str:
    """Return host and port as written in a URL (RFC 3986 §3.2.2: IPv6 in brackets)."""
    bracketed = f"[{host}]" if kind == "ipv6" else host
    return bracketed if port is None else f"{bracketed}:{port}"


def _clip(text: str, limit: int = 40) -> str:
    """Shorten text for quoting in a message."""
    return text if len(text) <= limit else text[:limit] + "…"


def _clean(raw: object) -> str:
    """Strip surrounding ASCII whitespace and refuse any space, control or format character left."""
    if not isinstance(raw, str):
        raise URLError(f"a URL must be text, not {type(raw).__name__}")
    if len(raw) > MAX_INPUT_CHARS:
        raise URLError(f"the input is {len(raw)} characters long: the limit is {MAX_INPUT_CHARS}")
    text = raw.strip(_ASCII_WHITESPACE)
    if not text:
        raise URLError("the URL is empty")
    offset = len(raw) - len(raw.lstrip(_ASCII_WHITESPACE))
    for index, char in enumerate(text):
        kind = _REFUSED_CATEGORIES.get(unicodedata.category(char))
        if kind is not None:
            name = unicodedata.name(char, "")
            code = f"U+{ord(char):04X}" + (f" ({name})" if name else "")
            raise URLError(
                f"{kind} {code} at position {offset + index + 1}: a URL may not contain "
                "spaces, line breaks, control or invisible characters"
            )
    return text


def _split_scheme(text: str) -> tuple[str, str]:
    """Return the lowercase scheme and what follows its '//', refusing anything but http(s)."""
    match = _SCHEME.match(text)
    rest = text[match.end() :] if match else ""
    if match is None or "." in match.group() or rest[:1].isdigit():  # "example.com:8080" has none
        raise URLError(f"no scheme in '{_clip(text)}': write http:// or https:// before the host")
    scheme = match.group()[:-1].lower()  # RFC 3986 §3.1: schemes are case-insensitive
    if scheme not in DEFAULT_PORTS:
        hint = " (a defanged URL: write http or https)" if scheme in ("hxxp", "hxxps") else ""
        raise URLError(f"scheme '{_clip(scheme)}' is not allowed: only http and https{hint}")
    if not rest.startswith("//"):  # RFC 9110 §4.2.1: http URLs have an authority
        hint = " (backslashes do not count as slashes)" if "\\" in rest[:2] else ""
        raise URLError(f"'{scheme}:' must be followed by '//' and the host{hint}")
    return scheme, rest[2:]


def _split_hostport(hostport: str) -> tuple[str, str | None, bool]:
    """Split host and port text; say whether the host was an IPv6 literal in brackets."""
    if hostport.startswith("["):  # RFC 3986 §3.2.2: IP-literal
        inner, close, after = hostport[1:].partition("]")
        if not close:
            raise URLError(f"unbalanced '[' in '{_clip(hostport)}': no closing ']'")
        if after and not after.startswith(":"):
            raise URLError(f"unexpected '{_clip(after)}' after the IPv6 address: expected ':port'")
        return inner, after[1:] if after else None, True
    if "[" in hostport or "]" in hostport:
        hint = " ('[.]' is defanging: write '.')" if "[.]" in hostport else ""
        raise URLError(
            f"misplaced square bracket in '{_clip(hostport)}': brackets may only surround "
            f"an IPv6 address{hint}"
        )
    if hostport.count(":") > 1:
        raise URLError(
            f"more than one ':' in '{_clip(hostport)}': an IPv6 address must be in brackets"
        )
    host, colon, port = hostport.partition(":")
    return host, port if colon else None, False


def _parse_port(text: str | None, scheme: str) -> int | None:
    """Return the port as an int, or None when absent, empty or the scheme's default."""
    if not text:  # RFC 3986 §3.2.3: an empty port means the default
        return None
    if not (text.isascii() and text.isdigit()):
        raise URLError(f"port '{_clip(text)}' is not a number")
    digits = text.lstrip("0")  # leading zeros are allowed (WHATWG URL §4.4, port state)
    if len(digits) > 5 or not 1 <= int(digits or "0") <= 65535:
        raise URLError(f"port {_clip(text)} is out of range: it must be 1 to 65535")
    port = int(digits)
    return None if port == DEFAULT_PORTS[scheme] else port  # RFC 3986 §6.2.3


def _parse_ipv6(text: str, _notes: list[str]) -> tuple[str, HostKind, str]:
    """Return an IPv6 literal in compressed lowercase form (RFC 5952 §4), its kind and display."""
    if "%" in text:  # RFC 6874 zone ids only mean something on the machine that wrote them
        raise URLError(f"IPv6 zone id in '[{_clip(text)}]' is not allowed: remove the '%…' part")
    try:
        host = str(ipaddress.IPv6Address(text))
    except ValueError:
        raise URLError(f"'[{_clip(text)}]' is not a valid IPv6 address") from None
    return host, "ipv6", host


def _parse_name(text: str, notes: list[str]) -> tuple[str, HostKind, str]:
    """Return ASCII host, its kind and Unicode form for a domain name or IPv4 address."""
    if not text:
        raise URLError("no host: write the host name after '//'")
    if "%" in text:  # WHATWG would decode it; a person should see the real name
        raise URLError(f"'%' in host '{_clip(text)}': percent-encoded host names are not accepted")
    if len(text) > MAX_HOST_INPUT_CHARS:
        raise URLError(f"host is {len(text)} characters: the limit is {MAX_HOST_OCTETS} octets")
    try:  # UTS #46 §4 mapping, as browsers do (WHATWG URL §3.5 domain to ASCII)
        mapped = idna.uts46_remap(text, std3_rules=False)
    except idna.IDNAError as exc:
        raise URLError(f"host '{_clip(text)}' is not a valid domain name: {exc}") from None
    if mapped != text.lower():
        notes.append(f"host '{_clip(text)}' was read as '{_clip(mapped)}' (UTS #46 mapping)")
    name = mapped.removesuffix(".")  # one trailing dot is the DNS root: same host
    if not name:
        raise URLError("no host: write the host name after '//'")
    labels = name.split(".")
    if _ends_in_number(labels[-1]):  # WHATWG URL §3.5: then it must be an IPv4 address
        host = _parse_ipv4(labels, name, notes)
        return host, "ipv4", host
    pairs = [_to_ascii(label, name) for label in labels]
    host = ".".join(ascii_label for ascii_label, _ in pairs)
    if len(host) > MAX_HOST_OCTETS:
        raise URLError(
            f"host '{_clip(host)}' is {len(host)} octets: the limit is {MAX_HOST_OCTETS} "
            "(RFC 1035 §2.3.4)"
        )
    return host, "domain", ".".join(unicode_label for _, unicode_label in pairs)


def _to_ascii(label: str, name: str) -> tuple[str, str]:
    """Return the ASCII (punycode) and Unicode forms of one host label, refusing invalid ones."""
    if not label:
        raise URLError(f"empty label in host '{_clip(name)}': two dots in a row or a leading dot")
    bad = next((c for c in label if c.isascii() and c not in _LABEL_CHARS), None)
    if bad is not None:
        raise URLError(f"character '{bad}' is not allowed in host label '{_clip(label)}'")
    ascii_label = label if label.isascii() else "xn--" + label.encode("punycode").decode()
    if len(ascii_label) > MAX_LABEL_OCTETS:
        raise URLError(
            f"host label '{_clip(label, 20)}' is {len(ascii_label)} octets"
            + ("" if label.isascii() else " as punycode")
            + f": the limit is {MAX_LABEL_OCTETS} (RFC 1035 §2.3.4)"
        )
    try:  # RFC 5891 §4, §5: IDNA 2008 validity of U-labels and of existing A-labels
        if not label.isascii():
            idna.check_label(label)
        elif label.startswith("xn--"):
            return ascii_label, idna.ulabel(label)
    except idna.IDNAError as exc:
        raise URLError(f"host label '{_clip(label)}' is not valid IDNA: {exc}") from None
    return ascii_label, label


def _ipv4_number(part: str) -> int | None:
    """Return one IPv4 part read as WHATWG URL §3.5 does (decimal, 0x hex, 0 octal), or None."""
    if part[:2] in ("0x", "0X"):
        digits, base = part[2:], 16
    elif len(part) > 1 and part.startswith("0"):
        digits, base = part[1:], 8
    else:
        digits, base = part, 10
    if not digits:
        return None if base == 10 else 0  # "0x" alone is zero; an empty part is not a number
    if any(c not in "0123456789abcdef"[:base] for c in digits.lower()):
        return None
    digits = digits.lstrip("0") or "0"
    return 1 << 32 if len(digits) > 16 else int(digits, base)  # too big either way; bounds int()


def _ends_in_number(label: str) -> bool:
    """Say whether the last host label makes the host an IPv4 address (WHATWG URL §3.5)."""
    return (label.isascii() and label.isdigit()) or _ipv4_number(label) is not None


def _parse_ipv4(labels: list[str], name: str, notes: list[str]) -> str:
    """Return the dotted-quad form of an IPv4 host in any form WHATWG URL §3.5 accepts."""
    numbers = [n for n in map(_ipv4_number, labels) if n is not None]
    if len(labels) > 4 or len(numbers) != len(labels):
        raise URLError(
            f"host '{_clip(name)}' ends in a number but is not a valid IPv4 address "
            "(WHATWG URL §3.5)"
        )
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        raise URLError(f"IPv4 address '{_clip(name)}' has a part out of range")
    value = last + sum(n << (8 * (3 - i)) for i, n in enumerate(head))
    host = str(ipaddress.IPv4Address(value))
    if host != name:
        notes.append(f"IPv4 address written as '{_clip(name)}' converted to {host}")
    return host


def _userinfo_note(userinfo: str, host: str) -> str:
    """Describe removed userinfo without repeating a password."""
    if not userinfo:
        return f"empty userinfo before '@' removed: the real host is {host}"
    user, colon, _ = userinfo.partition(":")
    shown = _clip(user) + (":…" if colon else "")  # RFC 3986 §3.2.1: never show a password
    return f"userinfo '{shown}' removed: the real host is {host}"


def _encode_non_ascii(text: str) -> str:
    """Percent-encode non-ASCII characters as UTF-8 (RFC 3986 §2.5); leave the rest byte-exact."""
    return _NON_ASCII.sub(lambda m: quote(m.group(), safe=""), text)
