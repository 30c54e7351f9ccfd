from __future__ import annotations

import contextlib
import json

import cbor2
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from territoire_kernel.errors import ValidationError, WireFormatError
from territoire_kernel.records import Event, Reading
from territoire_kernel.wire import (
    CBOR_MAGIC,
    Batch,
    Encoding,
    Message,
    decode,
    decode_batch,
    detect_encoding,
    encode,
)

from .strategies import batches, messages

T0 = 1_700_000_000_000_000


@given(messages, st.sampled_from(Encoding))
@settings(max_examples=300)
def test_every_message_round_trips_in_both_encodings(message: Message, encoding: Encoding) -> None:
    payload = encode(message, encoding)
    assert detect_encoding(payload) is encoding
    assert decode(payload) == message


@given(batches)
def test_json_and_cbor_decode_to_the_same_batch(batch: Batch) -> None:
    assert decode(encode(batch, Encoding.JSON)) == decode(encode(batch, Encoding.CBOR))


@given(st.binary(max_size=300))
@example(b"")
@example(b"{")
@example(CBOR_MAGIC)
@example(CBOR_MAGIC + b"\x9f" * 5000)
@example(b"[" * 100_000)
def test_random_bytes_raise_only_the_kernel_error(payload: bytes) -> None:
    with contextlib.suppress(WireFormatError):
        decode(payload)


@given(batches, st.data())
@settings(max_examples=200)
def test_corrupted_payloads_raise_only_the_kernel_error(batch: Batch, data: st.DataObject) -> None:
    payload = bytearray(encode(batch, data.draw(st.sampled_from(Encoding))))
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(payload) - 1))
        payload[index] = data.draw(st.integers(0, 255))
    with contextlib.suppress(WireFormatError):
        decode(bytes(payload))


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
        max_leaves=30,
    )
)
def test_arbitrary_json_and_cbor_documents_raise_only_the_kernel_error(doc: object) -> None:
    for payload in (
        json.dumps({"v": 1, "type": "batch", "readings": doc}).encode(),
        CBOR_MAGIC + cbor2.dumps([1, "batch", "gw", "b1", 0, None, 0, ["a"], doc, []]),
    ):
        with contextlib.suppress(WireFormatError):
            decode(payload)


def test_compact_encoding_is_much_smaller_than_json() -> None:
    readings = tuple(
        Reading(f"meter-{i % 10}", "energy_kwh", 1000.0 + i * 0.25, T0 + i * 600_000_000, "kWh")
        for i in range(100)
    )
    batch = Batch("gw-1", "a" * 32, 7, readings)
    assert len(encode(batch, Encoding.CBOR)) * 4 < len(encode(batch, Encoding.JSON))


def test_unknown_version_is_refused_with_a_clear_message() -> None:
    payload = json.dumps({"v": 2, "type": "batch"}).encode()
    with pytest.raises(WireFormatError, match="unsupported wire version 2"):
        decode(payload)


def test_non_finite_values_are_refused() -> None:
    doc = {
        "v": 1,
        "type": "batch",
        "gateway": "gw-1",
        "boot": "b1",
        "seq": 0,
        "readings": [{"device": "d", "metric": "m", "value": float("nan"), "time": "2024-01-01T00:00:00Z"}],
    }
    with pytest.raises(WireFormatError, match="finite"):
        decode(json.dumps(doc).encode())


def test_naive_timestamps_are_refused() -> None:
    doc = {
        "v": 1,
        "type": "batch",
        "gateway": "gw-1",
        "boot": "b1",
        "seq": 0,
        "readings": [{"device": "d", "metric": "m", "value": 1, "time": "2024-01-01T00:00:00"}],
    }
    with pytest.raises(WireFormatError, match="UTC offset"):
        decode(json.dumps(doc).encode())


def test_decode_batch_refuses_other_message_types() -> None:
    from territoire_kernel.wire import CommandResult, CommandStatus

    result = CommandResult("c1", "gw-1", CommandStatus.DONE, T0)
    with pytest.raises(WireFormatError, match="expected a batch"):
        decode_batch(encode(result))


def test_records_validate_their_fields() -> None:
    with pytest.raises(ValidationError, match="device id"):
        Reading("bad/id", "m", 1.0, T0)
    with pytest.raises(ValidationError, match="outside"):
        Reading("d", "m", 1.0, 0)
    with pytest.raises(ValidationError, match="quality"):
        Reading("d", "m", 1.0, T0, quality=64)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="string, number or boolean"):
        Event("d", "bin_emptied", T0, {"k": [1]})  # type: ignore[dict-item]
    with pytest.raises(ValidationError, match="boot id"):
        Batch("gw-1", "not valid!", 0)
