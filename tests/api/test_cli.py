"""`territoire api ...`: accounts and tokens from the command line, a served API that stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from territoire.services import free_port

from .conftest import bearer

TERRITOIRE = [str(Path(sys.executable).with_name("territoire"))]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TERRITOIRE, "api", *args], capture_output=True, text=True, timeout=60, check=False
    )


def _wait_healthy(url: str, process: subprocess.Popen[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the API exited early: {process.communicate()[1]}"
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("the API did not answer /healthz in time")


def test_accounts_and_tokens_from_the_command_line(api_dsn: str) -> None:
    refused = _cli("user", "someone", "--dsn", api_dsn, "--role", "viewer")
    assert refused.returncode == 1 and "needs at least one tenant" in refused.stderr

    made = _cli("user", "agent-a", "--dsn", api_dsn, "--role", "viewer", "--tenant", "tenant-a")
    assert made.returncode == 0, made.stderr
    issued = _cli("token", "agent-a", "--dsn", api_dsn)
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip()
    token_id, _, secret = token.partition(".")
    assert len(token_id) == 16 and len(secret) >= 40

    unknown = _cli("token", "nobody", "--dsn", api_dsn)
    assert unknown.returncode == 1 and "no active account" in unknown.stderr


def test_api_run_serves_and_stops_cleanly_on_sigterm(api_dsn: str) -> None:
    assert (
        _cli("user", "viewer-a", "--dsn", api_dsn, "--role", "viewer", "--tenant", "tenant-a").returncode == 0
    )
    token = _cli("token", "viewer-a", "--dsn", api_dsn).stdout.strip()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [*TERRITOIRE, "api", "run", "--dsn", api_dsn, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_healthy(url, process)
        answer = httpx.get(f"{url}/tenants", headers=bearer(token), timeout=5)
        assert answer.status_code == 200
        assert [t["id"] for t in answer.json()] == ["tenant-a"]
        assert httpx.get(f"{url}/tenants", timeout=5).status_code == 401

        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    # The lifespan exit ran: the connection pool and the alert loop were closed, not abandoned.
    assert "Application shutdown complete" in stderr
    assert token not in stderr


def test_api_run_writes_the_broker_files_and_reloads_the_broker(api_dsn: str, tmp_path: Path) -> None:
    """compose.yml relies on these options: a registered gateway reaches the broker's files at once."""
    assert (
        _cli("user", "tech-a", "--dsn", api_dsn, "--role", "technician", "--tenant", "tenant-a").returncode
        == 0
    )
    token = _cli("token", "tech-a", "--dsn", api_dsn).stdout.strip()
    broker_dir, reloaded = tmp_path / "broker", tmp_path / "reloaded"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [*TERRITOIRE, "api", "run", "--dsn", api_dsn, "--host", "127.0.0.1", "--port", str(port),
         "--mqtt-username", "territoire-api", "--mqtt-password-env", "API_MQTT_PASSWORD",
         "--broker-acl-dir", str(broker_dir), "--broker-reload-command", f"touch '{reloaded}'"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "API_MQTT_PASSWORD": "api-secret"},
    )  # fmt: skip
    try:
        _wait_healthy(url, process)
        created = httpx.post(f"{url}/tenants/tenant-a/gateways", json={"id": "gw-cli"}, headers=bearer(token))
        assert created.status_code == 201, created.text
        assert created.json()["mqtt"]["broker_files_written"] is True
        assert "user gw-cli" in (broker_dir / "acl").read_text()
        assert (broker_dir / "passwd").read_text().startswith("gw-cli:")
        assert reloaded.exists()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert "api-secret" not in stderr


def test_api_run_refuses_a_missing_password_variable(api_dsn: str) -> None:
    done = subprocess.run(
        [*TERRITOIRE, "api", "run", "--dsn", api_dsn, "--mqtt-password-env", "NOT_SET_ANYWHERE"],
        capture_output=True, text=True, timeout=60, check=False,
        env={k: v for k, v in os.environ.items() if k != "NOT_SET_ANYWHERE"},
    )  # fmt: skip
    assert done.returncode != 0 and "NOT_SET_ANYWHERE" in done.stderr
