"""Render notices from templates and build the e-mail that carries them.

One notice is three templates found by name: `{language}/{kind}.subject.txt`,
`{language}/{kind}.txt` and `{language}/{kind}.html`; a language without one of them
falls back to `en/`. The operator's folder (TAKEDOWN_TEMPLATES) is searched before the
shipped `templates/`, so one file can be overridden without copying the rest.

URLs are shown as text, never as links: exact in the plain part so an abuse desk can copy
them, escaped inside <code> with no href in the HTML part. Mail clients may still turn
plain text that looks like a URL into a link; nothing in the message invites it.
"""

from __future__ import annotations

import importlib.resources
import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from email.encoders import encode_base64
from email.headerregistry import Address
from email.message import EmailMessage
from email.mime.application import MIMEApplication
from email.utils import format_datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from workflows.core.emails import is_plain_address
from workflows.errors import ConfigError
from workflows.kinds import NoticeKind

KINDS = tuple(kind.value for kind in NoticeKind)
FALLBACK_LANGUAGE = "en"

# Where the notice goes decides its language. Multilingual countries get the language of
# the majority of their hosting industry when we ship it: CH → de (about 60 % German
# speaking), LU → fr (the language of its administration and law). BE → en: most of its
# hosting is in Flanders, and a French notice to a Flemish desk reads worse than English.
_LANGUAGE_BY_COUNTRY = {
    **dict.fromkeys(("DE", "AT", "LI", "CH"), "de"),
    **dict.fromkeys(("FR", "MC", "LU"), "fr"),
    # French overseas departments and collectivities have country codes of their own.
    **dict.fromkeys(("GP", "MQ", "GF", "RE", "YT", "PM", "BL", "MF", "NC", "PF", "WF"), "fr"),
}
_NAME = re.compile(r"^[a-z]{2,8}$")
_MSG_ID = re.compile(r"^<[\x21-\x3b\x3d\x3f-\x7e]+@[\x21-\x3b\x3d\x3f-\x7e]+>$")  # no <, >
_TOKEN = re.compile(r"^[A-Za-z0-9._-]+$")
_DOMAIN = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")
_UNSAFE = ("Cc", "Cf", "Zl", "Zp")  # controls, invisible formatting, line/paragraph breaks


@dataclass(frozen=True)
class NoticeItem:
    """One URL in a notice."""

    case_id: int
    reference: str  # the case reference shown to recipients, e.g. "TD-000042"
    url: str  # normalised by workflows.core.urls: no space or control character
    host: str
    addresses: tuple[str, ...]
    category: str | None  # e.g. "csam"
    reported_at: datetime  # aware; when the analyst confirmed it
    first_notified_at: datetime | None
    content_sha256: str | None


@dataclass(frozen=True)
class NoticeRequest:
    """Everything one notice to one set of recipients needs."""

    kind: str  # a NoticeKind
    recipients: tuple[str, ...]
    language: str  # "en" | "de" | "fr"; see language_for_country()
    items: tuple[NoticeItem, ...]
    sender: str  # From address (TAKEDOWN_SENDER)
    sender_name: str  # the hotline's name
    notice_ref: str  # e.g. "N-000017"
    message_id: str  # stored before sending, so a resend has the same one
    in_reply_to: str | None  # chasers and escalations: the first notice's Message-ID
    references: tuple[str, ...]
    sent_at: datetime  # aware; the Date header
    network: str | None = None  # e.g. "EXAMPLEHOST-NET AS205012 185.199.108.0/22"
    country: str | None = None


@dataclass(frozen=True)
class RenderedNotice:
    """A notice's subject (one line), plain text and HTML."""

    subject: str
    text: str
    html: str


def language_for_country(country: str | None) -> str:
    """Return the language of notices to a host in COUNTRY (ISO 3166 alpha-2)."""
    return _LANGUAGE_BY_COUNTRY.get((country or "").strip().upper(), FALLBACK_LANGUAGE)


def shipped_templates() -> Path:
    """Return the folder of the templates shipped with takedown."""
    # The wheel's copy first: from site-packages, the folder above the package could be some
    # other distribution's top-level folder. A source checkout has no workflows/templates.
    packaged = importlib.resources.files("workflows") / "templates"
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parents[2] / "templates"
    if (checkout / "en").is_dir():  # a source checkout or an editable install
        return checkout
    raise ConfigError("the shipped notice templates are missing: reinstall takedown")


