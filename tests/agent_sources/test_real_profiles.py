"""Simulators against the real firmware profiles, once the catalog exists.

The simulators' register layouts and payload encoders must agree with the
profiles' decoders; these tests skip until firmware_profiles.load_catalog lands.
"""

from __future__ import annotations

from typing import Any

import pytest

import firmware_profiles
from edge_agent.sources.config import build_source, parse_source
from simulators.devices import lorawan_encoders as enc
from simulators.devices.meters import LightingCircuit
from simulators.devices.modbus_server import ModbusTcpSimulator

from .helpers import Collector, stamper

load_catalog = getattr(firmware_profiles, "load_catalog", None)
pytestmark = pytest.mark.skipif(
    load_catalog is None, reason="firmware_profiles.load_catalog not available yet"
)
T0 = 1_732_330_800_000_000


def _profile_id(catalog: Any, name: str) -> str:
    vendor = {"iem3155": "schneider", "sdm630": "eastron", "ldds75": "dragino", "lt22222": "dragino"}.get(
        name, ""
    )
    for candidate in (f"{vendor}-{name}", f"{vendor}_{name}", name, f"milesight-{name}", f"bosch-{name}"):
        try:
            catalog.get(candidate)
            return candidate
        except Exception:
            continue
    pytest.skip(f"no profile id found for {name}")


def _metrics(profile: Any, f_port: int, payload: bytes) -> dict[str, float]:
    decoded = profile.decode_uplink(payload, f_port, device_id="sim-1", time_us=T0)
    return {r.metric: r.value for r in decoded.readings}


@pytest.mark.parametrize(
    ("name", "encoded", "expected"),
    [
        ("ldds75", enc.dragino_ldds75(1234, battery_mv=3300), {"distance_mm": 1234.0}),
        (
            "em310-udl",
            enc.milesight_em310_udl(876, battery_pct=80),
            {"distance_mm": 876.0, "battery_pct": 80.0},
        ),
        ("em300-di", enc.milesight_em300_di(40_123), {"pulse_count": 40_123.0}),
        ("tps110", enc.bosch_tps110(True), {"occupied": 1.0}),
    ],
)
def test_lorawan_encoders_match_profile_decoders(
    name: str, encoded: tuple[int, bytes], expected: dict[str, float]
) -> None:
    assert load_catalog is not None
    catalog = load_catalog()
    profile = catalog.get(_profile_id(catalog, name))
    metrics = _metrics(profile, *encoded)
    for metric, value in expected.items():
        assert metrics.get(metric) == pytest.approx(value), (metric, metrics)


@pytest.mark.parametrize("model", ["iem3155", "sdm630"])
def test_meter_simulators_match_register_maps(model: str) -> None:
    assert load_catalog is not None
    catalog = load_catalog()
    site = LightingCircuit(model, load_w=2300.0)
    site.relay.switch(0, True)
    server = ModbusTcpSimulator({1: site.meter})
    server.start()
    doc = {
        "type": "modbus_tcp",
        "name": "t",
        "host": "127.0.0.1",
        "port": server.port,
        "devices": [
            {"device_id": "m", "slave_id": 1, "profile": _profile_id(catalog, model), "poll_interval_s": 0.2}
        ],
    }
    source = build_source(parse_source(doc), stamper=stamper, catalog=catalog)
    sink = Collector()
    source.start(sink)
    try:
        sink.wait_for(lambda s: bool(s.values("m", "power_w")) and bool(s.values("m", "energy_kwh")))
        assert sink.values("m", "power_w")[-1] == pytest.approx(2300.0, rel=1e-3)
        assert sink.values("m", "energy_kwh")[-1] == pytest.approx(site.meter.energy_wh / 1000, abs=0.01)
    finally:
        source.stop()
        server.stop()
