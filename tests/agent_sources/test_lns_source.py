"""LNS source against a real Mosquitto: ChirpStack and TTS events in, readings and downlinks out."""

from __future__ import annotations

import base64
import json
import queue
import time
import uuid
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.sources.base import CommandError, Source
from edge_agent.sources.config import build_source, parse_source
from simulators.devices.lns_events import APPLICATION_UUID, LnsDevice, chirpstack_uplink, tts_uplink
from simulators.devices.lorawan_encoders import dragino_ldds75
from territoire.services import MosquittoServer

from .fakes import FakeLoraCatalog
from .helpers import Collector, stamper

T0 = 1_732_330_800_000_000
BIN_EUI = "A84041000181C0DE"
RELAY_EUI = "A84041000181C0DF"


class Client:
    """A plain test client that publishes events and records what the source sends."""

    def __init__(self, broker: MosquittoServer, subscribe: str):
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}")
        self.client.on_message = lambda _c, _u, m: self.messages.put(m)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.client.subscribe(subscribe, 1)

    def publish(self, topic: str, body: bytes) -> None:
        self.client.publish(topic, body, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _start(doc: dict[str, Any], sink: Collector) -> Source:
    source = build_source(parse_source(doc), stamper=stamper, catalog=FakeLoraCatalog())
    source.start(sink)
    deadline = time.monotonic() + 5
    while not source.health()["subscribed"]:
        assert time.monotonic() < deadline, "source never subscribed"
        time.sleep(0.02)
    return source


@pytest.fixture
def sink() -> Collector:
    return Collector()


def _broker(broker: MosquittoServer) -> dict[str, Any]:
    return {"host": broker.host, "port": broker.port}


def test_chirpstack_uplinks_and_downlink(mqtt_broker: MosquittoServer, sink: Collector) -> None:
    doc = {
        "type": "chirpstack",
        "name": "chirpstack-sivom",
        "broker": _broker(mqtt_broker),
        "application_id": APPLICATION_UUID,
        "devices": [
            {"dev_eui": BIN_EUI, "device_id": "bac-ecole", "profile": "dragino-ldds75"},
            {"dev_eui": RELAY_EUI, "device_id": "armoire-2", "profile": "dragino-lt22222"},
        ],
    }
    client = Client(mqtt_broker, "application/+/device/+/command/down")
    source = _start(doc, sink)
    try:
        device = LnsDevice(BIN_EUI, "bac ecole")
        f_port, payload = dragino_ldds75(distance_mm=1234, battery_mv=3312)
        topic, body = chirpstack_uplink(device, f_port, payload, T0)
        client.publish(topic, body)
        client.publish(topic, body)  # redelivered: must not count twice
        client.publish(topic, b"{not json")
        client.publish(*chirpstack_uplink(LnsDevice("0000000000000001", "x"), 2, payload, T0))
        client.publish(*chirpstack_uplink(device, f_port, b"\x01", T0 + 1))  # undecodable payload
        sink.wait_for(lambda s: len(s.values("bac-ecole", "rssi_dbm")) >= 2)
        time.sleep(0.2)  # let any wrong extra delivery arrive
        assert sink.values("bac-ecole", "distance_mm") == [1234.0]
        assert sink.values("bac-ecole", "battery_v") == [pytest.approx(3.312)]
        assert sink.values("bac-ecole", "rssi_dbm") == [-97.0, -97.0]
        times = {r.time_us for _, r in sink.readings if r.metric == "distance_mm"}
        assert times == {T0}  # the network's time, not the arrival time
        health = source.health()
        assert (health["duplicates"], health["malformed"], health["unknown_device"]) == (1, 1, 1)
        assert health["devices"]["bac-ecole"]["errors"] == 1  # type: ignore[index]

        detail = source.execute("armoire-2", "switch", {"on": True}).result(timeout=2)
        assert "FPort 1" in detail
        message = client.messages.get(timeout=5)
        assert message.topic == f"application/{APPLICATION_UUID}/device/{RELAY_EUI.lower()}/command/down"
        down = json.loads(message.payload)
        assert (down["devEui"], down["fPort"], base64.b64decode(down["data"])) == (
            RELAY_EUI.lower(),
            1,
            b"\x03\x01\x11",
        )
        with pytest.raises(CommandError, match="no commands"):
            source.execute("bac-ecole", "switch", {"on": True}).result(timeout=2)
    finally:
        source.stop()
        client.close()


def test_tts_uplinks_and_downlink(mqtt_broker: MosquittoServer, sink: Collector) -> None:
    doc = {
        "type": "tts",
        "name": "ttn",
        "broker": _broker(mqtt_broker),
        "application_id": "capteurs-commune",
        "tenant_id": "ttn",
        "devices": [
            {"lns_device_id": "ldds75-ecole", "device_id": "bac-ecole", "profile": "dragino-ldds75"},
            {"dev_eui": RELAY_EUI, "device_id": "armoire-2", "profile": "dragino-lt22222"},
        ],
    }
    client = Client(mqtt_broker, "v3/+/devices/+/down/push")
    source = _start(doc, sink)
    try:
        with pytest.raises(CommandError, match="unknown until a first uplink"):
            source.execute("armoire-2", "switch", {"on": False}).result(timeout=2)
        bin_device, relay = LnsDevice(BIN_EUI, "ldds75-ecole"), LnsDevice(RELAY_EUI, "lt-armoire-2")
        for distance in (800, 640):
            client.publish(
                *tts_uplink(bin_device, *dragino_ldds75(distance), T0, application_id="capteurs-commune")
            )
        client.publish(*tts_uplink(relay, 2, bytes(11), T0, application_id="capteurs-commune"))
        sink.wait_for(
            lambda s: (
                len(s.values("bac-ecole", "distance_mm")) == 2 and bool(s.values("armoire-2", "rssi_dbm"))
            )
        )
        assert sink.values("bac-ecole", "distance_mm") == [800.0, 640.0]
        source.execute("armoire-2", "switch", {"on": False}).result(timeout=2)
        message = client.messages.get(timeout=5)
        assert message.topic == "v3/capteurs-commune@ttn/devices/lt-armoire-2/down/push"
        item = json.loads(message.payload)["downlinks"][0]
        assert (item["f_port"], base64.b64decode(item["frm_payload"])) == (1, b"\x03\x00\x11")
    finally:
        source.stop()
        client.close()


def test_source_reconnects_after_broker_restart(mqtt_broker: MosquittoServer, sink: Collector) -> None:
    doc = {
        "type": "chirpstack",
        "name": "cs",
        "broker": _broker(mqtt_broker),
        "devices": [{"dev_eui": BIN_EUI, "device_id": "bac-ecole", "profile": "dragino-ldds75"}],
    }
    source = _start(doc, sink)
    try:
        mqtt_broker.restart()
        deadline = time.monotonic() + 15
        while not source.health()["subscribed"]:
            assert time.monotonic() < deadline, "no resubscription after the broker came back"
            time.sleep(0.05)
        client = Client(mqtt_broker, "unused/topic")
        try:
            client.publish(*chirpstack_uplink(LnsDevice(BIN_EUI, "b"), *dragino_ldds75(321), T0))
            sink.wait_for(lambda s: s.values("bac-ecole", "distance_mm") == [321.0])
        finally:
            client.close()
    finally:
        source.stop()
