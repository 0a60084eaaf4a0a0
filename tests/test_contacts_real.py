"""Contacts and ranges from what registries really publish, and the placeholder list.

The records are built after the registries' documented RDAP shapes (RFC 9083 as RIPE,
ARIN, APNIC with its national registries, LACNIC and AFRINIC answer it: the field names,
nesting, padding and remarks they use), with documentation addresses and example domains
in place of real ones. Each case asserts the address chosen and where it came from; the
property tests mutate them and assert that nothing but LookupFailed escapes, and that a
record whose range can be read never becomes a (transient) error.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workflows.config.placeholders import PlaceholderList, load_placeholders
from workflows.config.settings import load_settings
from workflows.core.urls import normalize_url
from workflows.errors import ConfigError, LookupFailed
from workflows.sim import Network, SimInternet, World
from workflows.trace.contacts import choose_contacts, extract_contacts, rank_contacts
from workflows.trace.rdap import decode_json, parse_network
from workflows.trace.shared import _record as shared_record
from workflows.trace.tracer import Trace, Tracer

SHIPPED = load_placeholders()


def card(fn: str, *emails: str, kind: str = "group", pref: bool = False) -> list[Any]:
    props: list[Any] = [["version", {}, "text", "4.0"], ["fn", {}, "text", fn]]
    props.append(["kind", {}, "text", kind])
    props += [["email", {"pref": "1"} if pref else {}, "text", e] for e in emails]
    props.append(["adr", {"label": "Example Street 1\nExample City"}, "text", [""] * 7])
    return ["vcard", props]


def entity(handle: str, roles: list[str] | None, *emails: str, **extra: Any) -> dict[str, Any]:
    found: dict[str, Any] = {"objectClassName": "entity", "handle": handle}
    if roles is not None:  # AFRINIC's entities may have no roles member at all
        found["roles"] = roles
    found["vcardArray"] = card(handle, *emails)
    return found | extra


def remarks(*lines: str, title: str = "remarks") -> list[dict[str, Any]]:
    return [{"title": title, "description": list(lines)}]


def ripe_ipv6() -> dict[str, Any]:
    """RIPE's older answer: prefix lengths after both addresses, the handle a plain CIDR."""
    return {
        "rdapConformance": ["rdap_level_0"],
        "objectClassName": "ip network",
        "handle": "2001:db8:ffff::/64",
        "startAddress": "2001:db8:ffff::/128",
        "endAddress": "2001:db8:ffff::ffff:ffff:ffff:ffff/128",
        "ipVersion": "v6",
        "name": "EXAMPLE-IPV6-LAUNCH",
        "type": "Assigned",
        "country": "GB",
        "remarks": [{"description": ["Example IPv6 launch"]}],
        "entities": [
            entity(
                "ECR3-RIPE",
                ["abuse"],
                "registry@isp.example",
                entities=[
                    {"handle": "ECR1-RIPE", "roles": ["administrative", "technical"]},
                    {"handle": "ISP-MNT", "roles": ["registrant"]},
                ],
            )
        ],
        "port43": "whois.ripe.net",
    }


def krnic_delegation() -> dict[str, Any]:
    """APNIC's answer for a Korean delegation: KRNIC's IRT as the abuse entity (the
    registry's placeholder), the ISP's own contacts in a technical entity and its remarks."""
    return {
        "rdapConformance": ["rdap_level_0"],
        "objectClassName": "ip network",
        "handle": "192.0.2.0 - 192.0.2.127",
        "startAddress": "192.0.2.0",
        "endAddress": "192.0.2.127",
        "ipVersion": "v4",
        "name": "EXAMPLENET-KR",
        "type": "ALLOCATED PORTABLE",
        "country": "KR",
        "parentHandle": "192.0.0.0 - 192.255.255.255",
        "remarks": remarks(
            "Example Telecom", "Facility-based service provider", title="description"
        ),
        "entities": [
            entity(
                "EX50-AP",
                ["technical", "administrative"],
                "ipadm@nic.isp.example",
                "abuse@isp.example",
                "security@isp.example",
                remarks=remarks(
                    "IP address administrator group of the NIC team, Example Telecom.",
                    "If related with spam, send mail to abuse@isp.example",
                    "If related with security, send mail to security@isp.example",
                    "Only for whois information correction, send mail to ipadm@nic.isp.example",
                ),
            ),
            entity("IRT-KRNIC-KR", ["abuse"], "hostmaster@nic.or.kr", "hostmaster@nic.or.kr"),
        ],
        "port43": "whois.apnic.net",
    }


