"""Burning hours of street lighting from real astronomy.

Photocells switch lamps on when the sun sinks below a threshold elevation
(around -2°, between sunset at -0.833° and civil dusk at -6°) and off when it
rises past it again. Dark intervals are computed with the `astral` package for
the site's coordinates; local schedules (cut-off windows) are in Europe/Paris.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np
from astral import Observer, SunDirection
from astral.sun import time_at_elevation

from .intervals import IntervalSet

PARIS = ZoneInfo("Europe/Paris")
DEFAULT_SWITCH_ELEVATION = -2.0


@lru_cache(maxsize=64)
def dark_intervals(
    latitude: float,
    longitude: float,
    first_night: date,
    last_night: date,
    elevation: float = DEFAULT_SWITCH_ELEVATION,
) -> IntervalSet:
    """Dusk-to-dawn intervals for the nights starting first_night..last_night (inclusive).

    The night of date d runs from the evening crossing on d to the morning
    crossing on d+1, both at `elevation` (UTC seconds).
    """
    observer = Observer(latitude=latitude, longitude=longitude)
    days = (last_night - first_night).days + 1
    crossings: dict[tuple[date, SunDirection], float] = {}

    def crossing(day: date, direction: SunDirection) -> float:
        key = (day, direction)
        if key not in crossings:
            moment = time_at_elevation(observer, elevation, day, direction=direction, tzinfo=UTC)
            crossings[key] = moment.timestamp()
        return crossings[key]

    pairs = np.empty((days, 2))
    for i in range(days):
        day = first_night + timedelta(days=i)
        pairs[i, 0] = crossing(day, SunDirection.SETTING)
        pairs[i, 1] = crossing(day + timedelta(days=1), SunDirection.RISING)
    return IntervalSet.of(pairs)


def parse_hhmm(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def local_windows(
    first_night: date, last_night: date, start: str, end: str, tz: ZoneInfo = PARIS
) -> IntervalSet:
    """A nightly local-time window (e.g. 22:00-06:00 or 00:30-04:30) as UTC intervals.

    A window whose start is after noon belongs to the evening of the night's
    date, otherwise to the following morning; an end not after the start
    falls on the next day. DST is handled by zoneinfo.
    """
    t0, t1 = parse_hhmm(start), parse_hhmm(end)
    pairs = []
    day = first_night
    while day <= last_night:
        start_day = day if t0.hour >= 12 else day + timedelta(days=1)
        end_day = start_day if (t1.hour, t1.minute) > (t0.hour, t0.minute) else start_day + timedelta(days=1)
        a = datetime.combine(start_day, t0, tzinfo=tz).timestamp()
        b = datetime.combine(end_day, t1, tzinfo=tz).timestamp()
        pairs.append((a, b))
        day += timedelta(days=1)
    return IntervalSet.of(pairs)


def epoch(day: date, tz: ZoneInfo | None = None) -> float:
    """Midnight of `day` (UTC unless tz given) in epoch seconds."""
    return datetime.combine(day, time(0), tzinfo=tz or UTC).timestamp()


def annual_burning_hours(
    latitude: float, longitude: float, year: int, elevation: float = DEFAULT_SWITCH_ELEVATION
) -> float:
    """Hours of darkness (below `elevation`) within the calendar year, Europe/Paris."""
    dark = dark_intervals(latitude, longitude, date(year - 1, 12, 31), date(year, 12, 31), elevation)
    start, end = epoch(date(year, 1, 1), PARIS), epoch(date(year + 1, 1, 1), PARIS)
    return float(dark.overlap(np.array([start]), np.array([end]))[0]) / 3600.0
