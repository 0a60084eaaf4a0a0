"""Several vantages: re-checks rotate among the fetch proxies, and removal needs both.

A stack of its own (its web servers take the same addresses as test_removal's world).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from conftest import ISOLATED, SERVICE_URLS, SIM_ADDRESSES
from stack import DATA, stack_of
from test_removal import CLOAKED, REMOVED, removal_world

from workflows.kinds import CaseState
from workflows.sim import Desk, SimProxy, WebServer


def test_with_two_vantages_checks_rotate_and_removal_needs_gone_from_both(
    tmp_path: Path,
) -> None:
    world = removal_world()
    polite = Desk("abuse@polite.example", "prompt", world, delay=0.3)
    with stack_of(
        world, [polite], tmp_path, "embedded", SERVICE_URLS, ISOLATED, SIM_ADDRESSES
    ) as stack:
        web = stack.exits.enter_context(WebServer(world))
        vantages = [stack.exits.enter_context(SimProxy(world, web)) for _ in range(2)]
        stack.env["TAKEDOWN_FETCH_PROXY"] = ",".join(v.url for v in vantages)
        stack.env["TAKEDOWN_POLICY"] = str(DATA / "removal-policy.toml")
        stack.report(REMOVED, CLOAKED)
        stack.start_worker()
        stack.wait_for(lambda: stack.case(REMOVED).state == CaseState.REMOVED, 30, "removal")
        stack.wait_for(lambda: len(stack.checks(stack.case(CLOAKED).id)) >= 4, 20, "checks")
        case = stack.case(REMOVED)
        removed = next(e for e in stack.events(case.id) if e.kind == "removed")
        gone = [c for c in stack.checks(case.id) if c.outcome == "gone"]
        cloaked = stack.checks(stack.case(CLOAKED).id)
    names = {f"proxy {urlsplit(v.url).hostname}:{urlsplit(v.url).port}" for v in vantages}
    assert set(removed.detail["vantages"]) == names  # gone from both, or not removed
    assert {c.vantage for c in gone} == names
    assert all(v.requests for v in vantages)  # each proxy carried checks
    # Through either proxy the cloaking host sees a browser: its picture, never a 404.
    assert {c.vantage for c in cloaked} == names
    assert {c.outcome for c in cloaked} == {"present"}
