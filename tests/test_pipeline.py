"""The pipeline end to end: a real worker, real servers, desks that react.

Every URL is reported before any worker runs (the report command returns at once and a
worker started later picks the cases up); then one worker subprocess works the whole
scenario world, and each test below checks one scenario's outcome. The world runs once per
backend: the embedded defaults, and PostgreSQL + Redis when CI provides them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ISOLATED, SERVICE_URLS, SIM_ADDRESSES
from stack import Stack, stack_of

from workflows.kinds import CaseState
from workflows.sim import Desk, Network, World, urls_in

BACKENDS = ["embedded"] + (["services"] if all(SERVICE_URLS.values()) else [])

GROUPED = ["http://a.hosta.test/1", "http://a.hosta.test/2", "http://a.hosta.test/3"]
CHASED = "http://b.hostb.test/c"
BOUNCED = "http://c.hostc.test/b"
GONE_410 = "http://d.hostd.test/g"
REFERRED = "http://us.ushost.test/r"
HOPPER = "http://hop.hoppy.test/h"
CHANGED = "http://f.change.test/x"
DNS_GONE = "http://g.dnsgone.test/y"
NXDOMAIN = "http://nowhere.test/z"
PRIVATE = "http://intranet.test/p"
SITES = [*GROUPED, CHASED, BOUNCED, GONE_410, REFERRED, HOPPER, CHANGED, DNS_GONE, PRIVATE]


def net(cidr: str, asn: int, name: str, country: str, abuse: str, **kw: Any) -> Network:
    return Network(cidr, asn, name, country, abuse=[abuse], **kw)


def scenario_world() -> World:
    return World(
        networks=[
            net("185.199.0.0/16", 205000, "UPSTREAM-NET", "GB", "abuse@upstream.example"),
            net("185.199.108.0/28", 205012, "HOSTA-NET", "GB", "abuse@hosta.example"),
            net("185.199.108.16/29", 205013, "HOSTB-NET", "GB", "abuse@hostb.example"),
            net("185.199.108.24/29", 205014, "HOPPY-NET", "GB", "abuse@hoppy.example"),
            net("185.199.109.0/24", 205015, "HOSTC-NET", "GB", "abuse@hostc.example"),
            net("185.199.110.0/24", 205016, "HOSTD-NET", "GB", "abuse@hostd.example"),
            net("91.218.2.0/24", 207001, "BERG-NET", "DE", "abuse@berg.example"),
            net(
                "23.94.0.0/16",
                36352,
                "US-HOST",
                "US",
                "abuse@ushost.example",
                registry="arin",
                style="arin",
            ),
            net("66.175.208.0/24", 398765, "CHANGE-NET", "GB", "abuse@change.example"),
            net("94.130.1.0/24", 24941, "DNSGONE-NET", "GB", "abuse@dnsgone.example"),
        ],
        records={
            "a.hosta.test": [("A", "185.199.108.10")],
            "b.hostb.test": [("A", "185.199.108.17")],
            "hop.hoppy.test": [("A", "185.199.108.25")],
            "c.hostc.test": [("A", "185.199.109.10")],
            "d.hostd.test": [("A", "185.199.110.10")],
            "us.ushost.test": [("A", "23.94.5.10")],
            "f.change.test": [("A", "66.175.208.20")],
            "g.dnsgone.test": [("A", "94.130.1.1")],
            "intranet.test": [("A", "10.0.0.5")],
        },
    )


def desks(world: World) -> list[Desk]:
    return [
        Desk("abuse@hosta.example", "prompt", world, delay=0.3),
        Desk("abuse@hostb.example", "after_chaser", world, delay=0.3),
        Desk("abuse@hostc.example", "bounce", world),
        Desk("abuse@hostd.example", "prompt", world, delay=0.3, removal="410"),
        Desk("abuse@hoppy.example", "hop", world, delay=0.3, hop_to=["91.218.2.30"]),
        Desk("abuse@berg.example", "prompt", world, delay=0.3),
        Desk("abuse@ushost.example", "never", world),
        Desk("referrals@hotline-us.example", "hotline", world, delay=0.3),
        Desk("abuse@change.example", "prompt", world, delay=0.3, removal="changed"),
        Desk("abuse@dnsgone.example", "prompt", world, delay=0.3, removal="nxdomain"),
        Desk("abuse@upstream.example", "never", world),
    ]


@pytest.fixture(scope="module", params=BACKENDS)
def run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    world = scenario_world()
    for url in SITES:
        world.put_content(url)
    home: Path = tmp_path_factory.mktemp(f"home-{request.param}")
    with stack_of(
        world, desks(world), home, request.param, SERVICE_URLS, ISOLATED, SIM_ADDRESSES
    ) as stack:
        reported = stack.report(*SITES, NXDOMAIN, ref="OP-1")
        again = stack.report(GROUPED[0])
        assert stack.cases() and all(c.state == CaseState.NEW for c in stack.cases())
        stack.start_worker()
        removable = [*GROUPED, CHASED, GONE_410, REFERRED, HOPPER, DNS_GONE]
        stack.wait_for(
            lambda: all(stack.case(u).state == CaseState.REMOVED for u in removable),
            timeout=60,
            what="every removable case to be confirmed removed",
        )
        stack.wait_for(
            lambda: stack.case(CHANGED).state == CaseState.NEEDS_ANALYST,
            timeout=30,
            what="the case whose content changed to wait for an analyst",
        )
        stack.wait_for(
            lambda: bool(stack.smtp.messages_to("abuse@upstream.example")),
            timeout=30,
            what="the bounced case's escalation to the upstream",
        )
        yield {"stack": stack, "reported": reported, "again": again}


def messages(run: dict[str, Any], address: str) -> list[Any]:
    return [m.message for m in run["stack"].smtp.messages_to(address)]


def test_reporting_returns_at_once_and_a_known_url_joins_its_open_case(run: dict[str, Any]) -> None:
    first = next(r for r in run["reported"] if r["url"] == GROUPED[0])
    assert run["again"] == [{"id": first["id"], "url": GROUPED[0], "state": "new", "joined": True}]
    assert len(run["stack"].cases()) == len(SITES) + 1


def test_three_urls_on_one_host_get_one_notice(run: dict[str, Any]) -> None:
    sent = messages(run, "abuse@hosta.example")
    assert len(sent) == 1
    assert sorted(urls_in(sent[0])) == sorted(GROUPED)
    assert sent[0]["Auto-Submitted"] == "auto-generated"
    assert all(run["stack"].case(u).state == CaseState.REMOVED for u in GROUPED)


def test_chaser_is_threaded_to_the_first_notice(run: dict[str, Any]) -> None:
    first, chaser = messages(run, "abuse@hostb.example")
    assert first["In-Reply-To"] is None
    assert chaser["In-Reply-To"] == first["Message-ID"]
    assert first["Message-ID"] in chaser["References"]
    assert run["stack"].case(CHASED).state == CaseState.REMOVED


def test_partner_country_gets_a_referral_and_the_host_no_notice(run: dict[str, Any]) -> None:
    stack: Stack = run["stack"]
    referral = messages(run, "referrals@hotline-us.example")
    assert len(referral) == 1 and urls_in(referral[0]) == [REFERRED]
    assert messages(run, "abuse@ushost.example") == []
    case = stack.case(REFERRED)
    assert (case.route, case.state) == ("hotline_referral", CaseState.REMOVED)


def test_bounce_is_recorded_and_the_workflow_moves_to_the_upstream(run: dict[str, Any]) -> None:
    stack: Stack = run["stack"]
    case = stack.case(BOUNCED)
    kinds = [e.kind for e in stack.events(case.id)]
    assert "notice_failed" in kinds and "escalated_after_refusal" in kinds
    failed = [n for n in stack.notices_of(case.id) if n.status == "failed"]
    assert failed and failed[0].smtp_code == 550
    assert messages(run, "abuse@hostc.example") == []
    escalation = messages(run, "abuse@upstream.example")
    assert urls_in(escalation[0]) == [BOUNCED]


def test_content_that_hops_is_followed_to_the_new_host(run: dict[str, Any]) -> None:
    stack: Stack = run["stack"]
    case = stack.case(HOPPER)
    hops = [e for e in stack.events(case.id) if e.kind == "hopped"]
    assert len(hops) == 1 and hops[0].detail["country"] == "DE"
    assert urls_in(messages(run, "abuse@berg.example")[0]) == [HOPPER]
    assert (case.round, case.country, case.state) == (1, "DE", CaseState.REMOVED)


@pytest.mark.parametrize(
    ("url", "outcome", "status", "reason"),
    [
        pytest.param(GROUPED[0], "gone", 404, None, id="404"),
        pytest.param(GONE_410, "gone", 410, None, id="410"),
        pytest.param(DNS_GONE, "gone", None, "NXDOMAIN", id="dns"),
    ],
)
def test_removal_is_confirmed_by_consecutive_gone_checks(
    run: dict[str, Any], url: str, outcome: str, status: int | None, reason: str | None
) -> None:
    stack: Stack = run["stack"]
    case = stack.case(url)
    checks = stack.checks(case.id)
    assert checks[0].outcome == "present" and checks[0].sha256
    assert [c.outcome for c in checks[-2:]] == [outcome, outcome]
    assert checks[-1].http_status == status
    if reason:
        assert reason.lower() in (checks[-1].reason or "").lower()
    assert case.removed_at is not None and case.removed_at >= checks[-1].at
    assert case.removed_by == ("nxdomain" if reason else "status")


def test_content_changed_at_200_is_never_removal_but_waits_for_an_analyst(
    run: dict[str, Any],
) -> None:
    stack: Stack = run["stack"]
    case = stack.case(CHANGED)
    checks = stack.checks(case.id)
    assert checks[0].outcome == "present" and checks[0].sha256
    changed = [c for c in checks if c.outcome == "changed"]
    assert len(changed) >= 2 and all(c.http_status == 200 for c in changed)
    assert "no fingerprint" in (changed[-1].rule or "")
    assert "gone" not in [c.outcome for c in checks]
    assert (case.state, case.removed_at) == (CaseState.NEEDS_ANALYST, None)
    assert (case.last_error or "").startswith("content changed: confirm removal")
    assert case.due_at is not None  # still re-checked while it waits
    assert [e.kind for e in stack.events(case.id)].count("content_changed") == 1


def test_nxdomain_at_report_time_waits_visibly_for_an_analyst(run: dict[str, Any]) -> None:
    stack: Stack = run["stack"]
    case = stack.case(NXDOMAIN)
    assert case.state == CaseState.NEEDS_ANALYST
    assert "NXDOMAIN" in (case.last_error or "") and case.due_at is not None
    assert stack.checks(case.id) == []


def test_special_use_address_is_never_fetched(run: dict[str, Any]) -> None:
    stack: Stack = run["stack"]
    case = stack.case(PRIVATE)
    assert case.state == CaseState.NEEDS_ANALYST
    assert "special-use" in (case.last_error or "")
    assert stack.checks(case.id) == []
    assert stack.world.fetches(PRIVATE) == []


def test_no_notice_is_delivered_twice(run: dict[str, Any]) -> None:
    counts = run["stack"].smtp.count_by_message_id()
    assert counts and max(counts.values()) == 1


def test_cli_shows_the_cases_as_json(run: dict[str, Any]) -> None:
    stack: Stack = run["stack"]
    done = stack.takedown("cases", "--json", "--state", "removed")
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert {c["url"] for c in listed} >= set(GROUPED)
    one = next(c for c in listed if c["url"] == GROUPED[0])
    assert {
        "id",
        "url",
        "state",
        "opened_at",
        "removed_at",
        "country",
        "route",
        "notices",
    } <= one.keys()
    assert one["notices"][0]["kind"] == "notice" and one["notices"][0]["message_id"]
    detail = json.loads(stack.takedown("case", str(one["id"]), "--json").stdout)
    assert [e["kind"] for e in detail["events"]][:2] == ["reported", "joined"]
    assert detail["checks"] and detail["notices"][0]["text"]
