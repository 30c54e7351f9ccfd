"""Street-lighting savings in the IPMVP form: savings = adjusted baseline - reporting use.

Option C (whole-cabinet metering): per cabinet, a least-squares line of daily
energy against astronomical burning hours over the baseline period; applied
to the reporting period's burning hours it gives the energy the old regime
would have used. Option A (key parameter): installed power x burning hours,
with hours from the schedule (cut-off windows, relights) and power from the
inventory. Both apply non-routine adjustments (luminaires added or removed)
to the baseline. Days are UTC days, as in the readings_daily relation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal

import numpy as np

from .astronomy import DEFAULT_SWITCH_ELEVATION, dark_intervals, epoch, local_windows
from .intervals import EMPTY, FloatArray, IntervalSet
from .provenance import SavingsResult, array_digest, rounded
from .tariffs import EmissionFactor, Tariff


@dataclass(frozen=True)
class Site:
    latitude: float
    longitude: float
    switch_elevation_deg: float = DEFAULT_SWITCH_ELEVATION


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # exclusive

    @staticmethod
    def year(year: int) -> Period:
        return Period(date(year, 1, 1), date(year + 1, 1, 1))

    def describe(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


@dataclass(frozen=True)
class ScheduleChange:
    """From the night of `effective`, lamps are off in these local windows ("00:30", "04:30")."""

    effective: date
    off_windows: tuple[tuple[str, str], ...] = ()
    # Share of the cabinet's load the cut-off switches (circuits on main roads may stay lit).
    switched_share: float = 1.0


@dataclass(frozen=True)
class PowerChange:
    """Installed power changes: non-routine (luminaires added/removed) or a measure (LED retrofit)."""

    effective: date
    delta_w: float
    kind: Literal["non_routine", "measure"] = "non_routine"
    note: str = ""


@dataclass(frozen=True)
class Cabinet:
    cabinet_id: str
    first_day: date
    energy_kwh: FloatArray  # energy per UTC day from first_day; NaN where unknown
    schedule: tuple[ScheduleChange, ...] = ()
    relights: FloatArray = field(default_factory=lambda: np.zeros((0, 2)))  # (start, end) epoch s
    installed_w: float = 0.0  # at the start of the baseline (Option A)
    power_changes: tuple[PowerChange, ...] = ()

    def describe(self) -> dict[str, Any]:
        return {
            "cabinet": self.cabinet_id,
            "first_day": self.first_day.isoformat(),
            "energy_kwh": self.energy_kwh,
            "schedule": [[s.effective.isoformat(), [list(w) for w in s.off_windows]] for s in self.schedule],
            "relights_sha256": array_digest(self.relights),
            "installed_w": self.installed_w,
            "power_changes": [[c.effective.isoformat(), c.delta_w, c.kind] for c in self.power_changes],
        }


@dataclass(frozen=True)
class LinearFit:
    intercept: float
    slope: float
    r2: float
    cv_rmse: float
    n: int


def fit_line(x: FloatArray, y: FloatArray) -> LinearFit:
    """Ordinary least squares y = a + b x, with R² and CV(RMSE) (n - 2 degrees of freedom)."""
    n = len(x)
    if n < 3:
        raise ValueError("a baseline fit needs at least 3 days with data")
    xm, ym = float(np.mean(x)), float(np.mean(y))
    sxx = float(np.sum((x - xm) ** 2))
    if sxx == 0:
        raise ValueError("burning hours do not vary over the baseline: the fit is undefined")
    b = float(np.sum((x - xm) * (y - ym))) / sxx
    a = ym - b * xm
    sse = float(np.sum((y - (a + b * x)) ** 2))
    sst = float(np.sum((y - ym) ** 2))
    r2 = 1.0 - sse / sst if sst > 0 else 1.0
    cv = float(np.sqrt(sse / (n - 2)) / ym) if ym else float("inf")
    return LinearFit(a, b, r2, cv, n)


@dataclass(frozen=True)
class DailyHours:
    """Hours per UTC day: dark (dusk to dawn), cut by schedule, relit on demand, actually lit."""

    dark: FloatArray
    cut: FloatArray
    relit: FloatArray

    @property
    def lit(self) -> FloatArray:
        return self.dark - self.cut + self.relit


def off_windows(
    schedule: tuple[ScheduleChange, ...], first_night: date, last_night: date
) -> list[tuple[IntervalSet, float]]:
    """Each schedule segment's cut-off windows with the share of load they switch."""
    result: list[tuple[IntervalSet, float]] = []
    ordered = sorted(schedule, key=lambda s: s.effective)
    for i, change in enumerate(ordered):
        seg_start = max(change.effective, first_night)
        seg_end = last_night
        if i + 1 < len(ordered):
            seg_end = min(ordered[i + 1].effective - timedelta(days=1), last_night)
        windows = EMPTY
        for start, end in change.off_windows:
            if seg_start <= seg_end:
                windows = windows.union(local_windows(seg_start, seg_end, start, end))
        if len(windows) and change.switched_share > 0:
            result.append((windows, change.switched_share))
    return result


