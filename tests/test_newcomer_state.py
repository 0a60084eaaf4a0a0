"""What a newcomer meets on the command line (issue 14): help for a bare `takedown`, limits
refused, readable case pages, an empty chart refused, and where `up --demo` keeps its state.

In-process: `main()` with TAKEDOWN_HOME in a tmp folder; nothing here starts a worker.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import update

from workflows.cli.main import main
from workflows.cli.plot import _short
from workflows.cli.up import demo_home_lines
from workflows.config.settings import load_settings
from workflows.kinds import EventKind
from workflows.store.cases import record
from workflows.store.db import opened_store, transaction, utcnow
from workflows.store.models import Case


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in [n for n in os.environ if n.startswith("TAKEDOWN_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("TAKEDOWN_HOME", str(tmp_path))
    return tmp_path


def test_a_bare_takedown_prints_the_help_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("usage: takedown") and "report" in out and "user" in out
    assert err == ""


@pytest.mark.parametrize("limit", ["-1", "0", "nan", "inf", "-inf", "soon"])
def test_demo_refuses_a_limit_that_is_not_a_positive_number_with_one_line(
    limit: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["demo", f"--limit={limit}"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--limit" in err


def test_the_case_page_prints_readable_text_not_python_reprs(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "http://files.example/a.jpg", "--ref", "OP-7"]) == 0
    with opened_store(load_settings()) as sessions, transaction(sessions) as session:
        session.execute(update(Case).values(route="host_notice", country="GB"))
        record(
            session,
            1,
            EventKind.ROUTED,
            utcnow(),
            route="host_notice",
            abuse=["abuse@host.example", "noc@host.example"],
            hotline={"country": "US", "email": "tips@hotline.example"},
            by_hand=True,
        )
    capsys.readouterr()
    assert main(["case", "1"]) == 0
    out = capsys.readouterr().out
    assert "abuse: abuse@host.example, noc@host.example" in out
    assert "by hand: yes" in out and "hotline: country US, email tips@hotline.example" in out
    assert "['" not in out and "{'" not in out and "=[" not in out and "True" not in out


def test_stats_plot_on_an_empty_database_says_so_and_exits_1(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chart = home / "chart.png"
    assert main(["stats", "--plot", str(chart)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no case reported" in err
    assert not chart.exists()


def test_up_demo_says_where_its_state_lives_and_how_other_commands_reach_it() -> None:
    lines = demo_home_lines(Path("/srv/takedown/demo"))
    text = "\n".join(lines)
    assert "demo home /srv/takedown/demo (" in text and "kept when you stop" in text
    assert "TAKEDOWN_HOME=/srv/takedown/demo takedown user add alice" in text
    assert "TAKEDOWN_HOME=/srv/takedown/demo takedown stats" in text
    assert "TAKEDOWN_HOME='/tmp/a b/demo'" in "\n".join(demo_home_lines(Path("/tmp/a b/demo")))


def test_up_refuses_a_demo_home_without_demo(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["up", "--demo-home", str(home / "x")]) == 2
    assert "--demo-home: only with --demo" in capsys.readouterr().err


def test_a_long_provider_name_is_cut_to_fit_the_chart() -> None:
    assert _short("PixelVault Ltd") == "PixelVault Ltd"
    cut = _short("Snail Hosting Limited Liability Company of Very Long Names")
    assert len(cut) == 32 and cut.endswith("…")
