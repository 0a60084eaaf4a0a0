"""Perceptual fingerprints of one re-check's body: PDQ of a picture, TLSH of a page.

The fetch streams the body into SHA-256 and, beside it, into a bounded `Sample`; the
caller fingerprints the sample and drops it at once. The body is never stored, logged or
returned: only the hashes below leave this module, and no note quotes the body.

    kind      when                                                  fingerprints
    picture   JPEG, PNG, GIF, WebP or BMP magic bytes, or image/*   pdq (quality-gated)
    page      text/html, text/*, application/xhtml+xml, or <html    tlsh, text_sha256
              or <!doctype html near the start
    other     anything else, or an empty body                       none

Pictures are decoded only under `MAX_PIXELS`, read from the header before Pillow decodes
anything, so a decompression bomb (a 30000×30000 PNG of 110 KB) is refused unread.
A picture that is truncated, corrupt, incomplete (longer than the sample) or of low PDQ
quality gets no PDQ and a note saying why; fingerprinting never raises for a bad body.

Pages are compared by their text (of their first `PAGE_CHARS` characters), normalised so
that a dynamic page rendered twice gives the same or a close fingerprint: scripts, styles,
comments and tags go, numbers become 0 (view counters, timestamps), and long tokens mixing
letters and digits go (nonces, CSRF tokens). The charset is the Content-Type's, else UTF-8;
a <meta charset> in the page is not read.
"""

from __future__ import annotations

import hashlib
import html.parser
import io
import re
import struct
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pdqhash
import tlsh
from PIL import Image

SAMPLE_LIMIT = 8 * 1024 * 1024  # bytes of a body kept for fingerprinting
MAX_PIXELS = 40_000_000  # the largest picture decoded (about 120 MB as RGB)
PDQ_SIDE = 512  # pictures shrink to at most this many pixels a side before PDQ
PDQ_MIN_QUALITY = 50  # Meta's HMA drops PDQ hashes of quality 49 or less
SNIFF_BYTES = 1024  # how far into a body <html or <!doctype html is looked for
# Characters of a page normalised: the standard parser spends 1-2 µs on each '<', so a
# hostile page of nothing but '<' costs a few seconds at this size, not a minute at 8 MiB.
PAGE_CHARS = 1024 * 1024

_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_SKIPPED_ELEMENTS = frozenset({"script", "style", "noscript"})
# A run of digits, and digit runs joined by , or . (1,024 views; 3.5): a counter that
# passes a thousand must not change the text.
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
# A run of base64/hex/url-safe characters at least 16 long: a nonce when it mixes
# letters and digits (the text is lowercased first).
_TOKEN = re.compile(r"[0-9a-z+/=_-]{16,}")
_TOKEN_DIGIT = re.compile(r"[0-9]")
_TOKEN_LETTER = re.compile(r"[a-z]")
# What Pillow raises for a body that is not the picture its header claims.
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error)
_BOMB = (Image.DecompressionBombError, Image.DecompressionBombWarning)
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # JPEG frame headers
_BMP_HEADER_SIZES = frozenset({12, 40, 52, 56, 64, 108, 124})


@dataclass(frozen=True)
class Fingerprints:
    """The perceptual fingerprints of one body, and a note on what was or wasn't hashed.

    kind is "picture", "page" or "other". pdq is 64 hex characters (Meta's format);
    pdq_quality is PDQ's own 0-100 score, given even when it was too low to keep the
    hash. tlsh and text_sha256 are of the page's normalised text.
    """

    kind: str
    pdq: str | None = None
    pdq_quality: int | None = None
    tlsh: str | None = None
    text_sha256: str | None = None
    note: str = ""


