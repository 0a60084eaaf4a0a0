"""Read one inbound e-mail and say what it is: a bounce, a delay, a reply or an auto-reply.

Notices leave through our relay with a VERP return path (`bounces+{token}@…`); failures
come back later as delivery status notifications (DSNs), replies to the hotline's mailbox.
`read_message` takes ONE raw message and classifies it. It is pure (bytes in, an `Inbound`
out: no database, network or file) and never raises for any bytes.

    kind         when (checked in this order)                                failures
    unreadable   over MAX_BYTES, MAX_DEPTH or MAX_PARTS; no header field at  ()
                 all; a delivery report whose recipients cannot be read; the
                 standard library's parser failed (`problem` says which)
    bounce       a DSN (RFC 3464) with a recipient `Action: failed`; or a      the failed ones
                 message that looks like a bounce and in which flufl.bounce
                 finds permanent failures (Exim, qmail and other formats)
    delay        the same with only `Action: delayed` / temporary failures    the delayed ones
    other        a DSN that reports delivered, relayed or expanded only       ()
    auto_reply   Auto-Submitted other than "no" (RFC 3834 §5); X-Autoreply,    ()
                 X-Autorespond, X-Auto-Response-Suppress; Precedence
                 auto_reply, bulk or junk; an out-of-office subject; a ticket
                 system's acknowledgement
    reply        In-Reply-To or References, or a case reference (TD-000042)   ()
                 in the subject: the caller decides whether the ids are ours
    other        anything else                                                ()

A DSN is checked before the auto-reply rules: MTAs mark their reports Auto-Submitted too.
flufl.bounce is asked only about messages that look like a bounce (from MAILER-DAEMON or
postmaster, a null Return-Path, a bounce subject): its heuristics find "failed addresses"
in ordinary mail otherwise. A DSN names a recipient by its Original-Recipient (the address
we gave) before its Final-Recipient (where an alias led).

VERP tokens are looked for in Delivered-To, X-Original-To, Envelope-To, X-Envelope-To, To
and Cc, then in the Return-Path and To of the original a bounce or delay returns (its
message/rfc822 or text/rfc822-headers part, or the copy Exim quotes inline), which also
adds its Message-ID to `references` and its case references to `case_refs`.

Hostile input: every header value we return is one printable line (no CR, LF or other
control character, so it can never start a header of its own); addresses are read with
encoded words left out, so a decoded display name cannot forge one; the parser's message
factory counts parts as they are made, so 100,000 parts cost no more than 500; the MIME
tree is walked with a stack, never with recursion; and whatever the standard library's
parser still raises becomes "unreadable".
"""

from __future__ import annotations

import functools
import hashlib
import html
import re
from collections.abc import Iterable
from dataclasses import dataclass
from email.errors import MessageError
from email.message import EmailMessage, Message
from email.parser import BytesParser, Parser
from email.policy import default as POLICY
from email.utils import getaddresses
from typing import Literal, TypeVar

from flufl.bounce import all_failures

MAX_BYTES = 10 * 1024 * 1024
MAX_DEPTH = 20  # MIME nesting below the top-level message
MAX_PARTS = 500  # message objects: the message, its parts, a report's header blocks
MAX_LINE = 300  # subject, diagnostic
MAX_TEXT = 20_000
MAX_IDS = 50
_MAX_HEADER = 20_000  # characters of a header value read
_MAX_ORIGINAL = 100_000  # characters of a returned original read for its headers

_T = TypeVar("_T")
# What email's header parser and flufl.bounce's detectors raise on malformed input.
_PARSE_ERRORS = (MessageError, LookupError, ValueError, TypeError, AttributeError, RecursionError)

Kind = Literal["bounce", "delay", "reply", "auto_reply", "other", "unreadable"]

