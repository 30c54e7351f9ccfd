"""API overhead on a 1-year daily series: one device, and a tenant of 1,000 devices.

    .venv/bin/python bench/bench_api.py [--devices 1000] [--days 365] [--repeat 7]

Starts a throw-away PostgreSQL (plain storage, so readings_daily is a table
filled directly), loads one daily row per device and day, then times
GET /tenants/{t}/series?bucket=1d&aggregate=avg (JSON, through the whole
FastAPI stack: auth, validation, SQL, serialisation) against the same two SQL
statements the endpoint runs (device list, then the gap-filled series), executed
directly with psycopg in the same run. Prints median and spread (min-max).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from api.app import create_app
from api.migrations import migrate as migrate_api
from api.settings import Settings
from api.users import create_user, issue_token
from ingest.migrate import migrate as migrate_data
from territoire.services import PostgresServer

TENANT = "bench"
START = datetime(2023, 1, 1, tzinfo=UTC)

# The endpoint's statements for bucket=1d (served from readings_daily), as in api/routers/timeseries.py.
DEVICES_SQL = (
    "SELECT d.id FROM devices d WHERE d.tenant_id = %s AND EXISTS "
    "(SELECT 1 FROM readings_daily r WHERE r.device_id = d.id AND r.metric = %s) ORDER BY d.id"
)
SERIES_SQL = (
    "SELECT g.b, d.id, s.v FROM generate_series(%(start)s, %(end)s - interval '1 microsecond', %(width)s) g(b) "
    "CROSS JOIN unnest(%(devices)s::text[]) d(id) LEFT JOIN ("
    "SELECT date_bin(%(width)s, bucket, %(start)s) AS b, device_id, sum(sum) / nullif(sum(count), 0) AS v "
    "FROM readings_daily WHERE tenant_id = %(tenant)s AND metric = %(metric)s AND device_id = ANY(%(devices)s) "
    "AND bucket >= %(start)s AND bucket < %(end)s GROUP BY 1, 2) s ON s.b = g.b AND s.device_id = d.id ORDER BY 2, 1"
)


def _load(dsn: str, devices: int, days: int) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO tenants (id, name, kind) VALUES (%s, 'Bench', 'commune')", (TENANT,))
        with conn.cursor().copy("COPY devices (id, tenant_id) FROM STDIN") as copy:
            for d in range(devices):
                copy.write_row((f"dev-{d:04d}", TENANT))
        columns = "bucket, tenant_id, device_id, metric, avg, min, max, sum, count, last"
        with conn.cursor().copy(f"COPY readings_daily ({columns}) FROM STDIN") as copy:
            for d in range(devices):
                for day in range(days):
                    value = float(d + day % 7)
                    copy.write_row((START + timedelta(days=day), TENANT, f"dev-{d:04d}", "power_w",
                                    value, value, value, value * 96, 96, value))  # fmt: skip
        conn.execute("ANALYZE")
        create_user(conn, "bench", "viewer", [TENANT])


def _time(action: Callable[[], Any], repeat: int) -> list[float]:
    action()  # warm-up: plans, caches, token verification
    timings = []
    for _ in range(repeat):
        began = time.perf_counter()
        action()
        timings.append((time.perf_counter() - began) * 1000)
    return timings


def _summary(name: str, api: list[float], sql: list[float], rows: int) -> str:
    a, s = statistics.median(api), statistics.median(sql)
    return (f"{name:<22} rows {rows:>8,}  API {a:8.1f} ms ({min(api):.1f}-{max(api):.1f})  "
            f"SQL {s:8.1f} ms ({min(sql):.1f}-{max(sql):.1f})  ratio {a / s:4.2f}x")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="territoire-bench-api-"))
    workdir.chmod(0o755)
    server = PostgresServer(workdir=workdir, durable=False)
    server.start()
    try:
        dsn = server.create_database("bench_api")
        migrate_data(dsn, "off")
        migrate_api(dsn)
        _load(dsn, args.devices, args.days)
        with psycopg.connect(dsn) as conn:
            token = issue_token(conn, "bench")
        end = START + timedelta(days=args.days)
        settings = Settings(dsn=dsn, alert_interval_s=None, max_points=(args.days + 1) * args.devices + 1)
        params: dict[str, Any] = {"metric": "power_w", "bucket": "1d", "aggregate": "avg",
                                  "start": START.isoformat(), "end": end.isoformat()}  # fmt: skip
        headers = {"Authorization": f"Bearer {token}"}
        print(f"bench_api: {args.devices} devices x {args.days} days in readings_daily, repeat {args.repeat}")
        with TestClient(create_app(settings)) as client, psycopg.connect(dsn) as conn:
            for name, device in (
                ("1 device, 1 year", ["dev-0000"]),
                (f"{args.devices} devices, 1 year", None),
            ):
                query = {**params, **({"device": device} if device else {})}
                rows: list[int] = []

                def api_call(query: dict[str, Any] = query, rows: list[int] = rows) -> None:
                    answer = client.get(f"/tenants/{TENANT}/series", params=query, headers=headers)
                    answer.raise_for_status()
                    rows.append(len(answer.json()["rows"]))

                def sql_call(device: list[str] | None = device) -> None:
                    if device:
                        ids = [r[0] for r in conn.execute(
                            "SELECT id FROM devices WHERE tenant_id = %s AND id = ANY(%s) ORDER BY id", (TENANT, device))]  # fmt: skip
                    else:
                        ids = [r[0] for r in conn.execute(DEVICES_SQL, (TENANT, "power_w"))]
                    conn.execute(SERIES_SQL, {"start": START, "end": end, "width": timedelta(days=1), "tenant": TENANT,
                                              "metric": "power_w", "devices": ids}).fetchall()  # fmt: skip

                api = _time(api_call, args.repeat)
                sql = _time(sql_call, args.repeat)
                print(_summary(name, api, sql, rows[-1]))
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
