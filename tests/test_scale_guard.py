"""A guard for scale, in counts not times: one batch, one notice per desk, one RDAP query
per network.

300 URLs on 30 host names in 10 networks with 10 abuse desks, reported in one call, one
real worker: every desk gets exactly one first notice listing all its URLs, the registry
is asked once per network and DNS once per host name. The worker takes no re-checks at all
(`--queues takedown,takedown.notices,takedown.send`): owing and sending notices never wait
behind them. A regression in grouping or caching fails here (the timed workloads are benchmarks, not
tests).
"""

from __future__ import annotations

from pathlib import Path

from conftest import ISOLATED, SERVICE_URLS, SIM_ADDRESSES
from stack import DATA, stack_of

from workflows.sim import Desk, Network, World

NETWORKS, HOSTS_PER_NETWORK, URLS_PER_HOST = 10, 3, 10
HOSTS = NETWORKS * HOSTS_PER_NETWORK


def guard_world() -> tuple[World, list[str]]:
    world, urls = World(dns_ttl=300), []  # records as long-lived as real zones' are
    for n in range(NETWORKS):
        world.add_network(
            Network(f"185.199.109.{16 * n}/28", 207100 + n, f"DESK{n}-NET", "GB",
                    abuse=[f"abuse@desk{n}.example"])
        )  # fmt: skip
        for h in range(HOSTS_PER_NETWORK):
            host = f"h{h}.desk{n}.test"
            world.set_records(host, [("A", f"185.199.109.{16 * n + h + 1}")])
            for k in range(URLS_PER_HOST):
                url = f"http://{host}/f/{k}"
                world.put_content(url)
                urls.append(url)
    return world, urls


def test_a_batch_gets_one_first_notice_per_desk_and_one_rdap_query_per_network(
    tmp_path: Path,
) -> None:
    world, urls = guard_world()
    desks = [Desk(f"abuse@desk{n}.example", "never", world) for n in range(NETWORKS)]
    with stack_of(
        world, desks, tmp_path, "embedded", SERVICE_URLS, ISOLATED, SIM_ADDRESSES
    ) as stack:
        stack.env["TAKEDOWN_POLICY"] = str(DATA / "guard-policy.toml")
        stack.report(*urls)
        # No worker takes re-checks: owing and sending notices must not need them.
        stack.start_worker("--queues", "takedown,takedown.notices,takedown.send")
        stack.wait_for(
            lambda: all(c.first_notice_at is not None for c in stack.cases()),
            60,
            "every URL in a first notice",
        )
        rdap = [p for p in stack.sim.rdap.requests if p.startswith("/ip/")]
        notices = {c.id: stack.notices_of(c.id)[0] for c in stack.cases()}
        asked = [(name, rtype) for name, rtype, _transport in stack.sim.dns.queries]
        checks = [c for case in stack.cases() for c in stack.checks(case.id)]
        assert "queues takedown,takedown.notices,takedown.send" in stack.worker_log()
    first = {n.id: n for n in notices.values()}
    assert len(first) == NETWORKS  # one first notice per desk, listing all its 30 URLs
    assert sorted(n.recipients for n in first.values()) == sorted(
        f"abuse@desk{n}.example" for n in range(NETWORKS)
    )
    assert len(rdap) <= NETWORKS, rdap  # the registry is asked once per network
    assert checks == []  # no re-check ran: the notices did not need one
    # DNS: each host name's A and AAAA once, each address's origin and each AS's name once
    # (Team Cymru's TXT zones), however many URLs: traces and re-checks share the
    # resolver's cache for the records' TTL, and a batch resolves each name once.
    hosts = [(name, rtype) for name, rtype in asked if name.endswith(".test")]
    cymru = [(name, rtype) for name, rtype in asked if "cymru" in name]
    assert len(hosts) <= HOSTS * 2, sorted(hosts)
    assert len(cymru) <= HOSTS + NETWORKS, sorted(cymru)  # one address a host, one AS a network