_TOKEN_HEADERS = ("delivered-to", "x-original-to", "envelope-to", "x-envelope-to", "to", "cc")
_RETURNED = ("message/rfc822", "message/global", "text/rfc822-headers", "message/global-headers")
_ADDRESS = re.compile(r'[^\s<>(),;:"\\]{1,254}')
_ENCODED_WORD = re.compile(r"=\?[^?\s]*\?[BbQq]\?[^?\s]*\?=")
_MESSAGE_ID = re.compile(r"<([^<>\s]{1,250})>")
_BARE_ID = re.compile(r"<?([^<>\s@]{1,200}@[^<>\s@]{1,200})>?")
_CASE_REF = re.compile(r"(?<![A-Za-z0-9])TD-(\d{6,9})(?!\d)", re.IGNORECASE)
_STATUS = re.compile(r"\b[245]\.\d{1,3}\.\d{1,3}\b")
_DIAGNOSTIC_TYPE = re.compile(r"^[A-Za-z][A-Za-z0-9-]*\s*;\s*")  # "smtp; 550 …"
_BOUNCE_SUBJECT = re.compile(
    r"\s*(undeliverable|undelivered mail|delivery status notification|mail delivery failed"
    r"|returned mail|failure notice)",
    re.IGNORECASE,
)
_AUTO_SUBJECT = re.compile(
    r"\s*(auto:|automatic reply|autoreply|out of office|out of the office|abwesenheitsnotiz"
    r"|réponse automatique)",
    re.IGNORECASE,
)
_ACK_SUBJECT = re.compile(r"\[ticket#|request received|has been received|ticket", re.IGNORECASE)
# Exim, qmail and others quote the returned message inline after a line like this one.
_COPY_MARKER = re.compile(
    r"^-{2,}.*(copy of the message|original message|returned message|message follows).*$",
    re.IGNORECASE | re.MULTILINE,
)
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*)?[^<>]*>")  # no nested quantifier: linear
_BREAKS = frozenset({"br", "p", "div", "tr", "li", "table", "blockquote", "hr", "h1", "h2", "h3"})
_TEXT_CONTROLS = dict.fromkeys(c for c in (*range(32), *range(127, 160)) if c not in (9, 10))
_SURROGATES = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Failure:
    """One recipient a delivery report says failed or is delayed."""

    recipient: str  # the failed address, lowercased
    status: str  # enhanced status code "5.1.1" / "4.4.7", "" when unknown
    diagnostic: str  # one line, at most MAX_LINE characters, "" if none


@dataclass(frozen=True)
class Inbound:
    """What one inbound message is, and what it refers to."""

    kind: Kind
    digest: str  # sha256 hex of the raw bytes, set even when unreadable
    sender: str | None  # the From: address, lowercased
    subject: str  # decoded, one line, at most MAX_LINE characters
    message_id: str | None  # this message's own Message-ID, "<…>"
    tokens: tuple[str, ...]  # VERP tokens, lowercase, in header order
    references: tuple[str, ...]  # In-Reply-To, References; a returned original's Message-ID
    case_refs: tuple[int, ...]  # case ids of "TD-000123" in the subject(s)
    failures: tuple[Failure, ...]  # bounce: the failed recipients; delay: the delayed ones
    text: str  # reply, auto_reply, other: the readable text; else ""
    problem: str | None = None  # unreadable: why, in one line


@dataclass(frozen=True)
class _Verdict:
    """A delivery report's kind and the recipients it names."""

    kind: Kind
    failures: tuple[Failure, ...] = ()


class _Unreadable(Exception):
    """The message cannot be read; the text says why."""


class _PartFactory:
    """Make the parser's message objects, refusing the one past MAX_PARTS.

    The parser calls it with no arguments (an "old-style" factory: the call with a policy
    it tries first fails), once per message object, while it parses: a flood of parts is
    refused after 500 of them, not after all of them were parsed.
    """

    def __init__(self) -> None:
        self.made = 0

    def __call__(self) -> EmailMessage:
        self.made += 1
        if self.made > MAX_PARTS:
            raise _Unreadable(f"more than {MAX_PARTS} MIME parts")
        return EmailMessage(policy=POLICY)


def read_message(raw: bytes, return_path: str | None = None) -> Inbound:
    """Classify RAW; RETURN_PATH is the VERP pattern with one {token}, e.g. bounces+{token}@….

    Raise ValueError only for a RETURN_PATH without exactly one {token} before the "@".
    """
    digest = hashlib.sha256(raw).hexdigest()
    pattern = _token_pattern(return_path) if return_path is not None else None
    if len(raw) > MAX_BYTES:
        return _unreadable(digest, f"larger than {MAX_BYTES} bytes")
    try:
        return _read(raw, digest, pattern)
    except _Unreadable as exc:
        return _unreadable(digest, str(exc))
    except Exception as exc:  # noqa: BLE001
        # The final guard. email's parser and header classes raise a long tail of errors
        # on malformed input (IndexError, ValueError, AssertionError, RecursionError in
        # the feed parser's nested generators…), and flufl.bounce's detectors run on
        # whatever arrives: no message may stop the caller's loop, so a human gets it.
        return _unreadable(digest, f"the parser failed: {type(exc).__name__}: {exc}")


