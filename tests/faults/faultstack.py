"""The fault scenarios' shared world (20 hosts, their desks) and stack (short claim lease)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ISOLATED, SERVICE_URLS, SIM_ADDRESSES
from stack import Stack, stack_of

from workflows.sim import Desk, Network, World

HOSTS = 20
PER_HOST = 10
NEVER = {18, 19}  # hosts whose desks ignore everything: their cases escalate and stay open
AFTER_CHASER = {14, 15, 16, 17}


def fault_world() -> tuple[World, list[str]]:
    world = World(
        networks=[
            Network(
                "185.199.0.0/16", 205000, "UPSTREAM-NET", "GB", abuse=["abuse@upstream.example"]
            )
        ]
    )
    urls = []
    for n in range(HOSTS):
        address = f"185.199.108.{10 + n}"
        world.add_network(
            cidr=f"{address}/32",
            asn=206000 + n,
            name=f"HOST{n}-NET",
            country="GB",
            abuse=[f"abuse@host{n}.example"],
        )
        world.set_records(f"files.host{n}.test", [("A", address)])
        for k in range(PER_HOST):
            url = f"http://files.host{n}.test/f/{k}"
            world.put_content(url)
            urls.append(url)
    return world, urls


def desks(world: World) -> list[Desk]:
    found = [Desk("abuse@upstream.example", "never", world)]
    for n in range(HOSTS):
        behaviour = "never" if n in NEVER else "after_chaser" if n in AFTER_CHASER else "prompt"
        found.append(Desk(f"abuse@host{n}.example", behaviour, world, delay=0.3))
    return found


@pytest.fixture(name="stack")
def fault_stack(tmp_path: Path) -> Iterator[Stack]:
    """Yield the fault world's stack, on PostgreSQL + Redis when configured."""
    backend = "services" if all(SERVICE_URLS.values()) else "embedded"
    world, _ = fault_world()
    with stack_of(
        world, desks(world), tmp_path, backend, SERVICE_URLS, ISOLATED, SIM_ADDRESSES
    ) as running:
        running.env["TAKEDOWN_CLAIM_LEASE"] = "3s"  # lost work comes back within seconds
        yield running
