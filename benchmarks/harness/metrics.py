"""What the benchmarks measure besides time: memory and CPU of processes, the simulated
servers' counters, and how many requests each web host has in flight at once.

Peak memory is the kernel's own high-water mark of each process (VmHWM in
/proc/<pid>/status): the engine's processes are found by their environment (every one
carries the run's TAKEDOWN_HOME, the benchmark process does not), sampled a few times a
second, and their peaks summed. The benchmark process, which runs the simulated internet,
resets its own mark (/proc/self/clear_refs) at the start of each workload.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from workflows.sim import SimInternet, SMTPServer, WebServer, World

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SAMPLE_EVERY = 0.25  # seconds between two looks at the process table
LONG_LIVED = ("worker", "redis", "serve")  # the engine's processes that stay up
COMMANDS = ("report", "user", "migrate")  # the engine's commands that run and end


@dataclass
class ProcessPeak:
    """One engine process: what it is, its peak resident memory and the CPU it used."""

    pid: int
    role: str  # worker, redis, serve, report, or the program's name
    peak_kib: int = 0
    cpu_seconds: float = 0.0


class ProcessSampler(threading.Thread):
    """Sample every process whose environment holds MARKER, and those EXTRA names (pid →
    role: a process that overwrites its environment, as redis-server does with its
    title); keep each one's peak and CPU."""

    def __init__(
        self,
        marker: str,
        extra: Callable[[], dict[int, str]] = dict,
        every: float = SAMPLE_EVERY,
    ) -> None:
        super().__init__(name="bench-process-sampler", daemon=True)
        self.marker = f"\0{marker}\0".encode()
        self.extra = extra
        self.every = every
        self.stopping = threading.Event()
        self._seen: dict[tuple[int, int], ProcessPeak] = {}
        self._other: set[tuple[int, int]] = set()  # processes that are not the engine's
        self._lock = threading.Lock()

    def run(self) -> None:
        """Sample until stopped."""
        while not self.stopping.wait(self.every):
            self.sample()

    def stop(self) -> None:
        """Stop sampling, after one last look."""
        self.stopping.set()
        if self.is_alive():
            self.join(timeout=5)
        self.sample()

    def sample(self) -> None:
        """Look at every process once."""
        extra = self.extra()
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                self._look(int(entry.name), extra.get(int(entry.name)))

    def peaks(self) -> list[ProcessPeak]:
        """Return every engine process seen so far."""
        with self._lock:
            return [
                ProcessPeak(p.pid, p.role, p.peak_kib, p.cpu_seconds) for p in self._seen.values()
            ]

    def _look(self, pid: int, role: str | None) -> None:
        stat = _read(f"/proc/{pid}/stat")
        if stat is None:
            return
        fields = stat[stat.rfind(b")") + 2 :].split()
        key = (pid, int(fields[19]))  # starttime: a reused pid is another process
        if key in self._other and role is None:
            return
        with self._lock:
            known = self._seen.get(key)
        if known is None and role is not None:
            known = ProcessPeak(pid, role)
        elif known is None:
            environ = _read(f"/proc/{pid}/environ")
            if environ is None or self.marker not in b"\0" + environ:
                self._other.add(key)
                return
            known = ProcessPeak(pid, _role(_read(f"/proc/{pid}/cmdline") or b""))
        peak = _status_kib(_read(f"/proc/{pid}/status") or b"", b"VmHWM:")
        with self._lock:
            known.peak_kib = max(known.peak_kib, peak)
            known.cpu_seconds = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
            self._seen[key] = known


def _read(path: str) -> bytes | None:
    """Return a /proc file's bytes, None when the process is gone."""
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError:
        return None


def _status_kib(status: bytes, name: bytes) -> int:
    """Return one "Name:   1234 kB" line of /proc/<pid>/status, in KiB (0 when absent)."""
    for line in status.splitlines():
        if line.startswith(name):
            return int(line.split()[1])
    return 0


def _role(cmdline: bytes) -> str:
    """Name what an engine process is from its command line."""
    argv = [part.decode(errors="replace") for part in cmdline.split(b"\0") if part]
    if not argv:
        return "?"
    if "redis-server" in argv[0]:
        return "redis"
    for role in (*LONG_LIVED, *COMMANDS):
        if role in argv[1:3]:  # `takedown ROLE` or `python …/takedown ROLE`
            return role
    return os.path.basename(argv[0])


@dataclass
class Memory:
    """Peak memory of one run: the engine's processes and the benchmark process."""

    processes: list[ProcessPeak]
    own_peak_kib: int  # the benchmark process: the simulated internet and the naive run

    @property
    def engine_kib(self) -> int:
        """Return the sum of the peaks of the engine's long-lived processes."""
        return sum(p.peak_kib for p in self.processes if p.role in LONG_LIVED)

    def by_role(self) -> dict[str, tuple[int, int]]:
        """Return (processes, summed peak KiB) per role."""
        found: dict[str, tuple[int, int]] = {}
        for process in self.processes:
            count, total = found.get(process.role, (0, 0))
            found[process.role] = (count + 1, total + process.peak_kib)
        return found

    def engine_cpu_seconds(self) -> float:
        """Return the CPU seconds the engine's long-lived processes used."""
        return sum(p.cpu_seconds for p in self.processes if p.role in LONG_LIVED)