def _read(raw: bytes, digest: str, pattern: re.Pattern[str] | None) -> Inbound:
    """Parse RAW and classify it; raise _Unreadable when it cannot be read."""
    root = BytesParser(_PartFactory(), policy=POLICY).parsebytes(raw)
    if not root.keys():
        raise _Unreadable("no header fields: not a mail message")
    parts = _parts(root)
    subject = _subject(root)
    sender = next(iter(_addresses(_values(root, "from"))), None)
    references = _message_ids(_values(root, "in-reply-to") + _values(root, "references"))
    case_refs = _case_refs(subject)
    addresses = [value for name in _TOKEN_HEADERS for value in _values(root, name)]
    verdict = _delivery(root, parts, sender, subject)
    if verdict is None:
        kind: Kind = "other"
        if _is_auto_reply(root, subject):
            kind = "auto_reply"
        elif references or case_refs:
            kind = "reply"
        verdict = _Verdict(kind)
    elif verdict.kind in ("bounce", "delay") and (original := _returned(parts)) is not None:
        references += _message_ids(_values(original, "message-id"))
        case_refs += _case_refs(_subject(original))
        addresses += _values(original, "return-path") + _values(original, "to")
    return Inbound(
        kind=verdict.kind,
        digest=digest,
        sender=sender,
        subject=subject,
        message_id=next(iter(_message_ids(_values(root, "message-id"))), None),
        tokens=_tokens(pattern, addresses) if pattern is not None else (),
        references=_unique(references)[:MAX_IDS],
        case_refs=_unique(case_refs),
        failures=verdict.failures,
        text="" if verdict.kind in ("bounce", "delay") else _body_text(parts),
    )


def _unreadable(digest: str, problem: str) -> Inbound:
    return Inbound("unreadable", digest, None, "", None, (), (), (), (), "", _line(problem))


def _parts(root: Message) -> list[tuple[Message, bool]]:
    """List ROOT's parts depth-first, each with whether it lies inside an attached message."""
    found: list[tuple[Message, bool]] = []
    stack: list[tuple[Message, int, bool]] = [(root, 0, False)]
    while stack:  # a stack, not recursion: depth is checked before it can hurt
        part, depth, attached = stack.pop()
        if depth > MAX_DEPTH:
            raise _Unreadable(f"MIME parts nested more than {MAX_DEPTH} deep")
        found.append((part, attached))
        # A delivery report's payload is its header blocks, not parts.
        if not part.is_multipart() or part.get_content_type() == "message/delivery-status":
            continue
        inner = attached or part.get_content_maintype() == "message"
        children = [child for child in part.get_payload() if isinstance(child, Message)]
        stack.extend((child, depth + 1, inner) for child in reversed(children))
    return found


# Headers


def _values(message: Message, name: str) -> list[str]:
    """Return every value of header NAME (lowercase) as it was sent, 8-bit bytes as UTF-8."""
    raws = [str(raw) for key, raw in message.raw_items() if key.lower() == name]
    return [_unescaped(raw[:_MAX_HEADER]) for raw in raws]


def _first(message: Message, name: str) -> str:
    return next(iter(_values(message, name)), "")


def _unescaped(raw: str) -> str:
    """Turn the parser's stand-ins for 8-bit bytes (surrogate escapes) back into UTF-8 text."""
    try:
        return raw.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a lone surrogate of some other kind: cleaned away later
        return raw


def _subject(message: Message) -> str:
    """Return MESSAGE's subject decoded (RFC 2047) as one line; the raw text if that fails."""
    raw = _first(message, "subject")
    try:
        return _line(str(POLICY.header_fetch_parse("Subject", raw)))
    except _PARSE_ERRORS:
        # policy.default parses a header when it is read, and some malformed values make
        # its parser raise: the raw text still serves, it is cleaned like any other.
        return _line(raw)


