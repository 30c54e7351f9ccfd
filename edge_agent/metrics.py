"""Optional local Prometheus metrics, read from the agent's own health at scrape time.

A collector rather than counters updated in the data path: nothing to keep in
step, and a scrape costs two small SQLite queries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

_GAUGES = (
    ("buffer_batches", "territoire_agent_buffer_batches", "batches waiting in the store-and-forward buffer"),
    (
        "buffer_readings",
        "territoire_agent_buffer_readings",
        "readings waiting in the store-and-forward buffer",
    ),
    ("buffer_bytes", "territoire_agent_buffer_bytes", "bytes used by the buffer on disk"),
    ("pending_readings", "territoire_agent_pending_readings", "readings not yet flushed to the buffer"),
    ("timers", "territoire_agent_pending_switch_offs", "timed switch-offs the agent will carry out"),
)


class AgentCollector(Collector):
    def __init__(self, health: Callable[[], Mapping[str, Any]]):
        self._health = health

    def collect(self) -> Iterator[GaugeMetricFamily]:
        health = self._health()
        for key, name, text in _GAUGES:
            yield GaugeMetricFamily(name, text, value=float(health.get(key, 0)))
        # Monotonic in practice, exposed as a gauge because it restarts with the buffer file.
        yield GaugeMetricFamily(
            "territoire_agent_dropped_readings", "readings dropped by the buffer caps since it was created",
            value=float(health.get("dropped_readings", 0)),
        )  # fmt: skip
        yield GaugeMetricFamily(
            "territoire_agent_broker_connected", "1 while connected to the broker",
            value=1.0 if health.get("connected") else 0.0,
        )  # fmt: skip
        clock = health.get("clock", {})
        synced = clock.get("synced") if isinstance(clock, Mapping) else False
        yield GaugeMetricFamily("territoire_agent_clock_synced", "1 once the wall clock is trusted", value=1.0 if synced else 0.0)  # fmt: skip


def serve(health: Callable[[], Mapping[str, Any]], host: str, port: int) -> Any:
    """Starts the HTTP endpoint in a daemon thread; returns the server so it can be shut down."""
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry()
    registry.register(AgentCollector(health))
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server