def template_environment(override: Path | None = None) -> jinja2.Environment:
    """Return the Jinja environment: OVERRIDE's templates first, then the shipped ones."""
    folders = [shipped_templates()]
    if override is not None:
        if not override.is_dir():
            raise ConfigError(f"TAKEDOWN_TEMPLATES: {override} is not a folder")
        folders.insert(0, override)
    # Sandboxed: operators edit these files; a template must not reach Python internals.
    env = SandboxedEnvironment(
        loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader(f) for f in folders]),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(["html"]),
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["iso"] = iso_utc
    return env


def iso_utc(value: datetime) -> str:
    """Format an aware datetime as ISO 8601 in UTC, to the second."""
    if value.tzinfo is None:
        raise ValueError("a naive datetime has no place in a notice")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def render_notice(request: NoticeRequest, env: jinja2.Environment) -> RenderedNotice:
    """Render REQUEST's subject, text and HTML with the templates of its kind and language."""
    _check_request(request)
    context = notice_context(request)
    subject = one_line(_render(env, request, "subject.txt", context))
    html = _render(env, request, "html", context)
    _check_unlinked(request, html)
    return RenderedNotice(subject, _tidy(_render(env, request, "txt", context)), html)


class _Attributes(HTMLParser):
    """Collect the attribute values of an HTML document, entities decoded."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.values: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.values += [value.lower() for _, value in attrs if value]


def _check_unlinked(request: NoticeRequest, html: str) -> None:
    """Refuse HTML (an operator's template) that puts a reported host in a link or image."""
    # A link invites a click on abuse material; an <img src> makes mail clients fetch it.
    found = _Attributes()
    found.feed(html)
    found.close()
    hosts = {item.host.lower() for item in request.items}
    if any(host in value for value in found.values for host in hosts):
        raise ConfigError(
            f"notice template {request.language}/{request.kind}.html: a reported URL is in "
            "a link or attribute (href, src, ...): show URLs as text only"
        )


def notice_context(request: NoticeRequest) -> dict[str, Any]:
    """Return the variables every notice template sees."""
    items = request.items
    notified = [i.first_notified_at for i in items if i.first_notified_at is not None]
    return {
        "kind": NoticeKind(request.kind),
        "language": request.language,
        "items": items,
        "count": len(items),
        "references": tuple(dict.fromkeys(i.reference for i in items)),
        "categories": tuple(dict.fromkeys(i.category for i in items)),
        "sender_name": request.sender_name,
        "sender": request.sender,
        "notice_ref": request.notice_ref,
        "network": request.network,
        "country": request.country,
        # The earliest: for one URL that is the first item's, as the caller expects.
        "first_notified_at": min(notified) if notified else None,
        "sent_at": request.sent_at,
        # A reappeared notice cites the notices it follows up (threaded to them).
        "earlier_notices": request.references if request.kind == NoticeKind.REAPPEARED else (),
    }


def one_line(text: str) -> str:
    """Collapse TEXT to one line: every control or line-breaking character becomes a space."""
    cleaned = "".join(" " if unicodedata.category(c) in _UNSAFE else c for c in text)
    return " ".join(cleaned.split())


def _tidy(text: str) -> str:
    """Drop the blank lines templates leave at the start, end and in runs of more than one."""
    return re.sub(r"\n[ \t]*(\n[ \t]*)+\n", "\n\n", text).strip("\n") + "\n"


def _check_request(request: NoticeRequest) -> None:
    if request.kind not in KINDS:
        raise ValueError(f"unknown notice kind {request.kind!r}; expected one of {KINDS}")
    if not _NAME.match(request.language):
        raise ValueError(f"bad notice language {request.language!r}")
    if not request.items:
        raise ValueError("a notice needs at least one URL")
    times = [request.sent_at, *(i.reported_at for i in request.items)]
    times += [i.first_notified_at for i in request.items if i.first_notified_at is not None]
    if any(t.tzinfo is None for t in times):
        raise ValueError("notice times must be timezone-aware")


def _render(env: jinja2.Environment, request: NoticeRequest, part: str, context: Any) -> str:
    names = [
        f"{request.language}/{request.kind}.{part}",
        f"{FALLBACK_LANGUAGE}/{request.kind}.{part}",
    ]
    try:
        template = env.select_template(list(dict.fromkeys(names)))
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"notice template {exc.name} line {exc.lineno}: {exc.message}") from exc
    except jinja2.TemplateNotFound as exc:
        raise ConfigError(f"notice template {names[0]} not found ({exc.message})") from exc
    try:
        return template.render(context)
    except Exception as exc:  # an operator's template can fail in any way: say which one
        raise ConfigError(f"notice template {template.name}: {exc}") from exc


