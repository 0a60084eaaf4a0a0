"""TAKEDOWN_HOME is created 0700 and the files takedown creates there 0600, whatever the
umask: other local users must not read live URLs, password hashes or logs.

Attack: a umask of 000 (every new file world-writable) when the desk first starts.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from workflows.cli.main import main
from workflows.config.home import private_dir, private_file
from workflows.store.db import make_engine, migrate


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Run with umask 000, the most permissive there is (restored afterwards)."""
    before = os.umask(0)
    try:
        yield
    finally:
        os.umask(before)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_home_and_its_database_are_private_under_umask_zero(
    tmp_path: Path, open_umask: None
) -> None:
    home = tmp_path / "fresh" / "takedown"
    engine = make_engine(f"sqlite:///{home / 'takedown.db'}")
    migrate(engine)
    with engine.connect() as connection:  # the WAL and its index exist while it is open
        connection.execute(text("SELECT count(*) FROM cases"))
        files = sorted(p.name for p in home.iterdir())
        assert {"takedown.db-wal", "takedown.db-shm"} <= set(files)
        assert {name: mode(home / name) for name in files} == {name: 0o600 for name in files}
    engine.dispose()
    assert mode(home) == 0o700


def test_the_cli_makes_a_private_home_under_umask_zero(
    tmp_path: Path, open_umask: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("TAKEDOWN_HOME", str(home))
    assert main(["user", "add", "sue", "--role", "supervisor"]) == 0
    assert mode(home) == 0o700
    assert {p.name: mode(p) for p in home.iterdir()} == {
        "takedown.db": 0o600,
        "takedown.db.migrate-lock": 0o600,
    }


def test_existing_files_of_ours_are_made_private(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    log.write_text("older lines\n")
    log.chmod(0o644)
    assert private_file(log) == log and mode(log) == 0o600
    assert log.read_text() == "older lines\n"  # opened to append, never truncated


def test_an_existing_home_keeps_the_mode_its_operator_gave_it(tmp_path: Path) -> None:
    home = tmp_path / "chosen"
    home.mkdir()
    home.chmod(0o750)
    private_dir(home)
    assert mode(home) == 0o750


def test_a_new_connection_never_drops_the_locks_the_open_ones_hold(tmp_path: Path) -> None:
    # Closing any descriptor of a SQLite file drops this process's POSIX locks on it: the
    # hook that keeps the files private must not open them, or writers collide (corrupt).
    database = tmp_path / "home" / "takedown.db"
    engine = make_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as first:
            first.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            first.commit()
            first.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock, held from here
            first.exec_driver_sql("INSERT INTO t VALUES (1)")
            with engine.connect() as second:  # a new connection runs the hook
                second.exec_driver_sql("SELECT 1")
            other = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], timeout=0); "
                    "c.execute('BEGIN IMMEDIATE')",
                    str(database),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            assert other.returncode != 0 and "locked" in other.stderr
            first.rollback()
    finally:
        engine.dispose()
