"""MQTT side of the agent: paho-mqtt 2, QoS 1, retained status with a last will.

One network thread drives paho's `loop()` itself, so reconnection uses our own
jittered exponential back-off (many gateways on one flaky 4G cell must not
reconnect in lockstep). The same thread moves batches from the buffer to the
broker in storage (= seq) order with at most `max_inflight` unacknowledged,
and deletes a batch from the buffer only once its PUBACK has arrived. paho
keeps unacknowledged QoS 1 messages across a reconnect and resends them with
the DUP flag, so a batch in flight during an outage is sent again, never lost
(ingest removes the rare duplicate by (gateway, boot, seq)).
"""

from __future__ import annotations

import collections
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from territoire_kernel.messages import GatewayState, Status
from territoire_kernel.topics import TopicKind, topic
from territoire_kernel.wire import encode

from .buffer import Buffer
from .config import AgentConfig, MqttConfig
from .repeat_log import RepeatLog

log = logging.getLogger(__name__)

ACK_FLUSH_S = 0.2  # acknowledged batches are deleted in groups: fewer SD-card writes
ACK_FLUSH_COUNT = 64


def make_client(mqtt_config: MqttConfig, client_id: str) -> mqtt.Client:
    version = MQTTProtocolVersion.MQTTv5 if mqtt_config.version == "5" else MQTTProtocolVersion.MQTTv311
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=version,
        # 3.1.1: a persistent session keeps our command subscription (and queued commands) while offline.
        clean_session=False if version is MQTTProtocolVersion.MQTTv311 else None,
    )
    password = mqtt_config.read_password()
    if mqtt_config.username is not None:
        client.username_pw_set(mqtt_config.username, password)
    if mqtt_config.tls:
        client.tls_set(
            ca_certs=str(mqtt_config.ca_file) if mqtt_config.ca_file else None,
            certfile=str(mqtt_config.cert_file) if mqtt_config.cert_file else None,
            keyfile=str(mqtt_config.key_file) if mqtt_config.key_file else None,
        )
    return client


def connect(client: mqtt.Client, mqtt_config: MqttConfig) -> None:
    if mqtt_config.version == "5":
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = mqtt_config.session_expiry_s
        client.connect(
            mqtt_config.host, mqtt_config.port, mqtt_config.keepalive_s, clean_start=False, properties=props
        )
    else:
        client.connect(mqtt_config.host, mqtt_config.port, mqtt_config.keepalive_s)


def probe_broker(mqtt_config: MqttConfig, client_id: str, timeout: float = 5.0) -> tuple[bool, str]:
    """Connect once with these credentials: (ok, what happened)."""
    answer: list[str] = []
    client = make_client(mqtt_config, client_id)
    client.on_connect = lambda _c, _u, _f, reason, _p: answer.append(str(reason))
    where = f"{mqtt_config.host}:{mqtt_config.port}"
    try:
        client.connect(mqtt_config.host, mqtt_config.port, 10)
        deadline = time.monotonic() + timeout
        while not answer and time.monotonic() < deadline:
            if client.loop(0.1) != MQTTErrorCode.MQTT_ERR_SUCCESS and not answer:
                break
    except (OSError, ValueError) as exc:
        return False, f"{where} unreachable: {exc}"
    finally:
        client.disconnect()
    if not answer:
        return False, f"no MQTT answer from {where}"
    if answer[0] != "Success":
        return False, f"{where} refused the connection: {answer[0]}"
    return True, f"{where} accepts these credentials"


