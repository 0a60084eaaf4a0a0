"""The Alembic migrations build exactly the schema the models declare."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Engine

from workflows.store.db import head_revision, make_engine, migrate, schema_revision
from workflows.store.models import Base


def test_migrations_build_the_schema_the_models_declare(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'takedown.db'}")
    migrate(engine)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert differences == []


def test_migrating_twice_changes_nothing(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'takedown.db'}")
    migrate(engine)
    before = _columns(engine)
    migrate(engine)
    after = _columns(engine)
    engine.dispose()
    assert before == after and "cases" in after


def _columns(engine: Engine) -> dict[str, list[tuple[str, str, bool]]]:
    found = inspect(engine)
    return {
        table: [(c["name"], str(c["type"]), c["nullable"]) for c in found.get_columns(table)]
        for table in found.get_table_names()
    }


def test_processes_migrating_a_fresh_sqlite_file_at_once_all_succeed(tmp_path: Path) -> None:
    script = (
        "import sys; from workflows.store.db import make_engine, migrate; "
        "engine = make_engine(sys.argv[1]); migrate(engine); engine.dispose()"
    )
    url = f"sqlite:///{tmp_path / 'takedown.db'}"
    runs = [
        subprocess.Popen([sys.executable, "-c", script, url], stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    errors = [run.communicate()[1] for run in runs]
    assert [run.returncode for run in runs] == [0] * 4, errors


def test_the_newest_migration_file_names_alembics_head() -> None:
    config = Config()
    config.set_main_option("script_location", "workflows.store:migrations")
    script = ScriptDirectory.from_config(config)
    assert script.get_heads() == [head_revision()]
    for revision in script.walk_revisions():  # NNNN_what.py holds revision NNNN
        assert Path(revision.path).name.startswith(f"{revision.revision}_")


def test_a_database_at_the_head_is_not_migrated_again_and_an_old_one_is(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'takedown.db'}")
    assert schema_revision(engine) is None
    migrate(engine)
    assert schema_revision(engine) == head_revision()
    config = Config()
    config.set_main_option("script_location", "workflows.store:migrations")
    with engine.begin() as connection:  # back to the revision before the newest
        config.attributes["connection"] = connection
        command.downgrade(config, "0005")
    assert schema_revision(engine) == "0005"
    assert "ix_cases_opened_at" not in {i["name"] for i in inspect(engine).get_indexes("cases")}
    migrate(engine)
    assert schema_revision(engine) == head_revision()
    assert "ix_cases_opened_at" in {i["name"] for i in inspect(engine).get_indexes("cases")}
    engine.dispose()
