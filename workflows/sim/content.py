"""What the simulated hosts serve besides random bytes: generated pictures and pages.

Everything here is a pure function of its arguments. A picture is random shapes drawn
with Pillow from a seed (never a real image); a page is a gallery of seeded words. A
picture's `variant` is the same picture as a re-uploading host serves it again: scaled
down a little and saved at a lower JPEG quality. A dynamic page carries, besides its
seeded text, parts that change with every request: a view counter, a nonce, a time and a
rotating advertisement. `soft_404` is the "not found" page some hosts answer with status
200 once content is removed.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import html
import io
import random

from PIL import Image, ImageDraw

PICTURE_TYPE = "image/jpeg"
PAGE_TYPE = "text/html; charset=utf-8"
PICTURE_SIZE = (480, 360)
PICTURE_QUALITY = 90
SHAPES = (20, 40)  # fewest and most shapes in a picture
EPOCH = datetime.datetime(2024, 3, 1, tzinfo=datetime.UTC)  # dynamic pages' first "now"

# Harmless filler: a page's text is drawn from these.
WORDS = (
    "autumn", "harbour", "lantern", "meadow", "pebble", "river", "orchard", "willow",
    "summit", "canyon", "glacier", "island", "valley", "forest", "garden", "bridge",
    "castle", "market", "window", "candle", "mirror", "compass", "violin", "pepper",
    "lemon", "apricot", "cedar", "maple", "heron", "falcon", "otter", "badger", "sparrow",
    "whale", "copper", "silver", "amber", "cobalt", "crimson", "indigo", "ivory", "jade",
    "saffron", "teal", "umber", "velvet", "morning", "evening", "quiet", "gentle", "bright",
    "distant", "hidden", "golden", "silent", "wooden", "ancient", "travel", "wander",
    "gather", "follow", "linger", "drift", "sketch", "paint", "build", "repair", "collect",
    "notice", "journey", "lighthouse", "village", "station", "library", "museum", "theatre",
    "pavilion", "courtyard", "balcony", "terrace", "fountain", "chapel", "windmill",
    "vineyard", "cottage", "quarry", "harbourside", "photograph", "postcard", "notebook",
    "album", "archive", "ribbon", "thimble", "kettle", "teapot", "blanket", "bicycle",
    "canoe", "lagoon", "prairie", "tundra", "savanna", "marsh", "delta", "estuary",
    "plateau", "ridge", "cliff", "dune", "reef", "grove", "thicket", "hedge", "barley",
    "clover", "daisy", "tulip", "orchid", "lily", "fern", "moss", "pine", "birch", "oak",
    "elm", "poplar", "alder", "hazel", "juniper", "basil", "thyme", "sage", "mint",
    "ginger", "cinnamon", "walnut", "almond", "cherry", "plum", "peach", "melon", "grape",
    "olive", "honey", "bread", "cheese", "butter", "sailor", "painter", "baker", "weaver",
    "potter", "carpenter", "gardener", "shepherd", "fisher", "miller", "lamp", "cloud",
    "storm", "breeze", "thunder", "rainbow", "frost", "snow", "sunrise", "sunset",
    "twilight", "dawn", "north", "south", "east", "west", "upper", "lower", "inner",
    "outer", "little", "grand", "old", "new", "round", "narrow", "red", "blue", "green",
    "yellow", "purple", "orange", "brown", "grey", "black", "white", "pale", "deep", "warm",
    "cool", "arrive", "depart", "climb", "swim", "row", "sail", "fly", "hike", "skate",
    "ski", "dance", "sing", "read", "write", "draw",
)  # fmt: skip
SYLLABLES = (
    "ka", "lo", "mi", "ra", "ve", "sun", "tor", "el", "an", "bri", "del", "fo", "gan", "hul",
    "ish", "jor", "ket", "lum", "nor", "pel",
)  # fmt: skip
ADS = (
    "Fast hosting from 1.99 a month. Unlimited bandwidth, no questions asked.",
    "Learn a new language in ten minutes a day. First month free.",
    "Your computer may be slow. Click here to scan it now for free.",
    "Win a new phone: answer three questions and claim your prize.",
    "Cheap flights to everywhere. Book today, pay later.",
)


@functools.lru_cache(maxsize=256)
def picture(seed: int, variant: int = 0) -> bytes:
    """Return a 480x360 JPEG of random shapes drawn from seed; variant > 0 re-encodes it.

    A variant is what a host that takes uploads does to a picture put back: it decodes the
    original, scales it to about 90 % and saves it at a lower quality (55-75).
    """
    if variant < 0:
        raise ValueError(f"negative variant {variant}")
    if variant == 0:
        return _encode(_drawing(seed), PICTURE_QUALITY)
    with Image.open(io.BytesIO(picture(seed, 0))) as original:
        scale = 0.9 + ((variant % 5) - 2) * 0.01  # 0.88 to 0.92
        size = (round(original.width * scale), round(original.height * scale))
        resized = original.convert("RGB").resize(size, Image.Resampling.LANCZOS)
    return _encode(resized, 55 + (variant * 7) % 21)


def page(seed: int, request: int = 0, dynamic: bool = False) -> bytes:
    """Return an HTML gallery page whose text is fixed by seed; dynamic adds per-request parts.

    The title, headings, paragraphs and image links come from seed alone. A dynamic page
    also carries a view counter, a nonce (a hidden input and a script), a time and one of
    several advertisements, all chosen by the request number.
    """
    rng = random.Random(f"page/{seed}")
    # Each page has its own vocabulary: a share of the common words and names of its own.
    names = ["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))) for _ in range(12)]
    vocabulary = rng.sample(WORDS, 60) + names
    title = _words(rng, vocabulary, 3).title()
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{_esc(title)} - photo gallery</title>",
        "</head>",
        "<body>",
        f"<h1>{_esc(title)}</h1>",
    ]
    if dynamic:
        parts += _dynamic_head(seed, request)
    for _ in range(rng.randint(4, 5)):
        parts.append(f"<h2>{_esc(_words(rng, vocabulary, rng.randint(2, 4)).capitalize())}</h2>")
        for _ in range(rng.randint(1, 2)):
            sentences = [
                _words(rng, vocabulary, rng.randint(6, 14)).capitalize() + "." for _ in range(4)
            ]
            parts.append(f"<p>{_esc(' '.join(sentences))}</p>")
    parts.append('<ul class="gallery">')
    for _ in range(rng.randint(10, 16)):
        name = f"{rng.getrandbits(48):012x}"
        alt = _esc(_words(rng, vocabulary, 3))
        parts.append(
            f'<li><a href="/img/{name}.jpg"><img src="/thumb/{name}.jpg" alt="{alt}"></a></li>'
        )
    parts.append("</ul>")
    if dynamic:
        parts += _dynamic_tail(seed, request)
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts).encode()


def soft_404(host: str, request: int = 0) -> bytes:
    """Return the "page not found" page a host serves with status 200 for whatever it removed.

    The same for every URL of the host, except a request id that changes with every request.
    """
    name = _esc(host)
    request_id = hashlib.sha256(f"soft404/{host}/{request}".encode()).hexdigest()[:16]
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f"<title>Page not found - {name}</title>",
            "</head>",
            "<body>",
            "<h1>Page not found</h1>",
            "<p>Sorry, the file you are looking for has been removed or does not exist.</p>",
            f'<p>Go back to the <a href="/">{name} home page</a> and try again.</p>',
            f"<footer>{name} &middot; request id {request_id}</footer>",
            "</body>",
            "</html>",
            "",
        ]
    ).encode()


def _drawing(seed: int) -> Image.Image:
    """Draw 20 to 40 random rectangles, ellipses, polygons and lines on a random background."""
    rng = random.Random(f"picture/{seed}")
    width, height = PICTURE_SIZE
    image = Image.new("RGB", PICTURE_SIZE, _colour(rng))
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(*SHAPES)):
        shape = rng.choice(("rectangle", "ellipse", "polygon", "line"))
        x0, y0 = rng.randrange(-40, width), rng.randrange(-40, height)
        x1 = x0 + rng.randint(20, width // 2)
        y1 = y0 + rng.randint(20, height // 2)
        if shape == "rectangle":
            draw.rectangle((x0, y0, x1, y1), fill=_colour(rng), outline=_colour(rng))
        elif shape == "ellipse":
            draw.ellipse((x0, y0, x1, y1), fill=_colour(rng), outline=_colour(rng))
        elif shape == "polygon":
            corners = [(rng.randint(x0, x1), rng.randint(y0, y1)) for _ in range(rng.randint(3, 6))]
            draw.polygon(corners, fill=_colour(rng))
        else:
            draw.line((x0, y0, x1, y1), fill=_colour(rng), width=rng.randint(2, 12))
    return image


def _colour(rng: random.Random) -> tuple[int, int, int]:
    """Return a random RGB colour."""
    return (rng.randrange(256), rng.randrange(256), rng.randrange(256))


def _encode(image: Image.Image, quality: int) -> bytes:
    """Return image as JPEG bytes at quality."""
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def _words(rng: random.Random, vocabulary: list[str], count: int) -> str:
    """Return count words of vocabulary, chosen by rng, joined by spaces."""
    return " ".join(rng.choice(vocabulary) for _ in range(count))


def _esc(text: str) -> str:
    """Escape text for HTML."""
    return html.escape(text, quote=True)


def _nonce(seed: int, request: int) -> str:
    """Return the per-request token of a dynamic page."""
    return hashlib.sha256(f"nonce/{seed}/{request}".encode()).hexdigest()[:32]


def _dynamic_head(seed: int, request: int) -> list[str]:
    """Return the per-request parts at the top of a dynamic page: counter, time, nonce."""
    views = random.Random(f"views/{seed}").randint(1_000, 90_000) + request
    now = EPOCH + datetime.timedelta(seconds=seed % 86_400 * 3 + request * 37)
    return [
        f'<p class="stats">{views:,} views &middot; '
        f'<time datetime="{now.isoformat()}">{now:%d %b %Y %H:%M:%S} UTC</time></p>',
        '<form method="post" action="/comment">',
        f'<input type="hidden" name="csrf_token" value="{_nonce(seed, request)}">',
        "</form>",
    ]


def _dynamic_tail(seed: int, request: int) -> list[str]:
    """Return the per-request parts at the end of a dynamic page: an ad and a script."""
    nonce = _nonce(seed, request)
    return [
        f'<div class="ad" id="ad-{request % len(ADS)}">{_esc(ADS[request % len(ADS)])}</div>',
        f'<script nonce="{nonce}">window.pageToken = "{nonce}"; window.views = {request};</script>',
    ]
