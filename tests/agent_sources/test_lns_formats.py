"""ChirpStack v4 / TTS v3 parsers and downlink builders, with fuzzing."""

from __future__ import annotations

import base64
import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_profiles.lns import (
    chirpstack_downlink,
    link_quality_readings,
    parse_chirpstack_uplink,
    parse_rfc3339,
    parse_tts_uplink,
    tts_downlink,
)
from simulators.devices.lns_events import Gateway, LnsDevice, chirpstack_uplink, tts_uplink
from territoire_kernel.errors import CodecError

T0 = 1_732_330_800_123_456


def _device() -> LnsDevice:
    return LnsDevice(
        "A84041000181C0DE",
        "ldds75-mairie",
        gateways=[Gateway("0016c001f153a14c", -110, -3.5), Gateway("0016c001f153a14d", -87, 7.25)],
    )


def test_chirpstack_uplink_is_parsed() -> None:
    topic, body = chirpstack_uplink(_device(), 2, b"\x0b\x45\x05\xdc", T0)
    up = parse_chirpstack_uplink(topic, body)
    assert up.source == "chirpstack"
    assert up.dev_eui == up.device_id == "a84041000181c0de"
    assert (up.f_port, up.f_cnt, up.payload) == (2, 1, b"\x0b\x45\x05\xdc")
    assert up.time_us == T0
    assert (up.rssi_dbm, up.snr_db, up.gateway_count) == (-87.0, 7.25, 2)
    assert up.dedup_id == json.loads(body)["deduplicationId"]


def test_tts_uplink_is_parsed() -> None:
    topic, body = tts_uplink(_device(), 2, b"\x01\x02", T0, application_id="capteurs", tenant_id="ttn")
    up = parse_tts_uplink(topic, body)
    assert (up.source, up.device_id, up.application_id, up.tenant_id) == (
        "tts",
        "ldds75-mairie",
        "capteurs",
        "ttn",
    )
    assert up.dev_eui == "a84041000181c0de"
    assert (up.payload, up.f_port, up.f_cnt, up.time_us) == (b"\x01\x02", 2, 1, T0)
    assert up.dedup_id.startswith("as:up:")
    assert up.gateway_count == 2 and up.rssi_dbm == -87.0


def test_zero_values_omitted_by_protobuf_json_default_to_zero() -> None:
    topic, body = chirpstack_uplink(_device(), 2, b"", T0)
    doc = json.loads(body)
    del doc["fCnt"], doc["fPort"], doc["data"], doc["rxInfo"]
    up = parse_chirpstack_uplink(topic, json.dumps(doc).encode())
    assert (up.f_cnt, up.f_port, up.payload, up.gateway_count, up.rssi_dbm) == (0, 0, b"", 0, None)
    assert link_quality_readings(up) == []


def test_mismatched_topic_is_rejected() -> None:
    _, body = chirpstack_uplink(_device(), 2, b"\x00", T0)
    with pytest.raises(CodecError, match="topic names device"):
        parse_chirpstack_uplink("application/x/device/0000000000000001/event/up", body)
    with pytest.raises(CodecError):
        parse_chirpstack_uplink("application/x/device/a84041000181c0de/event/join", body)
    topic, body = tts_uplink(_device(), 2, b"\x00", T0, application_id="app")
    with pytest.raises(CodecError):
        parse_tts_uplink(topic.replace("ldds75-mairie", "other"), body)


def test_link_quality_readings() -> None:
    topic, body = chirpstack_uplink(_device(), 2, b"\x00", T0)
    readings = link_quality_readings(parse_chirpstack_uplink(topic, body), "bac-12")
    assert [(r.device_id, r.metric, r.value, r.unit, r.time_us) for r in readings] == [
        ("bac-12", "rssi_dbm", -87.0, "dBm", T0),
        ("bac-12", "snr_db", 7.25, "dB", T0),
    ]


def test_rfc3339_variants() -> None:
    assert parse_rfc3339("2024-11-23T03:00:00.123456789+00:00") == parse_rfc3339(
        "2024-11-23T03:00:00.123456Z"
    )
    assert parse_rfc3339("2024-11-23T04:00:00+01:00") == parse_rfc3339("2024-11-23T03:00:00Z")
    for bad in ("2024-13-01T00:00:00Z", "yesterday", "2024-11-23T03:00:00", "1900-01-01T00:00:00Z"):
        with pytest.raises(CodecError):
            parse_rfc3339(bad)


def test_downlink_builders() -> None:
    topic, body = chirpstack_downlink("app-uuid", "A84041000181C0DE", 11, b"\x03\x01\x00")
    assert topic == "application/app-uuid/device/a84041000181c0de/command/down"
    doc = json.loads(body)
    assert doc == {"devEui": "a84041000181c0de", "confirmed": False, "fPort": 11, "data": "AwEA"}
    topic, body = tts_downlink("capteurs", "lt-22222", 11, b"\x03\x01\x00", tenant_id="ttn")
    assert topic == "v3/capteurs@ttn/devices/lt-22222/down/push"
    item = json.loads(body)["downlinks"][0]
    assert (item["f_port"], base64.b64decode(item["frm_payload"]), item["priority"]) == (
        11,
        b"\x03\x01\x00",
        "NORMAL",
    )
    with pytest.raises(CodecError):
        chirpstack_downlink("a", "a84041000181c0de", 0, b"")


# --------------------------------------------------------------------------- fuzzing

_json_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=20)
_json = st.recursive(
    _json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=20,
)


def _mutate(data: st.DataObject, doc: dict[str, object]) -> dict[str, object]:
    """The real document with one key, maybe nested, replaced by arbitrary JSON or removed."""
    result: dict[str, object] = json.loads(json.dumps(doc))
    target = result
    for _ in range(data.draw(st.integers(0, 2))):
        nested = [k for k, v in target.items() if isinstance(v, dict) and v]
        if not nested:
            break
        target = target[data.draw(st.sampled_from(sorted(nested)))]  # type: ignore[assignment]
    key = data.draw(st.sampled_from(sorted(target)))
    if data.draw(st.booleans()):
        del target[key]
    else:
        target[key] = data.draw(_json)
    return result


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | _json.map(lambda d: json.dumps(d).encode()), st.sampled_from([0, 1]))
def test_parsers_raise_only_codec_error_on_garbage(payload: bytes, which: int) -> None:
    topics = ["application/a/device/a84041000181c0de/event/up", "v3/app@ttn/devices/d/up"]
    parser = (parse_chirpstack_uplink, parse_tts_uplink)[which]
    with contextlib.suppress(CodecError):
        parser(topics[which], payload)


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_parsers_raise_only_codec_error_on_mutated_events(data: st.DataObject) -> None:
    device = _device()
    if data.draw(st.booleans()):
        topic, body = chirpstack_uplink(device, 2, b"\x01", T0)
        parser = parse_chirpstack_uplink
    else:
        topic, body = tts_uplink(device, 2, b"\x01", T0, application_id="app")
        parser = parse_tts_uplink
    mutated = _mutate(data, json.loads(body))
    try:
        up = parser(topic, json.dumps(mutated).encode())
    except CodecError:
        return
    link_quality_readings(up)  # whatever parses must make valid readings
