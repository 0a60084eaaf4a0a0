"""RDAP parsing, contact extraction, caching and rate limiting: pure, clock injected."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from workflows.errors import LookupFailed
from workflows.ratelimit import RateLimiter
from workflows.rdap import (
    NetworkCache,
    NetworkRecord,
    extract_contacts,
    parse_network,
    retry_after,
    vcard_emails,
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
    [("3", 3.0), (None, 60.0), ("soon", 60.0), ("Thu, 01 Jan 1970 00:00:30 GMT", 20.0)],
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
