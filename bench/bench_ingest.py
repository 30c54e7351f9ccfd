"""End-to-end ingest throughput next to the raw binary COPY ceiling, same table, same run.

    .venv/bin/python bench/bench_ingest.py [--timescale off|on] [--runs 3] [--readings 300000]
    .venv/bin/python bench/bench_ingest.py --python-costs   # per-reading Python costs only

Starts its own Mosquitto and PostgreSQL (durable: fsync on), an ingest
process (`territoire ingest run`) and a publisher process, so the three
compete for the machine's cores as in production on one box. For each run:
the raw COPY of the same rows straight into `readings` (no staging, no
de-duplication), on one connection then split over two at once (ingest
overlaps two flushes' COPYs on two connections), then gateway batches (100 readings each) through Mosquitto
→ ingest → committed rows, then one reading per message. Prints the median
and spread (min–max) in readings/s.
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from ingest.copy_binary import readings_copy
from ingest.migrate import migrate
from ingest.statements import COPY_READINGS
from territoire.services import MosquittoServer, PostgresServer, free_port
from territoire_kernel.records import Reading
from territoire_kernel.topics import TopicKind, topic
from territoire_kernel.wire import Batch, encode

TENANT = "bench"
GATEWAYS = 10
DEVICES_PER_GATEWAY = 100
T0 = 1_735_689_600_000_000


def make_batches(total: int, per_message: int, boot: str) -> list[tuple[str, bytes]]:
    """Each gateway reports its devices round-robin, one reading per device per minute."""
    messages = []
    per_gateway = total // GATEWAYS
    for g in range(GATEWAYS):
        gateway = f"gw-{g}"
        name = topic(TENANT, gateway, TopicKind.UP)
        for seq, start in enumerate(range(0, per_gateway, per_message)):
            readings = tuple(
                Reading(
                    f"dev-{g}-{i % DEVICES_PER_GATEWAY}",
                    "power_w",
                    float(i % 977),
                    T0 + (i // DEVICES_PER_GATEWAY) * 60_000_000,
                )
                for i in range(start, min(start + per_message, per_gateway))
            )
            messages.append((name, encode(Batch(gateway, boot, seq, readings))))
    return messages


def publish(port: int, messages: list[tuple[str, bytes]], ready: object, go: object) -> None:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{time.time_ns()}", protocol=mqtt.MQTTv5
    )
    # paho queues the rest itself; message ids wrap beyond 65,535 unacknowledged publishes, hence the cap.
    assert len(messages) < 60_000, "publish at most 60,000 messages per run"
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    ready.set()  # type: ignore[attr-defined]
    go.wait()  # type: ignore[attr-defined]
    sent = []
    for name, data in messages:
        sent.append(client.publish(name, data, qos=1))
    for info in sent:  # every PUBACK
        info.wait_for_publish(120)
    client.disconnect()
    client.loop_stop()


def seed(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "INSERT INTO tenants (id, name, kind) VALUES (%s, 'Bench', 'commune') ON CONFLICT DO NOTHING",
            (TENANT,),
        )
        for g in range(GATEWAYS):
            conn.execute(
                "INSERT INTO gateways (id, tenant_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (f"gw-{g}", TENANT),
            )
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO devices (id, tenant_id, gateway_id) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                    [(f"dev-{g}-{d}", TENANT, f"gw-{g}") for d in range(DEVICES_PER_GATEWAY)],
                )


def reset(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        tables = "readings, received_batches, sequence_gaps"
        rollups = conn.execute("SELECT value FROM ingest_settings WHERE key = 'storage'").fetchone()
        if rollups == ("plain",):
            tables += ", readings_hourly, readings_daily"
        conn.execute(f"TRUNCATE {tables}")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE readings")


def copy_ceiling(dsn: str, total: int, connections: int = 1) -> float:
    """Readings/s of binary COPY straight into readings, the rows split over ``connections``
    sessions working at once (ingest overlaps two flushes' COPYs on two connections)."""
    rows = [
        (
            T0 + (i // (GATEWAYS * DEVICES_PER_GATEWAY)) * 60_000_000,
            f"dev-{i % GATEWAYS}-{(i // GATEWAYS) % DEVICES_PER_GATEWAY}",
            "power_w",
            float(i % 977),
            0,
            TENANT,
        )
        for i in range(total)
    ]
    chunks = [readings_copy(rows[i : i + 50_000]) for i in range(0, total, 50_000)]
    reset(dsn)
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "SELECT ingest_ensure_partitions(to_timestamp(%s), to_timestamp(%s))",
            (T0 / 1e6, rows[-1][0] / 1e6 + 86400),
        ) if _plain(conn) else None
        conn.commit()
    sessions = [psycopg.connect(dsn) for _ in range(connections)]
    try:
        start = time.perf_counter()
        with ThreadPoolExecutor(connections) as pool:  # psycopg releases the GIL during COPY
            list(pool.map(_copy_chunks, sessions, [chunks[i::connections] for i in range(connections)]))
        elapsed = time.perf_counter() - start
        assert sessions[0].execute("SELECT count(*) FROM readings").fetchone() == (total,)
    finally:
        for session in sessions:
            session.close()
    return total / elapsed


def _copy_chunks(conn: psycopg.Connection[tuple[object, ...]], chunks: list[bytes]) -> None:
    with conn.cursor() as cur:
        for chunk in chunks:
            with cur.copy(COPY_READINGS) as copy:
                copy.write(chunk)
    conn.commit()


def _plain(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    return conn.execute("SELECT value FROM ingest_settings WHERE key = 'storage'").fetchone() == ("plain",)


def end_to_end(dsn: str, port: int, total: int, per_message: int, run: int) -> float:
    messages = make_batches(total, per_message, f"run{run}x{per_message}")
    reset(dsn)
    ready, go = multiprocessing.Event(), multiprocessing.Event()
    publisher = multiprocessing.Process(target=publish, args=(port, messages, ready, go))
    publisher.start()
    ready.wait(30)
    with psycopg.connect(dsn, autocommit=True) as conn:
        start = time.perf_counter()
        go.set()
        while conn.execute("SELECT count(*) FROM received_batches").fetchone() != (len(messages),):
            time.sleep(0.02)
        elapsed = time.perf_counter() - start
        stored = conn.execute("SELECT count(*) FROM readings").fetchone()
    publisher.join(60)
    assert stored == (total,), f"stored {stored} readings of {total}"
    return total / elapsed


def query_side(dsn: str, timescale: bool) -> tuple[float, float]:
    """Milliseconds to read one device's hourly (8,760 rows) and daily (365 rows) aggregates over a year."""
    from ingest.pipeline import Delivery
    from ingest.writer import Writer

    start_us = T0 - 365 * 86_400_000_000
    step = 600_000_000  # one reading every 10 minutes for a year: 52,560 readings
    readings = [Reading("dev-0-0", "energy_kwh", float(i), start_us + i * step) for i in range(365 * 144)]
    name = topic(TENANT, "gw-0", TopicKind.UP)
    with Writer(dsn) as writer:
        for seq, first in enumerate(range(0, len(readings), 5000)):
            data = encode(Batch("gw-0", "yearload", seq, tuple(readings[first : first + 5000])))
            writer.write([Delivery(name, data)])
    with psycopg.connect(dsn, autocommit=True) as conn:
        if timescale:
            for view in ("readings_hourly", "readings_daily"):
                conn.execute(f"CALL refresh_continuous_aggregate('{view}', NULL, NULL)")
        timings = []
        for view, rows in (("readings_hourly", 8760), ("readings_daily", 365)):
            best = float("inf")
            for _ in range(5):
                started = time.perf_counter()
                got = conn.execute(
                    f"SELECT bucket, avg, min, max, sum, count, last FROM {view} "
                    "WHERE device_id = 'dev-0-0' AND metric = 'energy_kwh' AND bucket >= %s AND bucket < %s "
                    "ORDER BY bucket",
                    (datetime.fromtimestamp(start_us / 1e6, UTC), datetime.fromtimestamp(T0 / 1e6, UTC)),
                ).fetchall()
                best = min(best, time.perf_counter() - started)
            assert len(got) == rows, (view, len(got))
            timings.append(best * 1000)
    return timings[0], timings[1]


def python_costs() -> None:
    """µs per reading of the hot path's Python stages, on 25,000 bench readings (best of 5)."""
    from ingest import rollups
    from ingest.copy_binary import readings_copy_columns
    from ingest.pipeline import ReadingCols
    from territoire_kernel.wire import BatchColumns, decode, decode_columns

    payloads = [data for _, data in make_batches(25_000, 100, "costs")]
    cols = ReadingCols()
    for data in payloads:
        c = decode_columns(data)
        assert isinstance(c, BatchColumns)
        cols.extend(
            ReadingCols(c.times_us, c.devices, c.metrics, c.values, c.qualities, [TENANT] * len(c.values))
        )
    stages: dict[str, Callable[[], object]] = {
        "wire decoding, Reading objects (decode)": lambda: [decode(data) for data in payloads],
        "wire decoding, columns (decode_columns)": lambda: [decode_columns(data) for data in payloads],
        "COPY encoding": lambda: readings_copy_columns(cols, 0, len(cols)),
        "rollup increments (numpy)": lambda: rollups.increments(cols),
    }
    for name, stage in stages.items():
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            stage()
            best = min(best, time.perf_counter() - started)
        print(f"{name:<42} {best / len(cols) * 1e6:5.2f} µs/reading")


def wait_ready(port: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):>10,.0f}  ({min(values):,.0f}–{max(values):,.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--timescale", choices=["on", "off"], default="off")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--readings", type=int, default=300_000)
    parser.add_argument("--single", type=int, default=20_000, help="readings sent one per message")
    parser.add_argument("--workers", type=int, default=1, help="ingest processes on a shared subscription")
    parser.add_argument("--python-costs", action="store_true", help="only time the Python stages, no servers")
    args = parser.parse_args()
    if args.python_costs:
        python_costs()
        return

    workdir = Path(tempfile.mkdtemp(prefix="territoire-bench-"))
    workdir.chmod(0o755)
    broker = MosquittoServer(workdir=workdir / "mqtt")
    database = PostgresServer(workdir=workdir / "pg", durable=True)
    broker.start()
    database.start()
    workers: list[subprocess.Popen[bytes]] = []
    try:
        dsn = database.dsn
        migrate(dsn, args.timescale)
        seed(dsn)
        for worker in range(args.workers):
            health = free_port()
            share = ["--share-group", "bench"] if args.workers > 1 else []
            workers.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "territoire.cli",
                        "ingest",
                        "run",
                        "--dsn",
                        dsn,
                        "--mqtt-port",
                        str(broker.port),
                        "--client-id",
                        f"bench-ingest-{worker}",
                        "--timescale",
                        args.timescale,
                        "--log-level",
                        "WARNING",
                        "--metrics-port",
                        str(health),
                        *share,
                    ],
                )
            )
            wait_ready(health)
        ceiling, ceiling_2, batched, single = [], [], [], []
        for run in range(args.runs):
            ceiling.append(copy_ceiling(dsn, args.readings))
            ceiling_2.append(copy_ceiling(dsn, args.readings, connections=2))
            batched.append(end_to_end(dsn, broker.port, args.readings, 100, run))
            single.append(end_to_end(dsn, broker.port, args.single, 1, run))
        storage = (
            "TimescaleDB hypertable" if args.timescale == "on" else "plain PostgreSQL, monthly partitions"
        )
        print(
            f"storage: {storage}; {args.workers} ingest worker(s); {args.runs} runs; median (min–max) readings/s"
        )
        print(f"raw binary COPY into readings      {summary(ceiling)}")
        print(f"  the same on 2 connections at once {summary(ceiling_2)}")
        print(
            f"end to end, 100 readings/message   {summary(batched)}  "
            f"= {statistics.median(batched) / statistics.median(ceiling):.0%} of the ceiling, "
            f"{statistics.median(batched) / statistics.median(ceiling_2):.0%} of the 2-connection one"
        )
        print(f"end to end, 1 reading/message      {summary(single)}")
        hourly_ms, daily_ms = query_side(dsn, args.timescale == "on")
        print(
            f"one device, one year: hourly aggregate (8,760 rows) {hourly_ms:.1f} ms, "
            f"daily (365 rows) {daily_ms:.1f} ms (best of 5)"
        )
    finally:
        for process in workers:
            process.terminate()
            process.wait(30)
        database.stop()
        broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