def afrinic_roleless(with_remarks: bool) -> dict[str, Any]:
    """AFRINIC's answer: entities with no roles member; the network's remarks may name
    its abuse desk."""
    data: dict[str, Any] = {
        "rdapConformance": ["rdap_level_0"],
        "objectClassName": "ip network",
        "handle": "198.51.100.0 - 198.51.100.255",
        "startAddress": "198.51.100.0",
        "endAddress": "198.51.100.255",
        "ipVersion": "v4",
        "name": "ORG-EX1-AFRINIC",
        "type": "ASSIGNED PI",
        "country": "ZA",
        "status": ["active"],
        "entities": [
            entity("EXIP-AFRINIC", None, "ip-maint@isp.example", status=["active"]),
            entity("ORG-EX1-AFRINIC", None, "owner@isp.example", "support@isp.example"),
            entity(
                "Ex35-AFRINIC",
                None,
                "person@isp.example",
                remarks=[{"title": "Remark", "description": ["Personal NIC Handle"]}],
            ),
        ],
        "lang": "en",
        "port43": "whois.afrinic.net",
    }
    if with_remarks:
        data["remarks"] = [
            {"title": "Remark", "description": ["please send abuse reports to abuse@isp.example"]}
        ]
    return data


def arin_padded() -> dict[str, Any]:
    """ARIN's answer: zero-padded IPv4 bounds, the abuse POC nested in the org entity."""
    return {
        "rdapConformance": ["rdap_level_0", "nro_rdap_profile_0", "cidr0"],
        "objectClassName": "ip network",
        "handle": "NET-74-125-0-0-1",
        "startAddress": "074.125.000.000",
        "endAddress": "074.125.255.255",
        "ipVersion": "v4",
        "name": "EXAMPLE",
        "parentHandle": "NET-74-0-0-0-0",
        "entities": [
            entity(
                "EXMP",
                ["registrant"],
                entities=[
                    entity(
                        "EX39-ARIN", ["abuse", "administrative", "technical"], "abuse@isp.example"
                    ),
                    entity("EX40-ARIN", ["noc"], "noc@isp.example"),
                ],
            )
        ],
        "port43": "whois.arin.net",
    }


def lacnic_single() -> dict[str, Any]:
    """LACNIC's answer: one address as the range and as the handle, one entity holding the
    abuse, technical and administrative roles, its address with an upper-case domain."""
    return {
        "rdapConformance": ["rdap_level_0"],
        "objectClassName": "ip network",
        "handle": "203.0.113.161",
        "startAddress": "203.0.113.161",
        "endAddress": "203.0.113.161",
        "ipVersion": "v4",
        "name": "Example S.A. de C.V.",
        "type": "allocated",
        "country": "MX",
        "entities": [
            entity("RYT2", ["administrative", "technical", "abuse"], "operacion.redes@ISP.EXAMPLE"),
            entity(
                "MX-EXSA-LACNIC",
                ["registrant"],
                entities=[
                    entity("RYT2", ["administrative", "registrant"], "operacion.redes@ISP.EXAMPLE")
                ],
            ),
        ],
        "port43": "whois.lacnic.net",
    }


def jpnic_block() -> dict[str, Any]:
    """APNIC's answer for JPNIC's allocation block: only the national registry's contact,
    and remarks that send readers elsewhere without naming an address."""
    return {
        "objectClassName": "ip network",
        "handle": "2001:0db8::/32",
        "startAddress": "2001:db8::",
        "endAddress": "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
        "ipVersion": "v6",
        "name": "EXAMPLE-JPNIC-JP",
        "country": "JP",
        "remarks": remarks(
            "JPNIC Allocation Block",
            "For abuse/any contacts regarding this address range,",
            "please refer to the contacts listed on the inet6num",
            "object displayed down below, or look up JPNIC Whois.",
        ),
        "entities": [entity("JNIC1-AP", ["technical", "administrative"], "hostmaster@nic.ad.jp")],
    }


