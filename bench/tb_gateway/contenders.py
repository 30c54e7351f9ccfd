"""The Modbus TCP simulator, and the two gateways configured from the same firmware profile.

The simulator runs in its own process and records when each unit's marker
register (the profile's power register) is read: one read per poll for either
gateway, whatever blocks it groups registers into. That is the count of polls
the gateways made, independent of what they report.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, ClassVar

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from firmware_profiles import load_catalog
from firmware_profiles.registers import Point
from territoire.services import stop_process
from territoire_kernel.wire import decode

from .measure import Key

ROOT = Path(__file__).resolve().parents[2]
PROFILE = "schneider-iem3155"
MARKER_METRIC = "power_w"
TENANT, GATEWAY = "bench", "gw-bench"
AGENT_TOPIC = f"territoire/v1/{TENANT}/{GATEWAY}/up"
TB_TOPIC = "v1/gateway/telemetry"
# Pinned so figures are reproducible: the release measured in docs/benchmarks.md. Override with --tb-spec.
TB_DEFAULT_SPEC = "thingsboard-gateway==3.8.5"
# The connector pip-installs these at import time when missing; installed up front instead.
TB_CONNECTOR_DEPS = ("pymodbus==3.9.2", "pyserial", "pyserial-asyncio")


def profile_points(profile: str = PROFILE) -> list[Point]:
    register_map = load_catalog().get(profile).register_map
    if register_map is None:
        raise ValueError(f"profile {profile} has no Modbus register map")
    return list(register_map.points)


def device_name(unit: int) -> str:
    return f"meter-{unit}"


# --------------------------------------------------------------------------- simulator


def _simulator_main(devices: int, marker: int, conn: Connection) -> None:
    from simulators.devices.meters import LightingCircuit
    from simulators.devices.modbus_server import ModbusTcpSimulator

    polls: dict[int, list[float]] = {u: [] for u in range(1, devices + 1)}
    units = {}
    for unit in range(1, devices + 1):
        circuit = LightingCircuit("iem3155", load_w=600.0 + unit)
        circuit.relay.switch(0, True)
        meter = circuit.meter
        original = meter.read

        def read(function: str, address: int, count: int, _u: int = unit, _read: Any = original) -> Any:
            if function == "holding" and address <= marker < address + count:
                polls[_u].append(time.time())
            return _read(function, address, count)

        meter.read = read  # type: ignore[method-assign]
        units[unit] = meter
    server = ModbusTcpSimulator(units)
    server.start()
    conn.send(server.port)
    while True:
        request = conn.recv()
        if request[0] == "polls":
            _, t0, t1 = request
            conn.send({device_name(u): [t for t in ts if t0 <= t <= t1] for u, ts in polls.items()})
        else:
            break
    server.stop()


class Simulator:
    def __init__(self, devices: int):
        points = {p.metric: p for p in profile_points()}
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_simulator_main, args=(devices, points[MARKER_METRIC].address, child), daemon=True
        )
        self.process.start()
        self.port: int = self._conn.recv()

    def polls(self, t0: float, t1: float) -> dict[str, list[float]]:
        """device -> wall-clock times of the polls answered in [t0, t1]."""
        self._conn.send(("polls", t0, t1))
        result: dict[str, list[float]] = self._conn.recv()
        return result

    def count(self, t0: float, t1: float) -> int:
        return sum(len(v) for v in self.polls(t0, t1).values())

    def close(self) -> None:
        self._conn.send(("stop",))
        self.process.join(10)


# --------------------------------------------------------------------------- processes


class Contender:
    """A gateway as a process, with how to recognise its readings on the broker."""

    name = ""
    topics: Sequence[str] = ()

    def __init__(self, workdir: Path, devices: int, interval_s: float, modbus_port: int):
        self.workdir, self.devices, self.interval_s, self.modbus_port = (
            workdir,
            devices,
            interval_s,
            modbus_port,
        )
        self.proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    def command(self, broker_port: int) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError

    @staticmethod
    def decode(topic: str, payload: bytes) -> Iterable[Key]:
        raise NotImplementedError

    def start(self, broker_port: int) -> int:
        args, env = self.command(broker_port)
        with (self.workdir / "process.log").open("ab") as log:
            self.proc = subprocess.Popen(
                args, cwd=self.workdir, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT
            )
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGTERM, 20)

    def log_tail(self, chars: int = 3000) -> str:
        path = self.workdir / "process.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""


class EdgeAgent(Contender):
    name = "territoire edge agent"
    topics = (AGENT_TOPIC,)

    def command(self, broker_port: int) -> tuple[list[str], dict[str, str]]:
        devices = [
            {
                "device_id": device_name(u),
                "slave_id": u,
                "profile": PROFILE,
                "poll_interval_s": self.interval_s,
            }
            for u in range(1, self.devices + 1)
        ]
        doc = {
            "tenant": TENANT,
            "gateway_id": GATEWAY,
            # Defaults otherwise; reconnect back-off capped at 10 s (default 120) so a run's
            # recovery is not dominated by where the back-off happened to be.
            "mqtt": {"host": "127.0.0.1", "port": broker_port, "tls": False, "reconnect_max_s": 10},
            "buffer": {"path": str(self.workdir / "buffer.sqlite3")},
            "clock": {"policy": "trusted"},
            "sources": [
                {"type": "modbus_tcp", "name": "bench", "host": "127.0.0.1", "port": self.modbus_port,
                 "devices": devices}
            ],
        }  # fmt: skip
        for stale in self.workdir.glob("buffer.sqlite3*"):
            stale.unlink()
        config = self.workdir / "agent.yaml"
        config.write_text(yaml.safe_dump(doc))
        cli = "import sys; from territoire.cli import main; sys.exit(main(sys.argv[1:]))"
        return [sys.executable, "-c", cli, "agent", "run", str(config)], {"PYTHONPATH": str(ROOT)}

    @staticmethod
    def decode(topic: str, payload: bytes) -> Iterable[Key]:
        message = decode(payload)
        for r in getattr(message, "readings", ()):
            yield r.device_id, r.metric, r.time_us // 1000


# --------------------------------------------------------------------------- thingsboard-gateway

_TB_TYPES = {"f32": "32float", "f64": "64float", "u16": "16uint", "s16": "16int", "u32": "32uint",
             "s32": "32int", "u64": "64uint", "s64": "64int"}  # fmt: skip
_TB_FUNCTIONS = {"holding": 3, "input": 4}


def tb_timeseries(points: Sequence[Point]) -> list[dict[str, Any]]:
    """The profile's register map as thingsboard-gateway Modbus timeseries entries."""
    out = []
    for p in points:
        if p.function not in _TB_FUNCTIONS or p.type not in _TB_TYPES or p.offset:
            raise ValueError(f"{p.metric}: no thingsboard-gateway equivalent for {p.function}/{p.type}")
        entry: dict[str, Any] = {
            "tag": p.metric,
            "type": _TB_TYPES[p.type],
            "functionCode": _TB_FUNCTIONS[p.function],
            "objectsCount": p.words,
            "address": p.address,
        }
        if p.scale > 1:
            entry["multiplier"] = p.scale
        elif p.scale < 1:
            entry["divider"] = round(1 / p.scale, 9)
        out.append(entry)
    return out


