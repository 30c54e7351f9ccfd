"""The README's run command: `territoire demo` starts every service and stops cleanly."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from territoire.services import LOOPBACK, free_port

# Starts Python with SIGINT ignored, as a shell does for a command run in the background.
SIGINT_IGNORED = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
)


@pytest.mark.parametrize(
    ("stop_signal", "launcher"),
    [(signal.SIGINT, []), (signal.SIGINT, ["-c", SIGINT_IGNORED]), (signal.SIGTERM, [])],
    ids=["ctrl-c", "ctrl-c-when-started-in-the-background", "sigterm"],
)
def test_demo_starts_broker_database_ingest_and_api_then_stops_on_a_signal(
    stop_signal: signal.Signals, launcher: list[str]
) -> None:
    data = Path(tempfile.mkdtemp(prefix="territoire-demo-"))
    data.chmod(0o755)
    port = free_port()
    command = [
        sys.executable,
        *launcher,
        "-m",
        "territoire.cli",
        "demo",
        "--data-dir",
        str(data),
        "--api-port",
        str(port),
    ]
    demo = subprocess.Popen(
        [*command, "--no-simulators"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output: list[str] = []
    try:
        assert demo.stdout is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = demo.stdout.readline()
            if not line:
                break
            output.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        text = "".join(output)
        assert "territoire is running" in text, text
        assert f"http://{LOOPBACK}:{port}/" in text
        with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/readyz", timeout=10) as answer:
            assert json.load(answer) == {"status": "ready"}
        login = json.loads((data / "login.json").read_text())
        assert f"{login['username']} / {login['password']}" in text
        services = _services_of(data)
        assert len(services) >= 4  # broker, PostgreSQL (and its workers), ingest, the API
        demo.send_signal(stop_signal)
        try:
            # Generous: PostgreSQL's shutdown checkpoint fsyncs, slow while the disk is busy.
            assert demo.wait(120) == 0
        except subprocess.TimeoutExpired:
            logs = {
                name: (data / name).read_text()[-2000:]
                for name in ("ingest.log", "api.log")
                if (data / name).exists()
            }
            raise AssertionError(
                f"the demo did not stop within 120 s after {stop_signal.name}; logs: {logs}"
            ) from None
        assert not (data / "postgres/data/postmaster.pid").exists(), "PostgreSQL left running"
        assert not _services_of(data), "services left running"
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait(10)
        for pid in _services_of(data):  # never leave them to the next tests (they hold the demo's ports)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if demo.stdout is not None:
            demo.stdout.close()
        shutil.rmtree(data, ignore_errors=True)


def _services_of(data: Path) -> list[int]:
    """Pids of what the demo started: ingest and the API (their command lines name its database
    port), the broker and PostgreSQL (theirs name its data directory)."""
    ports = json.loads((data / "ports.json").read_text()) if (data / "ports.json").exists() else {}
    markers = [str(data).encode()] + (
        [f"127.0.0.1:{ports['postgres']}/".encode()] if "postgres" in ports else []
    )
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"demo" not in argv and any(marker in arg for arg in argv for marker in markers):
            found.append(int(entry.name))
    return found
