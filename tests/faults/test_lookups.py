"""Fault injection: DNS and RDAP failures at scale, on the servers the worker really asks.

200 URLs over 20 hosts, a real worker subprocess. DNS: SERVFAIL and timeouts that heal,
UDP answers truncated for good (the resolver must retry over TCP), a failing Team Cymru
origin name, and SERVFAIL struck mid-run on hosts being chased. RDAP: 429 with a short
and a long Retry-After, 500s, cut-off JSON, and entity loops served as deep as an
unguarded server nests them. Every fault is counted where it was served, so a test whose
injection silently did nothing fails; then every invariant of faultcheck.py must hold.
"""

from __future__ import annotations

import time

from faultcheck import record_figures
from faultstack import HOSTS, NEVER, PER_HOST, fault_world
from faultstack import fault_stack as fault_stack  # the `stack` fixture
from stack import Stack

from workflows.kinds import OPEN_STATES, CaseState
from workflows.sim import Network
from workflows.store.models import Case
from workflows.trace.asn import origin_query_name

SERVFAIL, TIMEOUT, TRUNCATE = {0, 1}, {2, 3}, {4, 5}
CYMRU_SERVFAIL = 6  # the ASN lookup fails for good; RDAP alone must be enough
# host → (RDAP fault, times served, Retry-After); None: served on every request
RDAP = {
    7: ("429", 3, 1),  # short: waited out inside the lookup, after one failed trace
    8: ("429", 1, 6),  # longer than TAKEDOWN_RDAP_MAX_WAIT: the lookup fails fast
    9: ("500", 4, 1),
    10: ("500", 4, 1),
    11: ("malformed", 3, 1),
    12: ("malformed", 3, 1),
    13: ("entity_loop", None, 1),
    14: ("entity_loop", None, 1),
    15: ("entity_loop", None, 1),  # no abuse role: the loop holds only fallback contacts
}
FALLBACK_ONLY = 15
REASONS = {"429": "rate-limited us (429", "500": "answered 500", "malformed": "not JSON"}
CHASED = {16, 17}  # SERVFAIL from routing until after the chaser (their desks act on it)
HEAL_AFTER_CHASER = 3.0  # seconds after the chaser is owed
ROUTED = (CaseState.ACTIVE, CaseState.REMOVED)


def host_of(url: str) -> int:
    return int(url.split("host")[1].split(".")[0])


def name_of(host: int) -> str:
    return f"files.host{host}.test"


def network_of(stack: Stack, host: int) -> Network:
    return next(n for n in stack.world.network_list() if n.asn == 206000 + host)


def cases_on(stack: Stack, hosts: set[int]) -> list[Case]:
    return [c for c in stack.cases() if host_of(c.url) in hosts]


def inject_before_start(stack: Stack) -> None:
    """Arm every fault the first traces meet, so none can be missed by a fast worker."""
    for host in SERVFAIL:
        stack.world.set_dns_fault(name_of(host), "servfail")
    for host in TIMEOUT:
        stack.world.set_dns_fault(name_of(host), "timeout")
    for host in TRUNCATE:
        stack.world.set_dns_fault(name_of(host), "truncate")
    stack.world.set_dns_fault(origin_query_name(f"185.199.108.{10 + CYMRU_SERVFAIL}"), "servfail")
    fallback = network_of(stack, FALLBACK_ONLY)  # read by no server until the worker starts
    fallback.abuse, fallback.fallback = [], [f"abuse@host{FALLBACK_ONLY}.example"]
    for host, (fault, times, wait) in RDAP.items():
        network = network_of(stack, host)
        network.retry_after = wait
        stack.world.set_rdap_fault(network.cidr, fault, times)


class Director:
    """Heal and strike faults as the run reaches each point, all in one polling loop.

    Polled together, not one phase after the other: on a loaded machine the chased hosts
    may be noticed while the DNS-failing ones are still waiting.
    """

    def __init__(self, stack: Stack, removable: list[str]) -> None:
        self.stack = stack
        self.removable = set(removable)
        self.dns_healed = False
        self.fresh: dict[int, set[int]] = {}  # chased host → cases struck before their chaser
        self.heal_at: dict[int, float] = {}
        self.states_at_heal: dict[int, set[str]] = {}

    def __call__(self) -> bool:
        """Take one step; tell whether the run is over (every fault healed, all removed)."""
        cases = self.stack.cases()
        by_host = {h: [c for c in cases if host_of(c.url) == h] for h in range(HOSTS)}
        if not self.dns_healed and all(
            waits_visibly(c, "SERVFAIL" if h in SERVFAIL else "DNS timeout")
            for h in SERVFAIL | TIMEOUT
            for c in by_host[h]
        ):
            for host in SERVFAIL | TIMEOUT:
                self.stack.world.set_dns_fault(name_of(host), None)
            self.dns_healed = True
        for host in CHASED:
            self.chase(host, by_host[host])
        return (
            self.dns_healed
            and len(self.states_at_heal) == len(CHASED)
            and all(c.state == CaseState.REMOVED for c in cases if c.url in self.removable)
        )

    def describe(self) -> str:
        """Say where the run stands: the faults' phases and every case not yet removed."""
        lines = [f"dns healed {self.dns_healed}, struck {self.fresh}, healed {self.states_at_heal}"]
        lines += [
            f"  {c.url} {c.state} attempts={c.trace_attempts} steps={c.steps_done} "
            f"due={c.due_at} claimed={c.claimed_until} error={c.last_error}"
            for c in self.stack.cases()
            if c.url in self.removable and c.state != CaseState.REMOVED
        ]
        return "\n".join(lines)

    def chase(self, host: int, cases: list[Case]) -> None:
        """Strike HOST once every case is routed; heal it a while after its chasers."""
        if host not in self.fresh and all(c.state in ROUTED for c in cases):
            # Its chasers are due 5 s after routing: their re-traces and the re-checks meet
            # the fault. Cases routed so long ago that theirs is owed already do not count.
            self.stack.world.set_dns_fault(name_of(host), "servfail")
            self.fresh[host] = {
                c.id for c in cases if c.state == CaseState.ACTIVE and c.steps_done < 2
            }
        if (
            host in self.fresh
            and host not in self.heal_at
            and all(c.steps_done >= 2 for c in cases)
            and self.stack.sim.dns.count_answers(name_of(host))["servfail"] > 0
        ):
            self.heal_at[host] = time.monotonic() + HEAL_AFTER_CHASER
        due = self.heal_at.get(host)
        if due is not None and host not in self.states_at_heal and time.monotonic() >= due:
            self.states_at_heal[host] = {str(c.state) for c in cases if c.id in self.fresh[host]}
            self.stack.world.set_dns_fault(name_of(host), None)


