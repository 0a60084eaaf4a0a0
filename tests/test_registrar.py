"""Registrar escalation, the trace part: registered domains, IANA's bootstrap, RDAP domain
answers (ICANN's gTLD profile and hostile ones), caching, and the simulated RDAP server."""

from __future__ import annotations

import copy
import json
import random
from collections import Counter
from collections.abc import Callable, Iterator
from importlib.resources import files
from typing import Any

import httpx
import pytest

from workflows.config.settings import load_settings
from workflows.core.emails import is_plain_address
from workflows.core.urls import normalize_url
from workflows.errors import LookupFailed
from workflows.sim import Network, SimInternet, World
from workflows.sim.world import Registrar
from workflows.trace.ratelimit import RateLimiter
from workflows.trace.rdap import decode_json
from workflows.trace.rdaphttp import MAX_BODY
from workflows.trace.registrar import (
    MISS_TTL,
    Bootstrap,
    RegistrarClient,
    RegistrarRecord,
    parse_domain,
    registered_domain,
    shipped_bootstrap,
)
from workflows.trace.tracer import Tracer

BASE = "https://rdap.test"

# -- registered domains --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "domain"),
    [
        ("www.example.com", "example.com"),
        ("example.com", "example.com"),
        ("WWW.Example.COM.", "example.com"),
        ("a.b.example.co.uk", "example.co.uk"),
        ("shop.gb-host.test", "gb-host.test"),  # an unknown TLD counts as one label
        ("www.xn--fiqs8s", "www.xn--fiqs8s"),  # an IDN TLD, as its A-label
        ("city.kawasaki.jp", "city.kawasaki.jp"),  # a PSL exception rule (!city.kawasaki.jp)
        ("a.x.kawasaki.jp", "a.x.kawasaki.jp"),  # a PSL wildcard rule (*.kawasaki.jp)
        # Private suffixes do not count: the registrar holds github.io, not user.github.io.
        ("user.github.io", "github.io"),
        ("github.io", "github.io"),
        ("someone.blogspot.com", "blogspot.com"),
    ],
)
def test_registered_domain_is_the_icann_registration(host: str, domain: str) -> None:
    assert registered_domain(host) == domain


@pytest.mark.parametrize(
    "host",
    [
        pytest.param("co.uk", id="a-public-suffix"),
        pytest.param("com", id="a-tld"),
        pytest.param("x.kawasaki.jp", id="a-wildcard-suffix"),
        pytest.param("localhost", id="one-label"),
        pytest.param("192.0.2.1", id="ipv4-literal"),
        pytest.param("2001:db8::1", id="ipv6-literal"),
        pytest.param("[2001:db8::1]", id="bracketed-ipv6-literal"),
        pytest.param("", id="empty"),
        pytest.param("a..example.com", id="empty-label"),
        pytest.param("bücher.de", id="u-label"),
        pytest.param("x" * 64 + ".com", id="label-too-long"),
    ],
)
def test_registered_domain_is_none(host: str) -> None:
    assert registered_domain(host) is None


# -- bootstrap -----------------------------------------------------------------------------


def test_shipped_bootstrap_is_ianas_file() -> None:
    raw = json.loads((files("workflows") / "data" / "rdap-dns.json").read_text(encoding="utf-8"))
    assert raw["description"] == "RDAP bootstrap file for Domain Name System registrations"
    assert (raw["version"], len(raw["services"])) == ("1.0", 596)
    shipped = shipped_bootstrap()
    assert shipped.publication == raw["publication"] == "2026-01-30T00:00:01Z"
    assert shipped.server_for("example.com") == "https://rdap.verisign.com/com/v1/"
    assert shipped.server_for("example.co.uk") == "https://rdap.nominet.uk/uk/"
    assert shipped.server_for("example.invalid-tld") is None
    assert shipped.server_for("example.kg") is None  # its entry has no https URL


def test_bootstrap_picks_the_longest_match_and_the_first_https_url() -> None:
    bootstrap = Bootstrap.from_json(
        {
            "description": "RDAP bootstrap file for Domain Name System registrations",
            "publication": "2026-01-30T00:00:01Z",
            "services": [
                [["uk"], ["https://uk.example/"]],
                [["co.uk"], ["http://plain.example/", "https://co-uk.example/"]],
                [["test"], ["http://only-plain.example/"]],
            ],
        }
    )
    assert bootstrap.server_for("example.co.uk") == "https://co-uk.example/"
    assert bootstrap.server_for("example.org.uk") == "https://uk.example/"
    assert bootstrap.server_for("example.test") is None


