"""Dragino LDDS75 (ultrasonic distance) and LT-22222-L (I/O controller with two relays).

Facts from Dragino's user manuals and published decoders:
* LDDS75, FPort 2, 8 bytes big-endian: battery (mV, low 14 bits), distance
  (mm), interrupt flag, DS18B20 temperature (signed, 0.1 °C), sensor flag.
* LT-22222-L, FPort 2, 11 bytes: four 16-bit fields whose meaning depends on
  the working mode (low 6 bits of the last byte; the top 2 bits give the
  hardware: 1 = LT-22222-L), the DIDORO byte (bit 7 RO1, bit 6 RO2, bit 4 DI2,
  bit 3 DI1, bits 1-0 DO2/DO1), one reserved byte, the mode byte.
* LT-22222-L downlinks on FPort 1: 0x03 sets both relays (01 close, 00 open,
  11 leave); 0x05 closes/opens them for a time in ms (2 bytes), then inverts.
"""

from __future__ import annotations

import math
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
    # The sensor flag tells whether the ultrasonic probe answered; it says nothing of the
    # DS18B20. Without a DS18B20 the field is 0, so an exact 0.0 °C is taken as "absent".
    if not probe_flag & 0x01 and distance != _NO_PROBE_MM:
        result.warnings.append("sensor flag says no ultrasonic probe although a distance was sent")
    if temperature != 0:
        result.add("temperature_c", temperature / 10)
    if interrupt:
        result.events.append(("interrupt", {"level": interrupt}))
    return result


# Working modes of the LT-22222-L: what the first 8 bytes carry.
_MODES = {1: "2ACI+2AVI", 2: "two counters", 3: "counter+2ACI", 4: "counter+AVI1 counter", 5: "counter+2AVI+ACI"}  # fmt: skip


def dragino_lt22222(payload: bytes, f_port: int) -> NativeResult:
    port(f_port, (2,), "LT-22222-L")
    exact(payload, 11, "LT-22222-L uplink")
    mode = payload[10] & 0x3F
    result = NativeResult()
    if mode not in _MODES:
        # Mode 6 (trigger) reports alarm flags, not values; anything else is undocumented.
        result.warnings.append(f"working mode {mode} carries no values the platform decodes")
        return result
    flags = payload[8]
    result.add("relay_1_on", (flags >> 7) & 1)
    result.add("relay_2_on", (flags >> 6) & 1)
    voltage_1, voltage_2, current_1, current_2 = struct.unpack(">hhhh", payload[:8])
    if mode == 1:
        # In the counting modes DI1/DI2 are counter inputs and bit 5 means "first uplink".
        result.add("digital_input_1", (flags >> 3) & 1)
        result.add("digital_input_2", (flags >> 4) & 1)
    if mode in (1, 5):
        result.add("analog_voltage_1_v", voltage_1 / 1000)
        result.add("analog_voltage_2_v", voltage_2 / 1000)
        result.add("analog_current_1_ma", current_1 / 1000)
    if mode in (1, 3):
        result.add("analog_current_2_ma", current_2 / 1000)
    if mode == 3:
        result.add("analog_current_1_ma", current_1 / 1000)
    if mode in (2, 3, 4):
        result.add("pulse_count_1", struct.unpack(">I", payload[:4])[0])
    if mode == 2:
        result.add("pulse_count_2", struct.unpack(">I", payload[4:8])[0])
    if mode == 4:
        result.add("analog_voltage_count_1", struct.unpack(">I", payload[4:8])[0])
    if mode == 5:
        result.add("pulse_count_1", struct.unpack(">H", payload[6:8])[0])
    return result


def _relay(params: Mapping[str, AttrValue]) -> int:
    relay = params.get("relay", params.get("channel", 1))
    if isinstance(relay, bool) or relay not in (1, 2):
        raise CodecError("relay must be 1 or 2")
    return int(relay)


def dragino_lt22222_downlink(action: str, params: Mapping[str, AttrValue]) -> tuple[int, bytes]:
    """`set_relay` (alias `switch`): relay=1|2 (or channel), on=true|false, optional duration_s."""
    if action not in ("set_relay", "switch"):
        raise CodecError(f"LT-22222-L has no action {action!r} (available: set_relay, switch)")
    unknown = set(params) - {"relay", "channel", "on", "duration_s"}
    if unknown:
        raise CodecError(f"set_relay does not take {', '.join(sorted(unknown))}")
    relay = _relay(params)
    on = params.get("on")
    if not isinstance(on, bool):
        raise CodecError("set_relay needs on=true|false")
    duration = params.get("duration_s")
    if duration is None:
        code = 0x01 if on else 0x00
        first, second = (code, 0x11) if relay == 1 else (0x11, code)
        return 1, bytes([0x03, first, second])
    if isinstance(duration, bool) or not isinstance(duration, int | float) or not math.isfinite(duration):
        raise CodecError("duration_s must be a number of seconds")
    milliseconds = round(duration * 1000)
    if not 1 <= milliseconds <= 0xFFFF:
        raise CodecError(f"duration_s {duration:g} is outside the device's timer (0.001 to 65.535 s)")
    # Control byte: high nibble RO1, low nibble RO2; 1 close, 0 open, 2 leave as is.
    state = 1 if on else 0
    control = (state << 4 | 0x2) if relay == 1 else (0x20 | state)
    # Inverter mode 00: after the time the relay takes the opposite state, so
    # "on for N seconds" ends off whatever the relay was before.
    return 1, bytes([0x05, 0x00, control]) + milliseconds.to_bytes(2, "big")
