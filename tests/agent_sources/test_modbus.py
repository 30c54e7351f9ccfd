"""Modbus TCP and RTU sources against the simulators: polling, merging, dead slaves, outages, writes."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest

from edge_agent.sources.base import CommandError, Source
from edge_agent.sources.config import build_source, parse_source
from simulators.devices.meters import EnergyMeter, LightingCircuit
from simulators.devices.modbus_server import ModbusRtuSimulator, ModbusTcpSimulator

from .fakes import FakeCatalog
from .helpers import Collector, stamper

CATALOG = FakeCatalog()


def _source(doc: dict[str, Any]) -> Source:
    return build_source(parse_source(doc), stamper=stamper, catalog=CATALOG)


@pytest.fixture
def circuit() -> Iterator[tuple[LightingCircuit, ModbusTcpSimulator]]:
    site = LightingCircuit("iem3155", load_w=1800.0)
    server = ModbusTcpSimulator({1: site.meter, 2: site.relay})
    server.start()
    yield site, server
    server.stop()


def _tcp_config(port: int, interval: float = 0.2) -> dict[str, Any]:
    return {
        "type": "modbus_tcp",
        "name": "armoire-1",
        "host": "127.0.0.1",
        "port": port,
        "devices": [
            {
                "device_id": "compteur-1",
                "slave_id": 1,
                "profile": "schneider-iem3155",
                "poll_interval_s": interval,
            },
            {
                "device_id": "relais-1",
                "slave_id": 2,
                "profile": "modbus-relay-8",
                "poll_interval_s": interval,
            },
        ],
    }


def test_tcp_poll_and_relay_write(circuit: tuple[LightingCircuit, ModbusTcpSimulator]) -> None:
    site, server = circuit
    sink = Collector()
    source = _source(_tcp_config(server.port))
    source.start(sink)
    try:
        sink.wait_for(
            lambda s: bool(s.values("relais-1", "relay_state")) and bool(s.values("compteur-1", "power_w"))
        )
        assert sink.values("relais-1", "relay_state")[-1] == 0.0
        assert sink.values("compteur-1", "power_w")[-1] == 0.0
        assert sink.values("compteur-1", "energy_kwh")[-1] == pytest.approx(1250.0, abs=0.01)

        detail = source.execute("relais-1", "switch", {"on": True}).result(timeout=3)
        assert "coil 0" in detail
        assert site.relay.state(0) is True
        # The write triggers an immediate read-back.
        sink.wait_for(lambda s: s.values("relais-1", "relay_state")[-1] == 1.0, timeout=2)
        sink.wait_for(lambda s: s.values("compteur-1", "power_w")[-1] == pytest.approx(1800.0), timeout=2)

        with pytest.raises(CommandError, match="no device"):
            source.execute("inconnu", "switch", {"on": True}).result(timeout=1)
        with pytest.raises(CommandError, match="cannot encode"):
            source.execute("relais-1", "switch", {"on": "oui"}).result(timeout=1)
        health = source.health()
        assert health["connected"] is True
        assert health["devices"]["relais-1"]["answering"] is True  # type: ignore[index]
    finally:
        source.stop()


def test_merged_reads_issue_fewer_requests_than_points() -> None:
    meter = EnergyMeter("sdm630", lambda: 950.0)
    server = ModbusTcpSimulator({5: meter})
    server.start()
    register_map = CATALOG.get("eastron-sdm630").register_map
    assert register_map is not None
    blocks = register_map.plan_reads(max_registers=125, max_gap=4)
    assert len(blocks) < len(register_map.points)
    sink = Collector()
    source = _source(
        {
            "type": "modbus_tcp",
            "name": "tgbt",
            "host": "127.0.0.1",
            "port": server.port,
            "devices": [
                {"device_id": "sdm-1", "slave_id": 5, "profile": "eastron-sdm630", "poll_interval_s": 0.1}
            ],
        }
    )
    try:
        source.start(sink)
        sink.wait_for(lambda s: len(s.values("sdm-1", "power_w")) >= 3)
        source.stop()
        polls = len(sink.values("sdm-1", "power_w"))
        assert meter.requests in (polls * len(blocks), (polls + 1) * len(blocks))
        assert sink.values("sdm-1", "power_w")[-1] == pytest.approx(950.0)
        assert {m for m in ("voltage_v", "frequency_hz", "energy_kwh") if sink.values("sdm-1", m)} == {
            "voltage_v",
            "frequency_hz",
            "energy_kwh",
        }
    finally:
        source.stop()
        server.stop()


def test_tcp_source_survives_server_outage(circuit: tuple[LightingCircuit, ModbusTcpSimulator]) -> None:
    site, server = circuit
    sink = Collector()
    source = _source(_tcp_config(server.port, interval=0.1))
    source.start(sink)
    try:
        sink.wait_for(lambda s: len(s.values("compteur-1", "power_w")) >= 2)
        server.stop()
        time.sleep(1.5)  # several polls and link retries fail meanwhile
        assert source.health()["connected"] is False
        before = len(sink.values("compteur-1", "power_w"))
        restarted = ModbusTcpSimulator({1: site.meter, 2: site.relay}, port=server.port)
        restarted.start()
        try:
            sink.wait_for(lambda s: len(s.values("compteur-1", "power_w")) >= before + 3, timeout=8)
            assert source.health()["connected"] is True
        finally:
            restarted.stop()
    finally:
        source.stop()


def test_rtu_dead_slave_does_not_stall_the_others() -> None:
    meters = {1: EnergyMeter("sdm630", lambda: 400.0), 3: EnergyMeter("sdm630", lambda: 700.0)}
    sim = ModbusRtuSimulator(meters)
    sim.start()
    interval, dead_timeout = 0.25, 0.3
    devices = [
        {"device_id": f"m{unit}", "slave_id": unit, "profile": "eastron-sdm630", "poll_interval_s": interval}
        for unit in (1, 3)
    ]
    devices.append(
        {
            "device_id": "mort",
            "slave_id": 9,
            "profile": "eastron-sdm630",
            "poll_interval_s": interval,
            "timeout_s": dead_timeout,
        }
    )
    sink = Collector()
    source = _source(
        {"type": "modbus_rtu", "name": "rs485-1", "port": sim.port, "baudrate": 19200, "devices": devices}
    )
    source.start(sink)
    try:
        sink.wait_for(lambda s: any(e.kind == "device_unreachable" for e in s.events), timeout=6)
        sink.wait_for(lambda s: len(s.times("m3", "power_w")) >= 8, timeout=6)
        for unit, expected in ((1, 400.0), (3, 700.0)):
            times = sink.times(f"m{unit}", "power_w")
            gaps = [b - a for a, b in itertools.pairwise(times)]
            # Each live meter is polled on time, give or take the dead slave's single timeout.
            assert max(gaps) < interval + dead_timeout + 0.25, gaps
            assert sink.values(f"m{unit}", "power_w")[-1] == pytest.approx(expected)
        assert sink.values("mort", "power_w") == []
        health = source.health()["devices"]
        assert health["mort"]["answering"] is False  # type: ignore[index]
        # Back-off: far fewer attempts on the dead slave than polls of a live one.
        assert health["mort"]["polls"] < health["m1"]["polls"] / 2  # type: ignore[index]
        with pytest.raises(CommandError):
            source.execute("mort", "switch", {"on": True}).result(timeout=2)
    finally:
        source.stop()
        sim.stop()


def test_meter_integrates_relay_state_times_load() -> None:
    now = [1000.0]
    site = LightingCircuit("sdm630", load_w=3600.0)
    site.meter.clock = lambda: now[0]
    site.meter._last = now[0]
    start = site.meter.energy_wh
    now[0] += 10  # off: nothing
    site.relay.switch(0, True)
    now[0] += 20  # on for 20 s at 3600 W = 20 Wh
    site.relay.switch(0, False)
    now[0] += 30
    site.meter.refresh()
    assert site.meter.energy_wh - start == pytest.approx(20.0)