def tb_venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def tb_version(venv: Path) -> str | None:
    python = tb_venv_python(venv)
    if not python.exists():
        return None
    probe = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('thingsboard-gateway'))"],
        capture_output=True,
        text=True,
    )
    return probe.stdout.strip() if probe.returncode == 0 else None


def ensure_tb_gateway(venv: Path, spec: str = TB_DEFAULT_SPEC) -> str:
    """Install thingsboard-gateway into its own virtualenv (never the project's); returns its version.

    Raises RuntimeError with pip's own words when it cannot be installed.
    """
    version = tb_version(venv)
    pinned = spec.split("==", 1)[1].strip() if "==" in spec else None
    if version is not None and pinned in (None, version):
        return version
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(tb_venv_python(venv)), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    for what in ([spec], list(TB_CONNECTOR_DEPS)):
        done = subprocess.run([*pip, *what], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"pip install {' '.join(what)} failed:\n{done.stderr[-3000:]}")
    version = tb_version(venv)
    if version is None:
        raise RuntimeError("thingsboard-gateway installed but not importable")
    return version


class TbGateway(Contender):
    name = "thingsboard-gateway"
    topics = (TB_TOPIC,)
    venv: Path = Path()
    storage = "memory"

    def command(self, broker_port: int) -> tuple[list[str], dict[str, str]]:
        python = tb_venv_python(self.venv)
        package = Path(
            subprocess.run(
                [str(python), "-c", "import thingsboard_gateway, os; print(os.path.dirname(thingsboard_gateway.__file__))"],
                capture_output=True, text=True, check=True,
            ).stdout.strip()
        )  # fmt: skip
        config_dir = self.workdir / "config"
        for stale in ("data", "logs", "config"):
            shutil.rmtree(self.workdir / stale, ignore_errors=True)
        (self.workdir / "logs").mkdir()
        (self.workdir / "data").mkdir()
        shutil.copytree(package / "config", config_dir)
        # Its shipped defaults, pointed at our broker, without the ThingsBoard server's remote configuration.
        main = json.loads((config_dir / "tb_gateway.json").read_text())
        tb = main["thingsboard"]
        tb.update(host="127.0.0.1", port=broker_port, remoteConfiguration=False, remoteShell=False)
        tb["security"] = {"type": "accessToken", "accessToken": "bench-token"}
        tb["reportStrategy"] = {"type": "ON_RECEIVED"}  # every poll reported, as our agent does
        if self.storage == "sqlite":
            main["storage"] = {"type": "sqlite", "data_file_path": str(self.workdir / "data" / "data.db"),
                               "messages_ttl_check_in_hours": 1, "messages_ttl_in_days": 7,
                               "max_read_records_count": 1000}  # fmt: skip
        main["connectors"] = [{"type": "modbus", "name": "bench", "configuration": "modbus.json"}]
        (config_dir / "tb_gateway.json").write_text(json.dumps(main, indent=2))
        slaves = [
            {
                "host": "127.0.0.1", "port": self.modbus_port, "type": "tcp", "method": "socket",
                "unitId": u, "deviceName": device_name(u), "deviceType": "meter",
                "timeout": 0.5, "byteOrder": "BIG", "wordOrder": "BIG", "retries": 1,
                "retryOnEmpty": True, "retryOnInvalid": True, "pollPeriod": int(self.interval_s * 1000),
                "connectAttemptTimeMs": 1000, "connectAttemptCount": 5, "waitAfterFailedAttemptsMs": 10000,
                "attributes": [], "timeseries": tb_timeseries(profile_points()),
                "attributeUpdates": [], "rpc": [],
            }
            for u in range(1, self.devices + 1)
        ]  # fmt: skip
        (config_dir / "modbus.json").write_text(json.dumps({"master": {"slaves": slaves}}, indent=2))
        args = [str(python), "-c", "from thingsboard_gateway.tb_gateway import daemon; daemon()"]
        return args, {"TB_GW_CONFIG_DIR": str(config_dir) + "/"}

    @staticmethod
    def decode(topic: str, payload: bytes) -> Iterable[Key]:
        doc = json.loads(payload)
        for device, entries in doc.items():
            for entry in entries if isinstance(entries, list) else [entries]:
                ts = int(entry.get("ts", 0))
                for metric in entry.get("values", {}):
                    yield device, metric, ts


