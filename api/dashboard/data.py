"""What the pages show, read from the SCHEMA relations and the savings functions the API uses.

Savings figures come from the same functions as /tenants/{t}/savings/* with the
same default parameters, so a page and the JSON endpoint always agree.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
from fastapi import HTTPException
from psycopg.rows import dict_row

from api.alerting.engine import ensure_schema
from api.deps import Principal
from api.routers.savings import lighting_inputs, waste_result
from api.savings import lighting, parking, store, waste
from api.savings.astronomy import PARIS
from api.savings.tariffs import EMISSION_FACTORS, TARIFFS, TRVE_2021_2023

Conn = psycopg.AsyncConnection[Any]
Row = dict[str, Any]
BASELINE_YEAR, REPORTING_YEAR = 2021, 2023  # the API's defaults for lighting
# Years the dashboard's tariff table documents (the tariff refuses later days).
LIGHTING_YEARS = tuple(range(TRVE_2021_2023.periods[0].start.year, TRVE_2021_2023.documented_until.year + 1))


def lighting_years(query: Mapping[str, str]) -> tuple[int, int, bool]:
    """(reference, reporting, accepted): the years asked in ``?reference=&annee=``, or the defaults
    (accepted False) when they are not two documented years, the reference first."""
    try:
        baseline = int(query.get("reference", BASELINE_YEAR))
        reporting = int(query.get("annee", REPORTING_YEAR))
    except ValueError:
        return BASELINE_YEAR, REPORTING_YEAR, False
    if baseline in LIGHTING_YEARS and reporting in LIGHTING_YEARS and baseline < reporting:
        return baseline, reporting, True
    return BASELINE_YEAR, REPORTING_YEAR, False


WASTE_PERIODS = (date(2022, 10, 1), date(2023, 1, 1), date(2023, 10, 1), date(2024, 1, 1))
LINK_METRICS = ("battery_v", "battery_pct", "rssi_dbm", "snr_db")


async def _rows(conn: Conn, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[Row]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql.encode(), params)
        return await cur.fetchall()


async def tenants(conn: Conn, principal: Principal) -> list[Row]:
    readable = principal.readable_tenants()
    if readable is None:
        return await _rows(conn, "SELECT id, name FROM tenants ORDER BY name, id")
    return await _rows(
        conn, "SELECT id, name FROM tenants WHERE id = ANY(%s) ORDER BY name, id", [sorted(readable)]
    )


async def sites(conn: Conn, tenant: str) -> list[Row]:
    return await _rows(
        conn, "SELECT id, name, kind, location FROM sites WHERE tenant_id = %s ORDER BY name, id", [tenant]
    )


async def counts(conn: Conn, tenant: str) -> Row:
    await ensure_schema(conn)
    rows = await _rows(
        conn,
        "SELECT (SELECT count(*) FROM sites WHERE tenant_id = %(t)s) AS sites, "
        "(SELECT count(*) FROM devices WHERE tenant_id = %(t)s) AS devices, "
        "(SELECT count(*) FROM gateways WHERE tenant_id = %(t)s) AS gateways, "
        "(SELECT count(*) FROM gateways WHERE tenant_id = %(t)s AND state = 'online') AS gateways_online, "
        "(SELECT count(*) FROM alerts WHERE tenant_id = %(t)s AND state = 'open') AS open_alerts",
        {"t": tenant},  # type: ignore[arg-type]
    )
    return rows[0]


Inputs = tuple[lighting.Site, list[lighting.Cabinet]]


async def lighting_loaded(conn: Conn, tenant: str, baseline: int, reporting: int) -> Inputs | None:
    """What the lighting figures are computed from, read once per page; None: no located cabinet."""
    try:
        return await lighting_inputs(conn, tenant, baseline, reporting)
    except HTTPException:
        return None


async def lighting_months(inputs: Inputs | None, baseline: int, reporting: int) -> list[Row]:
    """Reporting-year consumption and adjusted baseline, month by month.

    The baseline model is fitted on the baseline year only, so the monthly
    adjusted baselines add up to the yearly one shown by the API.
    """
    if inputs is None:
        return []
    site, cabinets = inputs
    base = lighting.Period.year(baseline)
    factor = next(iter(EMISSION_FACTORS.values()))

    def compute() -> list[Row]:
        months = []
        for month in range(1, 13):
            end = date(reporting + month // 12, month % 12 + 1, 1)
            period = lighting.Period(date(reporting, month, 1), end)
            try:
                result = lighting.option_c(
                    site, cabinets, base, period, tariff=TARIFFS[TRVE_2021_2023.version], factor=factor
                ).result
            except ValueError:
                continue
            months.append(
                {"month": month, "reporting_kwh": result["reporting_kwh"],
                 "adjusted_baseline_kwh": result["adjusted_baseline_kwh"]}
            )  # fmt: skip
        return months

    return await asyncio.to_thread(compute)


async def lighting_events(conn: Conn, tenant: str, reporting: int) -> tuple[list[Row], list[Row]]:
    """Schedule changes, and relights counted per month of the reporting year."""
    schedule = await _rows(
        conn,
        "SELECT e.time, e.device_id, s.name AS site, e.attrs FROM events e JOIN devices d ON d.id = e.device_id "
        "LEFT JOIN sites s ON s.id = d.site_id WHERE e.tenant_id = %s AND e.kind = 'schedule_changed' "
        "ORDER BY e.time DESC LIMIT 50",
        [tenant],
    )
    for row in schedule:
        attrs = row["attrs"] if isinstance(row["attrs"], dict) else json.loads(row["attrs"] or "{}")
        if attrs.get("mode") == "dusk_to_dawn" or not attrs.get("off_start"):
            row["summary"] = "Allumage toute la nuit"
        else:
            row["summary"] = f"Extinction de {attrs['off_start']} à {attrs.get('off_end', '?')}"
    relights = await _rows(
        conn,
        "SELECT extract(month FROM time AT TIME ZONE 'Europe/Paris')::int AS month, count(*) AS relights "
        "FROM events WHERE tenant_id = %s AND kind = 'relight' AND time >= %s AND time < %s GROUP BY 1 ORDER BY 1",
        [
            tenant,
            datetime(reporting, 1, 1, tzinfo=PARIS),
            datetime(reporting + 1, 1, 1, tzinfo=PARIS),
        ],
    )
    return schedule, relights


async def waste_page(conn: Conn, tenant: str) -> Row | None:
    savings = await waste_result(conn, tenant, WASTE_PERIODS, waste.FleetParameters())
    if not savings["inputs"]["containers"]:
        return None
    # Current state: the last two weeks of readings before the newest one.
    newest = await _rows(
        conn, "SELECT max(time) AS t FROM readings WHERE tenant_id = %s AND metric = 'distance_mm'", [tenant]
    )
    last: datetime | None = newest[0]["t"]
    states: list[waste.ContainerState] = []
    if last is not None:
        day = last.astimezone(UTC).date()
        series = await store.load_waste(conn, tenant, day - timedelta(days=14), day + timedelta(days=1))
        states = waste.latest_states(series)
    plan = waste.plan_next_round(states, days_ahead=2.0)
    to_collect = set(plan.urgent) | set(plan.eligible)
    containers = [
        {"id": s.container_id, "sector": s.sector, "fill_pct": s.fill_pct, "rate": s.rate_pct_per_day,
         "urgent": s.container_id in plan.urgent, "collect": s.container_id in to_collect}
        for s in sorted(states, key=lambda s: -s.fill_pct)
    ]  # fmt: skip
    bands = np.histogram([s.fill_pct for s in states], bins=10, range=(0, 100))[0]
    return {
        "savings": savings["result"], "period": savings["period"], "containers": containers,
        "to_collect": len(to_collect), "sectors": plan.sectors, "as_of": last,
        "bands": [{"label": f"{10 * i}–{10 * i + 10} %", "count": int(n)} for i, n in enumerate(bands)],
    }  # fmt: skip


async def parking_page(conn: Conn, tenant: str) -> Row | None:
    """The last seven days with data: the API's metrics and occupancy by hour of day, per zone."""
    rows = await _rows(
        conn,
        "SELECT d.id, coalesce(d.attrs->>'zone', d.site_id, '') AS zone, s.name AS zone_name FROM devices d "
        "LEFT JOIN sites s ON s.id = coalesce(d.attrs->>'zone', d.site_id) "
        "WHERE d.tenant_id = %s AND d.attrs->>'role' = 'parking_space' ORDER BY d.id",
        [tenant],
    )
    if not rows:
        return None
    newest = await _rows(
        conn,
        "SELECT max(time) AS t FROM readings WHERE tenant_id = %s AND metric = 'occupied' AND device_id = ANY(%s)",
        [tenant, [r["id"] for r in rows]],
    )
    if newest[0]["t"] is None:
        return None
    end = newest[0]["t"].astimezone(UTC).date() + timedelta(days=1)
    start = end - timedelta(days=7)
    spaces = await store.load_parking(conn, tenant, start, end)
    t0, t1 = store._utc(start).timestamp(), store._utc(end).timestamp()
    metrics = (await asyncio.to_thread(parking.parking_metrics, spaces, t0, t1)).result
    zone_of = {r["id"]: (r["zone"], r["zone_name"] or r["zone"]) for r in rows}
    grid = np.arange(t0, t1, 300.0)
    hours = np.array([datetime.fromtimestamp(t, PARIS).hour for t in grid])
    zones = []
    for zone, name in sorted(set(zone_of.values())):
        zone_spaces = [s for s in spaces if zone_of[s.space_id][0] == zone]
        share = parking.occupancy_timeline(zone_spaces, t0, t1)
        by_hour = []
        for h in range(24):
            in_hour = hours == h
            by_hour.append(round(100 * float(np.mean(share[in_hour])), 1) if np.any(in_hour) else 0.0)
        zones.append({"id": zone, "name": name, "spaces": len(zone_spaces), "by_hour": by_hour})
    return {"metrics": metrics, "start": start, "end": end, "zones": zones}


