"""Bucket widths and the relation that can answer them.

A width that is a whole number of days reads the daily rollup, of hours the
hourly one, anything else the raw readings — the answer is the same, only the
cost differs (tests compare the three paths).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from fastapi import HTTPException

_WIDTH = re.compile(r"^(\d{1,6})(s|min|m|h|d)$")
_UNITS = {"s": 1, "min": 60, "m": 60, "h": 3600, "d": 86400}
AGGREGATES = ("avg", "min", "max", "sum", "count", "last")


@dataclass(frozen=True)
class Bucket:
    seconds: int

    @property
    def interval(self) -> timedelta:
        return timedelta(seconds=self.seconds)

    @property
    def source(self) -> str:
        if self.seconds % 86400 == 0:
            return "readings_daily"
        if self.seconds % 3600 == 0:
            return "readings_hourly"
        return "readings"


def parse_bucket(text: str) -> Bucket:
    match = _WIDTH.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise HTTPException(422, f"bucket {text!r}: write a width such as 10min, 1h or 1d")
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds > 366 * 86400:
        raise HTTPException(422, "bucket: at most 366d")
    return Bucket(seconds)


def rollup_expression(aggregate: str) -> str:
    """Combines rollup rows (already per hour or day) into a wider bucket."""
    return {
        "avg": "sum(sum) / nullif(sum(count), 0)",
        "min": "min(min)",
        "max": "max(max)",
        "sum": "sum(sum)",
        "count": "sum(count)::double precision",
        "last": "(array_agg(last ORDER BY bucket DESC))[1]",
    }[aggregate]


def raw_expression(aggregate: str) -> str:
    return {
        "avg": "avg(value)",
        "min": "min(value)",
        "max": "max(value)",
        "sum": "sum(value)",
        "count": "count(*)::double precision",
        "last": "(array_agg(value ORDER BY time DESC))[1]",
    }[aggregate]
