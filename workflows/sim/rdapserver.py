"""An RDAP server (RFC 7482 paths, RFC 9083 JSON) for the simulated world's networks and domains.

    /ip/<address> or /ip/<prefix>/<len>  the most specific network covering it
    /autnum/<n>                          the AS, from the first network it originates
    /entity/<handle>                     the first network's entity of that handle
    /domain/<name>                       a domain registered in the world (404 if none),
                                         in ICANN's gTLD RDAP response profile shape

A network answers in its RDAP style (arin, ripe, none), writes its range in its range style
(plain, prefix-length, zero-padded, handle-only), and may carry the shapes real registries
publish: remarks (its own, its technical entity's), a registry IRT as its abuse entity (a
placeholder), an entity with no roles. It fails on request
(`Network.rdap_fault`: 404, 429 with the network's Retry-After, 500, malformed,
entity_loop); a domain answers in its registrar's style (icann, top, none) and fails with
its registrar's `rdap_fault` (404, 429, 500, malformed). Every answer leaves
`world.latency.rdap` seconds after its request line arrived; each connection has a thread
of its own, so the waits overlap.

Each request counts for one registry, the `Network.registry` of the network it names
(for /entity/ and /autnum/, the network the answer comes from), "domain" for every
/domain/ request (found or not: the domain registries), or "other" when it names none
(a 400 or a 404). With `world.rdap_rate` set, each registry answers that many requests a
second (a token bucket holding one second's worth); one beyond it gets 429 with
Retry-After: 1 before any fault or lookup. Records, all emptied by clear_log:

    requests        every path asked, in order
    faults_served   the network and registrar faults that fired, by fault
    by_registry()   requests answered per registry, 429s excluded
    refused         429s sent because of the rate limit
    peak_rate()     per registry, the most requests (429s included) in any one second
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from functools import partial
from typing import Any, cast
from urllib.parse import unquote, urlsplit

from workflows.sim.httpservice import DelayedHandler, HTTPService, LocalHTTPServer
from workflows.sim.world import IPNetwork, Network, Registrar, World, prefix_handle

JSON = dict[str, Any]
Reply = tuple[int, bytes, dict[str, str]]
# What a request names: the network it counts for (None: registry OTHER) and its answer.
Found = tuple[Network | None, Callable[[], Reply]]
# What a request counts for (a registry) and its answer.
Target = tuple[str, Callable[[], Reply]]
OTHER = "other"  # the registry of a request that names no network
DOMAIN = "domain"  # the registry of every /domain/ request
WINDOW = 1.0  # seconds: the rate limit's and peak_rate's unit
CONTENT_TYPE = "application/rdap+json"
CONFORMANCE = ["rdap_level_0", "cidr0", "nro_rdap_profile_0"]
EVENTS = [
    {"eventAction": "registration", "eventDate": "2014-03-28T09:12:44Z"},
    {"eventAction": "last changed", "eventDate": "2023-11-02T16:40:05Z"},
]
PORT43 = {
    "arin": "whois.arin.net",
    "ripencc": "whois.ripe.net",
    "apnic": "whois.apnic.net",
    "lacnic": "whois.lacnic.net",
    "afrinic": "whois.afrinic.net",
}
# ICANN's gTLD RDAP response profile, and RFC 9537 redaction of the registrant's data.
DOMAIN_CONFORMANCE = [
    "rdap_level_0",
    "icann_rdap_response_profile_1",
    "icann_rdap_technical_implementation_guide_1",
    "redacted",
]
DOMAIN_EVENTS = [
    {"eventAction": "registration", "eventDate": "2019-05-14T08:21:37Z"},
    {"eventAction": "expiration", "eventDate": "2027-05-14T08:21:37Z"},
    {"eventAction": "last changed", "eventDate": "2025-04-30T11:02:19Z"},
    {"eventAction": "last update of RDAP database", "eventDate": "2026-01-01T00:00:00Z"},
]
ABUSE_PHONE = "tel:+1.5555550100"
# RFC 9537: the registrant's name and e-mail are redacted by emptying their values.
REDACTED_REGISTRANT = {
    "objectClassName": "entity",
    "roles": ["registrant"],
    "vcardArray": [
        "vcard",
        [["version", {}, "text", "4.0"], ["fn", {}, "text", ""], ["email", {}, "text", ""]],
    ],
}
# Entity levels of a served loop: each adds two JSON levels, so 600 go past the 1,000 that
# CPython's recursive JSON decoder allows by default.
LOOP_DEPTH = 600
TITLES = {400: "Bad Request", 404: "Not Found", 429: "Too Many Requests", 500: "Server Error"}


def vcard(fn: str, kind: str, emails: list[str], label: str) -> list[Any]:
    """Build a jCard (RFC 7095) with name, kind, e-mails and a postal label."""
    props: list[list[Any]] = [
        ["version", {}, "text", "4.0"],
        ["fn", {}, "text", fn],
        ["kind", {}, "text", kind],
    ]
    props += [["email", {"type": "work"}, "text", email] for email in emails]
    props.append(["adr", {"label": label}, "text", ["", "", "", "", "", "", ""]])
    return ["vcard", props]


class _Bucket:
    """A token bucket: refills RATE tokens a second, holds at most max(1, RATE).

    Hand-made: no dependency of the project limits a server's request rate, and the
    engine's own limiter (workflows.trace) is the code under test, which the simulated
    internet must not import.
    """

    def __init__(self, tokens: float, now: float) -> None:
        """Start with tokens at time now."""
        self.tokens = tokens
        self.stamp = now

    def take(self, rate: float, now: float) -> bool:
        """Take one token at time now if there is one; False when the bucket is empty."""
        capacity = max(1.0, rate)
        self.tokens = min(capacity, self.tokens + max(0.0, now - self.stamp) * rate)
        self.stamp = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class RDAPServer(HTTPService):
    """A threaded HTTP RDAP server answering from a World; use as a context manager."""

    def __init__(self, world: World, host: str = "127.0.0.1", port: int = 0) -> None:
        """Prepare a server for world; port 0 picks a free port at start()."""
        super().__init__(host, port)
        self.world = world
        self.requests: list[str] = []
        self.faults_served: Counter[str] = Counter()  # by fault name: proof that one fired
        self.refused = 0  # 429s sent because a registry's rate was exceeded
        self._answered: Counter[str] = Counter()  # by registry, 429s excluded
        self._peaks: dict[str, int] = {}
        self._recent: dict[str, deque[float]] = {}  # by registry: arrivals in the last second
        self._buckets: dict[str, _Bucket] = {}  # the rate limit's state; clear_log keeps it
        self._log_lock = threading.Lock()

    @property
    def base_url(self) -> str:
        """Return the URL clients put in front of /ip/<addr>."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def clear_log(self) -> None:
        """Forget the requests seen so far and every count of them.

        The rate limit itself remembers: a registry's exhausted bucket stays empty.
        """
        with self._log_lock:
            self.requests.clear()
            self.faults_served.clear()
            self.refused = 0
            self._answered.clear()
            self._peaks.clear()
            self._recent.clear()

    def by_registry(self) -> dict[str, int]:
        """Return the requests answered per registry ("other": no network), 429s excluded."""
        with self._log_lock:
            return dict(self._answered)

    def peak_rate(self) -> dict[str, int]:
        """Return, per registry, the most requests (429s included) that came within a second."""
        with self._log_lock:
            return dict(self._peaks)

    def count(self, path: str) -> int:
        """Return how many requests asked for exactly this path."""
        with self._log_lock:
            return Counter(self.requests)[path]

    # -- routing ----------------------------------------------------------------------------

    def route(self, raw_path: str) -> Reply:
        """Log a request path and answer it, or refuse it when its registry is over rate."""
        path = urlsplit(raw_path).path
        with self._log_lock:
            self.requests.append(path)
        registry, answer = self._target(path)
        if not self._admit(registry):
            return _error(429, "rate limit exceeded", {"Retry-After": str(int(WINDOW))})
        reply = answer()
        if reply[0] != 429:
            with self._log_lock:
                self._answered[registry] += 1
        return reply

    def _admit(self, registry: str) -> bool:
        """Count one request for registry, now; False when the registry's rate is exceeded."""
        rate = self.world.rdap_rate
        with self._log_lock:
            now = time.monotonic()  # read under the lock, so each registry's deque is in order
            recent = self._recent.setdefault(registry, deque())
            recent.append(now)
            while recent[0] <= now - WINDOW:
                recent.popleft()
            self._peaks[registry] = max(self._peaks.get(registry, 0), len(recent))
            if rate is None:
                return True
            bucket = self._buckets.setdefault(registry, _Bucket(max(1.0, rate), now))
            if bucket.take(rate, now):
                return True
            self.refused += 1
            return False

    def _target(self, path: str) -> Target:
        """Find what a path asks for: the network it names and how to answer it."""
        parts = [unquote(p) for p in path.split("/") if p]
        if len(parts) >= 2 and parts[0] == "ip":
            return _counted(self._ip("/".join(parts[1:])))
        if len(parts) == 2 and parts[0] == "entity":
            return _counted(self._entity(parts[1]))
        if len(parts) == 2 and parts[0] == "autnum":
            return _counted(self._autnum(parts[1]))
        if len(parts) == 2 and parts[0] == "domain":
            return DOMAIN, partial(self._domain_answer, parts[1].rstrip(".").lower())
        return OTHER, partial(_error, 400, f"unsupported path {path}")

    def _ip(self, query: str) -> Found:
        """Find /ip/<address> or /ip/<prefix>/<length>."""
        try:
            wanted = ipaddress.ip_network(query, strict=False)
        except ValueError:
            return None, partial(_error, 400, f"not an IP address or prefix: {query}")
        # RFC 7482 §3.1.1: the most specific network that covers the whole range asked for.
        covering = [n for n in self.world.network_list() if _covers(n.prefix, wanted)]
        network = max(covering, key=lambda n: n.prefix.prefixlen, default=None)
        if network is None:
            return None, partial(_error, 404, f"no registration covers {query}")
        return network, partial(self._ip_answer, network)

    def _ip_answer(self, network: Network) -> Reply:
        """Answer for a network: its fault, if one is armed, else its RFC 9083 object."""
        fault = self.world.take_rdap_fault(network)
        if fault is not None:
            with self._log_lock:
                self.faults_served[fault] += 1
        if fault == "429":
            return _error(429, "rate limit exceeded", {"Retry-After": str(network.retry_after)})
        if fault in ("404", "500"):
            return _error(int(fault), f"simulated fault for {network.cidr}")
        answer = self._network_json(network)
        if fault == "entity_loop":
            return 200, looped_json(answer, LOOP_DEPTH).encode(), {}
        body = json.dumps(answer).encode()
        if fault == "malformed":
            body = body[: len(body) // 2]  # cut mid-object: what a dropped connection leaves
        return 200, body, {}

    def _entity(self, handle: str) -> Found:
        """Find /entity/<handle>: the first network's entity of that handle."""
        for network in self.world.network_list():
            found = _find_entity(self._entities(network), handle.upper())
            if found is not None:
                return network, partial(_ok, {"rdapConformance": CONFORMANCE, **found})
        return None, partial(_error, 404, f"no entity {handle}")

    def _autnum(self, number: str) -> Found:
        """Find /autnum/<n>: the first network the AS originates."""
        digits = number.upper().removeprefix("AS")
        if not digits.isdigit():
            return None, partial(_error, 400, f"not an AS number: {number}")
        networks = self.world.networks_for_asn(int(digits))
        if not networks:
            return None, partial(_error, 404, f"no registration for AS{digits}")
        return networks[0], partial(self._autnum_answer, networks[0])

    def _autnum_answer(self, first: Network) -> Reply:
        """Answer /autnum/<n> from the first network the AS originates."""
        return _ok(
            {
                "rdapConformance": CONFORMANCE,
                "objectClassName": "autnum",
                "handle": f"AS{first.asn}",
                "startAutnum": first.asn,
                "endAutnum": first.asn,
                "name": first.as_name.split(" ")[0],
                "country": first.country,
                "status": ["active"],
                "port43": PORT43[first.registry],
                "events": EVENTS,
                "entities": self._entities(first),
                "links": self._links(f"/autnum/{first.asn}"),
            }
        )

    def _domain_answer(self, domain: str) -> Reply:
        """Answer /domain/<name>: its registrar's fault, if one is armed, else its object."""
        registrar = self.world.registrar_of(domain)
        if registrar is None:
            return _error(404, f"no registration of {domain}")
        fault = self.world.take_registrar_fault(registrar.handle)
        if fault is not None:
            with self._log_lock:
                self.faults_served[fault] += 1
        if fault == "429":
            return _error(429, "rate limit exceeded", {"Retry-After": str(registrar.retry_after)})
        if fault in ("404", "500"):
            return _error(int(fault), f"simulated fault for {domain}")
        body = json.dumps(self._domain_json(domain, registrar)).encode()
        if fault == "malformed":
            body = body[: len(body) // 2]
        return 200, body, {}

    # -- JSON builders ----------------------------------------------------------------------

    def _domain_json(self, domain: str, registrar: Registrar) -> JSON:
        """Build the RFC 9083 domain object in ICANN's gTLD RDAP response profile shape."""
        top = (
            [_abuse_entity(registrar.abuse)] if registrar.style == "top" and registrar.abuse else []
        )
        nameservers = [
            {"objectClassName": "nameserver", "ldhName": value.rstrip(".").lower()}
            for rtype, value in self.world.lookup(domain) or []
            if rtype == "NS"
        ]
        return {
            "rdapConformance": DOMAIN_CONFORMANCE,
            "objectClassName": "domain",
            "handle": f"{int(hashlib.sha256(domain.encode()).hexdigest()[:8], 16)}_DOMAIN-SIM",
            "ldhName": domain,
            "status": ["client transfer prohibited"],
            "events": DOMAIN_EVENTS,
            "secureDNS": {"delegationSigned": False},
            "nameservers": nameservers,
            "entities": [REDACTED_REGISTRANT, _registrar_entity(registrar), *top],
            "redacted": [
                {"name": {"type": "Registrant Name"}, "method": "emptyValue"},
                {"name": {"type": "Registrant Email"}, "method": "emptyValue"},
            ],
            "links": self._links(f"/domain/{domain}"),
        }

    def _network_json(self, network: Network) -> JSON:
        """Build the RFC 9083 ip network object, in the network's range style."""
        prefix = network.prefix
        key = "v4prefix" if prefix.version == 4 else "v6prefix"
        answer = {
            "rdapConformance": CONFORMANCE,
            "objectClassName": "ip network",
            "handle": network.handle,
            "startAddress": str(prefix.network_address),
            "endAddress": str(prefix.broadcast_address),
            "ipVersion": f"v{prefix.version}",
            "name": network.name,
            "type": "ASSIGNED PA",
            "country": network.country,
            "parentHandle": self._parent_handle(network),
            "cidr0_cidrs": [{key: str(prefix.network_address), "length": prefix.prefixlen}],
            "status": ["active"],
            "port43": PORT43[network.registry],
            "events": EVENTS,
            "links": self._links(f"/ip/{network.cidr}"),
            "entities": self._entities(network),
        }
        if network.range_style != "plain":
            _restyle_range(answer, prefix, network.range_style)
        if network.remarks:
            answer["remarks"] = [{"title": "remarks", "description": list(network.remarks)}]
        return answer

    def _parent_handle(self, network: Network) -> str:
        """Return the handle of the covering network, or of a synthetic RIR block."""
        prefix = network.prefix
        covering = [
            n.prefix
            for n in self.world.network_list()
            if n.prefix.version == prefix.version
            and n.prefix.prefixlen < prefix.prefixlen
            and prefix.network_address in n.prefix
        ]
        if covering:
            return prefix_handle(max(covering, key=lambda p: p.prefixlen))
        rir_block = 8 if prefix.version == 4 else 12
        return prefix_handle(prefix.supernet(new_prefix=min(prefix.prefixlen, rir_block)))

    def _entities(self, network: Network) -> list[JSON]:
        """Build the entities list: the RDAP style's, then a registry IRT and a role-less
        entity when the network has them (both at the top, as APNIC and AFRINIC put them)."""
        entities = self._styled_entities(network)
        handles, label = network.entity_handles, f"{network.org}\n{network.country}"
        if network.irt:
            card = vcard(handles["irt"], "group", network.irt, label)
            entities.append(self._entity_json(handles["irt"], ["abuse"], card))
        if network.roleless:
            entity = self._entity_json(
                handles["roleless"], [], vcard(network.org, "individual", network.roleless, label)
            )
            del entity["roles"]  # AFRINIC: entities with no roles member at all
            entities.append(entity)
        return entities

    def _styled_entities(self, network: Network) -> list[JSON]:
        """Build the entities list in the network's RDAP style."""
        handles, label = network.entity_handles, f"{network.org}\n{network.country}"
        org_card = vcard(network.org, "org", [], label)
        org = self._entity_json(handles["org"], ["registrant"], org_card)
        tech_roles = ["technical"] if network.style == "arin" else ["administrative", "technical"]
        tech_card = vcard(f"{network.name} NOC", "group", network.fallback, label)
        tech = self._entity_json(handles["tech"], tech_roles, tech_card)
        if network.tech_remarks:
            tech["remarks"] = [{"title": "remarks", "description": list(network.tech_remarks)}]
        abuse_card = vcard("Abuse contact", "group", network.abuse, label)
        abuse = self._entity_json(handles["abuse"], ["abuse"], abuse_card)
        if network.style == "arin":  # ARIN nests its POCs inside the registrant org
            org["entities"] = [abuse, tech] if network.abuse else [tech]
            return [org]
        if network.style == "ripe" and network.abuse:
            return [org, tech, abuse]
        return [org, tech]

    def _entity_json(self, handle: str, roles: list[str], card: list[Any]) -> JSON:
        """Build one entity object."""
        return {
            "objectClassName": "entity",
            "handle": handle,
            "roles": roles,
            "vcardArray": card,
            "links": self._links(f"/entity/{handle}"),
        }

    def _links(self, path: str) -> list[JSON]:
        """Build the self link for an object."""
        url = self.base_url + path
        return [{"value": url, "rel": "self", "href": url, "type": CONTENT_TYPE}]


def looped_json(answer: JSON, depth: int) -> str:
    """Serialise ANSWER with its entities looped DEPTH levels deep, as an unguarded server would.

    The first entity (the org) contains itself, and the contact entity (abuse, else the
    first other) and the org contain each other; the contact stays one level below the top.
    """
    flat = _flatten(answer["entities"])
    org = flat[0]
    contact = next((e for e in flat if "abuse" in e.get("roles", [])), flat[-1])
    top = {k: v for k, v in org.items() if k != "entities"}
    inner = [_chain([org], depth), _chain([contact, org], depth)]
    # Built as text: json.dumps itself would recurse past the interpreter's limit.
    head = json.dumps({**answer, "entities": [{**top, "entities": []}]})
    cut = head.rindex("[]")
    return head[:cut] + "[" + ", ".join(inner) + "]" + head[cut + 2 :]


def _chain(cycle: list[JSON], depth: int) -> str:
    """Return DEPTH entities taken in turn from CYCLE, each nested inside the one before."""
    opening, closing = [], []
    for level in range(depth):
        entity = {k: v for k, v in cycle[level % len(cycle)].items() if k != "entities"}
        text = json.dumps({**entity, "entities": []})
        cut = text.rindex("[]")
        opening.append(text[: cut + 1])
        closing.append(text[cut + 1 :])
    return "".join(opening) + "".join(reversed(closing))


def _flatten(entities: list[JSON]) -> list[JSON]:
    """Return the entities and every nested one, depth-first."""
    found: list[JSON] = []
    for entity in entities:
        found += [entity, *_flatten(entity.get("entities", []))]
    return found


def _find_entity(entities: list[JSON], handle: str) -> JSON | None:
    """Find an entity by handle, looking inside nested entities too."""
    for entity in entities:
        if entity["handle"] == handle:
            return entity
        found = _find_entity(entity.get("entities", []), handle)
        if found is not None:
            return found
    return None


def _registrar_entity(registrar: Registrar) -> JSON:
    """Build a registrar entity: IANA id, name and, in the icann style, its abuse contact."""
    ids = [] if registrar.iana_id is None else [str(registrar.iana_id)]
    nested = registrar.style == "icann" and registrar.abuse
    return {
        "objectClassName": "entity",
        "handle": registrar.handle,
        "roles": ["registrar"],
        "publicIds": [{"type": "IANA Registrar ID", "identifier": i} for i in ids],
        "vcardArray": [
            "vcard",
            [["version", {}, "text", "4.0"], ["fn", {}, "text", registrar.name]],
        ],
        "entities": [_abuse_entity(registrar.abuse)] if nested else [],
    }


def _abuse_entity(emails: list[str]) -> JSON:
    """Build a registrar's abuse entity as ICANN's profile has it: no handle, e-mail, phone."""
    props: list[list[Any]] = [
        ["version", {}, "text", "4.0"],
        ["fn", {}, "text", "Abuse contact"],
        ["tel", {"type": "voice"}, "uri", ABUSE_PHONE],
    ]
    props += [["email", {}, "text", email] for email in emails]
    return {"objectClassName": "entity", "roles": ["abuse"], "vcardArray": ["vcard", props]}


def _restyle_range(answer: JSON, prefix: IPNetwork, style: str) -> None:
    """Write ANSWER's range as STYLE does (plain is left as it is): without cidr0, so a
    client reads the shape itself."""
    del answer["cidr0_cidrs"]
    first, last = prefix.network_address, prefix.broadcast_address
    if style == "prefix-length":
        answer["startAddress"] = f"{first}/{prefix.max_prefixlen}"
        answer["endAddress"] = f"{last}/{prefix.max_prefixlen}"
    elif style == "zero-padded":
        answer["startAddress"], answer["endAddress"] = _padded(first), _padded(last)
    else:  # handle-only: the handle is the CIDR, and nothing else says the range
        del answer["startAddress"], answer["endAddress"]
        answer["handle"] = str(prefix)


def _padded(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """Write an address as ARIN does: IPv4 octets padded to three digits, IPv6 in full."""
    if address.version == 4:
        return ".".join(part.zfill(3) for part in str(address).split("."))
    return address.exploded


def _counted(found: Found) -> Target:
    """Return what a request that names FOUND's network counts for, with its answer."""
    network, answer = found
    return (OTHER if network is None else network.registry), answer


def _ok(obj: JSON) -> Reply:
    """Return a 200 reply with a JSON object."""
    return 200, json.dumps(obj).encode(), {}


def _error(status: int, description: str, headers: dict[str, str] | None = None) -> Reply:
    """Return an RFC 9083 error reply."""
    body = {
        "rdapConformance": ["rdap_level_0"],
        "errorCode": status,
        "title": TITLES.get(status, "Error"),
        "description": [description],
    }
    return status, json.dumps(body).encode(), headers or {}


class _Handler(DelayedHandler):
    """Hand every GET to the owning RDAPServer, answering after the world's RDAP latency."""

    timeout = 5  # a stalled client must not pin a thread forever

    def do_GET(self) -> None:
        """Answer one RDAP request."""
        owner = cast(RDAPServer, cast(LocalHTTPServer, self.server).owner)
        status, body, headers = owner.route(self.path)
        self.answer_after(owner.world.latency.rdap, owner.stopping)
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Access-Control-Allow-Origin", "*")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep stderr quiet; the server's request log is the record."""


def _covers(prefix: IPNetwork, wanted: IPNetwork) -> bool:
    """Tell whether PREFIX holds every address of WANTED."""
    return (
        prefix.version == wanted.version
        and int(prefix.network_address) <= int(wanted.network_address)
        and int(wanted.broadcast_address) <= int(prefix.broadcast_address)
    )


RDAPServer.handler = _Handler