def _line(text: str, limit: int = MAX_LINE) -> str:
    """Make TEXT one printable line of at most LIMIT characters: no CR, LF or controls."""
    text = text[: limit * 4]  # whatever lies beyond would be cut anyway
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _addresses(values: Iterable[str]) -> list[str]:
    """Return the addresses in header VALUES, lowercased, leaving out what is not one."""
    found: list[str] = []
    for value in values:
        try:
            # RFC 2047 §5: an encoded word is never part of an address, only of a name or a
            # comment, and decoded it may hold "," "<" or ":" that would forge one.
            pairs = getaddresses([_line(_ENCODED_WORD.sub(" ", value), _MAX_HEADER)])
        except RecursionError:  # email.utils recurses once per nested "(" of a comment
            continue
        addresses = (address.strip().lower() for _, address in pairs)
        found.extend(address for address in addresses if _ADDRESS.fullmatch(address))
    return found


def _message_ids(values: Iterable[str]) -> list[str]:
    """Return the Message-IDs in header VALUES, each in the "<…>" form."""
    found: list[str] = []
    for value in values:
        value = _line(value, _MAX_HEADER)
        ids = _MESSAGE_ID.findall(value)
        if not ids and (bare := _BARE_ID.fullmatch(value)):  # id@host, without its <>
            ids = [bare.group(1)]
        found.extend(f"<{id_}>" for id_ in ids[:MAX_IDS])
    return found


def _case_refs(subject: str) -> list[int]:
    # Six digits or more: the outbox writes case ids as TD-{id:06d}.
    return [int(digits) for digits in _CASE_REF.findall(subject)]


@functools.lru_cache(maxsize=16)
def _token_pattern(return_path: str) -> re.Pattern[str]:
    """Compile the VERP pattern RETURN_PATH into a regex whose group is the token."""
    local, at, domain = return_path.rpartition("@")
    if not at or local.count("{token}") != 1 or return_path.count("{token}") != 1:
        raise ValueError(f"return path {return_path!r} needs one {{token}} before the @")
    before, _, after = local.partition("{token}")
    literal = re.escape(before), re.escape(after), re.escape(domain)
    return re.compile(f"{literal[0]}([0-9a-f]{{16,64}}){literal[1]}@{literal[2]}", re.IGNORECASE)


def _tokens(pattern: re.Pattern[str], values: list[str]) -> tuple[str, ...]:
    matches = (pattern.fullmatch(address) for address in _addresses(values))
    return _unique([match.group(1).lower() for match in matches if match])


def _unique(items: list[_T]) -> tuple[_T, ...]:
    return tuple(dict.fromkeys(items))


# Delivery reports


def _delivery(
    root: Message, parts: list[tuple[Message, bool]], sender: str | None, subject: str
) -> _Verdict | None:
    """Say what ROOT reports on delivery; None when it is no delivery report."""
    report = _status_part(root)
    if report is not None:
        verdict = _dsn_verdict(_report_blocks(report)) or _flufl_verdict(root, parts)
        if verdict is None:
            raise _Unreadable("a delivery status report without a recipient that can be read")
        return verdict
    if _looks_like_bounce(root, sender, subject):
        return _flufl_verdict(root, parts)
    return None


def _status_part(root: Message) -> Message | None:
    """Return the message/delivery-status part of a multipart/report ROOT (RFC 3462)."""
    if root.get_content_type() != "multipart/report" or not root.is_multipart():
        return None
    # report-type is not checked: some MTAs leave it out; the part says what it is.
    for part in root.get_payload():
        if isinstance(part, Message) and part.get_content_type() == "message/delivery-status":
            return part
    return None


def _report_blocks(report: Message) -> list[dict[str, str]]:
    """Return the header blocks of delivery-status REPORT as maps of field name to value."""
    payload = report.get_payload()
    if isinstance(payload, list):  # what the parser makes of it: one Message per block
        blocks = [block for block in payload if isinstance(block, Message)]
    else:  # a report built in code, or encoded: its text still holds the blocks
        text = _decode(report)[:_MAX_ORIGINAL]
        chunks = re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n"))[:MAX_PARTS]
        blocks = [Parser(policy=POLICY).parsestr(chunk, headersonly=True) for chunk in chunks]
    # Raw values: these fields are plain ASCII (RFC 3464 §2.1), no need for the policy.
    return [
        {
            key.lower(): _line(str(value), _MAX_HEADER)
            for key, value in reversed(list(block.raw_items()))
        }
        for block in blocks
    ]


