"""`territoire demo`: the whole platform on one machine, with embedded defaults.

Starts a local broker and PostgreSQL (in a data directory of ours), applies
the migrations, then runs ingest and the API as child processes and prints
where to look. Ctrl-C stops everything; data persists unless --reset.
Mosquitto and PostgreSQL come from the system when installed, otherwise from
the `territoire[embedded]` extra; TERRITOIRE_EMBEDDED=broker,postgres (or
`--embedded`) forces the embedded ones.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from territoire.services import (
    LOOPBACK,
    MosquittoServer,
    PostgresServer,
    ServiceError,
    embedded_requested,
    free_port,
    make_broker,
    select_postgres_bindir,
    wait_for_port,
)

if TYPE_CHECKING:
    from territoire.embedded_broker import EmbeddedBroker


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
            # As the servers bind: a port left in TIME_WAIT by the last run is still ours.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((LOOPBACK, port))
        return port
    except OSError:
        return free_port()


def _child(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    handle = open(log, "ab")  # noqa: SIM115 - owned by the child
    process = subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    handle.close()
    return process


def _stop_all(processes: list[subprocess.Popen[bytes]], grace_s: float = 15) -> None:
    """SIGTERM to every child at once (they are independent), then SIGKILL what is left after the grace."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for process in processes:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


SCENARIOS = (
    ("is-sur-tille", "éclairage public d'Is-sur-Tille 2021-2023"),
    ("montbeliard", "conteneurs de biodéchets du Pays de Montbéliard"),
    ("parking", "stationnement sur voirie"),
)


class _StopRequested(KeyboardInterrupt):
    """Like Ctrl-C, for SIGINT and SIGTERM alike: stop the services, then exit 0."""


def _request_stop(signum: int, frame: object) -> None:
    raise _StopRequested(signal.Signals(signum).name)


def main(args: argparse.Namespace) -> int:
    # Installed explicitly: a shell starting us in the background leaves SIGINT ignored (then Python
    # never raises KeyboardInterrupt), and SIGTERM (systemd, docker stop) would otherwise leave the
    # services, which run in their own sessions, behind.
    signal.signal(signal.SIGINT, _request_stop)
    signal.signal(signal.SIGTERM, _request_stop)
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

    # --embedded (when the command line offers it) overrides TERRITOIRE_EMBEDDED; None: read it.
    requested = "all" if getattr(args, "embedded", False) else None
    broker = make_broker(data / "mosquitto", ports["mqtt"], embedded=embedded_requested("broker", requested))
    if not isinstance(broker, MosquittoServer):
        broker.workdir = data / "broker"
    bindir = select_postgres_bindir(embedded=embedded_requested("postgres", requested))
    database = PostgresServer(workdir=data / "postgres", port=ports["postgres"], durable=True, bindir=bindir)
    children: list[subprocess.Popen[bytes]] = []
    cli = [sys.executable, "-m", "territoire.cli"]
    try:
        print(f"==> starting {broker.description} on {LOOPBACK}:{broker.port}")
        broker.start()
        print(
            f"==> starting {database.description} on {LOOPBACK}:{database.port} (data in {database.datadir})"
        )
        database.start()
        print("==> applying migrations")
        _migrate(database.dsn)
        login = _demo_account(database.dsn, data)
        print("==> starting ingest")
        mqtt = ["--mqtt-host", LOOPBACK, "--mqtt-port", str(broker.port)]
        ingest = [*cli, "ingest", "run", "--dsn", database.dsn, *mqtt, "--lns", "chirpstack"]
        children.append(_child([*ingest, "--metrics-port", str(free_port())], data / "ingest.log"))
        print("==> starting the API")
        api_args = ["--dsn", database.dsn, "--host", LOOPBACK, "--port", str(ports["api"]), *mqtt]
        api = _child([*cli, "api", "run", *api_args], data / "api.log")
        children.append(api)
        wait_for_port(ports["api"], 60, api)
        if not args.no_simulators:
            _preload(cli, mqtt, database.dsn, data, children)
        _print_summary(data, broker, database, ports["api"], login)
        deadline = None if args.exit_after is None else time.monotonic() + args.exit_after
        while deadline is None or time.monotonic() < deadline:
            _check_alive(children, data)
            time.sleep(0.5)
        return 0
    except _StopRequested:
        print("\n==> stopping")
        return 0
    finally:
        for stop_signal in (signal.SIGINT, signal.SIGTERM):  # a second signal must not cut the clean-up short
            signal.signal(stop_signal, signal.SIG_IGN)
        _stop_all(children)
        with contextlib.suppress(ServiceError):
            database.stop()
        broker.stop()


