"""Routing decisions: a pure function of the hosting, our country and the directory."""

from __future__ import annotations

import pytest

from workflows.core.routing import Hosting, Route, choose_country, decide_route

PARTNERS = {"US": "referrals@hotline.example", "NL": "meld@offlimits.example"}


def referral(country: str) -> str | None:
    return PARTNERS.get(country)


def host(ip: str = "185.199.108.10", country: str | None = "GB", **kw: object) -> Hosting:
    return Hosting(ip=ip, country=country, network="NET", abuse=("abuse@h.example",), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("countries", "expected"),
    [
        pytest.param([], None, id="none"),
        pytest.param(["DE"], "DE", id="one"),
        pytest.param(["DE", "GB"], "GB", id="ours-wins-when-any-address-is-here"),
        pytest.param(["DE", "FR", "FR"], "FR", id="most-common"),
        pytest.param(["FR", "DE"], "FR", id="tie-goes-to-first-address"),
    ],
)
def test_choose_country(countries: list[str], expected: str | None) -> None:
    assert choose_country(countries, "GB") == expected


@pytest.mark.parametrize(
    ("country", "route"),
    [
        pytest.param("GB", Route.HOST_NOTICE, id="own-country"),
        pytest.param("US", Route.HOTLINE_REFERRAL, id="partner-hotline"),
        pytest.param("DE", Route.NO_PARTNER, id="no-partner"),
    ],
)
def test_route_by_country(country: str, route: Route) -> None:
    decision = decide_route([host(country=country)], "GB", referral)
    assert decision.route is route
    assert decision.country == country
    assert decision.recipients == ("abuse@h.example",)
    assert decision.hotline == (PARTNERS.get(country) if route is Route.HOTLINE_REFERRAL else None)


def test_route_is_none_when_only_special_use_addresses() -> None:
    decision = decide_route(
        [Hosting("10.0.0.5", special_use="private"), Hosting("127.0.0.1", special_use="loopback")],
        "GB",
        referral,
    )
    assert decision.route is None
    assert "special-use" in (decision.reason or "")
    assert "10.0.0.5 is private" in (decision.reason or "")


def test_special_use_address_beside_a_public_one_is_ignored() -> None:
    decision = decide_route(
        [Hosting("10.0.0.5", special_use="private"), host(country="DE")], "GB", referral
    )
    assert decision.route is Route.NO_PARTNER


def test_route_is_none_without_abuse_contact() -> None:
    decision = decide_route([Hosting("185.1.1.1", country="DE", network="X-NET")], "GB", referral)
    assert decision.route is None
    assert decision.reason == "no abuse contact for X-NET: needs an analyst"


def test_referral_needs_no_host_contact() -> None:
    decision = decide_route([Hosting("185.1.1.1", country="US")], "GB", referral)
    assert decision.route is Route.HOTLINE_REFERRAL
    assert decision.hotline == "referrals@hotline.example"


def test_fallback_contacts_are_marked() -> None:
    decision = decide_route([host(country="GB", abuse_fallback=True)], "GB", referral)
    assert decision.route is Route.HOST_NOTICE and decision.fallback


@pytest.mark.parametrize(
    ("permanent_flags", "permanent"),
    [
        pytest.param((True, True), True, id="all-permanent"),
        pytest.param((True, False), False, id="one-transient-means-retry"),
    ],
)
def test_failed_lookups_give_no_route(permanent_flags: tuple[bool, bool], permanent: bool) -> None:
    hostings = [
        Hosting(f"185.1.1.{i}", error=f"fail {i}", error_permanent=flag)
        for i, flag in enumerate(permanent_flags)
    ]
    decision = decide_route(hostings, "GB", referral)
    assert decision.route is None
    assert decision.reason == "fail 0"
    assert decision.permanent is permanent


def test_one_failed_lookup_does_not_hide_a_good_one() -> None:
    decision = decide_route([Hosting("185.1.1.1", error="boom"), host()], "GB", referral)
    assert decision.route is Route.HOST_NOTICE


def test_unknown_country_gives_no_route() -> None:
    decision = decide_route([host(country=None)], "GB", referral)
    assert decision.route is None and "country unknown" in (decision.reason or "")


def test_no_addresses_gives_no_route() -> None:
    assert decide_route([], "GB", referral).route is None
