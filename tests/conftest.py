"""Test session set-up: a network of our own, and no skipped test ever counts as a pass."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from hypothesis import settings

from workflows.sim.netns import isolate_network

# Property tests run the same examples every time, so CI never flakes on a new one.
settings.register_profile("takedown", derandomize=True, deadline=None, print_blob=True)
settings.load_profile("takedown")

ISOLATED = False


def pytest_configure(config: pytest.Config) -> None:
    """Move the whole session into its own network namespace where the process may.

    Inside it only loopback exists: a packet to any other address fails at once with
    ENETUNREACH, so no test can reach the internet even by mistake. Subprocesses (the
    `takedown` command under test, workers) inherit the namespace.
    """
    global ISOLATED
    if os.environ.get("TAKEDOWN_TEST_ISOLATION", "1") != "0":
        ISOLATED = isolate_network()
    config.stash[_isolated_key] = ISOLATED


_isolated_key = pytest.StashKey[bool]()
_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Remember skipped tests: a skipped test proves nothing."""
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when any test was skipped."""
    if _skipped and exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say how the session was isolated, and which skips failed the run."""
    where = "own network namespace (loopback only)" if ISOLATED else "host network, 127.0.0.1 only"
    terminalreporter.write_line(f"takedown tests ran in: {where}")
    for nodeid in _skipped:
        terminalreporter.write_line(f"SKIPPED COUNTS AS FAILED: {nodeid}", red=True)


@pytest.fixture(scope="session")
def takedown_command() -> list[str]:
    """Return the installed `takedown` console script (the real entry point)."""
    script = Path(sys.executable).parent / "takedown"
    found = str(script) if script.exists() else shutil.which("takedown")
    assert found, "the takedown console script is not installed: pip install -e '.[test]'"
    return [found]
