"""The production deployment files: compose structure and the shipped broker config.

No Docker engine runs here, so compose.yml is checked structurally; the
Mosquitto configuration in deploy/ is started for real (paths moved to a
temporary directory) to prove TLS, authentication and ACLs behave as documented.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from api.broker_acl import BrokerFiles
from territoire.services import LOOPBACK, find_mosquitto, free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yml").read_text())
    return loaded


def test_compose_has_the_documented_services() -> None:
    services = _compose()["services"]
    assert {"mosquitto", "timescaledb", "migrate", "ingest-1", "ingest-2", "api", "grafana"} <= set(services)
    assert services["grafana"]["profiles"] == ["grafana"]
    assert services["timescaledb"]["image"].startswith("timescale/timescaledb:")
    assert "healthcheck" in services["timescaledb"]


def test_ingest_workers_share_one_subscription_with_distinct_sessions() -> None:
    services = _compose()["services"]
    commands = [services[name]["command"] for name in ("ingest-1", "ingest-2")]
    groups = {cmd[cmd.index("--share-group") + 1] for cmd in commands}
    client_ids = {cmd[cmd.index("--client-id") + 1] for cmd in commands}
    assert len(groups) == 1
    assert len(client_ids) == 2


def test_api_and_broker_share_the_broker_files_and_the_api_reloads_the_broker() -> None:
    services = _compose()["services"]
    api, broker = services["api"], services["mosquitto"]
    command = api["command"]
    acl_dir = command[command.index("--broker-acl-dir") + 1]
    shared = {v.split(":")[0] for v in api["volumes"] if v.split(":")[1] == acl_dir}
    assert len(shared) == 1 and not next(iter(shared)).startswith(".")  # a named volume
    config = (DEPLOY / "mosquitto/mosquitto.conf").read_text()
    mounted = {v.split(":")[1] for v in broker["volumes"] if v.split(":")[0] in shared}
    assert len(mounted) == 1
    for key in ("password_file", "acl_file"):
        path = next(line.split()[1] for line in config.splitlines() if line.startswith(key))
        assert str(Path(path).parent) == next(iter(mounted)), f"{key} is not on the shared volume"
    # SIGHUP to the broker, PID 1 of the shared PID namespace, from the uid it runs as.
    assert api["pid"] == "service:mosquitto" and api["user"].split(":")[0] == "1883"
    assert command[command.index("--broker-reload-command") + 1] == "sh -c 'kill -HUP 1'"
    seeding = services["broker-files"]
    assert {v.split(":")[0] for v in seeding["volumes"]} >= shared
    assert broker["depends_on"]["broker-files"]["condition"] == "service_completed_successfully"
    # Platform services authenticate (the broker refuses anonymous clients).
    for name in ("api", "ingest-1", "ingest-2"):
        assert (
            "--mqtt-username" in services[name]["command"]
            and "--mqtt-password-env" in services[name]["command"]
        )


def test_compose_mounts_only_files_that_exist() -> None:
    for name, service in _compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_grafana_dashboard_reads_the_api_relations() -> None:
    dashboard = json.loads((DEPLOY / "grafana/dashboards/territoire-overview.json").read_text())
    sql = " ".join(t["rawSql"] for p in dashboard["panels"] for t in p["targets"])
    for relation in ("readings_daily", "readings_hourly", "gateways"):
        assert relation in sql


# --------------------------------------------------------------------------- the shipped broker config


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _certificates(directory: Path) -> None:
    directory.mkdir(parents=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=territoire test CA",
             "-keyout", "ca.key", "-out", "ca.crt", cwd=directory)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={LOOPBACK}",
             "-keyout", "server.key", "-out", "server.csr", cwd=directory)  # fmt: skip
    (directory / "san.ext").write_text(f"subjectAltName=IP:{LOOPBACK}\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-extfile", "san.ext", "-out", "server.crt", cwd=directory)  # fmt: skip
    for name in ("server.key", "ca.key"):
        (directory / name).chmod(0o644)  # mosquitto drops privileges before reading them


GATEWAY_ACL = """
user gw-a
topic write territoire/v1/tenant-a/gw-a/up
topic write territoire/v1/tenant-a/gw-a/status
topic write territoire/v1/tenant-a/gw-a/cmd/result
topic read territoire/v1/tenant-a/gw-a/cmd
"""


def _init_broker_files(directory: Path) -> None:
    environment = {"PATH": os.environ["PATH"], "BROKER_DIR": str(directory),
                   "ACL_TEMPLATE": str(DEPLOY / "mosquitto/acl"),
                   "INGEST_MQTT_PASSWORD": "secret-ingest", "API_MQTT_PASSWORD": "secret-api"}  # fmt: skip
    subprocess.run(["sh", str(DEPLOY / "mosquitto/init-broker-files.sh")], env=environment, check=True)


@pytest.fixture(scope="module")
def shipped_broker() -> Any:
    # Not under pytest's tmp dir: its parents are private and mosquitto drops root.
    work = Path(tempfile.mkdtemp(prefix="territoire-deploy-"))
    work.chmod(0o755)
    _certificates(work / "certs")
    plain_port, tls_port = free_port(), free_port()
    config = (DEPLOY / "mosquitto/mosquitto.conf").read_text()
    config = config.replace("/mosquitto/config/", f"{work}/").replace("/mosquitto/data/", f"{work}/data/")
    config = config.replace("/mosquitto/broker/", f"{work}/broker/")
    config = config.replace("listener 1883", f"listener {plain_port} {LOOPBACK}")
    config = config.replace("listener 8883", f"listener {tls_port} {LOOPBACK}")
    (work / "data").mkdir()
    (work / "mosquitto.conf").write_text(config)
    # As in compose.yml: broker-files seeds the shared directory, the API registers a gateway in it,
    # and a later `up` runs broker-files again, which must keep that gateway.
    broker = work / "broker"
    broker.mkdir()
    _init_broker_files(broker)
    BrokerFiles(broker).register("gw-a", "secret-a", [("gw-a", "tenant-a")])
    _init_broker_files(broker)
    assert GATEWAY_ACL.strip() in (broker / "acl").read_text()
    subprocess.run(["chmod", "-R", "a+rX", str(work)], check=True)
    subprocess.run(["chmod", "a+rwx", str(work / "data")], check=True)
    process = subprocess.Popen([find_mosquitto(), "-c", str(work / "mosquitto.conf")], start_new_session=True)
    try:
        wait_for_port(tls_port, 10, process)
        yield {"plain": plain_port, "tls": tls_port, "ca": str(work / "certs/ca.crt")}
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(work, ignore_errors=True)


def _client(broker: dict[str, Any], user: str | None, password: str | None, *, tls: bool) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    if user is not None:
        client.username_pw_set(user, password)
    if tls:
        client.tls_set(ca_certs=broker["ca"], tls_version=ssl.PROTOCOL_TLS_CLIENT)
    return client


def _connect(client: mqtt.Client, port: int) -> int:
    """Connects and returns the CONNACK reason code's value (0 = accepted)."""
    answered = threading.Event()
    outcome: list[int] = []

    def on_connect(_c: mqtt.Client, _u: object, _f: object, reason: Any, _p: object) -> None:
        outcome.append(int(reason.value))
        answered.set()

    client.on_connect = on_connect
    client.connect(LOOPBACK, port)
    client.loop_start()
    answered.wait(10)
    return outcome[0] if outcome else -1


