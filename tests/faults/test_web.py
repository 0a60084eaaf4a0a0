"""Fault injection: hostile and broken web hosts, re-checked at scale by a real worker.

200 URLs over 20 hosts, as in the other fault scenarios; seven hosts misbehave for the
whole run, and their desks never act, so their cases stay open and are re-checked again
and again. Every check of them must end as the table says, never as "gone":

    host  serves                                                   each check
    10    a body dripping one byte every 0.2 s, never ending       unreachable (deadline)
    11    a body streaming fast, never ending                      present, hashed to the cap
    12    redirect loops, and a chain one redirect too long        unreachable
    13    redirects to 127.0.0.1, 10.0.0.1, [::1], 169.254.169.254  blocked, never connected
    14    a name that rebinds to 127.0.0.1 after its first check   present, then blocked
    15    https with a self-signed certificate                     unreachable (tls)
    16    https whose port 443 speaks plain HTTP                   unreachable (tls)

Listeners on ports 80 and 443 of every special-use address the hosts point at (inside the
session's network namespace) count connections: there must be none. The other hosts
behave, and most of their desks remove the content: those cases must still be confirmed
removed. Last, the worker's log must hold no 16-byte run of any byte the sites served.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import re
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import FAULT_FIGURES, ISOLATED, SERVICE_URLS, SIM_ADDRESSES
from faultcheck import check
from sqlalchemy import select
from stack import Stack, stack_of

from workflows.kinds import CaseState
from workflows.sim import Desk, Network, Site, WebServer, World
from workflows.sim.web import PLAIN_ANSWER
from workflows.store.models import Case, Check

HOSTS, PER_HOST, SIZE = 20, 10, 1024  # small bodies: the log is searched for every run of them
DEADLINE, CAP = 2, 1024 * 1024  # TAKEDOWN_FETCH_DEADLINE (s) and TAKEDOWN_FETCH_MAX_BYTES
DRIP, ENDLESS, LOOPS, PRIVATE, REBIND, SELF_SIGNED, PLAIN_443 = range(10, 17)
HOSTILE = range(DRIP, PLAIN_443 + 1)
NEVER = {18, 19}  # well-behaved hosts whose desks ignore everything: present, open
TRAPPED = ("127.0.0.1", "::1", "10.0.0.1", "169.254.169.254")
ADDED = ("10.0.0.1", "169.254.169.254")  # put on lo for the test: the traps must be reachable
# What host 13's URL k redirects to, and why the guard must refuse it.
INSIDE = (
    ("http://127.0.0.1/f/0", "loopback"),
    ("http://10.0.0.1/f/1", "private"),
    ("http://[::1]/f/2", "loopback"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[::ffff:127.0.0.1]/f/4", "loopback"),  # IPv4-mapped
    ("http://0.0.0.0/f/5", "this-network"),  # Linux connects 0.0.0.0 to the host itself
    ("http://intranet.host13.test/f/6", "private"),
    ("http://metadata.host13.test/computeMetadata/v1/", "link-local"),
    ("https://localhost6.host13.test/f/8", "loopback"),
    ("http://files.host13.test/f/9/next", "loopback"),  # one more public hop first
)


def host(n: int) -> str:
    return f"files.host{n}.test"


def address(n: int) -> str:
    return f"185.199.108.{10 + n}"


def url_of(n: int, k: int) -> str:
    scheme = "https" if n in (SELF_SIGNED, PLAIN_443) else "http"
    return f"{scheme}://{host(n)}/f/{k}"


def urls_of(*hosts: int) -> list[str]:
    return [url_of(n, k) for n in hosts for k in range(PER_HOST)]


def web_world() -> tuple[World, list[str]]:
    """Return the 20-host world with its hostile hosts, and the 200 URLs to report."""
    world = World(
        networks=[
            Network("185.199.0.0/16", 205000, "UPSTREAM-NET", "GB", abuse=["abuse@up.example"])
        ]
    )
    for n in range(HOSTS):
        world.add_network(
            cidr=f"{address(n)}/32", asn=206000 + n, name=f"HOST{n}-NET", country="GB",
            abuse=[f"abuse@host{n}.example"],
        )  # fmt: skip
        world.set_records(host(n), [("A", address(n))])
        for url in urls_of(n):
            world.put_content(url, size=SIZE)
    for url in urls_of(DRIP):
        world.set_content_state(url, "slow")
    for url in urls_of(ENDLESS):
        world.set_content_state(url, "endless")
    for k, url in enumerate(urls_of(LOOPS)):
        target = url  # the last one redirects to itself
        if k < 5:  # A → B → A
            world.put_content(f"{url}/back", f"redirect:{url}", size=SIZE)
            target = f"{url}/back"
        elif k < 9:  # a chain of six redirects: one more than the re-checker follows
            for hop in range(1, 6):
                world.put_content(f"{url}/{hop}", f"redirect:{url}/{hop + 1}", size=SIZE)
            world.put_content(f"{url}/6", size=SIZE)
            target = f"{url}/1"
        world.set_content_state(url, f"redirect:{target}")
    for url, (inside, _) in zip(urls_of(PRIVATE), INSIDE, strict=True):
        world.set_content_state(url, f"redirect:{inside}")
    world.put_content(INSIDE[9][0], "redirect:http://127.0.0.1/admin", size=SIZE)
    world.set_records("intranet.host13.test", [("A", "10.0.0.1")])
    world.set_records("metadata.host13.test", [("A", "169.254.169.254")])
    world.set_records("localhost6.host13.test", [("AAAA", "::1")])
    return world, urls_of(*range(HOSTS))


def desks(world: World) -> list[Desk]:
    found = [Desk("abuse@up.example", "never", world)]
    for n in range(HOSTS):
        behaviour = "never" if n in NEVER or n in HOSTILE else "prompt"
        found.append(Desk(f"abuse@host{n}.example", behaviour, world, delay=0.3))
    return found


class Trap:
    """A listener the re-checker must never reach: it counts every connection it accepts."""

    def __init__(self, ip: str, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, port))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.where, self.peers = f"{ip}:{port}", list[str]()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._count, daemon=True)
        self.thread.start()

    def _count(self) -> None:
        while not self.stopping.is_set():
            try:
                connection, peer = self.sock.accept()
            except TimeoutError:
                continue
            self.peers.append(str(peer[0]))
            connection.close()

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def traps() -> Iterator[list[Trap]]:
    """Listen on ports 80 and 443 of each special-use address; prove each one counts."""
    assert ISOLATED, "this scenario needs its own network namespace (root or user namespaces)"
    for ip in ADDED:
        subprocess.run(["ip", "addr", "add", f"{ip}/32", "dev", "lo"], check=True, timeout=30)
    placed = [Trap(ip, port) for ip in TRAPPED for port in (80, 443)]
    try:
        for trap in placed:  # a trap nobody could reach would prove nothing
            ip, _, port = trap.where.rpartition(":")
            socket.create_connection((ip, int(port)), timeout=5).close()
            deadline = time.monotonic() + 10
            while not trap.peers and time.monotonic() < deadline:
                time.sleep(0.01)
            assert trap.peers, f"the trap on {trap.where} is not reachable"
            trap.peers.clear()
        yield placed
    finally:
        for trap in placed:
            trap.close()
        for ip in ADDED:
            subprocess.run(["ip", "addr", "del", f"{ip}/32", "dev", "lo"], check=False)


@pytest.fixture(name="stack")
def web_stack(tmp_path: Path, traps: list[Trap]) -> Iterator[Stack]:
    """Yield the stack with a short fetch deadline and size cap, and the traps in place."""
    backend = "services" if all(SERVICE_URLS.values()) else "embedded"
    world, _ = web_world()
    with stack_of(
        world, desks(world), tmp_path, backend, SERVICE_URLS, ISOLATED, SIM_ADDRESSES
    ) as running:
        running.env["TAKEDOWN_CLAIM_LEASE"] = "10s"  # shorter than a drip host's batch
        running.env["TAKEDOWN_FETCH_DEADLINE"] = f"{DEADLINE}s"
        running.env["TAKEDOWN_FETCH_MAX_BYTES"] = str(CAP)
        try:
            yield running
        finally:
            stop_gently(running)


def stop_gently(stack: Stack) -> None:
    """Stop the workers with SIGTERM and wait for their tasks, drips and all, to end.

    The stack's own stop kills a worker still busy after 20 s, which would leave its
    embedded Redis behind; a batch of dripping URLs can take longer than that.
    """
    for worker in stack.workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in stack.workers:
        worker.wait(timeout=300)


@pytest.fixture
def https_hosts(stack: Stack, tmp_path: Path) -> tuple[WebServer, WebServer]:
    """Serve host 15 over TLS with a self-signed certificate, and plain HTTP on host 16's 443."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
         "-subj", f"/CN={host(SELF_SIGNED)}", "-addext", f"subjectAltName=DNS:{host(SELF_SIGNED)}"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    tls = WebServer(stack.world, address(SELF_SIGNED), 443, tls=context)
    plain = WebServer(stack.world, address(PLAIN_443), 443, scheme="https")
    return stack.exits.enter_context(tls), stack.exits.enter_context(plain)


