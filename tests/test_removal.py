"""The removal verdict end to end: a real worker against hosts that behave as real ones do.

One world, one worker: a gallery page whose bytes change on every request, a host that
answers 404 to anything that looks like a robot, a desk that takes a picture down and puts
it back re-encoded, a desk that replaces a picture by a "page not found" page served with
200, and a desk that really removes. None of the impolite ones may be confirmed removed
while its content is online; the polite one is confirmed as fast as ever.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ISOLATED, SERVICE_URLS, SIM_ADDRESSES
from stack import DATA, Stack, stack_of

from workflows.kinds import CaseState
from workflows.sim import Desk, Network, World

DYNAMIC = "http://gallery.dyn.test/album/7"
CLOAKED = "http://img.cloak.test/p/1.jpg"
REUPLOADED = "http://img.again.test/p/2.jpg"
SOFT_404 = "http://img.soft.test/p/3.jpg"
REMOVED = "http://img.polite.test/p/4.jpg"
HOSTS = {
    DYNAMIC: ("185.199.108.10", "DYN-NET", "abuse@dyn.example"),
    CLOAKED: ("185.199.108.11", "CLOAK-NET", "abuse@cloak.example"),
    REUPLOADED: ("185.199.108.12", "AGAIN-NET", "abuse@again.example"),
    SOFT_404: ("185.199.108.13", "SOFT-NET", "abuse@soft.example"),
    REMOVED: ("185.199.108.14", "POLITE-NET", "abuse@polite.example"),
}


def removal_world() -> World:
    world = World()
    for n, (url, (address, name, abuse)) in enumerate(HOSTS.items()):
        world.add_network(Network(f"{address}/32", 206100 + n, name, "GB", abuse=[abuse]))
        world.set_records(url.split("/")[2], [("A", address)])
    world.put_content(DYNAMIC, kind="page", dynamic=True)
    world.put_content(CLOAKED, kind="picture", cloak=True)
    for url in (REUPLOADED, SOFT_404, REMOVED):
        world.put_content(url, kind="picture")
    return world


def desks(world: World) -> list[Desk]:
    # The re-upload comes 6 s after the removal: well after the removal is confirmed (two
    # gone checks 0.5 s apart, within ~2 s), so it is the watch that must see it come back.
    return [
        Desk("abuse@dyn.example", "never", world),
        Desk("abuse@cloak.example", "never", world),
        Desk("abuse@again.example", "reupload", world, delay=0.3, reupload_after=6.0),
        Desk("abuse@soft.example", "prompt", world, delay=0.3, removal="soft404"),
        Desk("abuse@polite.example", "prompt", world, delay=0.3),
    ]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    world = removal_world()
    home: Path = tmp_path_factory.mktemp("removal")
    with stack_of(
        world, desks(world), home, "embedded", SERVICE_URLS, ISOLATED, SIM_ADDRESSES
    ) as stack:
        stack.env["TAKEDOWN_POLICY"] = str(DATA / "removal-policy.toml")
        stack.report(*HOSTS)
        stack.start_worker()
        reappeared = lambda: stack.case(REUPLOADED).reappeared >= 1  # noqa: E731
        stack.wait_for(reappeared, 40, "the re-uploaded picture to reopen its case")
        stack.wait_for(
            lambda: (
                stack.case(REUPLOADED).state == CaseState.REMOVED
                and stack.case(SOFT_404).state == CaseState.NEEDS_ANALYST
                and stack.case(REMOVED).state == CaseState.REMOVED
            ),
            40,
            "the second removal, the soft-404 case at an analyst and the polite removal",
        )
        # The two hosts that never act have had their chaser by now: 5 s after the notice.
        stack.wait_for(
            lambda: all(len(stack.notices_of(stack.case(u).id)) >= 2 for u in (DYNAMIC, CLOAKED)),
            20,
            "the chasers to the hosts that keep their content",
        )
        yield stack


def outcomes(stack: Stack, url: str) -> list[str]:
    return [c.outcome for c in stack.checks(stack.case(url).id)]


@pytest.mark.parametrize("url", [DYNAMIC, CLOAKED])
def test_content_still_online_is_never_confirmed_removed(run: Stack, url: str) -> None:
    case = run.case(url)
    seen = outcomes(run, url)
    assert case.state == CaseState.ACTIVE and case.removed_at is None
    assert len(seen) >= 4 and set(seen) == {"present"}, seen
    kinds = [n.kind for n in run.notices_of(case.id)]
    assert kinds[:2] == ["notice", "chaser"]


def test_a_dynamic_page_is_the_same_page_by_its_text_not_its_bytes(run: Stack) -> None:
    checks = run.checks(run.case(DYNAMIC).id)
    assert len({c.sha256 for c in checks}) == len(checks)  # new bytes on every request
    assert all(c.content_type and c.content_type.startswith("text/html") for c in checks)
    assert all(c.tlsh for c in checks)
    assert all((c.rule or "").startswith("the same page") for c in checks[1:])


def test_a_cloaking_host_sees_a_browser_and_shows_it_the_picture(run: Stack) -> None:
    checks = run.checks(run.case(CLOAKED).id)
    assert all(c.http_status == 200 and c.content_type == "image/jpeg" for c in checks)
    assert all(c.pdq and len(c.pdq) == 64 for c in checks)
    assert checks[-1].rule == "the same bytes (SHA-256)"


def test_a_re_encoded_re_upload_reopens_the_case_and_gets_a_reappeared_notice(
    run: Stack,
) -> None:
    case = run.case(REUPLOADED)
    events = [e.kind for e in run.events(case.id)]
    assert events.count("removed") == 2 and events.count("reappeared") == 1
    assert events.index("removed") < events.index("reappeared")
    back = next(e for e in run.events(case.id) if e.kind == "reappeared")
    assert "the same picture (PDQ distance" in back.detail["rule"]
    assert (case.state, case.round, case.reappeared) == (CaseState.REMOVED, 1, 1)
    notices = run.notices_of(case.id)
    first, again = notices[0], next(n for n in notices if n.kind == "reappeared")
    assert again.in_reply_to == first.message_id  # it cites, and threads to, the first
    assert first.message_id in again.body_text
    sent = run.smtp.messages_to("abuse@again.example")
    assert any(m.message["Subject"].startswith(f"[N-{again.id:06d}] Available again") for m in sent)


def test_a_soft_404_page_reaches_an_analyst_with_the_rule_named(run: Stack) -> None:
    case = run.case(SOFT_404)
    seen = outcomes(run, SOFT_404)
    assert seen[0] == "present" and "gone" not in seen
    assert seen.count("changed") >= 2
    assert case.state == CaseState.NEEDS_ANALYST and case.removed_at is None
    assert case.last_error == "content changed: confirm removal (a picture replaced by a page)"


def test_a_host_that_really_removes_is_confirmed_as_fast_as_ever(run: Stack) -> None:
    case = run.case(REMOVED)
    assert case.removed_by == "status" and case.removed_at is not None
    assert case.first_notice_at is not None
    # notice → desk (0.3 s) → a check within recheck_every (1 s) → the confirming one 0.5 s later,
    # plus sweeps: well inside 5 s, and before any chaser.
    assert (case.removed_at - case.first_notice_at).total_seconds() < 5
    assert [n.kind for n in run.notices_of(case.id)] == ["notice"]
    assert case.watch_until is not None  # and it stays watched


def test_checks_record_evidence_never_the_body(run: Stack) -> None:
    checks: list[Any] = [c for url in HOSTS for c in run.checks(run.case(url).id)]
    present = [c for c in checks if c.outcome == "present"]
    assert present and all(c.size and c.sha256 and c.vantage for c in present)
    assert all(c.rule for c in checks)


def test_no_chaser_went_out_sooner_than_the_policy_gap_after_its_notice(run: Stack) -> None:
    gaps = []
    for url in HOSTS:
        sent = {n.kind: n.sent_at for n in run.notices_of(run.case(url).id) if n.sent_at}
        if "chaser" in sent:
            gaps.append((sent["chaser"] - sent["notice"]).total_seconds())
    assert len(gaps) >= 2 and min(gaps) >= 5.0  # removal-policy.toml: the chaser 5 s after