def daily_hours(site: Site, cabinet: Cabinet) -> DailyHours:
    """Hours per UTC day; cut and relit hours are weighted by the share of load switched."""
    n = len(cabinet.energy_kwh)
    first, last = cabinet.first_day, cabinet.first_day + timedelta(days=n - 1)
    dark = dark_intervals(
        site.latitude, site.longitude, first - timedelta(days=1), last, site.switch_elevation_deg
    )
    starts = epoch(first) + 86_400.0 * np.arange(n)
    ends = starts + 86_400.0
    relights = IntervalSet.of(cabinet.relights) if len(cabinet.relights) else EMPTY
    cut_h, relit_h = np.zeros(n), np.zeros(n)
    for windows, share in off_windows(cabinet.schedule, first - timedelta(days=1), last):
        cut = dark.intersect(windows)
        cut_h += share * cut.overlap(starts, ends) / 3600
        if len(relights):
            relit_h += share * cut.intersect(relights).overlap(starts, ends) / 3600
    return DailyHours(dark.overlap(starts, ends) / 3600, cut_h, relit_h)


def _power_w(cabinet: Cabinet, n: int, kinds: tuple[str, ...]) -> FloatArray:
    power = np.full(n, cabinet.installed_w)
    for change in cabinet.power_changes:
        if change.kind in kinds:
            offset = max((change.effective - cabinet.first_day).days, 0)
            power[offset:] += change.delta_w
    return power


def _mask(cabinet: Cabinet, period: Period) -> np.ndarray[Any, np.dtype[np.bool_]]:
    offsets = np.arange(len(cabinet.energy_kwh))
    lo, hi = (period.start - cabinet.first_day).days, (period.end - cabinet.first_day).days
    result: np.ndarray[Any, np.dtype[np.bool_]] = (offsets >= lo) & (offsets < hi)
    return result


@dataclass
class _Totals:
    adjusted_baseline: float = 0.0
    reporting: float = 0.0
    cut: float = 0.0
    relights: float = 0.0
    adjustments: float = 0.0
    cost_adjusted_baseline: float = 0.0
    cost_reporting: float = 0.0
    baseline_actual: float = 0.0
    baseline_cost: float = 0.0

    def add(self, **values: float) -> None:
        for key, value in values.items():
            setattr(self, key, getattr(self, key) + float(value))


def _prices(tariff: Tariff, cabinet: Cabinet) -> FloatArray:
    first = cabinet.first_day.toordinal()
    return tariff.prices_for_ordinals(first + np.arange(len(cabinet.energy_kwh)))


def option_c(
    site: Site,
    cabinets: list[Cabinet],
    baseline: Period,
    reporting: Period,
    *,
    tariff: Tariff,
    factor: EmissionFactor,
) -> SavingsResult:
    """IPMVP Option C per cabinet, summed over the cabinets."""
    totals = _Totals()
    fits: dict[str, dict[str, float]] = {}
    for cab in cabinets:
        hours = daily_hours(site, cab)
        prices = _prices(tariff, cab)
        known = ~np.isnan(cab.energy_kwh)
        base, rep = _mask(cab, baseline) & known, _mask(cab, reporting) & known
        fit = fit_line(hours.dark[base], cab.energy_kwh[base])
        fits[cab.cabinet_id] = {
            "intercept_kwh": fit.intercept,
            "slope_kw": fit.slope,
            "r2": fit.r2,
            "cv_rmse": fit.cv_rmse,
            "n": fit.n,
        }
        # Luminaires added/removed would have burned dusk to dawn under the baseline regime.
        adjust = _power_w(cab, len(known), ("non_routine",)) - cab.installed_w
        adjusted = fit.intercept + fit.slope * hours.dark + adjust / 1000 * hours.dark
        totals.add(
            adjusted_baseline=np.sum(adjusted[rep]),
            reporting=np.sum(cab.energy_kwh[rep]),
            cut=fit.slope * np.sum(hours.cut[rep]),
            relights=-fit.slope * np.sum(hours.relit[rep]),
            adjustments=np.sum((adjust / 1000 * hours.dark)[rep]),
            cost_adjusted_baseline=np.sum((adjusted * prices)[rep]),
            cost_reporting=np.sum((cab.energy_kwh * prices)[rep]),
            baseline_actual=np.sum(cab.energy_kwh[base]),
            baseline_cost=np.sum((cab.energy_kwh * prices)[base]),
        )
    r2 = [f["r2"] for f in fits.values()]
    cv = [f["cv_rmse"] for f in fits.values()]
    return _result(
        "IPMVP option C: daily cabinet energy = a + b x astronomical burning hours, fitted per cabinet on the baseline",
        site=site,
        cabinets=cabinets,
        baseline=baseline,
        reporting=reporting,
        tariff=tariff,
        factor=factor,
        t=totals,
        fit_summary={
            "cabinets": len(fits),
            "r2_min": min(r2, default=0.0),
            "cv_rmse_max": max(cv, default=0.0),
        },
        details={"fits": fits},
    )


