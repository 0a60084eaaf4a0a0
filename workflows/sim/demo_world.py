"""The world of `takedown demo` and `takedown up --demo`: hosts, networks, desks and URLs.

Every host name is under .test and every mailbox under .example, except
abuse@cloudflare.com: the shipped CDN list names it. Cloudflare takes reports only through
its web form (the shipped TAKEDOWN_FORMS), so its cases become form tasks; the demo's
analyst submits them and the form reaches this simulated desk (FORM_DESKS): no mail to it
is ever sent. Addresses look public, so the engine's egress guard lets it fetch
them; they exist only on this machine (a namespace's loopback, or behind a local proxy).

    host                            network          country  its desk
    cdn.pixelvault-gb.test          PIXELVAULT-GB    GB       removes promptly
    files.snailhost-gb.test         SNAILHOST-GB     GB       removes only after a chaser
    img.deafear-hosting.test        DEAFEAR-GB       GB       never acts: upstream escalation
    media.bouncy-host.test          BOUNCY-GB        GB       refuses mail (550): upstream
    cdn.lostmail-gb.test            LOSTMAIL-GB      GB       bounces later (a Postfix DSN in
                                                              the mailbox, 3 s): upstream
    share.hopscotch-gb.test         HOPSCOTCH-GB     GB       moves the content to BERGHOST-DE
    uploads.tinyhost-uk.test        TINYHOST-UK      GB       removes promptly (410 Gone)
    pics.quickdrop-uk.test          QUICKDROP-UK     GB       deletes the host name (NXDOMAIN)
    share.berghost-de.test          BERGHOST-DE      DE       removes promptly (no partner)
    v6.berghost-de.test             BERGHOST-DE6     DE       the same desk, over IPv6
    videos.maplecloud-ca.test       MAPLECLOUD-CA    CA       partner hotline removes it
    www.fastshare-cdn.test          CLOUDFLARENET    US       Cloudflare's desk removes it
    files.vanished-host.test        -                -        NXDOMAIN: needs an analyst
    intranet.corp-demo.test         10.0.0.5         -        private: needs an analyst

NORTHLINK-TRANSIT (185.199.0.0/16) holds every 185.199 network: it is the upstream that
escalations go to, and it acts promptly. The only partner hotline is Canada's: the shipped
CDN list places Cloudflare in the US, so a US partner would get the CDN-fronted URL as a
referral and Cloudflare's desk would never be noticed. Lostmail's mailbox no longer exists:
the hotline's relay accepts the notice and, seconds later, returns it as a delivery status
notification (LATE_BOUNCE_DELAY): `takedown demo` pipes it to the engine as an MTA would
(`up --demo` only logs it, and the chaser and escalation come by the clock).

`workflows.cli.main.launch` serves it and runs the engine's real commands against it.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass

from workflows.sim import (
    Desk,
    Network,
    World,
)

HOTLINES_TOML = """\
# takedown demo: one partner hotline, so a URL hosted in Canada is referred to it.
[hotline.CA]
name = "Cybertip.ca (demo partner)"
email = "referrals@partner-hotline.example"
"""
SENDER = "reports@demo-hotline.example"
HOP_TARGET = "91.218.2.30"
RETURN_PATH = "bounces+{token}@demo-hotline.example"  # VERP: each notice its own
# Web-form desks (the shipped TAKEDOWN_FORMS) and the simulated desk each form reaches.
FORM_DESKS = {"https://abuse.cloudflare.com/": "abuse@cloudflare.com"}
LATE_BOUNCE_DELAY = 3.0  # seconds from the relay accepting a notice to its bounce
NXDOMAIN_URL = "http://files.vanished-host.test/f/3c9e21.zip"
PRIVATE_URL = "http://intranet.corp-demo.test/share/a81f.jpg"


@dataclass(frozen=True)
class Host:
    """One host name that serves reported URLs, and the path pattern of its URLs."""

    name: str
    path: str  # "{id}" is replaced by a short hex id per URL


# The order URLs are handed out in: the first host twice per round, so even the smallest
# demo shows one notice listing several URLs; the scenarios that tell the most come next.
ROTATION = [
    Host("cdn.pixelvault-gb.test", "/i/{id}.jpg"),
    Host("cdn.pixelvault-gb.test", "/i/{id}.jpg"),
    Host("files.snailhost-gb.test", "/files/{id}.zip"),
    Host("img.deafear-hosting.test", "/img/{id}.png"),
    Host("media.bouncy-host.test", "/m/{id}.mp4"),
    Host("share.hopscotch-gb.test", "/s/{id}"),
    Host("videos.maplecloud-ca.test", "/v/{id}.mp4"),
    Host("www.fastshare-cdn.test", "/d/{id}"),
    Host("cdn.lostmail-gb.test", "/i/{id}.jpg"),
    Host("share.berghost-de.test", "/share/{id}.jpg"),
    Host("uploads.tinyhost-uk.test", "/u/{id}.jpg"),
    Host("pics.quickdrop-uk.test", "/p/{id}.jpg"),
    Host("v6.berghost-de.test", "/x/{id}.jpg"),
]


def _net(
    cidr: str, asn: int, name: str, country: str, org: str, abuse: str, arin: bool = False
) -> Network:
    """Return a network with one abuse mailbox; ARIN style nests it in the org entity."""
    style = "arin" if arin else "ripe"
    registry = "arin" if arin else "ripencc"
    return Network(cidr, asn, name, country, org, abuse=[abuse], registry=registry, style=style)


def _networks() -> list[Network]:
    """Return the demo's networks."""
    return [
        _net("185.199.0.0/16", 205000, "NORTHLINK-TRANSIT", "GB", "Northlink Transit Ltd",
             "abuse@northlink-transit.example"),
        _net("185.199.108.0/28", 205012, "PIXELVAULT-GB", "GB", "PixelVault Ltd",
             "abuse@pixelvault-gb.example"),
        _net("185.199.108.16/29", 205013, "SNAILHOST-GB", "GB", "Snail Hosting Ltd",
             "abuse@snailhost-gb.example"),
        _net("185.199.108.24/29", 205014, "HOPSCOTCH-GB", "GB", "Hopscotch Servers Ltd",
             "abuse@hopscotch-gb.example"),
        _net("185.199.109.0/24", 205015, "BOUNCY-GB", "GB", "Bouncy Host Ltd",
             "abuse@bouncy-host.example"),
        _net("185.199.110.0/24", 205016, "TINYHOST-UK", "GB", "Tinyhost UK Ltd",
             "abuse@tinyhost-uk.example"),
        _net("185.199.111.0/24", 205017, "DEAFEAR-GB", "GB", "Deafear Hosting Ltd",
             "abuse@deafear-hosting.example"),
        _net("185.199.112.0/24", 205018, "LOSTMAIL-GB", "GB", "Lostmail Hosting Ltd",
             "abuse@lostmail-gb.example"),
        _net("94.130.1.0/24", 206100, "QUICKDROP-UK", "GB", "Quickdrop UK Ltd",
             "abuse@quickdrop-uk.example"),
        _net("91.218.2.0/24", 207001, "BERGHOST-DE", "DE", "Berghost GmbH",
             "abuse@berghost-de.example"),
        _net("2a01:4f8:1::/48", 207001, "BERGHOST-DE6", "DE", "Berghost GmbH",
             "abuse@berghost-de.example"),
        _net("167.114.0.0/17", 16276, "MAPLECLOUD-CA", "CA", "MapleCloud Inc.",
             "abuse@maplecloud-ca.example", arin=True),
        _net("104.16.0.0/13", 13335, "CLOUDFLARENET", "US", "Cloudflare, Inc.",
             "abuse@cloudflare.com", arin=True),
    ]  # fmt: skip