class Sample:
    """The first `limit` bytes of a body, fed chunk by chunk while it streams.

    Kept in memory only: the caller fingerprints it and drops it right away, so the body
    is never stored, logged or returned. Bytes past the limit are counted, not kept.
    """

    def __init__(self, limit: int = SAMPLE_LIMIT) -> None:
        """Prepare an empty sample that keeps at most LIMIT bytes."""
        if limit <= 0:
            raise ValueError(f"the sample limit must be positive, not {limit}")
        self.limit = limit
        self.seen = 0  # bytes fed, kept or not
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> None:
        """Keep as much of CHUNK as still fits under the limit; count all of it."""
        room = self.limit - len(self._buffer)
        if room > 0:
            self._buffer += chunk[:room]
        self.seen += len(chunk)

    @property
    def overflowed(self) -> bool:
        """Whether more bytes were fed than kept."""
        return self.seen > len(self._buffer)

    @property
    def data(self) -> bytes:
        """The bytes kept (a copy)."""
        return bytes(self._buffer)

    def fingerprints(self, content_type: str | None, *, complete: bool = True) -> Fingerprints:
        """Fingerprint the kept bytes; COMPLETE false when the fetch itself cut the body."""
        return fingerprints(
            bytes(self._buffer), content_type, complete=complete and not self.overflowed
        )

    def costly(self, content_type: str | None) -> bool:
        """Tell whether fingerprinting the kept bytes is CPU work (module `costly`)."""
        return costly(bytes(self._buffer[:SNIFF_BYTES]), content_type)

    def clear(self) -> None:
        """Drop the kept bytes."""
        self._buffer = bytearray()


def fingerprints(sample_bytes: bytes, content_type: str | None, *, complete: bool) -> Fingerprints:
    """Return the fingerprints of a body, or of its start when COMPLETE is false.

    Never raises for what the body holds: a picture that cannot be hashed, or a page too
    short for TLSH, gets no fingerprint and a note saying why.
    """
    kind = _kind_of(sample_bytes, content_type)
    if kind.name == "picture":
        return _picture(sample_bytes, kind.picture_format, complete)
    if kind.name == "page":
        return _page(sample_bytes, kind.charset, complete, markup=kind.markup)
    if not sample_bytes:
        return Fingerprints("other", note="empty body: no fingerprint")
    return Fingerprints("other", note="neither a picture nor a page: no perceptual fingerprint")


def costly(sample_bytes: bytes, content_type: str | None) -> bool:
    """Tell whether fingerprinting this body decodes a picture or a page (CPU work a fetch
    hands to a thread); any other body's answer costs nothing."""
    return _kind_of(sample_bytes, content_type).name != "other"


class _Kind(NamedTuple):
    """What a body is, as `fingerprints` treats it (the table in the module's docstring)."""

    name: str  # picture, page or other
    picture_format: str | None = None
    charset: str | None = None
    markup: bool = False


def _kind_of(sample_bytes: bytes, content_type: str | None) -> _Kind:
    """Return what SAMPLE_BYTES served as CONTENT_TYPE is: a picture, a page or other."""
    if not sample_bytes:
        return _Kind("other")
    media_type, charset = _parse_content_type(content_type)
    picture_format = _picture_format(sample_bytes)
    if picture_format is not None or media_type.startswith("image/"):
        return _Kind("picture", picture_format)
    sniffed_html = _looks_like_html(sample_bytes)
    if media_type in _HTML_TYPES or media_type.startswith("text/") or sniffed_html:
        return _Kind("page", charset=charset, markup=media_type in _HTML_TYPES or sniffed_html)
    return _Kind("other")


# Pictures


def _picture_format(data: bytes) -> str | None:
    """Return Pillow's name of the picture format DATA starts with, if one we decode."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "WEBP"
    # "BM" alone would take any text starting with it: check the DIB header's size too.
    if data.startswith(b"BM") and len(data) >= 18:
        (header_size,) = struct.unpack_from("<I", data, 14)
        if header_size in _BMP_HEADER_SIZES:
            return "BMP"
    return None


def _picture(data: bytes, picture_format: str | None, complete: bool) -> Fingerprints:
    """Return a picture's PDQ, or none and why."""
    if picture_format is None:
        note = "picture in a format not decoded (only JPEG, PNG, GIF, WebP, BMP): no PDQ"
        return Fingerprints("picture", note=note)
    if not complete:
        note = f"picture incomplete ({len(data)} bytes read): no PDQ"
        return Fingerprints("picture", note=note)
    size = _header_size(data, picture_format)
    if size is not None and size[0] * size[1] > MAX_PIXELS:
        return _too_large(size)
    try:
        return _pdq(data, picture_format)
    except _BOMB:
        # Pillow's own limit (Image.MAX_IMAGE_PIXELS), met when our header read found no
        # size: its DecompressionBombError, or its warning where warnings are errors.
        return Fingerprints("picture", note="picture too large to decode: no PDQ")
    except _DECODE_ERRORS as error:
        note = f"picture truncated or corrupt ({type(error).__name__}): no PDQ"
        return Fingerprints("picture", note=note)


