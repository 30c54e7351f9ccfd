"""The real path for scenario tests: simulator -> Mosquitto -> ingest service -> PostgreSQL -> API.

Ingest runs as the demo runs it (`territoire ingest run`, a child process), so
it has its own core and the test process only generates and publishes. The
API is the real application (create_app) behind a TestClient, called with a
viewer token of the scenario's tenant.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from api.app import create_app
from api.migrations import migrate as migrate_api
from api.settings import Settings
from api.users import create_user, issue_token
from ingest.migrate import migrate as migrate_data
from territoire.services import MosquittoServer, free_port, stop_process

LOOPBACK = "127.0.0.1"


def prepare_database(dsn: str) -> None:
    """Data and API schemas, as `territoire demo` applies them."""
    migrate_data(dsn, "auto")
    migrate_api(dsn)


def handled_messages(dsn: str) -> tuple[int, int]:
    """(messages ingest has committed: batches, LNS uplinks and dead letters; dead letters among them)."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM received_batches) + (SELECT count(*) FROM lns_uplinks),"
            " (SELECT count(*) FROM dead_letters)"
        ).fetchone()
    assert row is not None
    return int(row[0]) + int(row[1]), int(row[1])


@dataclass
class IngestProcess:
    dsn: str
    broker: MosquittoServer
    log: Path
    process: subprocess.Popen[bytes]
    client_id: str

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def wait_stored(self, expected: int, timeout: float) -> None:
        """Until ingest has committed `expected` messages, none of them as a dead letter."""
        deadline = time.monotonic() + timeout
        handled, dead = handled_messages(self.dsn)
        while handled < expected and time.monotonic() < deadline:
            assert self.process.poll() is None, f"ingest exited:\n{self.log_tail()}"
            time.sleep(0.2)
            handled, dead = handled_messages(self.dsn)
        assert handled >= expected, f"ingest handled {handled} of {expected} messages:\n{self.log_tail()}"
        assert dead == 0, f"{dead} dead letter(s):\n{self.log_tail()}"


def _wait_ready(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"ingest exited:\n{log.read_text(errors='replace')[-3000:]}"
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"http://{LOOPBACK}:{port}/readyz", timeout=2) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.1)
    raise AssertionError(
        f"ingest not ready after {timeout:.0f} s:\n{log.read_text(errors='replace')[-3000:]}"
    )


def _forget_session(port: int, client_id: str) -> None:
    """Drop ingest's persistent session, so the broker stops queueing later tests' messages for it."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0
    with contextlib.suppress(OSError):
        client.connect(LOOPBACK, port, clean_start=True, properties=props)
        client.loop_start()
        time.sleep(0.2)
        client.disconnect()
        client.loop_stop()


@contextlib.contextmanager
def ingest_service(dsn: str, broker: MosquittoServer, workdir: Path) -> Iterator[IngestProcess]:
    """`territoire ingest run` with ChirpStack uplinks, ready (subscribed) when yielded."""
    metrics_port = free_port()
    client_id = f"ingest-scenario-{uuid.uuid4().hex[:8]}"
    log = workdir / "ingest.log"
    args = [sys.executable, "-m", "territoire.cli", "ingest", "run", "--dsn", dsn]
    args += ["--mqtt-host", LOOPBACK, "--mqtt-port", str(broker.port), "--lns", "chirpstack"]
    args += ["--client-id", client_id, "--metrics-port", str(metrics_port), "--log-level", "WARNING"]
    with open(log, "ab") as handle:
        process = subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT)
    try:
        _wait_ready(metrics_port, process, log)
        yield IngestProcess(dsn, broker, log, process, client_id)
    finally:
        stop_process(process, signal.SIGTERM, 30)
        _forget_session(broker.port, client_id)


def viewer_token(dsn: str, tenant: str) -> str:
    name = f"viewer-{tenant}"[:60]
    with psycopg.connect(dsn) as conn:
        create_user(conn, name, "viewer", (tenant,), password=None)
        return str(issue_token(conn, name))


@contextlib.contextmanager
def api_client(dsn: str) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(dsn=dsn, alert_interval_s=None))) as client:
        yield client