def option_a(
    site: Site,
    cabinets: list[Cabinet],
    baseline: Period,
    reporting: Period,
    *,
    tariff: Tariff,
    factor: EmissionFactor,
) -> SavingsResult:
    """IPMVP Option A: installed power x burning hours; baseline power adjusted for non-routine changes."""
    totals = _Totals()
    for cab in cabinets:
        hours = daily_hours(site, cab)
        prices = _prices(tariff, cab)
        n = len(cab.energy_kwh)
        base_kw = _power_w(cab, n, ("non_routine",)) / 1000
        rep_kw = _power_w(cab, n, ("non_routine", "measure")) / 1000
        rep, base = _mask(cab, reporting), _mask(cab, baseline)
        adjusted = base_kw * hours.dark
        used = rep_kw * hours.lit
        totals.add(
            adjusted_baseline=np.sum(adjusted[rep]),
            reporting=np.sum(used[rep]),
            cut=np.sum((base_kw * hours.cut)[rep]),
            relights=-np.sum((base_kw * hours.relit)[rep]),
            adjustments=np.sum(((base_kw - cab.installed_w / 1000) * hours.dark)[rep]),
            cost_adjusted_baseline=np.sum((adjusted * prices)[rep]),
            cost_reporting=np.sum((used * prices)[rep]),
            baseline_actual=np.sum((rep_kw * hours.lit)[base]),
            baseline_cost=np.sum((rep_kw * hours.lit * prices)[base]),
        )
    return _result(
        "IPMVP option A: installed power x burning hours (astronomy, schedule, relights)",
        site=site,
        cabinets=cabinets,
        baseline=baseline,
        reporting=reporting,
        tariff=tariff,
        factor=factor,
        t=totals,
        fit_summary=None,
        details={},
    )


def bill_change(e0: float, c0: float, e1: float, c1: float) -> dict[str, float]:
    """Split C1 - C0 into consumption and price effects (midpoint weights: they sum exactly)."""
    p0 = c0 / e0 if e0 else 0.0
    p1 = c1 / e1 if e1 else 0.0
    consumption = (e1 - e0) * (p0 + p1) / 2
    price = (p1 - p0) * (e0 + e1) / 2
    return {
        "baseline_eur": c0,
        "reporting_eur": c1,
        "change_eur": c1 - c0,
        "change_pct": 100 * (c1 - c0) / c0 if c0 else 0.0,
        "consumption_effect_eur": consumption,
        "price_effect_eur": price,
        "baseline_price_eur_per_kwh": p0,
        "reporting_price_eur_per_kwh": p1,
    }


def _result(
    method: str,
    *,
    site: Site,
    cabinets: list[Cabinet],
    baseline: Period,
    reporting: Period,
    tariff: Tariff,
    factor: EmissionFactor,
    t: _Totals,
    fit_summary: dict[str, float] | None,
    details: dict[str, Any],
) -> SavingsResult:
    savings = t.adjusted_baseline - t.reporting
    power_and_residual = savings - t.cut - t.relights
    result: dict[str, Any] = {
        "adjusted_baseline_kwh": rounded(t.adjusted_baseline, 3),
        "reporting_kwh": rounded(t.reporting, 3),
        "savings_kwh": rounded(savings, 3),
        "savings_pct": rounded(100 * savings / t.adjusted_baseline if t.adjusted_baseline else 0.0, 3),
        "non_routine_adjustments_kwh": rounded(t.adjustments, 3),
        "by_measure_kwh": {
            "part_night_cutoff": rounded(t.cut, 3),
            "on_demand_relights": rounded(t.relights, 3),
            "power_reduction_and_residual": rounded(power_and_residual, 3),
        },
        "cost_avoided_eur": rounded(t.cost_adjusted_baseline - t.cost_reporting, 2),
        "co2_avoided_kg": rounded(savings * factor.kg_co2e_per_kwh, 3),
        "baseline_actual_kwh": rounded(t.baseline_actual, 3),
        "energy_change_pct": rounded(
            100 * (t.reporting - t.baseline_actual) / t.baseline_actual if t.baseline_actual else 0.0, 3
        ),
        "bill": {
            k: rounded(v, 4)
            for k, v in bill_change(t.baseline_actual, t.baseline_cost, t.reporting, t.cost_reporting).items()
        },
    }
    if fit_summary is not None:
        result["fit"] = {k: rounded(v, 6) for k, v in fit_summary.items()}
    inputs = {
        "site": {
            "latitude": site.latitude,
            "longitude": site.longitude,
            "switch_elevation_deg": site.switch_elevation_deg,
            "timezone": "Europe/Paris",
        },
        "tariff": tariff.describe(),
        "emission_factor": factor.describe(),
        "cabinets": [c.describe() for c in sorted(cabinets, key=lambda c: c.cabinet_id)],
    }
    return SavingsResult(
        method=method,
        inputs=inputs,
        period={"baseline_" + k: v for k, v in baseline.describe().items()}
        | {"reporting_" + k: v for k, v in reporting.describe().items()},
        result=result,
        details=details,
    )
