"""An RDAP server (RFC 7482 paths, RFC 9083 JSON) for the simulated world's networks."""

from __future__ import annotations

import ipaddress
import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler
from typing import Any, cast
from urllib.parse import unquote, urlsplit

from workflows.sim.httpservice import HTTPService, LocalHTTPServer
from workflows.sim.world import IPNetwork, Network, World, prefix_handle

JSON = dict[str, Any]
Reply = tuple[int, bytes, dict[str, str]]
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


class RDAPServer(HTTPService):
    """A threaded HTTP RDAP server answering from a World; use as a context manager."""

    def __init__(self, world: World, host: str = "127.0.0.1", port: int = 0) -> None:
        """Prepare a server for world; port 0 picks a free port at start()."""
        super().__init__(host, port)
        self.world = world
        self.requests: list[str] = []
        self.faults_served: Counter[str] = Counter()  # by fault name: proof that one fired
        self._log_lock = threading.Lock()

    @property
    def base_url(self) -> str:
        """Return the URL clients put in front of /ip/<addr>."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def clear_log(self) -> None:
        """Forget the requests seen so far."""
        with self._log_lock:
            self.requests.clear()
            self.faults_served.clear()

    def count(self, path: str) -> int:
        """Return how many requests asked for exactly this path."""
        with self._log_lock:
            return Counter(self.requests)[path]

    # -- routing ----------------------------------------------------------------------------

    def route(self, raw_path: str) -> Reply:
        """Log a request path and answer it."""
        path = urlsplit(raw_path).path
        with self._log_lock:
            self.requests.append(path)
        parts = [unquote(p) for p in path.split("/") if p]
        if len(parts) >= 2 and parts[0] == "ip":
            return self._ip("/".join(parts[1:]))
        if len(parts) == 2 and parts[0] == "entity":
            return self._entity(parts[1])
        if len(parts) == 2 and parts[0] == "autnum":
            return self._autnum(parts[1])
        return _error(400, f"unsupported path {path}")

    def _ip(self, query: str) -> Reply:
        """Answer /ip/<address> or /ip/<prefix>/<length>."""
        try:
            wanted = ipaddress.ip_network(query, strict=False)
        except ValueError:
            return _error(400, f"not an IP address or prefix: {query}")
        # RFC 7482 §3.1.1: the most specific network that covers the whole range asked for.
        covering = [n for n in self.world.network_list() if _covers(n.prefix, wanted)]
        network = max(covering, key=lambda n: n.prefix.prefixlen, default=None)
        if network is None:
            return _error(404, f"no registration covers {query}")
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

    def _entity(self, handle: str) -> Reply:
        """Answer /entity/<handle> with the first network's entity of that handle."""
        for network in self.world.network_list():
            found = _find_entity(self._entities(network), handle.upper())
            if found is not None:
                return _ok({"rdapConformance": CONFORMANCE, **found})
        return _error(404, f"no entity {handle}")

    def _autnum(self, number: str) -> Reply:
        """Answer /autnum/<n> from the first network the AS originates."""
        digits = number.upper().removeprefix("AS")
        if not digits.isdigit():
            return _error(400, f"not an AS number: {number}")
        networks = self.world.networks_for_asn(int(digits))
        if not networks:
            return _error(404, f"no registration for AS{digits}")
        first = networks[0]
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

    # -- JSON builders ----------------------------------------------------------------------

    def _network_json(self, network: Network) -> JSON:
        """Build the RFC 9083 ip network object."""
        prefix = network.prefix
        key = "v4prefix" if prefix.version == 4 else "v6prefix"
        return {
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
        """Build the entities list in the network's RDAP style."""
        handles, label = network.entity_handles, f"{network.org}\n{network.country}"
        org_card = vcard(network.org, "org", [], label)
        org = self._entity_json(handles["org"], ["registrant"], org_card)
        tech_roles = ["technical"] if network.style == "arin" else ["administrative", "technical"]
        tech_card = vcard(f"{network.name} NOC", "group", network.fallback, label)
        tech = self._entity_json(handles["tech"], tech_roles, tech_card)
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
    contact = next((e for e in flat if "abuse" in e["roles"]), flat[-1])
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


class _Handler(BaseHTTPRequestHandler):
    """Hand every GET to the owning RDAPServer."""

    timeout = 5  # a stalled client must not pin a thread forever

    def do_GET(self) -> None:
        """Answer one RDAP request."""
        owner = cast(RDAPServer, cast(LocalHTTPServer, self.server).owner)
        status, body, headers = owner.route(self.path)
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