class TbServerStub:
    """Answers the one RPC that thingsboard-gateway waits for before it publishes any telemetry.

    On its first connection the gateway asks the ThingsBoard server for its session
    limits (RPC "getSessionLimits" on v1/devices/me/rpc/request/<id>) and sends no data
    until an answer arrives: with a bare broker it polls and buffers for ever. We answer
    as a ThingsBoard CE server with default transport settings and no rate limits.
    """

    LIMITS: ClassVar[dict[str, Any]] = {
        "maxPayloadSize": 65536, "maxInflightMessages": 100, "rateLimits": {}, "gatewayRateLimits": {},
    }  # fmt: skip

    def __init__(self, broker_port: int):
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="tb-server-stub", clean_session=False
        )
        self.client.reconnect_delay_set(1, 1)
        subscribed = threading.Event()

        def on_connect(client: mqtt.Client, *_args: object) -> None:
            client.subscribe("v1/devices/me/rpc/request/+", qos=1)

        def on_message(client: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
            with contextlib.suppress(ValueError):
                if json.loads(message.payload).get("method") == "getSessionLimits":
                    request_id = message.topic.rsplit("/", 1)[1]
                    client.publish(f"v1/devices/me/rpc/response/{request_id}", json.dumps(self.LIMITS), qos=1)

        self.client.on_connect = on_connect
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.on_message = on_message
        self.client.connect("127.0.0.1", broker_port, keepalive=5)
        self.client.loop_start()
        if not subscribed.wait(10):
            raise RuntimeError("ThingsBoard server stub could not subscribe")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
