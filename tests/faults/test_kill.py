"""Fault injection: workers killed with SIGKILL at random points, then restarted.

200 URLs over 20 hosts; a prefork worker whose children and parent are killed four times
while notices, chasers, escalations and re-checks are under way. Afterwards every
invariant of faultcheck.py must hold. Runs on PostgreSQL + Redis when CI provides them,
else on the embedded defaults.
"""

from __future__ import annotations

import os
import random
import signal
import time

import psutil
from faultcheck import drain_and_check
from faultstack import fault_stack as fault_stack  # the `stack` fixture
from faultstack import fault_world
from stack import Stack

from workflows.kinds import OPEN_STATES


def takedown_processes(worker: psutil.Process) -> list[psutil.Process]:
    """Return the worker and its pool children (not the embedded Redis it started)."""
    children = []
    try:
        found = worker.children(recursive=True)
    except psutil.Error:  # a child killed a moment ago and not yet reaped
        found = []
    for child in found:
        try:
            if "redis-server" not in " ".join(child.cmdline()):
                children.append(child)
        except psutil.Error:  # likewise: already dead, not a victim
            continue
    return [worker, *children]


def test_kill_9_of_workers_loses_nothing_and_delivers_nothing_twice(stack: Stack) -> None:
    _, urls = fault_world()
    stack.report(*urls)
    rng = random.Random(20261125)
    worker = stack.start_worker(pool="prefork")
    started, interrupted = time.monotonic(), set()
    for target in ("child", "parent", "child", "parent"):
        time.sleep(rng.uniform(1.0, 3.0))
        interrupted |= {c.id for c in stack.cases() if c.state in OPEN_STATES}
        victims = takedown_processes(psutil.Process(worker.pid))
        victim = victims[0] if target == "parent" or len(victims) == 1 else rng.choice(victims[1:])
        if victim.pid == worker.pid:  # the parent: its pool goes with it, then a restart
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
            worker = stack.start_worker(pool="prefork")
        else:  # a pool child: the parent requeues its task and forks a new child
            victim.send_signal(signal.SIGKILL)
    drain_and_check(stack, "kill -9 of workers", urls, interrupted, started)