def apnic_labs() -> dict[str, Any]:
    """APNIC's own research prefix: APNIC's helpdesk as the abuse contact (a placeholder),
    the operator's desk in the remarks, its address alone on the line after the words."""
    return {
        "objectClassName": "ip network",
        "handle": "192.0.2.0 - 192.0.2.255",
        "startAddress": "192.0.2.0",
        "endAddress": "192.0.2.255",
        "name": "EXAMPLE-LABS",
        "country": "AU",
        "remarks": remarks(
            "---------------",
            "All resolver abuse reporting can be done via",
            "reports@resolver.example",
            "---------------",
        ),
        "entities": [
            entity("IRT-EXAMPLE-AU", ["abuse"], "helpdesk@apnic.net"),
            entity("AR302-AP", ["administrative", "technical"], "research@registry.example"),
        ],
    }


def chosen(data: dict[str, Any], placeholders: PlaceholderList = SHIPPED) -> tuple[Any, ...]:
    choice = choose_contacts(rank_contacts(data), placeholders)
    return choice.abuse, choice.source, choice.fallback


@pytest.mark.parametrize(
    ("data", "address", "abuse", "source", "fallback"),
    [
        pytest.param(
            ripe_ipv6(),
            "2001:db8:ffff::1",
            ("registry@isp.example",),
            "role:abuse",
            False,
            id="ripe",
        ),
        pytest.param(
            krnic_delegation(), "192.0.2.9", ("abuse@isp.example",), "remarks", False, id="krnic"
        ),
        pytest.param(
            afrinic_roleless(True),
            "198.51.100.7",
            ("abuse@isp.example",),
            "remarks",
            False,
            id="afrinic-remarks",
        ),
        pytest.param(
            afrinic_roleless(False),
            "198.51.100.7",
            (
                "ip-maint@isp.example",
                "owner@isp.example",
                "support@isp.example",
                "person@isp.example",
            ),
            "entity",
            True,
            id="afrinic-roleless",
        ),
        pytest.param(
            arin_padded(), "74.125.3.3", ("abuse@isp.example",), "role:abuse", False, id="arin"
        ),
        pytest.param(
            lacnic_single(),
            "203.0.113.161",
            ("operacion.redes@isp.example",),
            "role:abuse",
            False,
            id="lacnic",
        ),
        pytest.param(
            apnic_labs(), "192.0.2.1", ("reports@resolver.example",), "remarks", False, id="apnic"
        ),
        pytest.param(jpnic_block(), "2001:db8::1", (), None, False, id="jpnic-placeholder-only"),
    ],
)
def test_the_record_names_the_right_address_and_where_it_came_from(
    data: dict[str, Any],
    address: str,
    abuse: tuple[str, ...],
    source: str | None,
    fallback: bool,
) -> None:
    record = parse_network(data, "https://rdap.example/ip/" + address, address)
    assert (record.abuse, record.abuse_source, record.abuse_fallback) == (abuse, source, fallback)
    assert chosen(data) == (abuse, source, fallback)


def test_the_korean_placeholder_is_passed_over_but_kept_last() -> None:
    choice = choose_contacts(rank_contacts(krnic_delegation()), SHIPPED)
    assert choice.placeholders == ("hostmaster@nic.or.kr",)
    assert "hostmaster@nic.or.kr" not in choice.abuse + choice.others
    # The other addresses of the technical entity come after the remarks' one.
    assert choice.others == ("ipadm@nic.isp.example", "security@isp.example")
    # Without the placeholder list, the registry's IRT is what the answer calls abuse.
    assert chosen(krnic_delegation(), PlaceholderList(())) == (
        ("hostmaster@nic.or.kr",),
        "role:abuse",
        False,
    )


