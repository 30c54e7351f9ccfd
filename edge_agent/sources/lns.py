"""LoRaWAN through a network server: ChirpStack v4 or The Things Stack v3 over MQTT.

The source keeps its own MQTT connection to the LNS broker (paho runs the
network thread and reconnects by itself), decodes each uplink with the
device's profile and sinks the readings plus RSSI/SNR. Commands become
downlinks built by the profile's encoder.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from firmware_profiles.lns import (
    Uplink,
    chirpstack_downlink,
    link_quality_readings,
    parse_chirpstack_uplink,
    parse_tts_uplink,
    tts_downlink,
)
from territoire_kernel.errors import TerritoireError
from territoire_kernel.records import AttrValue

from .base import CommandError, Sink, Source, Stamper
from .config import ChirpstackConfig, LnsDeviceConfig, TtsConfig

log = logging.getLogger(__name__)
DEDUP_MEMORY = 4096


@dataclass
class _DeviceState:
    config: LnsDeviceConfig
    profile: Any
    lns_device_id: str | None
    uplinks: int = 0
    errors: int = 0
    last_uplink_us: int | None = None
    last_f_cnt: int | None = None
    last_error: str = ""


class LnsSource(Source):
    def __init__(self, config: ChirpstackConfig | TtsConfig, profiles: Mapping[str, Any], stamper: Stamper):
        self.name = config.name
        self.config = config
        self.stamper = stamper  # LNS times come from the network server; kept for the contract
        self._devices = [_DeviceState(d, profiles[d.profile], d.lns_device_id) for d in config.devices]
        self._by_eui = {d.config.dev_eui.lower(): d for d in self._devices if d.config.dev_eui}
        self._by_lns_id = {d.lns_device_id: d for d in self._devices if d.lns_device_id}
        self._by_id = {d.config.device_id: d for d in self._devices}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self._sink: Sink | None = None
        self._connected = False
        self._subscribed = False
        self.counters = {"uplinks": 0, "decoded": 0, "unknown_device": 0, "malformed": 0, "duplicates": 0}
        self._parse: Callable[[str, bytes], Uplink]
        if isinstance(config, ChirpstackConfig):
            self.topic = f"application/{config.application_id}/device/+/event/up"
            self._parse, self._qos = parse_chirpstack_uplink, 1
        else:
            app = f"{config.application_id}@{config.tenant_id}" if config.tenant_id else config.application_id
            self.topic = f"v3/{app}/devices/+/up"
            self._parse, self._qos = parse_tts_uplink, 0  # TTS's MQTT server speaks QoS 0 only
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"territoire-{config.name}-{uuid.uuid4().hex[:8]}"
        )
        broker = config.broker
        if broker.username is not None:
            self._client.username_pw_set(broker.username, broker.password)
        if broker.tls:
            self._client.tls_set(ca_certs=broker.ca_file)
        self._client.reconnect_delay_set(1, 30)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe

    # ------------------------------------------------------------------ Source

    def start(self, sink: Sink) -> None:
        self._sink = sink
        broker = self.config.broker
        self._client.connect_async(broker.host, broker.port, keepalive=broker.keepalive_s)
        self._client.loop_start()

    def stop(self, timeout: float = 5.0) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def owns(self, device_id: str) -> bool:
        return device_id in self._by_id

    def execute(self, device_id: str, action: str, params: Mapping[str, AttrValue]) -> Future[str]:
        future: Future[str] = Future()
        try:
            future.set_result(self._downlink(device_id, action, params))
        except CommandError as exc:
            future.set_exception(exc)
        return future

    def _downlink(self, device_id: str, action: str, params: Mapping[str, AttrValue]) -> str:
        state = self._by_id.get(device_id)
        if state is None:
            raise CommandError(f"{self.name} has no device {device_id!r}")
        try:
            f_port, payload = state.profile.encode_downlink(action, dict(params))
            if isinstance(self.config, ChirpstackConfig):
                if not state.config.dev_eui:
                    raise CommandError(f"{device_id}: a ChirpStack downlink needs the dev_eui in the config")
                app = self.config.application_id
                if app == "+":
                    raise CommandError(
                        f"{self.name}: set application_id to send downlinks through ChirpStack"
                    )
                topic, body = chirpstack_downlink(app, state.config.dev_eui, f_port, payload)
            else:
                if not state.lns_device_id:
                    raise CommandError(f"{device_id}: its TTS device id is unknown until a first uplink")
                topic, body = tts_downlink(
                    self.config.application_id,
                    state.lns_device_id,
                    f_port,
                    payload,
                    tenant_id=self.config.tenant_id,
                )
        except CommandError:
            raise
        except (TerritoireError, ValueError, KeyError, TypeError) as exc:
            raise CommandError(f"{device_id}: cannot encode {action!r}: {exc}") from None
        info = self._client.publish(topic, body, qos=self._qos)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise CommandError(f"{self.name}: LNS broker not reachable ({mqtt.error_string(info.rc)})")
        return f"{action} queued as downlink to {device_id} (FPort {f_port}, {len(payload)} bytes)"

    def health(self) -> dict[str, object]:
        with self._lock:
            return {
                "name": self.name,
                "connected": self._connected,
                "subscribed": self._subscribed,
                "topic": self.topic,
                **self.counters,
                "devices": {
                    d.config.device_id: {
                        "uplinks": d.uplinks,
                        "errors": d.errors,
                        "last_uplink_us": d.last_uplink_us,
                        "last_f_cnt": d.last_f_cnt,
                        "last_error": d.last_error,
                    }
                    for d in self._devices
                },
            }

    # ------------------------------------------------------------------ MQTT callbacks

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.warning("%s: LNS broker refused the connection: %s", self.name, reason)
            return
        self._connected = True
        log.info("%s: connected to the LNS broker, subscribing to %s", self.name, self.topic)
        client.subscribe(self.topic, qos=self._qos)

    def _on_subscribe(self, _client: mqtt.Client, _userdata: Any, _mid: int, codes: Any, _props: Any) -> None:
        self._subscribed = all(not code.is_failure for code in codes)
        if not self._subscribed:
            log.warning("%s: the LNS broker refused the subscription to %s", self.name, self.topic)

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if self._connected:
            log.warning("%s: disconnected from the LNS broker: %s", self.name, reason)
        self._connected = self._subscribed = False

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            self.handle(message.topic, bytes(message.payload))
        except Exception:  # paho's thread must survive any fault of ours or of the sink
            log.exception("%s: failed to handle a message on %s", self.name, message.topic)

    def handle(self, topic: str, payload: bytes) -> None:
        """Parse, match, decode and sink one uplink event."""
        with self._lock:
            self.counters["uplinks"] += 1
        try:
            uplink = self._parse(topic, payload)
        except TerritoireError as exc:
            with self._lock:
                self.counters["malformed"] += 1
            log.debug("%s: malformed event on %s: %s", self.name, topic, exc)
            return
        state = self._by_eui.get(uplink.dev_eui) or self._by_lns_id.get(uplink.device_id)
        if state is None:
            with self._lock:
                self.counters["unknown_device"] += 1
            return
        with self._lock:
            if uplink.dedup_id in self._seen:
                self.counters["duplicates"] += 1
                return
            self._seen[uplink.dedup_id] = None
            if len(self._seen) > DEDUP_MEMORY:
                self._seen.popitem(last=False)
            if uplink.source == "tts":
                state.lns_device_id = uplink.device_id
            state.uplinks += 1
            state.last_uplink_us, state.last_f_cnt = uplink.time_us, uplink.f_cnt
        device_id = state.config.device_id
        readings = link_quality_readings(uplink, device_id) if self.config.link_quality else []
        events: list[Any] = []
        if uplink.f_port and uplink.payload:
            try:
                decoded = state.profile.decode_uplink(
                    uplink.payload, uplink.f_port, device_id=device_id, time_us=uplink.time_us
                )
                readings = [*decoded.readings, *readings]
                events = list(decoded.events)
                with self._lock:
                    self.counters["decoded"] += 1
            except TerritoireError as exc:
                with self._lock:
                    state.errors += 1
                    state.last_error = str(exc)[:200]
                log.debug("%s: %s: cannot decode FPort %d: %s", self.name, device_id, uplink.f_port, exc)
        if (readings or events) and self._sink is not None:
            self._sink(readings, events)
