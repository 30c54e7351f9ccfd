"""Serial LoRa source against a simulated RAK3172 on a pseudo-terminal."""

from __future__ import annotations

import time

import pytest

from edge_agent.sources.base import CommandError
from edge_agent.sources.config import build_source, parse_source
from simulators.devices.at_module import Rak3172Simulator
from simulators.devices.lorawan_encoders import dragino_ldds75

from .fakes import FakeLoraCatalog
from .helpers import Collector, stamper


def _wait(predicate: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_frames_are_received_decoded_and_commands_sent() -> None:
    module = Rak3172Simulator()
    module.start()
    doc = {
        "type": "serial_lora",
        "name": "radio-1",
        "port": module.port,
        "frequency_hz": 868_300_000,
        "spreading_factor": 9,
        "devices": [
            {"node": 7, "device_id": "bac-halle", "profile": "dragino-ldds75", "f_port": 2},
            {"node": 8, "device_id": "armoire-3", "profile": "dragino-lt22222", "f_port": 2},
        ],
    }
    source = build_source(parse_source(doc), stamper=stamper, catalog=FakeLoraCatalog())
    sink = Collector()
    source.start(sink)
    try:
        _wait(lambda: module.receiving)
        assert module.commands[:4] == ["AT", "AT+NWM=0", "AT+P2P=868300000:9:125:0:8:14", "AT+PRECV=65534"]
        _, payload = dragino_ldds75(distance_mm=455, battery_mv=3100)
        module.inject(bytes([7]) + payload, rssi=-101, snr=-4)
        module.inject(bytes([99]) + payload)  # a neighbour's node: ignored
        module.inject_line("+EVT:RXP2P:-90:5:ZZ")  # corrupt line
        module.inject(bytes([7]) + b"\x01")  # undecodable payload still gives link quality
        sink.wait_for(lambda s: len(s.values("bac-halle", "rssi_dbm")) == 2)
        assert sink.values("bac-halle", "distance_mm") == [455.0]
        assert sink.values("bac-halle", "rssi_dbm") == [-101.0, -85.0]
        assert sink.values("bac-halle", "snr_db")[0] == -4.0
        health = source.health()
        assert (health["unknown_node"], health["malformed"], health["decoded"]) == (1, 2, 1)

        detail = source.execute("armoire-3", "switch", {"on": True}).result(timeout=5)
        assert "sent 4 bytes" in detail
        assert module.sent == [bytes([8, 0x03, 0x01, 0x11])]
        _wait(lambda: module.receiving)  # back to listening after sending
        module.inject(bytes([7]) + dragino_ldds75(500)[1])
        sink.wait_for(lambda s: s.values("bac-halle", "distance_mm")[-1] == 500.0)
    finally:
        source.stop()
        module.stop()


def test_missing_port_is_retried_without_crashing() -> None:
    doc = {
        "type": "serial_lora",
        "name": "radio-absent",
        "port": "/dev/does-not-exist-ttyUSB9",
        "devices": [{"node": 1, "device_id": "x", "profile": "dragino-lt22222"}],
    }
    source = build_source(parse_source(doc), stamper=stamper, catalog=FakeLoraCatalog())
    source.start(Collector())
    try:
        _wait(lambda: source.health()["reconnects"] != 0 and source.health()["reconnects"] != 1, timeout=5)
        assert source.health()["receiving"] is False
        future = source.execute("x", "switch", {"on": True})
        source.stop()
        with pytest.raises(CommandError, match="stopped"):
            future.result(timeout=1)
    finally:
        source.stop()