def test_every_contact_is_marked_with_its_source() -> None:
    ranked = {(c.address, c.source) for c in rank_contacts(krnic_delegation())}
    assert ranked == {
        ("hostmaster@nic.or.kr", "role:abuse"),
        ("abuse@isp.example", "remarks"),
        ("ipadm@nic.isp.example", "role:technical"),
        ("security@isp.example", "role:technical"),
    }


@pytest.mark.parametrize(
    ("lines", "found"),
    [
        pytest.param(
            ["please send abuse reports to abuse@isp.example"], ["abuse@isp.example"], id="afrinic"
        ),
        pytest.param(
            ["Email address for spam or abuse complaints : desk@isp.example"],
            ["desk@isp.example"],
            id="jpnic-style",
        ),
        pytest.param(
            ["Abuse: noc@isp.example; routing: peering@isp.example"],
            ["noc@isp.example"],
            id="clauses",
        ),
        pytest.param(
            ["Report spam to", "desk@isp.example."], ["desk@isp.example"], id="continued-line"
        ),
        pytest.param(
            [
                "unable to investigate complaints of network abuse.",
                "helpdesk@registry.example was validated",
            ],
            [],
            id="not-a-continuation",
        ),
        pytest.param(["Contact noc@isp.example for routing"], [], id="no-abuse-words"),
        pytest.param(
            ["routing: abuse-noc@isp.example"], ["abuse-noc@isp.example"], id="local-part"
        ),
        pytest.param(
            ["abuse: a@b.example\r\nBcc: x@y.example"], ["a@b.example"], id="header-injection"
        ),
    ],
)
def test_abuse_addresses_in_remarks(lines: list[str], found: list[str]) -> None:
    data = {"remarks": remarks(*lines), "entities": []}
    assert [c.address for c in rank_contacts(data) if c.source == "remarks"] == found


def test_an_abuse_local_part_outranks_the_other_roles() -> None:
    data = {"entities": [entity("T", ["technical"], "noc@isp.example", "abuse-desk@isp.example")]}
    assert chosen(data) == (("abuse-desk@isp.example",), "abuse-local-part", True)


def test_extract_contacts_keeps_its_two_lists_for_the_registrar_lookup() -> None:
    assert extract_contacts(krnic_delegation()) == (
        ["hostmaster@nic.or.kr"],
        ["ipadm@nic.isp.example", "abuse@isp.example", "security@isp.example"],
    )


# -- ranges ---------------------------------------------------------------------------------


def with_range(data: dict[str, Any], **fields: Any) -> dict[str, Any]:
    changed = {**data, **fields}
    return {k: v for k, v in changed.items() if v is not None}


@pytest.mark.parametrize(
    ("data", "start", "end", "cidr"),
    [
        pytest.param(
            ripe_ipv6(),
            "2001:db8:ffff::",
            "2001:db8:ffff::ffff:ffff:ffff:ffff",
            "2001:db8:ffff::/64",
            id="prefix-length",
        ),
        pytest.param(
            with_range(ripe_ipv6(), startAddress="2001:db8:ffff::/64", endAddress=None),
            "2001:db8:ffff::",
            "2001:db8:ffff::ffff:ffff:ffff:ffff",
            "2001:db8:ffff::/64",
            id="a-network-as-the-start",
        ),
        pytest.param(
            with_range(ripe_ipv6(), startAddress="nonsense", endAddress=None),
            "2001:db8:ffff::",
            "2001:db8:ffff::ffff:ffff:ffff:ffff",
            "2001:db8:ffff::/64",
            id="cidr-handle",
        ),
        pytest.param(
            arin_padded(),
            "74.125.0.0",
            "74.125.255.255",
            "74.125.0.0/16",
            id="zero-padded-decimal-not-octal",
        ),
        pytest.param(
            with_range(krnic_delegation(), startAddress=None, endAddress=None),
            "192.0.2.0",
            "192.0.2.127",
            "192.0.2.0/25",
            id="range-handle",
        ),
        pytest.param(
            lacnic_single(), "203.0.113.161", "203.0.113.161", "203.0.113.161/32", id="one-address"
        ),
        pytest.param(
            with_range(
                arin_padded(),
                startAddress=None,
                endAddress=None,
                cidr0_cidrs=[
                    {"v4prefix": "74.125.0.0", "length": 17},
                    {"v4prefix": "74.125.128.0", "length": 17},
                ],
            ),
            "74.125.0.0",
            "74.125.255.255",
            "74.125.0.0/16",
            id="cidr0",
        ),
        pytest.param(
            with_range(arin_padded(), ipVersion="v6"),
            "74.125.0.0",
            "74.125.255.255",
            "74.125.0.0/16",
            id="wrong-ip-version",
        ),
    ],
)
def test_real_range_shapes_are_read(data: dict[str, Any], start: str, end: str, cidr: str) -> None:
    first, last = ipaddress.ip_address(start), ipaddress.ip_address(end)
    record = parse_network(data, "u", str(first + 1) if start != end else start)
    assert (record.start, record.end, record.cidr) == (str(first), str(last), cidr)


