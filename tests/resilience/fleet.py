"""A sustained simulated fleet on loopback, its faults, and the exactly-once ledger.

Real processes only: a durable Mosquitto of our own, PostgreSQL, `territoire ingest
run` and several `territoire agent run` gateways, each polling its own Modbus TCP
simulator. The ledger is read from the database: for each gateway and boot, the
batch numbers (seq) stored by ingest plus what a gateway still holds in its buffer
must be 0..n without a gap, and the readings stored must be exactly the sum of the
stored batches' sizes (nothing partial, nothing twice). Used by tests/resilience
(CI sizes) and bench/resilience_long.py (long forms).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import yaml

from ingest.migrate import migrate
from simulators.devices.meters import LightingCircuit
from simulators.devices.modbus_server import ModbusTcpSimulator
from territoire.services import MosquittoServer, PostgresServer, stop_process

from ..ingest.helpers import wait_for
from .proxy import LinkCutProxy

ROOT = Path(__file__).parents[2]
TENANT = "resilience"
CLI = "import sys; from territoire.cli import main; sys.exit(main(sys.argv[1:]))"
METERS_PER_GATEWAY = 2


def private_dir(prefix: str) -> Path:
    """A directory that the unprivileged mosquitto/postgres accounts can enter."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-c", CLI, *args], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )


class Ingest:
    """`territoire ingest run` as a process; restarts reuse the client id, so the session."""

    def __init__(self, dsn: str, broker: MosquittoServer, log: Path, extra: tuple[str, ...] = ()):
        self.dsn, self.broker, self.log, self.extra = dsn, broker, log, extra
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = ["ingest", "run", "--dsn", self.dsn, "--mqtt-host", "127.0.0.1"]
        args += ["--mqtt-port", str(self.broker.port), "--client-id", "resilience-ingest"]
        self.proc = _spawn([*args, "--auto-register", "--timescale", "off", *self.extra], self.log)

    def kill(self) -> None:
        stop_process(self.proc, signal.SIGKILL, 20)

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGTERM, 20)


@dataclass
class Gateway:
    """One `territoire agent run` polling its own Modbus TCP simulator."""

    gateway_id: str
    workdir: Path
    broker_port: int
    poll_interval_s: float = 0.1
    buffer_overrides: dict[str, object] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        circuits = [LightingCircuit("iem3155", load_w=900.0 + 300 * i) for i in range(METERS_PER_GATEWAY)]
        for circuit in circuits:
            circuit.relay.switch(0, True)
        self.simulator = ModbusTcpSimulator({i + 1: c.meter for i, c in enumerate(circuits)})
        self.simulator.start()
        self.buffer_path = self.workdir / f"{self.gateway_id}.sqlite3"
        self.config_path = self.workdir / f"{self.gateway_id}.yaml"
        self.log = self.workdir / f"{self.gateway_id}.log"
        self.write_config(self.broker_port)

    def write_config(self, broker_port: int) -> None:
        devices = [
            {"device_id": f"{self.gateway_id}-m{unit}", "slave_id": unit, "profile": "schneider-iem3155",
             "poll_interval_s": self.poll_interval_s}
            for unit in self.simulator.units
        ]  # fmt: skip
        doc = {
            "tenant": TENANT,
            "gateway_id": self.gateway_id,
            "mqtt": {"host": "127.0.0.1", "port": broker_port, "tls": False, "keepalive_s": 5,
                     "reconnect_min_s": 0.2, "reconnect_max_s": 1.0, "status_interval_s": 2},
            "buffer": {"path": str(self.buffer_path), "flush_interval_s": 0.2, "batch_max_readings": 40,
                       **self.buffer_overrides},
            "clock": {"policy": "trusted"},
            "sources": [{"type": "modbus_tcp", "name": "armoire", "host": "127.0.0.1",
                         "port": self.simulator.port, "devices": devices}],
        }  # fmt: skip
        self.config_path.write_text(yaml.safe_dump(doc))

    def start(self) -> None:
        self.proc = _spawn(["agent", "run", str(self.config_path)], self.log)

    def kill(self) -> None:
        stop_process(self.proc, signal.SIGKILL, 20)

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGTERM, 20)

    def close(self) -> None:
        self.stop()
        self.simulator.stop()

    def unsent(self) -> set[tuple[str, int]]:
        """(boot, seq) of batches still in the buffer (safe to read beside a running agent: WAL)."""
        if not self.buffer_path.exists():
            return set()
        with contextlib.closing(sqlite3.connect(self.buffer_path, timeout=10)) as db:
            return {(str(b), int(s)) for b, s in db.execute("SELECT boot, seq FROM batches")}


@dataclass
class Ledger:
    gateways: int
    boots: int
    batches: int
    readings_stored: int
    readings_in_batches: int
    duplicates_skipped: int
    gaps: list[str]
    held_in_buffers: int

    @property
    def exactly_once(self) -> bool:
        return not self.gaps and self.readings_stored == self.readings_in_batches and self.batches > 0


