"""Savings endpoints and the council report; each answer carries method, inputs, period and result."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import HTMLResponse

from api.deps import Principal, connection, requires
from api.reports.council import render_council_report
from api.savings import lighting, parking, store, waste
from api.savings.tariffs import EMISSION_FACTORS, TARIFFS, TRVE_2021_2023

router = APIRouter(tags=["savings"])
Conn = Annotated[psycopg.AsyncConnection[Any], Depends(connection)]
Reader = Annotated[Principal, Depends(requires("read"))]
MAX_PARKING_DAYS = 3 * 366  # bounds the 5-minute occupancy grid (about 316,000 points per space)


def _visible(principal: Principal, tenant: str) -> None:
    if not principal.can_read(tenant):
        raise HTTPException(status_code=404, detail=f"tenant {tenant} not found")


async def lighting_inputs(
    conn: Any, tenant: str, baseline: int, reporting: int, elevation: float = -2.0
) -> tuple[lighting.Site, list[lighting.Cabinet]]:
    """The tenant's site and cabinets over both years; 404 when it has no located cabinet."""
    first, last = date(min(baseline, reporting), 1, 1), date(max(baseline, reporting), 12, 31)
    try:
        return await store.load_lighting(conn, tenant, first, last, elevation)
    except LookupError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None


async def lighting_result(
    conn: Any,
    tenant: str,
    *,
    baseline: int,
    reporting: int,
    method: str,
    tariff: str,
    elevation: float,
    inputs: tuple[lighting.Site, list[lighting.Cabinet]] | None = None,
) -> dict[str, Any]:
    """The lighting savings answer; the dashboard shows the same one (passing the ``inputs`` it loaded)."""
    if tariff not in TARIFFS:
        raise HTTPException(status_code=422, detail=f"unknown tariff {tariff!r}; known: {sorted(TARIFFS)}")
    site, cabinets = inputs or await lighting_inputs(conn, tenant, baseline, reporting, elevation)
    compute = lighting.option_c if method == "C" else lighting.option_a
    factor = next(iter(EMISSION_FACTORS.values()))
    try:
        result = await asyncio.to_thread(
            compute,
            site,
            cabinets,
            lighting.Period.year(baseline),
            lighting.Period.year(reporting),
            tariff=TARIFFS[tariff],
            factor=factor,
        )
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    return result.to_dict()


async def lighting_or_none(
    conn: Any,
    tenant: str,
    baseline: int = 2021,
    reporting: int = 2023,
    inputs: tuple[lighting.Site, list[lighting.Cabinet]] | None = None,
) -> dict[str, Any] | None:
    """The default answer (option C, regulated tariff) for the report and the dashboard, or None when
    the tenant has no figures to show (no located cabinet, no data for the baseline year)."""
    try:
        return await lighting_result(
            conn, tenant, baseline=baseline, reporting=reporting, method="C",
            tariff=TRVE_2021_2023.version, elevation=-2.0, inputs=inputs,
        )  # fmt: skip
    except HTTPException:
        return None


@router.get("/tenants/{tenant}/savings/lighting")
async def lighting_savings(
    tenant: str,
    *,
    principal: Reader,
    conn: Conn,
    baseline: int = Query(2021, ge=2000, le=2100),
    reporting: int = Query(2023, ge=2000, le=2100),
    method: str = Query("C", pattern="^[AC]$"),
    tariff: str = TRVE_2021_2023.version,
    switch_elevation: float = Query(-2.0, ge=-8.0, le=2.0),
) -> dict[str, Any]:
    _visible(principal, tenant)
    return await lighting_result(
        conn,
        tenant,
        baseline=baseline,
        reporting=reporting,
        method=method,
        tariff=tariff,
        elevation=switch_elevation,
    )


