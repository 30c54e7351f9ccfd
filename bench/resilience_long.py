"""Long forms of the fault-injection scenarios of tests/resilience, one command, printed ledger.

    .venv/bin/python bench/resilience_long.py                  # every scenario, issue sizes
    .venv/bin/python bench/resilience_long.py --only link_cut --cut-s 180

Sizes (issue 8): broker restarted 10 times, PostgreSQL 5 times, agents SIGKILLed
20 times, ingest SIGKILLed 20 times, the gateways' link silently cut for several
minutes. Each scenario runs a fresh fleet (3 gateways polling Modbus TCP meters)
on loopback, then counts by gateway sequence what the database holds.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from territoire.services import PostgresServer
from tests.resilience import scenarios
from tests.resilience.fleet import Fleet, Ledger, fleet, own_postgres


def run(
    name: str,
    fault: Callable[[Fleet, PostgresServer], object],
    args: argparse.Namespace,
    via_proxy: bool = False,
) -> bool:
    started = time.monotonic()
    with own_postgres() as server:
        dsn = server.create_database("resilience")
        with fleet(dsn, args.gateways, via_proxy=via_proxy) as f:
            extra = fault(f, server)
            result: Ledger = f.drain(timeout=300)
    ok = result.exactly_once and result.held_in_buffers == 0
    print(
        f"{name:18} {'OK ' if ok else 'FAIL'} {time.monotonic() - started:6.0f} s  gateways={result.gateways} "
        f"boots={result.boots} batches={result.batches} readings={result.readings_stored} "
        f"(in batches {result.readings_in_batches}) gaps={result.gaps or 0} {extra or ''}",
        flush=True,
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", nargs="*", choices=list(scenarios.SCENARIOS))
    parser.add_argument("--gateways", type=int, default=3)
    parser.add_argument("--broker", type=int, default=10, help="broker restarts (and SIGKILLs)")
    parser.add_argument("--pg", type=int, default=5, help="PostgreSQL restarts")
    parser.add_argument("--kills", type=int, default=20, help="agent and ingest SIGKILLs")
    parser.add_argument("--cut-s", type=float, default=180.0, help="link cut duration")
    args = parser.parse_args()
    cases: dict[str, tuple[Callable[[Fleet, PostgresServer], object], bool]] = {
        "broker_restarts": (lambda f, _s: scenarios.broker_restarts(f, args.broker), False),
        "broker_kills": (lambda f, _s: scenarios.broker_kills(f, args.broker), False),
        "postgres_restarts": (lambda f, s: scenarios.postgres_restarts(f, s, args.pg), False),
        "agent_kills": (lambda f, _s: scenarios.agent_kills(f, args.kills), False),
        "ingest_kills": (lambda f, _s: scenarios.ingest_kills(f, args.kills), False),
        "link_cut": (lambda f, _s: scenarios.link_cut(f, args.cut_s), True),
    }
    chosen = args.only or list(cases)
    results = [run(name, cases[name][0], args, cases[name][1]) for name in chosen]
    print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
