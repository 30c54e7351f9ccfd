"""The series statements under each plan_cache_mode: why the API forces custom plans on TimescaleDB.

    .venv/bin/python bench/bench_plan_modes.py [--timescale on|off] [--devices 100] [--executions 30]

Loads the data of bench_api.py (on TimescaleDB: hourly readings under the continuous aggregates),
then runs the one-device series statement, as rows and as the endpoint's JSON, through one psycopg
connection with its default prepare threshold, under auto, force_custom_plan and
force_generic_plan. A generic plan cannot exclude a hypertable's chunks at plan time
(timescale/timescaledb#2594). Prints the median time after the first 10 executions, and the
planning and execution times of one EXPLAIN ANALYZE per statement.
"""

from __future__ import annotations

import argparse
import statistics
import time

import psycopg
from bench_api import AS_JSON, AS_ROWS, SERIES_OF_SQL, loaded_database, series_values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timescale", choices=("off", "on"), default="on")
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--executions", type=int, default=30)
    args = parser.parse_args()
    with loaded_database("bench_plans", args.devices, 365, args.timescale) as dsn:
        values = series_values(365, ["dev-0000"])
        statements = {"rows": AS_ROWS.format(SERIES_OF_SQL), "JSON": AS_JSON.format(SERIES_OF_SQL)}
        print(f"bench_plan_modes: timescale {args.timescale}, {args.devices} devices, one device's year")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SET TIME ZONE 'UTC'")
            for mode in ("auto", "force_custom_plan", "force_generic_plan"):
                conn.execute(f"SET plan_cache_mode = {mode}")
                for name, sql in statements.items():
                    timings = []
                    for _ in range(args.executions):
                        began = time.perf_counter()
                        conn.execute(sql, values).fetchall()
                        timings.append((time.perf_counter() - began) * 1000)
                    print(f"  {mode:<19} {name:<5} median {statistics.median(timings[10:]):6.2f} ms "
                          f"(first five {', '.join(f'{t:.1f}' for t in timings[:5])})")  # fmt: skip
            conn.execute("RESET plan_cache_mode")
            for name, sql in statements.items():
                plan = [row[0] for row in conn.execute(f"EXPLAIN (ANALYZE, SUMMARY) {sql}", values)]
                print(
                    f"  EXPLAIN ANALYZE {name}: " + ", ".join(line for line in plan if line.endswith(" ms"))
                )


if __name__ == "__main__":
    main()
