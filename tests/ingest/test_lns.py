"""Direct LNS subscription: ChirpStack v4 and TTS v3 uplinks, de-duplicated, decoded by profile."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from firmware_profiles.lns import Uplink
from ingest.lns import make_lns_handler
from ingest.pipeline import Delivery
from ingest.writer import Writer
from simulators.devices.lns_events import Gateway, LnsDevice, chirpstack_uplink, tts_uplink
from territoire.services import MosquittoServer
from territoire_kernel.errors import CodecError
from territoire_kernel.records import Event, Reading

from .helpers import T0, TENANT, Publisher, count, query, wait_for
from .test_service import config, running_service

T0_DT = datetime(2025, 1, 1, tzinfo=UTC)
ONE_MINUTE = timedelta(minutes=1)
SENSOR = LnsDevice("A84041000181C0DE", "ldds75-mairie", gateways=[Gateway("0016c001f153a14c", -97, 4.5)])


def distance_decoder(profile: str, uplink: Uplink) -> list[Reading]:
    if profile != "ldds75":
        raise CodecError(f"no such profile {profile!r}")
    if len(uplink.payload) != 4:
        raise CodecError("LDDS75 frames are 4 bytes")
    mm = int.from_bytes(uplink.payload[2:4], "big")
    return [Reading(uplink.device_id, "distance_mm", float(mm), uplink.time_us, "mm")]


def add_devices(dsn: str, profile: str | None) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "INSERT INTO devices (id, tenant_id, profile) VALUES ('a84041000181c0de', %s, %s), "
            "('ldds75-mairie', %s, %s)",
            (TENANT, profile, TENANT, profile),
        )


def test_uplinks_are_decoded_and_deduplicated(plain_db: str) -> None:
    add_devices(plain_db, "ldds75")
    cs_topic, cs_body = chirpstack_uplink(SENSOR, 2, b"\x0b\x45\x05\xdc", T0)
    tts_topic, tts_body = tts_uplink(
        SENSOR, 2, b"\x0b\x45\x03\x20", T0 + 60_000_000, application_id="capteurs"
    )
    with Writer(plain_db, lns_handler=make_lns_handler(distance_decoder)) as writer:
        first = writer.write(
            [Delivery(cs_topic, cs_body), Delivery(cs_topic, cs_body), Delivery(tts_topic, tts_body)]
        )
        again = writer.write([Delivery(tts_topic, tts_body)])
    assert (first.readings, first.duplicate_batches, again.readings, again.duplicate_batches) == (6, 1, 0, 1)
    rows = query(plain_db, "SELECT device_id, metric, value FROM readings ORDER BY time, metric")
    assert rows == [
        ("a84041000181c0de", "distance_mm", 1500.0),
        ("a84041000181c0de", "rssi_dbm", -97.0),
        ("a84041000181c0de", "snr_db", 4.5),
        ("ldds75-mairie", "distance_mm", 800.0),
        ("ldds75-mairie", "rssi_dbm", -97.0),
        ("ldds75-mairie", "snr_db", 4.5),
    ]
    assert count(plain_db, "lns_uplinks") == 2


def test_events_decoded_from_uplinks_are_stored_once(plain_db: str) -> None:
    def fill_decoder(profile: str, uplink: Uplink) -> list[Reading | Event]:
        level = float(uplink.payload[0])
        # the decoder names the device by DevEUI; ingest stores it under the registered id
        return [
            Reading(uplink.dev_eui, "fill_level_pct", level, uplink.time_us, "%"),
            Event(uplink.dev_eui, "bin_emptied", uplink.time_us, {"level_before": 87, "manual": False}),
        ]

    add_devices(plain_db, "bin-sensor")
    cs_topic, cs_body = chirpstack_uplink(SENSOR, 2, b"\x05", T0)
    tts_topic, tts_body = tts_uplink(SENSOR, 2, b"\x03", T0 + 60_000_000, application_id="dechets")
    with Writer(plain_db, lns_handler=make_lns_handler(fill_decoder)) as writer:
        first = writer.write([Delivery(cs_topic, cs_body), Delivery(cs_topic, cs_body)])
        again = writer.write([Delivery(cs_topic, cs_body), Delivery(tts_topic, tts_body)])
    assert (first.events, first.readings, again.events, again.duplicate_batches) == (1, 3, 1, 1)
    assert query(plain_db, "SELECT device_id, kind, attrs, tenant_id, time FROM events ORDER BY time") == [
        ("a84041000181c0de", "bin_emptied", {"level_before": 87, "manual": False}, TENANT, T0_DT),
        ("ldds75-mairie", "bin_emptied", {"level_before": 87, "manual": False}, TENANT, T0_DT + ONE_MINUTE),
    ]
    assert count(plain_db, "readings") == 6


def test_undecodable_or_unknown_uplinks_become_dead_letters_and_replay(plain_db: str) -> None:
    from ingest.deadletters import replay

    cs_topic, cs_body = chirpstack_uplink(SENSOR, 2, b"\x01", T0)
    handler = make_lns_handler(distance_decoder)
    with Writer(plain_db, lns_handler=handler) as writer:
        writer.write([Delivery(cs_topic, cs_body), Delivery("application/1/device/x/event/up", b"{}")])
        add_devices(plain_db, "ldds75")
        writer.registry.forget_misses()
        writer.write([Delivery(cs_topic, cs_body)])
    reasons = [r[0] for r in query(plain_db, "SELECT reason FROM dead_letters ORDER BY id")]
    assert reasons[0] == "unknown device 'a84041000181c0de' (DevEUI a84041000181c0de) from chirpstack"
    assert "deviceInfo" in reasons[1]
    assert (
        reasons[2]
        == "profile 'ldds75' cannot decode the uplink of 'a84041000181c0de': LDDS75 frames are 4 bytes"
    )
    # The profile is fixed (here: the device gets none), then the uplinks are replayed.
    with psycopg.connect(plain_db) as conn:
        conn.execute("UPDATE devices SET profile = NULL")
    outcomes = replay(plain_db, lns_handler=handler)
    assert [o.ok for o in outcomes] == [True, False, True]
    assert count(plain_db, "readings") == 2  # link quality once, despite two dead letters of one uplink


def test_service_subscribes_to_chirpstack_when_asked(plain_db: str, mqtt_broker: MosquittoServer) -> None:
    add_devices(plain_db, None)
    cfg = config(plain_db, mqtt_broker, lns=("chirpstack", "tts"))
    assert cfg.topics()[-2:] == ["application/+/device/+/event/up", "v3/+/devices/+/up"]
    with running_service(cfg, lns_handler=make_lns_handler(None)):
        publisher = Publisher(mqtt_broker.port, f"pub-{uuid.uuid4().hex[:6]}")
        try:
            publisher.publish(*chirpstack_uplink(SENSOR, 2, b"\x0b\x45\x05\xdc", T0))
            publisher.publish(*tts_uplink(SENSOR, 2, b"\x0b\x45\x05\xdc", T0 + 1, application_id="app"))
            wait_for(lambda: count(plain_db, "readings") == 4, what="link-quality readings")
        finally:
            publisher.close()


@pytest.mark.parametrize("profile", ["ldds75"])
def test_device_with_profile_but_no_decoder_is_dead_lettered(plain_db: str, profile: str) -> None:
    add_devices(plain_db, profile)
    with Writer(plain_db, lns_handler=make_lns_handler(None)) as writer:
        writer.write([Delivery(*chirpstack_uplink(SENSOR, 2, b"\x0b\x45\x05\xdc", T0))])
    assert query(plain_db, "SELECT reason FROM dead_letters") == [
        ("device 'a84041000181c0de' uses profile 'ldds75' but no profile decoder is available",)
    ]


def test_the_real_profile_catalogue_decodes_uplinks(plain_db: str) -> None:
    from ingest.lns import firmware_profile_decoder
    from simulators.devices import lorawan_encoders

    decoder = firmware_profile_decoder()
    assert decoder is not None
    add_devices(plain_db, "dragino-ldds75")
    f_port, payload = lorawan_encoders.dragino_ldds75(1234, battery_mv=3300)
    cs_topic, cs_body = chirpstack_uplink(SENSOR, f_port, payload, T0)
    bad_topic, bad_body = chirpstack_uplink(SENSOR, f_port, payload[:3], T0 + 60_000_000)
    with Writer(plain_db, lns_handler=make_lns_handler(decoder)) as writer:
        writer.write([Delivery(cs_topic, cs_body), Delivery(bad_topic, bad_body)])
    rows = query(plain_db, "SELECT metric, value FROM readings WHERE metric IN ('distance_mm', 'battery_v')")
    assert sorted(rows) == [("battery_v", 3.3), ("distance_mm", 1234.0)]
    (reason,) = query(plain_db, "SELECT reason FROM dead_letters")[0]
    assert "LDDS75 uplink: 3 bytes, 8 expected" in reason
