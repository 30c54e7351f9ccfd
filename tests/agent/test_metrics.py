"""The agent's optional local Prometheus endpoint, served by `territoire agent run`."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import yaml

from territoire.services import LOOPBACK, MosquittoServer, free_port

from .conftest import agent_doc
from .test_publish import _spawn


def _scrape(port: int, deadline_s: float = 15) -> str:
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/metrics", timeout=2) as answer:
                text: str = answer.read().decode()
                return text
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_metrics_endpoint_reports_buffer_and_link(tmp_path: Path, mqtt_broker: MosquittoServer) -> None:
    port = free_port()
    doc = agent_doc(tmp_path, mqtt_broker.port, gateway_id="gw-metrics")
    doc["metrics"] = {"host": LOOPBACK, "port": port}
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(doc))
    proc = _spawn(path)
    try:
        deadline = time.monotonic() + 15
        text = _scrape(port)
        while "territoire_agent_broker_connected 1.0" not in text and time.monotonic() < deadline:
            time.sleep(0.2)
            text = _scrape(port)
        for name in ("buffer_readings", "dropped_readings", "clock_synced", "pending_switch_offs"):
            assert f"territoire_agent_{name} " in text
        assert "territoire_agent_broker_connected 1.0" in text
    finally:
        proc.terminate()
        proc.wait(15)
        assert proc.stderr is not None
        proc.stderr.close()
