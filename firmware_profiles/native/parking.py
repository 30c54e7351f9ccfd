"""In-ground parking sensors: Bosch TPS110 and Nwave NPS (occupancy only, no personal data).

Bosch (Parking Lot Sensor communication interface): FPort 1 status on change,
FPort 2 heartbeat (optional second byte: signed temperature in °C), FPort 3
start-up (debug codes, firmware version in bytes 12-14, reset cause in byte
15, occupancy in byte 16); FPorts 4-6 carry device information, usage and
debug frames that the platform does not use. Bit 0 of the status byte is the
occupancy.

Nwave ("Getting Started", application protocol, and Nwave's codec in the TTN
device repository): FPort 1 parking status, bit 0 occupancy and bits 7-1 a
compressed duration (minutes) of the previous state; FPort 2 heartbeat with
occupancy in bit 0, battery and temperature; FPort 3 start-up (firmware,
reset cause, occupancy); FPort 6 debug and FPort 10 user registration are not
decoded (the latter names a user's tag).
"""

from __future__ import annotations

from territoire_kernel.records import AttrValue

from .base import NativeResult, need, port

_BOSCH_RESET_CAUSES = {1: "watchdog", 2: "power on", 3: "system request", 4: "other"}
_BOSCH_INFO_PORTS = {4: "device information", 5: "device usage", 6: "debug"}
_NWAVE_RESET_CAUSES = {
    0: "rejoin",
    1: "watchdog",
    2: "power on",
    3: "user request",
    6: "brown-out",
    7: "other",
}


def bosch_tps110(payload: bytes, f_port: int) -> NativeResult:
    port(f_port, (1, 2, 3, 4, 5, 6), "TPS110")
    result = NativeResult()
    if f_port in _BOSCH_INFO_PORTS:
        result.warnings.append(f"{_BOSCH_INFO_PORTS[f_port]} frame (FPort {f_port}) not decoded")
        return result
    if f_port == 3:
        need(payload, 17, "TPS110 start-up")
        attrs: dict[str, AttrValue] = {"firmware": ".".join(str(b) for b in payload[12:15])}
        attrs["reset_cause"] = _BOSCH_RESET_CAUSES.get(payload[15], f"code {payload[15]}")
        result.events.append(("startup", attrs))
        result.add("occupied", payload[16] & 1)
        return result
    need(payload, 1, "TPS110 status")
    if payload[0] & 0xFE:
        result.warnings.append(f"status byte {payload[0]:#04x} has reserved bits set; bit 0 used")
    result.add("occupied", payload[0] & 1)
    if f_port == 1:
        result.events.append(("car_arrived" if payload[0] & 1 else "car_left", {}))
    elif len(payload) >= 2:
        result.add("temperature_c", payload[1] - 256 if payload[1] & 0x80 else payload[1])
    return result


def _previous_state_minutes(code: int) -> int | None:
    """Nwave's compressed duration: exact below 90, then 5-minute and hourly steps; 127 = longer."""
    if code < 90:
        return code
    if code < 120:
        return 90 + (code - 90) * 5
    if code < 127:
        return 240 + (code - 120) * 60
    return None


def nwave_nps(payload: bytes, f_port: int) -> NativeResult:
    port(f_port, (1, 2, 3, 6, 10), "Nwave NPS")
    result = NativeResult()
    if f_port in (6, 10):
        # FPort 10 carries the id of a user's registration tag: personal data, deliberately not decoded.
        result.warnings.append(f"{'debug' if f_port == 6 else 'user registration'} frame not decoded")
        return result
    if f_port == 3:
        need(payload, 5, "Nwave NPS start-up")
        cause = _NWAVE_RESET_CAUSES.get(payload[3], f"code {payload[3]}")
        result.events.append(
            ("startup", {"firmware": ".".join(str(b) for b in payload[:3]), "reset_cause": cause})
        )
        result.add("occupied", payload[4] & 1)
        return result
    need(payload, 1, "Nwave NPS status")
    occupied = payload[0] & 1
    result.add("occupied", occupied)
    if f_port == 1:
        attrs: dict[str, AttrValue] = {}
        minutes = _previous_state_minutes(payload[0] >> 1)
        if minutes is not None:
            attrs["previous_state_min"] = minutes
        result.events.append(("car_arrived" if occupied else "car_left", attrs))
        return result
    # Heartbeat: byte 1 battery (2500 + 4 mV per step), byte 2 signed temperature in half degrees from 10 °C.
    if payload[0] & 0x7E:
        result.warnings.append(f"hardware health bits set in {payload[0]:#04x}")
    if len(payload) >= 2:
        result.add("battery_v", (2500 + 4 * payload[1]) / 1000)
    if len(payload) >= 3:
        result.add("temperature_c", (payload[2] - 256 if payload[2] & 0x80 else payload[2]) / 2 + 10)
    return result
