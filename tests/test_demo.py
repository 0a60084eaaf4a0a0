"""`takedown demo` end to end: the real command, in a network namespace and behind a proxy.

The demo starts its own simulated internet, worker and temporary home, so the test only
runs the installed command and reads what it prints.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import ISOLATED

from workflows.sim.demo_world import NXDOMAIN_URL, PRIVATE_URL, build_world, demo_urls

URLS = 12
LATE_BOUNCE_HOST = "cdn.lostmail-gb.test/"  # in the first ten hosts: 12 URLs reach it
LATE_BOUNCE_DESK = "abuse@lostmail-gb.example"
ROW = re.compile(r"^\s*\d+  ")
GROUPED_NOTICE = re.compile(r"notice N-\d{6} sent to \S+ \((\d+) URLs\)")
HOME = re.compile(r"^demo home: (\S+)", re.MULTILINE)


def start_demo(takedown_command: list[str], isolation: str) -> subprocess.Popen[str]:
    """Start `takedown demo` with 12 URLs; its output is read when it ends."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAKEDOWN_")}
    env["TAKEDOWN_DEMO_ISOLATION"] = isolation
    return subprocess.Popen(
        [*takedown_command, "demo", "--urls", str(URLS), "--limit", "60"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def table(output: str) -> dict[str, list[str]]:
    """Return the summary table's rows by URL: case, URL, route, cc, notices, state, time."""
    rows = [re.split(r"\s{2,}", line.strip()) for line in output.splitlines() if ROW.match(line)]
    return {row[1]: row for row in rows if len(row) == 7}


@pytest.fixture(scope="module")
def demo_runs(takedown_command: list[str]) -> dict[str, tuple[int, str, str]]:
    """Run the demo in both modes side by side (each mostly waits on its own clock)."""
    started = {
        mode: start_demo(takedown_command, "1" if mode == "namespace" else "0")
        for mode in ("namespace", "proxy")
    }
    finished = {}
    for mode, process in started.items():
        try:
            stdout, stderr = process.communicate(timeout=150)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        finished[mode] = (process.returncode, stdout, stderr)
    return finished


@pytest.fixture(params=["namespace", "proxy"])
def demo(
    request: pytest.FixtureRequest, demo_runs: dict[str, tuple[int, str, str]]
) -> tuple[str, str]:
    """Return (mode, output) of the demo run in one mode."""
    returncode, stdout, stderr = demo_runs[request.param]
    assert returncode == 0, stdout[-4000:] + stderr[-4000:]
    assert stderr == ""
    return request.param, stdout


def test_demo_says_how_it_keeps_its_traffic_on_this_machine(demo: tuple[str, str]) -> None:
    mode, output = demo
    if mode == "proxy":
        assert "through a proxy on 127.0.0.1" in output
    elif ISOLATED:  # the session's own namespace lets the demo nest one of its own
        assert "own network namespace" in output


def test_demo_prints_a_summary_row_per_case_and_removes_most(demo: tuple[str, str]) -> None:
    rows = table(demo[1])
    assert "case  URL" in demo[1] and len(rows) == URLS
    removed = [row for row in rows.values() if row[5] == "removed"]
    assert len(removed) >= URLS / 2
    assert all(re.fullmatch(r"\d+\.\d s", row[6]) for row in removed)
    assert re.search(rf"^removed {len(removed)} of {URLS}; time to removal median", demo[1], re.M)


def test_urls_without_a_route_wait_for_an_analyst(demo: tuple[str, str]) -> None:
    rows = table(demo[1])
    for url in (NXDOMAIN_URL, PRIVATE_URL):
        row = rows[url.removeprefix("http://")]
        assert (row[2], row[4], row[5], row[6]) == ("-", "-", "needs_analyst", "-")
    assert "does not exist (NXDOMAIN)" in demo[1] and "10.0.0.5 is private" in demo[1]


def test_one_notice_lists_several_urls(demo: tuple[str, str]) -> None:
    assert max(int(n) for n in GROUPED_NOTICE.findall(demo[1])) >= 2


def test_demo_shows_each_kind_of_desk(demo: tuple[str, str]) -> None:
    notices = {row[4] for row in table(demo[1]).values()}
    # On failure, the whole run: what each case did and why an open one was still open.
    assert any("✗550 → upstream" in n for n in notices), demo[1]  # bounced, escalated at once
    assert any("hop → notice" in n for n in notices), demo[1]  # followed to its new host
    assert "referral" in notices, demo[1]  # the partner hotline took it
    # The CDN's desk, not the origin's: Cloudflare's is a web form, submitted by the demo's
    # analyst, and the content is removed after it.
    assert "is a web form to submit (Cloudflare: https://abuse.cloudflare.com/)" in demo[1]
    assert "submitted to Cloudflare by the demo's analyst" in demo[1]
    cdn = [row for url, row in table(demo[1]).items() if url.startswith("www.fastshare-cdn")]
    assert cdn and all(row[4:6] == ["notice (web form)", "removed"] for row in cdn)


def test_a_bounce_that_comes_back_later_is_taken_and_its_case_moves_on(
    demo: tuple[str, str],
) -> None:
    (row,) = [row for url, row in table(demo[1]).items() if url.startswith(LATE_BOUNCE_HOST)]
    # The relay accepted the notice; its bounce, piped to the engine, failed it and
    # brought the escalation forward: the upstream removed the content.
    assert row[4].startswith("notice ✗bounced → upstream") and row[5] == "removed"
    taken = re.findall(r"^ *[\d.]+s  cases? [\d, ]+ bounced later: .*$", demo[1], re.M)
    assert len(taken) == 1 and f"to {LATE_BOUNCE_DESK} (5.1.1); moving on" in taken[0]


def test_output_never_contains_fetched_content(demo: tuple[str, str]) -> None:
    world = build_world()
    for url in demo_urls(URLS):
        body = world.put_content(url).body()  # the same seeded bytes the demo's sites serve
        assert body[:16].hex() not in demo[1]
        assert body[:16].decode("latin-1") not in demo[1]
    assert all(line.isprintable() for line in demo[1].splitlines())


def test_demo_leaves_no_home_and_no_process_behind(demo: tuple[str, str]) -> None:
    found = HOME.search(demo[1])
    assert found, "the demo names its home"
    home = found.group(1)
    assert not Path(home).exists()
    # The worker carries the home in its environment, its Redis has it as working directory.
    assert not [p for p in Path("/proc").glob("[0-9]*") if home in _cwd_and_environ(p)]


def _cwd_and_environ(process: Path) -> str:
    """Return a process's working directory and environment ("" where it cannot be read)."""
    try:
        return os.readlink(process / "cwd") + (process / "environ").read_bytes().decode("latin-1")
    except OSError:
        return ""