async def gateways(conn: Conn, tenant: str) -> list[Row]:
    return await _rows(
        conn,
        "SELECT g.id, g.name, g.state, g.last_seen, g.buffer_readings, g.oldest_unsent_age_s, g.dropped_readings, "
        "g.clock_synced, g.version, s.name AS site, (SELECT count(*) FROM devices d WHERE d.gateway_id = g.id) AS devices "
        "FROM gateways g LEFT JOIN sites s ON s.id = g.site_id WHERE g.tenant_id = %s ORDER BY g.state DESC, g.id",
        [tenant],
    )


async def devices(conn: Conn, tenant: str) -> list[Row]:
    """Each device with its latest battery and link-quality values (one index probe per pair)."""
    found = await _rows(
        conn,
        "SELECT d.id, d.model, d.gateway_id, d.expected_interval_s, s.name AS site, "
        "(SELECT max(bucket) FROM readings_hourly h WHERE h.device_id = d.id) AS last_hour "
        "FROM devices d LEFT JOIN sites s ON s.id = d.site_id WHERE d.tenant_id = %s ORDER BY d.id",
        [tenant],
    )
    latest = await _rows(
        conn,
        "SELECT d.id, m.metric, r.value, r.time FROM devices d CROSS JOIN unnest(%s::text[]) AS m(metric) "
        "CROSS JOIN LATERAL (SELECT value, time FROM readings WHERE device_id = d.id AND metric = m.metric "
        "ORDER BY time DESC LIMIT 1) r WHERE d.tenant_id = %s",
        [list(LINK_METRICS), tenant],
    )
    by_device: dict[str, dict[str, float]] = {}
    for row in latest:
        by_device.setdefault(row["id"], {})[row["metric"]] = row["value"]
    for row in found:
        row.update({metric: by_device.get(row["id"], {}).get(metric) for metric in LINK_METRICS})
    return found


async def alerts(conn: Conn, tenant: str) -> list[Row]:
    await ensure_schema(conn)
    return await _rows(
        conn,
        "SELECT id, kind, subject, state, message, opened_at, resolved_at, acknowledged_at, acknowledged_by "
        "FROM alerts WHERE tenant_id = %s ORDER BY state = 'open' DESC, opened_at DESC, id DESC LIMIT 200",
        [tenant],
    )
