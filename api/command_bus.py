"""Publishing commands to gateways: MQTT 5, QoS 1, done only once the broker's PUBACK says so.

One short-lived connection per command: commands are rare (rate-limited per
tenant), and a fresh connection has no stale state to recover from. Blocking
paho calls run in a worker thread (see `publish`).
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

TIMEOUT_S = 5.0


class PublishError(RuntimeError):
    """The command did not reach the broker; the message says why (never a password)."""


@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def publish_blocking(broker: Broker, topic: str, payload: bytes, timeout: float = TIMEOUT_S) -> None:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"territoire-api-{secrets.token_hex(6)}", protocol=mqtt.MQTTv5
    )
    if broker.username is not None:
        client.username_pw_set(broker.username, broker.password)
    connected, acknowledged = threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}

    def on_connect(_c: mqtt.Client, _u: object, _f: object, reason: Any, _p: object) -> None:
        outcome["connect"] = reason
        connected.set()

    def on_publish(_c: mqtt.Client, _u: object, _mid: int, reason: Any, _p: object) -> None:
        outcome["puback"] = reason
        acknowledged.set()

    client.on_connect, client.on_publish = on_connect, on_publish
    try:
        client.connect(broker.host, broker.port, keepalive=30)
    except OSError as exc:
        raise PublishError(f"broker {broker.host}:{broker.port} unreachable: {exc.strerror or exc}") from None
    client.loop_start()
    try:
        if not connected.wait(timeout):
            raise PublishError("the broker did not answer the connection in time")
        if outcome["connect"].is_failure:
            raise PublishError(f"the broker refused the API's connection: {outcome['connect']}")
        info = client.publish(topic, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise PublishError(f"publish failed: {mqtt.error_string(info.rc)}")
        if not acknowledged.wait(timeout):
            raise PublishError("no PUBACK from the broker in time")
        if outcome["puback"].is_failure:  # e.g. "Not authorized" from the broker's ACL
            raise PublishError(f"the broker refused the command: {outcome['puback']}")
    finally:
        client.disconnect()
        client.loop_stop()


async def publish(broker: Broker, topic: str, payload: bytes) -> None:
    await asyncio.to_thread(publish_blocking, broker, topic, payload)
