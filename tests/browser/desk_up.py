"""A running `takedown up` for the browser tests: start it, read what it prints, stop it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
CREDENTIALS = re.compile(r"first supervisor: (\S+)  password: (\S+)")
DEMO_HOME = re.compile(r"demo home (\S+)")
ADDRESS = re.compile(r"the desk is at (http://127\.0\.0\.1:\d+)/")


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Up:
    """One `takedown up` subprocess and the lines it printed."""

    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        """Return everything printed so far."""
        return "\n".join(self.lines)

    def wait_for(self, found: Callable[[str], bool], what: str, timeout: float = 180) -> None:
        """Wait until the output satisfies FOUND; fail naming WHAT with the output."""
        deadline = time.monotonic() + timeout
        while not found(self.output):
            if self.process.poll() is not None and not found(self.output):
                raise AssertionError(f"takedown up exited while waiting for {what}:\n{self.output}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}:\n{self.output}")
            time.sleep(0.1)

    def match(self, pattern: re.Pattern[str]) -> re.Match[str]:
        """Return PATTERN's match in the output (it must be there)."""
        found = pattern.search(self.output)
        assert found, f"{pattern.pattern!r} not in:\n{self.output}"
        return found

    @property
    def base(self) -> str:
        """Return the desk's address, as printed."""
        return self.match(ADDRESS).group(1)

    def wait_until_serving(self, timeout: float = 60) -> None:
        """Wait until the printed address answers the sign-in page."""
        self.wait_for(lambda text: ADDRESS.search(text) is not None, "the address")
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(self.base + "/login", timeout=5) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise AssertionError(f"the desk never answered:\n{self.output}") from None
            time.sleep(0.2)

    def stop(self, timeout: float = 90) -> int:
        """Stop it as a terminal's Ctrl-C would; return its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError(f"takedown up did not stop:\n{self.output}") from None
        self.reader.join(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode


def start_up(command: list[str], env: dict[str, str], *args: str) -> Up:
    """Start `takedown up ARGS` with ENV; its output is collected as it comes."""
    process = subprocess.Popen(
        [*command, "up", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return Up(process)


def leftovers(home: str) -> list[str]:
    """Return the processes still working in HOME (by environment or working directory)."""
    found = []
    for process in Path("/proc").glob("[0-9]*"):
        try:
            seen = os.readlink(process / "cwd") + (process / "environ").read_bytes().decode(
                "latin-1"
            )
            command = (process / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if home in seen and process.name != str(os.getpid()):
            found.append(f"{process.name} {command}")
    return found


def plain_env(**extra: str) -> dict[str, str]:
    """Return this environment without TAKEDOWN_* variables, plus EXTRA."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("TAKEDOWN_")}, **extra}