async def waste_result(
    conn: Any, tenant: str, periods: tuple[date, date, date, date], params: waste.FleetParameters
) -> dict[str, Any]:
    """The waste savings answer; the dashboard shows the same one."""
    b0, b1, r0, r1 = periods
    if not (b0 < b1 and r0 < r1):
        raise HTTPException(status_code=422, detail="each period must end after it starts")
    series = await store.load_waste(conn, tenant, min(b0, r0), max(b1, r1))
    result = await asyncio.to_thread(waste.compare_collection, series, (b0, b1), (r0, r1), params)
    return result.to_dict()


@router.get("/tenants/{tenant}/savings/waste")
async def waste_savings(
    tenant: str,
    *,
    principal: Reader,
    conn: Conn,
    baseline_start: date = date(2022, 10, 1),
    baseline_end: date = date(2023, 1, 1),
    reporting_start: date = date(2023, 10, 1),
    reporting_end: date = date(2024, 1, 1),
    km_per_round: float = Query(28.0, gt=0),
    fuel_l_per_100km: float = Query(45.0, gt=0),
) -> dict[str, Any]:
    _visible(principal, tenant)
    params = waste.FleetParameters(km_per_round=km_per_round, fuel_l_per_100km=fuel_l_per_100km)
    return await waste_result(
        conn, tenant, (baseline_start, baseline_end, reporting_start, reporting_end), params
    )


@router.get("/tenants/{tenant}/savings/parking")
async def parking_savings(
    tenant: str,
    *,
    principal: Reader,
    conn: Conn,
    start: date,
    end: date,
    search_min_saturated: float = Query(3.0, ge=0),
    search_min_guided: float = Query(1.0, ge=0),
    speed_kmh: float = Query(15.0, gt=0),
    metric: str = "occupied",
) -> dict[str, Any]:
    _visible(principal, tenant)
    if end <= start:
        raise HTTPException(status_code=422, detail="end must be after start")
    if (end - start).days > MAX_PARKING_DAYS:
        # The share of time above 85 % is read on a 5-minute grid for every space:
        # a century would be ~10 million points per space and minutes of work.
        raise HTTPException(
            status_code=422,
            detail=f"the period is {(end - start).days} days; at most {MAX_PARKING_DAYS} days (3 years) per request",
        )
    spaces = await store.load_parking(conn, tenant, start, end, metric)
    params = parking.CruisingParameters(
        search_min_saturated=search_min_saturated, search_min_guided=search_min_guided, speed_kmh=speed_kmh
    )
    t0, t1 = store._utc(start).timestamp(), store._utc(end).timestamp()
    result = await asyncio.to_thread(parking.parking_metrics, spaces, t0, t1, params)
    return result.to_dict()


@router.get("/tenants/{tenant}/reports/council", response_class=HTMLResponse)
async def council_report(
    tenant: str,
    *,
    principal: Reader,
    conn: Conn,
    baseline: int = Query(2021, ge=2000, le=2100),
    reporting: int = Query(2023, ge=2000, le=2100),
) -> HTMLResponse:
    _visible(principal, tenant)
    cur = await conn.execute("SELECT name FROM tenants WHERE id = %s", (tenant,))
    row = await cur.fetchone()
    if row is None:
        raise HTTPException(status_code=404, detail=f"tenant {tenant} not found")
    light = await lighting_or_none(conn, tenant, baseline, reporting)  # None: the section is left out
    waste_answer: dict[str, Any] | None = None
    series = await store.load_waste(conn, tenant, date(reporting - 1, 10, 1), date(reporting + 1, 1, 1))
    if any(len(s.times_s) for s in series):
        periods = (
            (date(reporting - 1, 10, 1), date(reporting, 1, 1)),
            (date(reporting, 10, 1), date(reporting + 1, 1, 1)),
        )
        waste_answer = (await asyncio.to_thread(waste.compare_collection, series, *periods)).to_dict()
    html = render_council_report(
        tenant_name=str(row[0]),
        baseline_label=str(baseline),
        reporting_label=str(reporting),
        lighting=light,
        waste=waste_answer,
        generated_on=date.today(),
    )
    return HTMLResponse(html)
