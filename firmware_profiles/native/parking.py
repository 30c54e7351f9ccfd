"""In-ground parking sensors: Bosch TPS110 and Nwave NPS (occupancy only, no personal data).

Bosch: FPort 1 status on change, FPort 2 heartbeat, FPort 3 start-up; bit 0 of
the first byte is the occupancy. Nwave: FPort 1 parking status (bit 0 of the
first byte; bits 1-7 a compressed duration of the previous state), FPort 2
heartbeat with the same first byte.
"""

from __future__ import annotations

from territoire_kernel.errors import CodecError

from .base import NativeResult, need, port


def bosch_tps110(payload: bytes, f_port: int) -> NativeResult:
    port(f_port, (1, 2, 3), "TPS110")
    result = NativeResult()
    if f_port == 3:
        # Start-up frame: debug bytes, firmware version, reset cause, then the occupancy.
        need(payload, 17, "TPS110 start-up")
        result.events.append(("startup", {"firmware": ".".join(str(b) for b in payload[12:15])}))
        result.add("occupied", payload[16] & 1)
        return result
    need(payload, 1, "TPS110 status")
    if payload[0] & 0xFE:
        raise CodecError(f"TPS110 status byte {payload[0]:#04x} has undocumented bits set")
    result.add("occupied", payload[0] & 1)
    if f_port == 1:
        result.events.append(("car_arrived" if payload[0] & 1 else "car_left", {}))
    return result


def nwave_nps(payload: bytes, f_port: int) -> NativeResult:
    port(f_port, (1, 2), "Nwave NPS")
    need(payload, 1, "Nwave NPS status")
    result = NativeResult()
    occupied = payload[0] & 1
    result.add("occupied", occupied)
    if f_port == 1:
        result.events.append(("car_arrived" if occupied else "car_left", {}))
    return result
