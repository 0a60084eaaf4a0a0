"""Special-use address classification (RFC 6890 registries)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workflows.core.special_use import nat64_ipv4, special_use
from workflows.recheck.egress import is_permitted


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.20.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("100.64.0.1", "cgnat"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("192.0.2.1", "documentation"),
        ("198.51.100.7", "documentation"),
        ("203.0.113.9", "documentation"),
        ("2001:db8::1", "documentation"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "this-network"),
        ("::", "unspecified"),
        ("255.255.255.255", "reserved"),
        ("240.0.0.1", "reserved"),
        ("198.18.0.1", "benchmarking"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:185.199.108.10", "ipv4-mapped"),
        ("2002:7f00:1::", "loopback"),
    ],
)
def test_special_use_addresses_are_named(address: str, kind: str) -> None:
    assert special_use(address) == kind


@pytest.mark.parametrize(
    "address",
    ["185.199.108.10", "8.8.8.8", "2a00:1450:4001:80b::200e", "104.16.1.1", "100.128.0.1"],
)
def test_public_addresses_are_not_special(address: str) -> None:
    assert special_use(address) is None


# -- IPv6 forms that carry an IPv4 address ---------------------------------------------


def nat64(ipv4: str) -> str:
    """Return IPV4 under the NAT64 well-known prefix 64:ff9b::/96 (RFC 6052)."""
    return str(
        ipaddress.IPv6Address(b"\0\x64\xff\x9b" + bytes(8) + ipaddress.IPv4Address(ipv4).packed)
    )


def sixtofour(ipv4: str) -> str:
    """Return a 6to4 address of IPV4 (2002:V4ADDR::/48, RFC 3056)."""
    return str(ipaddress.IPv6Address(b"\x20\x02" + ipaddress.IPv4Address(ipv4).packed + bytes(10)))


def teredo(client: str, server: str = "65.54.227.120") -> str:
    """Return a Teredo address (2001::/32, RFC 4380): the server, then the client inverted."""
    inverted = bytes(b ^ 0xFF for b in ipaddress.IPv4Address(client).packed)
    packed = b"\x20\x01\0\0" + ipaddress.IPv4Address(server).packed + b"\x80\0\xff\xff" + inverted
    return str(ipaddress.IPv6Address(packed))


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("64:ff9b::a00:1", "private"),  # 10.0.0.1 through the well-known NAT64 prefix
        ("64:ff9b::7f00:1", "loopback"),
        ("64:ff9b::a9fe:a9fe", "link-local"),  # the cloud metadata service
        ("64:ff9b::808:808", None),  # 8.8.8.8: a public host, reachable through NAT64
        ("64:ff9b:1::a00:1", "private"),  # the local-use prefix (RFC 8215), /96 layout
        ("64:ff9b:1::808:808", "nat64-local"),  # never globally reachable
        ("64:ff9b:1:a00:1::", "this-network"),  # another layout: refused all the same
        ("2002:a00:1::", "private"),  # 6to4 of 10.0.0.1
        ("2002:a9fe:a9fe::1", "link-local"),
        ("2002:808:808::1", None),
        (teredo("10.0.0.1"), "private"),
        (teredo("127.0.0.1"), "loopback"),
        (teredo("8.8.8.8", server="192.168.1.1"), "private"),  # a relay on our network
        (teredo("8.8.8.8"), "teredo"),  # not globally reachable itself (RFC 4380)
    ],
)
def test_ipv6_forms_are_judged_by_the_ipv4_they_carry(address: str, kind: str | None) -> None:
    assert special_use(address) == kind


IPV4 = st.integers(min_value=0, max_value=2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))


@given(ipv4=IPV4)
def test_nat64_and_6to4_carry_the_verdict_of_their_ipv4(ipv4: str) -> None:
    expected = special_use(ipv4)
    assert special_use(nat64(ipv4)) == expected
    assert special_use(sixtofour(ipv4)) == expected
    assert special_use(teredo(ipv4)) == (expected or "teredo")


@given(ipv4=IPV4, length=st.sampled_from([32, 40, 48, 56, 64, 96]))
def test_nat64_ipv4_reads_back_what_any_rfc6052_layout_embeds(ipv4: str, length: int) -> None:
    packed = bytearray(16)
    octets = ipaddress.IPv4Address(ipv4).packed
    spots = [i for i in range(length // 8, 16) if i != 8][:4]  # RFC 6052: bits 64-71 skipped
    for spot, octet in zip(spots, octets, strict=True):
        packed[spot] = octet
    assert nat64_ipv4(ipaddress.IPv6Address(bytes(packed)), length) == ipaddress.IPv4Address(ipv4)


@pytest.mark.parametrize("address", ["64:ff9b::a00:1", "2002:7f00:1::", teredo("169.254.169.254")])
def test_the_egress_guard_refuses_an_internal_ipv4_inside_ipv6(address: str) -> None:
    allow = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("10.0.0.0/8")]
    assert not is_permitted(address, allow)  # an IPv4 allow-list never opens an IPv6 form
    assert not is_permitted(address, [])