def _pdq(data: bytes, picture_format: str) -> Fingerprints:
    """Decode a picture under MAX_PIXELS, shrink it and hash it with PDQ."""
    # Image.open reads the header only; nothing is decoded before convert() below.
    with Image.open(io.BytesIO(data), formats=(picture_format,)) as image:
        if image.size[0] * image.size[1] > MAX_PIXELS:
            return _too_large(image.size)
        if picture_format == "JPEG":
            image.draft("RGB", (PDQ_SIDE, PDQ_SIDE))  # libjpeg decodes at 1/2, 1/4 or 1/8
        rgb = image.convert("RGB")
    rgb.thumbnail((PDQ_SIDE, PDQ_SIDE))
    pixels = np.array(rgb, dtype=np.uint8)  # a writable copy: pdqhash wants a buffer
    vector, quality = pdqhash.compute(pixels)
    # pdqhash gives the bits most significant first, as Meta's hex prints them.
    pdq = np.packbits(np.asarray(vector, dtype=np.uint8)).tobytes().hex()
    quality = int(quality)
    if quality < PDQ_MIN_QUALITY:
        note = f"picture quality {quality} below {PDQ_MIN_QUALITY}: no PDQ"
        return Fingerprints("picture", pdq_quality=quality, note=note)
    return Fingerprints("picture", pdq=pdq, pdq_quality=quality, note="picture: PDQ")


def _too_large(size: tuple[int, int]) -> Fingerprints:
    """Say a picture of SIZE was not decoded."""
    note = f"picture too large to decode ({size[0]}×{size[1]}): no PDQ"
    return Fingerprints("picture", note=note)


def _header_size(data: bytes, picture_format: str) -> tuple[int, int] | None:
    """Return the width and height a picture's header declares, or None if unreadable.

    Read here, before Pillow sees the bytes, so a picture over MAX_PIXELS is refused
    without Pillow's decompression-bomb warning, whose filter is process-wide state.
    """
    try:
        if picture_format == "PNG" and data[12:16] == b"IHDR":
            width, height = struct.unpack_from(">II", data, 16)
            return width, height
        if picture_format == "GIF":
            width, height = struct.unpack_from("<HH", data, 6)
            return width, height
        if picture_format == "BMP":
            return _bmp_size(data)
        if picture_format == "WEBP":
            return _webp_size(data)
        if picture_format == "JPEG":
            return _jpeg_size(data)
    except struct.error:  # the header is cut short
        return None
    return None


def _bmp_size(data: bytes) -> tuple[int, int]:
    """Return a BMP's size from its DIB header (OS/2 core or Windows info header)."""
    (header_size,) = struct.unpack_from("<I", data, 14)
    if header_size == 12:
        width, height = struct.unpack_from("<HH", data, 18)
        return width, height
    width, height = struct.unpack_from("<ii", data, 18)
    return abs(width), abs(height)  # a negative height means top-down rows


def _webp_size(data: bytes) -> tuple[int, int] | None:
    """Return a WebP's canvas size from its first chunk (VP8X, VP8L or VP8)."""
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if chunk == b"VP8L" and data[20:21] == b"\x2f":
        (bits,) = struct.unpack_from("<I", data, 21)
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack_from("<HH", data, 26)
        return width & 0x3FFF, height & 0x3FFF
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Return a JPEG's size from its first frame header, walking the markers to it."""
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # a fill byte
            at += 1
        elif marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            at += 2
        elif marker in _SOF_MARKERS:
            height, width = struct.unpack_from(">HH", data, at + 5)
            return width, height
        elif marker in (0xD9, 0xDA):  # the end, or the scan, before any frame header
            return None
        else:
            (length,) = struct.unpack_from(">H", data, at + 2)
            at += 2 + length
    return None


# Pages


def _parse_content_type(content_type: str | None) -> tuple[str, str | None]:
    """Return the lowercased media type and the charset parameter of a Content-Type."""
    if not content_type:
        return "", None
    media_type, *parameters = content_type.split(";")
    charset = None
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip("\"'") or None
    return media_type.strip().lower(), charset


