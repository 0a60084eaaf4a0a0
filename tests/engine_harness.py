"""In-process engine tests' shared pieces: a hand-moved clock, a one-host world, a runtime."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from conftest import ISOLATED, SERVICE_URLS, SIM_ADDRESSES
from stack import Stack, stack_of

from workflows.config.settings import load_settings
from workflows.engine.acting import act_cases
from workflows.engine.outbox import batch_notices
from workflows.engine.runtime import Runtime
from workflows.engine.tracing import trace_cases
from workflows.sim import Network, World
from workflows.store.claims import claim_notices
from workflows.store.db import migrate, transaction


class Clock:
    """A clock the test moves by hand, starting from the real time (reports use it).

    It starts ahead of the real time by more than a loaded machine takes to run a `takedown
    report` (the case's opened_at, real time) after it was made: the engine's times after.
    """

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=10)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


def hosta_world(*urls: str, upstream: str | None = None) -> World:
    """Return a world with files.hosta.test on HOSTA-NET serving URLS (and an upstream)."""
    networks = [
        Network("185.199.108.0/28", 205012, "HOSTA-NET", "GB", abuse=["abuse@hosta.example"])
    ]
    if upstream:
        networks.insert(
            0, Network("185.199.0.0/16", 205000, "UPSTREAM-NET", "GB", abuse=[upstream])
        )
    built = World(networks=networks, records={"files.hosta.test": [("A", "185.199.108.10")]})
    for url in urls:
        built.put_content(url)
    return built


@contextmanager
def engine_runtime(stack: Stack) -> Iterator[Runtime]:
    """Yield a migrated Runtime on STACK's settings with a Clock and a fixed random draw."""
    runtime = Runtime.from_settings(load_settings(stack.env))
    runtime.clock = Clock()
    runtime.rand = lambda: 0.5
    migrate(runtime.engine)
    try:
        yield runtime
    finally:
        runtime.close()


@contextmanager
def hosta_stack(tmp_path: Path, world: World, smtp_timeout: str | None = None) -> Iterator[Stack]:
    """Yield a Stack of WORLD on the embedded defaults (a short SMTP timeout if given)."""
    with stack_of(world, [], tmp_path, "embedded", SERVICE_URLS, ISOLATED, SIM_ADDRESSES) as up:
        if smtp_timeout:
            up.env["TAKEDOWN_SMTP_URL"] = f"{up.smtp.url}?timeout={smtp_timeout}"
        yield up


def claim_first_notice(stack: Stack, runtime: Runtime, url: str) -> int:
    """Report URL, trace it, owe and build its first notice, claim it as the sweep would."""
    case_id = stack.report(url)[0]["id"]
    trace_cases(runtime, [case_id])
    act_cases(runtime, [case_id])  # the first notice is owed
    runtime.clock.advance(runtime.policy.notice_window)  # type: ignore[attr-defined]
    (notice_id,) = batch_notices(runtime)
    with transaction(runtime.sessions) as session:
        assert claim_notices(session, runtime.clock(), runtime.lease) == [notice_id]
    return int(notice_id)
