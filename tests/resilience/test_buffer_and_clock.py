"""The gateway's buffer full during an outage, and its clock jumping: counted, never silent.

The agent runs in-process (to count exactly what its source produced and to inject
its wall clock) against a real Mosquitto, a real ingest and PostgreSQL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import Future
from pathlib import Path

import psycopg
import pytest

import edge_agent.agent
from edge_agent.agent import Agent
from edge_agent.clock import Clock
from edge_agent.config import AgentConfig, ClockConfig, parse_config
from edge_agent.sources.base import CommandError, Sink, Source, Stamper
from ingest.migrate import migrate
from ingest.service import IngestConfig
from territoire.services import MosquittoServer
from territoire_kernel.records import AttrValue, Reading

from ..conftest import started_broker
from ..ingest.helpers import running_service, wait_for
from .fleet import TENANT

DEVICES = 4


class TickSource(Source):
    """Every `interval_s`, one reading `count = tick` for each of DEVICES devices."""

    def __init__(self, stamper: Stamper, interval_s: float = 0.01):
        self.name, self.stamper, self.interval_s = "ticks", stamper, interval_s
        self.ticks = 0
        self.paused = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, sink: Sink) -> None:
        def run() -> None:
            while not self._stop.wait(self.interval_s):
                if self.paused.is_set():
                    continue
                time_us, quality = self.stamper()
                sink(
                    [
                        Reading(f"tick-{d}", "count", float(self.ticks), time_us, None, quality)
                        for d in range(DEVICES)
                    ],
                    [],
                )
                self.ticks += 1

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def owns(self, device_id: str) -> bool:
        return device_id.startswith("tick-")

    def execute(self, device_id: str, action: str, params: Mapping[str, AttrValue]) -> Future[str]:
        future: Future[str] = Future()
        future.set_exception(CommandError("no commands"))
        return future

    def health(self) -> dict[str, object]:
        return {"ticks": self.ticks}


@pytest.fixture
def broker() -> Iterator[MosquittoServer]:
    with started_broker("territoire-resilience-mqtt-") as server:
        yield server


@pytest.fixture
def database(fresh_database: str) -> str:
    migrate(fresh_database, "off")
    with psycopg.connect(fresh_database) as conn:
        conn.execute("INSERT INTO tenants (id, name, kind) VALUES (%s, 'Résilience', 'commune')", (TENANT,))
    return fresh_database


def _config(tmp_path: Path, port: int, gateway: str, **buffer: object) -> AgentConfig:
    doc = {
        "tenant": TENANT, "gateway_id": gateway,
        "mqtt": {"host": "127.0.0.1", "port": port, "tls": False, "reconnect_min_s": 0.1,
                 "reconnect_max_s": 0.5, "status_interval_s": 1},
        "buffer": {"path": str(tmp_path / f"{gateway}.sqlite3"), "flush_interval_s": 0.1,
                   "batch_max_readings": 40, **buffer},
        "clock": {"policy": "trusted"},
    }  # fmt: skip
    return parse_config(doc, "test")


def _stored(dsn: str, gateway: str) -> list[tuple[str, float]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT r.device_id, r.value FROM readings r JOIN devices d ON d.id = r.device_id "
            "WHERE d.gateway_id = %s",
            (gateway,),
        ).fetchall()
    return [(str(d), float(v)) for d, v in rows]


def _seqs(dsn: str, gateway: str) -> list[int]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT seq FROM received_batches WHERE gateway_id = %s ORDER BY seq", (gateway,))
        return [int(r[0]) for r in rows]


def _agent(config: AgentConfig) -> tuple[Agent, TickSource]:
    agent = Agent(config, sources=[])
    source = TickSource(agent.clock.stamp)
    agent.sources.append(source)
    return agent, source


def test_buffer_full_during_outage_drops_exactly_what_it_counts(
    tmp_path: Path, broker: MosquittoServer, database: str
) -> None:
    gateway = "gw-full"
    with running_service(
        IngestConfig(dsn=database, mqtt_port=broker.port, auto_register=True, client_id="r1")
    ):
        broker.stop()  # the link is down from the start; the buffer cap (64 KiB) fills up
        agent, source = _agent(_config(tmp_path, broker.port, gateway, max_bytes=65536))
        agent.start()
        try:
            wait_for(lambda: agent.buffer.dropped_readings > 0, 60, "the cap to drop batches")
            time.sleep(0.5)  # keep dropping for a while
            source.paused.set()
            time.sleep(0.3)
            agent.batcher.flush()
            broker.start()
            wait_for(lambda: agent.buffer.depth()[0] == 0, 60, "the buffer to drain")
            dropped = agent.buffer.dropped_readings
            status = agent.status()
        finally:
            agent.stop()
        produced = {(f"tick-{d}", float(t)) for t in range(source.ticks) for d in range(DEVICES)}
        wait_for(lambda: len(_stored(database, gateway)) >= len(produced) - dropped, 30, "ingest")
        time.sleep(0.5)
    stored = _stored(database, gateway)
    assert len(stored) == len(set(stored)), "a reading stored twice"
    missing = produced - set(stored)
    assert set(stored) <= produced
    assert len(missing) == dropped > 0, (len(missing), dropped)
    # The oldest were dropped: every missing tick is older than every stored one.
    assert max(t for _d, t in missing) < min(t for _d, t in stored)
    assert status.dropped_readings == dropped  # what the retained status reports
    seqs = _seqs(database, gateway)
    # Dropped batches leave a hole at the start of the boot's numbering, and only there.
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))) and seqs[0] > 0


class SteppedWallClock:
    """The real wall clock plus an offset that the test steps, like `date -s` or an NTP step."""

    def __init__(self) -> None:
        self.offset_ns = 0

    def __call__(self) -> int:
        return time.time_ns() + self.offset_ns


def test_clock_jumps_forward_and_backward_lose_and_double_nothing(
    tmp_path: Path, broker: MosquittoServer, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = "gw-jumps"
    wall = SteppedWallClock()

    def clock_with_stepped_wall(config: ClockConfig, store: object, **kwargs: object) -> Clock:
        return Clock(config, store, wall_ns=wall, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(edge_agent.agent, "Clock", clock_with_stepped_wall)
    with running_service(
        IngestConfig(dsn=database, mqtt_port=broker.port, auto_register=True, client_id="r2")
    ):
        agent, source = _agent(_config(tmp_path, broker.port, gateway))
        agent.start()
        try:
            for step_s in (3600, -7200, 5, -5):  # +1 h, then 1 h before the start, then small steps
                time.sleep(1.5)
                wall.offset_ns += step_s * 1_000_000_000
            time.sleep(1.5)
            source.paused.set()
            time.sleep(0.3)
            wait_for(lambda: agent.buffer.depth()[0] == 0 and agent.batcher.pending() == 0, 30, "drain")
            jumps = agent.clock.jumps
        finally:
            agent.stop()
        produced = {(f"tick-{d}", float(t)) for t in range(source.ticks) for d in range(DEVICES)}
        wait_for(lambda: len(_stored(database, gateway)) >= len(produced), 30, "ingest")
    stored = _stored(database, gateway)
    assert sorted(stored) == sorted(produced)  # every reading once, whatever the clock did
    assert _seqs(database, gateway) == list(range(len(_seqs(database, gateway))))
    assert jumps >= 4, jumps  # every step was noticed (and logged)
