"""Steps and notices apart from re-checks: the sweep's routing, the steps task, the queues,
and the fetch loop's bounds per host and overall."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import wait
from pathlib import Path

import pytest
from engine_harness import engine_runtime, hosta_stack, hosta_world
from sqlalchemy import select
from stack import Stack

from workflows.config.settings import load_settings, parse_queues
from workflows.engine import sweep as sweep_module
from workflows.engine.acting import act_cases
from workflows.engine.runtime import Runtime
from workflows.engine.sweep import (
    CHECK,
    CHECK_BACKLOG,
    CHECK_BATCH,
    STEPS,
    TRACE,
    TRACE_BATCH,
    TRICKLE_EVERY,
    URGENT_BACKLOG,
    batches,
    checks_wait,
    first_notices_owed,
    sweep,
    task_for,
)
from workflows.engine.tasks import DEFAULT_QUEUES, queue_of, route_queues
from workflows.engine.tracing import trace_cases
from workflows.errors import ConfigError
from workflows.kinds import CaseState, CheckOutcome
from workflows.recheck.egress import Resolutions
from workflows.recheck.fetch import Fetcher, FetchResult
from workflows.recheck.loop import FetchLoop, host_of
from workflows.store.claims import Claimed, claim_traces
from workflows.store.db import transaction
from workflows.store.models import Case, Check, NoticeItem

URL = "http://files.hosta.test/q"


def claimed(state: str, *, step_due: bool = False, changed: bool = False) -> Claimed:
    return Claimed(1, state, "h.test", changed, step_due)


def test_a_case_with_a_step_due_goes_to_the_steps_task_whatever_else_is_due() -> None:
    assert task_for(claimed(CaseState.ACTIVE, step_due=True)) == STEPS
    assert task_for(claimed(CaseState.ACTIVE)) == CHECK  # only its re-check is due
    assert task_for(claimed(CaseState.REMOVED)) == CHECK  # watched
    assert task_for(claimed(CaseState.REMOVED, step_due=True)) == CHECK  # no steps once removed
    assert task_for(claimed(CaseState.NEEDS_ANALYST, changed=True)) == CHECK
    assert task_for(claimed(CaseState.NEEDS_ANALYST)) == TRACE
    assert task_for(claimed(CaseState.NEW)) == TRACE
    assert task_for(claimed(CaseState.WAITING, step_due=True)) == TRACE  # not routed yet


def test_batches_keep_a_hosts_cases_together_and_share_one_among_small_hosts() -> None:
    by_host = {f"h{n}.test": list(range(n * 1000, n * 1000 + 30)) for n in range(20)}
    by_host["big.test"] = list(range(100_000, 100_000 + 450))
    for task, size in ((CHECK, CHECK_BATCH), (STEPS, 25), (TRACE, TRACE_BATCH)):
        found = batches(task, by_host)
        assert sorted(i for _, ids in found for i in ids) == sorted(
            i for ids in by_host.values() for i in ids
        )  # every case once
        assert all(len(ids) <= size for _, ids in found)
        for host, ids in by_host.items():  # a host's cases in as few batches as its size needs
            holding = [n for n, (_, batch) in enumerate(found) if set(batch) & set(ids)]
            assert len(holding) <= -(-len(ids) // size) + 1, host
    # Checks: the big host's 450 in two full batches and 50, which the twenty hosts of 30
    # join whole (never split) as long as a batch has room: 50 + 5 × 30, then 6 × 30 twice.
    assert [len(ids) for _, ids in batches(CHECK, by_host)] == [200, 200, 200, 180, 180, 90]
    # Steps: 18 full batches for the big host, one for each small host, whose twenty
    # leftover fives share 4 batches.
    assert len(batches(STEPS, by_host)) == 18 + 20 + 4
    # Traces: 4 full batches for the big host, its 50 left joined by one small host, the
    # others three to a batch.
    assert [len(ids) for _, ids in batches(TRACE, by_host)] == [100] * 4 + [80] + [90] * 6 + [30]


def test_a_trickle_over_many_hosts_makes_one_task_not_one_per_host() -> None:
    by_host = {f"h{n:02}.test": [n] for n in range(20)}  # twenty reports a second, all apart
    assert batches(TRACE, by_host) == [(TRACE, list(range(20)))]
    assert batches(CHECK, by_host) == [(CHECK, list(range(20)))]
    by_host = {f"h{n:02}.test": [n] for n in range(60)}
    assert [len(ids) for _, ids in batches(STEPS, by_host)] == [25, 25, 10]


def test_queues_default_apart_and_can_be_routed_by_the_operator() -> None:
    try:
        assert route_queues(()) == [
            "takedown",
            "takedown.checks",
            "takedown.notices",
            "takedown.send",
        ]
        assert queue_of("takedown.check") == "takedown.checks"
        assert queue_of("takedown.steps") == "takedown.notices"
        assert queue_of("takedown.send") == "takedown.send"  # never behind the steps
        routes = parse_queues("check=fetchers, steps=urgent,send=urgent")
        assert routes == (("check", "fetchers"), ("steps", "urgent"), ("send", "urgent"))
        # The mailbox read stays on the notices queue unless routed too.
        assert route_queues(routes) == ["fetchers", "takedown", "takedown.notices", "urgent"]
        assert queue_of("takedown.check") == "fetchers"
        assert queue_of("takedown.inbox") == "takedown.notices"
    finally:
        route_queues(())
    assert DEFAULT_QUEUES["check"] != DEFAULT_QUEUES["steps"]


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("check", "expected task=queue"),
        ("fetch=x", "expected task=queue"),
        ("check=a b", "not a queue name"),
        ("check=a,check=b", "routed twice"),
    ],
)
def test_a_bad_queue_route_is_refused_naming_it(text: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named) as raised:
        load_settings({"TAKEDOWN_QUEUES": text, "TAKEDOWN_HOME": "/nonexistent"})
    assert "TAKEDOWN_QUEUES" in str(raised.value)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with hosta_stack(tmp_path, hosta_world(URL)) as running:
        yield running


@pytest.fixture
def rt(stack: Stack) -> Iterator[Runtime]:
    with engine_runtime(stack) as runtime:
        yield runtime


def owe_first_notice(stack: Stack, rt: Runtime) -> int:
    """Report URL, trace it and owe its first notice (its window running); return its id."""
    case_id: int = stack.report(URL)[0]["id"]
    rt.clock.now = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)  # type: ignore[attr-defined]
    trace_cases(rt, [case_id])
    act_cases(rt, [case_id], recheck=False)
    return case_id


def test_the_steps_task_owes_the_first_notice_without_fetching_and_leaves_the_check_due(
    stack: Stack, rt: Runtime
) -> None:
    case_id: int = stack.report(URL)[0]["id"]
    trace_cases(rt, [case_id])
    published: list[tuple[str, list[int]]] = []
    sweep(rt, lambda task, ids: published.append((task, list(ids))))
    assert published == [(STEPS, [case_id])]  # routed: its first step is due
    act_cases(rt, [case_id], recheck=False)
    with rt.sessions() as session:
        owed = session.scalars(select(NoticeItem.kind).where(NoticeItem.case_id == case_id))
        assert list(owed) == ["notice"]
        assert session.scalars(select(Check).where(Check.case_id == case_id)).all() == []
        case = session.get_one(Case, case_id)
    assert case.check_due_at is not None and case.check_due_at <= rt.clock()
    assert case.due_at == case.check_due_at  # handed out again at once, for its re-check
    published.clear()
    sweep(rt, lambda task, ids: published.append((task, list(ids))))
    assert (CHECK, [case_id]) in published
    act_cases(rt, [case_id])
    assert [c.outcome for c in stack.checks(case_id)] == ["present"]


class SlowFetcher(Fetcher):
    """Answers after a pause, counting who is in flight (no network)."""

    def __init__(self, pause: float = 0.05) -> None:
        self.pause = pause
        self.lock = threading.Lock()
        self.hosts: Counter[str] = Counter()

    async def afetch(self, url: str, resolutions: Resolutions | None = None) -> FetchResult:
        await asyncio.sleep(self.pause)
        with self.lock:
            self.hosts[host_of(url)] += 1
        return FetchResult(CheckOutcome.PRESENT, url, status=200, sha256="ab" * 32, size=1)


def test_the_fetch_loop_runs_hundreds_at_once_but_never_more_than_four_per_host() -> None:
    loop = FetchLoop(per_host=4, overall=150)
    fetcher = SlowFetcher()
    try:
        urls = [f"http://h{n}.test/{k}" for n in range(100) for k in range(10)]
        futures = [loop.submit(fetcher, url) for url in urls]
        done, late = wait(futures, timeout=30)
    finally:
        loop.close()
    assert not late and all(f.result().outcome == "present" for f in done)
    assert loop.peak_per_host == 4  # reached, never passed
    assert 100 < loop.peak <= 150  # hundreds in flight, never more than the overall bound
    assert set(fetcher.hosts.values()) == {10}


def test_a_cancelled_fetch_gives_its_slots_back() -> None:
    loop = FetchLoop(per_host=1, overall=1)
    try:
        stuck = loop.submit(SlowFetcher(pause=60), "http://h.test/1")
        stuck.cancel()
        after = loop.submit(SlowFetcher(pause=0), "http://h.test/2")
        assert after.result(timeout=10).outcome == "present"
    finally:
        loop.close()


def test_a_full_checks_queue_holds_back_re_checks_but_never_steps_or_traces(
    stack: Stack, rt: Runtime
) -> None:
    routed_id, fresh_id = (r["id"] for r in stack.report(URL, "http://files.hosta.test/other"))
    rt.clock.now = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)  # type: ignore[attr-defined]
    trace_cases(rt, [routed_id])
    act_cases(rt, [routed_id], recheck=False)  # its first step owed; only its re-check is due
    published: list[tuple[str, list[int]]] = []
    full_checks = {"takedown.checks": CHECK_BACKLOG}  # and nothing waiting elsewhere
    full = sweep(
        rt, lambda task, ids: published.append((task, list(ids))), lambda q: full_checks.get(q, 0)
    )
    assert full.checks_held and published == [(TRACE, [fresh_id])]
    trace_cases(rt, [fresh_id])  # routed now: its first step is due
    published.clear()
    sweep(
        rt, lambda task, ids: published.append((task, list(ids))), lambda q: full_checks.get(q, 0)
    )
    assert published == [(STEPS, [fresh_id])]  # steps go out whatever the checks queue holds
    published.clear()
    asked: list[str] = []

    def empty(queue: str) -> int:
        asked.append(queue)
        return 0

    drained = sweep(rt, lambda task, ids: published.append((task, list(ids))), empty)
    assert not drained.checks_held and (CHECK, [routed_id]) in published
    # Checks full? Behind? Room for traces?
    assert asked == ["takedown.checks", "takedown", "takedown.notices", "takedown.send", "takedown"]


def test_a_big_report_is_claimed_only_as_fast_as_the_trace_queue_empties(
    stack: Stack, rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [r["id"] for r in stack.report(*(f"{URL}/{n}" for n in range(5)))]
    rt.clock.now = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)  # type: ignore[attr-defined]
    monkeypatch.setattr(sweep_module, "TRACE_BATCH", 2)  # two cases a trace task…
    monkeypatch.setattr(sweep_module, "TRACE_BACKLOG", 2)  # …and two tasks waiting at most
    waiting = {"takedown": 1}
    published: list[tuple[str, list[int]]] = []

    def swept() -> bool:
        published.clear()
        report = sweep(rt, lambda task, ids: published.append((task, list(ids))), backlog)
        return report.more

    def backlog(queue: str) -> int:
        return waiting.get(queue, 0)

    assert swept() and published == [(TRACE, ids[:2])]  # room for one task: it is filled
    waiting["takedown"] = 2
    assert swept() and published == []  # a full queue: the rest wait in the database…
    waiting["takedown"] = 0
    assert swept() and published == [(TRACE, ids[2:4]), (TRACE, ids[4:])]  # …till now
    assert not swept() and published == []  # each claimed once, none handed out twice


def test_traces_are_claimed_whole_host_names_at_a_time(stack: Stack, rt: Runtime) -> None:
    # A report listing its host names in turn, as big ones do.
    a1, b1, a2, b2, a3 = (
        r["id"]
        for r in stack.report(
            *(f"http://{h}.hosta.test/{n}" for n in (1, 2) for h in "ab"), "http://a.hosta.test/3"
        )
    )
    now = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)

    def claimed(limit: int) -> list[int]:
        with transaction(rt.sessions) as session:
            return sorted(c.id for c in claim_traces(session, now, 60, limit))

    assert claimed(3) == [a1, a2, a3]  # a's three fill the claim: b's wait, whole
    assert claimed(1) == [b1]  # one host name with more than the limit: its first ones
    assert claimed(5) == [b2]
    assert claimed(5) == []  # each claimed once


def test_the_trace_task_keeps_its_claim_on_what_it_routed_and_owes_the_first_step_itself(
    stack: Stack, rt: Runtime
) -> None:
    case_id: int = stack.report(URL)[0]["id"]
    rt.clock.now = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)  # type: ignore[attr-defined]
    published: list[tuple[str, list[int]]] = []
    sweep(rt, lambda task, ids: published.append((task, list(ids))))
    assert published == [(TRACE, [case_id])]
    assert trace_cases(rt, [case_id], keep_claims=True) == [case_id]
    published.clear()
    sweep(rt, lambda task, ids: published.append((task, list(ids))))
    assert published == []  # still the trace task's: no steps task races it
    act_cases(rt, [case_id], recheck=False)  # what the trace task does next
    with rt.sessions() as session:
        owed = list(session.scalars(select(NoticeItem.kind).where(NoticeItem.case_id == case_id)))
        case = session.get_one(Case, case_id)
    assert owed == ["notice"] and case.claimed_until is None


def test_a_notice_built_in_a_sweep_is_handed_out_in_that_sweep(stack: Stack, rt: Runtime) -> None:
    owe_first_notice(stack, rt)
    rt.clock.advance(rt.policy.notice_window + 1)  # type: ignore[attr-defined]
    frozen = rt.clock

    def ticking() -> dt.datetime:  # a clock that moves on, as a real one does mid-sweep
        frozen.advance(0.001)  # type: ignore[attr-defined]
        return frozen()

    rt.clock = ticking
    published: list[tuple[str, list[int]]] = []
    report = sweep(rt, lambda task, ids: published.append((task, list(ids))))
    assert report.notices_built == 1 and report.notices_sent == 1
    assert [task for task, _ in published].count("takedown.send") == 1


def test_notices_are_claimed_only_as_fast_as_they_are_sent(
    stack: Stack, rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    owe_first_notice(stack, rt)
    rt.clock.advance(rt.policy.notice_window + 1)  # type: ignore[attr-defined]
    monkeypatch.setattr(sweep_module, "SENDING_MOST", 0)  # as if that many were being sent
    published: list[tuple[str, list[int]]] = []
    full = sweep(rt, lambda task, ids: published.append((task, list(ids))))
    assert full.notices_built == 1 and full.notices_sent == 0 and full.more  # built, left due
    assert "takedown.send" not in [task for task, _ in published]
    assert first_notices_owed(rt) >= 1  # a first notice due counts as owed: re-checks wait
    monkeypatch.setattr(sweep_module, "SENDING_MOST", 1)
    published.clear()
    room = sweep(rt, lambda task, ids: published.append((task, list(ids))))
    assert room.notices_sent == 1 and [task for task, _ in published].count("takedown.send") == 1
    published.clear()
    assert sweep(rt, lambda task, ids: published.append((task, list(ids)))).notices_sent == 0


def test_re_checks_trickle_while_traces_are_behind_on_the_same_workers(
    stack: Stack, rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    urls = [URL, "http://files.hosta.test/second", "http://files.hosta.test/fresh"]
    *routed, fresh_id = (r["id"] for r in stack.report(*urls))
    rt.clock.now = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)  # type: ignore[attr-defined]
    trace_cases(rt, routed)
    act_cases(rt, routed, recheck=False)  # only their re-checks are due now
    monkeypatch.setattr(sweep_module, "CHECK_BATCH", 1)  # one check task: one case
    asked: list[tuple[str, list[str]]] = []

    def shared(checks: str, queues: Sequence[str]) -> bool:
        asked.append((checks, list(queues)))
        return True

    behind = {
        "takedown": URGENT_BACKLOG,
        "takedown.checks": 0,
        "takedown.notices": 0,
        "takedown.send": 0,
    }
    published: list[tuple[str, list[int]]] = []
    report = sweep(rt, lambda task, ids: published.append((task, list(ids))), behind.get, shared)
    # A burst: the fresh case is traced, both re-checks wait.
    # (With batches of one, the two owed first notices are a burst too.)
    assert report.checks_held and asked == [("takedown.checks", ["takedown", "takedown.send"])]
    assert published == [(TRACE, [fresh_id])]
    # Held as long as an overload: one task's worth goes out every TRICKLE_EVERY all the same.
    monkeypatch.setattr(sweep_module, "CHECKS_HOLD_LIMIT", 0.0)
    published.clear()
    report = sweep(rt, lambda task, ids: published.append((task, list(ids))), behind.get, shared)
    assert report.checks_held and report.more and [task for task, _ in published] == [CHECK]
    (first,) = published[0][1]
    assert first in routed
    published.clear()
    sweep(rt, lambda task, ids: published.append((task, list(ids))), behind.get, shared)
    assert published == []  # sweeps come every second while work waits; trickles do not
    assert rt.checks_trickled_at is not None
    rt.checks_trickled_at -= dt.timedelta(seconds=TRICKLE_EVERY)  # as if that long ago
    sweep(rt, lambda task, ids: published.append((task, list(ids))), behind.get, shared)
    other = [case_id for case_id in routed if case_id != first]
    assert published == [(CHECK, other)]  # TRICKLE_EVERY later
    rt.checks_held_since = rt.checks_trickled_at = None


def test_when_re_checks_wait() -> None:
    def backlog(trace: int = 0, notices: int = 0, checks: int = 0) -> Callable[[str], int]:
        queues = {"takedown": trace, "takedown.notices": notices, "takedown.checks": checks}
        return lambda queue: queues.get(queue, 0)

    def shared(checks: str, behind: Sequence[str]) -> bool:
        return True

    def apart(checks: str, behind: Sequence[str]) -> bool:
        return False

    assert not checks_wait(None, None)  # no broker to ask: claim everything
    assert not checks_wait(backlog(), shared)
    assert not checks_wait(backlog(trace=URGENT_BACKLOG - 1), shared)
    assert checks_wait(backlog(trace=URGENT_BACKLOG), shared)
    assert checks_wait(backlog(notices=URGENT_BACKLOG), None)  # one worker for all: assumed
    assert not checks_wait(backlog(trace=99, notices=99), apart)  # workers of their own
    assert checks_wait(backlog(checks=CHECK_BACKLOG), apart)  # their own queue is full
    # First notices owed (being sent, or a big report's) hold re-checks back too.
    assert checks_wait(backlog(), shared, owed=URGENT_BACKLOG)
    assert not checks_wait(backlog(), shared, owed=URGENT_BACKLOG - 1)
    assert not checks_wait(backlog(), apart, owed=URGENT_BACKLOG)


def test_first_notices_owed_counts_what_the_queues_do_not_show(
    stack: Stack, rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    owe_first_notice(stack, rt)
    assert first_notices_owed(rt) == 0  # one URL is no burst
    monkeypatch.setattr(sweep_module, "CHECK_BATCH", 1)
    assert first_notices_owed(rt) == URGENT_BACKLOG  # a check batch's worth is
    rt.clock.advance(rt.policy.notice_window + 1)  # type: ignore[attr-defined]
    published: list[tuple[str, list[int]]] = []
    sweep(rt, lambda task, ids: published.append((task, list(ids))))
    assert "takedown.send" in [task for task, _ in published]
    assert first_notices_owed(rt) == 1  # being sent: one send task's worth
