"""What the desk calls things: states and routes as words, URLs as wrappable text.

One mapping for every place a person reads them: the case list, its filters, its live
rows, the case page and the CSV export (tests/test_case_list.py checks that every
CaseState and Route has its words).
"""

from __future__ import annotations

import re

from markupsafe import Markup

from workflows.core.routing import Route
from workflows.kinds import CaseState

STATE_WORDS: dict[str, str] = {
    CaseState.NEW: "new",
    CaseState.WAITING: "waiting to retry",
    CaseState.NEEDS_ANALYST: "needs an analyst",
    CaseState.ACTIVE: "active",
    CaseState.HELD: "held",
    CaseState.REMOVED: "removed",
    CaseState.CLOSED: "closed",
}
ROUTE_WORDS: dict[str, str] = {
    Route.HOST_NOTICE: "notice the host",
    Route.HOTLINE_REFERRAL: "refer to the partner hotline",
    Route.NO_PARTNER: "notice the host (no partner hotline)",
}
# A URL may wrap after these, a host name after its dots. Each piece between them is an
# inline block (CSS span.seg): it moves to the next line whole, and breaks inside (even at
# a hyphen) only when it alone is wider than its column, the last resort.
_URL_BREAKS = re.compile(r"(?<=[/?&=])")
_HOST_BREAKS = re.compile(r"(?<=\.)")
_SEGMENT = Markup('<span class="seg">{}</span>')
# A URL longer than this shows its head and tail (the part that tells URLs apart), the
# whole URL staying in the row's title and the CSV.
LONGEST_SHOWN = 240
_HEAD, _TAIL = 80, 140


def state_words(state: object) -> str:
    """Return how a person reads a case state ("needs_analyst" → "needs an analyst")."""
    return STATE_WORDS.get(str(state), str(state).replace("_", " "))


def route_words(route: object) -> str:
    """Return how a person reads a route ("no_partner" → "notice the host (no partner…)")."""
    if route is None or route == "":
        return "–"
    return ROUTE_WORDS.get(str(route), str(route).replace("_", " "))


def shown_url(url: str) -> str:
    """Return URL as the list shows it: whole, or its head … tail when very long."""
    if len(url) <= LONGEST_SHOWN:
        return url
    return f"{url[:_HEAD]} … {url[-_TAIL:]}"


def wrap_url(url: str) -> Markup:
    """Return URL as escaped text in pieces that wrap only after each / ? & =."""
    return _segments(shown_url(url), _URL_BREAKS)


def wrap_host(host: str) -> Markup:
    """Return a host name as escaped text in pieces that wrap only after its dots."""
    return _segments(host, _HOST_BREAKS)


def _segments(text: str, breaks: re.Pattern[str]) -> Markup:
    # Split the raw text, then escape each piece (Markup.format escapes): splitting text
    # already escaped could cut an entity such as &amp; in two.
    return Markup("<wbr>").join(_SEGMENT.format(piece) for piece in breaks.split(text) if piece)
