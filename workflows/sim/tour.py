"""Trace the sample world's URLs with the real `takedown` command, as a newcomer would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from workflows.sim import SimInternet, sample_world
from workflows.sim.netns import isolate_network

# (URL, what it shows, whether a route is expected)
TOUR = [
    ("https://uploads.examplehost-uk.test/a/1.jpg", "hosted in our own country (GB)", True),
    ("http://go.tinylnk.test/x", "a CNAME chain to the same host", True),
    ("http://gallery.pixelforge-us.test/p?id=7", "ARIN-style nested abuse contact", True),
    ("http://share.berghost-de.test/f/9", "abroad, no partner e-mail configured", True),
    ("http://v6only.berghost-de.test/", "IPv6 only", True),
    ("http://www.cdn-fronted.test/i/3.png", "behind a CDN", True),
    ("http://dump.poldernet-nl.test/d", "no abuse role: fallback contacts", True),
    ("http://mirror.sgcloud-sg.test/m", "RDAP says 429 once, then answers", True),
    ("http://intranet.badlinks.test/", "special-use address: never looked up", False),
    ("http://old.badlinks.test/", "dangling CNAME: NXDOMAIN", False),
    ("http://flaky.badlinks.test/", "SERVFAIL: transient", False),
]
CONTRACT = {"url", "host", "cnames", "addresses", "networks", "country", "abuse", "route"}
NETWORK = {"ip", "asn", "cidr", "name", "country", "abuse"}


def takedown_argv() -> list[str]:
    """Return the installed `takedown` script beside this Python, or the module."""
    script = Path(sys.executable).parent / "takedown"
    found = str(script) if script.exists() else shutil.which("takedown")
    return [found] if found else [sys.executable, "-m", "workflows"]


def exec_command(argv: list[str]) -> int:
    """Run ARGV with the environment pointing at the running sample world."""
    isolated = isolate_network()
    with SimInternet(sample_world()) as sim, tempfile.TemporaryDirectory() as home:
        env = {**os.environ, **sim.env(), "TAKEDOWN_HOME": home, "TAKEDOWN_DNS_TIMEOUT": "2s"}
        if not isolated:
            print("(network isolation unavailable: servers on 127.0.0.1 only)", file=sys.stderr)
        return subprocess.run(argv, env=env, check=False).returncode


def tour(*, check: bool) -> int:
    """Trace every TOUR URL; with CHECK, verify the JSON contract and print one line each."""
    isolated = isolate_network()
    failures = 0
    with SimInternet(sample_world()) as sim, tempfile.TemporaryDirectory() as home:
        env = {**os.environ, **sim.env(), "TAKEDOWN_HOME": home, "TAKEDOWN_DNS_TIMEOUT": "2s"}
        print(
            f"sample world: DNS {sim.dns_servers}, RDAP {sim.rdap_base}, "
            f"{'own network namespace' if isolated else 'host loopback'}\n"
        )
        for url, what, routed in TOUR:
            extra = ["--json"] if check else []
            done = subprocess.run(
                [*takedown_argv(), "trace", *extra, url],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if check:
                problem = _contract_problem(done, routed)
                failures += problem is not None
                print(f"{'FAIL' if problem else 'ok  '} {url}  {problem or what}")
            else:
                print(f"$ takedown trace {url}      # {what}\n{done.stdout}{done.stderr}")
    return 1 if failures else 0


def _contract_problem(done: subprocess.CompletedProcess[str], routed: bool) -> str | None:
    """Return what is wrong with one `takedown trace --json` run, or None."""
    if done.returncode != (0 if routed else 1):
        return f"exit {done.returncode}: {done.stderr.strip()}"
    try:
        data = json.loads(done.stdout)
    except ValueError:
        return "output is not JSON"
    missing = CONTRACT - data.keys()
    missing |= {f"networks[].{k}" for n in data["networks"] for k in NETWORK - n.keys()}
    return f"missing fields: {sorted(missing)}" if missing else None
