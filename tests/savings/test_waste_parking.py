"""Hand-computed cases for waste collection and parking metrics, and the council report."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pytest

from api.reports.council import fr, render_council_report
from api.savings.parking import CruisingParameters, SpaceSeries, parking_metrics
from api.savings.waste import (
    ContainerSeries,
    ContainerState,
    FleetParameters,
    Geometry,
    compare_collection,
    detect_emptyings,
    fill_rate_pct_per_day,
    plan_next_round,
    theil_sen_slope,
)

DAY = 86_400.0


def test_fill_from_distance_ignores_blind_zone() -> None:
    g = Geometry(height_mm=1000, blind_zone_mm=200)
    assert g.fill_pct(np.array([1000.0, 600.0, 200.0, 100.0, 1100.0])).tolist() == [
        0.0,
        50.0,
        100.0,
        100.0,
        0.0,
    ]


def test_emptying_and_robust_rate() -> None:
    t = np.arange(6) * DAY
    fill = np.array([10.0, 20.0, 30.0, 5.0, 15.0, 25.0])
    (e,) = detect_emptyings(t, fill, 15.0)
    assert (e.time_s, e.fill_before_pct, e.fill_after_pct) == (3 * DAY, 30.0, 5.0)
    assert fill_rate_pct_per_day(t, fill) == pytest.approx(10.0)
    # One spike (a lid left open) does not move the median slope.
    assert theil_sen_slope(np.arange(5.0), np.array([0.0, 1.0, 20.0, 3.0, 4.0])) == pytest.approx(1.0)


def test_next_round_urgent_and_eligible() -> None:
    states = [
        ContainerState("a", "s1", 85.0, 5.0),  # urgent now
        ContainerState("b", "s1", 65.0, 5.0),  # eligible, its sector is visited
        ContainerState("c", "s2", 70.0, 20.0),  # forecast 110 % in 2 days: urgent
        ContainerState("d", "s3", 65.0, 5.0),  # eligible but nobody urgent in s3
        ContainerState("e", "s1", 30.0, 5.0),
    ]
    plan = plan_next_round(states, days_ahead=2)
    assert (plan.urgent, plan.eligible, plan.sectors) == (["a", "c"], ["b"], ["s1", "s2"])


def _saw(start: date, days: int, every: int, rate: float) -> tuple[np.ndarray, np.ndarray]:
    t0 = datetime(start.year, start.month, start.day, 6, tzinfo=UTC).timestamp()
    times = t0 + np.arange(days * 4) * DAY / 4
    level = np.minimum((np.arange(days * 4) % (every * 4)) * rate / 4, 100.0)
    return times, level


def test_compare_collection_counts_rounds_lifts_and_overflow() -> None:
    g = Geometry(1000, 0)
    # Baseline: emptied every 2 days at 30 %; reporting: every 4 days at 60 %, hitting 100 % never.
    tb, fb = _saw(date(2023, 1, 2), 28, 2, 20.0)
    tr, fr_ = _saw(date(2023, 3, 6), 28, 4, 20.0)
    times, fill = np.concatenate((tb, tr)), np.concatenate((fb, fr_))
    series = [ContainerSeries("x", "s1", g, times, 1000 - fill * 10)]
    params = FleetParameters(km_per_round=10, fuel_l_per_100km=50, co2_kg_per_l=3.0)
    res = compare_collection(
        series, (date(2023, 1, 2), date(2023, 1, 30)), (date(2023, 3, 6), date(2023, 4, 3)), params
    ).result
    # Reporting: 6 emptyings at 75 %, plus the one between the periods seen at its first reading (35 %).
    assert res["baseline"]["rounds"] == 13 and res["reporting"]["rounds"] == 7
    assert (
        res["baseline"]["km"] == 130 and res["baseline"]["fuel_l"] == 65 and res["baseline"]["co2_kg"] == 195
    )
    assert res["change_pct"]["rounds_per_week"] == pytest.approx(100 * (7 - 13) / 13, abs=1e-3)
    assert res["reporting"]["mean_fill_at_collection_pct"] == pytest.approx((6 * 75 + 35) / 7, abs=1e-3)
    assert res["baseline"]["overflow_rate_pct"] == 0.0


def test_parking_hand_case() -> None:
    h = 3600.0
    # Space A occupied 0-2 h and 3-4 h; space B 1-4 h. Window 0-4 h.
    a = SpaceSeries("a", np.array([0, 2 * h, 3 * h]), np.array([1.0, 0.0, 1.0]))
    b = SpaceSeries("b", np.array([0, h]), np.array([0.0, 1.0]))
    params = CruisingParameters(
        search_min_saturated=4.0, search_min_guided=1.0, speed_kmh=12.0, car_kg_co2e_per_km=0.2
    )
    r = parking_metrics([a, b], 0.0, 4 * h, params).result
    assert r["occupancy_pct"] == pytest.approx(100 * (3 + 3) / 8)
    assert r["arrivals"] == 3 and r["turnover_per_space_per_day"] == pytest.approx(3 / 2 / (4 / 24))
    assert r["mean_duration_min"] == pytest.approx(120.0)  # only A's first stay ended
    # Both occupied (100 % >= 85 %) during 1-2 h and 3-4 h: half the time.
    assert r["time_above_saturation_pct"] == pytest.approx(50.0)
    km = 3 * 0.5 * 3 / 60 * 12
    assert r["cruising_km_avoided"] == pytest.approx(km) and r["co2_avoided_kg"] == pytest.approx(km * 0.2)


def test_council_report_in_french() -> None:
    light = {
        "method": "IPMVP option C",
        "inputs_hash": "ab" * 32,
        "inputs": {"tariff": {"version": "trve"}, "emission_factor": {"source": "ADEME"}},
        "result": {
            "adjusted_baseline_kwh": 1000.0, "reporting_kwh": 540.0, "savings_kwh": 460.0, "savings_pct": 46.0,
            "cost_avoided_eur": 80.5, "co2_avoided_kg": 23.9,
            "bill": {"change_pct": -35.2, "consumption_effect_eur": -90.0, "price_effect_eur": 20.0},
            "by_measure_kwh": {"part_night_cutoff": 470.0, "on_demand_relights": -10.0, "power_reduction_and_residual": 0.0},
            "fit": {"r2_min": 0.99, "cv_rmse_max": 0.02},
        },
    }  # fmt: skip
    html = render_council_report(
        tenant_name="Is-sur-Tille",
        baseline_label="2021",
        reporting_label="2023",
        lighting=light,
        waste=None,
        generated_on=date(2024, 1, 15),
    )
    assert "Économie d'énergie (%)" in html and "46,0 %" in html and "Extinction en cœur de nuit" in html
    assert "15/01/2024" in html and "Collecte des déchets" not in html
    assert fr(12345.678, 1) == "12\u202f345,7"
