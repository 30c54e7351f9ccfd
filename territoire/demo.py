"""`territoire demo`: the whole platform on one machine, with embedded defaults.

Starts a local Mosquitto and PostgreSQL (in a data directory of ours), applies
the migrations, then runs ingest and the API as child processes and prints
where to look. Ctrl-C stops everything; data persists unless --reset.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from territoire.services import (
    LOOPBACK,
    MosquittoServer,
    PostgresServer,
    ServiceError,
    free_port,
    wait_for_port,
)


def _data_dir(requested: Path | None) -> Path:
    if requested is not None:
        return requested.resolve()
    local = Path.cwd() / ".territoire"
    # PostgreSQL runs unprivileged: every parent of its directory must be traversable.
    if os.geteuid() != 0 or all(os.stat(p).st_mode & 0o001 for p in local.parents):
        return local
    return Path("/var/lib/territoire-demo")


def _port(saved: dict[str, int], name: str, preferred: int) -> int:
    port = saved.get(name, preferred)
    try:
        import socket

        with socket.socket() as sock:
            sock.bind((LOOPBACK, port))
        return port
    except OSError:
        return free_port()


def _child(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    handle = open(log, "ab")  # noqa: SIM115 - owned by the child
    process = subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    handle.close()
    return process


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


def main(args: argparse.Namespace) -> int:
    data = _data_dir(args.data_dir)
    if args.reset and data.exists():
        print(f"==> removing {data}")
        shutil.rmtree(data)
    data.mkdir(parents=True, exist_ok=True)
    data.chmod(0o755)
    ports_file = data / "ports.json"
    saved = json.loads(ports_file.read_text()) if ports_file.exists() else {}
    ports = {
        "mqtt": _port(saved, "mqtt", 1883),
        "postgres": _port(saved, "postgres", 5433),
        "api": _port(saved, "api", args.api_port),
    }
    ports_file.write_text(json.dumps(ports))

    broker = MosquittoServer(workdir=data / "mosquitto", port=ports["mqtt"])
    database = PostgresServer(workdir=data / "postgres", port=ports["postgres"], durable=True)
    children: list[subprocess.Popen[bytes]] = []
    try:
        print(f"==> starting Mosquitto on {LOOPBACK}:{broker.port}")
        broker.start()
        print(f"==> starting PostgreSQL on {LOOPBACK}:{database.port} (data in {database.datadir})")
        database.start()
        print("==> applying migrations")
        _migrate(database.dsn)
        cli = [sys.executable, "-m", "territoire.cli"]
        print("==> starting ingest")
        children.append(
            _child(
                [
                    *cli,
                    "ingest",
                    "run",
                    "--dsn",
                    database.dsn,
                    "--mqtt-host",
                    LOOPBACK,
                    "--mqtt-port",
                    str(broker.port),
                ],
                data / "ingest.log",
            )
        )
        print("==> starting the API")
        api = _child(
            [
                *cli,
                "api",
                "run",
                "--dsn",
                database.dsn,
                "--host",
                LOOPBACK,
                "--port",
                str(ports["api"]),
                "--mqtt-port",
                str(broker.port),
            ],
            data / "api.log",
        )
        children.append(api)
        wait_for_port(ports["api"], 60, api)
        _print_summary(data, broker, database, ports["api"])
        deadline = None if args.exit_after is None else time.monotonic() + args.exit_after
        while deadline is None or time.monotonic() < deadline:
            for child in children:
                if child.poll() is not None:
                    raise ServiceError(f"a service stopped (exit {child.returncode}); see the logs in {data}")
            time.sleep(0.5)
        return 0
    except KeyboardInterrupt:
        print("\n==> stopping")
        return 0
    finally:
        for child in reversed(children):
            _stop(child)
        with contextlib.suppress(ServiceError):
            database.stop()
        broker.stop()


def _migrate(dsn: str) -> None:
    # Looked up by name: the server packages are optional and land issue by issue.
    for module in ("ingest.migrate", "api.migrations"):
        if importlib.util.find_spec(module) is None:
            print(f"    {module}: not implemented in this build, skipped")
            continue
        importlib.import_module(module).migrate(dsn)


def _print_summary(data: Path, broker: MosquittoServer, database: PostgresServer, api_port: int) -> None:
    base = f"http://{LOOPBACK}:{api_port}"
    print(
        "\n"
        "territoire is running:\n"
        f"  API and OpenAPI docs   {base}/docs\n"
        f"  MQTT broker            mqtt://{LOOPBACK}:{broker.port}\n"
        f"  PostgreSQL             {database.dsn}\n"
        f"  logs and data          {data}\n"
        "Press Ctrl-C to stop.\n",
        flush=True,
    )
