"""Every decoder, fed anything, either decodes or raises the kernel's CodecError."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_profiles import ReadBlock, load_catalog
from firmware_profiles.native import DECODERS, ENCODERS, NATIVE_METRICS
from territoire_kernel.errors import CodecError
from territoire_kernel.records import AttrValue

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
    assert {r.metric for r in decoded.readings} <= set(CATALOG.metrics)


@pytest.mark.parametrize("name", sorted(DECODERS))
@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=40), f_port=st.integers(min_value=0, max_value=255))
def test_native_decoders_emit_only_their_declared_metrics(name: str, payload: bytes, f_port: int) -> None:
    try:
        result = DECODERS[name](payload, f_port)
    except CodecError:
        return
    assert {metric for metric, _, _ in result.values} <= NATIVE_METRICS[name]


PARAM_VALUES = st.one_of(
    st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True), st.text(max_size=5)
)


@pytest.mark.parametrize("name", sorted(ENCODERS))
@settings(max_examples=300, deadline=None)
@given(
    action=st.sampled_from(["set_relay", "switch", "dim", ""]),
    params=st.dictionaries(st.sampled_from(["relay", "channel", "on", "duration_s", "x"]), PARAM_VALUES),
)
def test_downlink_encoders_only_raise_codec_errors(name: str, action: str, params: dict[str, object]) -> None:
    try:
        f_port, payload = ENCODERS[name](action, params)  # type: ignore[arg-type]
    except CodecError:
        return
    assert 1 <= f_port <= 223 and 0 < len(payload) <= 51


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
    # Blocks the plan did not ask for (misaligned, overlapping) must not break decoding either.
    for _ in range(data.draw(st.integers(0, 2))):
        function = data.draw(st.sampled_from(["coil", "discrete_input", "holding", "input"]))
        address = data.draw(st.integers(0, 3300))
        count = data.draw(st.integers(1, 8))
        values[ReadBlock(function, address, count)] = data.draw(
            st.lists(st.integers(-1, 0x10000) | st.booleans(), min_size=0, max_size=count)
        )
    try:
        readings = register_map.decode(values, device_id="fuzz", time_us=1_700_000_000_000_000)
    except CodecError:
        return
    assert all(r.metric in CATALOG.metrics for r in readings)


def test_reads_are_merged_across_small_gaps_only() -> None:
    register_map = CATALOG.get("schneider-iem3155").register_map
    assert register_map is not None
    blocks = register_map.plan_reads(max_registers=125, max_gap=8)
    # Currents 2999-3010, voltages 3027-3036, powers 3053-3060: gaps of 16 split them.
    assert [(b.address, b.count) for b in blocks] == [(2999, 12), (3027, 10), (3053, 8), (3109, 2), (3203, 4)]
    merged = register_map.plan_reads(max_registers=125, max_gap=16)
    assert [(b.address, b.count) for b in merged] == [(2999, 62), (3109, 2), (3203, 4)]
    small = register_map.plan_reads(max_registers=10, max_gap=16)
    assert all(b.count <= 10 for b in small)
    covered = {a for b in small for a in range(b.address, b.address + b.count)}
    assert all(set(range(p.address, p.end)) <= covered for p in register_map.points)


def test_relay_writes_are_checked() -> None:
    register_map = CATALOG.get("generic-relay-coils").register_map
    assert register_map is not None
    (op,) = register_map.encode_write("switch", {"channel": 3, "on": True})
    assert (op.function, op.address, op.values) == ("coil", 2, (True,))
    bad: list[dict[str, AttrValue]] = [
        {"channel": 9, "on": True},
        {"channel": 1, "on": 1},
        {"channel": "1", "on": True},
    ]
    for params in bad:
        with pytest.raises(CodecError):
            register_map.encode_write("switch", params)
    with pytest.raises(CodecError, match="available: switch"):
        register_map.encode_write("dim", {})
