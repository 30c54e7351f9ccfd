"""Streaming exports of readings (CSV, Parquet) with licence metadata, for analysts and open data.

Rows stream from a server-side cursor on a connection of their own, so an
export of millions of rows holds a few thousand in memory. The licence goes
into the file itself (Parquet key-value metadata; CSV `#` comment lines) and
into the `X-License` and `Link: <…>; rel="license"` headers. With
`open_data=true` only metrics the catalogue declares non-personal are exported
(a metric absent from the catalogue is withheld too: privacy by default).
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from api.deps import Principal, requires
from api.series.formats import csv_text
from api.settings import Settings

router = APIRouter(prefix="/exports", tags=["Exports"])
Reader = Annotated[Principal, Depends(requires("read"))]
COLUMNS = ("time", "tenant_id", "device_id", "metric", "value", "quality")
SCHEMA = pa.schema(
    [
        ("time", pa.timestamp("us", tz="UTC")),
        ("tenant_id", pa.string()),
        ("device_id", pa.string()),
        ("metric", pa.string()),
        ("value", pa.float64()),
        ("quality", pa.int16()),
    ]
)
CHUNK = 20_000


class _Sink(io.RawIOBase):
    """A write-only file that hands the Parquet writer's bytes over as they come."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.parts.append(chunk)
        self.position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self.position

    def take(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out


def _tenants(principal: Principal, requested: list[str] | None) -> list[str] | None:
    """The tenants to export; None means every tenant (admins asking for all)."""
    readable = principal.readable_tenants()
    if requested:
        hidden = [t for t in requested if not principal.can_read(t)]
        if hidden:
            raise HTTPException(404, f"no tenant {hidden[0]!r}")
        return sorted(set(requested))
    return None if readable is None else sorted(readable)


def _metadata(settings: Settings, tenants: list[str] | None, open_data: bool) -> dict[str, str]:
    return {
        "licence": settings.default_licence,
        "licence_url": settings.default_licence_url,
        "source": "territoire",
        "generated_at": datetime.now(UTC).isoformat(),
        "tenants": "all" if tenants is None else ",".join(tenants),
        "open_data": "true" if open_data else "false",
        "columns": "time (UTC), tenant_id, device_id, metric, value, quality (bit flags, 0 = good)",
    }


async def _batches(request: Request, sql: str, params: list[Any]) -> AsyncIterator[list[tuple[Any, ...]]]:
    async with request.app.state.pool.connection() as conn, conn.transaction():
        cursor = conn.cursor(name=f"export_{uuid.uuid4().hex[:12]}")
        try:
            await cursor.execute(sql, params)
            while rows := await cursor.fetchmany(CHUNK):
                yield rows
        finally:
            await cursor.close()


async def _started(batches: AsyncIterator[list[tuple[Any, ...]]]) -> AsyncIterator[list[tuple[Any, ...]]]:
    """Runs the query up to its first rows before the answer starts: once the headers are sent, a
    value the database refuses could only cut the stream, not be answered as a problem."""
    first = await anext(batches, None)

    async def resumed() -> AsyncIterator[list[tuple[Any, ...]]]:
        if first is not None:
            yield first
            async for rows in batches:
                yield rows

    return resumed()


async def _csv(batches: AsyncIterator[list[tuple[Any, ...]]], meta: dict[str, str]) -> AsyncIterator[bytes]:
    comments = [f"{key}: {value}" for key, value in meta.items()]
    yield csv_text(COLUMNS, [], comments).encode()
    async for rows in batches:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerows([(t.isoformat(), *rest) for t, *rest in rows])
        yield out.getvalue().encode()


async def _parquet(
    batches: AsyncIterator[list[tuple[Any, ...]]], meta: dict[str, str]
) -> AsyncIterator[bytes]:
    sink = _Sink()
    schema = SCHEMA.with_metadata({**meta, "territoire": json.dumps(meta)})
    with pq.ParquetWriter(sink, schema, compression="zstd") as writer:
        async for rows in batches:
            columns = list(zip(*rows, strict=True))
            writer.write_table(pa.table(dict(zip(COLUMNS, columns, strict=True)), schema=schema))
            yield sink.take()
    yield sink.take()


@router.get("/readings", summary="Stream readings as CSV or Parquet, with licence metadata")
async def export_readings(
    *,
    request: Request,
    principal: Reader,
    start: Annotated[datetime, Query(description="inclusive, ISO 8601 with offset")],
    end: Annotated[datetime, Query(description="exclusive, ISO 8601 with offset")],
    tenant: Annotated[
        list[str] | None, Query(description="default: every tenant the caller can read")
    ] = None,
    metric: Annotated[list[str] | None, Query()] = None,
    format: Literal["csv", "parquet"] = "csv",
    open_data: Annotated[bool, Query(description="only metrics declared non-personal")] = False,
) -> StreamingResponse:
    if start.tzinfo is None or end.tzinfo is None or end <= start:
        raise HTTPException(422, "start and end need a UTC offset and end must be after start")
    tenants = _tenants(principal, tenant)
    sql = "SELECT time, tenant_id, device_id, metric, value, quality FROM readings WHERE time >= %s AND time < %s"
    params: list[Any] = [start, end]
    if tenants is not None:
        sql += " AND tenant_id = ANY(%s)"
        params.append(tenants)
    if metric:
        sql += " AND metric = ANY(%s)"
        params.append(metric)
    if open_data:
        sql += " AND metric IN (SELECT name FROM metrics WHERE NOT personal_data)"
    sql += " ORDER BY tenant_id, time, device_id, metric"
    settings: Settings = request.app.state.settings
    meta = _metadata(settings, tenants, open_data)
    headers = {
        "X-License": settings.default_licence,
        "Link": f'<{settings.default_licence_url}>; rel="license"',
        "Content-Disposition": f'attachment; filename="readings-{start.date()}-{end.date()}.{format}"',
    }
    batches = await _started(_batches(request, sql, params))
    if format == "parquet":
        return StreamingResponse(
            _parquet(batches, meta), media_type="application/vnd.apache.parquet", headers=headers
        )
    return StreamingResponse(_csv(batches, meta), media_type="text/csv; charset=utf-8", headers=headers)
