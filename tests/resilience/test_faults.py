"""Fault injection at CI sizes: after each scenario every numbered batch is stored once.

Two real `territoire agent run` gateways poll Modbus TCP meters (4 readings every
0.1 s each) through a real Mosquitto into `territoire ingest run` and PostgreSQL.
The long forms (10 broker restarts, 20 kills, minutes of link cut) are
bench/resilience_long.py; the figures are in docs/resilience.md.
"""

from __future__ import annotations

from collections.abc import Callable

from . import scenarios
from .fleet import Fleet, Ledger, fleet, own_postgres

GATEWAYS = 2
TIMES = 3


def _check(f: Fleet, result: Ledger) -> None:
    assert result.exactly_once, f"{result}\n{f.logs()}"
    assert result.gateways == GATEWAYS and result.held_in_buffers == 0
    assert result.duplicates_skipped == 0


def _run(dsn: str, fault: Callable[[Fleet], object], **kwargs: object) -> Ledger:
    with fleet(dsn, GATEWAYS, **kwargs) as f:  # type: ignore[arg-type]
        fault(f)
        result = f.drain()
        _check(f, result)
    return result


def test_broker_restarts(fresh_database: str) -> None:
    _run(fresh_database, lambda f: scenarios.broker_restarts(f, TIMES))


def test_broker_sigkilled(fresh_database: str) -> None:
    _run(fresh_database, lambda f: scenarios.broker_kills(f, 2))


def test_postgres_restarts() -> None:
    with own_postgres() as server:
        dsn = server.create_database("resilience")
        _run(dsn, lambda f: scenarios.postgres_restarts(f, server, TIMES))


def test_agents_sigkilled(fresh_database: str) -> None:
    result = _run(fresh_database, lambda f: scenarios.agent_kills(f, TIMES))
    assert result.boots >= GATEWAYS + 1  # each restart numbers under a new boot id


def test_ingest_sigkilled(fresh_database: str) -> None:
    _run(fresh_database, lambda f: scenarios.ingest_kills(f, TIMES))


def test_link_cut_silently_then_restored(fresh_database: str) -> None:
    outcome: dict[str, float] = {}

    def cut(f: Fleet) -> None:
        outcome.update(scenarios.link_cut(f, seconds=12))

    _run(fresh_database, cut, via_proxy=True)
    # Keepalive is 5 s: the gateways notice the dead link, buffer, and deliver once it is back.
    assert outcome["stored_during_cut"] < 20, outcome
