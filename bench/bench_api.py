"""API overhead on a 1-year daily series: one device, and a tenant of 1,000 devices.

    .venv/bin/python bench/bench_api.py [--devices 1000] [--days 365] [--repeat 7] [--repeat-small 200]
                                        [--runs 1] [--client raw|stdlib|httpx] [--http …] [--loop …]
                                        [--timescale off|on]

Starts a throw-away PostgreSQL (plain storage by default, so readings_daily is a table
filled directly with one row per device and day; --timescale on: hourly readings
in a hypertable, readings_daily a continuous aggregate over them), serves the API with
uvicorn in its own process (as in production: the load generator must not share
the server's interpreter lock), then times GET /tenants/{t}/series?bucket=1d&aggregate=avg
(JSON over HTTP/1.1 keep-alive: auth, validation, SQL, serialisation, transfer,
and decoding the answer with orjson) against the same rows read with SQL
directly (the gap-filled series, after the device list when no device= is
given) with psycopg (autocommit, default prepare threshold, rows fetched as
Python tuples) in the same run. The endpoint has PostgreSQL write the rows as
JSON; that statement is timed directly too. The API is reached over a raw
keep-alive socket by default, parsing only the status line and Content-Length,
so that the figure is the API's and not the HTTP client's (--client stdlib:
http.client, ≈ 0.1 ms more a request; --client httpx, ≈ 0.6 ms more). API call,
SQL calls and GET /healthz (the floor of one HTTP round trip through the same
stack) alternate, so that the load of a shared machine weighs on all alike.
Prints median and spread (min-max) per run, and the medians of the runs.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.client
import importlib.util
import multiprocessing
import os
import shutil
import socket
import statistics
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import uvicorn

from api.app import create_app
from api.deps import session_settings
from api.migrations import migrate as migrate_api
from api.series.formats import JSON_ROWS
from api.settings import Settings
from api.users import create_user, issue_token
from ingest.migrate import migrate as migrate_data
from territoire.services import PostgresServer, free_port

TENANT = "bench"
IN_A_ROW = 1000  # requests per CPU-time figure (clock ticks of 10 ms: ±1 % over a 1 ms request)
START = datetime(2023, 1, 1, tzinfo=UTC)

# The endpoint's statements for bucket=1d (served from readings_daily), as in api/routers/timeseries.py.
DEVICES_SQL = (
    "SELECT d.id FROM devices d WHERE d.tenant_id = %s AND EXISTS "
    "(SELECT 1 FROM readings_daily r WHERE r.device_id = d.id AND r.metric = %s) ORDER BY d.id"
)
_SERIES_SQL = (
    "SELECT g.b, d.id, s.v FROM generate_series(%(start)s, %(end)s - interval '1 microsecond', %(width)s) g(b) "
    "CROSS JOIN {devices} LEFT JOIN ("
    "SELECT date_bin(%(width)s, bucket, %(start)s) AS b, device_id, sum(sum) / nullif(sum(count), 0) AS v "
    "FROM readings_daily WHERE tenant_id = %(tenant)s AND metric = %(metric)s AND device_id = ANY(%(devices)s) "
    "AND bucket >= %(start)s AND bucket < %(end)s GROUP BY 1, 2) s ON s.b = g.b AND s.device_id = d.id"
)
# Without device=: the device list first, then the series over it.
SERIES_SQL = _SERIES_SQL.format(devices="unnest(%(devices)s::text[]) d(id)")
# With device=: one statement, the tenant's devices among those asked picked inside it.
SERIES_OF_SQL = _SERIES_SQL.format(
    devices="(SELECT id FROM devices WHERE tenant_id = %(tenant)s AND id = ANY(%(devices)s)) d"
)
# The rows as a direct client reads them (the baseline), and the endpoint's JSON statement: the
# same rows written as JSON by PostgreSQL, timed too (fetched as text) for the record.
AS_ROWS = "{} ORDER BY 2, 1"
AS_JSON = f"SELECT {JSON_ROWS.format('q.b, q.id, q.v', 'q.id, q.b')} FROM ({{}}) q"


def _load(dsn: str, devices: int, days: int, timescale: bool = False) -> None:
    """One daily row per device and day; on TimescaleDB, hourly readings rolled up by the
    continuous aggregates instead (readings_daily is then a hierarchical continuous aggregate)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO tenants (id, name, kind) VALUES (%s, 'Bench', 'commune')", (TENANT,))
        with conn.cursor().copy("COPY devices (id, tenant_id) FROM STDIN") as copy:
            for d in range(devices):
                copy.write_row((f"dev-{d:04d}", TENANT))
        if timescale:
            with conn.cursor().copy(
                "COPY readings (time, device_id, metric, value, tenant_id) FROM STDIN"
            ) as copy:
                for d in range(devices):
                    for hour in range(days * 24):
                        value = float(d + hour // 24 % 7)
                        copy.write_row(
                            (START + timedelta(hours=hour), f"dev-{d:04d}", "power_w", value, TENANT)
                        )
            for view in ("readings_hourly", "readings_daily"):
                conn.execute(f"CALL refresh_continuous_aggregate('{view}', NULL, NULL)")
        else:
            columns = "bucket, tenant_id, device_id, metric, avg, min, max, sum, count, last"
            with conn.cursor().copy(f"COPY readings_daily ({columns}) FROM STDIN") as copy:
                for d in range(devices):
                    for day in range(days):
                        value = float(d + day % 7)
                        copy.write_row((START + timedelta(days=day), TENANT, f"dev-{d:04d}", "power_w",
                                        value, value, value, value * 96, 96, value))  # fmt: skip
        conn.execute("ANALYZE")
        create_user(conn, "bench", "viewer", [TENANT])


@contextlib.contextmanager
def loaded_database(name: str, devices: int, days: int, timescale: str = "off") -> Iterator[str]:
    """A throw-away PostgreSQL (not durable) with the data and API schemas and `_load`'s rows: the DSN."""
    workdir = Path(tempfile.mkdtemp(prefix=f"territoire-{name}-"))
    workdir.chmod(0o755)
    server = PostgresServer(workdir=workdir, durable=False)
    server.start()
    try:
        if timescale == "on" and not server.has_timescaledb:
            raise SystemExit("--timescale on: the TimescaleDB extension is not installed for this PostgreSQL")
        dsn = server.create_database(name)
        migrate_data(dsn, timescale)
        migrate_api(dsn)
        _load(dsn, devices, days, timescale=timescale == "on")
        yield dsn
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def series_values(days: int, devices: list[str]) -> dict[str, Any]:
    """The parameters of the series statements for `days` daily buckets from START."""
    return {"start": START, "end": START + timedelta(days=days), "width": timedelta(days=1), "tenant": TENANT,
            "metric": "power_w", "devices": devices}  # fmt: skip


def _serve(settings: Settings, port: int, http: str = "auto", loop: str = "auto") -> None:
    # "auto" is uvicorn's default: httptools and uvloop when installed, else h11 and asyncio. The
    # client's connection idles while the direct statements of 1,000 devices run (several seconds),
    # longer than uvicorn's default keep-alive of 5 s.
    uvicorn.run(create_app(settings), host="127.0.0.1", port=port, log_level="warning", http=http, loop=loop,
                timeout_keep_alive=120)  # fmt: skip


def _implementation(asked: str, preferred: str, fallback: str) -> str:
    if asked != "auto":
        return asked
    return preferred if importlib.util.find_spec(preferred) else fallback


def _wait_ready(base: str, served: multiprocessing.process.BaseProcess) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not served.is_alive():
            raise SystemExit("the API process exited")
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit("the API did not become ready")


def _time(actions: dict[str, Callable[[], Any]], repeat: int, warm_up: int = 1) -> dict[str, list[float]]:
    """Each action `repeat` times, in turn, so that a change of load weighs on all of them alike."""
    for _ in range(warm_up):  # plans (psycopg prepares from the 6th run), caches, token verification
        for action in actions.values():
            action()
    timings: dict[str, list[float]] = {name: [] for name in actions}
    for _ in range(repeat):
        for name, action in actions.items():
            began = time.perf_counter()
            action()
            timings[name].append((time.perf_counter() - began) * 1000)
    return timings


class _RawConnection:
    """HTTP/1.1 GET over one keep-alive socket, parsing only what the API sends back (status line,
    Content-Length, no chunking): a client as lean as libpq is on the SQL side, so that the figure is
    the API's. http.client parses every header with the email package (≈ 0.1 ms a response here)."""

    def __init__(self, netloc: str) -> None:
        host, _, port = netloc.partition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.host = netloc
        self.pending = b""

    def get(self, target: str, headers: dict[str, str]) -> tuple[int, bytes]:
        lines = [f"GET {target} HTTP/1.1", f"Host: {self.host}", *(f"{k}: {v}" for k, v in headers.items())]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = self.pending
        while (end := data.find(b"\r\n\r\n")) < 0:
            data += self._receive()
        head, body = data[:end].decode("latin-1"), data[end + 4 :]
        status = int(head[9:12])
        length = next(int(line[15:]) for line in head.split("\r\n") if line[:15].lower() == "content-length:")
        while len(body) < length:
            body += self._receive()
        self.pending = body[length:]
        return status, body[:length]

    def _receive(self) -> bytes:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise SystemExit("the API closed the connection")
        return chunk

    def close(self) -> None:
        self.sock.close()


class _Client:
    """GET over one keep-alive connection: raw socket (leanest), http.client, or httpx (the former harness)."""

    def __init__(self, base: str, kind: str) -> None:
        self.kind = kind
        netloc = urllib.parse.urlsplit(base).netloc
        self.httpx = httpx.Client(base_url=base, timeout=60)
        self.plain = http.client.HTTPConnection(netloc, timeout=60)
        self.raw = _RawConnection(netloc) if kind == "raw" else None

    def get(
        self, path: str, params: dict[str, Any] | None = None, headers: dict[str, str] | None = None
    ) -> bytes:
        if self.kind == "httpx":
            answer = self.httpx.get(path, params=params, headers=headers)
            answer.raise_for_status()
            return answer.content
        query = f"?{urllib.parse.urlencode(params, doseq=True)}" if params else ""
        if self.raw is not None:
            status, body = self.raw.get(path + query, headers or {})
            if status != 200:
                raise SystemExit(f"GET {path}: {status} {body[:200]!r}")
            return body
        self.plain.request("GET", path + query, headers=headers or {})
        response = self.plain.getresponse()
        body = response.read()
        if response.status != 200:
            raise SystemExit(f"GET {path}: {response.status} {body[:200]!r}")
        return body

    def close(self) -> None:
        self.httpx.close()
        self.plain.close()
        if self.raw is not None:
            self.raw.close()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _in_a_row(pid: int, series: Callable[[], Any], floor: Callable[[], Any]) -> dict[str, tuple[float, str]]:
    """The API server's CPU time per request (mean), and the floor with requests back to back: in
    the alternation the server idles between requests, and waking it costs more than /healthz itself."""
    figures = {}
    for label, call in (("series", series), ("/healthz", floor)):
        began = _cpu_seconds(pid)
        for _ in range(IN_A_ROW):
            call()
        spent = (_cpu_seconds(pid) - began) / IN_A_ROW * 1000
        figures[f"server CPU, {label}"] = (spent, f"mean {spent:.2f} ms a request")
    timings = _time({"floor": floor}, IN_A_ROW, warm_up=10)["floor"]
    middle = statistics.median(timings)
    figures["floor, back to back"] = (
        middle,
        f"median {middle:.2f} ms ({min(timings):.2f}-{max(timings):.2f})",
    )
    return figures


def _summary(name: str, api: list[float], sql: list[float], rows: int) -> str:
    a, s = statistics.median(api), statistics.median(sql)
    return (f"{name:<22} rows {rows:>8,}  API {a:8.2f} ms ({min(api):.2f}-{max(api):.2f})  "
            f"SQL {s:8.2f} ms ({min(sql):.2f}-{max(sql):.2f})  ratio {a / s:4.2f}x")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=7)
    # A few ms each: many more runs, after a warm-up past psycopg's prepare threshold, for a stable median.
    parser.add_argument("--repeat-small", type=int, default=200)
    parser.add_argument("--runs", type=int, default=1, help="measurements over the same data and server")
    parser.add_argument("--client", choices=("raw", "stdlib", "httpx"), default="raw")
    parser.add_argument(
        "--http", choices=("auto", "h11", "httptools"), default="auto", help="uvicorn's HTTP parser"
    )
    parser.add_argument(
        "--loop", choices=("auto", "asyncio", "uvloop"), default="auto", help="uvicorn's event loop"
    )
    parser.add_argument(
        "--timescale", choices=("off", "on"), default="off",
        help="on: hypertable and continuous aggregates (hourly readings loaded: use fewer --devices)",
    )  # fmt: skip
    args = parser.parse_args()
    with loaded_database("bench_api", args.devices, args.days, args.timescale) as dsn:
        with psycopg.connect(dsn) as conn:
            token = issue_token(conn, "bench")
        end = START + timedelta(days=args.days)
        settings = Settings(dsn=dsn, alert_interval_s=None, max_points=(args.days + 1) * args.devices + 1)
        params: dict[str, Any] = {"metric": "power_w", "bucket": "1d", "aggregate": "avg",
                                  "start": START.isoformat(), "end": end.isoformat()}  # fmt: skip
        headers = {"Authorization": f"Bearer {token}"}
        print(
            f"bench_api: {args.devices} devices x {args.days} days in readings_daily "
            f"({'TimescaleDB continuous aggregate' if args.timescale == 'on' else 'plain table'}), "
            f"repeat {args.repeat} ({args.repeat_small} for one device), client {args.client}, "
            f"server HTTP {_implementation(args.http, 'httptools', 'h11')}, "
            f"loop {_implementation(args.loop, 'uvloop', 'asyncio')}"
        )
        port = free_port()
        served = multiprocessing.get_context("spawn").Process(
            target=_serve, args=(settings, port, args.http, args.loop), daemon=True
        )
        served.start()
        base = f"http://127.0.0.1:{port}"
        _wait_ready(base, served)
        client = _Client(base, args.client)
        medians: dict[str, list[float]] = {}
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                # The API's session settings: the same SQL in the same conditions. Without them, on
                # TimescaleDB, PostgreSQL's generic plans made the direct side up to 12x slower.
                for statement in session_settings(args.timescale == "on"):
                    conn.execute(statement)
                for run in range(1, args.runs + 1):
                    if args.runs > 1:
                        print(f"run {run}")
                    for name, device in (
                        ("1 device, 1 year", ["dev-0000"]),
                        (f"{args.devices} devices, 1 year", None),
                    ):
                        query = {**params, **({"device": device} if device else {})}
                        rows: list[int] = []

                        def api_call(query: dict[str, Any] = query, rows: list[int] = rows) -> None:
                            body = client.get(f"/tenants/{TENANT}/series", params=query, headers=headers)
                            rows.append(len(orjson.loads(body)["rows"]))

                        def sql_call(device: list[str] | None = device, form: str = AS_ROWS) -> None:
                            if device:
                                conn.execute(
                                    form.format(SERIES_OF_SQL), series_values(args.days, device)
                                ).fetchall()
                            else:
                                ids = [r[0] for r in conn.execute(DEVICES_SQL, (TENANT, "power_w"))]
                                conn.execute(
                                    form.format(SERIES_SQL), series_values(args.days, ids)
                                ).fetchall()

                        actions: dict[str, Callable[[], Any]] = {
                            "api": api_call,
                            "sql": sql_call,
                            "sql as json": functools.partial(sql_call, device, AS_JSON),
                        }
                        if device:  # the HTTP floor, alternated with the small case it bounds
                            actions["floor"] = lambda: client.get("/healthz")
                        repeat, warm_up = (args.repeat_small, 10) if device else (args.repeat, 1)
                        timings = _time(actions, repeat, warm_up)
                        print(_summary(name, timings["api"], timings["sql"], rows[-1]))
                        as_json = timings["sql as json"]
                        print(f"{'  its JSON statement':<22} median {statistics.median(as_json):.2f} ms "
                              f"({min(as_json):.2f}-{max(as_json):.2f}), API ratio to it "
                              f"{statistics.median(timings['api']) / statistics.median(as_json):4.2f}x")  # fmt: skip
                        for kind, values in timings.items():
                            medians.setdefault(f"{name}: {kind}", []).append(statistics.median(values))
                        if device:
                            floor = timings["floor"]
                            print(f"{'HTTP floor (/healthz)':<22} median {statistics.median(floor):.2f} ms "
                                  f"({min(floor):.2f}-{max(floor):.2f})")  # fmt: skip
                            assert served.pid is not None  # started
                            in_a_row = _in_a_row(served.pid, actions["api"], actions["floor"])
                            for label, (figure, text) in in_a_row.items():
                                print(f"{label:<22} {text}")
                                medians.setdefault(f"{name}: {label}", []).append(figure)
        finally:
            client.close()
        if args.runs > 1:
            print(f"medians of {args.runs} runs")
            for key, values in medians.items():
                listed = " / ".join(f"{v:.2f}" for v in values)
                print(f"  {key:<40} {statistics.median(values):9.2f} ms  ({listed})")
        served.terminate()
        served.join()


if __name__ == "__main__":
    main()