def test_cidr0_prefixes_with_a_gap_give_the_one_holding_the_address() -> None:
    data = with_range(
        arin_padded(),
        startAddress=None,
        endAddress=None,
        cidr0_cidrs=[
            {"v4prefix": "74.125.0.0", "length": 24},
            {"v4prefix": "74.125.9.0", "length": 24},
        ],
    )
    record = parse_network(data, "u", "74.125.9.9")
    assert (record.start, record.end) == ("74.125.9.0", "74.125.9.255")


@pytest.mark.parametrize(
    ("data", "address"),
    [
        pytest.param(
            with_range(arin_padded(), startAddress="999.1.1.1", handle="NET-X"),
            None,
            id="octet-over-255",
        ),
        pytest.param(
            with_range(ripe_ipv6(), startAddress=None, endAddress=None, handle="ECR"),
            None,
            id="nothing-to-read",
        ),
        pytest.param(
            with_range(krnic_delegation(), endAddress="192.0.1.0", handle="X"),
            "192.0.2.9",
            id="upside-down",
        ),
        pytest.param(krnic_delegation(), "192.0.2.200", id="misses-the-address-asked-for"),
    ],
)
def test_a_record_with_no_usable_range_is_a_permanent_failure(
    data: dict[str, Any], address: str | None
) -> None:
    with pytest.raises(LookupFailed) as caught:
        parse_network(data, "u", address)
    assert (caught.value.kind, caught.value.permanent) == ("rdap_malformed", True)


@pytest.mark.parametrize(
    ("code", "kind", "permanent"),
    [
        pytest.param(404, "rdap_not_found", True, id="not-found"),
        pytest.param(503, "rdap_unavailable", False, id="server-trouble"),
        pytest.param(400, "rdap_malformed", True, id="bad-request"),
    ],
)
def test_an_error_object_sent_with_status_200_means_its_code(
    code: int, kind: str, permanent: bool
) -> None:
    error = {"errorCode": code, "title": "Error", "description": ["sent with 200"]}
    with pytest.raises(LookupFailed) as caught:
        parse_network(error, "u", "192.0.2.9")
    assert (caught.value.kind, caught.value.permanent) == (kind, permanent)


