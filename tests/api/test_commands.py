"""Commands end to end: API → real Mosquitto → gateway responder → Modbus relay → result → ingest → API."""

from __future__ import annotations

import asyncio
import socket
import struct
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
import psycopg
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion

from api.app import create_app
from api.routers.commands import audit_expired
from api.settings import Settings
from ingest.service import IngestConfig
from simulators.devices.meters import RelayModule
from simulators.devices.modbus_server import ModbusTcpSimulator
from territoire.services import MosquittoServer, free_port
from territoire_kernel.messages import Command, CommandResult, CommandStatus
from territoire_kernel.records import to_time_us
from territoire_kernel.topics import TopicKind, topic
from territoire_kernel.wire import decode, encode

from ..ingest.helpers import running_service, wait_for
from .conftest import bearer

DEVICE = "armoire-1"


def _write_coil(port: int, address: int, on: bool) -> None:
    """Modbus TCP function 5 (write single coil), as the gateway's driver would send it."""
    request = struct.pack(">HHHBBHH", 7, 0, 6, 1, 5, address, 0xFF00 if on else 0)
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(request)
        assert sock.recv(64) == request  # the slave echoes a successful write


class GatewayResponder:
    """Plays gw-a: executes `switch` on the relay, rejects anything else, answers on cmd/result."""

    def __init__(self, broker_port: int, relay_port: int):
        self.relay_port = relay_port
        self.received: list[Command] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"gw-a-{uuid.uuid4().hex[:6]}",
                                  protocol=mqtt.MQTTv5)  # fmt: skip
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker_port)
        self.client.loop_start()
        self.client.subscribe(topic("tenant-a", "gw-a", TopicKind.COMMAND), qos=1)

    def _on_message(self, client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        command = decode(message.payload)
        assert isinstance(command, Command)
        self.received.append(command)
        if command.action == "switch":
            _write_coil(self.relay_port, int(command.params["circuit"]), bool(command.params["on"]))
            status, detail = CommandStatus.DONE, "relay switched"
        else:
            status, detail = CommandStatus.REJECTED, f"unknown action {command.action!r}"
        result = CommandResult(command.command_id, "gw-a", status, to_time_us(datetime.now(UTC)), detail)
        client.publish(topic("tenant-a", "gw-a", TopicKind.COMMAND_RESULT), encode(result), qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def seeded(api_dsn: str) -> str:
    with psycopg.connect(api_dsn) as conn:
        conn.execute("INSERT INTO gateways (id, tenant_id) VALUES ('gw-a', 'tenant-a')")
        conn.execute(
            "INSERT INTO devices (id, tenant_id, gateway_id) VALUES (%s, 'tenant-a', 'gw-a')", (DEVICE,)
        )
        conn.execute("INSERT INTO devices (id, tenant_id) VALUES ('lonely', 'tenant-a')")
    return api_dsn


@pytest.fixture
def relay() -> Iterator[tuple[RelayModule, int]]:
    module = RelayModule()
    server = ModbusTcpSimulator({1: module})
    server.start()
    yield module, server.port
    server.stop()


def _status(client: TestClient, token: str, command_id: str) -> str:
    answer = client.get(f"/tenants/tenant-a/devices/{DEVICE}/commands/{command_id}", headers=bearer(token))
    assert answer.status_code == 200, answer.text
    status: str = answer.json()["status"]
    return status


def test_command_switches_the_relay_and_is_tracked_until_done(
    seeded: str, tokens: dict[str, str], mqtt_broker: MosquittoServer, relay: tuple[RelayModule, int]
) -> None:
    module, relay_port = relay
    settings = Settings(
        dsn=seeded, mqtt_port=mqtt_broker.port, alert_interval_s=None, command_rate_per_minute=3
    )
    responder = GatewayResponder(mqtt_broker.port, relay_port)
    config = IngestConfig(dsn=seeded, mqtt_port=mqtt_broker.port, client_id=f"ingest-{uuid.uuid4().hex[:8]}")
    tech = tokens["technician-a"]
    path = f"/tenants/tenant-a/devices/{DEVICE}/commands"
    try:
        with running_service(config), TestClient(create_app(settings)) as client:
            body = {"action": "switch", "params": {"circuit": 1, "on": True, "duration_s": 360}, "ttl_s": 60}
            created = client.post(path, json=body, headers=bearer(tech))
            assert created.status_code == 201, created.text
            command = created.json()
            assert command["gateway_id"] == "gw-a" and command["published_at"] is not None
            assert command["status"] in ("pending", "done")
            wait_for(lambda: _status(client, tech, command["id"]) == "done", 15, "the command to be done")
            assert module.state(1) is True
            assert [c.command_id for c in responder.received] == [command["id"]]
            assert responder.received[0].expires_us - responder.received[0].issued_us == 60_000_000

            refused = client.post(path, json={"action": "self_destruct"}, headers=bearer(tech)).json()
            wait_for(lambda: _status(client, tech, refused["id"]) == "rejected", 15, "the rejection")
            listed = client.get(path, headers=bearer(tokens["viewer-a"])).json()
            assert [c["status"] for c in listed] == ["rejected", "done"]
            assert "unknown action" in listed[0]["detail"]

            assert (
                client.post(
                    path, json={**body, "params": {"circuit": 2, "on": True}}, headers=bearer(tech)
                ).status_code
                == 201
            )
            limited = client.post(path, json=body, headers=bearer(tech))
            assert limited.status_code == 429
            assert limited.headers["content-type"] == "application/problem+json"
            assert 1 <= int(limited.headers["Retry-After"]) <= 60
    finally:
        responder.close()
    with psycopg.connect(seeded) as conn:
        audited = conn.execute(
            "SELECT subject, action, target, tenant_id, detail FROM audit_log ORDER BY id"
        ).fetchall()
    requests = [action for subject, action, *_ in audited if subject == "technician-a"]
    assert requests == ["command.create"] * 3 + ["command.rate_limited"]
    # The gateway's results, written by ingest, are audited too (by the database, in ingest's transaction).
    results = {target: (subject, tenant, detail) for subject, action, target, tenant, detail in audited
               if action == "command.result"}  # fmt: skip
    subject, tenant, detail = results[f"command:{command['id']}"]
    assert (subject, tenant) == ("gateway:gw-a", "tenant-a")
    assert detail["status"] == "done" and detail["device"] == DEVICE and detail["counted"] is True
    assert results[f"command:{refused['id']}"][2]["status"] == "rejected"
    assert "unknown action" in results[f"command:{refused['id']}"][2]["detail"]


async def _audit_expired(dsn: str) -> int:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        return await audit_expired(conn)


def test_command_rights_failures_and_expiry(seeded: str, tokens: dict[str, str]) -> None:
    # Nothing listens on this port: the publish fails and the command is recorded as failed.
    settings = Settings(dsn=seeded, mqtt_port=free_port(), alert_interval_s=None)
    path = f"/tenants/tenant-a/devices/{DEVICE}/commands"
    body = {"action": "switch", "params": {"circuit": 1, "on": True}}
    with TestClient(create_app(settings)) as client:
        assert client.post(path, json=body, headers=bearer(tokens["viewer-a"])).status_code == 403
        assert client.post(path, json=body, headers=bearer(tokens["analyst-ab"])).status_code == 403
        assert client.post(path, json=body, headers=bearer(tokens["technician-b"])).status_code == 404
        assert client.get(path, headers=bearer(tokens["technician-b"])).status_code == 404
        lonely = "/tenants/tenant-a/devices/lonely/commands"
        assert client.post(lonely, json=body, headers=bearer(tokens["technician-a"])).status_code == 409
        bad = client.post(
            path, json={**body, "params": {"nested": {"x": 1}}}, headers=bearer(tokens["technician-a"])
        )
        assert bad.status_code == 422
        failed = client.post(path, json=body, headers=bearer(tokens["technician-a"]))
        assert failed.status_code == 503, failed.text
        command_id = failed.json()["command_id"]
        assert _status(client, tokens["technician-a"], command_id) == "failed"
        past = datetime.now(UTC) - timedelta(hours=1)
        with psycopg.connect(seeded) as conn:
            conn.execute(
                "INSERT INTO commands (id, tenant_id, device_id, gateway_id, action, subject, issued_at, expires_at, "
                "published_at) VALUES ('old', 'tenant-a', %s, 'gw-a', 'switch', 'admin', %s, %s, %s)",
                (DEVICE, past, past + timedelta(minutes=1), past),
            )
        assert _status(client, tokens["viewer-a"], "old") == "expired"
        # The background loop audits the expiry once; the failed command was audited as failed already.
        assert asyncio.run(_audit_expired(seeded)) == 1
        assert asyncio.run(_audit_expired(seeded)) == 0
        with psycopg.connect(seeded) as conn:
            expired = conn.execute(
                "SELECT target, tenant_id FROM audit_log WHERE action = 'command.expired'"
            ).fetchall()
        assert expired == [("command:old", "tenant-a")]
        # A result from another gateway does not count, but it is audited, flagged as such.
        with psycopg.connect(seeded) as conn:
            conn.execute(
                "INSERT INTO command_results (command_id, gateway_id, status, time) VALUES ('old', 'gw-b', 'done', %s)",
                (past,),
            )
            row = conn.execute(
                "SELECT subject, tenant_id, detail FROM audit_log WHERE action = 'command.result'"
            ).fetchone()
        assert _status(client, tokens["viewer-a"], "old") == "expired"
        assert row is not None and row[:2] == ("gateway:gw-b", "tenant-a")
        assert row[2]["counted"] is False and row[2]["status"] == "done"
        assert client.get(f"{path}/old", headers=bearer(tokens["technician-b"])).status_code == 404
