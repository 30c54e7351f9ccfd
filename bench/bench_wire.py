"""Kernel codec speed and size: JSON vs CBOR, one reading per message vs batches.

    .venv/bin/python bench/bench_wire.py [--repeat 5]

Prints the median and spread (min-max) over the repeats.
"""

from __future__ import annotations

import argparse
import statistics
import time

from territoire_kernel.records import Reading
from territoire_kernel.wire import Batch, Encoding, decode, encode

T0 = 1_732_330_800_000_000


def make_batch(size: int, devices: int = 10) -> Batch:
    readings = tuple(
        Reading(f"meter-{i % devices}", "energy_kwh", 48_000 + i * 0.25, T0 + i * 600_000_000, "kWh")
        for i in range(size)
    )
    return Batch("gw-bench", "3f2a9c1e0b7d4e6f8a1b2c3d4e5f6a7b", 1, readings)


def time_per_reading(function: object, argument: object, readings: int, rounds: int) -> float:
    start = time.perf_counter()
    for _ in range(rounds):
        function(argument)  # type: ignore[operator]
    return (time.perf_counter() - start) / (rounds * readings) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"{'case':32} {'bytes/reading':>14} {'encode µs/rdg':>22} {'decode µs/rdg':>22}")
    for size in (1, 100, 1000):
        batch = make_batch(size)
        rounds = max(1, 20_000 // size)
        for encoding in Encoding:
            payload = encode(batch, encoding)
            enc = [
                time_per_reading(lambda b, e=encoding: encode(b, e), batch, size, rounds)
                for _ in range(args.repeat)
            ]
            dec = [time_per_reading(decode, payload, size, rounds) for _ in range(args.repeat)]
            print(
                f"{encoding.value + f' x{size} readings/message':32} {len(payload) / size:14.1f} "
                f"{statistics.median(enc):10.2f} ({min(enc):.2f}-{max(enc):.2f}) "
                f"{statistics.median(dec):10.2f} ({min(dec):.2f}-{max(dec):.2f})"
            )


if __name__ == "__main__":
    main()
