"""The simulated internet from the command line.

python -m workflows.sim serve            serve the sample world until Ctrl-C
python -m workflows.sim tour [--check]   trace sample URLs with the real `takedown`
python -m workflows.sim exec -- CMD…     run CMD with TAKEDOWN_* pointing at the sample world
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from workflows.sim import sample_world
from workflows.sim.dnsserver import DNSServer
from workflows.sim.rdapserver import RDAPServer


def _parser() -> argparse.ArgumentParser:
    """Build the command-line parser."""
    parser = argparse.ArgumentParser(prog="python -m workflows.sim")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the sample world until Ctrl-C")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--dns-port", type=int, default=0, help="DNS port (default: a free one)")
    serve.add_argument("--rdap-port", type=int, default=0, help="RDAP port (default: a free one)")
    tour = commands.add_parser("tour", help="trace sample URLs with the real takedown command")
    tour.add_argument("--check", action="store_true", help="verify the JSON contract, quietly")
    run = commands.add_parser("exec", help="run a command against the sample world")
    run.add_argument("argv", nargs="+", help="the command and its arguments (after --)")
    return parser


def serve(host: str, dns_port: int, rdap_port: int) -> None:
    """Serve until SIGINT or SIGTERM, after printing the environment to export."""
    world = sample_world()
    done = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        """Ask the main loop to stop."""
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with DNSServer(world, host, dns_port) as dns, RDAPServer(world, host, rdap_port) as rdap:
        print(f"TAKEDOWN_DNS_SERVERS={dns.address}")
        print(f"TAKEDOWN_RDAP_BASE={rdap.base_url}", flush=True)
        print("serving the sample world; Ctrl-C stops", file=sys.stderr, flush=True)
        # A timed wait keeps the main thread responsive to signals.
        while not done.wait(0.5):
            pass


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run the command."""
    args = _parser().parse_args(argv)
    if args.command == "serve":
        serve(args.host, args.dns_port, args.rdap_port)
        return 0
    from workflows.sim.tour import exec_command, tour

    if args.command == "tour":
        return tour(check=args.check)
    return exec_command(args.argv)


if __name__ == "__main__":
    sys.exit(main())