def make_message_id(notice_id: int, domain: str, token: str) -> str:
    """Return the stable Message-ID of notice NOTICE_ID (RFC 5322 §3.6.4)."""
    if not _TOKEN.match(token) or not _DOMAIN.match(domain):
        raise ValueError(f"bad Message-ID token {token!r} or domain {domain!r}")
    return f"<takedown.notice.{notice_id}.{token}@{domain}>"


def build_message(
    request: NoticeRequest, rendered: RenderedNotice, xarf_reports: list[dict[str, Any]]
) -> EmailMessage:
    """Build the e-mail for REQUEST: text and HTML alternatives and one XARF report per URL."""
    if not request.recipients:
        raise ValueError("a notice needs at least one recipient")
    if len(xarf_reports) != len(request.items):
        raise ValueError("build_message needs one XARF report per URL")
    message = EmailMessage()
    _set_headers(message, request, rendered)
    # RFC 2046 §5.1.4: the parts are alternatives, plainest first. Quoted-printable keeps
    # the body 7-bit, so no relay needs 8BITMIME (RFC 6152).
    message.set_content(rendered.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(rendered.html, subtype="html", charset="utf-8", cte="quoted-printable")
    message.make_mixed()  # the alternatives first, then the reports (RFC 2046 §5.1.3)
    for item, report in zip(request.items, xarf_reports, strict=True):
        # Built with the email package's plain (compat32) classes, whose headers are kept
        # as written: `add_attachment` parses every header of every part into objects that
        # the generator folds again, 70 ms of a notice of 100 URLs, most of the cost of
        # building and sending it (benchmarks, workload 3). Same bytes but the boundary.
        part = MIMEApplication(_json_bytes(report), "json", encode_base64)
        del part["MIME-Version"]  # a body part needs none (RFC 2045 §4)
        filename = f"xarf-{re.sub(r'[^A-Za-z0-9._-]', '_', item.reference)}.json"
        part.add_header("Content-Disposition", "attachment", filename=filename)
        message.attach(part)  # type: ignore[arg-type]  # any Message is a part
    return message


def _set_headers(message: EmailMessage, request: NoticeRequest, rendered: RenderedNotice) -> None:
    sender = _address("sender", request.sender)
    message["From"] = Address(
        display_name=_text("sender_name", request.sender_name), addr_spec=sender
    )
    message["To"] = [Address(addr_spec=_address("recipient", r)) for r in request.recipients]
    message["Subject"] = _text("subject", rendered.subject)
    message["Date"] = format_datetime(request.sent_at.astimezone(UTC))
    message["Message-ID"] = _msg_id("message_id", request.message_id)
    references = [_msg_id("references", r) for r in request.references]
    if request.in_reply_to is not None:
        message["In-Reply-To"] = _msg_id("in_reply_to", request.in_reply_to)
        # RFC 5322 §3.6.4: References ends with the message replied to.
        if request.in_reply_to not in references:
            references.append(request.in_reply_to)
    if references:
        message["References"] = " ".join(references)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834 §5: no auto-replies, please
    # Exchange: no out-of-office or auto-replies; bounces (NDR) still come back to us.
    message["X-Auto-Response-Suppress"] = "OOF, AutoReply"


def _text(name: str, value: str) -> str:
    """Refuse a header value with a line break or control character (RFC 5322 §2.2)."""
    if any(unicodedata.category(c) in _UNSAFE for c in value) or not value.strip():
        raise ValueError(f"{name}: empty, or a line break or control character in a header")
    return value


def _address(name: str, value: str) -> str:
    if not is_plain_address(value):
        raise ValueError(f"{name}: {value!r} is not a plain e-mail address")
    return value


def _msg_id(name: str, value: str) -> str:
    if not _MSG_ID.match(value):
        raise ValueError(f"{name}: {value!r} is not a Message-ID like <id@domain>")
    return value


def _json_bytes(report: dict[str, Any]) -> bytes:
    return json.dumps(report, indent=2, ensure_ascii=False).encode("utf-8")