def _records() -> dict[str, list[tuple[str, str]]]:
    """Return the demo's DNS names; the CDN site is fronted through a CNAME, as usual."""
    return {
        "cdn.pixelvault-gb.test": [("A", "185.199.108.10")],
        "files.snailhost-gb.test": [("A", "185.199.108.17")],
        "share.hopscotch-gb.test": [("A", "185.199.108.25")],
        "media.bouncy-host.test": [("A", "185.199.109.10")],
        "uploads.tinyhost-uk.test": [("A", "185.199.110.10")],
        "img.deafear-hosting.test": [("A", "185.199.111.10")],
        "cdn.lostmail-gb.test": [("A", "185.199.112.10")],
        "pics.quickdrop-uk.test": [("A", "94.130.1.10")],
        "share.berghost-de.test": [("A", "91.218.2.20")],
        "v6.berghost-de.test": [("AAAA", "2a01:4f8:1::10")],
        "videos.maplecloud-ca.test": [("A", "167.114.5.10")],
        "www.fastshare-cdn.test": [("CNAME", "fastshare-cdn.test.cdn.cloudflare.test")],
        "fastshare-cdn.test.cdn.cloudflare.test": [("A", "104.16.132.229"),
                                                   ("A", "104.16.133.229")],
        "intranet.corp-demo.test": [("A", "10.0.0.5")],
    }  # fmt: skip


def build_world() -> World:
    """Return a fresh demo world (no content yet: see demo_urls)."""
    return World(networks=_networks(), records=_records())


def demo_desks(world: World) -> list[Desk]:
    """Return the abuse desks and the partner hotline, each reacting within seconds."""
    return [
        Desk("abuse@pixelvault-gb.example", "prompt", world, delay=0.2),
        Desk("abuse@snailhost-gb.example", "after_chaser", world, delay=0.2),
        Desk("abuse@deafear-hosting.example", "never", world),
        Desk("abuse@bouncy-host.example", "bounce", world),
        Desk("abuse@lostmail-gb.example", "late_bounce", world, delay=LATE_BOUNCE_DELAY),
        Desk("abuse@hopscotch-gb.example", "hop", world, delay=0.2, hop_to=[HOP_TARGET]),
        Desk("abuse@tinyhost-uk.example", "prompt", world, delay=0.2, removal="410"),
        Desk("abuse@quickdrop-uk.example", "prompt", world, delay=0.2, removal="nxdomain"),
        Desk("abuse@berghost-de.example", "prompt", world, delay=0.2),
        Desk("referrals@partner-hotline.example", "hotline", world, delay=0.2),
        Desk("abuse@cloudflare.com", "prompt", world, delay=0.2),
        Desk("abuse@northlink-transit.example", "prompt", world, delay=0.2),
    ]


def demo_urls(count: int) -> list[str]:
    """Return COUNT URLs: hosted ones in ROTATION order, then the two without a route."""
    urls = []
    for n in range(max(count - 2, 0)):
        host = ROTATION[n % len(ROTATION)]
        digest = hashlib.sha256(f"{host.name}/{n}".encode()).hexdigest()[:6]
        urls.append(f"http://{host.name}{host.path.format(id=digest)}")
    return [*urls, NXDOMAIN_URL, PRIVATE_URL][:count]


def public_addresses(world: World) -> list[str]:
    """Return every address a demo site is served on, now or after hopping."""
    found = [HOP_TARGET]
    for records in world.records.values():
        for rtype, value in records:
            if rtype in ("A", "AAAA") and ipaddress.ip_address(value).is_global:
                found.append(value)
    parsed = sorted({ipaddress.ip_address(a) for a in found}, key=lambda a: (a.version, a))
    return [str(address) for address in parsed]
