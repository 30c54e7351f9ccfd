"""Agent-side cost of polling Modbus TCP meters: CPU % of one core and resident memory.

    .venv/bin/python bench/bench_modbus_poll.py [--devices 50] [--seconds 30] [--links 50]

The simulated meters run in a separate process; this process runs only the
sources (bus threads, framing, decoding, a counting sink). `--links` sets how
many TCP connections the devices are spread over (50: one meter per IP, as
in the field; 1: all behind one Modbus TCP gateway).
Targets: CPU < 20 % of one core, RSS < 60 MB.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_agent.sources.config import ModbusDeviceConfig, ModbusTcpConfig, build_source
from territoire_kernel.records import Event, Quality, Reading

PROFILE = "schneider-iem3155"


def run_simulator(devices: int, ports: Any, stop: Any) -> None:
    from simulators.devices.meters import LightingCircuit
    from simulators.devices.modbus_server import ModbusTcpSimulator

    units = {}
    for unit in range(1, devices + 1):
        circuit = LightingCircuit("iem3155", load_w=600.0 + unit)
        circuit.relay.switch(0, True)
        units[unit] = circuit.meter
    server = ModbusTcpSimulator(units)
    server.start()
    ports.put(server.port)
    stop.wait()
    server.stop()


class _IemMap:
    """Fallback when firmware_profiles has no catalog: power (float32 kW) and energy (int64 Wh)."""

    def plan_reads(self, max_registers: int = 125, max_gap: int = 4) -> list[Any]:
        from dataclasses import dataclass

        @dataclass(frozen=True)
        class Block:
            function: str
            address: int
            count: int

        return [Block("holding", 3059, 2), Block("holding", 3203, 4)]

    def decode(self, values: Mapping[Any, Sequence[int]], *, device_id: str, time_us: int) -> list[Reading]:
        import struct

        power, energy = (values[b] for b in sorted(values, key=lambda b: b.address))
        kw = struct.unpack(">f", struct.pack(">2H", *power))[0]
        wh = int.from_bytes(struct.pack(">4H", *energy), "big")
        return [
            Reading(device_id, "power_w", kw * 1000, time_us, "W"),
            Reading(device_id, "energy_kwh", wh / 1000, time_us, "kWh"),
        ]

    def encode_write(self, action: str, params: Mapping[str, Any]) -> list[Any]:
        raise ValueError("read only")


class _Catalog:
    def get(self, profile_id: str) -> Any:
        try:
            from firmware_profiles import load_catalog  # type: ignore[attr-defined]

            return load_catalog().get(profile_id)
        except (ImportError, AttributeError, KeyError, LookupError):
            return type("P", (), {"register_map": _IemMap()})()


def rss_mb() -> tuple[float, float]:
    fields = dict(
        line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def _polls(sources: Sequence[Any]) -> int:
    return sum(d["polls"] for s in sources for d in s.health()["devices"].values())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--links", type=int, default=50)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args()

    ctx = multiprocessing.get_context("spawn")
    ports, stop = ctx.Queue(), ctx.Event()
    simulator = ctx.Process(target=run_simulator, args=(args.devices, ports, stop), daemon=True)
    simulator.start()
    port = ports.get(timeout=30)

    counts = {"readings": 0, "events": 0}
    lock = threading.Lock()

    def sink(readings: Sequence[Reading], events: Sequence[Event]) -> None:
        with lock:
            counts["readings"] += len(readings)
            counts["events"] += len(events)

    def stamper() -> tuple[int, Quality]:
        return time.time_ns() // 1000, Quality.GOOD

    catalog = _Catalog()
    sources = []
    for link in range(args.links):
        units = range(link + 1, args.devices + 1, args.links)
        if not units:
            continue
        config = ModbusTcpConfig(
            type="modbus_tcp",
            name=f"link-{link}",
            host="127.0.0.1",
            port=port,
            devices=[
                ModbusDeviceConfig(
                    device_id=f"meter-{u}", slave_id=u, profile=PROFILE, poll_interval_s=args.interval
                )
                for u in units
            ],
        )
        sources.append(build_source(config, stamper=stamper, catalog=catalog))

    for source in sources:
        source.start(sink)
    time.sleep(min(3.0, args.seconds / 5))  # warm-up: connections, first polls
    with lock:
        start_counts = dict(counts)
    polls0 = _polls(sources)
    cpu0, wall0 = time.process_time(), time.monotonic()
    time.sleep(args.seconds)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    with lock:
        readings = counts["readings"] - start_counts["readings"]
    rss, peak = rss_mb()
    polls = _polls(sources) - polls0
    health = [s.health() for s in sources]
    for source in sources:
        source.stop()
    stop.set()
    simulator.join(10)

    requests = sum(int(h["requests"]) for h in health)  # type: ignore[call-overload]
    timeouts = sum(int(h["timeouts"]) for h in health)  # type: ignore[call-overload]
    expected = args.devices * wall / args.interval
    print(
        f"devices {args.devices} over {len(sources)} TCP links, poll every {args.interval:g} s, {wall:.1f} s measured"
    )
    print(f"polls                {polls:8d}  (expected ~{expected:.0f}), {readings} readings")
    print(f"requests total       {requests:8d}  timeouts {timeouts}")
    print(f"agent CPU            {100 * cpu / wall:8.2f} % of one core   (target < 20 %)")
    print(f"agent RSS            {rss:8.1f} MB  (peak {peak:.1f} MB; target < 60 MB)")
    print(f"pid {os.getpid()}, python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
