"""Dragino LDDS75 (ultrasonic distance) and LT-22222-L (I/O controller with two relays).

Formats from Dragino's user manuals: LDDS75 uplink on FPort 2 (8 bytes);
LT-22222-L uplink on FPort 2 (11 bytes, working mode in the last byte) and the
relay control downlink 0x03.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

from territoire_kernel.errors import CodecError
from territoire_kernel.records import AttrValue, Quality

from .base import NativeResult, exact, port

# The LDDS75 reports 0 without a probe and 20 (mm) when the target is inside its blind zone.
_NO_PROBE_MM, _BLIND_ZONE_MM = 0, 20


def dragino_ldds75(payload: bytes, f_port: int) -> NativeResult:
    port(f_port, (2,), "LDDS75")
    exact(payload, 8, "LDDS75 uplink")
    battery, distance, interrupt, temperature, probe_flag = struct.unpack(">HHBhB", payload)
    result = NativeResult()
    result.add("battery_v", (battery & 0x3FFF) / 1000)
    if distance == _NO_PROBE_MM:
        result.warnings.append("no ultrasonic probe connected (distance 0)")
    elif distance == _BLIND_ZONE_MM:
        result.add("distance_mm", distance, Quality.OUT_OF_RANGE)
    else:
        result.add("distance_mm", distance)
    if probe_flag & 0x01 and temperature != 0:
        result.add("temperature_c", temperature / 10)
    if interrupt:
        result.events.append(("interrupt", {"level": interrupt}))
    return result


def dragino_lt22222(payload: bytes, f_port: int) -> NativeResult:
    port(f_port, (2,), "LT-22222-L")
    exact(payload, 11, "LT-22222-L uplink")
    mode = payload[10] & 0x3F
    result = NativeResult()
    if mode != 1:
        # Modes 2-5 carry pulse counters instead of analogue inputs; not used by the platform yet.
        result.warnings.append(f"working mode {mode} is not decoded (only mode 1, 2ACI+2AVI)")
        return result
    avi1, avi2, aci1, aci2 = struct.unpack(">HHHH", payload[:8])
    flags = payload[8]
    result.add("analog_voltage_1_v", avi1 / 1000)
    result.add("analog_voltage_2_v", avi2 / 1000)
    result.add("analog_current_1_ma", aci1 / 1000)
    result.add("analog_current_2_ma", aci2 / 1000)
    result.add("relay_1_on", (flags >> 7) & 1)
    result.add("relay_2_on", (flags >> 6) & 1)
    result.add("digital_input_1", (flags >> 3) & 1)
    result.add("digital_input_2", (flags >> 4) & 1)
    return result


def dragino_lt22222_downlink(action: str, params: Mapping[str, AttrValue]) -> tuple[int, bytes]:
    if action not in ("set_relay", "switch"):
        raise CodecError(f"LT-22222-L has no action {action!r} (available: set_relay)")
    relay = params.get("relay", params.get("channel", 1))
    if relay not in (1, 2):
        raise CodecError("relay must be 1 or 2")
    on = params.get("on")
    if not isinstance(on, bool):
        raise CodecError("set_relay needs on=true|false")
    code = 0x01 if on else 0x00
    first, second = (code, 0x11) if relay == 1 else (0x11, code)
    return 1, bytes([0x03, first, second])
