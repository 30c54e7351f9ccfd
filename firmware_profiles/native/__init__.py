"""Native payload codecs: pure functions from bytes to values (no I/O, no clock).

Each decoder returns a NativeResult; each encoder returns (f_port, payload).
Any malformed input raises territoire_kernel.errors.CodecError, never anything else.
NATIVE_METRICS lists what each decoder may produce, so that the catalogue can
check every name against metrics.yaml when profiles load.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from territoire_kernel.records import AttrValue

from .base import NativeResult
from .dragino import dragino_ldds75, dragino_lt22222, dragino_lt22222_downlink
from .milesight import milesight_em300_di, milesight_em310_udl
from .parking import bosch_tps110, nwave_nps

Decoder = Callable[[bytes, int], NativeResult]
Encoder = Callable[[str, Mapping[str, AttrValue]], tuple[int, bytes]]

DECODERS: dict[str, Decoder] = {
    "dragino_ldds75": dragino_ldds75,
    "dragino_lt22222": dragino_lt22222,
    "milesight_em310_udl": milesight_em310_udl,
    "milesight_em300_di": milesight_em300_di,
    "bosch_tps110": bosch_tps110,
    "nwave_nps": nwave_nps,
}
NATIVE_METRICS: dict[str, frozenset[str]] = {
    "dragino_ldds75": frozenset({"battery_v", "distance_mm", "temperature_c"}),
    "dragino_lt22222": frozenset(
        {
            "relay_1_on",
            "relay_2_on",
            "digital_input_1",
            "digital_input_2",
            "analog_voltage_1_v",
            "analog_voltage_2_v",
            "analog_current_1_ma",
            "analog_current_2_ma",
            "pulse_count_1",
            "pulse_count_2",
            "analog_voltage_count_1",
        }
    ),
    "milesight_em310_udl": frozenset({"battery_pct", "distance_mm", "tilted"}),
    "milesight_em300_di": frozenset(
        {"battery_pct", "temperature_c", "humidity_pct", "digital_input_1", "pulse_count"}
    ),
    "bosch_tps110": frozenset({"occupied", "temperature_c"}),
    "nwave_nps": frozenset({"occupied", "battery_v", "temperature_c"}),
}
ENCODERS: dict[str, Encoder] = {"dragino_lt22222": dragino_lt22222_downlink}

__all__ = ["DECODERS", "ENCODERS", "NATIVE_METRICS", "Decoder", "Encoder", "NativeResult"]
