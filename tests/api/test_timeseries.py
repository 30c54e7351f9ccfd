"""Readings, aggregated series, latest values and events, on both storage modes."""

from __future__ import annotations

import contextlib
import csv
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from io import BytesIO, StringIO

import psycopg
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from api.users import create_user, issue_token
from ingest.migrate import migrate as migrate_data

from .conftest import bearer

T0 = datetime(2023, 1, 1, tzinfo=UTC)
DEVICES = ("armoire-1", "armoire-2")


def _rollups(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """What ingest maintains (plain) or TimescaleDB refreshes (continuous aggregates)."""
    kind = conn.execute("SELECT relkind FROM pg_class WHERE relname = 'readings_hourly'").fetchone()
    if kind and kind[0] == "v":
        conn.commit()
        conn.autocommit = True
        for view in ("readings_hourly", "readings_daily"):
            conn.execute(f"CALL refresh_continuous_aggregate('{view}', NULL, NULL)")
        return
    for view, width in (("readings_hourly", "1 hour"), ("readings_daily", "1 day")):
        conn.execute(
            f"INSERT INTO {view} (bucket, tenant_id, device_id, metric, avg, min, max, sum, count, last) "
            f"SELECT date_bin('{width}', time, '2000-01-01'), tenant_id, device_id, metric, avg(value), min(value), "
            "max(value), sum(value), count(*), (array_agg(value ORDER BY time DESC))[1] FROM readings GROUP BY 1, 2, 3, 4"
        )


@pytest.fixture(params=["off", "auto"], ids=["plain", "auto"])
def client(
    request: pytest.FixtureRequest, fresh_database: str
) -> Iterator[tuple[TestClient, dict[str, str]]]:
    report = migrate_data(fresh_database, request.param)
    if request.param == "auto" and report.mode == "plain":
        pytest.skip("TimescaleDB is not installed: the plain run covers this")
    from api.migrations import migrate as migrate_api

    migrate_api(fresh_database)
    with psycopg.connect(fresh_database) as conn:
        for tenant in ("tenant-a", "tenant-b"):
            conn.execute("INSERT INTO tenants (id, name, kind) VALUES (%s, %s, 'commune')", (tenant, tenant))
        for device in DEVICES:
            conn.execute("INSERT INTO devices (id, tenant_id) VALUES (%s, 'tenant-a')", (device,))
        conn.execute("INSERT INTO devices (id, tenant_id) VALUES ('other', 'tenant-b')")
        if report.mode == "plain":
            conn.execute("SELECT ingest_ensure_partitions(%s, %s)", (T0, T0 + timedelta(days=3)))
        with conn.cursor().copy(
            "COPY readings (time, device_id, metric, value, tenant_id) FROM STDIN"
        ) as copy:
            for minute in range(0, 48 * 60, 10):  # two days of 10-minute power readings
                for index, device in enumerate(DEVICES):
                    copy.write_row(
                        (T0 + timedelta(minutes=minute), device, "power_w", minute + index, "tenant-a")
                    )
                copy.write_row((T0 + timedelta(minutes=minute), "other", "power_w", -1.0, "tenant-b"))
        conn.execute(
            "INSERT INTO events (time, device_id, kind, attrs, tenant_id) VALUES (%s, 'armoire-1', "
            "'circuit_switched', '{\"on\": true}', 'tenant-a')",
            (T0 + timedelta(hours=1),),
        )
        _rollups(conn)
    with psycopg.connect(fresh_database) as conn:
        create_user(conn, "viewer-a", "viewer", ["tenant-a"])
        tokens = {"viewer-a": issue_token(conn, "viewer-a")}
    with TestClient(create_app(Settings(dsn=fresh_database, max_points=2000))) as test_client:
        yield test_client, tokens


PERIOD = {"start": T0.isoformat(), "end": (T0 + timedelta(days=2)).isoformat()}


def test_raw_readings_page_through_with_a_cursor(client: tuple[TestClient, dict[str, str]]) -> None:
    http, tokens = client
    seen, cursor = [], None
    while True:
        params = {**PERIOD, "limit": 100, **({"cursor": cursor} if cursor else {})}
        page = http.get(
            "/tenants/tenant-a/readings", params=params, headers=bearer(tokens["viewer-a"])
        ).json()
        seen.extend(page["rows"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 2 * 288
    assert len({(r[0], r[1]) for r in seen}) == len(seen)
    assert all(r[1] in DEVICES for r in seen)  # nothing of tenant-b


@pytest.mark.parametrize("bucket", ["1d", "6h", "30min"])
def test_series_agree_whichever_relation_answers(
    client: tuple[TestClient, dict[str, str]], bucket: str
) -> None:
    http, tokens = client
    answer = http.get(
        "/tenants/tenant-a/series",
        params={**PERIOD, "metric": "power_w", "bucket": bucket, "aggregate": "avg", "device": "armoire-1"},
        headers=bearer(tokens["viewer-a"]),
    ).json()
    width = {"1d": 1440, "6h": 360, "30min": 30}[bucket]
    # armoire-1 reads the minute offset: the mean of a bucket is its first minute + (width - 10) / 2.
    expected = [start + (width - 10) / 2 for start in range(0, 2880, width)]
    assert [row[2] for row in answer["rows"]] == pytest.approx(expected)
    assert answer["source"] == {"1d": "readings_daily", "6h": "readings_hourly", "30min": "readings"}[bucket]


@pytest.mark.parametrize(
    ("start", "bucket", "source"),
    [
        (T0 - timedelta(hours=1), "1d", "readings_hourly"),  # local midnight in Paris, winter (UTC+1)
        (T0 + timedelta(minutes=30), "1h", "readings"),
    ],
)
def test_buckets_off_the_rollup_grid_are_not_served_from_it(
    client: tuple[TestClient, dict[str, str]], start: datetime, bucket: str, source: str
) -> None:
    """A daily row (UTC midnight) cannot be split into local days: a coarser rollup would shift data."""
    http, tokens = client
    width = {"1d": timedelta(days=1), "1h": timedelta(hours=1)}[bucket]
    answer = http.get(
        "/tenants/tenant-a/series",
        params={
            "start": start.isoformat(),
            "end": (start + width).isoformat(),
            "metric": "power_w",
            "bucket": bucket,
            "aggregate": "avg",
            "device": "armoire-1",
        },
        headers=bearer(tokens["viewer-a"]),
    ).json()
    assert answer["source"] == source
    # armoire-1 reads its minute offset from T0 every 10 minutes: the mean of the readings in the bucket.
    first = max(0, int((start - T0).total_seconds() // 60))
    last = int((start + width - T0).total_seconds() // 60)
    minutes = [m for m in range(first, last) if m % 10 == 0]
    assert answer["rows"][0][2] == pytest.approx(sum(minutes) / len(minutes))


def test_gaps_are_filled_with_nulls(client: tuple[TestClient, dict[str, str]]) -> None:
    http, tokens = client
    period = {"start": T0.isoformat(), "end": (T0 + timedelta(days=3)).isoformat()}
    answer = http.get(
        "/tenants/tenant-a/series",
        params={**period, "metric": "power_w", "bucket": "1d", "aggregate": "count", "device": "armoire-2"},
        headers=bearer(tokens["viewer-a"]),
    ).json()
    assert [row[2] for row in answer["rows"]] == [144.0, 144.0, None]
    # Asking for another tenant's device (or an unknown one) by id gives it no rows, filled or not.
    for fill in ("true", "false"):
        mixed = http.get(
            "/tenants/tenant-a/series",
            params={**period, "metric": "power_w", "bucket": "1d", "device": ["armoire-2", "other", "nope"],
                    "fill": fill},
            headers=bearer(tokens["viewer-a"]),
        ).json()  # fmt: skip
        assert {row[1] for row in mixed["rows"]} == {"armoire-2"}


@pytest.mark.parametrize("fill", ["true", "false"])
def test_json_series_written_by_postgresql_match_the_csv_rows(
    client: tuple[TestClient, dict[str, str]], fill: str
) -> None:
    # JSON rows are written by PostgreSQL, CSV rows by Python from the same query: they must agree
    # row for row (order by device then bucket, UTC offsets, nulls where a bucket has no data).
    http, tokens = client
    params = {"start": (T0 - timedelta(hours=6)).isoformat(), "end": (T0 + timedelta(days=3)).isoformat(),
              "metric": "power_w", "bucket": "6h", "aggregate": "max", "fill": fill}  # fmt: skip
    headers = bearer(tokens["viewer-a"])
    as_json = http.get("/tenants/tenant-a/series", params=params, headers=headers).json()
    as_csv = http.get("/tenants/tenant-a/series", params={**params, "format": "csv"}, headers=headers)
    header, *rows = list(csv.reader(StringIO(as_csv.text)))
    assert header == as_json["columns"] == ["bucket", "device_id", "max"]
    assert len(as_json["rows"]) == len(rows) == (26 if fill == "true" else 16)
    for (bucket, device, value), (csv_bucket, csv_device, csv_value) in zip(
        as_json["rows"], rows, strict=True
    ):
        assert bucket.endswith("+00:00") and datetime.fromisoformat(bucket) == datetime.fromisoformat(
            csv_bucket
        )
        assert device == csv_device
        assert value == (None if csv_value == "" else pytest.approx(float(csv_value)))
    assert as_json["rows"] == sorted(as_json["rows"], key=lambda row: (row[1], row[0]))
    assert {row[1] for row in as_json["rows"]} == {"armoire-1", "armoire-2"}
    assert (as_json["metric"], as_json["bucket"], as_json["aggregate"]) == ("power_w", "6h", "max")


def test_too_many_points_is_a_clear_error(client: tuple[TestClient, dict[str, str]]) -> None:
    http, tokens = client
    answer = http.get(
        "/tenants/tenant-a/series",
        params={**PERIOD, "metric": "power_w", "bucket": "1min"},
        headers=bearer(tokens["viewer-a"]),
    )
    assert answer.status_code == 422
    assert "wider bucket" in answer.json()["detail"]


def test_latest_csv_parquet_and_events(client: tuple[TestClient, dict[str, str]]) -> None:
    http, tokens = client
    headers = bearer(tokens["viewer-a"])
    latest = http.get("/tenants/tenant-a/latest", headers=headers).json()["rows"]
    assert [(r[1], r[3]) for r in latest] == [("armoire-1", 2870.0), ("armoire-2", 2871.0)]
    text = http.get("/tenants/tenant-a/latest", params={"format": "csv"}, headers=headers).text
    assert text.splitlines()[0] == "time,device_id,metric,value,quality"
    negotiated = http.get(
        "/tenants/tenant-a/latest", headers={**headers, "Accept": "text/csv;q=1, */*;q=0.1"}
    )
    assert negotiated.headers["content-type"].startswith("text/csv") and negotiated.text == text
    assert negotiated.headers["content-disposition"] == 'attachment; filename="tenant-a-latest.csv"'
    preferred = http.get(
        "/tenants/tenant-a/latest", headers={**headers, "Accept": "text/csv;q=0.2, application/json"}
    )
    assert preferred.headers["content-type"] == "application/json"
    parquet = http.get("/tenants/tenant-a/readings", params={**PERIOD, "format": "parquet"}, headers=headers)
    assert pq.read_table(BytesIO(parquet.content)).num_rows == 576
    events = http.get("/tenants/tenant-a/events", params=PERIOD, headers=headers).json()["rows"]
    assert [(e[1], e[2], e[3]) for e in events] == [("armoire-1", "circuit_switched", {"on": True})]


def test_foreign_tenant_is_not_found(client: tuple[TestClient, dict[str, str]]) -> None:
    http, tokens = client
    answer = http.get("/tenants/tenant-b/latest", headers=bearer(tokens["viewer-a"]))
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"


def test_read_only_connections_go_back_to_the_pool_transactional(
    client: tuple[TestClient, dict[str, str]],
) -> None:
    """Series read in autocommit; writers that share the pool must still get transactions."""
    http, tokens = client
    assert http.get("/tenants/tenant-a/latest", headers=bearer(tokens["viewer-a"])).status_code == 200
    pool = http.app.state.pool  # type: ignore[attr-defined]

    async def autocommit_of_pooled() -> list[bool]:
        async with contextlib.AsyncExitStack() as stack:
            held = [
                await stack.enter_async_context(pool.connection())
                for _ in range(pool.get_stats()["pool_size"])
            ]
            return [conn.autocommit for conn in held]

    assert http.portal is not None
    assert not any(http.portal.call(autocommit_of_pooled))


def test_values_the_database_cannot_take_are_a_client_error(
    client: tuple[TestClient, dict[str, str]],
) -> None:
    """A NUL character cannot be sent to PostgreSQL: the request is refused with a 422 problem, not a 500."""
    http, tokens = client
    answer = http.get(
        "/tenants/tenant-a/latest", params={"metric": "power\x00w"}, headers=bearer(tokens["viewer-a"])
    )
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert "NUL" in answer.json()["detail"]