def _dsn_verdict(blocks: list[dict[str, str]]) -> _Verdict | None:
    """Decide by the per-recipient blocks' Action fields; None when no block names one."""
    failed, delayed, fine = [], [], False
    for fields in blocks:
        recipient = _recipient(fields)
        action = re.match(r"[a-z]*", fields.get("action", "").lower())
        if not recipient or action is None:
            continue  # the per-message block, or a block we cannot use
        if action.group() in ("failed", "error"):  # "error": OpenSMTPD's non-standard word
            failed.append(_failure(recipient, fields))
        elif action.group() == "delayed":
            delayed.append(_failure(recipient, fields))
        elif action.group() in ("delivered", "relayed", "expanded"):
            fine = True
    if failed:
        return _Verdict("bounce", _unique_failures(failed))
    if delayed:
        return _Verdict("delay", _unique_failures(delayed))
    return _Verdict("other") if fine else None


def _recipient(fields: dict[str, str]) -> str:
    """Return the address a block is about: the one we sent to, if the MTA kept it."""
    # Original-Recipient is the address as we gave it; Final-Recipient may be an alias's.
    for name in ("original-recipient", "final-recipient"):
        address = fields.get(name, "").rpartition(";")[2].strip().strip("<>").lower()
        if _ADDRESS.fullmatch(address):
            return address
    return ""


def _failure(recipient: str, fields: dict[str, str]) -> Failure:
    diagnostic = _DIAGNOSTIC_TYPE.sub("", fields.get("diagnostic-code", ""))
    return Failure(
        recipient, _status(fields.get("status", "")) or _status(diagnostic), _line(diagnostic)
    )


def _status(text: str) -> str:
    found = _STATUS.search(text)
    return found.group() if found else ""


def _unique_failures(failures: list[Failure]) -> tuple[Failure, ...]:
    first: dict[str, Failure] = {}
    for failure in failures:
        first.setdefault(failure.recipient, failure)
    return tuple(first.values())


def _looks_like_bounce(root: Message, sender: str | None, subject: str) -> bool:
    """Tell whether ROOT looks enough like a bounce to ask flufl.bounce about it."""
    if (sender or "").partition("@")[0] in ("mailer-daemon", "postmaster"):
        return True
    if any(_line(value) in ("", "<>") for value in _values(root, "return-path")):
        return True  # the null sender of RFC 5321 §4.5.5
    return bool(_BOUNCE_SUBJECT.match(subject))


def _flufl_verdict(root: Message, parts: list[tuple[Message, bool]]) -> _Verdict | None:
    """Ask flufl.bounce for the failed recipients of a bounce in a non-standard format."""
    # Exim's X-Failed-Recipients is one of its detectors: no need to read it ourselves.
    try:
        temporary, permanent = all_failures(root)
    except _PARSE_ERRORS:
        # Its detectors index and parse without guards (Yale's raises IndexError for a
        # From without an address): no verdict from it, the other rules still apply.
        return None
    kind: Kind = "bounce" if permanent else "delay"
    found = sorted(address.decode("ascii", "replace").lower() for address in permanent or temporary)
    described = _human_text(parts)
    failures = [_described(a, described) for a in found if _ADDRESS.fullmatch(a)]
    return _Verdict(kind, tuple(failures)) if failures else None


def _described(address: str, text: str) -> Failure:
    """Find what the paragraph of TEXT naming ADDRESS says about it (Exim, qmail style)."""
    named = re.compile(rf"(?<![\w.+-]){re.escape(address)}(?![\w.-])", re.IGNORECASE)
    for paragraph in re.split(r"\n[ \t]*\n", text):
        if named.search(paragraph):
            # "  abuse@host5.example\n    host mx… 550 5.1.1 …" (Exim): what follows says why
            said = re.sub(rf"^\s*<?{re.escape(address)}>?:?", "", paragraph, flags=re.IGNORECASE)
            diagnostic = _line(said, _MAX_HEADER)
            return Failure(address, _status(diagnostic), _line(diagnostic))
    return Failure(address, "", "")


