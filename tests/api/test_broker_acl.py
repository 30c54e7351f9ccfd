"""Gateway registration provisions a REAL Mosquitto: each gateway is confined to its own topics."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion

from api.app import create_app
from api.broker_acl import MARKER
from api.settings import Settings
from territoire.services import LOOPBACK, MosquittoServer

from .conftest import bearer

PLATFORM = ("territoire-test", "platform-secret")
HEADER = """# platform accounts, written by the operator
user territoire-test
topic read territoire/v1/#
topic write territoire/v1/+/+/cmd
"""


@pytest.fixture
def broker_dir() -> Iterator[Path]:
    # Not under pytest's tmp dir: mosquitto drops root and must read these files.
    directory = Path(tempfile.mkdtemp(prefix="territoire-acl-"))
    directory.chmod(0o755)
    (directory / "acl").write_text(HEADER)
    passwd = directory / "passwd"
    passwd.touch(mode=0o644)
    subprocess.run(["mosquitto_passwd", "-b", str(passwd), *PLATFORM], check=True)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def secured_broker(broker_dir: Path) -> Iterator[MosquittoServer]:
    workdir = Path(tempfile.mkdtemp(prefix="territoire-acl-broker-"))
    workdir.chmod(0o755)
    extra = f"password_file {broker_dir}/passwd\nacl_file {broker_dir}/acl\n"
    broker = MosquittoServer(workdir=workdir, extra_config=extra, allow_anonymous=False)
    broker.start()
    yield broker
    broker.stop()
    shutil.rmtree(workdir, ignore_errors=True)


def _connect(port: int, user: str | None, password: str | None) -> tuple[mqtt.Client, int]:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    if user is not None:
        client.username_pw_set(user, password)
    answered, outcome = threading.Event(), []

    def on_connect(_c: mqtt.Client, _u: object, _f: object, reason: Any, _p: object) -> None:
        outcome.append(int(reason.value))
        answered.set()

    client.on_connect = on_connect
    client.connect(LOOPBACK, port)
    client.loop_start()
    answered.wait(10)
    return client, outcome[0] if outcome else -1


def _accepted(port: int, user: str | None, password: str | None) -> bool:
    client, code = _connect(port, user, password)
    client.disconnect()
    client.loop_stop()
    return code == 0


def _eventually(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_registered_gateways_are_confined_to_their_own_topics(
    api_dsn: str, tokens: dict[str, str], broker_dir: Path, secured_broker: MosquittoServer
) -> None:
    assert secured_broker._process is not None
    settings = Settings(
        dsn=api_dsn,
        alert_interval_s=None,
        broker_acl_dir=broker_dir,
        broker_reload_command=("kill", "-HUP", str(secured_broker._process.pid)),
    )
    port = secured_broker.port
    with TestClient(create_app(settings)) as client:
        a = client.post(
            "/tenants/tenant-a/gateways", json={"id": "gw-a"}, headers=bearer(tokens["technician-a"])
        )
        b = client.post(
            "/tenants/tenant-b/gateways", json={"id": "gw-b"}, headers=bearer(tokens["technician-b"])
        )
        assert a.status_code == b.status_code == 201, (a.text, b.text)
        cred_a, cred_b = a.json()["mqtt"], b.json()["mqtt"]
        assert cred_a["broker_files_written"] is True
        acl = (broker_dir / "acl").read_text()
        assert acl.startswith(HEADER.rstrip("\n")) and MARKER in acl
        assert "topic read territoire/v1/tenant-a/gw-a/cmd" in acl
        assert cred_a["password"] not in (broker_dir / "passwd").read_text()

        assert _eventually(lambda: _accepted(port, "gw-a", cred_a["password"]))
        assert not _accepted(port, None, None), "anonymous clients must be refused"
        assert not _accepted(port, "gw-a", cred_b["password"]), "B's password must not open A's account"

        platform, code = _connect(port, *PLATFORM)
        assert code == 0
        received: list[str] = []
        platform.on_message = lambda _c, _u, message: received.append(message.topic)
        platform.subscribe("territoire/v1/#", qos=1)
        gateway_a, code = _connect(port, "gw-a", cred_a["password"])
        assert code == 0
        commands_seen_by_a: list[str] = []
        gateway_a.on_message = lambda _c, _u, message: commands_seen_by_a.append(message.topic)
        gateway_a.subscribe("territoire/v1/#", qos=1)  # the ACL must filter what it may read
        time.sleep(0.3)
        for name in (
            "territoire/v1/tenant-b/gw-b/up",  # another tenant's gateway
            "territoire/v1/tenant-b/gw-a/up",  # its own name under another tenant
            "territoire/v1/tenant-a/gw-a/cmd",  # a command to itself
            "territoire/v1/tenant-a/gw-a/up",
        ):
            gateway_a.publish(name, b"{}", qos=1).wait_for_publish(5)
        for name in ("territoire/v1/tenant-b/gw-b/cmd", "territoire/v1/tenant-a/gw-a/cmd"):
            platform.publish(name, b"{}", qos=1).wait_for_publish(5)
        assert _eventually(lambda: "territoire/v1/tenant-a/gw-a/cmd" in commands_seen_by_a)
        time.sleep(0.3)
        # Only A's own uplink and the platform's two commands: A's forged publishes were dropped.
        assert sorted(received) == [
            "territoire/v1/tenant-a/gw-a/cmd",
            "territoire/v1/tenant-a/gw-a/up",
            "territoire/v1/tenant-b/gw-b/cmd",
        ]
        assert commands_seen_by_a == ["territoire/v1/tenant-a/gw-a/cmd"]
        for c in (platform, gateway_a):
            c.disconnect()
            c.loop_stop()

        rotated = client.post(
            "/tenants/tenant-b/gateways/gw-b/credentials", headers=bearer(tokens["technician-b"])
        )
        assert rotated.status_code == 200
        new_b = rotated.json()["password"]
        assert _eventually(lambda: _accepted(port, "gw-b", new_b))
        assert not _accepted(port, "gw-b", cred_b["password"])

        assert (
            client.delete("/tenants/tenant-a/gateways/gw-a", headers=bearer(tokens["admin"])).status_code
            == 204
        )
        assert _eventually(lambda: not _accepted(port, "gw-a", cred_a["password"]))
        assert "gw-a" not in (broker_dir / "acl").read_text()
