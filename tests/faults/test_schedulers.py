"""Fault injection: two workers, each a would-be sweep scheduler, and the sweeper killed.

Both workers run with the sweep enabled; the Redis lease lets one of them sweep. Midway the
sweeping worker is killed with SIGKILL (its lease is left behind), and the other must take
the sweep over once the lease expires. The sweep is also safe to run twice, but here the
logs show that only one process swept at any time.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import time

from faultcheck import drain_and_check
from faultstack import fault_stack as fault_stack  # the `stack` fixture
from faultstack import fault_world
from stack import Stack

from workflows.kinds import OPEN_STATES

TAKEN = "sweep lock taken: this worker sweeps"


def log_of(stack: Stack, worker: subprocess.Popen[str]) -> str:
    """Return one worker's log (each worker writes its own file)."""
    logs = sorted(stack.home.glob("worker-*.log"))
    return logs[stack.workers.index(worker)].read_text()


def sweepers(stack: Stack, workers: list[subprocess.Popen[str]]) -> list[subprocess.Popen[str]]:
    """Return the workers whose logs say they took the sweep lock."""
    return [w for w in workers if TAKEN in log_of(stack, w)]


def test_two_would_be_schedulers_sweep_one_at_a_time(stack: Stack) -> None:
    _, urls = fault_world()
    stack.report(*urls)
    first, second = stack.start_worker(), stack.start_worker()
    stack.wait_for(lambda: len(sweepers(stack, [first, second])) >= 1, 30, "a sweeper")
    started, interrupted = time.monotonic(), set()
    time.sleep(random.Random(2).uniform(2.0, 4.0))
    assert len(sweepers(stack, [first, second])) == 1, "both workers took the sweep lock"
    (holder,) = sweepers(stack, [first, second])
    other = second if holder is first else first
    interrupted |= {c.id for c in stack.cases() if c.state in OPEN_STATES}
    stack.worker = other  # wait_for watches the survivor from now on
    os.killpg(holder.pid, signal.SIGKILL)
    holder.wait()
    stack.wait_for(lambda: TAKEN in log_of(stack, other), 60, "the other worker to sweep")
    drain_and_check(stack, "two schedulers, the sweeper killed", urls, interrupted, started)
    sweeps = [len(re.findall(r"sweep: ", log_of(stack, w))) for w in (holder, other)]
    assert all(n > 0 for n in sweeps), f"each worker swept in its turn: {sweeps}"
