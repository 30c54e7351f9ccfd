"""The service end to end: real Mosquitto, real PostgreSQL, acknowledgement after commit."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.metrics import HealthServer, IngestMetrics
from ingest.migrate import migrate
from ingest.service import IngestConfig
from territoire.services import MosquittoServer, PostgresServer, free_port
from territoire_kernel.messages import CommandResult, CommandStatus, GatewayState, Status
from territoire_kernel.topics import TopicKind, topic
from territoire_kernel.wire import encode

from .helpers import (
    GATEWAY,
    T0,
    TENANT,
    UP,
    Publisher,
    batch,
    count,
    payload,
    query,
    running_service,
    seed,
    wait_for,
)


def config(dsn: str, broker: MosquittoServer, **overrides: object) -> IngestConfig:
    values: dict[str, object] = {
        "dsn": dsn,
        "mqtt_port": broker.port,
        "client_id": f"ingest-{uuid.uuid4().hex[:8]}",
        "session_expiry_s": 30,
        "retry_initial_s": 0.05,
        "retry_max_s": 0.5,
        "maintenance_interval_s": 3600,
    }
    values.update(overrides)
    return IngestConfig(**values)  # type: ignore[arg-type]


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_end_to_end_with_status_results_metrics_and_probes(
    plain_db: str, mqtt_broker: MosquittoServer
) -> None:
    metrics = IngestMetrics()
    with running_service(config(plain_db, mqtt_broker), metrics=metrics) as service:
        health = HealthServer(metrics, service.ready, 0)
        health.start()
        publisher = Publisher(mqtt_broker.port, f"pub-{uuid.uuid4().hex[:6]}")
        try:
            publisher.publish_many([(UP, payload(batch(seq))) for seq in (0, 1, 2, 1, 4)])
            publisher.publish(UP, b"\x00garbage")
            status = Status(GATEWAY, GatewayState.ONLINE, "boot1", T0, "1.0.0", buffer_readings=12)
            publisher.publish(topic(TENANT, GATEWAY, TopicKind.STATUS), encode(status))
            result = CommandResult("c-42", GATEWAY, CommandStatus.REJECTED, T0, "unknown action")
            publisher.publish(topic(TENANT, GATEWAY, TopicKind.COMMAND_RESULT), encode(result))
            wait_for(
                lambda: count(plain_db, "command_results") == 1 and count(plain_db, "readings") == 40,
                what="all rows",
            )
            base = f"http://127.0.0.1:{health.port}"
            assert http_get(base + "/healthz") == (200, "ok\n")
            assert http_get(base + "/readyz") == (200, "database reachable; MQTT subscribed\n")
            code, text = http_get(base + "/metrics")
            assert code == 200
            assert "ingest_readings_total 40.0" in text
            assert 'ingest_duplicates_removed_total{kind="batch"} 1.0' in text
            assert "ingest_sequence_gap_batches_total 1.0" in text
            assert "ingest_dead_letters_total" in text and "ingest_commit_seconds_bucket" in text
        finally:
            publisher.close()
            health.stop()
    assert query(plain_db, "SELECT state, buffer_readings FROM gateways WHERE id = %s", (GATEWAY,)) == [
        ("online", 12)
    ]
    assert query(plain_db, "SELECT status FROM command_results") == [("rejected",)]
    assert query(plain_db, "SELECT count(*) FROM dead_letters WHERE payload = %s", (b"\x00garbage",)) == [
        (1,)
    ]
    assert count(plain_db, "sequence_gaps") == 1


def test_two_workers_on_a_shared_subscription_split_the_load(
    plain_db: str, mqtt_broker: MosquittoServer
) -> None:
    group = f"g{uuid.uuid4().hex[:6]}"
    with (
        running_service(config(plain_db, mqtt_broker, share_group=group)) as first,
        running_service(config(plain_db, mqtt_broker, share_group=group)) as second,
    ):
        publisher = Publisher(mqtt_broker.port, f"pub-{uuid.uuid4().hex[:6]}")
        try:
            publisher.publish_many([(UP, payload(batch(seq, n=5))) for seq in range(400)])
        finally:
            publisher.close()
        wait_for(lambda: count(plain_db, "received_batches") == 400, what="400 batches")
        assert first.committed_messages > 20 and second.committed_messages > 20
    assert count(plain_db, "readings") == 2000
    # Each worker sees batches the other has not committed yet; the gap step runs under
    # the shared lock, so any gap recorded meanwhile is removed by the batch that fills it.
    assert count(plain_db, "sequence_gaps") == 0


@pytest.mark.parametrize("connections", [1, 2])
def test_overlapping_commits_keep_flush_order_and_report_no_false_gap(
    plain_db: str, mqtt_broker: MosquittoServer, connections: int
) -> None:
    # Small flushes: many overlap. Flush N+1's COPY may run beside N's, but its gap step waits
    # for N's ticket (until N's COMMIT), so it always sees N's batches: no gap, not even transiently.
    metrics = IngestMetrics()
    cfg = config(plain_db, mqtt_broker, flush_max_messages=4, commit_connections=connections)
    with running_service(cfg, metrics=metrics) as service:
        publisher = Publisher(mqtt_broker.port, f"pub-{uuid.uuid4().hex[:6]}")
        try:
            publisher.publish_many([(UP, payload(batch(seq, n=5))) for seq in range(300)])
        finally:
            publisher.close()
        wait_for(lambda: count(plain_db, "received_batches") == 300, what="300 batches")
        assert len(service.writers) == connections
        assert metrics.sequence_gaps._value.get() == 0
    assert count(plain_db, "readings") == 1500
    assert count(plain_db, "sequence_gaps") == 0


# --------------------------------------------------------------------------- faults, with processes


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A durable server of our own: this test kills it, which must not disturb the shared one."""
    workdir = Path(tempfile.mkdtemp(prefix="territoire-ingest-pg-"))
    workdir.chmod(0o755)
    server = PostgresServer(workdir=workdir, durable=True)
    server.start()
    yield server
    server.stop("immediate")
    shutil.rmtree(workdir, ignore_errors=True)


