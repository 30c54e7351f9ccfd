"""The real-service fixtures work: a batch through Mosquitto, a table in PostgreSQL."""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from territoire.services import MosquittoServer, PostgresServer
from territoire_kernel.records import Reading
from territoire_kernel.topics import TopicKind, topic
from territoire_kernel.wire import Batch, Encoding, decode_batch, encode

T0 = 1_732_330_800_000_000


def _client(broker: MosquittoServer, name: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    return client


def test_a_batch_goes_through_the_real_broker(mqtt_broker: MosquittoServer) -> None:
    batch = Batch(
        "gw-test",
        "b0",
        1,
        tuple(Reading(f"meter-{i}", "energy_kwh", i * 1.5, T0 + i, "kWh") for i in range(50)),
    )
    name = topic("is-sur-tille", "gw-test", TopicKind.UP)
    received: list[Batch] = []
    subscribed, done = threading.Event(), threading.Event()

    subscriber = _client(mqtt_broker, "reader")
    subscriber.on_subscribe = lambda *args: subscribed.set()

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        received.append(decode_batch(message.payload))
        if len(received) == 2:
            done.set()

    subscriber.on_message = on_message
    subscriber.subscribe(name, qos=1)
    subscriber.loop_start()
    assert subscribed.wait(5)

    publisher = _client(mqtt_broker, "gateway")
    publisher.loop_start()
    for encoding in Encoding:
        publisher.publish(name, encode(batch, encoding), qos=1).wait_for_publish(5)
    assert done.wait(5)
    publisher.loop_stop()
    subscriber.loop_stop()
    assert received == [batch, batch]


def test_a_table_in_the_real_postgres(postgres: PostgresServer, fresh_database: str) -> None:
    with psycopg.connect(fresh_database) as conn:
        conn.execute("CREATE TABLE probe (id bigint PRIMARY KEY, at timestamptz NOT NULL)")
        conn.execute("INSERT INTO probe VALUES (1, now())")
        assert conn.execute("SELECT count(*) FROM probe").fetchone() == (1,)
        owner = conn.execute("SELECT usename FROM pg_stat_activity WHERE pid = pg_backend_pid()").fetchone()
        assert owner == ("territoire",)
    assert postgres.running


def test_postgres_does_not_run_as_root(postgres: PostgresServer) -> None:
    import os

    pid_file = postgres.datadir / "postmaster.pid"
    pid = int(pid_file.read_text().split()[0])
    assert os.stat(f"/proc/{pid}").st_uid != 0 or os.geteuid() != 0


def test_broker_restart_keeps_serving(tmp_path: object) -> None:
    import tempfile
    from pathlib import Path

    broker = MosquittoServer(workdir=Path(tempfile.mkdtemp()))
    broker.start()
    try:
        first_port = broker.port
        broker.restart()
        assert broker.port == first_port and broker.running
        client = _client(broker, "after-restart")
        client.disconnect()
    finally:
        broker.stop()
