"""Bucket widths and the relation that can answer them.

A rollup can answer when its grain (1 day, 1 hour, on the UTC grid) divides the
bucket width and the period starts and ends on that grid; otherwise a rollup
bucket would straddle two answer buckets (a day starting at local midnight,
23:00 UTC in winter, is made of hourly rows, not daily ones). The answer is the
same whichever relation serves it, only the cost differs (tests compare them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

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

    def source(self, start: datetime, end: datetime) -> str:
        for grain, relation in ((86400, "readings_daily"), (3600, "readings_hourly")):
            if self.seconds % grain == 0 and _on_grid(start, grain) and _on_grid(end, grain):
                return relation
        return "readings"


def _on_grid(moment: datetime, grain: int) -> bool:
    # The rollups are binned from the Unix epoch grid (UTC midnight / hour).
    return moment.timestamp() % grain == 0


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