class Publisher:
    def __init__(
        self,
        config: AgentConfig,
        buffer: Buffer,
        status: Callable[[GatewayState], Status],
        on_command: Callable[[bytes], None],
    ):
        self.config = config
        self.mqtt = config.mqtt
        self.buffer = buffer
        self.status = status
        self.on_command = on_command
        self.up_topic = topic(config.tenant, config.gateway_id, TopicKind.UP)
        self.status_topic = topic(config.tenant, config.gateway_id, TopicKind.STATUS)
        self.cmd_topic = topic(config.tenant, config.gateway_id, TopicKind.COMMAND)
        self.result_topic = topic(config.tenant, config.gateway_id, TopicKind.COMMAND_RESULT)
        self.connected = False
        self.published_batches = 0
        self.acked_batches = 0
        self.connects = 0
        self.last_error = ""
        self._results: collections.deque[bytes] = collections.deque()
        self._inflight: dict[int, int] = {}  # paho mid -> buffer row id
        self._acked: list[int] = []
        self._last_ack_flush = 0.0
        self._cursor = 0
        self._generation = buffer.release_generation
        self._attempt = 0
        self._pause_until = 0.0
        self._tokens = 0.0
        self._last_tokens = time.monotonic()
        self._next_status = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures = RepeatLog(log, "the MQTT thread")
        self._ack_failures = RepeatLog(log, "deleting acknowledged batches")
        self.client = self._build_client()

    def _build_client(self) -> mqtt.Client:
        client = make_client(self.mqtt, self.config.client_id)
        client.max_inflight_messages_set(self.mqtt.max_inflight + 16)  # room for status and results
        client.max_queued_messages_set(0)
        will = encode(self.status(GatewayState.OFFLINE))
        client.will_set(self.status_topic, will, qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    # ------------------------------------------------------------------ paho callbacks (network thread)

    def _on_connect(self, client: mqtt.Client, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            self._note_down(f"broker refused the connection: {reason}")
            return
        self.connected = True
        self.connects += 1
        self._attempt = 0
        self._next_status = 0.0
        log.info("connected to %s:%d (%s)", self.mqtt.host, self.mqtt.port, self.config.client_id)
        self.last_error = ""
        client.subscribe(self.cmd_topic, qos=1)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if self.connected:
            log.warning("disconnected from the broker: %s", reason)
        self.connected = False

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, reason: Any, _props: Any) -> None:
        row_id = self._inflight.pop(mid, None)
        if row_id is None:
            return
        if reason.is_failure:  # MQTT 5: the broker refused it (e.g. ACL); keep it and retry later
            self._note_down(f"broker refused batch: {reason}")
            self._cursor = 0
            self._pause_until = time.monotonic() + 10
            return
        self._acked.append(row_id)
        self.acked_batches += 1

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic == self.cmd_topic:
            self.on_command(bytes(message.payload))

    def _note_down(self, why: str) -> None:
        if why != self.last_error:
            log.warning("%s", why)  # state changes only, not every retry
        self.last_error = why

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="agent-mqtt", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout + 2)
        self._flush_acks(force=True)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def publish_result(self, payload: bytes) -> None:
        """Thread-safe: queued until connected."""
        self._results.append(payload)

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    def _backoff(self) -> float:
        base = min(self.mqtt.reconnect_max_s, self.mqtt.reconnect_min_s * 2.0 ** min(self._attempt, 20))
        self._attempt += 1
        return float(base * random.uniform(0.5, 1.0))

    def _run(self) -> None:
        socket_open = False
        first = True
        while not self._stop.is_set():
            try:
                if not socket_open:
                    if first:
                        connect(self.client, self.mqtt)
                        first = False
                    else:
                        self.client.reconnect()
                    socket_open = True
                rc = self.client.loop(timeout=0.05)
                if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    socket_open = self.connected = False
                    self._note_down(f"connection to {self.mqtt.host}:{self.mqtt.port} lost ({rc.name})")
                    self._stop.wait(self._backoff())
                    continue
                if self.connected:
                    self._pump()
                self._flush_acks()
            except (OSError, ValueError) as exc:  # DNS, refused, TLS: retry after the back-off
                socket_open = self.connected = False
                self._note_down(f"cannot reach {self.mqtt.host}:{self.mqtt.port}: {exc}")
                self._stop.wait(self._backoff())
            except Exception as exc:  # never let the link thread die
                self._failures.failed(exc)
                self._stop.wait(1.0)
            else:
                self._failures.ok()
        self._goodbye(socket_open)

    def _goodbye(self, socket_open: bool) -> None:
        """Clean stop: retained offline status (the will is not sent on a clean disconnect)."""
        if socket_open and self.connected:
            info = self.client.publish(self.status_topic, encode(self.status(GatewayState.OFFLINE)), 1, True)
            deadline = time.monotonic() + 2.0
            while not info.is_published() and time.monotonic() < deadline:
                self.client.loop(0.05)
            self.connected = False  # a wanted disconnect, not an outage to log
            self.client.disconnect()
            self.client.loop(0.05)
        self.connected = False

    def _pump(self) -> None:
        now = time.monotonic()
        if now >= self._next_status:
            self.client.publish(self.status_topic, encode(self.status(GatewayState.ONLINE)), 1, True)
            self._next_status = now + self.mqtt.status_interval_s
        while self._results:
            self.client.publish(self.result_topic, self._results.popleft(), 1, False)
        if now < self._pause_until:
            return
        if self.buffer.release_generation != self._generation:
            self._generation = self.buffer.release_generation
            self._cursor = 0  # released or corrected batches may sit behind the cursor
        room = self.mqtt.max_inflight - len(self._inflight)
        if self.mqtt.max_batches_per_s is not None:
            rate = self.mqtt.max_batches_per_s
            # Bursts up to one second's worth, and never below one batch (a rate under 1/s).
            self._tokens = min(max(1.0, rate), self._tokens + (now - self._last_tokens) * rate)
            self._last_tokens = now
            room = min(room, int(self._tokens))
        if room <= 0:
            return
        skip = set(self._inflight.values()) | set(self._acked)
        batches = self.buffer.next_batches(self._cursor, room, skip)
        for batch in batches:
            info = self.client.publish(self.up_topic, batch.payload, qos=1)
            self._inflight[info.mid] = batch.id
            self._cursor = batch.id
            self.published_batches += 1
        self._tokens -= len(batches)

    def _flush_acks(self, force: bool = False) -> None:
        if not self._acked:
            return
        if (
            not force
            and len(self._acked) < ACK_FLUSH_COUNT
            and time.monotonic() - self._last_ack_flush < ACK_FLUSH_S
        ):
            return
        ids, self._acked = self._acked, []
        try:
            self.buffer.ack(ids)
        except Exception as exc:
            self._acked[:0] = ids  # try again; a crash meanwhile only means a resend
            self._ack_failures.failed(exc)
        else:
            self._ack_failures.ok()
        self._last_ack_flush = time.monotonic()