@pytest.mark.parametrize(
    "data",
    [None, [], {"services": "x"}, {"services": [["com"]]}, {"services": [1]}],
    ids=["null", "list", "services-not-a-list", "service-of-one", "service-not-a-list"],
)
def test_bootstrap_refuses_what_is_not_one(data: Any) -> None:
    with pytest.raises(ValueError):
        Bootstrap.from_json(data)


def test_url_for_uses_the_base_when_there_is_one() -> None:
    client = make_client(lambda request: httpx.Response(404), base=BASE)
    assert client.url_for("example.com") == (f"{BASE}/domain/example.com", "rdap.verisign.com")
    assert client.url_for("gb-host.test") == (f"{BASE}/domain/gb-host.test", "rdap.test")


def test_url_for_follows_the_bootstrap_without_a_base() -> None:
    client = make_client(lambda request: httpx.Response(404), base=None)
    assert client.url_for("example.com") == (
        "https://rdap.verisign.com/com/v1/domain/example.com",
        "rdap.verisign.com",
    )
    with pytest.raises(LookupFailed) as failed:
        client.lookup("www.gb-host.test")
    assert (failed.value.kind, failed.value.permanent) == ("rdap_no_server", True)


# -- parsing -------------------------------------------------------------------------------


def card(*emails: str, fn: str = "Abuse contact") -> list[Any]:
    props: list[Any] = [["version", {}, "text", "4.0"], ["fn", {}, "text", fn]]
    props += [["email", {}, "text", e] for e in emails]
    return ["vcard", props]


def abuse_entity(*emails: str) -> dict[str, Any]:
    return {"objectClassName": "entity", "roles": ["abuse"], "vcardArray": card(*emails)}


def registrar_entity(iana_id: str = "292", *nested: dict[str, Any]) -> dict[str, Any]:
    return {
        "objectClassName": "entity",
        "handle": iana_id,
        "roles": ["registrar"],
        "publicIds": [{"type": "IANA Registrar ID", "identifier": iana_id}],
        "vcardArray": card(fn="MarkMonitor Inc."),
        "entities": list(nested),
    }


def domain_object(domain: str = "example.com", *entities: dict[str, Any]) -> dict[str, Any]:
    """Return a domain object shaped as ICANN's gTLD RDAP response profile has it."""
    return {
        "rdapConformance": ["rdap_level_0", "icann_rdap_response_profile_1"],
        "objectClassName": "domain",
        "handle": "2336799_DOMAIN_COM-VRSN",
        "ldhName": domain.upper(),  # Verisign answers in capitals
        "status": ["client delete prohibited"],
        "events": [{"eventAction": "registration", "eventDate": "1995-08-14T04:00:00Z"}],
        "entities": list(entities)
        or [
            {"objectClassName": "entity", "roles": ["registrant"], "vcardArray": card("")},
            registrar_entity("292", abuse_entity("abusecomplaints@markmonitor.com")),
        ],
    }


def test_parse_reads_the_abuse_contact_nested_in_the_registrar() -> None:
    record = parse_domain(domain_object(), "src", "example.com")
    assert record == RegistrarRecord(
        domain="example.com",
        name="MarkMonitor Inc.",
        iana_id="292",
        handle="292",
        abuse=("abusecomplaints@markmonitor.com",),
        abuse_source="registrar",
        source="src",
    )


def test_parse_falls_back_to_a_top_level_abuse_entity() -> None:
    data = domain_object("example.com", registrar_entity("292"), abuse_entity("abuse@reg.example"))
    record = parse_domain(data, "src", "example.com")
    assert (record.abuse, record.abuse_source) == (("abuse@reg.example",), "domain")


@pytest.mark.parametrize("email", ["", "REDACTED FOR PRIVACY", "redacted@redacted.invalid"])
def test_parse_keeps_no_redacted_address(email: str) -> None:
    data = domain_object("example.com", registrar_entity("292", abuse_entity(email)))
    record = parse_domain(data, "src", "example.com")
    assert (record.abuse, record.abuse_source, record.iana_id) == ((), None, "292")


def test_parse_reads_a_numeric_iana_id_and_strips_control_characters_from_the_name() -> None:
    registrar = registrar_entity("292")
    registrar["publicIds"] = [
        {"type": "other", "identifier": "x"},
        {"type": "IANA Registrar ID", "identifier": 146},
    ]
    registrar["vcardArray"] = card(fn="Evil\r\nBcc: x@y.example\x00 Registrar")
    record = parse_domain(domain_object("example.com", registrar), "src", "example.com")
    assert (record.iana_id, record.name) == ("146", "EvilBcc: x@y.example Registrar")


