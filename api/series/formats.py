"""Turning rows into JSON, CSV or Parquet answers."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from fastapi import Response

Format = Literal["json", "csv", "parquet"]


def _cell(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def csv_text(columns: Sequence[str], rows: Sequence[Sequence[Any]], comments: Sequence[str] = ()) -> str:
    out = io.StringIO()
    for comment in comments:
        out.write(f"# {comment}\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([[_cell(v) for v in row] for row in rows])
    return out.getvalue()


def parquet_bytes(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], metadata: dict[str, str] | None = None
) -> bytes:
    table = pa.table({name: [row[i] for row in rows] for i, name in enumerate(columns)})
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def tabular(
    fmt: Format,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    filename: str,
    extra: dict[str, Any] | None = None,
) -> Response:
    """JSON answers are {"columns", "rows", ...extra}; files download with a name."""
    if fmt == "csv":
        return Response(
            csv_text(columns, rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}.csv"'},
        )
    if fmt == "parquet":
        return Response(
            parquet_bytes(columns, rows),
            media_type="application/vnd.apache.parquet",
            headers={"Content-Disposition": f'attachment; filename="{filename}.parquet"'},
        )
    # Serialised here with orjson: FastAPI's generic encoder walks every cell in Python and
    # dominated the time of large series (bench/bench_api.py).
    body = {"columns": list(columns), "rows": rows, **(extra or {})}
    return Response(orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS), media_type="application/json")