def _looks_like_html(data: bytes) -> bool:
    """Whether <html or <!doctype html appears near the start of DATA."""
    head = data[:SNIFF_BYTES].lower()
    return b"<html" in head or b"<!doctype html" in head


def _page(data: bytes, charset: str | None, complete: bool, *, markup: bool) -> Fingerprints:
    """Return a page's TLSH and SHA-256 of its normalised text, or none and why."""
    notes: list[str] = []
    try:
        text = data.decode(charset or "utf-8", errors="replace")
    except LookupError:  # no such charset, or not a text encoding (rot13, hex)
        text = data.decode("utf-8", errors="replace")
        notes.append("unknown charset, read as UTF-8")
    if not complete:
        notes.append(f"page cut at {len(data)} bytes: fingerprints of its start")
    if len(text) > PAGE_CHARS:
        text = text[:PAGE_CHARS]
        notes.append(f"page over {PAGE_CHARS} characters: fingerprints of its start")
    normalised = normalise_page(text) if markup else normalise_text(text)
    if not normalised:
        return Fingerprints("page", note="; ".join(["page has no text: no fingerprint", *notes]))
    encoded = normalised.encode("utf-8")
    text_sha256 = hashlib.sha256(encoded).hexdigest()
    page_tlsh: str | None = tlsh.hash(encoded)
    if page_tlsh in ("", "TNULL"):  # under 50 bytes, or too little variety
        page_tlsh = None
        summary = f"page text too short or uniform for TLSH ({len(encoded)} bytes): SHA-256 only"
    else:
        summary = "page: TLSH and SHA-256 of the normalised text"
    return Fingerprints(
        "page", tlsh=page_tlsh, text_sha256=text_sha256, note="; ".join([summary, *notes])
    )


# The standard library's parser is enough to pull text out of tags: the text only feeds a
# fingerprint, so it need not render as a browser would, and no extra parsing dependency
# (lxml, html5lib, BeautifulSoup) is added to the fetch path for malformed, hostile input.
class _PageText(html.parser.HTMLParser):
    """Collect a page's text: tags become spaces; scripts, styles, comments are dropped."""

    def __init__(self) -> None:
        """Start with no text; entities are unescaped in the text handed to handle_data."""
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0  # how many script, style or noscript elements we are inside

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Turn a tag into a space; start skipping inside script, style and noscript."""
        if tag in _SKIPPED_ELEMENTS:
            self._skipping += 1
        self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Turn a self-closing tag into a space (a self-closing script holds nothing)."""
        self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        """Turn a tag into a space; stop skipping at the end of a skipped element."""
        if tag in _SKIPPED_ELEMENTS and self._skipping:
            self._skipping -= 1
        self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        """Keep text outside skipped elements (comments never reach here)."""
        if not self._skipping:
            self.parts.append(data)

    def parse_marked_section(self, i: int, report: bool = True) -> int:
        """Skip <![...]> to the next > as browsers do (a bogus comment), never raising.

        The standard library's version raises AssertionError on unknown keywords.
        """
        end = self.rawdata.find(">", i + 3)
        return -1 if end < 0 else end + 1


def normalise_page(markup: str) -> str:
    """Return the text of an HTML page, normalised (see normalise_text), without markup."""
    parser = _PageText()
    # A '>' after the end closes in one step whatever the page leaves open: without it,
    # the parser's close() rescans the rest of the page for each '<' of a run that never
    # closes ('<?<?<?...': quadratic, a minute and a half for 1 MiB).
    parser.feed(markup + ">")
    parser.close()
    return normalise_text("".join(parser.parts).removesuffix(">"))


def normalise_text(text: str) -> str:
    """Lowercase; drop nonce-like tokens; every number becomes 0; one space apart."""
    text = _TOKEN.sub(_drop_nonce, text.lower())
    text = _NUMBER.sub("0", text)
    return " ".join(text.split())


def _drop_nonce(match: re.Match[str]) -> str:
    """Replace a token mixing letters and digits (a nonce, a hash) by a space."""
    token = match.group()
    if _TOKEN_DIGIT.search(token) and _TOKEN_LETTER.search(token):
        return " "
    return token
