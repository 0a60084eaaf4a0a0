"""Fingerprints of a re-checked body: PDQ of pictures, TLSH of pages, and their distances.

Every picture here is drawn on the spot by Pillow (random shapes from a seed) and every
page is made of seeded nonsense words: no real material of any kind.
"""

from __future__ import annotations

import hashlib
import io
import random
import struct
import time
import zlib

import pytest
from PIL import Image, ImageDraw, JpegImagePlugin

from workflows.core.similarity import PDQ_MATCH, TLSH_MATCH, pdq_distance, tlsh_distance
from workflows.recheck import fingerprint
from workflows.recheck.fingerprint import (
    MAX_PIXELS,
    PAGE_CHARS,
    PDQ_MIN_QUALITY,
    Fingerprints,
    Sample,
    fingerprints,
    normalise_page,
)

PAIRS = 20


# Pictures: random shapes from a seed


def shapes(seed: int, size: tuple[int, int] = (480, 360)) -> Image.Image:
    """Draw a picture of random ellipses, rectangles, polygons and lines from SEED."""
    rng = random.Random(seed)
    width, height = size

    def colour() -> tuple[int, int, int]:
        return rng.randrange(256), rng.randrange(256), rng.randrange(256)

    def point() -> tuple[int, int]:
        return rng.randrange(width), rng.randrange(height)

    picture = Image.new("RGB", size, colour())
    draw = ImageDraw.Draw(picture)
    for _ in range(rng.randint(12, 24)):
        kind = rng.choice(("ellipse", "rectangle", "polygon", "line"))
        (x0, y0), (x1, y1) = point(), point()
        box = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        if kind == "ellipse":
            draw.ellipse(box, fill=colour())
        elif kind == "rectangle":
            draw.rectangle(box, fill=colour())
        elif kind == "polygon":
            draw.polygon([point() for _ in range(rng.randint(3, 6))], fill=colour())
        else:
            draw.line([point(), point()], fill=colour(), width=rng.randint(2, 12))
    return picture


def encode(picture: Image.Image, picture_format: str, **options: object) -> bytes:
    """Return PICTURE saved in PICTURE_FORMAT."""
    buffer = io.BytesIO()
    picture.save(buffer, picture_format, **options)
    return buffer.getvalue()


