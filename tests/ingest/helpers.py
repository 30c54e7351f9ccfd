"""Shared helpers of the ingest tests: seed data, batches, a publisher, a running service."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from ingest.service import IngestConfig, IngestService
from territoire_kernel.records import Event, Reading
from territoire_kernel.topics import TopicKind, topic
from territoire_kernel.wire import Batch, Encoding, encode

TENANT = "is-sur-tille"
GATEWAY = "gw-mairie"
DEVICES = ("armoire-1", "armoire-2", "a84041000181c7b2")
T0 = 1_735_689_600_000_000  # 2025-01-01T00:00:00Z
UP = topic(TENANT, GATEWAY, TopicKind.UP)


def seed(dsn: str, *, devices: Sequence[str] = DEVICES) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO tenants (id, name, kind) VALUES (%s, 'Is-sur-Tille', 'commune')", (TENANT,))
        conn.execute("INSERT INTO tenants (id, name, kind) VALUES ('dijon', 'Dijon', 'commune')")
        conn.execute("INSERT INTO gateways (id, tenant_id) VALUES (%s, %s)", (GATEWAY, TENANT))
        for device in devices:
            conn.execute(
                "INSERT INTO devices (id, tenant_id, gateway_id) VALUES (%s, %s, %s)",
                (device, TENANT, GATEWAY),
            )


def batch(
    seq: int,
    n: int = 10,
    *,
    boot: str = "boot1",
    device: str = DEVICES[0],
    start_us: int = T0,
    step_us: int = 60_000_000,
    events: int = 0,
) -> Batch:
    """n readings of power_w one minute apart, starting at seq * n minutes."""
    base = start_us + seq * n * step_us
    readings = tuple(
        Reading(device, "power_w", float(seq * n + i), base + i * step_us, "W") for i in range(n)
    )
    evs = tuple(
        Event(device, "circuit_switched", base + i * step_us, {"on": i % 2 == 0}) for i in range(events)
    )
    return Batch(GATEWAY, boot, seq, readings, evs)


def payload(b: Batch, encoding: Encoding = Encoding.CBOR) -> bytes:
    return encode(b, encoding)


def query(dsn: str, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]


def count(dsn: str, table: str) -> int:
    return int(query(dsn, f"SELECT count(*) FROM {table}")[0][0])


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Publisher:
    """A QoS 1 publisher that waits for every PUBACK."""

    def __init__(self, port: int, client_id: str = "test-publisher") -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def publish(self, topic_name: str, data: bytes, *, retain: bool = False) -> None:
        info = self.client.publish(topic_name, data, qos=1, retain=retain)
        info.wait_for_publish(10)

    def publish_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        infos = [self.client.publish(t, d, qos=1) for t, d in items]
        for info in infos:
            info.wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@contextlib.contextmanager
def running_service(config: IngestConfig, **kwargs: Any) -> Iterator[IngestService]:
    service = IngestService(config, **kwargs)
    errors: list[BaseException] = []

    def target() -> None:
        try:
            service.run()
        except BaseException as exc:  # surfaced in the test below
            errors.append(exc)

    thread = threading.Thread(target=target, name="ingest-under-test", daemon=True)
    thread.start()
    try:
        wait_for(service.subscribed.is_set, 15, "the service to subscribe")
        yield service
    finally:
        service.request_stop()
        thread.join(30)
        assert not thread.is_alive(), "ingest did not stop"
    if errors:
        raise errors[0]
