"""Every decoder, fed anything, either decodes or raises the kernel's CodecError."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_profiles import ReadBlock, load_catalog
from territoire_kernel.errors import CodecError

CATALOG = load_catalog()
LORAWAN = [p.id for p in CATALOG if p.spec.lorawan is not None]
MODBUS = [p.id for p in CATALOG if p.register_map is not None]


@pytest.mark.parametrize("profile_id", LORAWAN)
@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=64), f_port=st.integers(min_value=0, max_value=255))
def test_uplink_decoders_only_raise_codec_errors(profile_id: str, payload: bytes, f_port: int) -> None:
    try:
        decoded = CATALOG.get(profile_id).decode_uplink(
            payload, f_port, device_id="fuzz", time_us=1_700_000_000_000_000
        )
    except CodecError:
        return
    assert all(r.device_id == "fuzz" for r in decoded.readings)


@pytest.mark.parametrize("profile_id", MODBUS)
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_register_decoders_only_raise_codec_errors(profile_id: str, data: st.DataObject) -> None:
    register_map = CATALOG.get(profile_id).register_map
    assert register_map is not None
    values: dict[ReadBlock, list[int | bool]] = {}
    for block in register_map.plan_reads():
        if block.function in ("coil", "discrete_input"):
            values[block] = data.draw(st.lists(st.booleans(), min_size=block.count, max_size=block.count))
        else:
            size = data.draw(st.sampled_from([block.count, block.count, max(0, block.count - 1)]))
            values[block] = data.draw(st.lists(st.integers(-5, 70_000), min_size=size, max_size=size))
    try:
        register_map.decode(values, device_id="fuzz", time_us=1_700_000_000_000_000)
    except CodecError:
        return


def test_reads_are_merged_across_small_gaps_only() -> None:
    register_map = CATALOG.get("schneider-iem3155").register_map
    assert register_map is not None
    blocks = register_map.plan_reads(max_registers=125, max_gap=8)
    # 3035-3036 and 3059-3060 are 22 apart: separate; 3109 and 3203 far apart too.
    assert [(b.address, b.count) for b in blocks] == [(3035, 2), (3059, 2), (3109, 2), (3203, 4)]
    merged = register_map.plan_reads(max_registers=125, max_gap=30)
    assert [(b.address, b.count) for b in merged] == [(3035, 26), (3109, 2), (3203, 4)]


def test_relay_writes_are_checked() -> None:
    register_map = CATALOG.get("generic-relay-coils").register_map
    assert register_map is not None
    (op,) = register_map.encode_write("switch", {"channel": 3, "on": True})
    assert (op.function, op.address, op.values) == ("coil", 2, (True,))
    for params in ({"channel": 9, "on": True}, {"channel": 1, "on": 1}, {"channel": "1", "on": True}):
        with pytest.raises(CodecError):
            register_map.encode_write("switch", params)
    with pytest.raises(CodecError, match="available: switch"):
        register_map.encode_write("dim", {})