@pytest.mark.parametrize(
    "data",
    [
        pytest.param([], id="a-list"),
        pytest.param("domain", id="a-string"),
        pytest.param({"objectClassName": "ip network"}, id="another-object-class"),
        pytest.param({"errorCode": 404, "objectClassName": 7}, id="odd-object-class"),
        pytest.param(domain_object("other.com"), id="another-domain"),
        pytest.param({**domain_object(), "ldhName": 5}, id="ldh-name-not-a-string"),
    ],
)
def test_parse_refuses_what_is_not_this_domains_object_for_good(data: Any) -> None:
    with pytest.raises(LookupFailed) as failed:
        parse_domain(data, "src", "example.com")
    assert (failed.value.kind, failed.value.permanent) == ("rdap_malformed", True)


HOSTILE: list[Any] = [
    None,
    True,
    -1,
    1e308,
    "",
    "x" * 5000,
    "abuse@evil.example\r\nBcc: victim@x.example",
    [],
    {},
    [[[[[]]]]],
    {"roles": "abuse", "vcardArray": card("abuse@string-role.example")},
    ["vcard", "not-a-list"],
    ["email", {}, "text", {"x": 1}],
]


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Yield the path of every value inside VALUE (dict keys and list indexes)."""
    yield path
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, inner in items:
        yield from _paths(inner, (*path, key))


def _mutated(data: dict[str, Any], rng: random.Random) -> Any:
    """Return DATA with one to three values replaced by hostile ones (or deleted)."""
    result: Any = copy.deepcopy(data)
    for _ in range(rng.randint(1, 3)):
        paths = list(_paths(result))
        path = rng.choice(paths)
        if not path:
            return rng.choice(HOSTILE)
        parent = result
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and rng.random() < 0.2:
            del parent[path[-1]]
        else:
            parent[path[-1]] = copy.deepcopy(rng.choice(HOSTILE))
    return result


def test_parse_of_mutated_answers_raises_nothing_but_lookup_failed() -> None:
    rng = random.Random(12)  # seeded: the same thousand answers every run
    outcomes: Counter[str] = Counter()
    for _ in range(1000):
        data = _mutated(domain_object(), rng)
        body = json.dumps(data).encode()
        try:
            record = parse_domain(decode_json(body, "src"), "src", "example.com")
        except LookupFailed as error:
            outcomes[error.kind] += 1
            continue
        outcomes["parsed"] += 1
        assert all(is_plain_address(a) for a in record.abuse)
        assert all(len(v or "") <= 200 for v in (record.name, record.handle, record.iana_id))
    assert outcomes["parsed"] > 500 and outcomes["rdap_malformed"] > 0


def test_parse_survives_entity_loops_and_deep_nesting() -> None:
    looped: dict[str, Any] = registrar_entity("292", abuse_entity("abuse@reg.example"))
    for _ in range(10):  # the registrar inside itself, ten times over
        looped = registrar_entity("292", abuse_entity("abuse@reg.example"), looped)
    data = domain_object("example.com", looped)
    record = parse_domain(decode_json(json.dumps(data).encode(), "src"), "src", "example.com")
    assert record.abuse == ("abuse@reg.example",)
    # Nesting far past the interpreter's recursion limit is cut off before parsing.
    text = '{"objectClassName": "domain", "entities": ' + "[" * 5000 + "]" * 5000 + "}"
    assert parse_domain(decode_json(text.encode(), "src"), "src", "example.com").abuse == ()


# -- the client: caching, failures, pace ---------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


Handler = Callable[[httpx.Request], httpx.Response]


def make_client(
    handler: Handler, base: str | None = BASE, clock: Clock | None = None
) -> RegistrarClient:
    clock = clock or Clock()
    http = httpx.Client(transport=httpx.MockTransport(handler), trust_env=False)
    limiter = RateLimiter(100, clock=clock, sleep=clock.sleep)
    return RegistrarClient(http, limiter, ttl=3600, base=base, max_wait=5, clock=clock)


class Answers:
    """An RDAP server in a MockTransport: answers by domain, counts requests per path."""

    def __init__(self, **answers: Any) -> None:
        self.answers = {k.replace("_", "."): v for k, v in answers.items()}
        self.asked: Counter[str] = Counter()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.asked[request.url.path] += 1
        domain = request.url.path.rsplit("/", 1)[-1]
        answer = self.answers.get(domain, 404)
        if callable(answer):
            answer = answer()
        if isinstance(answer, httpx.Response):
            return answer
        if isinstance(answer, int):
            return httpx.Response(answer, json={"errorCode": answer})
        return httpx.Response(200, json=answer)


def test_two_hosts_under_one_domain_cost_one_request() -> None:
    server = Answers(example_com=domain_object())
    client = make_client(server)
    first = client.lookup("www.example.com")
    second = client.lookup("img.example.com")
    assert first is not None and second is not None
    assert (first.cached, second.cached) == (False, True)
    assert second.abuse == ("abusecomplaints@markmonitor.com",)
    assert server.asked == {"/domain/example.com": 1} and client.queries == 1


def test_a_registrars_abuse_contact_serves_its_other_domains() -> None:
    bare = domain_object("other.com", registrar_entity("292"))
    server = Answers(
        example_com=domain_object(),
        other_com=bare,
        third_com=domain_object("third.com", registrar_entity("9")),
    )
    client = make_client(server)
    assert client.lookup("example.com") is not None
    other = client.lookup("www.other.com")
    assert other is not None
    assert (other.abuse, other.abuse_source) == (
        ("abusecomplaints@markmonitor.com",),
        "registrar (earlier answer)",
    )
    third = client.lookup("third.com")  # another registrar: nothing to borrow
    assert third is not None and third.abuse == ()


def test_no_registered_domain_asks_nothing() -> None:
    server = Answers()
    client = make_client(server)
    assert client.lookup("192.0.2.7") is None
    assert client.lookup("co.uk") is None
    assert server.asked == {}


def test_a_transient_failure_is_answered_from_memory_briefly() -> None:
    clock = Clock()
    server = Answers(example_com=500)
    client = make_client(server, clock=clock)
    for _ in range(3):
        with pytest.raises(LookupFailed) as failed:
            client.lookup("www.example.com")
        assert (failed.value.kind, failed.value.permanent) == ("rdap_unavailable", False)
    assert client.queries == 1
    clock.now += client.failure_ttl
    server.answers["example.com"] = domain_object()
    assert client.lookup("www.example.com") is not None
    assert client.queries == 2


def test_no_such_domain_is_remembered_longer() -> None:
    clock = Clock()
    client = make_client(Answers(), clock=clock)
    for _ in range(2):
        with pytest.raises(LookupFailed) as failed:
            client.lookup("gone.example.com")
        assert (failed.value.kind, failed.value.permanent) == ("rdap_not_found", True)
        clock.now += client.failure_ttl  # still remembered past the brief TTL
    assert client.queries == 1
    clock.now += MISS_TTL
    with pytest.raises(LookupFailed):
        client.lookup("gone.example.com")
    assert client.queries == 2


def test_a_short_retry_after_is_waited_out_once_and_not_remembered() -> None:
    replies = iter(
        [
            httpx.Response(429, headers={"Retry-After": "2"}),
            httpx.Response(200, json=domain_object()),
        ]
    )
    clock = Clock()
    client = make_client(Answers(example_com=lambda: next(replies)), clock=clock)
    record = client.lookup("example.com")
    assert record is not None and record.abuse and client.queries == 2
    assert clock.now >= 1002.0  # the limiter held the second request back


def test_a_long_retry_after_fails_at_once_and_is_not_remembered() -> None:
    server = Answers(example_com=lambda: httpx.Response(429, headers={"Retry-After": "600"}))
    client = make_client(server)
    with pytest.raises(LookupFailed) as failed:
        client.lookup("example.com")
    assert (failed.value.kind, failed.value.permanent) == ("rdap_rate_limited", False)
    assert failed.value.retry_after == 600
    with pytest.raises(LookupFailed) as again:  # the limiter, not the failure memory, says
        client.lookup("example.com")
    assert again.value.kind == "rdap_rate_limited" and client.queries == 1


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        pytest.param(
            httpx.Response(200, content=b'{"objectClassName": "dom'),
            "rdap_malformed",
            id="cut-short",
        ),
        pytest.param(httpx.Response(200, content=b"\xff\xfe"), "rdap_malformed", id="not-utf8"),
        pytest.param(
            httpx.Response(200, content=b" " * (MAX_BODY + 1)), "rdap_malformed", id="too-large"
        ),
        pytest.param(httpx.Response(503), "rdap_unavailable", id="503"),
    ],
)
def test_what_may_heal_is_a_transient_failure(reply: httpx.Response, kind: str) -> None:
    client = make_client(Answers(example_com=reply))
    with pytest.raises(LookupFailed) as failed:
        client.lookup("example.com")
    assert (failed.value.kind, failed.value.permanent) == (kind, False)


def test_a_connection_error_is_a_transient_failure() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(LookupFailed) as failed:
        make_client(refuse).lookup("example.com")
    assert (failed.value.kind, failed.value.permanent) == ("rdap_unavailable", False)


# -- the tracer, against the simulated internet --------------------------------------------


def make_world() -> World:
    world = World(
        networks=[
            Network(
                "185.199.108.0/22", 201234, "GBHOST-NET", "GB", abuse=["abuse@gb-host.example"]
            ),
        ]
    )
    world.add_registrar(
        handle="1234",
        name="Example Registrar, Inc.",
        iana_id=1234,
        abuse=["abuse@registrar.example"],
    )
    world.add_registrar(
        Registrar("5678", "Quiet Registrar", style="none", abuse=["hidden@quiet.example"])
    )
    world.register_domain("gb-host.test", "1234")
    world.register_domain("flaky.test", "1234")
    world.register_domain("quiet.test", "5678")
    for host in (
        "shop.gb-host.test",
        "img.gb-host.test",
        "gb-host.test",
        "www.flaky.test",
        "www.quiet.test",
        "www.unregistered.test",
    ):
        world.set_records(host, [("A", "185.199.108.10")])
    return world


@pytest.fixture
def sim() -> Iterator[SimInternet]:
    with SimInternet(make_world()) as running:
        yield running


@pytest.fixture
def tracer(sim: SimInternet) -> Iterator[Tracer]:
    built = Tracer.from_settings(load_settings({**sim.env(), "TAKEDOWN_COUNTRY": "GB"}))
    yield built
    built.close()


def traced(tracer: Tracer, url: str) -> dict[str, Any]:
    return tracer.trace(normalize_url(url)).as_dict()


def test_registrar_contacts_ask_once_for_many_urls_on_one_domain(
    tracer: Tracer, sim: SimInternet
) -> None:
    urls = [
        "http://shop.gb-host.test/a.jpg",
        "http://img.gb-host.test/b",
        "https://gb-host.test/c?d=1",
    ]
    traces = [traced(tracer, url) for url in urls]
    sim.rdap.clear_log()
    assert [tracer.registrar_contacts(t) for t in traces] == [["abuse@registrar.example"]] * 3
    assert sim.rdap.requests == ["/domain/gb-host.test"]
    assert sim.rdap.by_registry() == {"domain": 1}
    record = tracer.registrar("img.gb-host.test")
    assert record is not None and (record.name, record.iana_id) == (
        "Example Registrar, Inc.",
        "1234",
    )


def test_registrar_contacts_are_empty_without_a_registrar_to_ask(
    tracer: Tracer, sim: SimInternet
) -> None:
    assert tracer.registrar_contacts(traced(tracer, "http://www.unregistered.test/")) == []  # 404
    assert tracer.registrar_contacts(traced(tracer, "http://www.quiet.test/")) == []  # no abuse
    assert tracer.registrar_contacts(traced(tracer, "http://185.199.108.10/x")) == []  # an IP
    assert tracer.registrar_contacts({"host": None}) == []
    assert sim.rdap.by_registry()["domain"] == 2


def test_registrar_contacts_raise_while_the_registry_fails(
    tracer: Tracer, sim: SimInternet
) -> None:
    trace = traced(tracer, "http://www.flaky.test/")
    tracer.registrars.failure_ttl = 0  # as the engine sets it: its retry asks again
    sim.world.set_registrar_fault("1234", "500", times=1)
    with pytest.raises(LookupFailed) as failed:
        tracer.registrar_contacts(trace)
    assert failed.value.permanent is False
    assert tracer.registrar_contacts(trace) == ["abuse@registrar.example"]
    assert sim.rdap.faults_served == {"500": 1}


def test_the_world_refuses_a_domain_of_an_unknown_registrar() -> None:
    world = World()
    with pytest.raises(KeyError):
        world.register_domain("example.test", "nobody")
    with pytest.raises(ValueError):
        Registrar("1", "x", style="nested")
    with pytest.raises(ValueError):
        World(domains={"example.test": "nobody"})
