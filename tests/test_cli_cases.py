"""The case commands from the outside: report, cases, case, worker start-up checks."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest


def run(
    command: list[str], home: Path, *args: str, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    environment = {"PATH": "/usr/bin:/bin", "TAKEDOWN_HOME": str(home), **env}
    return subprocess.run(
        [*command, *args],
        env=environment,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_report_reads_a_file_and_stdin_and_joins_open_cases(
    takedown_command: list[str], tmp_path: Path
) -> None:
    listing = tmp_path / "urls.txt"
    listing.write_text("# today's batch\nhttp://a.test/1\n\nHTTP://A.TEST:80/2#x\n")
    first = run(
        takedown_command,
        tmp_path,
        "report",
        "--file",
        str(listing),
        "--json",
        "--ref",
        "OP-1",
        "--category",
        "csam",
        "--analyst",
        "alice",
    )
    assert first.returncode == 0, first.stderr
    assert [r["url"] for r in json.loads(first.stdout)] == ["http://a.test/1", "http://a.test/2"]
    again = run(
        takedown_command,
        tmp_path,
        "report",
        "--file",
        "-",
        "--json",
        stdin="http://a.test/2\nhttp://b.test/\n",
    )
    assert [(r["id"], r["joined"]) for r in json.loads(again.stdout)] == [(2, True), (3, False)]
    listed = json.loads(run(takedown_command, tmp_path, "cases", "--json").stdout)
    assert [c["id"] for c in listed] == [3, 2, 1]
    assert listed[2]["reference"] == "OP-1" and listed[2]["state"] == "new"
    assert listed[2]["removed_at"] is None and listed[2]["notices"] == []


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        pytest.param(["report"], None, "no URL given", id="no-url"),
        pytest.param(
            ["report", "--file", "-"],
            "http://ok.test/\nftp://bad.test/\n",
            "stdin:2: scheme 'ftp'",
            id="bad-line-in-stdin",
        ),
        pytest.param(
            ["report", "http://ok.test/", "http://x y.test/"],
            None,
            "argument 2: ",
            id="bad-argument",
        ),
        pytest.param(
            ["report", "--file", "/nonexistent/urls.txt"], None, "cannot read", id="missing-file"
        ),
        pytest.param(
            ["report", "http://ok.test/", "--ref", "a\nb"],
            None,
            "--ref",
            id="control-character-in-ref",
        ),
        pytest.param(
            ["cases", "--state", "gone"], None, "--state: 'gone' is not one of", id="bad-state"
        ),
        pytest.param(["case", "abc"], None, "case id 'abc' is not a number", id="bad-id"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_stores_nothing(
    takedown_command: list[str], tmp_path: Path, args: list[str], stdin: str | None, message: str
) -> None:
    done = run(takedown_command, tmp_path, *args, stdin=stdin)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and message in done.stderr
    assert done.stdout == ""
    assert not (tmp_path / "takedown.db").exists()


def test_unknown_case_id_exits_2(takedown_command: list[str], tmp_path: Path) -> None:
    done = run(takedown_command, tmp_path, "case", "99")
    assert (done.returncode, done.stderr.strip()) == (2, "takedown: no case 99")


def test_worker_with_a_bad_policy_names_the_line_and_starts_nothing(
    takedown_command: list[str], tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('sweep_every = "30s"\nrecheck_every = "often"\n')
    done = run(
        takedown_command,
        tmp_path,
        "worker",
        TAKEDOWN_POLICY=str(policy),
        TAKEDOWN_SENDER="reports@hotline.example",
    )
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "policy.toml:2:" in done.stderr
    assert not (tmp_path / "redis").exists() and not (tmp_path / "takedown.db").exists()
