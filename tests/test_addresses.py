"""Special-use address classification (RFC 6890 registries)."""

from __future__ import annotations

import pytest

from workflows.core.special_use import special_use


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
