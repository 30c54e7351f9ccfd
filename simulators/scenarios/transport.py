"""Publish scenario streams into the real paths, and register their inventory.

Batches go to territoire/v1/{tenant}/{gateway}/up exactly as an edge agent
sends them (CBOR, QoS 1); LNS events go to the ChirpStack topics. The number
of unacknowledged publishes is bounded: past 65,535 paho's message ids wrap
and messages are lost silently.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from territoire_kernel import wire
from territoire_kernel.messages import Batch
from territoire_kernel.topics import TopicKind, topic

from .common import Inventory


class Pacer:
    """Sleeps so simulated time advances `speed` times faster than the wall clock (0: no pacing)."""

    def __init__(self, speed: float):
        self.speed = speed
        self.origin: tuple[float, float] | None = None

    def wait_until(self, sim_time_s: float) -> None:
        if self.speed <= 0:
            return
        if self.origin is None:
            self.origin = (sim_time_s, time.monotonic())
            return
        due = self.origin[1] + (sim_time_s - self.origin[0]) / self.speed
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)


class Publisher:
    def __init__(
        self,
        host: str,
        port: int,
        client_id: str,
        *,
        window: int = 1000,
        username: str | None = None,
        password: str | None = None,
    ):
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
        if username:
            self.client.username_pw_set(username, password)
        self.client.max_inflight_messages_set(min(window, 65_000))
        self.client.max_queued_messages_set(0)
        self.window = window
        self.pending: deque[mqtt.MQTTMessageInfo] = deque()
        self.client.connect(host, port)
        self.client.loop_start()
        self.sent = 0

    def publish(self, name: str, payload: bytes, qos: int = 1) -> None:
        while len(self.pending) >= self.window:
            self.pending.popleft().wait_for_publish(timeout=30)
        info = self.client.publish(name, payload, qos=qos)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"publish to {name} failed: {mqtt.error_string(info.rc)}")
        self.pending.append(info)
        self.sent += 1

    def close(self) -> None:
        while self.pending:
            info = self.pending.popleft()
            info.wait_for_publish(timeout=30)
            if not info.is_published():
                raise TimeoutError("the broker did not acknowledge every message")
        self.client.loop_stop()
        self.client.disconnect()


def publish_batches(
    publisher: Publisher, tenant: str, batches: Iterable[tuple[str, Batch]], pacer: Pacer | None = None
) -> int:
    count = 0
    for gateway, batch in batches:
        if pacer is not None and batch.readings:
            pacer.wait_until(batch.readings[0].time_us / 1e6)
        publisher.publish(topic(tenant, gateway, TopicKind.UP), wire.encode(batch))
        count += 1
    return count


def publish_lns(
    publisher: Publisher, events: Iterable[tuple[float, str, bytes]], pacer: Pacer | None = None
) -> int:
    count = 0
    for at, name, body in events:
        if pacer is not None:
            pacer.wait_until(at)
        publisher.publish(name, body)
        count += 1
    return count


def register_inventory(dsn: str, inv: Inventory) -> None:
    """Insert the tenant, sites, gateways and devices (existing rows are left as they are)."""

    def js(value: Any) -> str | None:
        return None if value is None else json.dumps(value)

    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO tenants (id, name, kind) VALUES (%s, %s, %s) ON CONFLICT (id) DO NOTHING",
            (inv.tenant, inv.tenant_name, inv.tenant_kind),
        )
        cur.executemany(
            "INSERT INTO sites (id, tenant_id, name, kind, location, attrs) VALUES (%s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (id) DO NOTHING",
            [
                (s["id"], inv.tenant, s["name"], s["kind"], js(s.get("location")), js(s.get("attrs", {})))
                for s in inv.sites
            ],
        )
        cur.executemany(
            "INSERT INTO gateways (id, tenant_id, site_id, name) VALUES (%s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
            [(g["id"], inv.tenant, g.get("site_id"), g.get("name", "")) for g in inv.gateways],
        )
        cur.executemany(
            "INSERT INTO devices (id, tenant_id, site_id, gateway_id, model, profile, installed_on, expected_interval_s, attrs) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
            [
                (
                    d["id"],
                    inv.tenant,
                    d.get("site_id"),
                    d.get("gateway_id"),
                    d.get("model", ""),
                    d.get("profile"),
                    d.get("installed_on"),
                    d.get("expected_interval_s"),
                    js(d.get("attrs", {})),
                )
                for d in inv.devices
            ],
        )
