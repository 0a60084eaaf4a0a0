"""Hypothesis fuzzing of the command line: every input is either done or refused cleanly.

A refusal is exit 2 with one line on stderr naming the problem, and the case store is
exactly as it was. Runs `workflows.cli.main.main` in-process on a throwaway TAKEDOWN_HOME.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from workflows.cli.main import main
from workflows.store.db import make_engine
from workflows.store.models import Case, Event

HOME = Path(tempfile.mkdtemp(prefix="takedown-cli-fuzz-"))
URLISH = st.one_of(
    st.text(max_size=40),
    st.builds(
        lambda scheme, host, path: f"{scheme}://{host}/{path}",
        st.sampled_from(["http", "https", "ftp", "HTTP", "", "javascript"]),
        st.text(st.characters(codec="utf-8"), max_size=20),
        st.text(max_size=20),
    ),
)
FLAGS = st.lists(
    st.sampled_from(["--ref", "--category", "--analyst", "--json", "--file", "--bogus"]),
    max_size=3,
)


@contextlib.contextmanager
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point the command at the fuzzing home and nothing else."""
    for name in ("TAKEDOWN_DATABASE_URL", "TAKEDOWN_REDIS_URL", "TAKEDOWN_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TAKEDOWN_HOME", str(HOME))
    yield


def store_counts() -> tuple[int, int]:
    """Return how many cases and events the fuzzing home holds."""
    database = HOME / "takedown.db"
    if not database.exists():
        return (0, 0)
    engine = make_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as connection:
            cases = connection.scalar(select(func.count()).select_from(Case)) or 0
            events = connection.scalar(select(func.count()).select_from(Event)) or 0
    finally:
        engine.dispose()
    return (cases, events)


def run(argv: list[str]) -> tuple[int, str]:
    """Run the command line; return its exit code and stderr."""
    stderr, stdout = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse refuses by exiting
            code = int(exit_.code or 0)
    return code, stderr.getvalue()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(urls=st.lists(URLISH, min_size=1, max_size=3), flags=FLAGS, value=st.text(max_size=30))
def test_report_is_done_or_refused_with_one_line_and_no_change(
    monkeypatch: pytest.MonkeyPatch, urls: list[str], flags: list[str], value: str
) -> None:
    argv = ["report"]
    for flag in flags:
        argv += [flag] if flag in ("--json", "--bogus") else [flag, value]
    with environment(monkeypatch):
        before = store_counts()
        code, stderr = run([*argv, "--", *urls])
        after = store_counts()
    event(f"exit {code}")
    assert code in (0, 2), stderr
    if code == 2:
        assert stderr.startswith("takedown: ") and stderr.count("\n") == 1, stderr
        assert after == before, "a refused report changed the store"
    else:
        assert after[0] >= before[0]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(argv=st.lists(st.text(max_size=15), min_size=1, max_size=4))
def test_any_command_line_ends_in_a_clear_exit(
    monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    if argv[0] in ("worker", "demo", "up", "serve", "purge"):
        argv[0] = "cases"  # long-running or destructive commands are tested elsewhere
    with environment(monkeypatch):
        before = store_counts()
        code, stderr = run(argv)
        after = store_counts()
    assert code in (0, 1, 2), stderr
    if code == 2:
        assert stderr.count("\n") == 1 and stderr.startswith("takedown"), stderr
        assert after == before