# -- reading the outcome --------------------------------------------------------------------

DEADLINED = re.compile(rf"deadline exceeded \({DEADLINE}s\)( after \d+ body bytes)?")
TRUNCATED = f"HTTP 200, body truncated at {CAP} bytes"
HEX_RUN = re.compile(rb"[0-9a-fA-F]{32,}")
Expect = Callable[[str, Check], bool]  # does this check of this URL end as it must?


def checks_by_url(stack: Stack) -> dict[str, list[Check]]:
    """Return every check, per URL, in the order made."""
    found: dict[str, list[Check]] = defaultdict(list)
    with stack.session() as session:
        query = select(Case.url, Check).join(Check, Check.case_id == Case.id).order_by(Check.id)
        for url, one in session.execute(query):
            found[url].append(one)
    return found


def cases_by_url(stack: Stack) -> dict[str, Case]:
    return {case.url: case for case in stack.cases()}


def rebinding(checks: list[Check]) -> tuple[int, int]:
    """Return how many present checks a rebinding URL had first, and how many blocked after."""
    outcomes = [c.outcome for c in checks]
    present = len(list(itertools.takewhile(lambda outcome: outcome == "present", outcomes)))
    blocked = len(list(itertools.takewhile(lambda o: o == "blocked", outcomes[present:])))
    return present, blocked


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def endless_sha256(world: World, url: str) -> str:
    """Return the hash of the first CAP bytes of an endless site's stream."""
    period = world.content(url).body()  # type: ignore[union-attr]
    return sha256((period * (CAP // len(period) + 1))[:CAP])


def settled(stack: Stack, before: dict[str, int]) -> bool:
    """Tell whether the well-behaved removals are confirmed and every fault was re-checked.

    BEFORE: the checks each rebinding URL had when its name moved; one more may still have
    used the old answer (a DNS cache, a fetch under way), two more must be after the move.
    """
    checks, cases = checks_by_url(stack), cases_by_url(stack)
    removable = urls_of(*(n for n in range(HOSTS) if n not in HOSTILE and n not in NEVER))
    return (
        all(cases[url].state == CaseState.REMOVED for url in removable)
        and all(len(checks[url]) >= 2 for url in urls_of(*HOSTILE))
        and all(len(checks[url]) >= before[url] + 3 for url in before)
    )


def served_runs(world: World) -> set[bytes]:
    """Return every 16-byte run of every byte the sites served (streams wrap around)."""
    runs: set[bytes] = set()
    for key in list(world.sites):
        site = world.content(key)
        assert site is not None
        for state in ("present", "404"):  # what each site served before and after removal
            body = dataclasses.replace(site, state=state).body()
            wrapped = body + body[:15]
            runs.update(wrapped[i : i + 16] for i in range(len(body)))
    return runs


def leaks(log: bytes, runs: set[bytes]) -> list[str]:
    """Return where LOG holds a served 16-byte run, as raw bytes or as hex."""
    found = [f"raw bytes at {i}" for i in range(len(log) - 15) if log[i : i + 16] in runs]
    for match in HEX_RUN.finditer(log):
        text = match.group().decode()
        for i in range(len(text) - 31):
            if bytes.fromhex(text[i : i + 32]) in runs:
                found.append(f"hex at {match.start() + i}")
    return found


def peak_rss_mib(pid: int) -> float:
    """Return the peak resident memory of a live process, in MiB (Linux: VmHWM)."""
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    assert found, "no VmHWM in /proc"
    return int(found.group(1)) / 1024


def assert_every_check(checks: dict[str, list[Check]], urls: list[str], ok: Expect) -> None:
    """Assert each URL was checked at least twice and every check is what OK accepts."""
    for url in urls:
        wrong = [(c.outcome, c.reason, c.address) for c in checks[url] if not ok(url, c)]
        assert len(checks[url]) >= 2 and not wrong, f"{url}: {wrong or checks[url]}"


def failed_tls(problem: str) -> Expect:
    """Accept an unreachable check whose TLS handshake failed with PROBLEM."""
    return lambda _, c: (
        c.outcome == "unreachable"
        and (c.reason or "").startswith("tls: ")
        and problem in (c.reason or "")
    )


def assert_streams_were_cut(world: World, checks: dict[str, list[Check]]) -> None:
    """Drips end at the deadline (unreachable); endless bodies at the cap (present)."""
    assert_every_check(
        checks,
        urls_of(DRIP),
        lambda _, c: c.outcome == "unreachable" and bool(DEADLINED.fullmatch(c.reason or "")),
    )
    for url in urls_of(DRIP):  # and the body did drip before the deadline cut it
        assert any(re.search(r"after [1-9]\d* body bytes", c.reason or "") for c in checks[url])
    expected = {url: ("present", endless_sha256(world, url), TRUNCATED) for url in urls_of(ENDLESS)}
    assert_every_check(
        checks, urls_of(ENDLESS), lambda url, c: (c.outcome, c.sha256, c.reason) == expected[url]
    )


def assert_redirects_were_refused(checks: dict[str, list[Check]]) -> None:
    """Loops and long chains are unreachable; redirects inside are blocked, with the reason."""
    loops = {url: f"redirect loop back to {url}" for url in urls_of(LOOPS)}
    loops.update({url: "more than 5 redirects" for url in urls_of(LOOPS)[5:9]})
    assert_every_check(
        checks, urls_of(LOOPS), lambda url, c: (c.outcome, c.reason) == ("unreachable", loops[url])
    )
    refused = {
        url: re.compile(rf".+ resolves only to special-use addresses: .+ is {kind}")
        for url, (_, kind) in zip(urls_of(PRIVATE), INSIDE, strict=True)
    }
    assert_every_check(
        checks,
        urls_of(PRIVATE),
        lambda url, c: c.outcome == "blocked" and bool(refused[url].fullmatch(c.reason or "")),
    )


def assert_rebinding_was_refused(world: World, checks: dict[str, list[Check]]) -> None:
    """Present from the public address first, then blocked; the quiet hosts stay present."""
    body = {url: sha256(world.content(url).body()) for url in urls_of(REBIND, *NEVER)}  # type: ignore[union-attr]
    rebound = f"{host(REBIND)} resolves only to special-use addresses: 127.0.0.1 is loopback"
    assert_every_check(
        checks,
        urls_of(REBIND),
        lambda url, c: (
            (c.outcome, c.sha256, c.address) == ("present", body[url], address(REBIND))
            or (c.outcome, c.reason, c.address) == ("blocked", rebound, None)
        ),
    )
    for url in urls_of(REBIND):
        present, blocked = rebinding(checks[url])
        assert present >= 1 and blocked >= 2 and present + blocked == len(checks[url]), url
    assert_every_check(
        checks, urls_of(*NEVER), lambda url, c: (c.outcome, c.sha256) == ("present", body[url])
    )


def assert_faults_happened(
    world: World, checks: dict[str, list[Check]], https: tuple[WebServer, WebServer]
) -> None:
    """Assert the servers saw each fault asked for as often as it was checked, and no more."""
    asked = {url: len(world.fetches(url)) for url in list(world.sites)}
    for url in urls_of(DRIP, ENDLESS, LOOPS, PRIVATE):  # the first hop of every check
        assert asked[url] >= len(checks[url]), url
    for url in urls_of(LOOPS)[:5]:  # and the way back of every loop
        assert asked[f"{url}/back"] >= len(checks[url]), url
    for url in urls_of(LOOPS)[5:9]:  # the chain was followed to its fifth hop, not further
        assert (asked[f"{url}/5"] >= len(checks[url]), asked[f"{url}/6"]) == (True, 0), url
    assert asked[INSIDE[9][0]] >= len(checks[urls_of(PRIVATE)[9]])
    tls, plain = (server.handshakes for server in https)
    # The re-checker refused the certificate: every handshake failed on the server's side,
    # with the client's "unknown CA" alert or, since asyncio's TLS hangs up without sending
    # its alert, an end of stream mid-handshake.
    refused = {"failed: TLSV1_ALERT_UNKNOWN_CA", "failed: UNEXPECTED_EOF_WHILE_READING"}
    assert tls and {h.outcome for h in tls} <= refused
    assert len(tls) >= sum(len(checks[url]) for url in urls_of(SELF_SIGNED))
    assert {h.outcome for h in plain} == {PLAIN_ANSWER}
    assert len(plain) >= sum(len(checks[url]) for url in urls_of(PLAIN_443))
    assert [u for u in urls_of(SELF_SIGNED, PLAIN_443) if asked[u]] == []  # no request got in


def run_until_settled(stack: Stack, urls: list[str]) -> tuple[float, float]:
    """Report, start a worker, rebind host 14 after its first checks, wait, stop the worker.

    Return how long the run took to settle and the worker's peak memory, in MiB.
    """
    stack.report(*urls)
    started = time.monotonic()
    worker = stack.start_worker()

    def first_checked() -> bool:
        checks = checks_by_url(stack)
        return all(rebinding(checks[url])[0] for url in urls_of(REBIND))

    stack.wait_for(first_checked, timeout=300, what="a present check of each URL to rebind")
    before = {url: len(checks_by_url(stack)[url]) for url in urls_of(REBIND)}
    stack.world.set_records(host(REBIND), [("A", "127.0.0.1")])
    stack.wait_for(lambda: settled(stack, before), timeout=600, what="every fault re-checked")
    drained, peak = time.monotonic() - started, peak_rss_mib(worker.pid)
    stop_gently(stack)
    return drained, peak


def test_hostile_web_hosts_never_fake_a_removal_nor_reach_inside(
    stack: Stack, traps: list[Trap], https_hosts: tuple[WebServer, WebServer]
) -> None:
    world, urls = stack.world, web_world()[1]
    drained, peak = run_until_settled(stack, urls)
    checks, cases = checks_by_url(stack), cases_by_url(stack)
    faulty = [cases[url] for url in urls_of(*HOSTILE, *NEVER)]
    # Open, waiting for their next check, never a gone check among them.
    assert [c.url for c in faulty if (c.state, c.removed_at) != (CaseState.ACTIVE, None)] == []
    assert [c.url for c in faulty if c.due_at is None or c.gone_streak] == []
    assert [c.url for c in faulty if any(k.outcome == "gone" for k in checks[c.url])] == []
    assert_streams_were_cut(world, checks)
    assert_redirects_were_refused(checks)
    assert_every_check(checks, urls_of(SELF_SIGNED), failed_tls("CERTIFICATE_VERIFY_FAILED"))
    assert_every_check(checks, urls_of(PLAIN_443), failed_tls("WRONG_VERSION_NUMBER"))
    assert_rebinding_was_refused(world, checks)
    assert_faults_happened(world, checks, https_hosts)
    assert {trap.where: trap.peers for trap in traps if trap.peers} == {}
    assert peak < 256, f"the worker peaked at {peak:.0f} MiB"  # it streamed 1 MiB per check
    interrupted = {c.id for c in faulty if c.url not in urls_of(*NEVER)}
    figures = check(stack, "hostile web hosts", urls, interrupted, drained, confirm_checks=2)
    FAULT_FIGURES.append(figures.line())
    assert (figures.duplicates, figures.lost) == (0, 0)
    assert figures.recovered == len(interrupted) == 70
    log = b"".join(path.read_bytes() for path in sorted(stack.home.glob("worker-*.log")))
    assert leaks(log, served_runs(world)) == []
    assert b"Traceback" not in log and b"raised unexpected" not in log, log[-4000:].decode()


def test_the_log_search_finds_a_served_run_raw_or_in_hex() -> None:
    served = World(sites={"http://a.test/": Site("http://a.test/", seed=7, size=40)})
    body = served.content("http://a.test/").body()  # type: ignore[union-attr]
    runs = served_runs(served)
    assert leaks(b"x" + body[3:19] + b"y", runs) == ["raw bytes at 1"]
    assert leaks(b"sha=" + body[20:36].hex().upper().encode() + b"\n", runs) == ["hex at 4"]
    assert leaks(b"0" + body[:16].hex().encode(), runs) == ["hex at 1"]  # at an odd offset
    assert leaks(body[30:40] + body[:6], runs) == ["raw bytes at 0"]  # a stream wraps around
    assert leaks(body[3:18] + b"-" + body[:15].hex().encode(), runs) == []  # 15 bytes: no run
