"""In-ground parking sensors: Bosch TPS110 and Nwave NPS (occupancy only, no personal data).

Bosch (Parking Lot Sensor communication interface): FPort 1 status on change,
FPort 2 heartbeat (optional second byte: signed temperature in °C), FPort 3
start-up (debug codes, firmware version in bytes 12-14, reset cause in byte
15, occupancy in byte 16); FPorts 4-6 carry device information, usage and
debug frames that the platform does not use. Bit 0 of the status byte is the
occupancy.

Nwave ("Getting Started", application protocol): FPort 1 parking status, bit 0
occupancy and bits 7-1 a compressed duration of the previous state; FPort 2
heartbeat with the same first byte; FPort 3 start-up and FPort 10 user
registration are not used by the platform.
"""

from __future__ import annotations

from territoire_kernel.records import AttrValue

from .base import NativeResult, need, port

_BOSCH_RESET_CAUSES = {1: "watchdog", 2: "power on", 3: "system request", 4: "other"}
_BOSCH_INFO_PORTS = {4: "device information", 5: "device usage", 6: "debug"}


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
    port(f_port, (1, 2, 3, 10), "Nwave NPS")
    result = NativeResult()
    if f_port in (3, 10):
        result.warnings.append(f"{'start-up' if f_port == 3 else 'registration'} frame not decoded")
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
