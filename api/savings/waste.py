"""Waste collection: fill levels, emptyings, fill-rate forecasts, next round, and schedule comparison.

Ultrasonic sensors under the lid measure the distance to the waste surface.
Fill = (height - distance) / (height - blind zone): a surface inside the
blind zone cannot be measured and reads as full. An emptying is a drop of
fill larger than `drop_pct` between consecutive readings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np

from .astronomy import PARIS
from .intervals import FloatArray
from .provenance import SavingsResult, rounded

DIESEL_KG_CO2E_PER_L = 3.16
DIESEL_SOURCE = (
    "ADEME Base Empreinte, gazole routier (France), ordre de grandeur 3,16 kgCO2e/L (combustion + amont)"
)


@dataclass(frozen=True)
class Geometry:
    height_mm: float
    blind_zone_mm: float = 0.0

    def fill_pct(self, distance_mm: FloatArray) -> FloatArray:
        usable = self.height_mm - self.blind_zone_mm
        if usable <= 0:
            raise ValueError("container height must exceed the sensor's blind zone")
        fill = (self.height_mm - np.asarray(distance_mm, dtype=np.float64)) / usable * 100
        result: FloatArray = np.clip(fill, 0.0, 100.0)
        return result


@dataclass(frozen=True)
class Emptying:
    time_s: float
    fill_before_pct: float
    fill_after_pct: float


def detect_emptyings(times_s: FloatArray, fill: FloatArray, drop_pct: float = 15.0) -> list[Emptying]:
    """A fall of at least drop_pct points between consecutive readings is an emptying."""
    if len(fill) < 2:
        return []
    drops = fill[:-1] - fill[1:]
    idx = np.nonzero(drops >= drop_pct)[0]
    return [Emptying(float(times_s[i + 1]), float(fill[i]), float(fill[i + 1])) for i in idx]


def theil_sen_slope(times_s: FloatArray, values: FloatArray) -> float:
    """Median of pairwise slopes (per second): robust to spikes from lids and tilts."""
    n = len(values)
    if n < 2:
        return 0.0
    i, j = np.triu_indices(n, k=1)
    dt = times_s[j] - times_s[i]
    ok = dt > 0
    if not np.any(ok):
        return 0.0
    return float(np.median((values[j] - values[i])[ok] / dt[ok]))


def fill_rate_pct_per_day(
    times_s: FloatArray, fill: FloatArray, drop_pct: float = 15.0, max_points: int = 200
) -> float:
    """Robust filling rate since the last emptying (the recent points only, bounded for speed)."""
    emptied = detect_emptyings(times_s, fill, drop_pct)
    start = int(np.searchsorted(times_s, emptied[-1].time_s)) if emptied else 0
    t, f = times_s[start:][-max_points:], fill[start:][-max_points:]
    return max(theil_sen_slope(t, f) * 86_400.0, 0.0)


@dataclass(frozen=True)
class ContainerState:
    container_id: str
    sector: str
    fill_pct: float
    rate_pct_per_day: float


@dataclass(frozen=True)
class RoundPlan:
    urgent: list[str]
    eligible: list[str]
    sectors: list[str]


def plan_next_round(
    containers: list[ContainerState], days_ahead: float, urgent_pct: float = 80.0, eligible_pct: float = 60.0
) -> RoundPlan:
    """Containers to collect at the next round.

    Urgent: at or above urgent_pct now, or forecast to overflow before the round
    after this one (days_ahead away). Eligible: at or above eligible_pct in a
    sector the truck visits anyway for an urgent one.
    """
    urgent = [
        c
        for c in containers
        if c.fill_pct >= urgent_pct or c.fill_pct + c.rate_pct_per_day * days_ahead >= 100.0
    ]
    sectors = sorted({c.sector for c in urgent})
    chosen = {c.container_id for c in urgent}
    eligible = [
        c.container_id
        for c in containers
        if c.sector in sectors and c.container_id not in chosen and c.fill_pct >= eligible_pct
    ]
    return RoundPlan(sorted(chosen), sorted(eligible), sectors)


@dataclass(frozen=True)
class ContainerSeries:
    container_id: str
    sector: str
    geometry: Geometry
    times_s: FloatArray
    distance_mm: FloatArray


@dataclass(frozen=True)
class FleetParameters:
    km_per_round: float = 28.0  # depot - sector - treatment site, per sector round
    fuel_l_per_100km: float = 45.0  # compaction truck in stop-and-go collection
    co2_kg_per_l: float = DIESEL_KG_CO2E_PER_L
    drop_pct: float = 15.0
    overflow_pct: float = 100.0


@dataclass
class CollectionStats:
    rounds: int = 0
    lifts: int = 0
    fill_at_collection: list[float] = field(default_factory=list)
    container_days: int = 0
    overflow_days: int = 0


def _stats(series: list[ContainerSeries], start: date, end: date, params: FleetParameters) -> CollectionStats:
    t0 = datetime.combine(start, datetime.min.time(), tzinfo=PARIS).timestamp()
    t1 = datetime.combine(end, datetime.min.time(), tzinfo=PARIS).timestamp()
    stats = CollectionStats()
    round_keys: set[tuple[str, date]] = set()
    for s in series:
        fill = s.geometry.fill_pct(s.distance_mm)
        for e in detect_emptyings(s.times_s, fill, params.drop_pct):
            if t0 <= e.time_s < t1:
                stats.lifts += 1
                stats.fill_at_collection.append(e.fill_before_pct)
                round_keys.add((s.sector, datetime.fromtimestamp(e.time_s, PARIS).date()))
        inside = (s.times_s >= t0) & (s.times_s < t1)
        if np.any(inside):
            day = ((s.times_s[inside] - t0) // 86_400).astype(np.int64)
            full = np.zeros(int(day.max()) + 1, dtype=bool)
            seen = np.zeros_like(full)
            np.logical_or.at(full, day, fill[inside] >= params.overflow_pct)
            seen[day] = True
            stats.container_days += int(seen.sum())
            stats.overflow_days += int(full.sum())
    stats.rounds = len(round_keys)
    return stats


def _describe(stats: CollectionStats, weeks: float, params: FleetParameters) -> dict[str, float]:
    km = stats.rounds * params.km_per_round
    fuel = km * params.fuel_l_per_100km / 100
    return {
        "rounds": stats.rounds,
        "rounds_per_week": rounded(stats.rounds / weeks, 4),
        "lifts": stats.lifts,
        "lifts_per_week": rounded(stats.lifts / weeks, 4),
        "km": rounded(km, 2),
        "fuel_l": rounded(fuel, 2),
        "co2_kg": rounded(fuel * params.co2_kg_per_l, 2),
        "mean_fill_at_collection_pct": rounded(
            float(np.mean(stats.fill_at_collection)) if stats.fill_at_collection else 0.0, 3
        ),
        "overflow_rate_pct": rounded(
            100 * stats.overflow_days / stats.container_days if stats.container_days else 0.0, 4
        ),
    }


def compare_collection(
    series: list[ContainerSeries],
    baseline: tuple[date, date],
    reporting: tuple[date, date],
    params: FleetParameters | None = None,
) -> SavingsResult:
    """Fixed schedule (baseline) vs sensor-driven (reporting), per week so periods of unequal length compare."""
    params = params or FleetParameters()
    out: dict[str, Any] = {}
    for name, (start, end) in (("baseline", baseline), ("reporting", reporting)):
        weeks = (end - start).days / 7
        out[name] = _describe(_stats(series, start, end, params), weeks, params)
    b, r = out["baseline"], out["reporting"]

    def change(key: str) -> float:
        return rounded(100 * (r[key] - b[key]) / b[key], 3) if b[key] else 0.0

    out["change_pct"] = {k: change(k) for k in ("rounds_per_week", "lifts_per_week")}
    weeks_b = (baseline[1] - baseline[0]).days / 7
    weeks_r = (reporting[1] - reporting[0]).days / 7
    out["avoided_per_week"] = {
        key: rounded(b[key] / weeks_b - r[key] / weeks_r, 3) for key in ("km", "fuel_l", "co2_kg")
    }
    inputs: dict[str, Any] = {
        "parameters": vars(params) | {"co2_source": DIESEL_SOURCE},
        "containers": [
            {
                "id": s.container_id,
                "sector": s.sector,
                "height_mm": s.geometry.height_mm,
                "blind_zone_mm": s.geometry.blind_zone_mm,
                "times": s.times_s,
                "distance_mm": s.distance_mm,
            }
            for s in sorted(series, key=lambda s: s.container_id)
        ],
    }
    return SavingsResult(
        method=(
            "Fill from distance and container geometry; emptying = drop >= drop_pct; round = sector x local day with "
            "at least one emptying; km = rounds x km_per_round; per-week rates compared"
        ),
        inputs=inputs,
        period={
            "baseline_start": baseline[0].isoformat(),
            "baseline_end": baseline[1].isoformat(),
            "reporting_start": reporting[0].isoformat(),
            "reporting_end": reporting[1].isoformat(),
        },
        result=out,
    )


def latest_states(
    series: list[ContainerSeries], params: FleetParameters | None = None
) -> list[ContainerState]:
    params = params or FleetParameters()
    states = []
    for s in series:
        if not len(s.times_s):
            continue
        fill = s.geometry.fill_pct(s.distance_mm)
        rate = fill_rate_pct_per_day(s.times_s, fill, params.drop_pct)
        states.append(ContainerState(s.container_id, s.sector, float(fill[-1]), rate))
    return states


def geometry_from_attrs(attrs: Mapping[str, object], default_height_mm: float = 1300.0) -> Geometry:
    h, b = attrs.get("height_mm", default_height_mm), attrs.get("blind_zone_mm", 0.0)
    return Geometry(
        float(h) if isinstance(h, int | float) else default_height_mm,
        float(b) if isinstance(b, int | float) else 0.0,
    )