def test_a_body_cut_short_stays_transient() -> None:
    body = json.dumps(ripe_ipv6()).encode()
    with pytest.raises(LookupFailed) as caught:
        decode_json(body[: len(body) // 2], "u")
    assert (caught.value.kind, caught.value.permanent) == ("rdap_malformed", False)


# -- properties: mutated real records -------------------------------------------------------

RECORDS = [
    ripe_ipv6,
    krnic_delegation,
    afrinic_roleless,
    arin_padded,
    lacnic_single,
    jpnic_block,
    apnic_labs,
]
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
JSON_LIKE = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=15,
)
TEXTS = st.sampled_from(
    [
        "abuse@x.example",
        "send spam reports to a@b.example;",
        "x" * 5000 + "@y.example",
        "@@",
        "\u2028",
        "abuse",
    ]
) | st.text(max_size=60)
VALUES = (
    JSON_LIKE
    | st.lists(
        st.fixed_dictionaries({"title": TEXTS, "description": st.lists(TEXTS, max_size=5) | TEXTS}),
        max_size=3,
    )
    | st.sampled_from(
        ["2001:db8::/129", "074.125.000.000/08", "192.0.2.0 - ", " - 192.0.2.1", "0/0", "::/0"]
    )
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Yield the path of every value inside a JSON document."""
    yield prefix
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from paths(inner, (*prefix, index))


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    """A real record with some of its values replaced, removed or added to."""
    make = draw(st.sampled_from(RECORDS))
    data: dict[str, Any] = make(True) if make is afrinic_roleless else make()  # type: ignore[call-arg]
    for _ in range(draw(st.integers(1, 6))):
        where = draw(st.sampled_from(list(paths(data))[1:]))
        parent = data
        for step in where[:-1]:
            parent = parent[step]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[where[-1]]
        else:
            parent[where[-1]] = draw(VALUES)
    return data


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(), st.sampled_from([None, "192.0.2.9", "2001:db8:ffff::1", "74.125.3.3"]))
def test_no_mutated_record_raises_anything_but_a_permanent_malformed(
    data: dict[str, Any], address: str | None
) -> None:
    extract_contacts(data)
    choose_contacts(rank_contacts(data), SHIPPED)
    try:
        record = parse_network(data, "u", address)
    except LookupFailed as error:
        assert (error.kind, error.permanent) == ("rdap_malformed", True)
    else:
        assert all("@" in a and "\n" not in a for a in record.abuse + record.others)


SHAPES = st.sampled_from(
    ["plain", "prefix", "network", "padded", "cidr0", "handle", "range-handle"]
)


def written(shape: str, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> dict[str, Any]:
    """The fields that write NETWORK's range in SHAPE."""
    first, last, bits = network.network_address, network.broadcast_address, network.max_prefixlen
    padded = (
        ".".join(p.zfill(3) for p in str(first).split("."))
        if network.version == 4
        else first.exploded,
        ".".join(p.zfill(3) for p in str(last).split("."))
        if network.version == 4
        else last.exploded,
    )
    family = "v4prefix" if network.version == 4 else "v6prefix"
    return {
        "plain": {"startAddress": str(first), "endAddress": str(last)},
        "prefix": {"startAddress": f"{first}/{bits}", "endAddress": f"{last}/{bits}"},
        "network": {"startAddress": str(network)},
        "padded": {"startAddress": padded[0], "endAddress": padded[1]},
        "cidr0": {"cidr0_cidrs": [{family: str(first), "length": network.prefixlen}]},
        "handle": {"handle": str(network)},
        "range-handle": {"handle": f"{first} - {last}"},
    }[shape]


NETWORKS = st.one_of(
    st.builds(
        lambda n, p: ipaddress.IPv4Network((n, p), strict=False),
        st.integers(1, 2**32 - 1),
        st.integers(8, 32),
    ),
    st.builds(
        lambda n, p: ipaddress.IPv6Network((n, p), strict=False),
        st.integers(1, 2**128 - 1),
        st.integers(16, 128),
    ),
)
JUNK_KEYS = st.sampled_from(
    ["entities", "remarks", "name", "country", "ipVersion", "status", "links", "events"]
)


@settings(max_examples=300)
@given(NETWORKS, SHAPES, st.dictionaries(JUNK_KEYS, JSON_LIKE, max_size=4), st.data())
def test_a_record_with_a_readable_range_never_fails(
    network: ipaddress.IPv4Network | ipaddress.IPv6Network,
    shape: str,
    junk: dict[str, Any],
    data: st.DataObject,
) -> None:
    offset = data.draw(st.integers(0, network.num_addresses - 1))
    address = str(network.network_address + offset)
    record_json = {"objectClassName": "ip network", "handle": "NET-EXAMPLE-1", **junk}
    record_json |= written(shape, network)
    # Through JSON text, as an answer arrives: a readable record is never an error at all.
    record = parse_network(decode_json(json.dumps(record_json).encode(), "u"), "u", address)
    assert (record.start, record.end) == (
        str(network.network_address),
        str(network.broadcast_address),
    )


# -- the placeholder list --------------------------------------------------------------------


def test_the_shipped_placeholders_are_the_registries_mailboxes() -> None:
    for address in ("hostmaster@nic.or.kr", "helpdesk@apnic.net", "HOSTMASTER@NIC.AD.JP"):
        assert address in SHIPPED
    assert SHIPPED.registry_of("ipas@cnnic.cn") == "CNNIC, the Chinese national registry"
    assert all(entry.note for entry in SHIPPED)  # each says where it was seen


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        pytest.param(
            '[placeholder.a]\nregistry = "A"\n', 1, "addresses needs at least one", id="empty"
        ),
        pytest.param(
            '[placeholder.a]\nregistry = "A"\naddresses = ["x"]\n', 3, 'addresses: "x"', id="bad"
        ),
        pytest.param(
            '[placeholder.a]\nregistry = "A"\naddresses = ["h@a.example"]\n\n'
            '[placeholder.b]\nregistry = "B"\naddresses = ["H@a.example"]\n',
            7,
            "listed under both [placeholder.a]",
            id="twice",
        ),
        pytest.param(
            '[placeholder.a]\naddresses = ["h@a.example"]\nurl = 1\n',
            3,
            'unknown key "url"',
            id="key",
        ),
    ],
)
def test_a_bad_placeholder_file_names_its_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = tmp_path / "placeholders.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_placeholders(path)
    assert f"placeholders.toml:{line}:" in str(caught.value)
    assert message in str(caught.value)


