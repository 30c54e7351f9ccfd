"""The README's run command: `territoire demo` starts every service and stops cleanly."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from territoire.services import LOOPBACK, free_port


def test_demo_starts_broker_database_ingest_and_api_then_stops_on_ctrl_c() -> None:
    data = Path(tempfile.mkdtemp(prefix="territoire-demo-"))
    data.chmod(0o755)
    port = free_port()
    command = [
        sys.executable,
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
        demo.send_signal(signal.SIGINT)
        try:
            # Generous: PostgreSQL's shutdown checkpoint fsyncs, slow while the disk is busy.
            assert demo.wait(120) == 0
        except subprocess.TimeoutExpired:
            logs = {
                name: (data / name).read_text()[-2000:]
                for name in ("ingest.log", "api.log")
                if (data / name).exists()
            }
            raise AssertionError(f"the demo did not stop within 120 s after Ctrl-C; logs: {logs}") from None
        assert not (data / "postgres/data/postmaster.pid").exists(), "PostgreSQL left running"
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait(10)
        if demo.stdout is not None:
            demo.stdout.close()
        shutil.rmtree(data, ignore_errors=True)