def _returned(parts: list[tuple[Message, bool]]) -> Message | None:
    """Return the headers of the original a bounce returns, as a part or quoted inline."""
    for part, attached in parts:
        content_type = part.get_content_type()
        if attached or content_type not in _RETURNED:
            continue
        payload = part.get_payload()
        if isinstance(payload, list):  # message/rfc822: the parsed original
            return next((inner for inner in payload if isinstance(inner, Message)), None)
        return _header_block(_decode(part))
    marker = _COPY_MARKER.search(text := _body_text(parts))
    return _header_block(text[marker.end() :].lstrip("\n")) if marker else None


def _header_block(text: str) -> Message:
    return Parser(policy=POLICY).parsestr(text[:_MAX_ORIGINAL], headersonly=True)


# Auto-replies

_AUTO_HEADERS = frozenset({"x-autoreply", "x-autorespond", "x-auto-response-suppress"})
_TICKET_HEADERS = frozenset({"x-rt-loop-prevention", "x-otrs-loop"})


def _is_auto_reply(root: Message, subject: str) -> bool:
    """Tell whether ROOT was sent by a machine in answer to a message (RFC 3834)."""
    names = {name.lower() for name in root}
    submitted = _line(_first(root, "auto-submitted")).lower()
    if "auto-submitted" in names and not re.match(r"no\b", submitted):
        return True
    precedence = _line(_first(root, "precedence")).lower()
    if names & _AUTO_HEADERS or precedence in ("auto_reply", "bulk", "junk"):
        return True
    if _AUTO_SUBJECT.match(subject) or "x-autogenerated" in names:
        return True
    # Ticket systems stamp these on every message they send, an agent's own reply
    # included (RT's X-RT-Loop-Prevention): only with an acknowledgement's subject.
    ticket = names & _TICKET_HEADERS or any(
        name.startswith(("x-zendesk-", "x-freshdesk-")) for name in names
    )
    return bool(ticket and _ACK_SUBJECT.search(subject))


# Text


def _body_text(parts: list[tuple[Message, bool]]) -> str:
    """Return the first text/plain part's text, else the first text/html's, as plain text."""
    first_html = None
    for part, attached in parts:
        if attached or part.is_multipart() or _is_attachment(part):
            continue
        content_type = part.get_content_type()
        if content_type == "text/plain":
            return _clean_text(_decode(part))
        if content_type == "text/html" and first_html is None:
            first_html = part
    return _clean_text(_html_text(_decode(first_html))) if first_html is not None else ""


def _human_text(parts: list[tuple[Message, bool]]) -> str:
    """Return a bounce's explanation: its text up to the copy of the returned message."""
    text = _body_text(parts)
    marker = _COPY_MARKER.search(text)
    return text[: marker.start()] if marker else text


def _is_attachment(part: Message) -> bool:
    disposition = _first(part, "content-disposition").partition(";")[0]
    return disposition.strip().lower() == "attachment"


def _decode(part: Message) -> str:
    """Return PART's content decoded from its transfer encoding and charset."""
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        return ""
    try:
        return data.decode(part.get_content_charset() or "utf-8", "replace")
    except (LookupError, ValueError):
        # An unknown label ("x-made-up") or a codec that is no charset ("base64", "idna"
        # refuses "replace"): mail is nearly always ASCII-compatible, so read it as UTF-8.
        return data.decode("utf-8", "replace")


def _clean_text(text: str) -> str:
    """Keep TEXT's lines and tabs, drop every other control character; cut at MAX_TEXT."""
    text = text[: MAX_TEXT * 2].replace("\r\n", "\n").replace("\r", "\n")
    return _SURROGATES.sub("", text.translate(_TEXT_CONTROLS))[:MAX_TEXT]


def _html_text(markup: str) -> str:
    """Turn HTML into plain text crudely: drop tags, scripts and styles; break at blocks."""
    pieces: list[str] = []
    skipping, position = "", 0
    for tag in _TAG.finditer(markup):
        closing, name = tag.group(1), (tag.group(2) or "").lower()
        if not skipping:
            pieces.append(re.sub(r"\s+", " ", html.unescape(markup[position : tag.start()])))
        position = tag.end()
        if skipping:
            skipping = "" if closing and name == skipping else skipping
        elif name in ("script", "style") and not closing:
            skipping = name
        elif name in _BREAKS:
            pieces.append("\n")
    if not skipping:
        pieces.append(re.sub(r"\s+", " ", html.unescape(markup[position:])))
    lines = [line.strip() for line in "".join(pieces).split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
