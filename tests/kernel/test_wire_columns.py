"""The columnar fast path accepts and refuses exactly what decode() does, with the same errors."""

from __future__ import annotations

from collections.abc import Sequence

import cbor2
from hypothesis import given, settings
from hypothesis import strategies as st

from territoire_kernel.errors import WireFormatError
from territoire_kernel.records import Reading
from territoire_kernel.wire import CBOR_MAGIC, Batch, BatchColumns, Encoding, decode, decode_columns, encode

from .strategies import batches, readings

T0 = 1_700_000_000_000_000
many_readings = st.builds(
    Batch,
    gateway_id=st.just("gw-1"),
    boot_id=st.just("b1"),
    seq=st.integers(0, 2**63 - 1),
    readings=st.lists(readings, min_size=8, max_size=40).map(tuple),
)


def outcome(decoder: object, payload: bytes) -> object:
    """The decoded batch as plain columns, or the error message."""
    try:
        message = decoder(payload)  # type: ignore[operator]
    except WireFormatError as exc:
        return ("error", str(exc))
    if isinstance(message, BatchColumns):
        return (
            message.gateway_id, message.boot_id, message.seq, message.sent_us, message.devices,
            message.metrics, message.times_us, message.values, message.qualities, message.events,
        )  # fmt: skip
    if isinstance(message, Batch):
        r = message.readings
        return (
            message.gateway_id, message.boot_id, message.seq, message.sent_us, [x.device_id for x in r],
            [x.metric for x in r], [x.time_us for x in r], [x.value for x in r], [int(x.quality) for x in r],
            message.events,
        )  # fmt: skip
    return message


@given(many_readings | batches)
@settings(max_examples=200)
def test_columns_match_the_decoded_batch(batch: Batch) -> None:
    payload = encode(batch)
    assert outcome(decode_columns, payload) == outcome(decode, payload)
    assert decode(encode(batch, Encoding.JSON)) == batch  # JSON takes the object path unchanged


@given(many_readings, st.data())
@settings(max_examples=300)
def test_corrupted_batches_fail_or_pass_exactly_like_decode(batch: Batch, data: st.DataObject) -> None:
    payload = bytearray(encode(batch))
    for _ in range(data.draw(st.integers(1, 4))):
        payload[data.draw(st.integers(0, len(payload) - 1))] = data.draw(st.integers(0, 255))
    assert outcome(decode_columns, bytes(payload)) == outcome(decode, bytes(payload))


def body(rows: Sequence[object], strings: Sequence[object] | None = None) -> bytes:
    table = ["dev-1", "power_w", "W"] if strings is None else list(strings)
    return CBOR_MAGIC + cbor2.dumps([1, "batch", "gw-1", "b1", 3, None, T0, table, rows, []])


GOOD = [0, 1, 0, 12.5, 2, 0]


def test_each_kind_of_bad_reading_gets_the_object_path_error() -> None:
    cases = [
        [*GOOD[:3], float("nan"), *GOOD[4:]],  # non-finite value
        [*GOOD[:3], True, *GOOD[4:]],  # a boolean is not a number
        [True, *GOOD[1:]],  # a boolean is not a string index
        [*GOOD[:2], -1, *GOOD[3:]],  # negative time offset
        [*GOOD[:2], 2**62, *GOOD[3:]],  # beyond 2100
        [*GOOD[:5], 32],  # unknown quality bits
        [*GOOD[:4], 9, 0],  # unit index out of the table
        [0, 2, *GOOD[2:]],  # "W" is not a metric name
        GOOD[:5],  # five items
    ]
    for bad in cases:
        payload = body([GOOD] * 9 + [bad])
        verdict = outcome(decode_columns, payload)
        assert verdict == outcome(decode, payload)
        assert verdict[0] == "error", bad  # type: ignore[index]
    bad_device = body([GOOD] * 10, ["dev/1", "power_w", "W"])
    assert outcome(decode_columns, bad_device) == ("error", outcome(decode, bad_device)[1])  # type: ignore[index]
    assert "device id" in str(outcome(decode_columns, bad_device))


def test_large_batches_come_back_as_columns_and_small_ones_as_batches() -> None:
    rows = tuple(Reading(f"dev-{i % 3}", "power_w", float(i), T0 + i, "W") for i in range(100))
    columns = decode_columns(encode(Batch("gw-1", "b1", 0, rows)))
    assert isinstance(columns, BatchColumns)
    assert columns.devices[:4] == ["dev-0", "dev-1", "dev-2", "dev-0"] and columns.values[-1] == 99.0
    assert isinstance(decode_columns(encode(Batch("gw-1", "b1", 0, rows[:2]))), Batch)
