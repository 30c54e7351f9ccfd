"""Readings, aggregated series, latest values and events of a tenant."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from api.deps import Principal, read_connection, reading, requires
from api.query_model import QueryModel
from api.series.buckets import parse_bucket, raw_expression, rollup_expression
from api.series.formats import JSON_ROWS, Format, json_rows_answer, negotiate, tabular

router = APIRouter(prefix="/tenants/{tenant}", tags=["Séries temporelles"])
Conn = Annotated[psycopg.AsyncConnection[Any], Depends(read_connection)]
Reader = Annotated[Principal, Depends(requires("read"))]
START_DOC = "inclusive, ISO 8601 with offset"
END_DOC = "exclusive, ISO 8601 with offset"
FORMAT_DOC = (
    "json, csv or parquet; without it the Accept header decides (text/csv, application/vnd.apache.parquet)"
)
Start = Annotated[datetime, Query(description=START_DOC)]
End = Annotated[datetime, Query(description=END_DOC)]
FormatQuery = Annotated[Format | None, Query(description=FORMAT_DOC)]


def visible(principal: Principal, tenant: str) -> None:
    if not principal.can_read(tenant):
        raise HTTPException(404, f"no tenant {tenant!r}")


def _period(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise HTTPException(422, "start and end need a UTC offset, e.g. 2023-01-01T00:00:00+01:00")
    if end <= start:
        raise HTTPException(422, "end must be after start")


def _encode_cursor(row: tuple[Any, ...]) -> str:
    raw = json.dumps([row[0].isoformat(), row[1], row[2]]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        time_text, device, metric = json.loads(base64.urlsafe_b64decode(padded))
        return datetime.fromisoformat(time_text), str(device), str(metric)
    except (ValueError, TypeError) as exc:
        raise HTTPException(422, "cursor: not a cursor returned by this endpoint") from exc


@router.get("/readings", summary="Raw readings, oldest first, with keyset pagination")
async def readings(
    *,
    request: Request,
    tenant: str,
    principal: Reader,
    conn: Conn,
    start: Start,
    end: End,
    device: Annotated[list[str] | None, Query()] = None,
    metric: Annotated[list[str] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=50_000)] = 1000,
    cursor: str | None = None,
    format: FormatQuery = None,
) -> Any:
    visible(principal, tenant)
    _period(start, end)
    sql = ["SELECT time, device_id, metric, value, quality FROM readings WHERE tenant_id = %s AND time >= %s"]
    params: list[Any] = [tenant, start]
    sql.append("AND time < %s")
    params.append(end)
    if device:
        sql.append("AND device_id = ANY(%s)")
        params.append(device)
    if metric:
        sql.append("AND metric = ANY(%s)")
        params.append(metric)
    if cursor:
        sql.append("AND (time, device_id, metric) > (%s, %s, %s)")
        params.extend(_decode_cursor(cursor))
    sql.append("ORDER BY time, device_id, metric LIMIT %s")
    params.append(limit + 1)
    rows = await (await conn.execute(" ".join(sql), params)).fetchall()
    following = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    rows = rows[:limit]
    columns = ["time", "device_id", "metric", "value", "quality"]
    return tabular(
        negotiate(request, format),
        columns,
        rows,
        filename=f"{tenant}-readings",
        extra={"next_cursor": following},
    )


class SeriesQuery(BaseModel):
    model_config = ConfigDict(frozen=True)

    metric: str
    start: Annotated[datetime, Field(description=START_DOC)]
    end: Annotated[datetime, Field(description=END_DOC)]
    bucket: Annotated[str, Field(description="10min, 1h, 1d …")] = "1h"
    aggregate: Annotated[str, Field(pattern="^(avg|min|max|sum|count|last)$")] = "avg"
    device: list[str] | None = None
    fill: Annotated[bool, Field(description="one row per bucket, null where no data")] = True
    format: Annotated[Format | None, Field(description=FORMAT_DOC)] = None


# The hottest endpoint reads its query as one model (api/query_model.py: −0.09 ms CPU a request).
SERIES_QUERY = QueryModel(SeriesQuery)


@router.get(
    "/series",
    summary="Aggregated series per device and bucket, with gap filling",
    openapi_extra=SERIES_QUERY.openapi_extra,
)
async def series(
    request: Request, tenant: str, principal: Reader, query: Annotated[SeriesQuery, Depends(SERIES_QUERY)]
) -> Any:
    start, end, metric = query.start, query.end, query.metric
    visible(principal, tenant)
    _period(start, end)
    width = parse_bucket(query.bucket)
    # The connection is entered here rather than through `Conn`: on the hottest endpoint FastAPI's
    # generator-dependency machinery cost more than the pool checkout itself (−0.15 ms a request,
    # docs/benchmarks.md). A refused request (tenant, period, bucket) takes no connection.
    async with reading(request) as conn:
        if query.device:
            # One round trip: the tenant's own devices among those asked are picked inside the statement
            # (the limit counts every id asked, an upper bound).
            devices = sorted(set(query.device))
            device_rows = "(SELECT id FROM devices WHERE tenant_id = %(tenant)s AND id = ANY(%(devices)s)) d"
        else:
            devices = await _devices(conn, tenant, metric)
            device_rows = "unnest(%(devices)s::text[]) d(id)"
        buckets = int((end - start).total_seconds() // width.seconds) + 1
        limit = request.app.state.settings.max_points
        if buckets * max(len(devices), 1) > limit:
            raise HTTPException(
                422,
                f"{buckets} buckets × {len(devices)} devices exceeds the limit of {limit} points; "
                "use a wider bucket, a shorter period or fewer devices (device=…)",
            )
        source = width.source(start, end)
        if source == "readings":
            expression, time_column = raw_expression(query.aggregate), "time"
        else:
            expression, time_column = rollup_expression(query.aggregate), "bucket"
        # date_bin keeps buckets aligned on `start`, identical whichever relation answers.
        grouped = (
            f"SELECT date_bin(%(width)s, {time_column}, %(start)s) AS b, device_id, {expression} AS v "
            f"FROM {source} WHERE tenant_id = %(tenant)s AND metric = %(metric)s AND device_id = ANY(%(devices)s) "
            f"AND {time_column} >= %(start)s AND {time_column} < %(end)s GROUP BY 1, 2"
        )
        if query.fill:
            sql = (
                "SELECT g.b, d.id, s.v FROM generate_series(%(start)s, %(end)s - interval '1 microsecond', %(width)s) g(b) "
                f"CROSS JOIN {device_rows} LEFT JOIN ({grouped}) s ON s.b = g.b AND s.device_id = d.id"
            )
        else:
            sql = f"SELECT b, device_id AS id, v FROM ({grouped}) s"
        params = {"width": width.interval, "start": start, "end": end, "tenant": tenant, "metric": metric,
                  "devices": devices}  # fmt: skip
        fmt = negotiate(request, query.format)
        columns = ["bucket", "device_id", query.aggregate]
        extra = {"metric": metric, "bucket": query.bucket, "aggregate": query.aggregate, "source": source}
        if fmt == "json":
            # PostgreSQL writes the rows' JSON itself: cheaper than decoding them into Python
            # objects and encoding them again (docs/benchmarks.md, API), the larger the series.
            sql = f"SELECT {JSON_ROWS.format('q.b, q.id, q.v', 'q.id, q.b')} FROM ({sql}) q"
            found = await (await conn.execute(sql, params)).fetchone()
            assert found is not None  # an aggregate without GROUP BY: always one row
            return json_rows_answer(columns, found[0], extra)
        rows = await (await conn.execute(f"{sql} ORDER BY 2, 1", params)).fetchall()
    return tabular(fmt, columns, rows, filename=f"{tenant}-{metric}-{query.bucket}", extra=extra)


async def _devices(conn: psycopg.AsyncConnection[Any], tenant: str, metric: str) -> list[str]:
    """The tenant's devices that have this metric (from the daily rollup, the smallest relation)."""
    cursor = await conn.execute(
        "SELECT d.id FROM devices d WHERE d.tenant_id = %s AND EXISTS "
        "(SELECT 1 FROM readings_daily r WHERE r.device_id = d.id AND r.metric = %s) ORDER BY d.id",
        (tenant, metric),
    )
    return [r[0] for r in await cursor.fetchall()]