def reencoded(picture: Image.Image) -> bytes:
    """Return PICTURE resized to 90 % and saved as a JPEG of quality 55."""
    smaller = picture.resize((picture.width * 9 // 10, picture.height * 9 // 10))
    return encode(smaller, "JPEG", quality=55)


def pdq_of(body: bytes, content_type: str | None = "image/png") -> str:
    """Return the PDQ of BODY, failing the test if it has none."""
    result = fingerprints(body, content_type, complete=True)
    assert result.kind == "picture"
    assert result.pdq is not None, result.note
    assert len(result.pdq) == 64
    return result.pdq


def same_picture_distances() -> list[int]:
    """PDQ distances between pictures and their re-encoded, resized copies."""
    distances = []
    for seed in range(PAIRS):
        picture = shapes(seed)
        original = pdq_of(encode(picture, "PNG"))
        copy = pdq_of(reencoded(picture), "image/jpeg")
        distances.append(pdq_distance(original, copy))
    return distances


def different_picture_distances() -> list[int]:
    """PDQ distances between pairs of different pictures."""
    return [
        pdq_distance(
            pdq_of(encode(shapes(1000 + 2 * pair), "PNG")),
            pdq_of(encode(shapes(1001 + 2 * pair), "PNG")),
        )
        for pair in range(PAIRS)
    ]


def test_the_same_picture_re_encoded_and_resized_is_within_pdq_match() -> None:
    distances = same_picture_distances()
    assert max(distances) <= PDQ_MATCH, distances


def test_different_pictures_are_beyond_pdq_match() -> None:
    distances = different_picture_distances()
    assert min(distances) > PDQ_MATCH, distances


def test_the_hex_is_the_hash_most_significant_bit_first() -> None:
    a = "f" + "0" * 63
    assert pdq_distance(a, "0" * 64) == 4
    assert pdq_distance(a.upper(), a) == 0
    assert pdq_distance("0" * 64, "f" * 64) == 256


@pytest.mark.parametrize("digest", ["", "0" * 63, "0" * 65, "g" * 64, " " + "0" * 63])
def test_pdq_distance_refuses_what_is_no_pdq_hash(digest: str) -> None:
    with pytest.raises(ValueError, match="not a PDQ hash"):
        pdq_distance(digest, "0" * 64)


@pytest.mark.parametrize(
    ("picture_format", "mode", "options"),
    [
        pytest.param("JPEG", "RGB", {"quality": 80}, id="jpeg"),
        pytest.param("JPEG", "RGB", {"quality": 80, "progressive": True}, id="jpeg-progressive"),
        pytest.param("PNG", "RGB", {}, id="png"),
        pytest.param("PNG", "RGBA", {}, id="png-alpha"),
        pytest.param("GIF", "P", {}, id="gif"),
        pytest.param("WEBP", "RGB", {"quality": 80}, id="webp-lossy"),
        pytest.param("WEBP", "RGB", {"lossless": True}, id="webp-lossless"),
        pytest.param("WEBP", "RGBA", {"quality": 80}, id="webp-extended"),
        pytest.param("BMP", "RGB", {}, id="bmp"),
    ],
)
def test_each_picture_format_is_recognised_sized_and_hashed(
    picture_format: str, mode: str, options: dict[str, object]
) -> None:
    picture = shapes(7, (481, 359))
    converted = picture.quantize() if mode == "P" else picture.convert(mode)
    body = encode(converted, picture_format, **options)
    # The header read before Pillow decodes agrees with Pillow.
    assert fingerprint._header_size(body, picture_format) == (481, 359)
    # Recognised by magic bytes, whatever the server calls it; and close to the original.
    result = fingerprints(body, "application/octet-stream", complete=True)
    assert result.kind == "picture"
    assert result.pdq is not None, result.note
    assert result.pdq_quality is not None and result.pdq_quality >= PDQ_MIN_QUALITY
    assert pdq_distance(result.pdq, pdq_of(encode(picture, "PNG"))) <= PDQ_MATCH


def test_a_large_jpeg_is_decoded_at_a_reduced_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    body = encode(shapes(8, (2400, 1800)), "JPEG", quality=85)
    drafts: list[tuple[str | None, tuple[int, int] | None]] = []
    decoded: list[tuple[int, int]] = []
    draft = JpegImagePlugin.JpegImageFile.draft

    def spy(
        self: JpegImagePlugin.JpegImageFile, mode: str | None, size: tuple[int, int] | None
    ) -> tuple[str, tuple[int, int, float, float]] | None:
        drafts.append((mode, size))
        scaled = draft(self, mode, size)
        decoded.append(self.size)
        return scaled

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    assert fingerprints(body, "image/jpeg", complete=True).pdq is not None
    assert drafts == [("RGB", (512, 512))]
    assert decoded == [(1200, 900)]  # the smallest libjpeg scale keeping both sides >= 512


def png_bomb(width: int, height: int) -> bytes:
    """Return a valid 1-bit PNG of WIDTH×HEIGHT black pixels (deflate shrinks 1032:1 at most)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload)
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1 bit, greyscale
    row = bytes(1 + (width + 7) // 8)  # filter byte 0, then the row's packed bits
    compressor = zlib.compressobj(9)
    rows_at_once = max(1, 4_000_000 // len(row))
    parts = [
        compressor.compress(row * min(rows_at_once, height - done))
        for done in range(0, height, rows_at_once)
    ]
    data = b"".join(parts) + compressor.flush()
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


def no_pillow(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any use of Pillow by the fingerprinter fail the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        pytest.fail("Pillow was asked to open the picture")

    monkeypatch.setattr(Image, "open", refuse)


def test_a_decompression_bomb_is_refused_before_pillow_sees_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bomb = png_bomb(30000, 30000)
    assert len(bomb) < 120_000  # 900 million pixels, 2.7 GB as RGB, in 110 KB
    no_pillow(monkeypatch)
    result = fingerprints(bomb, "image/png", complete=True)
    assert result == Fingerprints(
        "picture", note="picture too large to decode (30000×30000): no PDQ"
    )


@pytest.mark.parametrize(
    ("width", "height", "note"),
    [
        # Over MAX_PIXELS, under Pillow's limit: refused after the header, before decoding.
        pytest.param(8000, 6000, "picture too large to decode (8000×6000): no PDQ", id="ours"),
        # Over Pillow's MAX_IMAGE_PIXELS: its warning (an error under this test suite).
        pytest.param(10000, 10000, "picture too large to decode: no PDQ", id="pillow-warning"),
        # Over twice Pillow's limit: its DecompressionBombError.
        pytest.param(30000, 30000, "picture too large to decode: no PDQ", id="pillow-error"),
    ],
)
def test_pillows_own_guards_hold_when_the_header_read_finds_no_size(
    monkeypatch: pytest.MonkeyPatch, width: int, height: int, note: str
) -> None:
    assert width * height > MAX_PIXELS
    monkeypatch.setattr(fingerprint, "_header_size", lambda data, picture_format: None)
    loads: list[object] = []
    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", lambda self: loads.append(self))
    result = fingerprints(png_bomb(width, height), "image/png", complete=True)
    assert result == Fingerprints("picture", note=note)
    assert loads == []


def test_a_truncated_jpeg_gives_no_pdq_and_no_exception() -> None:
    body = encode(shapes(3), "JPEG", quality=90)
    result = fingerprints(body[: len(body) // 2], "image/jpeg", complete=True)
    assert result == Fingerprints("picture", note="picture truncated or corrupt (OSError): no PDQ")


def test_an_incomplete_body_gives_no_pdq() -> None:
    body = encode(shapes(3), "PNG")
    result = fingerprints(body, "image/png", complete=False)
    assert result == Fingerprints(
        "picture", note=f"picture incomplete ({len(body)} bytes read): no PDQ"
    )


def test_a_flat_picture_is_below_the_quality_gate() -> None:
    body = encode(Image.new("RGB", (480, 360), (40, 90, 200)), "PNG")
    result = fingerprints(body, "image/png", complete=True)
    assert result == Fingerprints(
        "picture", pdq_quality=0, note=f"picture quality 0 below {PDQ_MIN_QUALITY}: no PDQ"
    )


def test_an_image_type_in_a_format_not_decoded_gets_a_note() -> None:
    result = fingerprints(
        b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml", complete=True
    )
    assert result.kind == "picture"
    assert result.pdq is None
    assert "format not decoded" in result.note


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(encode(shapes(4, (64, 48)), "JPEG"), id="jpeg"),
        pytest.param(encode(shapes(4, (64, 48)), "PNG"), id="png"),
        pytest.param(encode(shapes(4, (64, 48)).quantize(), "GIF"), id="gif"),
        pytest.param(encode(shapes(4, (64, 48)), "WEBP"), id="webp"),
        pytest.param(encode(shapes(4, (64, 48)), "BMP"), id="bmp"),
    ],
)
def test_corrupt_pictures_never_raise(body: bytes) -> None:
    rng = random.Random(len(body))
    for _ in range(60):
        mutated = bytearray(body)
        for _ in range(rng.randint(1, 8)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        cut = rng.choice((len(mutated), rng.randrange(1, len(mutated))))
        result = fingerprints(bytes(mutated[:cut]), "image/png", complete=True)
        assert result.kind == "picture"
        assert (result.pdq is None) == (result.note != "picture: PDQ")


# Pages: one template, seeded words


# Letters drawn with their English frequencies: nonsense words with the letter statistics
# of real text, which is what TLSH sees.
LETTERS = "etaoinshrdlcumwfgypbvkjxqz"
FREQUENCIES = (
    *(127, 91, 82, 75, 70, 67, 63, 61, 60, 43, 40, 28, 28, 24, 24, 22, 20, 20, 19, 15),
    *(10, 8, 2, 2, 1, 1),
)
ADS = (
    "Cheap flights to anywhere this weekend only, book now and save on every ticket",
    "Fresh coffee beans delivered to your door every morning, first bag free",
    "Learn a new language in minutes a day with our award winning app",
    "The best mattress you will ever sleep on, one hundred nights trial",
    "Build your own website in an afternoon, no code needed, start free",
)
TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title} &ndash; PicShare</title>
<style>body {{ font-family: sans-serif }} .ad {{ border: 1px solid #ccc }}</style>
<script nonce="{nonce}">window.__csrf = "{token}"; window.__t = {epoch};</script>
</head><body>
<!-- rendered {stamp} by web-{server} in {millis} ms -->
<header><nav><a href="/">Home</a> <a href="/popular">Popular</a>
<a href="/upload">Upload</a> <a href="/login">Log in</a></nav></header>
<main>{main}</main>
<aside class="ad"><p>Sponsored</p><p>{ad}</p><noscript>Enable scripts for ads</noscript></aside>
<form><input type="hidden" name="csrf" value="{token}"></form>
<p class="small">Request id {nonce} &middot; served {stamp}</p>
<footer>&copy; 2024 PicShare &middot; <a href="/terms">Terms</a> &middot;
<a href="/privacy">Privacy</a> &middot; <a href="/report">Report abuse</a></footer>
</body></html>
"""


def words(rng: random.Random, low: int, high: int) -> str:
    """Return between LOW and HIGH nonsense words from RNG."""
    count = rng.randint(low, high)
    return " ".join(
        "".join(rng.choices(LETTERS, FREQUENCIES, k=rng.randint(2, 9))) for _ in range(count)
    )


def gallery_main(seed: int) -> str:
    """Return the main part of a gallery page of seeded words: the content itself."""
    rng = random.Random(seed)
    title = words(rng, 3, 5)
    figures = "".join(
        f'<figure><img src="/i/{rng.getrandbits(64):016x}.jpg" alt="{words(rng, 2, 4)}">'
        f"<figcaption>{words(rng, 4, 8)}</figcaption></figure>\n"
        for _ in range(24)
    )
    comments = "".join(
        f"<li><b>{words(rng, 1, 1)}</b>: {words(rng, 8, 15)}</li>\n" for _ in range(8)
    )
    return (
        f"<h1>{title}</h1><p>Uploaded by {words(rng, 1, 1)} &middot; {{views}} views</p>\n"
        f'<div class="gallery">{figures}</div>\n<p>Tags: {words(rng, 8, 10)}</p>\n'
        f"<ul>{comments}</ul>"
    )


def render(main: str, visit: int) -> bytes:
    """Render MAIN on the site's template as visit number VISIT sees it."""
    rng = random.Random(f"visit {visit}")
    day = f"2024-{rng.randint(1, 12):02}-{rng.randint(1, 28):02}"
    stamp = f"{day} {rng.randint(0, 23):02}:{rng.randint(0, 59):02}"
    page = TEMPLATE.format(
        title=main.partition("<h1>")[2].partition("</h1>")[0] or "Not found",
        nonce=f"{rng.getrandbits(128):032x}",
        token=f"{rng.getrandbits(96):024x}",
        epoch=rng.randint(1_700_000_000, 1_800_000_000),
        stamp=stamp,
        server=rng.randint(1, 40),
        millis=rng.randint(5, 900),
        main=main.replace("{views}", f"{rng.randint(10, 99_999):,}"),
        ad=ADS[visit % len(ADS)],
    )
    return page.encode("utf-8")


NOT_FOUND = (
    "<h1>Page not found</h1><p>The page you asked for was removed or never existed.</p>"
    '<p><a href="/">Back to the front page</a></p>'
)


def tlsh_of(body: bytes, content_type: str | None = "text/html; charset=utf-8") -> str:
    """Return the TLSH of page BODY, failing the test if it has none."""
    result = fingerprints(body, content_type, complete=True)
    assert result.kind == "page"
    assert result.tlsh is not None, result.note
    return result.tlsh


def same_page_distances() -> list[int]:
    """TLSH distances between a gallery rendered twice (other counter, nonce, time, ad)."""
    return [
        tlsh_distance(
            tlsh_of(render(gallery_main(seed), 2 * seed)),
            tlsh_of(render(gallery_main(seed), 2 * seed + 1)),
        )
        for seed in range(PAIRS)
    ]


def different_page_distances() -> list[int]:
    """TLSH distances between pairs of different galleries on the same template."""
    return [
        tlsh_distance(
            tlsh_of(render(gallery_main(1000 + 2 * pair), pair)),
            tlsh_of(render(gallery_main(1001 + 2 * pair), pair + 7)),
        )
        for pair in range(PAIRS)
    ]


def not_found_distances() -> list[int]:
    """TLSH distances between galleries and the site's "page not found" page."""
    return [
        tlsh_distance(
            tlsh_of(render(gallery_main(seed), seed)), tlsh_of(render(NOT_FOUND, seed + 1))
        )
        for seed in range(PAIRS)
    ]


def test_a_page_rendered_twice_is_within_tlsh_match() -> None:
    distances = same_page_distances()
    assert max(distances) <= TLSH_MATCH, distances


def test_different_pages_on_one_template_are_beyond_tlsh_match() -> None:
    distances = different_page_distances()
    assert min(distances) > TLSH_MATCH, distances


def test_a_not_found_page_is_beyond_tlsh_match_of_the_gallery() -> None:
    distances = not_found_distances()
    assert min(distances) > TLSH_MATCH, distances


def test_counters_nonces_and_times_do_not_change_the_text_hash() -> None:
    main = gallery_main(5)
    first, second = render(main, 0), render(main, len(ADS))  # the same ad, all else differs
    assert first != second
    one = fingerprints(first, "text/html", complete=True)
    two = fingerprints(second, "text/html", complete=True)
    assert one.text_sha256 is not None
    assert (one.text_sha256, one.tlsh) == (two.text_sha256, two.tlsh)
    assert one.note == "page: TLSH and SHA-256 of the normalised text"


def test_normalising_a_page() -> None:
    page = (
        "<!doctype html><html><head><title>A &amp; B</title>"
        "<style>p { color: red }</style><script>var secret = 1;</script></head>"
        "<body><!-- build 4471 --><noscript><p>no scripts</p></noscript>"
        "<p>Seen   12,345\ttimes</p><p>Token dGhpcyBpcyBhIG5vbmNlMTIz= and 5f3a9c0e1b2d4f6a</p>"
        "<p>UPPER&nbsp;case<br/>breaks<script/>after</p><![foo[bar]]>end"
        "<p>abcdefghijklmnopqrstuvwxyz stays, 0123456789012345678 is a number</p>"
    )
    assert normalise_page(page) == (
        "a & b seen 0 times token and upper case breaks after end "
        "abcdefghijklmnopqrstuvwxyz stays, 0 is a number"
    )


def test_text_that_is_not_html_keeps_its_angle_brackets() -> None:
    body = b"if a <b and c> d then\n" * 10
    result = fingerprints(body, "text/plain", complete=True)
    assert result.kind == "page"
    one_line = "if a <b and c> d then"
    assert result.text_sha256 == hashlib.sha256(" ".join([one_line] * 10).encode()).hexdigest()


def test_a_page_is_sniffed_and_decoded_with_its_charset() -> None:
    latin = render(gallery_main(9), 0).decode().replace("PicShare", "PicSharé")
    as_latin1 = fingerprints(
        latin.encode("latin-1", "replace"), "text/html; charset=ISO-8859-1", complete=True
    )
    as_utf8 = fingerprints(latin.encode("utf-8"), None, complete=True)  # sniffed
    assert as_latin1.kind == as_utf8.kind == "page"
    assert as_latin1.text_sha256 is not None
    assert as_latin1.text_sha256 == as_utf8.text_sha256


@pytest.mark.parametrize("charset", ["no-such-charset", "rot13", "hex"])
def test_an_unknown_charset_is_read_as_utf8(charset: str) -> None:
    body = render(gallery_main(9), 0)
    result = fingerprints(body, f'text/html; charset="{charset}"', complete=True)
    assert result.text_sha256 == fingerprints(body, "text/html", complete=True).text_sha256
    assert "unknown charset, read as UTF-8" in result.note


def test_a_short_page_has_no_tlsh() -> None:
    result = fingerprints(b"<html><body>Gone.</body></html>", "text/html", complete=True)
    assert result.kind == "page"
    assert result.tlsh is None
    assert result.text_sha256 is not None
    assert "too short or uniform for TLSH" in result.note


def test_a_page_without_text_has_no_fingerprint() -> None:
    body = b"<html><script>" + b"render();" * 100 + b"</script></html>"
    result = fingerprints(body, "text/html", complete=True)
    assert result == Fingerprints("page", note="page has no text: no fingerprint")


def test_a_cut_page_is_fingerprinted_from_its_start() -> None:
    body = render(gallery_main(2), 0)
    result = fingerprints(body[:2000], "text/html", complete=False)
    assert result.tlsh is not None
    assert "page cut at 2000 bytes" in result.note


def test_a_page_that_never_closes_its_tags_is_normalised_in_linear_time() -> None:
    # Without the closing '>' the parser took a minute and a half for this MiB.
    started = time.monotonic()
    result = fingerprints(b"<html>" + b"<?" * (PAGE_CHARS // 2 - 3), "text/html", complete=True)
    assert time.monotonic() - started < 10
    assert result == Fingerprints("page", note="page has no text: no fingerprint")


def test_only_the_start_of_a_long_page_is_normalised(monkeypatch: pytest.MonkeyPatch) -> None:
    body = render(gallery_main(4), 0)
    monkeypatch.setattr(fingerprint, "PAGE_CHARS", 1500)
    result = fingerprints(body, "text/html", complete=True)
    assert result.text_sha256 == fingerprints(body[:1500], "text/html", complete=True).text_sha256
    assert "page over 1500 characters: fingerprints of its start" in result.note


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param(b"%PDF-1.7\n" + bytes(range(256)), "application/pdf", id="pdf"),
        pytest.param(b"BMalmost a bitmap but not quite", None, id="bm-text"),
        pytest.param(b"", "text/html", id="empty"),
        pytest.param(b"", "image/jpeg", id="empty-picture"),
    ],
)
def test_anything_else_has_no_fingerprint(body: bytes, content_type: str | None) -> None:
    result = fingerprints(body, content_type, complete=True)
    assert (result.kind, result.pdq, result.tlsh, result.text_sha256) == ("other", None, None, None)
    assert result.note


def test_tlsh_distance_refuses_what_is_no_tlsh_hash() -> None:
    real = tlsh_of(render(gallery_main(1), 0))
    assert tlsh_distance(real, real) == 0
    with pytest.raises(ValueError, match="not two TLSH hashes"):
        tlsh_distance(real, "TNULL")


# The sample a body streams into


def test_a_sample_keeps_its_limit_and_notes_the_overflow() -> None:
    sample = Sample(limit=10)
    for chunk in (b"abcd", b"efgh", b"ijkl", b"mnop"):
        sample.feed(chunk)
    assert (sample.data, sample.seen, sample.overflowed) == (b"abcdefghij", 16, True)
    sample.clear()
    assert sample.data == b""


def test_a_sample_fingerprints_a_streamed_picture() -> None:
    body = encode(shapes(11), "PNG")
    whole, cut = Sample(), Sample(limit=len(body) - 1)
    for start in range(0, len(body), 1000):
        whole.feed(body[start : start + 1000])
        cut.feed(body[start : start + 1000])
    assert not whole.overflowed
    assert whole.fingerprints("image/png").pdq == pdq_of(body)
    assert whole.fingerprints("image/png", complete=False).pdq is None
    assert (
        cut.fingerprints("image/png").note
        == f"picture incomplete ({len(body) - 1} bytes read): no PDQ"
    )


def test_a_sample_refuses_a_limit_of_nothing() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        Sample(limit=0)


@pytest.mark.parametrize(
    ("body", "content_type", "costly", "kind"),
    [
        pytest.param(encode(shapes(7), "PNG"), "image/png", True, "picture", id="png"),
        pytest.param(encode(shapes(7), "JPEG"), None, True, "picture", id="jpeg-sniffed"),
        pytest.param(b"<!doctype html><p>hello</p>", None, True, "page", id="html-sniffed"),
        pytest.param(b"plain words " * 40, "text/plain", True, "page", id="text"),
        pytest.param(random.Random(3).randbytes(4096), None, False, "other", id="bytes"),
        pytest.param(b"\x00" * 64, "application/octet-stream", False, "other", id="octets"),
        pytest.param(b"", "image/png", False, "other", id="empty"),
    ],
)
def test_only_pictures_and_pages_are_costly_to_fingerprint(
    body: bytes, content_type: str | None, costly: bool, kind: str
) -> None:
    # The fetch hands a costly body to a thread and answers the rest on the event loop:
    # the two must agree with what fingerprints() makes of the body.
    sample = fingerprint.Sample()
    sample.feed(body)
    assert sample.costly(content_type) is costly
    assert fingerprint.costly(body, content_type) is costly
    assert sample.fingerprints(content_type).kind == kind
