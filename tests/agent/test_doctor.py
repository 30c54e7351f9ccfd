"""`territoire agent doctor`: one OK/FAIL line per check, with what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from edge_agent import cli
from territoire.services import MosquittoServer, free_port

from .conftest import agent_doc


def test_doctor_reports_each_check(
    tmp_path: Path, mqtt_broker: MosquittoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(agent_doc(tmp_path, mqtt_broker.port)))
    assert cli.doctor(path) == 0
    out = capsys.readouterr().out
    for check in ("config", "broker", "clock", "disk", "buffer directory", "buffer"):
        assert f"OK   {check}:" in out, out

    path.write_text(
        yaml.safe_dump(
            agent_doc(
                tmp_path, free_port(), clock={"policy": "marker", "marker_file": str(tmp_path / "none")}
            )
        )
    )
    assert cli.doctor(path) == 1
    out = capsys.readouterr().out
    assert "FAIL broker:" in out and "-> check host, port" in out
    assert "FAIL clock:" in out and "systemd-timesyncd" in out
