"""Modbus register maps: which registers to read, how to merge them, how to decode them.

Addresses are zero-based as on the wire (a manual's register 3060 is 3059).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from territoire_kernel.errors import CodecError
from territoire_kernel.records import AttrValue, Quality, Reading

Function = Literal["coil", "discrete_input", "holding", "input"]
ValueType = Literal["bool", "u16", "s16", "u32", "s32", "u64", "s64", "f32", "f64"]
WORDS: dict[str, int] = {
    "bool": 1,
    "u16": 1,
    "s16": 1,
    "u32": 2,
    "s32": 2,
    "u64": 4,
    "s64": 4,
    "f32": 2,
    "f64": 4,
}
_FORMATS = {"u16": "H", "s16": "h", "u32": "I", "s32": "i", "u64": "Q", "s64": "q", "f32": "f", "f64": "d"}
BIT_FUNCTIONS = ("coil", "discrete_input")
MAX_COUNT = {"coil": 2000, "discrete_input": 2000, "holding": 125, "input": 125}


@dataclass(frozen=True)
class ReadBlock:
    function: str
    address: int
    count: int


@dataclass(frozen=True)
class WriteOp:
    function: str
    address: int
    values: tuple[int | bool, ...]


@dataclass(frozen=True)
class Point:
    metric: str
    unit: str
    function: Function
    address: int
    type: ValueType
    scale: float = 1.0
    offset: float = 0.0
    byte_order: Literal["big", "little"] = "big"
    word_order: Literal["big", "little"] = "big"
    # Raw values meaning "not available" (e.g. 0xFFFF, or NaN for floats, always skipped).
    missing: tuple[int, ...] = ()

    @property
    def words(self) -> int:
        return WORDS[self.type]

    @property
    def end(self) -> int:
        return self.address + self.words

    def decode(self, raw: Sequence[int | bool]) -> float | None:
        if self.type == "bool":
            return 1.0 if raw[0] else 0.0
        if not all(isinstance(w, int) and 0 <= w <= 0xFFFF for w in raw):
            raise CodecError(f"{self.metric}: register values must be integers 0..65535, got {list(raw)}")
        words = [int(w) for w in raw]
        if self.word_order == "little":
            words.reverse()
        data = b"".join(w.to_bytes(2, "big") for w in words)
        if self.byte_order == "little":
            data = b"".join(data[i : i + 2][::-1] for i in range(0, len(data), 2))
        if self.missing and int.from_bytes(data, "big") in self.missing:
            return None
        value = struct.unpack(">" + _FORMATS[self.type], data)[0]
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return float(value) * self.scale + self.offset


@dataclass(frozen=True)
class WriteSpec:
    action: str
    function: Literal["coil", "holding"]
    address: int
    channels: int = 1
    # The command parameter carrying the value: "on" (bool) for coils, "value" (int) for registers.
    value_param: str = "on"


class RegisterMap:
    def __init__(self, points: Sequence[Point], writes: Sequence[WriteSpec] = ()):
        self.points = tuple(points)
        self.writes = {w.action: w for w in writes}

    def plan_reads(self, max_registers: int = 125, max_gap: int = 8) -> list[ReadBlock]:
        """Merges points of one function whose registers are at most max_gap apart.

        A block never exceeds max_registers (125 is the Modbus limit for registers;
        coils and discrete inputs go up to 2000 whatever max_registers says).
        """
        if max_registers < max(WORDS.values()) or max_gap < 0:
            raise ValueError(f"max_registers must be at least {max(WORDS.values())} and max_gap at least 0")
        blocks: list[ReadBlock] = []
        by_function: dict[str, list[Point]] = {}
        for point in self.points:
            by_function.setdefault(point.function, []).append(point)
        for function, points in sorted(by_function.items()):
            limit = min(MAX_COUNT[function], max_registers if function not in BIT_FUNCTIONS else 2000)
            points.sort(key=lambda p: p.address)
            start, end = points[0].address, points[0].end
            for point in points[1:]:
                if point.address - end <= max_gap and point.end - start <= limit:
                    end = max(end, point.end)
                else:
                    blocks.append(ReadBlock(function, start, end - start))
                    start, end = point.address, point.end
            blocks.append(ReadBlock(function, start, end - start))
        return blocks

    def decode(
        self, values: Mapping[ReadBlock, Sequence[int | bool]], *, device_id: str, time_us: int
    ) -> list[Reading]:
        readings = []
        for point in self.points:
            raw = _slice(values, point)
            if raw is None:
                continue
            value = point.decode(raw)
            if value is not None:
                readings.append(Reading(device_id, point.metric, value, time_us, point.unit, Quality.GOOD))
        return readings

    def encode_write(self, action: str, params: Mapping[str, AttrValue]) -> list[WriteOp]:
        spec = self.writes.get(action)
        if spec is None:
            raise CodecError(
                f"no write action {action!r} (available: {', '.join(sorted(self.writes)) or 'none'})"
            )
        channel = params.get("channel", 1)
        if isinstance(channel, bool) or not isinstance(channel, int) or not 1 <= channel <= spec.channels:
            raise CodecError(f"channel must be an integer from 1 to {spec.channels}")
        value = params.get(spec.value_param)
        if spec.function == "coil":
            if not isinstance(value, bool):
                raise CodecError(f"{action} needs {spec.value_param}=true|false")
            return [WriteOp("coil", spec.address + channel - 1, (value,))]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFF:
            raise CodecError(f"{action} needs {spec.value_param} as an integer 0..65535")
        return [WriteOp("holding", spec.address + channel - 1, (value,))]


def _slice(values: Mapping[ReadBlock, Sequence[int | bool]], point: Point) -> Sequence[int | bool] | None:
    for block, data in values.items():
        if (
            block.function == point.function
            and block.address <= point.address
            and point.end <= block.address + block.count
        ):
            first = point.address - block.address
            chunk = data[first : first + point.words]
            if len(chunk) != point.words:
                raise CodecError(f"{point.metric}: response shorter than the block read")
            return chunk
    return None
