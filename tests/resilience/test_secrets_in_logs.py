"""Passwords and tokens never appear in what ingest and the API print, even when things fail.

Both run as real processes (`territoire ingest run`, `territoire api run`) with secrets in
their DSN, MQTT password and bearer tokens; everything they write is captured.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg

from api.migrations import migrate as migrate_api
from api.users import create_user, issue_token
from ingest.migrate import migrate
from territoire.services import MosquittoServer, free_port, wait_for_port

from ..ingest.helpers import wait_for
from .fleet import CLI, ROOT

DSN_PASSWORD = "Dsn-Secret-7c1e9a"
MQTT_PASSWORD = "Mqtt-Secret-4b2d8f"


def _with_password(dsn: str, port: int | None = None) -> str:
    # postgresql://user@host:port/db -> postgresql://user:secret@host:port/db
    scheme, rest = dsn.split("://", 1)
    user, hostpart = rest.split("@", 1)
    if port is not None:
        hostpart = f"127.0.0.1:{port}/" + hostpart.split("/", 1)[1]
    return f"{scheme}://{user}:{DSN_PASSWORD}@{hostpart}"


def _spawn(args: list[str], out: Path, **env: str) -> subprocess.Popen[bytes]:
    with out.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-c", CLI, *args], cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )  # fmt: skip


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)


def test_ingest_never_prints_its_passwords(
    tmp_path: Path, fresh_database: str, mqtt_broker: MosquittoServer
) -> None:
    migrate(fresh_database, "off")
    common = ["--mqtt-host", "127.0.0.1", "--mqtt-port", str(mqtt_broker.port), "--mqtt-username", "ingest"]
    common += ["--mqtt-password-env", "TERRITOIRE_TEST_MQTT_PASSWORD", "--timescale", "off"]
    ok_log, down_log = tmp_path / "ok.log", tmp_path / "down.log"
    proc = _spawn(["ingest", "run", "--dsn", _with_password(fresh_database), *common], ok_log,
                  TERRITOIRE_TEST_MQTT_PASSWORD=MQTT_PASSWORD)  # fmt: skip
    try:
        wait_for(lambda: "connected to MQTT" in ok_log.read_text(), 30, "ingest to connect")
    finally:
        _stop(proc)
    # The database unreachable: the failure is reported, the DSN's password is not.
    dead = _with_password(fresh_database, port=free_port())
    proc = _spawn(
        ["ingest", "run", "--dsn", dead, *common], down_log, TERRITOIRE_TEST_MQTT_PASSWORD=MQTT_PASSWORD
    )
    try:
        proc.wait(30)
    finally:
        _stop(proc)
    output = ok_log.read_text() + down_log.read_text()
    assert "connected to MQTT" in output and proc.returncode != 0
    assert "127.0.0.1" in down_log.read_text()  # the failure names where, not how to get in
    assert DSN_PASSWORD not in output and MQTT_PASSWORD not in output


def test_api_never_prints_passwords_or_tokens(
    tmp_path: Path, fresh_database: str, mqtt_broker: MosquittoServer
) -> None:
    migrate(fresh_database, "off")
    migrate_api(fresh_database)
    with psycopg.connect(fresh_database) as conn:
        conn.execute("INSERT INTO tenants (id, name, kind) VALUES ('t-a', 'A', 'commune')")
        create_user(conn, "admin", "admin", password="Login-Secret-91f3")
        token = issue_token(conn, "admin")
    port = free_port()
    log = tmp_path / "api.log"
    args = ["api", "run", "--dsn", _with_password(fresh_database), "--port", str(port)]
    proc = _spawn([*args, "--mqtt-port", str(mqtt_broker.port)], log)
    forged = token[:-4] + "abcd"
    try:
        wait_for_port(port, 30, proc)
        base = f"http://127.0.0.1:{port}"
        for header in (token, forged, "not-a-token"):
            request = urllib.request.Request(f"{base}/tenants", headers={"Authorization": f"Bearer {header}"})
            try:
                urllib.request.urlopen(request, timeout=10).close()
            except urllib.error.HTTPError as exc:
                exc.close()
        body = b"username=admin&password=Login-Secret-91f3-wrong"
        for _ in range(2):  # a failed login, then with the secret in the query string as well
            request = urllib.request.Request(f"{base}/auth/token?password={MQTT_PASSWORD}", data=body)
            try:
                urllib.request.urlopen(request, timeout=10).close()
            except urllib.error.HTTPError as exc:
                exc.close()
        time.sleep(0.3)
    finally:
        _stop(proc)
    output = log.read_text()
    assert "Uvicorn running" in output or "Application startup complete" in output, output
    for secret in (DSN_PASSWORD, token, forged, "Login-Secret-91f3", MQTT_PASSWORD):
        assert secret not in output, f"{secret!r} printed"
