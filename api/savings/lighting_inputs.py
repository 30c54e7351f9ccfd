"""From stored rows to lighting inputs: daily energy from meter counters, schedules and relights from events.

Kept apart from the database queries so the conversions are unit-tested on
plain values and the same functions serve the API, the scenarios and the benchmark.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime

import numpy as np

from .astronomy import PARIS
from .intervals import FloatArray
from .lighting import ScheduleChange

AttrMap = Mapping[str, object]


def daily_energy_from_counter(
    first_reading_per_day: Mapping[date, float], first_day: date, last_day: date
) -> FloatArray:
    """Energy of each UTC day [first_day, last_day] = next day's first counter value - this day's.

    With a reading at every midnight (intervals that divide a day) this is
    exact; otherwise it is the energy between the days' first samples. A day
    without both neighbours' samples is NaN, never a guess; a negative step
    (meter replaced or reset) is NaN too.
    """
    days = (last_day - first_day).days + 1
    out = np.full(days, np.nan)
    for i in range(days):
        d = date.fromordinal(first_day.toordinal() + i)
        nxt = date.fromordinal(d.toordinal() + 1)
        if d in first_reading_per_day and nxt in first_reading_per_day:
            step = first_reading_per_day[nxt] - first_reading_per_day[d]
            out[i] = step if step >= 0 else np.nan
    return out


def _attr_text(attrs: AttrMap, key: str) -> str | None:
    value = attrs.get(key)
    return value if isinstance(value, str) else None


def schedule_from_events(events: Iterable[tuple[datetime, AttrMap]]) -> tuple[ScheduleChange, ...]:
    """`schedule_changed` events to schedule changes, effective from the local date's night.

    attrs: off_start/off_end ("HH:MM", local) or mode "dusk_to_dawn";
    switched_share (0..1, default 1) is the part of the load the cut-off switches.
    """
    changes = []
    for moment, attrs in sorted(events, key=lambda e: e[0]):
        night = moment.astimezone(PARIS).date()
        share_raw = attrs.get("switched_share", 1.0)
        share = (
            float(share_raw)
            if isinstance(share_raw, int | float) and not isinstance(share_raw, bool)
            else 1.0
        )
        start, end = _attr_text(attrs, "off_start"), _attr_text(attrs, "off_end")
        windows = ((start, end),) if start and end else ()
        changes.append(ScheduleChange(night, windows, min(max(share, 0.0), 1.0)))
    return tuple(changes)


def relights_from_events(events: Iterable[tuple[datetime, AttrMap]], default_s: float = 360.0) -> FloatArray:
    """`relight` events (attrs duration_s) to (start, end) epoch-second pairs."""
    pairs = []
    for moment, attrs in events:
        raw = attrs.get("duration_s", default_s)
        duration = float(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else default_s
        start = moment.astimezone(UTC).timestamp()
        pairs.append((start, start + duration))
    return np.array(pairs, dtype=np.float64).reshape(-1, 2)
