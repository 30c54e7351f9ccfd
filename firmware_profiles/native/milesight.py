"""Milesight EM310-UDL (ultrasonic distance) and EM300-DI (pulse counter), FPort 85.

Both use Milesight's channel/type records: one channel byte, one type byte,
then a fixed-size little-endian value. Device-information records (channel
0xFF) and the echoes of configuration downlinks (channel 0xFE or 0xFF) are
skipped by the sizes in Milesight's published decoders; an unknown record is
an error because its size, and so everything after it, would be a guess.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping

from territoire_kernel.errors import CodecError
from territoire_kernel.records import Quality

from .base import NativeResult, port

# (channel, type) -> size of the device-information records we skip.
_INFO_SIZES = {
    (0xFF, 0x01): 1,  # protocol version
    (0xFF, 0x09): 2,  # hardware version
    (0xFF, 0x0A): 2,  # firmware version
    (0xFF, 0x0B): 1,  # power on
    (0xFF, 0x0F): 1,  # LoRaWAN class
    (0xFF, 0x16): 8,  # serial number
    (0xFF, 0xFE): 1,  # reset event
    (0xFF, 0xFF): 2,  # TSL version
}

# Configuration downlinks echoed in an uplink (channel 0xFE or 0xFF): type -> size.
_EM310_ECHO_SIZES = {0x02: 2, 0x03: 2, 0x06: 9, 0x10: 1}
_EM300_ECHO_SIZES = {
    0x02: 2, 0x03: 2, 0x06: 9, 0x10: 1, 0x17: 2, 0x27: 1, 0x28: 1, 0x35: 8, 0x4A: 0, 0x4E: 2,
    0x68: 1, 0x69: 1, 0x6A: 3, 0x79: 4, 0x92: 5, 0xA1: 7, 0xA2: 9, 0xA3: 2, 0xA4: 2, 0xC3: 1,
}  # fmt: skip
# Counter alarms of the "water" records (firmware 1.3+): code -> event kind.
_COUNTER_ALARMS = {1: "no_flow_timeout", 2: "no_flow_timeout_cleared", 3: "flow_timeout", 4: "flow_timeout_cleared"}  # fmt: skip

Handler = Callable[[bytes, NativeResult], None]


def _walk(
    payload: bytes,
    handlers: Mapping[tuple[int, int], tuple[int, Handler]],
    echo_sizes: Mapping[int, int],
    what: str,
) -> NativeResult:
    result = NativeResult()
    offset = 0
    if not payload:
        raise CodecError(f"{what}: empty payload")
    while offset < len(payload):
        if offset + 2 > len(payload):
            raise CodecError(f"{what}: truncated record header at byte {offset}")
        key = (payload[offset], payload[offset + 1])
        offset += 2
        if key in handlers:
            size, handler = handlers[key]
        elif key in _INFO_SIZES:
            size, handler = _INFO_SIZES[key], _skip
        elif key[0] in (0xFE, 0xFF) and key[1] in echo_sizes:
            size, handler = echo_sizes[key[1]], _not_decoded(f"configuration echo {key[0]:02x} {key[1]:02x}")
        else:
            raise CodecError(f"{what}: unknown record {key[0]:02x} {key[1]:02x} at byte {offset - 2}")
        if offset + size > len(payload):
            raise CodecError(f"{what}: record {key[0]:02x} {key[1]:02x} needs {size} bytes")
        handler(payload[offset : offset + size], result)
        offset += size
    return result


def _skip(_value: bytes, _result: NativeResult) -> None:
    return None


def _not_decoded(what: str) -> Handler:
    def handler(_value: bytes, result: NativeResult) -> None:
        result.warnings.append(f"{what} record not decoded")

    return handler


def _battery(value: bytes, result: NativeResult) -> None:
    if value[0] > 100:
        raise CodecError(f"battery level {value[0]}% is above 100%")
    result.add("battery_pct", value[0])


def _distance(value: bytes, result: NativeResult) -> None:
    result.add("distance_mm", struct.unpack("<H", value)[0])


def _position(value: bytes, result: NativeResult) -> None:
    if value[0] not in (0, 1):
        raise CodecError(f"position {value[0]} is neither normal (0) nor tilted (1)")
    result.add("tilted", value[0])


def _temperature(value: bytes, result: NativeResult) -> None:
    result.add("temperature_c", struct.unpack("<h", value)[0] / 10)


def _humidity(value: bytes, result: NativeResult) -> None:
    result.add("humidity_pct", value[0] / 2)


def _digital_input(value: bytes, result: NativeResult) -> None:
    result.add("digital_input_1", value[0] & 1)


def _pulses(value: bytes, result: NativeResult) -> None:
    result.add("pulse_count", struct.unpack("<I", value)[0])


def _converted_counter(value: bytes, result: NativeResult) -> None:
    """Firmware 1.3+ sends the count converted: value = pulses * water_conv / pulse_conv.

    The counter is recovered from the float32 (exact up to 2**24 pulses); when
    the division does not give a whole number the reading is flagged ESTIMATED.
    """
    water_conv, pulse_conv = struct.unpack("<HH", value[:4])
    converted = struct.unpack("<f", value[4:8])[0]
    if water_conv == 0 or pulse_conv == 0 or not math.isfinite(converted) or converted < 0:
        result.warnings.append(
            f"counter record not usable (conversion {water_conv}/{pulse_conv}, value {converted})"
        )
        return
    pulses = converted * pulse_conv / water_conv
    whole = round(pulses)
    exact = abs(pulses - whole) < 1e-6 * max(1.0, pulses) and whole < 2**24
    result.add("pulse_count", whole, Quality.GOOD if exact else Quality.ESTIMATED)


def _counter_alarm(value: bytes, result: NativeResult) -> None:
    _converted_counter(value[:8], result)
    kind = _COUNTER_ALARMS.get(value[8])
    if kind is None:
        result.warnings.append(f"unknown counter alarm code {value[8]}")
    else:
        result.events.append((kind, {}))


def _digital_input_alarm(value: bytes, result: NativeResult) -> None:
    result.add("digital_input_1", value[0] & 1)
    if value[1] in (0, 1):
        result.events.append(("input_alarm" if value[1] else "input_alarm_cleared", {"level": value[0] & 1}))


def milesight_em310_udl(payload: bytes, f_port: int) -> NativeResult:
    port(f_port, (85,), "EM310-UDL")
    handlers = {(0x01, 0x75): (1, _battery), (0x03, 0x82): (2, _distance), (0x04, 0x00): (1, _position)}
    return _walk(payload, handlers, _EM310_ECHO_SIZES, "EM310-UDL")


def milesight_em300_di(payload: bytes, f_port: int) -> NativeResult:
    port(f_port, (85,), "EM300-DI")
    handlers = {
        (0x01, 0x75): (1, _battery),
        (0x03, 0x67): (2, _temperature),
        (0x04, 0x68): (1, _humidity),
        (0x05, 0x00): (1, _digital_input),
        (0x05, 0xC8): (4, _pulses),
        (0x85, 0x00): (2, _digital_input_alarm),
        # Firmware 1.3+: the counter with its conversion factors, and its alarms.
        (0x05, 0xE1): (8, _converted_counter),
        (0x85, 0xE1): (9, _counter_alarm),
        # Stored history: sizes from the vendor table, values not used (they are old readings).
        (0x20, 0xCE): (13, _not_decoded("historical data")),
        (0x21, 0xCE): (18, _not_decoded("historical water data")),
    }
    return _walk(payload, handlers, _EM300_ECHO_SIZES, "EM300-DI")
