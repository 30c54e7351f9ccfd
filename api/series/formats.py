"""Turning rows into JSON, CSV or Parquet answers."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from fastapi import Request, Response

Format = Literal["json", "csv", "parquet"]
_UNSAFE_IN_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


def attachment(filename: str) -> dict[str, str]:
    """Content-Disposition for a download; the name is built from request values, so it is confined
    to characters every HTTP stack and file system takes (a raw value could even break the header)."""
    return {"Content-Disposition": f'attachment; filename="{_UNSAFE_IN_FILENAME.sub("_", filename)}"'}


def _cell(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


_BY_MEDIA_TYPE: dict[str, Format] = {
    "text/csv": "csv",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
    "application/json": "json",
}


def negotiate(request: Request, asked: Format | None) -> Format:
    """`?format=` wins; otherwise the media type of `Accept` we serve with the highest q (the first
    one among equals); JSON by default, also for `*/*` and for what we cannot serve."""
    if asked is not None:
        return asked
    best: tuple[float, Format] = (0.0, "json")
    for part in request.headers.get("accept", "").split(","):
        media_type, *parameters = part.split(";")
        found = _BY_MEDIA_TYPE.get(media_type.strip().lower())
        if found is None:
            continue
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > best[0]:
            best = (quality, found)
    return best[1]


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


# A JSON array of row arrays, built by PostgreSQL: format with the row's columns and its ORDER BY.
# Timestamps come out as ISO 8601 in the session's time zone, which the API's pool sets to UTC.
JSON_ROWS = "coalesce(json_agg(json_build_array({}) ORDER BY {}), '[]')::text"


def json_rows_answer(columns: Sequence[str], rows_json: str, extra: dict[str, Any]) -> Response:
    """The JSON answer of :func:`tabular`, around rows PostgreSQL already wrote (``JSON_ROWS``)."""
    head = orjson.dumps({"columns": list(columns)})[:-1]
    tail = b"," + orjson.dumps(extra)[1:] if extra else b"}"
    return Response(b"".join((head, b',"rows":', rows_json.encode(), tail)), media_type="application/json")


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
            headers=attachment(f"{filename}.csv"),
        )
    if fmt == "parquet":
        return Response(
            parquet_bytes(columns, rows),
            media_type="application/vnd.apache.parquet",
            headers=attachment(f"{filename}.parquet"),
        )
    # Serialised here with orjson: FastAPI's generic encoder walks every cell in Python and
    # dominated the time of large series (bench/bench_api.py).
    body = {"columns": list(columns), "rows": rows, **(extra or {})}
    return Response(orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS), media_type="application/json")
