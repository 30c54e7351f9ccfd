"""Read the savings inputs from the database relations written by ingest (SCHEMA.md).

Async psycopg only: the API calls these with a pooled connection, scenario
tests with a plain one. Devices are found by their inventory role
(devices.attrs->>'role'): cabinet_meter / cabinet_controller (same site),
waste_container, parking_space.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, date, datetime, time
from typing import Any

import numpy as np
import psycopg

from .lighting import Cabinet, Site
from .lighting_inputs import daily_energy_from_counter, relights_from_events, schedule_from_events
from .parking import SpaceSeries
from .waste import ContainerSeries, geometry_from_attrs


def _utc(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def _attrs(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        value = json.loads(value)
    return value if isinstance(value, dict) else {}


async def load_lighting(
    conn: psycopg.AsyncConnection[Any],
    tenant: str,
    first_day: date,
    last_day: date,
    switch_elevation_deg: float = -2.0,
) -> tuple[Site, list[Cabinet]]:
    """Cabinets of a tenant: daily energy from the counter's daily minimum (its first value of the day)."""
    cur = await conn.execute(
        "SELECT d.id, d.site_id, d.attrs, s.location FROM devices d LEFT JOIN sites s ON s.id = d.site_id "
        "WHERE d.tenant_id = %s AND d.attrs->>'role' = 'cabinet_meter' ORDER BY d.id",
        (tenant,),
    )
    meters = await cur.fetchall()
    cur = await conn.execute(
        "SELECT id, site_id FROM devices WHERE tenant_id = %s AND attrs->>'role' = 'cabinet_controller'",
        (tenant,),
    )
    controller_of_site = {site: dev for dev, site in await cur.fetchall()}
    ids = [m[0] for m in meters]
    cur = await conn.execute(
        "SELECT device_id, bucket, min FROM readings_daily WHERE tenant_id = %s AND metric = 'energy_kwh' "
        "AND device_id = ANY(%s) AND bucket >= %s AND bucket < %s",
        (tenant, ids, _utc(first_day), _utc(date.fromordinal(last_day.toordinal() + 2))),
    )
    firsts: dict[str, dict[date, float]] = defaultdict(dict)
    for dev, bucket, value in await cur.fetchall():
        firsts[dev][bucket.astimezone(UTC).date()] = float(value)
    controllers = [c for c in controller_of_site.values() if c]
    cur = await conn.execute(
        "SELECT device_id, kind, time, attrs FROM events WHERE tenant_id = %s AND device_id = ANY(%s) "
        "AND kind IN ('schedule_changed', 'relight') AND time < %s ORDER BY time",
        (tenant, controllers, _utc(date.fromordinal(last_day.toordinal() + 1))),
    )
    events: dict[tuple[str, str], list[tuple[datetime, dict[str, Any]]]] = defaultdict(list)
    for dev, kind, moment, attrs in await cur.fetchall():
        events[(dev, kind)].append((moment, _attrs(attrs)))
    cabinets, lats, lons = [], [], []
    for dev, site, attrs, location in meters:
        loc = _attrs(location)
        if loc.get("type") == "Point":
            lons.append(float(loc["coordinates"][0]))
            lats.append(float(loc["coordinates"][1]))
        ctrl = controller_of_site.get(site, "")
        installed = _attrs(attrs).get("installed_w", 0.0)
        cabinets.append(
            Cabinet(
                cabinet_id=dev,
                first_day=first_day,
                energy_kwh=daily_energy_from_counter(firsts[dev], first_day, last_day),
                schedule=schedule_from_events(events[(ctrl, "schedule_changed")]),
                relights=relights_from_events(events[(ctrl, "relight")]),
                installed_w=float(installed) if isinstance(installed, int | float) else 0.0,
            )
        )
    if not lats:
        raise LookupError(f"no located lighting cabinet for tenant {tenant}")
    # One sky for the commune: 0.01° moves sunset by seconds, and lets the astronomy be cached.
    site = Site(round(float(np.mean(lats)), 2), round(float(np.mean(lons)), 2), switch_elevation_deg)
    return site, cabinets


async def load_waste(
    conn: psycopg.AsyncConnection[Any], tenant: str, start: date, end: date
) -> list[ContainerSeries]:
    cur = await conn.execute(
        "SELECT id, attrs FROM devices WHERE tenant_id = %s AND attrs->>'role' = 'waste_container' ORDER BY id",
        (tenant,),
    )
    devices = {dev: _attrs(attrs) for dev, attrs in await cur.fetchall()}
    cur = await conn.execute(
        "SELECT device_id, extract(epoch FROM time), value FROM readings WHERE tenant_id = %s AND metric = 'distance_mm' "
        "AND device_id = ANY(%s) AND time >= %s AND time < %s ORDER BY device_id, time",
        (tenant, list(devices), _utc(start), _utc(end)),
    )
    rows: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for dev, t, v in await cur.fetchall():
        rows[dev].append((float(t), float(v)))
    series = []
    for dev, attrs in devices.items():
        arr = np.array(rows.get(dev, []), dtype=np.float64).reshape(-1, 2)
        sector = str(attrs.get("sector", ""))
        series.append(
            ContainerSeries(dev, sector, geometry_from_attrs(attrs), arr[:, 0].copy(), arr[:, 1].copy())
        )
    return series


async def load_parking(
    conn: psycopg.AsyncConnection[Any], tenant: str, start: date, end: date, metric: str = "occupied"
) -> list[SpaceSeries]:
    """State changes per space; the state before `start` is carried in from the last earlier reading."""
    cur = await conn.execute(
        "SELECT id FROM devices WHERE tenant_id = %s AND attrs->>'role' = 'parking_space' ORDER BY id",
        (tenant,),
    )
    ids = [r[0] for r in await cur.fetchall()]
    cur = await conn.execute(
        "SELECT device_id, extract(epoch FROM time), value FROM readings WHERE tenant_id = %s AND metric = %s "
        "AND device_id = ANY(%s) AND time < %s ORDER BY device_id, time",
        (tenant, metric, ids, _utc(end)),
    )
    rows: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for dev, t, v in await cur.fetchall():
        rows[dev].append((float(t), float(v)))
    spaces = []
    for dev in ids:
        arr = np.array(rows.get(dev, []), dtype=np.float64).reshape(-1, 2)
        spaces.append(SpaceSeries(dev, arr[:, 0].copy(), arr[:, 1].copy()))
    return spaces
