"""Lighting savings for 500 cabinets over 3 years of 10-minute meter data.

    .venv/bin/python bench/bench_savings.py [--cabinets 500]

Generates 10-minute energy counters (numpy, in memory), reduces them to daily
energy exactly as readings_daily's first value per day does, and times the
Option C computation (astronomy, schedules, fits, decomposition, costs).
"""

from __future__ import annotations

import argparse
import time
from datetime import date

import numpy as np

from api.savings.lighting import Cabinet, Period, ScheduleChange, Site, daily_hours, option_c
from api.savings.tariffs import ADEME_2022, TRVE_2021_2023

SCHEDULE = (
    ScheduleChange(date(2022, 1, 31), (("00:30", "04:30"),), 0.9),
    ScheduleChange(date(2023, 7, 1), (("22:00", "06:00"),), 0.9),
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cabinets", type=int, default=500)
    args = parser.parse_args()
    site = Site(47.52, 5.10)
    days = 365 * 3
    rng = np.random.default_rng(1)
    start = time.perf_counter()
    probe = daily_hours(site, Cabinet("probe", date(2021, 1, 1), np.zeros(days), SCHEDULE))
    lit_per_day = probe.dark - probe.cut
    cabinets = []
    samples = 0
    for i in range(args.cabinets):
        kw = rng.uniform(2, 8)
        # 144 samples a day: the counter's per-sample increments, then its value at each midnight.
        per_sample = np.repeat(kw * lit_per_day / 144, 144) + rng.normal(0, 0.002, days * 144)
        counter = 1000 + np.concatenate(([0.0], np.cumsum(per_sample)))
        samples += counter.size
        daily = np.diff(counter[::144])
        cabinets.append(Cabinet(f"c{i:03d}", date(2021, 1, 1), daily, SCHEDULE, installed_w=kw * 1000))
    generated = time.perf_counter() - start
    start = time.perf_counter()
    result = option_c(
        site, cabinets, Period.year(2021), Period.year(2023), tariff=TRVE_2021_2023, factor=ADEME_2022
    )
    computed = time.perf_counter() - start
    print(f"cabinets: {args.cabinets}, 10-minute samples: {samples:,}")
    print(f"data generation + daily reduction: {generated:.2f} s")
    print(f"option C savings (fits, astronomy, decomposition, costs): {computed:.2f} s")
    print(f"savings: {result.result['savings_pct']:.1f} % ({result.result['savings_kwh']:,.0f} kWh)")


if __name__ == "__main__":
    main()
