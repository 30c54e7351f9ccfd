"""Native codecs beyond the golden cases: downlink limits, events' attributes, profile plumbing."""

from __future__ import annotations

import pytest

from firmware_profiles import load_catalog
from territoire_kernel.errors import CodecError
from territoire_kernel.records import Quality

CATALOG = load_catalog()
T0 = 1_700_000_000_000_000


@pytest.mark.parametrize(
    "params",
    [
        {"relay": 3, "on": True}, {"relay": True, "on": True}, {"relay": 1}, {"relay": 1, "on": 1},
        {"relay": 1, "on": True, "duration_s": 0}, {"relay": 1, "on": True, "duration_s": 66},
        {"relay": 1, "on": True, "duration_s": "5"}, {"relay": 1, "on": True, "duration_s": float("nan")},
        {"relay": 1, "on": True, "colour": "red"},
    ],
)  # fmt: skip
def test_lt22222_refuses_bad_relay_commands(params: dict[str, object]) -> None:
    with pytest.raises(CodecError):
        CATALOG.get("dragino-lt22222").encode_downlink("set_relay", params)  # type: ignore[arg-type]


def test_lt22222_timer_bounds_and_unknown_actions() -> None:
    profile = CATALOG.get("dragino-lt22222")
    assert profile.encode_downlink("set_relay", {"relay": 2, "on": False, "duration_s": 65.535}) == (
        1, bytes.fromhex("050020ffff"),
    )  # fmt: skip
    with pytest.raises(CodecError, match=r"65\.535"):
        profile.encode_downlink("set_relay", {"relay": 1, "on": True, "duration_s": 3600})
    with pytest.raises(CodecError, match="available"):
        profile.encode_downlink("reboot", {})


def test_profiles_without_downlinks_say_so() -> None:
    with pytest.raises(CodecError, match="no downlink"):
        CATALOG.get("dragino-ldds75").encode_downlink("switch", {"on": True})
    with pytest.raises(CodecError, match="Modbus"):
        CATALOG.get("eastron-sdm630").decode_uplink(b"\x00", 1, device_id="d", time_us=T0)


def test_records_carry_device_time_units_and_quality() -> None:
    decoded = CATALOG.get("dragino-ldds75").decode_uplink(
        bytes.fromhex("0ce4001400000001"), 2, device_id="bac-12", time_us=T0
    )
    by_metric = {r.metric: r for r in decoded.readings}
    assert by_metric["distance_mm"].quality == Quality.OUT_OF_RANGE
    assert by_metric["battery_v"].unit == "V" and by_metric["battery_v"].quality == Quality.GOOD
    assert {(r.device_id, r.time_us) for r in decoded.readings} == {("bac-12", T0)}


def test_event_attributes() -> None:
    nwave = CATALOG.get("nwave-nps405").decode_uplink(bytes([0x74 << 1 | 1]), 1, device_id="p", time_us=T0)
    assert nwave.events[0].attrs == {"previous_state_min": 220}  # 90 + (116 - 90) * 5
    overflow = CATALOG.get("nwave-nps405").decode_uplink(bytes([0xFE]), 1, device_id="p", time_us=T0)
    assert overflow.events[0].kind == "car_left" and overflow.events[0].attrs == {}
    startup = bytes(12) + bytes([1, 4, 2, 1, 0])
    bosch = CATALOG.get("bosch-tps110").decode_uplink(startup, 3, device_id="p", time_us=T0)
    assert bosch.events[0].attrs == {"firmware": "1.4.2", "reset_cause": "watchdog"}


def test_em300_di_counter_of_firmware_1_3_is_recovered_and_flagged_when_inexact() -> None:
    profile = CATALOG.get("milesight-em300-di")
    exact = profile.decode_uplink(bytes.fromhex("05e105000a000040fa43"), 85, device_id="c", time_us=T0)
    assert [(r.metric, r.value, r.quality) for r in exact.readings] == [("pulse_count", 1001.0, Quality.GOOD)]
    # 1.0 unit at 3 units per pulse is a third of a pulse: rounded, and flagged.
    inexact = profile.decode_uplink(bytes.fromhex("05e11e000a000000803f"), 85, device_id="c", time_us=T0)
    assert [(r.value, r.quality) for r in inexact.readings] == [(0.0, Quality.ESTIMATED)]


def test_ldds75_temperature_does_not_depend_on_the_ultrasonic_flag() -> None:
    profile = CATALOG.get("dragino-ldds75")
    decoded = profile.decode_uplink(bytes.fromhex("0ce404d200ff3f00"), 2, device_id="b", time_us=T0)
    assert {r.metric: r.value for r in decoded.readings}["temperature_c"] == pytest.approx(-19.3)


def test_nwave_vendor_examples_attributes() -> None:
    profile = CATALOG.get("nwave-nps405")
    status = profile.decode_uplink(bytes([0x95]), 1, device_id="p", time_us=T0)
    assert status.events[0].attrs == {"previous_state_min": 74}
    startup = profile.decode_uplink(bytes.fromhex("0204090200"), 3, device_id="p", time_us=T0)
    assert startup.events[0].attrs == {"firmware": "2.4.9", "reset_cause": "power on"}
