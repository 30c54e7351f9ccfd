"""TS013 codecs in the QuickJS sandbox: normal use, and limits that hold."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_profiles import Catalog, load_catalog
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
        # Typed arrays live outside the JS heap in some engines: the limit must count them too.
        ("function decodeUplink(i) { var a = []; for (;;) { a.push(new ArrayBuffer(1 << 20)); } }", "memory"),
        (
            "function decodeUplink(i) { return {data: {big: new Float64Array(1 << 26).length}}; }",
            "length|memory",
        ),
        ("function decodeUplink(i) { var s = 'x'; for (;;) { s = s + s; } }", "memory|too long"),
        ("function decodeUplink(i) { return decodeUplink(i); }", "stack"),
        ("function decodeUplink(i) { throw new Error('boom'); }", "boom"),
        ("function decodeUplink(i) { var o = {}; o.self = o; return {data: o}; }", "circular|cycle"),
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


def test_the_time_limit_is_per_call() -> None:
    # Each call spins 60 ms under a 1 s limit: twenty calls together exceed it, one does not.
    source = (
        "var n = 0; function decodeUplink(i) {"
        " var end = Date.now() + 60; while (Date.now() < end) {} n += 1; return {data: {n: n}}; }"
    )
    codec = JsCodec(source, "busy", time_limit_s=1.0)
    started = time.monotonic()
    for expected in range(1, 21):
        assert codec.decode(b"", 1, "2024-01-01T00:00:00Z", {})[0] == {"n": expected}
    assert time.monotonic() - started > 1.0  # the calls did exceed one call's budget together


def test_modern_syntax_and_threads() -> None:
    source = "const decodeUplink = ({bytes}) => ({data: {sum: bytes.reduce((a, b) => a + b, 0) ?? 0}});"
    codec = JsCodec(source, "modern")
    results: list[object] = []
    threads = [
        threading.Thread(target=lambda: results.append(codec.decode(b"\x01\x02", 1, "t", {})[0]))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [{"sum": 3}] * 4


def test_a_codec_without_globals_to_escape_through() -> None:
    codec = JsCodec(
        "function decodeUplink(i) { return {data: {r: typeof require, f: typeof fetch, p: typeof process,"
        " s: typeof setTimeout, x: typeof XMLHttpRequest}}; }",
        "probe",
    )
    assert set(codec.decode(b"", 1, "t", {})[0].values()) == {"undefined"}


def test_encode_errors() -> None:
    for body, message in [
        ("return {bytes: [256], fPort: 1};", "0..255"),
        ("return {bytes: [1], fPort: 0};", "fPort"),
        ("return {bytes: [1], fPort: 1, errors: ['no such action']};", "no such action"),
    ]:
        codec = JsCodec(CODEC + f"function encodeDownlink(input) {{ {body} }}", "enc")
        with pytest.raises(CodecError, match=message):
            codec.encode({"on": True})
    with pytest.raises(CodecError, match="no encodeDownlink"):
        JsCodec("function decodeUplink(i) { return {data: {}}; }", "dec").encode({})


def test_a_codec_that_does_not_load_is_a_codec_error() -> None:
    with pytest.raises(CodecError, match="does not load"):
        JsCodec("function (", "broken")
    with pytest.raises(CodecError, match="no decodeUplink"):
        JsCodec("var x = 1;", "empty")
    with pytest.raises(CodecError, match="interrupted"):
        JsCodec("for (;;) {}", "loops-at-load")


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
    for payload in (b"\x01", bytes(3)):  # a codec error, and a value that is not a number
        (tmp_path / "level.js").write_text(
            CODEC.replace("(input.bytes[0] << 8 | input.bytes[1]) / 10", "'high'")
        )
        broken = load_catalog([tmp_path]).get("custom-level")
        with pytest.raises(CodecError):
            broken.decode_uplink(payload, 1, device_id="d", time_us=1_700_000_000_000_000)


def test_a_reception_time_out_of_range_is_a_codec_error(tmp_path: Path) -> None:
    (tmp_path / "level.js").write_text(CODEC)
    (tmp_path / "level.yaml").write_text(
        "id: custom-level\nvendor: x\nmodel: y\ndocumentation: user codec\n"
        "lorawan:\n  codec: {js: level.js, mapping: {level: distance_mm}}\n"
        "golden:\n  - {name: one, f_port: 1, payload_hex: '0102', expect: {readings: {distance_mm: 25.8}}}\n"
    )
    profile = load_catalog([tmp_path]).get("custom-level")
    for time_us in (10**20, -(10**20)):
        with pytest.raises(CodecError, match=r"reception time|outside"):
            profile.decode_uplink(bytes([0, 100]), 1, device_id="d", time_us=time_us)


# Codecs whose data.v has shapes a mapping cannot always use: arrays, text, NaN, infinity, null.
SHAPES = [
    "b[0]",
    "b",
    "'s' + b[0]",
    "b[0] / (b[1] - b[1])",
    "b.length ? {x: b[0]} : null",
    "-b[0] * 1e308 * 10",
]


@pytest.fixture(scope="module")
def js_catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    directory = tmp_path_factory.mktemp("js-profiles")
    for index, shape in enumerate(SHAPES):
        (directory / f"c{index}.js").write_text(
            "function decodeUplink(i) { var b = i.bytes; if (i.fPort === 13) { return {data: 1}; }"
            f" return {{data: {{v: {shape}}}}}; }}"
        )
        (directory / f"c{index}.yaml").write_text(
            f"id: fuzz-js-{index}\nvendor: x\nmodel: y\ndocumentation: test\n"
            f"lorawan:\n  codec: {{js: c{index}.js, mapping: {{v: distance_mm}}}}\n"
            "golden:\n  - {name: one, f_port: 1, payload_hex: '0102', expect: {readings: {distance_mm: 1}}}\n"
        )
    return load_catalog([directory])


@settings(max_examples=150, deadline=None)
@given(
    shape=st.integers(0, len(SHAPES) - 1),
    payload=st.binary(max_size=16),
    f_port=st.integers(min_value=0, max_value=255),
)
def test_js_codec_results_of_any_shape_only_raise_codec_errors(
    js_catalog: Catalog, shape: int, payload: bytes, f_port: int
) -> None:
    profile = js_catalog.get(f"fuzz-js-{shape}")
    try:
        decoded = profile.decode_uplink(payload, f_port, device_id="d", time_us=1_700_000_000_000_000)
    except CodecError:
        return
    assert all(r.metric == "distance_mm" for r in decoded.readings)