def ledger(dsn: str, gateways: list[Gateway]) -> Ledger:
    """Count by gateway sequence what the database holds, with what the buffers still keep."""
    ids = [g.gateway_id for g in gateways]
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT gateway_id, boot_id, seq, readings FROM received_batches WHERE gateway_id = ANY(%s)",
            (ids,),
        ).fetchall()
        stored = conn.execute(
            "SELECT count(*) FROM readings r JOIN devices d ON d.id = r.device_id WHERE d.gateway_id = ANY(%s)",
            (ids,),
        ).fetchone()
        dupes = conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM readings r JOIN devices d ON d.id = r.device_id "
            "WHERE d.gateway_id = ANY(%s) GROUP BY r.device_id, r.metric, r.time HAVING count(*) > 1) x",
            (ids,),
        ).fetchone()
    assert stored is not None and dupes is not None
    seqs: dict[tuple[str, str], set[int]] = {}
    for gateway_id, boot, seq, _n in rows:
        seqs.setdefault((gateway_id, boot), set()).add(int(seq))
    held = 0
    for gateway in gateways:
        for boot, seq in gateway.unsent():
            held += 1
            seqs.setdefault((gateway.gateway_id, boot), set()).add(seq)
    gaps = [
        f"{gw}/{boot}: missing {sorted(set(range(max(s) + 1)) - s)[:10]}"
        for (gw, boot), s in seqs.items()
        if s != set(range(max(s) + 1))
    ]
    return Ledger(
        gateways=len({gw for gw, _ in seqs}),
        boots=len(seqs),
        batches=len(rows),
        readings_stored=int(stored[0]),
        readings_in_batches=sum(int(n) for *_k, n in rows),
        duplicates_skipped=int(dupes[0]),
        gaps=gaps,
        held_in_buffers=held,
    )


class Fleet:
    """Broker, ingest and gateways around one database; faults are methods of the test."""

    def __init__(
        self, dsn: str, workdir: Path, gateways: int = 3, *, via_proxy: bool = False, **gateway_kwargs: object
    ):
        self.dsn, self.workdir = dsn, workdir
        self.broker = MosquittoServer(workdir=workdir / "broker")
        self.broker.start()
        # Gateways may reach the broker through a link we can cut; ingest always connects directly.
        self.proxy = LinkCutProxy(self.broker.port) if via_proxy else None
        gateway_port = self.proxy.port if self.proxy is not None else self.broker.port
        migrate(dsn, "off")
        with psycopg.connect(dsn) as conn:
            conn.execute(
                "INSERT INTO tenants (id, name, kind) VALUES (%s, 'Résilience', 'commune')", (TENANT,)
            )
        self.ingest = Ingest(dsn, self.broker, workdir / "ingest.log")
        self.gateways = [
            Gateway(f"gw-{i}", workdir, gateway_port, **gateway_kwargs)  # type: ignore[arg-type]
            for i in range(gateways)
        ]

    def start(self) -> None:
        self.ingest.start()
        # Batches published before ingest's first subscription have no session to queue in.
        log = self.ingest.log
        wait_for(lambda: log.exists() and "connected to MQTT" in log.read_text(), 60, "ingest to connect")
        time.sleep(0.5)  # its SUBSCRIBE follows the CONNACK
        for gateway in self.gateways:
            gateway.start()
        self.wait_for_progress(batches=5 * len(self.gateways), timeout=60)

    def stored_batches(self) -> int:
        with psycopg.connect(self.dsn) as conn:
            row = conn.execute("SELECT count(*) FROM received_batches").fetchone()
        return int(row[0]) if row else 0

    def wait_for_progress(self, batches: int, timeout: float = 60) -> None:
        """Until `batches` more batches are stored: the fleet is flowing again."""
        target = self._stored_or_zero() + batches
        wait_for(lambda: self._stored_or_zero() >= target, timeout, f"{batches} more stored batches")

    def _stored_or_zero(self) -> int:
        try:
            return self.stored_batches()
        except psycopg.OperationalError:
            return 0

    def drain(self, timeout: float = 90) -> Ledger:
        """Stop the devices, let every buffer empty into the database, stop cleanly, count."""
        for gateway in self.gateways:
            gateway.simulator.stop()
        wait_for(lambda: all(not g.unsent() for g in self.gateways), timeout, "buffers to drain")
        for gateway in self.gateways:
            gateway.stop()
        with contextlib.suppress(AssertionError):  # a real gap stays: the ledger reports it
            wait_for(lambda: not ledger(self.dsn, self.gateways).gaps, 30, "ingest to store every batch")
        self.ingest.stop()
        return ledger(self.dsn, self.gateways)

    def close(self) -> None:
        for gateway in self.gateways:
            gateway.close()
        self.ingest.stop()
        if self.proxy is not None:
            self.proxy.close()
        self.broker.stop()

    def logs(self) -> str:
        parts = [self.ingest.log, *(g.log for g in self.gateways)]
        return "\n".join(f"== {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in parts if p.exists())


@contextlib.contextmanager
def fleet(
    dsn: str, gateways: int = 3, *, via_proxy: bool = False, **gateway_kwargs: object
) -> Iterator[Fleet]:
    workdir = private_dir("territoire-resilience-")
    made = Fleet(dsn, workdir, gateways, via_proxy=via_proxy, **gateway_kwargs)
    try:
        made.start()
        yield made
    finally:
        made.close()
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL of our own, to restart without disturbing the session's server.

    Durable as in production: the session's server runs with synchronous_commit=off,
    so an immediate restart there loses commits that ingest has already acknowledged.
    """
    workdir = private_dir("territoire-resilience-pg-")
    server = PostgresServer(workdir=workdir, durable=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
