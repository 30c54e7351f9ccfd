"""Store-and-forward buffer: a 1,000,000-reading backlog written, then drained to a real Mosquitto.

    .venv/bin/python bench/bench_buffer.py [--readings 1000000] [--repeat 3] [--batch 500] [--inflight 20]
                                           [--synchronous normal|full]

Write: readings go through the agent's Batcher (flush = one SQLite transaction,
as in production) into the Buffer (WAL, synchronous=NORMAL by default; FULL
fsyncs every commit, the power-cut-proof setting). Drain: the agent's
Publisher sends the backlog with QoS 1 to a local Mosquitto and deletes each
batch after its PUBACK; a subscriber counts the readings that arrive. Prints the
median and spread (min-max) over the repeats.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.batcher import Batcher
from edge_agent.buffer import Buffer
from edge_agent.clock import Clock
from edge_agent.config import ClockConfig, parse_config
from edge_agent.publisher import Publisher
from territoire.services import MosquittoServer
from territoire_kernel.messages import GatewayState, Status
from territoire_kernel.records import Reading
from territoire_kernel.wire import decode_batch

T0 = 1_732_330_800_000_000
DEVICES = 50


def _readings(start: int, count: int) -> list[Reading]:
    # 50 meters, 4 metrics each, like a lighting cabinet row of iEM3155 meters.
    metrics = (("power_w", "W"), ("energy_kwh", "kWh"), ("voltage_v", "V"), ("current_a", "A"))
    out = []
    for i in range(start, start + count):
        metric, unit = metrics[i % 4]
        out.append(Reading(f"meter-{i % DEVICES}", metric, 230.0 + (i % 1000) * 0.01, T0 + i * 10_000, unit))
    return out


def one_run(
    broker: MosquittoServer, workdir: Path, total: int, batch: int, inflight: int, *, synchronous: str
) -> dict[str, float]:
    path = workdir / "buffer.sqlite3"
    buffer = Buffer(path, "gw-bench", "benchboot1", max_bytes=2**31, synchronous=synchronous)
    clock = Clock(ClockConfig(policy="trusted"), buffer)
    batcher = Batcher(buffer, clock, batch_max_readings=batch, flush_interval_s=300)
    readings = _readings(0, total)
    chunk = batch * 20  # one flush (one transaction) per 20 batches
    start = time.perf_counter()
    for i in range(0, total, chunk):
        batcher.sink(readings[i : i + chunk], ())
        batcher.flush()
    write_s = time.perf_counter() - start
    disk = sum(p.stat().st_size for p in workdir.glob("buffer.sqlite3*"))

    received = [0]
    done = threading.Event()
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-sub")

    def on_message(_c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        received[0] += len(decode_batch(bytes(message.payload)).readings)
        if received[0] >= total:
            done.set()

    subscribed = threading.Event()
    sub.on_message = on_message
    sub.on_subscribe = lambda *_a: subscribed.set()
    sub.connect("127.0.0.1", broker.port)
    sub.subscribe("territoire/v1/bench/gw-bench/up", qos=1)
    sub.loop_start()
    subscribed.wait(5)
    config = parse_config(
        {
            "tenant": "bench",
            "gateway_id": "gw-bench",
            "mqtt": {"host": "127.0.0.1", "port": broker.port, "tls": False, "max_inflight": inflight},
            "buffer": {"path": str(path)},
        }
    )

    def status(state: GatewayState) -> Status:
        batches, items = buffer.depth()
        return Status("gw-bench", state, "benchboot1", clock.now_us(), "bench", 0.0, batches, items)

    publisher = Publisher(config, buffer, status, lambda _p: None)
    start = time.perf_counter()
    publisher.start()
    while buffer.depth()[0] > 0:
        time.sleep(0.01)
    drain_s = time.perf_counter() - start
    done.wait(60)
    publisher.stop()
    sub.disconnect()
    sub.loop_stop()
    buffer.close()
    for leftover in workdir.glob("buffer.sqlite3*"):
        leftover.unlink()
    if received[0] < total:
        raise SystemExit(f"only {received[0]} of {total} readings arrived")
    return {
        "write_rps": total / write_s,
        "drain_rps": total / drain_s,
        "drain_s": drain_s,
        "disk_bytes_per_reading": disk / total,
        "duplicates": received[0] - total,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--readings", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--inflight", type=int, default=20)
    parser.add_argument("--synchronous", choices=("normal", "full"), default="normal")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-buffer-"))
    root.chmod(0o755)  # the broker runs as an unprivileged user
    broker = MosquittoServer(workdir=root / "mosquitto")
    broker.start()
    runs = []
    try:
        for n in range(args.repeat):
            workdir = root / f"run{n}"
            workdir.mkdir()
            runs.append(
                one_run(
                    broker, workdir, args.readings, args.batch, args.inflight, synchronous=args.synchronous
                )
            )
            print(f"run {n + 1}: " + ", ".join(f"{k} {v:,.1f}" for k, v in runs[-1].items()), flush=True)
    finally:
        broker.stop()
        shutil.rmtree(root, ignore_errors=True)
    print(
        f"\n{args.readings:,} readings, batches of {args.batch}, {args.inflight} in flight, "
        f"synchronous={args.synchronous}, {args.repeat} runs"
    )
    for key, label in (
        ("write_rps", "write (readings/s)"),
        ("drain_rps", "drain to Mosquitto (readings/s)"),
        ("drain_s", "time to drain (s)"),
        ("disk_bytes_per_reading", "disk bytes/reading"),
    ):
        values = [r[key] for r in runs]
        print(
            f"{label:34} median {statistics.median(values):>12,.1f}   spread {min(values):,.1f}-{max(values):,.1f}"
        )


if __name__ == "__main__":
    main()
