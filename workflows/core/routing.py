"""Decide where a traced URL's notice goes: a pure function of the trace and the directory.

hosted in our own country (TAKEDOWN_COUNTRY)   → host_notice
hosted where a partner hotline takes referrals → hotline_referral
anywhere else                                  → no_partner (notice the host directly)

The host's recipients are the platform's desk when the URL is on a known platform (the
networks' own contacts are kept beside it, as the party after the platform), else the
abuse contacts of the networks in the hosting country, each marked with where it came from
(SOURCES, most trusted first).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

# Where a host's contacts come from, most trusted first (workflows.trace.contacts ranks a
# network's; the tracer adds cdn, parent, placeholder and platform).
SOURCES = (
    "platform",
    "cdn",
    "role:abuse",
    "remarks",
    "abuse-local-part",
    "role:noc",
    "role:technical",
    "role:administrative",
    "role:registrant",
    "entity",
    "parent",
    "placeholder",
)
PLATFORM = "platform"


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
    abuse_source: str | None = None  # where abuse came from (SOURCES)


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
    source: str | None = None  # where recipients came from (SOURCES)
    # The networks' own recipients and their source: the same as recipients, unless a
    # platform's desk took their place (then the party after the platform).
    network_recipients: tuple[str, ...] = ()
    network_source: str | None = None


def choose_country(countries: Sequence[str], own: str) -> str | None:
    """Pick the hosting country: ours if any address is here, else the most common one."""
    if not countries:
        return None
    if own in countries:
        return own
    counts = Counter(countries)
    return max(countries, key=lambda c: (counts[c], -countries.index(c)))


def most_trusted(sources: Iterable[str | None]) -> str | None:
    """Return the most trusted of SOURCES (an unknown one ranks last), None if there is none."""
    known = [s for s in sources if s]
    rank = {source: index for index, source in enumerate(SOURCES)}
    return min(known, key=lambda s: rank.get(s, len(SOURCES)), default=None)


def decide_route(
    hostings: Sequence[Hosting],
    own: str,
    referral_address: Callable[[str], str | None],
    platform: tuple[str, ...] = (),
) -> Decision:
    """Route a URL from its addresses' hosting, our country and the hotline directory;
    PLATFORM: the desk of the platform the URL is on, which takes the host's place."""
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
    network = tuple(dict.fromkeys(a for h in hosting for a in h.abuse))
    network_source = most_trusted(h.abuse_source for h in hosting if h.abuse)
    recipients, source = (platform, PLATFORM) if platform else (network, network_source)
    fallback = not platform and bool(network) and all(h.abuse_fallback for h in hosting if h.abuse)
    decided = Decision(
        Route.NO_PARTNER,
        country,
        recipients,
        fallback,
        source=source,
        network_recipients=network,
        network_source=network_source,
    )
    if country == own:
        return replace(decided, route=Route.HOST_NOTICE) if recipients else _no_contact(hosting)
    if hotline := referral_address(country):
        return replace(decided, route=Route.HOTLINE_REFERRAL, hotline=hotline)
    return decided if recipients else _no_contact(hosting)


def _no_contact(hosting: Sequence[Hosting]) -> Decision:
    """Return the decision for hosting that names no contact: an analyst must find one."""
    names = ", ".join(dict.fromkeys(h.network or h.ip for h in hosting))
    country = hosting[0].country if hosting else None
    return Decision(None, country, reason=f"no abuse contact for {names}: needs an analyst")
