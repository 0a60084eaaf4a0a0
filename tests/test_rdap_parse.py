"""RDAP parsing, contact extraction, caching and rate limiting: pure, clock injected."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workflows.core.emails import is_plain_address
from workflows.errors import LookupFailed
from workflows.trace.contacts import extract_contacts, vcard_emails
from workflows.trace.ratelimit import RateLimiter
from workflows.trace.rdap import (
    MAX_RETRY_AFTER,
    NetworkCache,
    NetworkRecord,
    decode_json,
    parse_network,
    prune_depth,
    retry_after,
)


def vcard(*emails: str, fn: str = "Contact") -> list[Any]:
    props: list[Any] = [["version", {}, "text", "4.0"], ["fn", {}, "text", fn]]
    props += [["email", {"type": "work"}, "text", e] for e in emails]
    return ["vcard", props]


def entity(handle: str, roles: list[str], *emails: str, nested: list[Any] | None = None) -> Any:
    found: dict[str, Any] = {
        "objectClassName": "entity",
        "handle": handle,
        "roles": roles,
        "vcardArray": vcard(*emails),
    }
    if nested is not None:
        found["entities"] = nested
    return found


def network(entities: list[Any], **extra: Any) -> dict[str, Any]:
    return {
        "objectClassName": "ip network",
        "handle": "NET-185-199-108-0-1",
        "startAddress": "185.199.108.0",
        "endAddress": "185.199.111.255",
        "ipVersion": "v4",
        "name": "EXAMPLE-NET",
        "country": "gb",
        "entities": entities,
        **extra,
    }


ARIN_STYLE = network(
    [
        entity(
            "ORG-1",
            ["registrant"],
            nested=[
                entity("ABUSE-1", ["abuse"], "Abuse@Host.example"),
                entity("TECH-1", ["technical"], "noc@host.example"),
            ],
        )
    ]
)
RIPE_STYLE = network(
    [
        entity("ORG-1", ["registrant"]),
        entity("AC1-RIPE", ["abuse"], "abuse@ripe-host.example"),
        entity("TC1-RIPE", ["technical", "administrative"], "tech@ripe-host.example"),
    ]
)
NO_ABUSE = network(
    [
        entity("ORG-1", ["registrant"], "owner@h.example"),
        entity("TC1", ["technical"], "tech@h.example"),
    ]
)


@pytest.mark.parametrize(
    ("data", "abuse", "fallback"),
    [
        pytest.param(ARIN_STYLE, ["abuse@host.example"], ["noc@host.example"], id="arin-nested"),
        pytest.param(
            RIPE_STYLE, ["abuse@ripe-host.example"], ["tech@ripe-host.example"], id="ripe-top-level"
        ),
        pytest.param(
            NO_ABUSE,
            [],
            ["tech@h.example", "owner@h.example"],
            id="no-abuse-role-technical-before-registrant",
        ),
    ],
)
def test_extract_contacts(data: dict[str, Any], abuse: list[str], fallback: list[str]) -> None:
    assert extract_contacts(data) == (abuse, fallback)


def test_parse_network_reads_range_country_and_nested_abuse() -> None:
    record = parse_network(ARIN_STYLE, "http://rdap/ip/185.199.108.10")
    assert record.cidr == "185.199.108.0/22"
    assert record.country == "GB"
    assert record.abuse == ("abuse@host.example",)
    assert not record.abuse_fallback


def test_parse_network_falls_back_and_marks_it() -> None:
    record = parse_network(NO_ABUSE, "u")
    assert record.abuse == ("tech@h.example", "owner@h.example")
    assert record.abuse_fallback


@pytest.mark.parametrize(
    "data",
    [
        pytest.param([], id="list"),
        pytest.param({"objectClassName": "entity"}, id="wrong-class"),
        pytest.param(network([], startAddress="nonsense"), id="bad-range"),
        pytest.param({"objectClassName": "ip network"}, id="no-handle"),
    ],
)
def test_parse_network_refuses_malformed_objects(data: Any) -> None:
    with pytest.raises(LookupFailed) as caught:
        parse_network(data, "u")
    assert caught.value.kind == "rdap_malformed"


def test_header_injection_in_vcard_email_is_dropped() -> None:
    assert vcard_emails(vcard("a@b.example\r\nBcc: x@y.example", "ok@b.example")) == [
        "ok@b.example"
    ]


def test_deeply_nested_entities_are_bounded() -> None:
    deep: Any = entity("E0", ["abuse"], "deep@h.example")
    for i in range(50):
        deep = entity(f"E{i + 1}", ["registrant"], nested=[deep])
    abuse, _ = extract_contacts(network([deep]))
    assert abuse == []


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def record(start: str, end: str, handle: str = "N") -> NetworkRecord:
    return NetworkRecord(handle, "", start, end, None, "GB", (), False, "u")


def test_cache_serves_every_address_in_the_network_until_ttl() -> None:
    clock = Clock()
    cache = NetworkCache(ttl=60, clock=clock)
    cache.put(record("185.199.108.0", "185.199.111.255"))
    hit = cache.get("185.199.110.77")
    assert hit is not None and hit.cached
    assert cache.get("185.199.112.1") is None
    clock.now += 61
    assert cache.get("185.199.110.77") is None


def test_cache_prefers_the_most_specific_network() -> None:
    cache = NetworkCache(ttl=60, clock=Clock())
    cache.put(record("185.0.0.0", "185.255.255.255", "BIG"))
    cache.put(record("185.199.108.0", "185.199.108.255", "SMALL"))
    assert (cache.get("185.199.108.9") or record("0.0.0.0", "0.0.0.0")).handle == "SMALL"
    assert (cache.get("185.1.1.1") or record("0.0.0.0", "0.0.0.0")).handle == "BIG"


def test_cache_keeps_v4_and_v6_apart() -> None:
    cache = NetworkCache(ttl=60, clock=Clock())
    cache.put(record("2a00::", "2a00::ffff"))
    assert cache.get("0.0.0.5") is None
    assert cache.get("2a00::5") is not None


def test_rate_limiter_spaces_calls_per_registry() -> None:
    clock = Clock()
    limiter = RateLimiter(2, clock=clock, sleep=clock.sleep)
    waits = [limiter.acquire("ripencc") for _ in range(5)]
    assert waits == [0.0, 0.0, 0.5, 0.5, 0.5]
    assert limiter.acquire("arin") == 0.0  # another registry has its own budget


def test_rate_limiter_honours_a_block() -> None:
    clock = Clock()
    limiter = RateLimiter(10, clock=clock, sleep=clock.sleep)
    limiter.block("arin", 7)
    assert limiter.acquire("arin") == 7
    assert limiter.acquire("ripencc") == 0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("3", 3.0),
        (None, 60.0),
        ("soon", 60.0),
        ("Thu, 01 Jan 1970 00:00:30 GMT", 20.0),
        ("²", 60.0),  # a digit to str.isdigit, not to float()
        ("99999999999", MAX_RETRY_AFTER),  # one header must not silence a registry for years
    ],
)
def test_retry_after(header: str | None, seconds: float) -> None:
    assert retry_after(header, now=10.0) == seconds


def test_cache_finds_the_record_covering_a_whole_range() -> None:
    cache = NetworkCache(ttl=60, clock=Clock())
    cache.put(record("185.199.0.0", "185.199.255.255", "UPSTREAM"))
    cache.put(record("185.199.108.20", "185.199.108.20", "HOST"))
    first, last = (
        int(ipaddress.ip_address("185.199.108.20")),
        int(ipaddress.ip_address("185.199.108.21")),
    )
    found = cache.covering(4, first, last)
    assert found is not None and found.handle == "UPSTREAM"
    assert cache.covering(4, first, first + 2**20) is None


def test_rate_limiter_fails_fast_past_max_wait() -> None:
    clock = Clock()
    limiter = RateLimiter(10, clock=clock, sleep=clock.sleep)
    limiter.block("arin", 3600)
    assert limiter.acquire("arin", max_wait=5) is None
    assert clock.slept == []  # nobody held a thread for the hour
    assert limiter.blocked_for("arin") == 3600
    clock.now += 3597
    assert limiter.acquire("arin", max_wait=5) == 3  # short enough to wait out


@pytest.mark.parametrize(
    ("data", "address"),
    [
        pytest.param(network([], endAddress="2a00::1"), None, id="mixed-versions"),
        pytest.param(
            network([], startAddress="185.199.111.255", endAddress="185.199.108.0"),
            None,
            id="upside-down",
        ),
        pytest.param(network([]), "185.199.112.1", id="misses-the-address-asked-for"),
        pytest.param(network([]), "2a00::1", id="other-version-than-asked-for"),
    ],
)
def test_parse_network_refuses_a_range_that_would_poison_the_cache(
    data: dict[str, Any], address: str | None
) -> None:
    with pytest.raises(LookupFailed) as caught:
        parse_network(data, "u", address)
    assert caught.value.kind == "rdap_malformed"


def test_country_must_be_two_ascii_letters() -> None:
    assert parse_network(network([], country="12"), "u").country is None
    assert parse_network(network([], country="é1"), "u").country is None
    assert parse_network(network([], country="gb"), "u").country == "GB"


# -- entity loops and deep nesting ------------------------------------------------------


def chain(handles: list[str], depth: int, innermost: Any = None) -> Any:
    """Return DEPTH entities taking turns from HANDLES, each nested in the one before."""
    inner = [] if innermost is None else [innermost]
    for level in reversed(range(depth)):
        handle = handles[level % len(handles)]
        roles = ["abuse"] if handle.startswith("ABUSE") else ["registrant"]
        emails = ["abuse@loop.example"] if handle.startswith("ABUSE") else []
        inner = [entity(handle, roles, *emails, nested=inner)]
    return inner[0]


@pytest.mark.parametrize(
    "entities",
    [
        pytest.param([chain(["ORG-1", "ABUSE-1"], 5000)], id="two-entities-nesting-each-other"),
        pytest.param(
            [
                entity("ORG-1", ["registrant"], nested=[chain(["ORG-1"], 5000)] * 3),
                entity("ABUSE-1", ["abuse"], "abuse@loop.example"),
            ],
            id="entity-containing-itself-before-the-abuse-entity",
        ),
        pytest.param(
            [
                entity("ORG-1", ["registrant"], nested=[entity("ORG-1", ["noc"])] * 400),
                entity("ABUSE-1", ["abuse"], "abuse@loop.example"),
            ],
            id="a-flood-of-self-copies",
        ),
        pytest.param(
            [
                entity(
                    "ORG-1", ["registrant"], nested=[entity(f"E{i}", ["noc"]) for i in range(400)]
                ),
                entity("ABUSE-1", ["abuse"], "abuse@loop.example"),
            ],
            id="a-nested-flood-does-not-use-up-the-budget-before-the-top-level",
        ),
    ],
)
def test_entity_loops_terminate_and_keep_the_abuse_contact(entities: list[Any]) -> None:
    record = parse_network(network(entities), "u")
    assert record.abuse == ("abuse@loop.example",)
    assert not record.abuse_fallback


def serialised_loop(depth: int) -> bytes:
    """Return an RDAP answer whose entity loop is written out DEPTH levels deep."""
    head = json.dumps(network([entity("ABUSE-1", ["abuse"], "abuse@loop.example", nested=[])]))
    cut = head.rindex("[]")
    org = json.dumps(entity("ORG-1", ["registrant"], nested=[]))
    opening = org[: org.rindex("[]") + 1]
    return (head[: cut + 1] + opening * depth + "]}" * depth + head[cut + 1 :]).encode()


def test_an_entity_loop_nested_past_the_decoder_limit_is_cut_not_fatal() -> None:
    record = parse_network(decode_json(serialised_loop(5000), "u"), "u")
    assert record.abuse == ("abuse@loop.example",)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"a": [1, 2}', id="mismatched-brackets"),
        pytest.param(b"]", id="closing-first"),
        pytest.param(b"\xff\xfe", id="not-utf-8"),
        pytest.param(b"[" * 100_000, id="deep-and-unclosed"),
        pytest.param(b'{"handle": "x"', id="cut-mid-object"),
    ],
)
def test_decode_json_refuses_what_is_not_json(body: bytes) -> None:
    with pytest.raises(LookupFailed) as caught:
        decode_json(body, "u")
    assert caught.value.kind == "rdap_malformed"


# -- properties: arbitrary answers never escape as anything but LookupFailed --------------

SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
JSON_LIKE = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
HOSTILE_TEXT = st.sampled_from(["", " ", "\r\n", "\n", "\t", "\x00", "é", "²", "@"])
EMAILS = st.one_of(
    st.emails(),
    st.builds(lambda a, sep, b: a + sep + b, st.emails(), HOSTILE_TEXT, st.emails()),
    st.builds(lambda e, sep: sep + e + sep, st.emails(), HOSTILE_TEXT),
    st.integers(200, 200_000).map(lambda n: "a" * n + "@huge.example"),
    st.text(max_size=30),
    SCALARS,
)
ROLES = (
    st.lists(
        st.sampled_from(["abuse", "ABUSE", "technical", "registrant", "noc", "administrative"])
        | SCALARS,
        max_size=3,
    )
    | SCALARS
)
PROPS = st.lists(
    st.builds(lambda e: ["email", {"type": "work"}, "text", e], EMAILS) | JSON_LIKE, max_size=4
)
VCARDS = st.builds(lambda props: ["vcard", props], PROPS) | JSON_LIKE
HANDLES = st.sampled_from(["ORG-1", "ABUSE-1", "abuse-1", "TECH-1"]) | SCALARS


def entity_of(nested: st.SearchStrategy[Any] | None) -> st.SearchStrategy[Any]:
    fields = {"handle": HANDLES, "roles": ROLES, "vcardArray": VCARDS}
    optional = {} if nested is None else {"entities": st.lists(nested, max_size=3) | SCALARS}
    return st.fixed_dictionaries(fields, optional=optional)


ENTITIES = st.recursive(entity_of(None) | JSON_LIKE, entity_of, max_leaves=15)
ADDRESSES = (
    st.sampled_from(
        ["185.199.108.0", "185.199.111.255", "2a00::", "2a00::ffff", "010.001.000.000", "nonsense"]
    )
    | SCALARS
)
RDAP_KEYS = st.sampled_from(
    ["handle", "startAddress", "endAddress", "ipVersion", "name", "country", "parentHandle",
     "remarks", "notices", "links", "events", "status", "entities", "objectClassName"]
)  # fmt: skip
DOCUMENTS = st.one_of(
    JSON_LIKE,
    st.dictionaries(RDAP_KEYS, JSON_LIKE | ADDRESSES | ENTITIES, max_size=14),
    st.builds(
        lambda start, end, version, extra: {
            **network([]),
            "startAddress": start,
            "endAddress": end,
            "ipVersion": version,
            **extra,
        },
        ADDRESSES,
        ADDRESSES,
        st.sampled_from(["v4", "v6"]) | SCALARS,
        st.dictionaries(RDAP_KEYS, JSON_LIKE, max_size=4),
    ),
)


def header_safe(address: str) -> bool:
    return is_plain_address(address) and not any(c in address for c in " \t\r\n")


def assert_usable(record: NetworkRecord) -> None:
    """A record the engine may cache and write to: a real range, header-safe contacts."""
    start, end = ipaddress.ip_address(record.start), ipaddress.ip_address(record.end)
    assert start.version == end.version and int(start) <= int(end)
    assert all(header_safe(address) for address in record.abuse)


@settings(max_examples=300)
@given(DOCUMENTS)
def test_any_document_is_a_network_or_malformed(data: Any) -> None:
    try:
        record = parse_network(data, "u")
    except LookupFailed as error:
        assert error.kind == "rdap_malformed"
    else:
        assert_usable(record)


@settings(max_examples=300)
@given(st.lists(ENTITIES, max_size=6), st.lists(ENTITIES, max_size=6), st.booleans())
def test_any_entities_beside_a_top_level_abuse_entity_keep_it(
    before: list[Any], after: list[Any], loop: bool
) -> None:
    abuse = entity("ABUSE-1", ["abuse"], "abuse@found.example")
    if loop:  # the abuse entity contains its own org, which contains it again
        abuse["entities"] = [chain(["ORG-1", "ABUSE-1"], 50)]
    record = parse_network(network([*before, abuse, *after]), "u")
    assert_usable(record)
    assert "abuse@found.example" in record.abuse


@settings(max_examples=200)
@given(st.lists(ENTITIES, max_size=8))
def test_contacts_of_any_entities_are_header_safe(entities: list[Any]) -> None:
    abuse, fallback = extract_contacts({"entities": entities})
    assert all(header_safe(address) for address in abuse + fallback)


@given(VCARDS)
def test_vcard_emails_are_header_safe(card: Any) -> None:
    assert all(header_safe(address) for address in vcard_emails(card))


@settings(max_examples=300)
@given(
    st.one_of(
        st.binary(max_size=200),
        st.text(alphabet='[]{}",:0a\\ ', max_size=200).map(str.encode),
        st.integers(1, 20_000).map(lambda n: b"[" * n + b"]" * n),
        st.integers(1, 3_000).map(serialised_loop),
        JSON_LIKE.map(lambda doc: json.dumps(doc).encode()),
    )
)
def test_any_bytes_decode_or_are_malformed(body: bytes) -> None:
    try:
        data = decode_json(body, "u")
    except LookupFailed as error:
        assert error.kind == "rdap_malformed"
        return
    try:
        assert_usable(parse_network(data, "u"))
    except LookupFailed as error:
        assert error.kind == "rdap_malformed"


def depth_of(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    return 0


@given(JSON_LIKE.filter(lambda doc: depth_of(doc) <= 8), st.integers(0, 60))
def test_pruning_keeps_what_is_shallow_and_cuts_what_is_deep(doc: Any, wraps: int) -> None:
    wrapped = doc
    for _ in range(wraps):
        wrapped = {"entities": [wrapped]}
    text = json.dumps(wrapped, allow_nan=True)
    pruned = json.loads(prune_depth(text, 32))
    if depth_of(wrapped) <= 32:
        assert json.dumps(pruned) == text  # unchanged, byte for byte after a round trip
    else:
        assert depth_of(pruned) <= 32


@given(st.text(max_size=40) | st.none())
def test_retry_after_of_any_header_is_a_bounded_wait(header: str | None) -> None:
    assert 0.0 <= retry_after(header, now=0.0) <= MAX_RETRY_AFTER
