"""Decide where a traced URL's notice goes: a pure function of the trace and the directory.

hosted in our own country (TAKEDOWN_COUNTRY)   → host_notice
hosted where a partner hotline takes referrals → hotline_referral
anywhere else                                  → no_partner (notice the host directly)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum


class Route(StrEnum):
    """The workflow a case follows."""

    HOST_NOTICE = "host_notice"
    HOTLINE_REFERRAL = "hotline_referral"
    NO_PARTNER = "no_partner"


@dataclass(frozen=True)
class Hosting:
    """What routing needs to know about one address of the URL."""

    ip: str
    special_use: str | None = None
    country: str | None = None  # for a CDN: the CDN's own country
    network: str | None = None  # a name to show in reasons
    abuse: tuple[str, ...] = ()
    abuse_fallback: bool = False
    error: str | None = None  # the lookup failed; None when it did not
    error_permanent: bool = True


@dataclass(frozen=True)
class Decision:
    """The route, its country and recipients, or the reason there is none."""

    route: Route | None
    country: str | None = None
    recipients: tuple[str, ...] = ()  # the host's (or CDN's) abuse desk
    fallback: bool = False  # recipients are not an abuse role but other contacts
    hotline: str | None = None  # referral address when the route is hotline_referral
    reason: str | None = None
    permanent: bool = True  # for no route: False when a later retry may find one


def choose_country(countries: Sequence[str], own: str) -> str | None:
    """Pick the hosting country: ours if any address is here, else the most common one."""
    if not countries:
        return None
    if own in countries:
        return own
    counts = Counter(countries)
    return max(countries, key=lambda c: (counts[c], -countries.index(c)))


def decide_route(
    hostings: Sequence[Hosting], own: str, referral_address: Callable[[str], str | None]
) -> Decision:
    """Route a URL from its addresses' hosting, our country and the hotline directory."""
    public = [h for h in hostings if h.special_use is None]
    if not hostings:
        return Decision(None, reason="no address to route")
    if not public:
        kinds = ", ".join(dict.fromkeys(f"{h.ip} is {h.special_use}" for h in hostings))
        return Decision(None, reason=f"special-use address only ({kinds}): needs an analyst")
    usable = [h for h in public if h.error is None]
    if not usable:
        permanent = all(h.error_permanent for h in public)
        return Decision(None, reason=public[0].error, permanent=permanent)
    country = choose_country([h.country for h in usable if h.country], own)
    if country is None:
        return Decision(None, reason="hosting country unknown: RDAP names none")
    hosting = [h for h in usable if h.country == country]
    recipients = tuple(dict.fromkeys(a for h in hosting for a in h.abuse))
    fallback = bool(recipients) and all(h.abuse_fallback for h in hosting if h.abuse)
    if country == own:
        route = Route.HOST_NOTICE
    elif hotline := referral_address(country):
        return Decision(Route.HOTLINE_REFERRAL, country, recipients, fallback, hotline)
    else:
        route = Route.NO_PARTNER
    if not recipients:
        names = ", ".join(dict.fromkeys(h.network or h.ip for h in hosting))
        return Decision(None, country, reason=f"no abuse contact for {names}: needs an analyst")
    return Decision(route, country, recipients, fallback)