def _check_alive(children: list[subprocess.Popen[bytes]], data: Path) -> None:
    for child in children:
        if child.poll() is not None:
            raise ServiceError(f"a service stopped (exit {child.returncode}); see the logs in {data}")


def _migrate(dsn: str) -> None:
    from api.migrations import migrate as migrate_api
    from ingest.migrate import migrate as migrate_data

    report = migrate_data(dsn, timescale="auto")
    print(f"    storage: {report.mode}; applied {len(report.applied)} data migration(s)")
    print(f"    applied {len(migrate_api(dsn))} API migration(s)")


def _demo_account(dsn: str, data: Path) -> tuple[str, str]:
    """An administrator for the dashboard; its password is kept with the demo's data."""
    import secrets

    import psycopg

    from api.users import create_user

    stored = data / "login.json"
    if stored.exists():
        saved = json.loads(stored.read_text())
        return str(saved["username"]), str(saved["password"])
    username, password = "admin", secrets.token_urlsafe(12)
    with psycopg.connect(dsn) as conn:
        create_user(conn, username, "admin", (), password=password)
    stored.write_text(json.dumps({"username": username, "password": password}))
    stored.chmod(0o600)
    return username, password


def _preload(
    cli: list[str], mqtt: list[str], dsn: str, data: Path, children: list[subprocess.Popen[bytes]]
) -> None:
    """Fast-forwards each scenario once; later runs keep what is stored."""
    marker = data / "preloaded.json"
    done = set(json.loads(marker.read_text())) if marker.exists() else set()
    for scenario, label in SCENARIOS:
        if scenario in done:
            continue
        print(f"==> préchargement : {label}")
        command = [*cli, "simulate", scenario, *mqtt, "--inventory-dsn", dsn]
        log = data / f"simulate-{scenario}.log"
        before = _handled_messages(dsn)
        simulator = _child(command, log)
        while simulator.poll() is None:
            _check_alive(children, data)
            print(
                f"    {_stored_rows(dsn):>12,} mesures enregistrées".replace(",", " "), end="\r", flush=True
            )
            time.sleep(2)
        if simulator.returncode != 0:
            raise ServiceError(f"the {scenario} simulator failed; see {data}/simulate-{scenario}.log")
        _wait_until_stored(dsn, children, data, log, before)
        done.add(scenario)
        marker.write_text(json.dumps(sorted(done)))


def _wait_until_stored(
    dsn: str, children: list[subprocess.Popen[bytes]], data: Path, log: Path, before: int
) -> None:
    """The simulator is done once the broker has everything; wait until ingest has handled it all."""
    match = re.search(r"(\d+) messages published", log.read_text(errors="replace"))
    published = int(match.group(1)) if match else 0
    while _handled_messages(dsn) < before + published:
        _check_alive(children, data)
        print(f"    {_stored_rows(dsn):>12,} mesures enregistrées".replace(",", " "), end="\r", flush=True)
        time.sleep(1)
    print(f"    {_stored_rows(dsn):>12,} mesures enregistrées".replace(",", " "))


def _handled_messages(dsn: str) -> int:
    """Messages ingest has committed: gateway batches, LNS uplinks and dead letters."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM received_batches) + (SELECT count(*) FROM lns_uplinks)"
            " + (SELECT count(*) FROM dead_letters)"
        ).fetchone()
    return int(row[0]) if row else 0


def _stored_rows(dsn: str) -> int:
    import psycopg

    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM readings) + (SELECT count(*) FROM events)"
        ).fetchone()
    return int(row[0]) if row else 0


def _print_summary(
    data: Path,
    broker: MosquittoServer | EmbeddedBroker,
    database: PostgresServer,
    api_port: int,
    login: tuple[str, str],
) -> None:
    base = f"http://{LOOPBACK}:{api_port}"
    print(
        "\n"
        "territoire is running:\n"
        f"  dashboard              {base}/tableau/\n"
        f"  login                  {login[0]} / {login[1]}\n"
        f"  API and OpenAPI docs   {base}/docs\n"
        f"  MQTT broker            mqtt://{LOOPBACK}:{broker.port}  ({broker.description})\n"
        f"  PostgreSQL             {database.dsn}  ({database.description})\n"
        f"  logs and data          {data}\n"
        "Press Ctrl-C to stop.\n",
        flush=True,
    )
