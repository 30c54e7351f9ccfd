"""TS013 codecs in the QuickJS sandbox: normal use, and limits that hold."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware_profiles import load_catalog
from firmware_profiles.jscodec import JsCodec
from territoire_kernel.errors import CodecError

CODEC = """
function decodeUplink(input) {
  if (input.bytes.length < 2) { return {data: {}, errors: ["need 2 bytes"]}; }
  return {data: {level: (input.bytes[0] << 8 | input.bytes[1]) / 10, port: input.fPort}, warnings: ["w"]};
}
function encodeDownlink(input) { return {bytes: [1, input.data.on ? 1 : 0], fPort: 5}; }
"""


def test_decode_and_encode() -> None:
    codec = JsCodec(CODEC, "test")
    data, warnings = codec.decode(bytes([0x01, 0x02]), 7, "2024-01-01T00:00:00Z", {})
    assert data == {"level": 25.8, "port": 7}
    assert warnings == ["w"]
    assert codec.encode({"on": True}) == (5, bytes([1, 1]))


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("function decodeUplink(i) { while (true) {} }", "interrupted"),
        (
            "function decodeUplink(i) { var a = []; while (true) { a.push(new Array(100000).fill(1)); } }",
            "memory",
        ),
        ("function decodeUplink(i) { throw new Error('boom'); }", "boom"),
        ("function decodeUplink(i) { return 42; }", "must return an object"),
        (CODEC, "need 2 bytes"),
    ],
)
def test_runaway_or_failing_codecs_raise_codec_errors(source: str, message: str) -> None:
    codec = JsCodec(source, "test")
    with pytest.raises(CodecError, match=message):
        codec.decode(b"\x01", 1, "2024-01-01T00:00:00Z", {})
    # The sandbox stays usable after a failure.
    if source == CODEC:
        assert codec.decode(b"\x00\x0a", 1, "2024-01-01T00:00:00Z", {})[0]["level"] == 1.0


def test_a_codec_that_does_not_load_is_a_codec_error() -> None:
    with pytest.raises(CodecError, match="does not load"):
        JsCodec("function (", "broken")
    with pytest.raises(CodecError, match="no decodeUplink"):
        JsCodec("var x = 1;", "empty")


def test_a_profile_can_use_a_js_codec(tmp_path: Path) -> None:
    (tmp_path / "level.js").write_text(CODEC)
    (tmp_path / "level.yaml").write_text(
        "id: custom-level\nvendor: x\nmodel: y\ndocumentation: user codec\n"
        "lorawan:\n  codec: {js: level.js, mapping: {level: distance_mm}}\n"
        "golden:\n  - {name: one, f_port: 1, payload_hex: '0102', expect: {readings: {distance_mm: 25.8}}}\n"
    )
    profile = load_catalog([tmp_path]).get("custom-level")
    decoded = profile.decode_uplink(bytes([0, 100]), 1, device_id="d", time_us=1_700_000_000_000_000)
    assert [(r.metric, r.value, r.unit) for r in decoded.readings] == [("distance_mm", 10.0, "mm")]
    assert profile.encode_downlink("switch", {"on": False}) == (5, bytes([1, 0]))