# -- through the simulated internet ----------------------------------------------------------


def world() -> World:
    return World(
        networks=[
            Network(
                "185.199.112.0/22",
                64601,
                "KR-EXAMPLE",
                "KR",
                registry="apnic",
                style="none",
                fallback=["ipadm@kr.example", "abuse@kr.example"],
                tech_remarks=["If related with spam, send mail to abuse@kr.example"],
                irt=["hostmaster@nic.or.kr"],
            ),
            Network(
                "185.199.116.0/22",
                64602,
                "ZA-EXAMPLE",
                "ZA",
                registry="afrinic",
                style="none",
                roleless=["owner@za.example"],
                remarks=["please send abuse reports to abuse@za.example"],
            ),
            Network(
                "2a00:1450::/32",
                64603,
                "V6-LAUNCH",
                "GB",
                abuse=["abuse@v6.example"],
                range_style="prefix-length",
            ),
            Network(
                "185.199.120.0/22",
                64604,
                "PADDED",
                "US",
                registry="arin",
                style="arin",
                abuse=["abuse@us.example"],
                range_style="zero-padded",
            ),
            Network(
                "185.199.124.0/22",
                64605,
                "HANDLE-ONLY",
                "GB",
                abuse=["abuse@h.example"],
                range_style="handle-only",
            ),
            Network("185.199.128.0/17", 64606, "PARENT-NET", "DE", abuse=["abuse@parent.example"]),
            Network("185.199.130.0/24", 64607, "QUIET-NET", "DE", style="none"),
            Network(
                "185.199.131.0/24",
                64608,
                "IRT-ONLY",
                "DE",
                style="none",
                irt=["helpdesk@apnic.net"],
            ),
        ],
        records={
            "kr.test": [("A", "185.199.112.5")],
            "za.test": [("A", "185.199.116.5")],
            "v6.test": [("AAAA", "2a00:1450::5")],
            "padded.test": [("A", "185.199.120.5")],
            "handle.test": [("A", "185.199.124.5")],
            "quiet.test": [("A", "185.199.130.5")],
            "irt.test": [("A", "185.199.131.5")],
        },
    )


@pytest.fixture(scope="module")
def sim() -> Iterator[SimInternet]:
    with SimInternet(world()) as running:
        yield running