def reset_own_peak() -> None:
    """Reset this process's VmHWM to its current RSS (Linux 4.0+: clear_refs "5")."""
    try:
        with open("/proc/self/clear_refs", "w") as file:
            file.write("5")
    except OSError:
        pass  # not permitted here: the peak then covers the whole benchmark run so far


def own_peak_kib() -> int:
    """Return this process's VmHWM in KiB."""
    return _status_kib(_read("/proc/self/status") or b"", b"VmHWM:")


def own_cpu_seconds() -> float:
    """Return the CPU seconds this process (the simulated internet, the harness) used."""
    times = os.times()
    return times.user + times.system


class HostConcurrency:
    """Count the requests each host name has in flight, and the most it ever had."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._now: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.total = 0
        self.total_peak = 0

    def enter(self, host: str) -> None:
        """Count a request for HOST that has arrived."""
        with self._lock:
            self._now[host] += 1
            self.total += 1
            self.peak[host] = max(self.peak[host], self._now[host])
            self.total_peak = max(self.total_peak, self.total)

    def leave(self, host: str) -> None:
        """Count a request for HOST that has been answered."""
        with self._lock:
            self._now[host] -= 1
            self.total -= 1

    def busiest(self) -> tuple[str, int]:
        """Return the host that had the most requests in flight at once, and how many."""
        with self._lock:
            return self.peak.most_common(1)[0] if self.peak else ("-", 0)

    def reset(self) -> None:
        """Forget the peaks (requests in flight stay counted)."""
        with self._lock:
            self.peak.clear()
            self.total_peak = self.total


_Handler: Any = WebServer.handler


class _CountingHandler(_Handler):  # type: ignore[misc]
    """The simulated web server's handler, counting each GET while it is answered."""

    def do_GET(self) -> None:
        """Answer a GET between enter and leave: the web latency is inside."""
        concurrency: HostConcurrency = self.owner.concurrency
        host = _host_name(self.headers.get("Host") or "")
        concurrency.enter(host)
        try:
            super().do_GET()
        finally:
            concurrency.leave(host)


def _host_name(authority: str) -> str:
    """Return the host of a Host header, without its port."""
    if authority.startswith("["):
        return authority[1 : authority.find("]")].lower()
    return authority.rsplit(":", 1)[0].lower() if authority.count(":") == 1 else authority.lower()


class CountingWebServer(WebServer):
    """The simulated web server, counting the requests in flight per host name."""

    handler = _CountingHandler

    def __init__(self, world: World, host: str = "0.0.0.0", port: int = 80) -> None:
        super().__init__(world, host=host, port=port)
        self.concurrency = HostConcurrency()


@dataclass
class Counters:
    """The simulated servers' counters at one moment (or the difference of two)."""

    dns_queries: int = 0
    dns_types: Counter[str] = field(default_factory=Counter)  # by record type, when logged
    rdap_paths: list[str] = field(default_factory=list)
    rdap_refused: int = 0
    smtp_messages: int = 0
    web_requests: int = 0

    def since(self, earlier: Counters) -> Counters:
        """Return what was counted after EARLIER (every counter only grows)."""
        return Counters(
            self.dns_queries - earlier.dns_queries,
            self.dns_types - earlier.dns_types,
            self.rdap_paths[len(earlier.rdap_paths) :],
            self.rdap_refused - earlier.rdap_refused,
            self.smtp_messages - earlier.smtp_messages,
            self.web_requests - earlier.web_requests,
        )

    def dns_line(self) -> str:
        """Return the DNS queries, by record type when the server logs them."""
        types = ", ".join(f"{kind} {n:,}" for kind, n in self.dns_types.most_common())
        return f"{self.dns_queries:,}" + (f" ({types})" if types else "")

    @property
    def rdap_addresses(self) -> int:
        """Return the RDAP /ip/<address> queries: one per network, when cached by range."""
        return sum(1 for path in self.rdap_paths if _ip_query(path) == "address")

    @property
    def rdap_prefixes(self) -> int:
        """Return the RDAP /ip/<prefix>/<length> queries: the upstream (parent) lookups."""
        return sum(1 for path in self.rdap_paths if _ip_query(path) == "prefix")


def _ip_query(path: str) -> str | None:
    """Say whether an RDAP path asks for an address, a prefix, or something else."""
    parts = [part for part in path.split("/") if part]
    if not parts or parts[0] != "ip":
        return None
    return "address" if len(parts) == 2 else "prefix"


def counters(sim: SimInternet, smtp: SMTPServer, web: CountingWebServer) -> Counters:
    """Read the simulated servers' counters now."""
    queries: Any = sim.dns.queries  # a count, or the log of (name, type, transport)
    logged = [] if isinstance(queries, int) else list(queries)
    return Counters(
        dns_queries=queries if isinstance(queries, int) else len(logged),
        dns_types=Counter(entry[1] for entry in logged),
        rdap_paths=list(sim.rdap.requests),
        rdap_refused=sim.rdap.refused,
        smtp_messages=len(smtp.snapshot()),
        web_requests=len(web.world.fetches()),
    )
