"""Config validation, probes for doctor and the slave scan."""

from __future__ import annotations

from typing import Any

import pytest

from edge_agent.sources.config import ModbusRtuConfig, build_source, parse_source
from edge_agent.sources.probe import probe, scan
from firmware_profiles.checked import ValidationError
from simulators.devices.at_module import Rak3172Simulator
from simulators.devices.meters import EnergyMeter, RelayModule
from simulators.devices.modbus_server import ModbusRtuSimulator, ModbusTcpSimulator
from territoire.services import MosquittoServer, free_port
from territoire_kernel.errors import ConfigError

from .fakes import FakeCatalog
from .helpers import stamper


def _tcp(port: int, **extra: Any) -> dict[str, Any]:
    return {
        "type": "modbus_tcp",
        "name": "tgbt",
        "host": "127.0.0.1",
        "port": port,
        "devices": [{"device_id": "m1", "slave_id": 1, "profile": "eastron-sdm630"}],
        **extra,
    }


def test_config_rejects_unknown_keys_and_bad_values() -> None:
    with pytest.raises(ValidationError, match="extra"):
        parse_source(_tcp(502, colour="red"))
    with pytest.raises(ValidationError):
        parse_source(
            _tcp(502) | {"devices": [{"device_id": "m1", "slave_id": 1, "profile": "p", "timeout_s": 1.5}]}
        )
    with pytest.raises(ValidationError, match="duplicate slave_id"):
        parse_source(
            _tcp(502) | {"devices": [{"device_id": f"m{i}", "slave_id": 3, "profile": "p"} for i in range(2)]}
        )
    with pytest.raises(ValidationError, match="dev_eui or lns_device_id"):
        parse_source(
            {
                "type": "tts",
                "name": "t",
                "broker": {"host": "h"},
                "application_id": "a",
                "devices": [{"device_id": "d", "profile": "p"}],
            }
        )
    with pytest.raises(ValidationError):
        parse_source({"type": "zigbee", "name": "z"})


def test_rtu_gap_follows_the_3_5_character_rule() -> None:
    devices = [{"device_id": "m1", "slave_id": 1, "profile": "p"}]
    slow = ModbusRtuConfig(type="modbus_rtu", name="b", port="/dev/x", baudrate=9600, devices=devices)  # type: ignore[arg-type]
    fast = ModbusRtuConfig(type="modbus_rtu", name="b", port="/dev/x", baudrate=115200, devices=devices)  # type: ignore[arg-type]
    assert slow.gap_s() == pytest.approx(3.5 * 11 / 9600)
    assert fast.gap_s() == pytest.approx(0.00175)


def test_unknown_profile_or_missing_register_map_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown profile"):
        build_source(
            parse_source(_tcp(502) | {"devices": [{"device_id": "m", "slave_id": 1, "profile": "nope"}]}),
            stamper=stamper,
            catalog=FakeCatalog(),
        )


def test_probe_modbus_tcp_and_scan() -> None:
    server = ModbusTcpSimulator({1: EnergyMeter("sdm630", lambda: 0.0), 4: RelayModule()})
    server.start()
    try:
        doc = _tcp(server.port)
        doc["devices"].append(
            {"device_id": "m2", "slave_id": 2, "profile": "eastron-sdm630", "timeout_s": 0.1}
        )
        results = probe(parse_source(doc))
        assert [(r.name, r.ok) for r in results] == [
            ("tgbt: m1 (slave 1)", True),
            ("tgbt: m2 (slave 2)", False),
        ]
        assert "wiring" in results[1].fix
        assert scan(host="127.0.0.1", tcp_port=server.port, slave_range=range(1, 8), timeout=0.05) == [1, 4]
    finally:
        server.stop()
    down = probe(parse_source(_tcp(server.port)))
    assert [(r.name, r.ok) for r in down] == [("tgbt: link", False)]


def test_probe_rtu_port_and_scan() -> None:
    sim = ModbusRtuSimulator({3: RelayModule(), 17: EnergyMeter("iem3155", lambda: 0.0)})
    sim.start()
    try:
        assert scan(port=sim.port, slave_range=range(1, 20), timeout=0.05) == [3, 17]
        doc = {
            "type": "modbus_rtu",
            "name": "bus",
            "port": sim.port,
            "devices": [{"device_id": "r", "slave_id": 3, "profile": "p"}],
        }
        assert [r.ok for r in probe(parse_source(doc))] == [True, True]
    finally:
        sim.stop()
    doc = {
        "type": "modbus_rtu",
        "name": "bus",
        "port": "/dev/ttyNOPE0",
        "devices": [{"device_id": "r", "slave_id": 3, "profile": "p"}],
    }
    [result] = probe(parse_source(doc))
    assert not result.ok and "does not exist" in result.detail


def test_probe_lns_broker_and_serial_module(mqtt_broker: MosquittoServer) -> None:
    lns = {
        "type": "chirpstack",
        "name": "cs",
        "devices": [{"dev_eui": "a84041000181c0de", "device_id": "d", "profile": "p"}],
    }
    [ok] = probe(parse_source(lns | {"broker": {"host": mqtt_broker.host, "port": mqtt_broker.port}}))
    assert ok.ok, ok
    [bad] = probe(parse_source(lns | {"broker": {"host": "127.0.0.1", "port": free_port()}}))
    assert not bad.ok and "unreachable" in bad.detail
    module = Rak3172Simulator()
    module.start()
    try:
        doc = {
            "type": "serial_lora",
            "name": "radio",
            "port": module.port,
            "devices": [{"node": 1, "device_id": "d", "profile": "p"}],
        }
        assert [r.ok for r in probe(parse_source(doc))] == [True, True]
    finally:
        module.stop()
