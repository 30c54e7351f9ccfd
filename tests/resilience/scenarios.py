"""Fault scenarios over a running Fleet; each returns after its last fault has healed.

The same functions run at CI sizes (tests/resilience) and at long sizes
(bench/resilience_long.py). Between faults the fleet must make progress, so a
fault is always injected into live traffic, never into an idle system.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from territoire.services import PostgresServer

from .fleet import Fleet

PROGRESS = 3  # batches stored between two faults, per gateway


def broker_restarts(fleet: Fleet, times: int) -> None:
    for _ in range(times):
        fleet.broker.restart()  # SIGTERM, then the same port; persistence keeps sessions
        fleet.wait_for_progress(PROGRESS * len(fleet.gateways))


def broker_kills(fleet: Fleet, times: int) -> None:
    for _ in range(times):
        fleet.broker.kill()  # no chance to save: what was not autosaved (1 s) is lost by the broker
        fleet.broker.start()
        fleet.wait_for_progress(PROGRESS * len(fleet.gateways))


def postgres_restarts(fleet: Fleet, server: PostgresServer, times: int) -> None:
    for i in range(times):
        server.restart("immediate" if i % 2 else "fast")  # immediate: a crash, recovery on start
        fleet.wait_for_progress(PROGRESS * len(fleet.gateways))


def agent_kills(fleet: Fleet, times: int, seed: int = 8) -> None:
    rng = random.Random(seed)
    for _ in range(times):
        gateway = rng.choice(fleet.gateways)
        time.sleep(rng.uniform(0.0, 0.6))  # at a random point of its flush/publish cycle
        gateway.kill()
        gateway.start()
        fleet.wait_for_progress(PROGRESS * len(fleet.gateways))


def ingest_kills(fleet: Fleet, times: int, seed: int = 8) -> None:
    rng = random.Random(seed)
    for _ in range(times):
        time.sleep(rng.uniform(0.0, 0.6))
        fleet.ingest.kill()
        fleet.ingest.start()
        fleet.wait_for_progress(PROGRESS * len(fleet.gateways))


def link_cut(fleet: Fleet, seconds: float) -> dict[str, float]:
    """Every gateway reaches the broker through `fleet.proxy`; cut it silently, then restore it."""
    proxy = fleet.proxy
    assert proxy is not None
    before = fleet.stored_batches()
    proxy.cut()
    time.sleep(seconds)
    during = fleet.stored_batches() - before
    proxy.restore()
    started = time.monotonic()
    fleet.wait_for_progress(PROGRESS * len(fleet.gateways), timeout=max(60.0, seconds))
    return {"cut_s": seconds, "stored_during_cut": during, "recovered_after_s": time.monotonic() - started}


SCENARIOS: dict[str, Callable[..., object]] = {
    "broker_restarts": broker_restarts,
    "broker_kills": broker_kills,
    "postgres_restarts": postgres_restarts,
    "agent_kills": agent_kills,
    "ingest_kills": ingest_kills,
    "link_cut": link_cut,
}
