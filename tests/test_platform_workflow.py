"""A URL on a platform, through the engine: the notice goes to the platform's desk, the
upstream escalation to the network under it (not the network's RDAP parent), and the
case's provider is the platform; a platform whose desk is a form gets a form task.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_harness import engine_runtime, hosta_stack
from sqlalchemy import select
from stack import Stack
from test_escalation import policy

from workflows.engine.acting import act_cases
from workflows.engine.outbox import batch_notices
from workflows.engine.runtime import Runtime
from workflows.engine.sending import send_notice
from workflows.engine.tracing import trace_cases
from workflows.sim import Network, World
from workflows.store.claims import claim_notices
from workflows.store.db import transaction
from workflows.store.models import Notice, NoticeItem

URL = "http://alice.blogs.test/p/1.jpg"
FORM_URL = "http://bob.forms-only.test/x"
PLATFORM = "abuse@blogs.example"
NETWORK = "abuse@hosta.example"
PARENT = "abuse@upstream.example"
PLATFORMS = """
[platform.blogs]
name = "Example Blogs"
hosts = ["blogs.test"]
abuse = ["abuse@blogs.example"]

[platform.formsonly]
name = "Forms Only"
hosts = ["forms-only.test"]
form = "https://forms-only.example/report"
"""


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    world = World(
        networks=[
            Network("185.199.0.0/16", 205000, "UPSTREAM-NET", "GB", abuse=[PARENT]),
            Network("185.199.108.0/28", 205012, "HOSTA-NET", "GB", abuse=[NETWORK]),
        ],
        records={
            "alice.blogs.test": [("A", "185.199.108.10")],
            "bob.forms-only.test": [("A", "185.199.108.11")],
        },
    )
    world.put_content(URL)
    world.put_content(FORM_URL)
    platforms = tmp_path / "platforms.toml"
    platforms.write_text(PLATFORMS, encoding="utf-8")
    steps = (
        '{ after = "0s", send = "notice" },\n'
        '{ after = "5s", send = "escalation", to = "upstream" },\n'
    )
    with hosta_stack(tmp_path, world) as up:
        up.env["TAKEDOWN_PLATFORMS"] = str(platforms)
        up.env["TAKEDOWN_POLICY"] = str(policy(tmp_path, steps))
        yield up


@pytest.fixture
def rt(stack: Stack) -> Iterator[Runtime]:
    with engine_runtime(stack) as runtime:
        yield runtime


def test_the_platform_gets_the_notice_and_the_network_under_it_the_escalation(
    stack: Stack, rt: Runtime
) -> None:
    ids = [c["id"] for c in stack.report(URL, FORM_URL)]
    trace_cases(rt, ids)
    act_cases(rt, ids)
    rt.clock.advance(rt.policy.notice_window)  # type: ignore[attr-defined]
    batch_notices(rt)
    blog, form = stack.case(URL), stack.case(FORM_URL)
    assert (blog.provider, blog.recipients) == ("Example Blogs", PLATFORM)
    assert form.provider == "Forms Only"
    with rt.sessions() as session:
        notices = {n.recipients: n for n in session.scalars(select(Notice))}
    assert notices[PLATFORM].status == "pending"
    assert notices["https://forms-only.example/report"].status == "form"
    with transaction(rt.sessions) as session:
        claim_notices(session, rt.clock(), rt.lease)
    assert send_notice(rt, notices[PLATFORM].id) == "sent"
    assert stack.smtp.messages_to(PLATFORM) and not stack.smtp.messages_to(NETWORK)
    rt.clock.advance(10)  # type: ignore[attr-defined]
    act_cases(rt, [blog.id])
    with rt.sessions() as session:
        owed = session.scalars(
            select(NoticeItem.recipients).where(NoticeItem.case_id == blog.id, NoticeItem.step == 1)
        ).all()
    assert owed == [NETWORK]  # the network under the platform, not the network's parent