def start_ingest(
    dsn: str, broker: MosquittoServer, client_id: str, *, wait_ready: bool = True, port: int = 0
) -> subprocess.Popen[bytes]:
    port = port or free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "territoire.cli",
            "ingest",
            "run",
            "--dsn",
            dsn,
            "--mqtt-port",
            str(broker.port),
            "--client-id",
            client_id,
            "--timescale",
            "off",
            "--log-level",
            "WARNING",
            "--metrics-port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    if wait_ready:
        # Subscribed (and database reachable) before anything is published.
        wait_for(lambda: probe(f"http://127.0.0.1:{port}/readyz") == 200, timeout=30, what="ingest ready")
    return process


def probe(url: str) -> int:
    try:
        return http_get(url)[0]
    except OSError:
        return 0


def stop_ingest(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> tuple[int, str]:
    process.send_signal(sig)
    out, _ = process.communicate(timeout=30)
    return process.returncode, out.decode(errors="replace")


@pytest.mark.slow
def test_database_outage_and_ingest_crash_lose_nothing(
    own_postgres: PostgresServer, mqtt_broker: MosquittoServer
) -> None:
    dsn = own_postgres.dsn
    migrate(dsn, "off")
    seed(dsn)
    client_id = f"ingest-fault-{uuid.uuid4().hex[:6]}"
    publisher = Publisher(mqtt_broker.port, f"pub-{uuid.uuid4().hex[:6]}")
    ingest = start_ingest(dsn, mqtt_broker, client_id)
    try:
        publisher.publish_many([(UP, payload(batch(seq))) for seq in range(0, 100)])
        wait_for(lambda: count(dsn, "received_batches") == 100, what="the first 100 batches")
        own_postgres.kill()
        # Delivered to ingest while the database is down: they must stay unacknowledged...
        publisher.publish_many([(UP, payload(batch(seq))) for seq in range(100, 200)])
        time.sleep(1.0)
        ingest.kill()  # ...so that a crash now loses none of them
        ingest.communicate(timeout=10)
        own_postgres.start()
        ingest = start_ingest(dsn, mqtt_broker, client_id)
        wait_for(lambda: count(dsn, "received_batches") == 200, timeout=30, what="redelivery after the crash")
        # A restart of PostgreSQL under a running stream.
        publisher.publish_many([(UP, payload(batch(seq))) for seq in range(200, 250)])
        own_postgres.restart("immediate")
        publisher.publish_many([(UP, payload(batch(seq))) for seq in range(250, 300)])
        wait_for(lambda: count(dsn, "received_batches") == 300, timeout=30, what="all 300 batches")
        code, output = stop_ingest(ingest)
        assert code == 0, output
    finally:
        publisher.close()
        if ingest.poll() is None:
            ingest.kill()
            ingest.communicate(timeout=10)
    assert count(dsn, "readings") == 3000
    assert query(dsn, "SELECT min(value), max(value), count(DISTINCT value) FROM readings") == [
        (0.0, 2999.0, 3000)
    ]
    assert count(dsn, "sequence_gaps") == 0


def test_sigterm_commits_and_acknowledges_before_leaving(plain_db: str, mqtt_broker: MosquittoServer) -> None:
    client_id = f"ingest-term-{uuid.uuid4().hex[:6]}"
    publisher = Publisher(mqtt_broker.port, f"pub-{uuid.uuid4().hex[:6]}")
    ingest = start_ingest(plain_db, mqtt_broker, client_id)

    def publish_slowly() -> None:
        for seq in range(600):
            publisher.publish(UP, payload(batch(seq, n=50)))
            time.sleep(0.004)

    stream = threading.Thread(target=publish_slowly, daemon=True)
    try:
        stream.start()
        wait_for(lambda: count(plain_db, "received_batches") >= 50, what="ingest to run")
        code, output = stop_ingest(ingest)  # SIGTERM in the middle of the stream
        assert code == 0, output
        stream.join(60)
        stored = count(plain_db, "received_batches")
        # What was committed was acknowledged before leaving: a new run gets only the rest, no duplicates.
        port = free_port()
        again = start_ingest(plain_db, mqtt_broker, client_id, port=port)
        wait_for(lambda: count(plain_db, "received_batches") == 600, timeout=30, what="the rest")
        text = http_get(f"http://127.0.0.1:{port}/metrics")[1]
        code, output = stop_ingest(again)
        assert code == 0, output
    finally:
        publisher.close()
        if ingest.poll() is None:
            ingest.kill()
    assert 50 <= stored < 600
    assert f"ingest_readings_total {(600 - stored) * 50}.0" in text
    assert 'ingest_duplicates_removed_total{kind="batch"} 0.0' in text
    assert count(plain_db, "readings") == 600 * 50


def test_config_errors_exit_with_a_readable_message(mqtt_broker: MosquittoServer) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "territoire.cli", "ingest", "run", "--mqtt-port", str(free_port())],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "configuration error: dsn: give --dsn postgresql://user@host:port/db or set TERRITOIRE_DSN"
    )


