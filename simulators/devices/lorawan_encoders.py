"""Uplink payload encoders for simulated LoRaWAN devices, per the vendors' documented formats.

Each returns (f_port, payload). They are the inverse of the firmware profiles'
decoders for the fields the platform uses; fields a decoder ignores are set to
plausible constants.
"""

from __future__ import annotations

import struct


def dragino_ldds75(
    distance_mm: int, battery_mv: int = 3300, temperature_c: float | None = None
) -> tuple[int, bytes]:
    """Dragino LDDS75 ultrasonic distance, FPort 2: battery mV, distance mm, interrupt, DS18B20, flag."""
    temp = 0 if temperature_c is None else round(temperature_c * 10)
    flag = 0x01  # ultrasonic sensor detected
    return 2, struct.pack(">HHBhB", battery_mv & 0x3FFF, distance_mm, 0, temp, flag)


def milesight_em310_udl(distance_mm: int, battery_pct: int = 95, tilted: bool = False) -> tuple[int, bytes]:
    """Milesight EM310-UDL, FPort 85: channel/type records (battery 01 75, distance 03 82, position 04 00)."""
    return 85, (
        bytes([0x01, 0x75, battery_pct])
        + bytes([0x03, 0x82])
        + struct.pack("<H", distance_mm)
        + bytes([0x04, 0x00, int(tilted)])
    )


def milesight_em300_di(pulse_count: int, battery_pct: int = 90) -> tuple[int, bytes]:
    """Milesight EM300-DI in counter mode, FPort 85: battery 01 75, pulse counter 05 C8 (uint32 LE)."""
    return 85, bytes([0x01, 0x75, battery_pct, 0x05, 0xC8]) + struct.pack("<I", pulse_count & 0xFFFFFFFF)


def bosch_tps110(occupied: bool, heartbeat: bool = False) -> tuple[int, bytes]:
    """Bosch TPS110 parking sensor: FPort 1 on change, FPort 2 heartbeat; bit 0 is occupancy."""
    return (2 if heartbeat else 1), bytes([int(occupied)])


def dragino_lt22222(ro1: bool, ro2: bool = False, di1: bool = False, avi1_mv: int = 0) -> tuple[int, bytes]:
    """Dragino LT-22222-L, mode 1, FPort 2: AVI1, AVI2, ACI1, ACI2, DIDORO byte, reserved, mode byte."""
    didoro = (int(ro1) << 7) | (int(ro2) << 6) | int(di1) << 3
    return 2, struct.pack(
        ">HHHHBBB", avi1_mv, 0, 0, 0, didoro, 0xFF, 0x41
    )  # mode 1; top bits 01 = LT-22222-L hardware


def dragino_lt22222_relay_downlink(ro1: bool | None, ro2: bool | None = None) -> tuple[int, bytes]:
    """Relay control downlink 0x03: per relay 01 close, 00 open, 11 leave as is."""

    def code(state: bool | None) -> int:
        return 0x11 if state is None else int(state)

    return 1, bytes([0x03, code(ro1), code(ro2)])
