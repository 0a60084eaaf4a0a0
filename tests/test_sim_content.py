"""What the simulated hosts serve: pictures of random shapes and generated pages."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image

from workflows.sim.content import PAGE_TYPE, PICTURE_TYPE, page, picture, soft_404


def decode(data: bytes) -> Image.Image:
    """Decode a JPEG fully, so a broken one fails here."""
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    image.load()
    return image


def text(html: bytes) -> str:
    """Return a page's visible text: no script, no tags, spaces collapsed."""
    body = re.sub(r"(?s)<script.*?</script>", " ", html.decode())
    return " ".join(re.sub(r"<[^>]+>", " ", body).split())


def test_content_types() -> None:
    assert PICTURE_TYPE == "image/jpeg"
    assert PAGE_TYPE == "text/html; charset=utf-8"


def test_picture_is_a_480_by_360_jpeg() -> None:
    data = picture(1)
    assert data.startswith(b"\xff\xd8\xff")
    image = decode(data)
    assert image.size == (480, 360)
    assert image.mode == "RGB"
    colours = image.resize((48, 36)).getcolors(maxcolors=48 * 36)
    assert colours is not None and len(colours) > 50  # shapes, not a blank canvas


def test_same_seed_same_picture_and_different_seeds_differ() -> None:
    picture.cache_clear()  # drawn again, not read back from the cache
    first = picture(7)
    picture.cache_clear()
    assert picture(7) == first
    assert len({picture(seed) for seed in range(10)}) == 10


@pytest.mark.parametrize("variant", [1, 2, 3])
def test_a_variant_is_the_same_picture_re_encoded(variant: int) -> None:
    original, again = picture(3), picture(3, variant)
    assert again != original
    assert again == picture(3, variant)
    width, height = decode(again).size
    assert 0.85 * 480 <= width <= 0.95 * 480
    assert 0.85 * 360 <= height <= 0.95 * 360
    # Scaled back, it is close to the original pixel by pixel; another seed's is not.
    scaled = decode(again).resize((480, 360))

    def distance(one: Image.Image, other: Image.Image) -> float:
        mine, theirs = (im.convert("L").resize((60, 45)).tobytes() for im in (one, other))
        return sum(abs(a - b) for a, b in zip(mine, theirs, strict=True)) / (60 * 45)

    assert distance(scaled, decode(original)) < 5
    assert distance(decode(picture(4)), decode(original)) > 30


def test_variants_differ_from_each_other() -> None:
    assert len({picture(5, variant) for variant in range(4)}) == 4
    with pytest.raises(ValueError, match="negative variant"):
        picture(5, -1)


def test_page_is_html_fixed_by_its_seed() -> None:
    html = page(11)
    assert html == page(11) == page(11, request=9)  # a static page ignores the request
    assert html.startswith(b"<!DOCTYPE html>")
    assert 3_000 <= len(html) <= 6_000
    title = re.search(rb"<title>(.+?)</title>", html)
    assert title is not None
    assert html.count(b"<h2>") >= 3 and html.count(b"<p>") >= 3
    assert html.count(b'<a href="/img/') >= 8
    html.decode("utf-8")


def test_different_seeds_give_clearly_different_pages() -> None:
    one, other = set(text(page(1)).split()), set(text(page(2)).split())
    assert len(one & other) < 0.5 * min(len(one), len(other))


def test_dynamic_page_changes_per_request_but_keeps_its_text() -> None:
    served = [page(21, request, dynamic=True) for request in range(6)]
    assert len(set(served)) == 6
    assert page(21, 3, dynamic=True) == served[3]  # the request number decides, nothing else
    static = text(page(21))
    for html in served:
        assert html != page(21)
        for paragraph in re.findall(rb"<p>(.+?)</p>", page(21)):
            assert paragraph in html
        assert b'type="hidden"' in html and b"<script" in html and b'class="ad"' in html
        assert len(text(html)) > 0.9 * len(static)
    ads = {re.search(rb'<div class="ad"[^>]*>(.+?)</div>', html).group(1) for html in served}  # type: ignore[union-attr]
    assert len(ads) > 1


def test_soft_404_says_not_found_with_status_free_html() -> None:
    html = soft_404("uploads.examplehost-uk.test")
    assert b"<title>Page not found" in html
    assert b"removed or does not exist" in html
    assert b"uploads.examplehost-uk.test" in html
    assert soft_404("uploads.examplehost-uk.test", 1) != html
    assert soft_404("uploads.examplehost-uk.test", 0) == html
    same = re.sub(rb"request id \w+", b"", html)
    assert same == re.sub(rb"request id \w+", b"", soft_404("uploads.examplehost-uk.test", 5))