@pytest.mark.slow
def test_repeated_sigkill_during_a_stream_stores_every_reading_once(
    plain_db: str, mqtt_broker: MosquittoServer
) -> None:
    client_id = f"ingest-kill-{uuid.uuid4().hex[:6]}"
    publisher = Publisher(mqtt_broker.port, f"pub-{uuid.uuid4().hex[:6]}")

    def publish_stream() -> None:
        for seq in range(800):
            publisher.publish(UP, payload(batch(seq, n=20)))
            time.sleep(0.003)

    stream = threading.Thread(target=publish_stream, daemon=True)
    ingest = start_ingest(plain_db, mqtt_broker, client_id)
    try:
        stream.start()
        for kills in range(1, 4):
            wait_for(
                lambda target=120 * kills: count(plain_db, "received_batches") >= target,
                what=f"progress before kill {kills}",
            )
            ingest.kill()  # SIGKILL: no flush, no acknowledgement of anything uncommitted
            ingest.communicate(timeout=10)
            ingest = start_ingest(plain_db, mqtt_broker, client_id)
        stream.join(60)
        wait_for(lambda: count(plain_db, "received_batches") == 800, timeout=30, what="every batch")
        code, output = stop_ingest(ingest)
        assert code == 0, output
    finally:
        publisher.close()
        if ingest.poll() is None:
            ingest.kill()
            ingest.communicate(timeout=10)
    assert count(plain_db, "readings") == 800 * 20
    assert query(plain_db, "SELECT count(DISTINCT value) FROM readings") == [(16000,)]
