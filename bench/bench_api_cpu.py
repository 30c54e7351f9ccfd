"""The API's own CPU time per request, in-process: no HTTP server, no client, no process wake-ups.

    .venv/bin/python bench/bench_api_cpu.py [--requests 2000] [--runs 3]

The latency benchmark (bench_api.py) mixes the API's work with what this shared machine does
around it (waking an idle process costs ≈ 0.2-0.3 ms here). This one calls the ASGI application
directly, with its lifespan and connection pool, on the data of bench_api.py (20 devices), and
measures with the process CPU clock, per request, alternating:
  - GET /tenants/bench/series for one device, 1 year daily (auth, validation, SQL, JSON answer);
  - GET /healthz (the framework's floor);
  - the endpoint's JSON statement through the same pool (what the database side costs the API).
Prints the mean CPU time and the median wall time of each, per run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import timedelta
from typing import Any

import psycopg
from bench_api import AS_JSON, SERIES_OF_SQL, START, TENANT, loaded_database, series_values

from api.app import create_app
from api.settings import Settings
from api.users import issue_token

DEVICE = "dev-0000"


def _scope(path: str, query: str, token: str) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query.encode(),
        "root_path": "", "headers": [(b"host", b"bench"), (b"authorization", f"Bearer {token}".encode())],
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "state": {},
    }  # fmt: skip


async def _measure(dsn: str, token: str, requests: int, runs: int) -> None:
    app = create_app(Settings(dsn=dsn, alert_interval_s=None))
    end = START + timedelta(days=365)
    query = urllib.parse.urlencode({"metric": "power_w", "bucket": "1d", "aggregate": "avg",
                                    "start": START.isoformat(), "end": end.isoformat(), "device": DEVICE})  # fmt: skip
    values = series_values(365, [DEVICE])
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    def request(path: str, query: str) -> Callable[[], Awaitable[None]]:
        async def call() -> None:
            await app(_scope(path, query, token), receive, send)
            if statuses.pop() != 200:
                raise SystemExit(f"GET {path}: not 200")

        return call

    async def statement() -> None:
        async with app.state.pool.connection() as conn:
            await conn.set_autocommit(True)
            await (await conn.execute(AS_JSON.format(SERIES_OF_SQL), values)).fetchone()

    actions = {
        "series, 1 device": request(f"/tenants/{TENANT}/series", query),
        "/healthz": request("/healthz", ""),
        "its JSON statement": statement,
    }
    async with app.router.lifespan_context(app):
        for _ in range(50):  # token cache, prepared statements, plans
            for action in actions.values():
                await action()
        for run in range(1, runs + 1):
            cpu = dict.fromkeys(actions, 0.0)
            wall: dict[str, list[float]] = {name: [] for name in actions}
            for _ in range(requests):
                for name, action in actions.items():
                    began_cpu, began = time.process_time(), time.perf_counter()
                    await action()
                    wall[name].append((time.perf_counter() - began) * 1000)
                    cpu[name] += time.process_time() - began_cpu
            print(f"run {run}")
            for name in actions:
                print(f"  {name:<20} CPU {cpu[name] / requests * 1000:.3f} ms a request (mean), "
                      f"wall {statistics.median(wall[name]):.3f} ms (median)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with loaded_database("bench_api_cpu", 20, 365) as dsn:
        with psycopg.connect(dsn) as conn:
            token = issue_token(conn, "bench")
        print(f"bench_api_cpu: {args.requests} requests of each kind a run, in-process")
        asyncio.run(_measure(dsn, token, args.requests, args.runs))


if __name__ == "__main__":
    main()