def waits_visibly(case: Case, error: str) -> bool:
    """Tell whether CASE waits with a due time, after two traces failed with ERROR."""
    return (
        case.state == CaseState.WAITING
        and case.due_at is not None
        and case.trace_attempts >= 2
        and error in (case.last_error or "")
    )


def assert_faults_fired(stack: Stack) -> None:
    """Count every injected fault where it was served."""
    dns = stack.sim.dns
    for host in SERVFAIL | CHASED:
        assert dns.count_answers(name_of(host))["servfail"] > 0, host
    for host in TIMEOUT:
        assert dns.count_answers(name_of(host))["silent"] > 0, host
    for host in TRUNCATE:
        assert dns.count_answers(name_of(host), "udp")["truncated"] > 0, host
        assert dns.count_answers(name_of(host), "tcp")["noerror"] > 0, host
        assert dns.count_answers(name_of(host), "udp")["noerror"] == 0, host
    origin = origin_query_name(f"185.199.108.{10 + CYMRU_SERVFAIL}")
    assert dns.count_answers(origin)["servfail"] > 0
    served = stack.sim.rdap.faults_served
    for fault in ("429", "500", "malformed"):
        # Every counted fault was used up: no lookup could succeed before it was.
        expected = sum(times or 0 for name, times, _ in RDAP.values() if name == fault)
        assert served[fault] == expected, (fault, served)
    assert served["entity_loop"] >= 3


def assert_routing(stack: Stack) -> None:
    """Check what the traces found behind the faults."""
    for case in cases_on(stack, {13, 14}):  # the loop holds the abuse entity: found
        assert case.recipients == f"abuse@host{host_of(case.url)}.example"
        assert case.trace is not None and case.trace["abuse_fallback"] is False
    for case in cases_on(stack, {FALLBACK_ONLY}):  # only fallback contacts: marked so
        assert case.trace is not None and case.trace["abuse_fallback"] is True
    for case in cases_on(stack, {CYMRU_SERVFAIL}):
        assert case.asn is None and case.route == "host_notice"
    for host, (fault, _, _) in RDAP.items():  # each failing answer made a case wait
        if fault == "entity_loop":
            continue
        reasons = [
            str((e.detail or {}).get("reason"))
            for c in cases_on(stack, {host})
            for e in stack.events(c.id)
            if e.kind == "trace_failed" and (e.detail or {}).get("transient") is True
        ]
        assert any(REASONS[fault] in r for r in reasons), (host, reasons)


def test_dns_and_rdap_faults_delay_cases_but_lose_none(stack: Stack) -> None:
    _, urls = fault_world()
    stack.report(*urls)
    inject_before_start(stack)
    # No worker dies here: a lease longer than any trace batch keeps every outcome, where
    # an expired one would let a second claim drop it by compare-and-set.
    stack.env["TAKEDOWN_CLAIM_LEASE"] = "60s"
    started = time.monotonic()
    stack.start_worker()
    interrupted = {
        c.id
        for c in cases_on(stack, SERVFAIL | TIMEOUT | TRUNCATE | {CYMRU_SERVFAIL, *RDAP, *CHASED})
    }
    removable = [u for u in urls if host_of(u) not in NEVER]
    director = Director(stack, removable)
    try:
        stack.wait_for(director, timeout=150, what="every fault healed, every removable removed")
    except AssertionError as error:
        raise AssertionError(f"{director.describe()}\n{error}") from None
    # Their desks removed the content on the chaser, but a check that could not resolve
    # the host is no evidence of removal: the chased cases stayed active until DNS healed.
    assert any(director.fresh.values())
    for host, states in director.states_at_heal.items():
        assert states == ({CaseState.ACTIVE.value} if director.fresh[host] else set()), host
    figures = record_figures(stack, "DNS and RDAP faults", urls, interrupted, started)
    assert figures.recovered == len(interrupted) == PER_HOST * (HOSTS - len(NEVER))
    never = cases_on(stack, NEVER)
    assert never and all(c.state in OPEN_STATES and c.due_at is not None for c in never)
    assert_faults_fired(stack)
    assert_routing(stack)