def test_anonymous_clients_are_refused(shipped_broker: dict[str, Any]) -> None:
    client = _client(shipped_broker, None, None, tls=True)
    try:
        assert _connect(client, shipped_broker["tls"]) != 0
    finally:
        client.loop_stop()


def test_gateway_port_speaks_tls_only(shipped_broker: dict[str, Any]) -> None:
    with socket.create_connection((LOOPBACK, shipped_broker["tls"]), timeout=5) as raw:
        raw.sendall(b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00")  # plaintext CONNECT
        raw.settimeout(5)
        try:
            answer = raw.recv(4)
        except (ConnectionResetError, TimeoutError):
            answer = b""
    assert not answer.startswith(b"\x20")  # never a CONNACK over plaintext


def test_gateway_publishes_only_into_its_own_topics(shipped_broker: dict[str, Any]) -> None:
    received: list[str] = []
    ingest = _client(shipped_broker, "territoire-ingest", "secret-ingest", tls=False)
    ingest.on_message = lambda _c, _u, message: received.append(message.topic)
    assert _connect(ingest, shipped_broker["plain"]) == 0
    ingest.subscribe("territoire/v1/+/+/up", qos=1)
    gateway = _client(shipped_broker, "gw-a", "secret-a", tls=True)
    try:
        assert _connect(gateway, shipped_broker["tls"]) == 0
        time.sleep(0.3)
        for topic in (
            "territoire/v1/tenant-b/gw-b/up",
            "territoire/v1/tenant-a/gw-b/up",
            "territoire/v1/tenant-a/gw-a/up",
        ):
            gateway.publish(topic, b"{}", qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 5
        while "territoire/v1/tenant-a/gw-a/up" not in received and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        assert received == ["territoire/v1/tenant-a/gw-a/up"]
    finally:
        gateway.loop_stop()
        ingest.loop_stop()
