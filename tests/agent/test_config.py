"""Config: one readable error naming the file and the field; JSON Schema export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from edge_agent import cli
from edge_agent.config import load_config
from territoire_kernel.errors import ConfigError

from .conftest import agent_doc


def _write(tmp_path: Path, doc: object) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _modbus(port: object = 502) -> dict[str, object]:
    return {
        "type": "modbus_tcp",
        "name": "armoire",
        "host": "127.0.0.1",
        "port": port,
        "devices": [{"device_id": "relais-1", "slave_id": 2, "profile": "modbus-relay-8"}],
    }


def test_valid_config_loads_with_defaults(tmp_path: Path) -> None:
    path = _write(tmp_path, agent_doc(tmp_path, 1883, sources=[_modbus()]))
    config = load_config(path)
    assert config.gateway_id == "gw-test"
    assert config.sources[0].name == "armoire"
    assert config.buffer.synchronous == "normal"
    assert config.client_id == "territoire-is-sur-tille-gw-test"


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (lambda d: d.update(sources=[_modbus("five-o-two")]), "sources[0].port", "integer"),
        (lambda d: d["mqtt"].update(colour="blue"), "mqtt.colour", "unknown key"),
        (lambda d: d["mqtt"].pop("host"), "mqtt.host", "missing"),
        (lambda d: d.update(gateway_id="GW 1"), "gateway_id", "gateway id"),
        (lambda d: d["buffer"].update(max_bytes=10), "buffer.max_bytes", "greater than or equal"),
        (lambda d: d["mqtt"].update(password="x", password_file="/p"), "mqtt", "not both"),
        (lambda d: d.update(sources=[_modbus(), _modbus()]), "", "duplicate source names"),
    ],
)
def test_errors_name_the_file_and_the_field(tmp_path: Path, change: object, field: str, words: str) -> None:
    doc = agent_doc(tmp_path, 1883)
    change(doc)  # type: ignore[operator]
    path = _write(tmp_path, doc)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:{field}:" if field else f"{path}:"), message
    assert words in message
    assert "\n" not in message


def test_yaml_syntax_error_gives_the_line(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("tenant: x\nmqtt: {host: [\n")
    with pytest.raises(ConfigError, match=r"agent.yaml: YAML syntax error at line \d+"):
        load_config(path)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(tmp_path / "nope.yaml")


def test_check_config_prints_summary_or_the_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = _write(tmp_path, agent_doc(tmp_path, 1883, sources=[_modbus()]))
    assert cli.check_config(good) == 0
    assert "OK" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(agent_doc(tmp_path, 1883, sources=[_modbus(0)])))
    assert cli.check_config(bad) == 2
    assert "sources[0].port" in capsys.readouterr().err


def test_schema_is_json_schema_with_sources() -> None:
    doc = json.loads(cli.schema())
    assert doc["additionalProperties"] is False
    assert {"tenant", "gateway_id", "mqtt", "sources"} <= set(doc["properties"])
    assert "modbus_tcp" in json.dumps(doc)
