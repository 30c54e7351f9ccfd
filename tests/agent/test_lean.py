"""Start-up memory: no pydantic in the agent; OpenSSL only when TLS or metrics are configured."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from territoire.services import MosquittoServer
from territoire_kernel.messages import GatewayState, Status

from .conftest import Listener, agent_doc
from .test_publish import ROOT, _spawn

# What `territoire agent run` imports before its threads start, in a fresh interpreter.
START = """
import json, sys
from pathlib import Path
from edge_agent.config import load_config
from edge_agent.lean import import_mqtt_without_openssl, needs_openssl
config = load_config(Path(sys.argv[1]))
lean = not needs_openssl(config) and import_mqtt_without_openssl()
import edge_agent.agent, edge_agent.cli, edge_agent.sources.modbus, hashlib
edge_agent.cli.load_catalog()
assert hashlib.sha256(b"abc").hexdigest().startswith("ba7816bf")
heavy = ("ssl", "_hashlib", "pydantic", "pydantic_core", "quickjs", "numpy", "pymodbus")
print(json.dumps({"lean": lean, "loaded": sorted(m for m in heavy if m in sys.modules)}))
"""


def _modbus() -> dict[str, Any]:
    return {
        "type": "modbus_tcp",
        "name": "armoire",
        "host": "127.0.0.1",
        "port": 1502,
        "devices": [{"device_id": "armoire-1", "slave_id": 1, "profile": "schneider-iem3155"}],
    }


@pytest.mark.parametrize(
    ("overrides", "lean", "loaded"),
    [
        ({}, True, []),
        ({"mqtt": {"tls": True}}, False, ["_hashlib", "ssl"]),
        ({"metrics": {"port": 9108}}, False, ["_hashlib", "ssl"]),
        (
            {"sources": [{"type": "chirpstack", "name": "lns", "broker": {"host": "h", "tls": True},
                          "devices": [{"device_id": "d", "profile": "dragino-ldds75", "dev_eui": "00" * 8}]}]},
            False,
            ["_hashlib", "ssl"],
        ),
    ],
)  # fmt: skip
def test_start_up_loads_only_what_the_config_needs(
    tmp_path: Path, overrides: dict[str, Any], lean: bool, loaded: list[str]
) -> None:
    doc = agent_doc(tmp_path, 1883, **({"sources": [_modbus()]} | overrides))
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(doc))
    done = subprocess.run(
        [sys.executable, "-c", START, str(path)], cwd=ROOT, capture_output=True, text=True, check=True
    )
    result = json.loads(done.stdout)
    assert result["lean"] is lean
    assert result["loaded"] == loaded, result  # never pydantic, QuickJS or pymodbus


def test_agent_without_tls_runs_without_openssl(
    tmp_path: Path, mqtt_broker: MosquittoServer, listen: Callable[..., Listener]
) -> None:
    doc = agent_doc(tmp_path, mqtt_broker.port, gateway_id="gw-lean")
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(doc))
    listener = listen("territoire/v1/is-sur-tille/gw-lean/status")
    proc = _spawn(path)
    try:
        listener.wait_for(
            lambda s: any(st.state is GatewayState.ONLINE for st in s.of_type(Status)), timeout=15
        )
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
    finally:
        proc.terminate()
        proc.wait(15)
        assert proc.stderr is not None
        proc.stderr.close()
    assert "libcrypto" not in maps and "libssl" not in maps


def test_a_paho_that_needs_ssl_at_import_still_starts(tmp_path: Path) -> None:
    # A stand-in paho whose client imports ssl unconditionally: the saving is given up, not the start.
    client = tmp_path / "paho" / "mqtt" / "client.py"
    client.parent.mkdir(parents=True)
    (tmp_path / "paho" / "__init__.py").write_text("")
    (client.parent / "__init__.py").write_text("")
    client.write_text("import ssl\nTLS = ssl.PROTOCOL_TLS_CLIENT\n")
    script = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from edge_agent.lean import import_mqtt_without_openssl\n"
        "assert import_mqtt_without_openssl() is False\n"
        "assert not any(m == 'paho' or m.startswith('paho.') for m in sys.modules)\n"
        "import paho.mqtt.client as c, ssl\n"
        "print(c.TLS == ssl.PROTOCOL_TLS_CLIENT)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"
