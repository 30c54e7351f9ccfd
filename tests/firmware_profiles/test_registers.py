"""Register maps: value types, byte and word order, scaling, sentinels, read plans and writes."""

from __future__ import annotations

import math
import struct

import pytest

from firmware_profiles import ReadBlock, RegisterMap, WriteOp
from firmware_profiles.registers import Point, WriteSpec
from territoire_kernel.errors import CodecError

T0 = 1_700_000_000_000_000


def _words(data: bytes) -> list[int]:
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def _decode(point: Point, words: list[int | bool]) -> float | None:
    register_map = RegisterMap([point])
    block = ReadBlock(point.function, point.address, len(words))
    readings = register_map.decode({block: words}, device_id="d", time_us=T0)
    return readings[0].value if readings else None


@pytest.mark.parametrize(
    ("kind", "fmt", "value"),
    [
        ("u16", ">H", 65000), ("s16", ">h", -1234), ("u32", ">I", 4_000_000_000), ("s32", ">i", -70_000),
        ("u64", ">Q", 2**40 + 5), ("s64", ">q", -(2**40)), ("f32", ">f", 230.5), ("f64", ">d", -1e-3),
    ],
)  # fmt: skip
def test_every_type_in_every_byte_and_word_order(kind: str, fmt: str, value: float) -> None:
    raw = struct.pack(fmt, value)
    for byte_order in ("big", "little"):
        for word_order in ("big", "little"):
            words = _words(raw)
            if word_order == "little":
                words.reverse()
            if byte_order == "little":
                words = [int.from_bytes(w.to_bytes(2, "big")[::-1], "big") for w in words]
            point = Point("power_w", "W", "holding", 10, kind, byte_order=byte_order, word_order=word_order)  # type: ignore[arg-type]
            assert _decode(point, list(words)) == pytest.approx(value), (byte_order, word_order)


def test_scale_offset_and_sentinels() -> None:
    scaled = Point("temperature_c", "°C", "input", 0, "s16", scale=0.1, offset=-40.0)
    assert _decode(scaled, [650]) == pytest.approx(25.0)
    sentinel = Point("voltage_v", "V", "input", 0, "u16", missing=(0xFFFF,))
    assert _decode(sentinel, [0xFFFF]) is None
    assert _decode(sentinel, [0xFFFE]) == 0xFFFE
    floats = Point("voltage_v", "V", "input", 0, "f32")
    assert _decode(floats, _words(struct.pack(">f", math.nan))) is None
    assert _decode(floats, _words(struct.pack(">f", math.inf))) is None


def test_bad_register_values_are_codec_errors() -> None:
    point = Point("power_w", "W", "holding", 0, "u32")
    register_map = RegisterMap([point])
    for words in ([1, 70_000], [1, -1], [1, "2"], [1]):
        with pytest.raises(CodecError, match="power_w"):
            register_map.decode({ReadBlock("holding", 0, 2): words}, device_id="d", time_us=T0)  # type: ignore[dict-item]


def test_points_outside_the_blocks_read_are_left_out() -> None:
    register_map = RegisterMap(
        [Point("power_w", "W", "holding", 0, "u16"), Point("voltage_v", "V", "holding", 5, "u32")]
    )
    # voltage_v straddles the end of the block: not decoded rather than guessed.
    readings = register_map.decode(
        {ReadBlock("holding", 0, 6): [7, 0, 0, 0, 0, 1]}, device_id="d", time_us=T0
    )
    assert [(r.metric, r.value) for r in readings] == [("power_w", 7.0)]
    assert register_map.decode({ReadBlock("input", 0, 6): [7] * 6}, device_id="d", time_us=T0) == []


def test_read_plans_respect_functions_gaps_and_limits() -> None:
    points = [Point(f"m{i}", "", "coil", i * 3, "bool") for i in range(900)]
    points += [Point("a", "", "input", 0, "f32"), Point("b", "", "holding", 0, "f32")]
    plan = RegisterMap(points).plan_reads(max_registers=125, max_gap=8)
    coils = [b for b in plan if b.function == "coil"]
    assert [b.count for b in coils] == [1999, 697]  # 2000 at most per coil read: 0..1998, then 2001..2697
    assert {b for b in plan if b.function != "coil"} == {ReadBlock("input", 0, 2), ReadBlock("holding", 0, 2)}
    assert len({*plan}) == len(plan)  # hashable, usable as dictionary keys
    with pytest.raises(ValueError):
        RegisterMap(points).plan_reads(max_registers=2)


def test_writes() -> None:
    register_map = RegisterMap(
        [Point("relay_on", "", "coil", 0, "bool")],
        [WriteSpec("switch", "coil", 16, channels=4), WriteSpec("dim", "holding", 100, 2, "value")],
    )
    assert register_map.encode_write("switch", {"channel": 4, "on": False}) == [WriteOp("coil", 19, (False,))]
    assert register_map.encode_write("switch", {"on": True}) == [WriteOp("coil", 16, (True,))]
    assert register_map.encode_write("dim", {"channel": 2, "value": 70}) == [WriteOp("holding", 101, (70,))]
    for action, params in [("dim", {"value": 70_000}), ("dim", {"value": True}), ("switch", {"on": "yes"}),
                           ("switch", {"channel": 0, "on": True}), ("open", {})]:  # fmt: skip
        with pytest.raises(CodecError):
            register_map.encode_write(action, params)  # type: ignore[arg-type]
