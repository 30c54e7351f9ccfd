"""CSV bulk import: every row is checked on its own, a bad row never aborts the good ones.

Rows are numbered as a spreadsheet shows them: the header is row 1, the
first data row is row 2. Empty cells take the field's default. JSON columns
(`attrs`, `location`) hold JSON text; sites may give `longitude`/`latitude`
instead of a `location` geometry.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException
from pydantic import BaseModel, ValidationError

from api.inventory.models import DeviceIn, RowError, SiteIn

MAX_BYTES = 5 * 1024 * 1024
MAX_ROWS = 10_000
JSON_COLUMNS = frozenset({"attrs", "location"})
COORDINATES = ("longitude", "latitude")


@dataclass(frozen=True)
class Spec:
    model: type[BaseModel]
    extra_columns: frozenset[str] = frozenset()

    @property
    def columns(self) -> frozenset[str]:
        return frozenset(self.model.model_fields) | self.extra_columns


SITES = Spec(SiteIn, frozenset(COORDINATES))
DEVICES = Spec(DeviceIn)


def rows(body: bytes, spec: Spec) -> Iterator[tuple[int, dict[str, str]]]:
    """(row number, cells) of a CSV body; 422 when the file as a whole is unusable."""
    if len(body) > MAX_BYTES:
        raise HTTPException(
            413, f"a CSV import holds at most {MAX_BYTES // (1024 * 1024)} MiB; split the file"
        )
    try:
        text = body.decode("utf-8-sig")  # spreadsheets often prepend a byte-order mark
    except UnicodeDecodeError as exc:
        raise HTTPException(422, f"the file is not UTF-8 text (byte {exc.start})") from None
    reader = csv.DictReader(io.StringIO(text, newline=""), restkey="\0extra")
    header = [name.strip() for name in reader.fieldnames or []]
    if "id" not in header:
        raise HTTPException(
            422, f"the header row needs an 'id' column; allowed: {', '.join(sorted(spec.columns))}"
        )
    unknown = sorted(set(header) - spec.columns)
    if unknown:
        raise HTTPException(
            422, f"unknown columns {', '.join(unknown)}; allowed: {', '.join(sorted(spec.columns))}"
        )
    reader.fieldnames = header
    for number, record in enumerate(reader, start=2):
        if number - 1 > MAX_ROWS:
            raise HTTPException(413, f"a CSV import holds at most {MAX_ROWS} rows; split the file")
        yield number, record


def validate(number: int, cells: dict[str, Any], spec: Spec) -> BaseModel | list[RowError]:
    """The row as a validated model, or every problem found in it."""
    if "\0extra" in cells:
        return [RowError(row=number, field="", message="more cells than header columns")]
    values: dict[str, Any] = {}
    problems: list[RowError] = []
    for column, raw in cells.items():
        text = (raw or "").strip()
        if not text or column in COORDINATES:
            continue
        if column in JSON_COLUMNS:
            try:
                values[column] = json.loads(text)
            except ValueError:
                problems.append(RowError(row=number, field=column, message="not valid JSON"))
            continue
        values[column] = text
    point = [(cells.get(axis) or "").strip() for axis in COORDINATES]
    if any(point):
        try:
            values["location"] = {"type": "Point", "coordinates": [float(point[0]), float(point[1])]}
        except ValueError:
            problems.append(
                RowError(row=number, field="longitude", message="longitude and latitude must be numbers")
            )
    try:
        model = spec.model.model_validate(values)
    except ValidationError as exc:
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"][:1])
            problems.append(RowError(row=number, field=field, message=error["msg"]))
    return problems if problems else model
