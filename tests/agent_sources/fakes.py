"""Small stand-ins for firmware_profiles register maps, for source tests.

They implement the RegisterMap contract (plan_reads / decode / encode_write)
for the simulators' layouts, so the sources can be tested on their own.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from territoire_kernel.errors import CodecError
from territoire_kernel.records import AttrValue, Reading

WIDTH = {"u16": 1, "f32": 2, "u64": 4, "bit": 1}


@dataclass(frozen=True)
class Block:
    function: str
    address: int
    count: int


@dataclass(frozen=True)
class Write:
    function: str
    address: int
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Point:
    metric: str
    function: str
    address: int
    kind: str
    unit: str | None = None
    scale: float = 1.0


class FakeRegisterMap:
    def __init__(self, points: Sequence[Point], relay_coil: int | None = None):
        self.points = list(points)
        self.relay_coil = relay_coil

    def plan_reads(self, max_registers: int = 125, max_gap: int = 4) -> list[Block]:
        blocks: list[Block] = []
        for p in sorted(self.points, key=lambda p: (p.function, p.address)):
            end = p.address + WIDTH[p.kind]
            last = blocks[-1] if blocks else None
            if (
                last is not None
                and last.function == p.function
                and p.address - (last.address + last.count) <= max_gap
                and end - last.address <= max_registers
            ):
                blocks[-1] = Block(p.function, last.address, max(last.count, end - last.address))
            else:
                blocks.append(Block(p.function, p.address, WIDTH[p.kind]))
        return blocks

    def decode(self, values: Mapping[Any, Any], *, device_id: str, time_us: int) -> list[Reading]:
        readings = []
        for p in self.points:
            block = next(
                b for b in values if b.function == p.function and b.address <= p.address < b.address + b.count
            )
            words = values[block][p.address - block.address : p.address - block.address + WIDTH[p.kind]]
            if p.kind == "bit":
                value = float(bool(words[0]))
            elif p.kind == "u16":
                value = float(words[0])
            elif p.kind == "f32":
                value = struct.unpack(">f", struct.pack(">HH", *words))[0]
            else:
                value = float(int.from_bytes(struct.pack(">4H", *words), "big"))
            readings.append(Reading(device_id, p.metric, value * p.scale, time_us, p.unit))
        return readings

    def encode_write(self, action: str, params: Mapping[str, AttrValue]) -> list[Write]:
        if action != "switch" or self.relay_coil is None:
            raise CodecError(f"unsupported action {action!r}")
        if not isinstance(params.get("on"), bool):
            raise CodecError("switch needs a boolean 'on'")
        return [Write("coil", self.relay_coil, (params["on"],))]


IEM3155 = FakeRegisterMap(
    [
        Point("power_w", "holding", 3059, "f32", "W", 1000.0),
        Point("energy_kwh", "holding", 3203, "u64", "kWh", 0.001),
    ]
)
SDM630 = FakeRegisterMap(
    [
        Point("voltage_v", "input", 0, "f32", "V"),
        Point("power_w", "input", 52, "f32", "W"),
        Point("frequency_hz", "input", 70, "f32", "Hz"),
        Point("energy_kwh", "input", 72, "f32", "kWh"),
    ]
)
RELAY = FakeRegisterMap([Point("relay_state", "coil", 0, "bit")], relay_coil=0)


@dataclass
class FakeProfile:
    register_map: FakeRegisterMap | None


class FakeCatalog:
    profiles: ClassVar[dict[str, FakeProfile]] = {
        "schneider-iem3155": FakeProfile(IEM3155),
        "eastron-sdm630": FakeProfile(SDM630),
        "modbus-relay-8": FakeProfile(RELAY),
    }

    def get(self, profile_id: str) -> FakeProfile:
        return self.profiles[profile_id]


# --------------------------------------------------------------------------- LoRaWAN stand-ins


@dataclass(frozen=True)
class FakeDecoded:
    readings: list[Reading]
    events: list[Any]
    warnings: list[str]


class FakeLdds75:
    """Dragino LDDS75 FPort 2: battery mV (14 bits), distance mm, big-endian."""

    register_map = None

    def decode_uplink(self, payload: bytes, f_port: int, *, device_id: str, time_us: int) -> FakeDecoded:
        if f_port != 2 or len(payload) < 4:
            raise CodecError(f"LDDS75 expects 8 bytes on FPort 2, got {len(payload)} on {f_port}")
        battery, distance = struct.unpack(">HH", payload[:4])
        return FakeDecoded(
            [
                Reading(device_id, "battery_v", (battery & 0x3FFF) / 1000, time_us, "V"),
                Reading(device_id, "distance_mm", float(distance), time_us, "mm"),
            ],
            [],
            [],
        )

    def encode_downlink(self, action: str, params: Mapping[str, AttrValue]) -> tuple[int, bytes]:
        raise CodecError("the LDDS75 takes no commands")


class FakeLt22222(FakeLdds75):
    def encode_downlink(self, action: str, params: Mapping[str, AttrValue]) -> tuple[int, bytes]:
        if action != "switch" or not isinstance(params.get("on"), bool):
            raise CodecError("switch needs a boolean 'on'")
        return 1, bytes([0x03, int(bool(params["on"])), 0x11])


class FakeLoraCatalog:
    profiles: ClassVar[dict[str, Any]] = {"dragino-ldds75": FakeLdds75(), "dragino-lt22222": FakeLt22222()}

    def get(self, profile_id: str) -> Any:
        return self.profiles[profile_id]