@router.get("/latest", summary="Latest value of each device and metric")
async def latest(
    *,
    request: Request,
    tenant: str,
    principal: Reader,
    conn: Conn,
    metric: Annotated[list[str] | None, Query()] = None,
    format: FormatQuery = None,
) -> Any:
    visible(principal, tenant)
    # One index probe per (device, metric) pair instead of sorting the whole history.
    sql = (
        "SELECT r.time, d.id, m.metric, r.value, r.quality FROM devices d "
        "CROSS JOIN LATERAL (SELECT DISTINCT metric FROM readings_daily WHERE device_id = d.id) m "
        "CROSS JOIN LATERAL (SELECT time, value, quality FROM readings WHERE device_id = d.id "
        "AND metric = m.metric ORDER BY time DESC LIMIT 1) r WHERE d.tenant_id = %s"
    )
    params: list[Any] = [tenant]
    if metric:
        sql += " AND m.metric = ANY(%s)"
        params.append(metric)
    rows = await (await conn.execute(sql + " ORDER BY 2, 3", params)).fetchall()
    columns = ["time", "device_id", "metric", "value", "quality"]
    return tabular(negotiate(request, format), columns, rows, filename=f"{tenant}-latest")


@router.get("/events", summary="Events (bin emptied, car arrived, circuit switched …), oldest first")
async def events(
    *,
    request: Request,
    tenant: str,
    principal: Reader,
    conn: Conn,
    start: Start,
    end: End,
    device: Annotated[list[str] | None, Query()] = None,
    kind: Annotated[list[str] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=50_000)] = 1000,
    format: FormatQuery = None,
) -> Any:
    visible(principal, tenant)
    _period(start, end)
    sql = "SELECT time, device_id, kind, attrs, quality FROM events WHERE tenant_id = %s AND time >= %s AND time < %s"
    params: list[Any] = [tenant, start, end]
    if device:
        sql += " AND device_id = ANY(%s)"
        params.append(device)
    if kind:
        sql += " AND kind = ANY(%s)"
        params.append(kind)
    rows = await (
        await conn.execute(sql + " ORDER BY time, device_id, kind LIMIT %s", [*params, limit])
    ).fetchall()
    chosen = negotiate(request, format)
    if chosen != "json":
        rows = [(t, d, k, json.dumps(a, sort_keys=True), q) for t, d, k, a, q in rows]
    return tabular(
        chosen, ["time", "device_id", "kind", "attrs", "quality"], rows, filename=f"{tenant}-events"
    )
