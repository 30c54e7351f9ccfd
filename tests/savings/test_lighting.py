"""Hand-computed cases for the lighting formulas."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pytest

from api.savings.astronomy import PARIS, annual_burning_hours, dark_intervals, epoch, local_windows
from api.savings.intervals import IntervalSet
from api.savings.lighting import (
    Cabinet,
    Period,
    ScheduleChange,
    Site,
    bill_change,
    daily_hours,
    fit_line,
    option_a,
    option_c,
)
from api.savings.lighting_inputs import daily_energy_from_counter, relights_from_events, schedule_from_events
from api.savings.tariffs import ADEME_2022, CONSTANT_2021, TRVE_2021_2023

SITE = Site(47.52, 5.10)


def test_interval_algebra() -> None:
    a = IntervalSet.of([(0, 10), (5, 15), (20, 30)])
    assert list(a.starts) == [0, 20] and list(a.ends) == [15, 30]
    b = IntervalSet.of([(12, 22)])
    assert a.minus(b).total() == 12 + 8
    assert a.intersect(b).total() == 3 + 2
    assert a.union(b).total() == 30
    assert list(a.overlap(np.array([0, 10, 25]), np.array([10, 25, 40]))) == [10, 10, 5]


def test_switching_at_minus_two_degrees_gives_about_4170_hours() -> None:
    hours = annual_burning_hours(47.52, 5.10, 2021, -2.0)
    assert hours == pytest.approx(4170, rel=0.01)
    # A lower switching elevation means later on, earlier off: fewer hours.
    assert (
        annual_burning_hours(47.52, 5.10, 2021, -6.0)
        < hours
        < annual_burning_hours(47.52, 5.10, 2021, -0.833)
    )


def test_cutoff_window_is_local_time_across_dst() -> None:
    winter = local_windows(date(2022, 1, 31), date(2022, 1, 31), "00:30", "04:30")
    assert winter.total() == 4 * 3600
    assert datetime.fromtimestamp(winter.starts[0], PARIS).strftime("%d %H:%M") == "01 00:30"
    evening = local_windows(date(2023, 7, 1), date(2023, 7, 1), "22:00", "06:00")
    assert evening.total() == 8 * 3600
    assert datetime.fromtimestamp(evening.starts[0], UTC).hour == 20  # 22:00 CEST
    # The night of the autumn change (29 Oct 2023) lasts an hour more.
    assert local_windows(date(2023, 10, 28), date(2023, 10, 28), "22:00", "06:00").total() == 9 * 3600


def test_fit_line_exact_and_noisy() -> None:
    x = np.array([10.0, 12.0, 14.0, 16.0])
    fit = fit_line(x, 2 + 3 * x)
    assert (fit.intercept, fit.slope, fit.r2, fit.cv_rmse) == pytest.approx((2, 3, 1, 0))
    y = np.array([1.0, 3.0, 2.0, 4.0])
    fit = fit_line(np.array([0.0, 1.0, 2.0, 3.0]), y)
    # Slope 0.8, intercept 1.3, residuals -0.3, 0.9, -0.9, 0.3: SSE 1.8, SST 5.
    assert (fit.slope, fit.intercept, fit.r2) == pytest.approx((0.8, 1.3, 1 - 1.8 / 5))
    assert fit.cv_rmse == pytest.approx(np.sqrt(1.8 / 2) / 2.5)


def test_bill_change_split_sums_exactly() -> None:
    out = bill_change(100.0, 15.0, 50.0, 10.0)  # 0.15 €/kWh then 0.20 €/kWh
    assert out["consumption_effect_eur"] == pytest.approx(-50 * 0.175)
    assert out["price_effect_eur"] == pytest.approx(0.05 * 75)
    assert out["consumption_effect_eur"] + out["price_effect_eur"] == pytest.approx(out["change_eur"]) == -5.0
    assert out["change_pct"] == pytest.approx(-100 / 3)


def _cabinet(
    schedule: tuple[ScheduleChange, ...], watts: float = 1000.0, relights: np.ndarray | None = None
) -> Cabinet:
    """A cabinet whose meter reads exactly watts x lit hours (+ 0.1 kWh a day of standby)."""
    first = date(2021, 1, 1)
    probe = Cabinet(
        "c1", first, np.zeros(365 * 3), schedule, relights if relights is not None else np.zeros((0, 2))
    )
    hours = daily_hours(SITE, probe)
    energy = 0.1 + watts / 1000 * hours.lit
    return Cabinet("c1", first, energy, schedule, probe.relights, installed_w=watts)


def test_option_c_recovers_the_cut_hours_and_is_reproducible() -> None:
    schedule = (
        ScheduleChange(date(2022, 1, 31), (("00:30", "04:30"),)),
        ScheduleChange(date(2023, 7, 1), (("22:00", "06:00"),)),
    )
    relight_at = datetime(2023, 12, 1, 23, 0, tzinfo=PARIS).timestamp()
    cab = _cabinet(schedule, relights=np.array([[relight_at, relight_at + 360]]))
    res = option_c(SITE, [cab], Period.year(2021), Period.year(2023), tariff=CONSTANT_2021, factor=ADEME_2022)
    hours = daily_hours(SITE, cab)
    rep = slice(730, 1095)
    assert res.result["savings_kwh"] == pytest.approx(
        float(np.sum(hours.cut[rep] - hours.relit[rep])), abs=0.01
    )
    assert res.result["by_measure_kwh"]["on_demand_relights"] == pytest.approx(
        -0.1, abs=1e-3
    )  # 6 min at 1 kW
    assert abs(res.result["by_measure_kwh"]["power_reduction_and_residual"]) < 0.01
    assert res.result["co2_avoided_kg"] == pytest.approx(res.result["savings_kwh"] * 0.052, abs=0.01)
    assert res.result["fit"]["r2_min"] == pytest.approx(1.0)
    again = option_c(
        SITE, [cab], Period.year(2021), Period.year(2023), tariff=CONSTANT_2021, factor=ADEME_2022
    )
    assert again.to_dict() == res.to_dict()


def test_option_a_with_non_routine_adjustment_and_tariff() -> None:
    from api.savings.lighting import PowerChange

    cab = _cabinet((ScheduleChange(date(2021, 1, 1), (("00:30", "04:30"),)),))
    added = Cabinet(
        cab.cabinet_id,
        cab.first_day,
        cab.energy_kwh,
        cab.schedule,
        cab.relights,
        1000.0,
        (PowerChange(date(2023, 1, 1), 500.0),),
    )
    res = option_a(
        SITE, [added], Period.year(2021), Period.year(2023), tariff=TRVE_2021_2023, factor=ADEME_2022
    )
    hours = daily_hours(SITE, cab)
    rep = slice(730, 1095)
    # Baseline and reporting both carry the 1.5 kW; the saving is 1.5 kW x the cut hours.
    assert res.result["savings_kwh"] == pytest.approx(1.5 * float(np.sum(hours.cut[rep])), abs=0.01)
    assert res.result["non_routine_adjustments_kwh"] == pytest.approx(
        0.5 * float(np.sum(hours.dark[rep])), abs=0.01
    )
    prices = TRVE_2021_2023.prices_for_ordinals(
        np.arange(date(2023, 1, 1).toordinal(), date(2024, 1, 1).toordinal())
    )
    assert res.result["cost_avoided_eur"] == pytest.approx(
        float(np.sum(1.5 * hours.cut[rep] * prices)), abs=0.02
    )


def test_dark_intervals_follow_the_seasons() -> None:
    dark = dark_intervals(47.52, 5.10, date(2021, 6, 20), date(2021, 12, 21))
    lengths = (dark.ends - dark.starts) / 3600
    assert lengths[0] < 8.5 and lengths[-1] > 15


def test_inputs_from_rows() -> None:
    firsts = {date(2021, 1, 1): 10.0, date(2021, 1, 2): 22.5, date(2021, 1, 4): 40.0, date(2021, 1, 5): 39.0}
    energy = daily_energy_from_counter(firsts, date(2021, 1, 1), date(2021, 1, 4))
    assert energy[0] == 12.5 and np.isnan(energy[1]) and np.isnan(energy[2]) and np.isnan(energy[3])
    at = datetime(2022, 1, 31, 11, 0, tzinfo=UTC)
    sched = schedule_from_events([(at, {"off_start": "00:30", "off_end": "04:30", "switched_share": 0.9})])
    assert sched == (ScheduleChange(date(2022, 1, 31), (("00:30", "04:30"),), 0.9),)
    assert relights_from_events([(at, {"duration_s": 360})]).tolist() == [
        [at.timestamp(), at.timestamp() + 360]
    ]
    assert epoch(date(1970, 1, 2)) == 86_400


def test_a_tariff_refuses_days_its_sources_do_not_cover() -> None:
    last = date(2023, 12, 31)
    assert TRVE_2021_2023.documented_until == last
    assert TRVE_2021_2023.price_on([last])[0] == TRVE_2021_2023.periods[-1].eur_per_kwh
    with pytest.raises(ValueError, match="trve-2021-2023/v1 documents prices until 2023-12-31"):
        TRVE_2021_2023.price_on([last, date(2024, 1, 1)])
    assert TRVE_2021_2023.describe()["documented_until"] == "2023-12-31"
    # The constant-price tariff is an assumption for any day.
    assert CONSTANT_2021.price_on([date(2030, 6, 1)])[0] == CONSTANT_2021.periods[0].eur_per_kwh
    assert "documented_until" not in CONSTANT_2021.describe()