@pytest.fixture
def tracer(sim: SimInternet, tmp_path: Path) -> Iterator[Tracer]:
    built = Tracer.from_settings(load_settings({**sim.env(), "TAKEDOWN_HOME": str(tmp_path)}))
    yield built
    built.close()


def trace(tracer: Tracer, url: str) -> Trace:
    return tracer.trace(normalize_url(url))


@pytest.mark.parametrize(
    ("url", "abuse", "source"),
    [
        pytest.param(
            "http://kr.test/", ["abuse@kr.example"], "remarks", id="kr-placeholder-passed-over"
        ),
        pytest.param("http://za.test/", ["abuse@za.example"], "remarks", id="afrinic-roleless"),
        pytest.param(
            "http://v6.test/", ["abuse@v6.example"], "role:abuse", id="prefix-length-range"
        ),
        pytest.param("http://padded.test/", ["abuse@us.example"], "role:abuse", id="zero-padded"),
        pytest.param("http://handle.test/", ["abuse@h.example"], "role:abuse", id="cidr-handle"),
    ],
)
def test_a_trace_names_the_right_desk_and_its_source(
    tracer: Tracer, url: str, abuse: list[str], source: str
) -> None:
    result = trace(tracer, url)
    assert result.route is not None, result.reason
    assert (result.abuse, result.abuse_source, result.abuse_fallback) == (abuse, source, False)
    assert result.networks[0].abuse_source == source


def test_the_trace_says_it_passed_a_placeholder_over(tracer: Tracer) -> None:
    result = trace(tracer, "http://kr.test/")
    assert any("passed over registry placeholder hostmaster@nic.or.kr" in n for n in result.notes)
    listed = {c["email"]: c for c in result.networks[0].contacts}
    assert listed["hostmaster@nic.or.kr"]["placeholder"] is True
    assert "hostmaster@nic.or.kr" not in result.fallback


def test_a_network_without_contacts_gets_its_parents_and_only_it_asks(
    tracer: Tracer, sim: SimInternet
) -> None:
    sim.rdap.clear_log()
    result = trace(tracer, "http://quiet.test/")
    assert (result.abuse, result.abuse_source, result.abuse_fallback) == (
        ["abuse@parent.example"],
        "parent",
        True,
    )
    assert [p for p in sim.rdap.requests if p.startswith("/ip/")] == [
        "/ip/185.199.130.5",
        "/ip/185.199.130.0/23",
    ]


def test_a_placeholder_is_used_only_when_nothing_else_exists(tracer: Tracer) -> None:
    result = trace(tracer, "http://irt.test/")
    # The parent (PARENT-NET) names an abuse desk: better than the registry's mailbox.
    assert (result.abuse, result.abuse_source) == (["abuse@parent.example"], "parent")
    tracer.rdap.lookup_parent = lambda *args: None  # type: ignore[method-assign]
    alone = trace(tracer, "http://irt.test/b")
    assert (alone.abuse, alone.abuse_source, alone.abuse_fallback) == (
        ["helpdesk@apnic.net"],
        "placeholder",
        True,
    )
    assert any("using APNIC's helpdesk@apnic.net" in n for n in alone.notes)


def test_a_network_with_a_contact_never_asks_for_its_parent(
    tracer: Tracer, sim: SimInternet
) -> None:
    sim.rdap.clear_log()
    for url in ("http://kr.test/1", "http://za.test/1", "http://kr.test/2"):
        trace(tracer, url)
    assert len([p for p in sim.rdap.requests if p.startswith("/ip/")]) == 2


def test_a_record_shared_before_sources_were_kept_still_ranks() -> None:
    record = parse_network(krnic_delegation(), "u", "192.0.2.9")
    stored = {**dataclasses.asdict(record), "cached": False}
    assert shared_record(json.dumps(stored)) == dataclasses.replace(record, cached=True)
    older = {k: v for k, v in stored.items() if k not in ("contacts", "abuse_source")}
    again = shared_record(json.dumps(older))  # its abuse was all an abuse role then meant
    assert (again.abuse_source, again.ranked()[0].address) == ("role:abuse", "abuse@isp.example")
