"""Test data for the standards and alert tests, inserted with plain SQL into the SCHEMA.md relations."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

T0 = datetime(2025, 1, 15, 0, 0, tzinfo=UTC)
POINT_A = {"type": "Point", "coordinates": [5.1034, 47.5207]}
POINT_B = {"type": "Point", "coordinates": [6.7983, 47.5097]}


def execute(dsn: str, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        cur = conn.execute(query.encode(), params)
        return cur.fetchall() if cur.description else []


def ensure_partitions(conn: psycopg.Connection[Any], first: datetime, last: datetime) -> None:
    # Plain PostgreSQL needs the monthly partitions; TimescaleDB creates chunks itself.
    if conn.execute("SELECT to_regproc('ingest_ensure_partitions')").fetchone() != (None,):
        conn.execute("SELECT ingest_ensure_partitions(%s, %s)", [first, last])


def add_readings(
    dsn: str,
    rows: Sequence[tuple[datetime, str, str, float, str] | tuple[datetime, str, str, float, str, int]],
) -> None:
    """Rows of (time, device, metric, value, tenant[, quality])."""
    with psycopg.connect(dsn) as conn:
        ensure_partitions(conn, min(r[0] for r in rows), max(r[0] for r in rows))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO readings (time, device_id, metric, value, tenant_id, quality) VALUES (%s, %s, %s, %s, %s, %s)",
                [(*r[:5], r[5] if len(r) > 5 else 0) for r in rows],
            )


def add_event(
    dsn: str, time: datetime, device: str, kind: str, *, attrs: dict[str, Any], tenant: str
) -> None:
    with psycopg.connect(dsn) as conn:
        ensure_partitions(conn, time, time)
        conn.execute(
            "INSERT INTO events (time, device_id, kind, attrs, tenant_id) VALUES (%s, %s, %s, %s, %s)",
            [time, device, kind, Jsonb(attrs), tenant],
        )


def seed_inventory(dsn: str) -> None:
    """Two tenants: tenant-a with a lighting cabinet, a waste point and a parking zone; tenant-b with a cabinet."""
    with psycopg.connect(dsn) as conn:
        for tenant, name in (("tenant-a", "Commune A"), ("tenant-b", "Commune B")):
            conn.execute(
                "INSERT INTO tenants (id, name, kind) VALUES (%s, %s, 'commune') ON CONFLICT DO NOTHING",
                [tenant, name],
            )
        sites = [
            ("armoire-centre", "tenant-a", "Armoire du centre", "lighting_cabinet", POINT_A, {}),
            ("pav-mairie", "tenant-a", "Point d'apport mairie", "waste_point", POINT_A, {}),
            ("parking-halle", "tenant-a", "Parking de la halle", "parking_zone", POINT_A, {}),
            ("armoire-b", "tenant-b", "Armoire B", "lighting_cabinet", POINT_B, {}),
        ]
        for site in sites:
            conn.execute(
                "INSERT INTO sites (id, tenant_id, name, kind, location, attrs) VALUES (%s, %s, %s, %s, %s, %s)",
                [*site[:4], Jsonb(site[4]), Jsonb(site[5])],
            )
        conn.execute(
            "INSERT INTO gateways (id, tenant_id, site_id, name) VALUES ('gw-a', 'tenant-a', 'armoire-centre', 'Mairie')"
        )
        conn.execute("INSERT INTO gateways (id, tenant_id, name) VALUES ('gw-b', 'tenant-b', 'B')")
        devices = [
            ("compteur-a", "tenant-a", "armoire-centre", "gw-a", "em-meter", "modbus-energy-meter", 60, {}),
            ("relais-a", "tenant-a", "armoire-centre", "gw-a", "relay-8", "modbus-relay-8", 60, {}),
            ("lampe-a1", "tenant-a", "armoire-centre", "gw-a", "lum-ctrl", None, 600, {}),
            ("bac-1", "tenant-a", "pav-mairie", "gw-a", "lds02", "dragino-ldds75", 3600,
             {"height_mm": 1200, "blind_zone_mm": 200}),
            ("place-1", "tenant-a", "parking-halle", "gw-a", "ps-sensor", None, 900, {}),
            ("place-2", "tenant-a", "parking-halle", "gw-a", "ps-sensor", None, 900, {}),
            ("compteur-b", "tenant-b", "armoire-b", "gw-b", "em-meter", "modbus-energy-meter", 60, {}),
        ]  # fmt: skip
        for device in devices:
            conn.execute(
                "INSERT INTO devices (id, tenant_id, site_id, gateway_id, model, profile, expected_interval_s, attrs,"
                " created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [*device[:7], Jsonb(device[7]), T0 - timedelta(days=30)],
            )
        for name, unit in (("power_w", "W"), ("energy_kwh", "kWh"), ("distance_mm", "mm"), ("occupied", ""),
                           ("relay_on", ""), ("battery_pct", "%"), ("dim_pct", "%")):  # fmt: skip
            conn.execute(
                "INSERT INTO metrics (name, unit) VALUES (%s, %s) ON CONFLICT DO NOTHING", [name, unit]
            )


def seed_readings(dsn: str) -> None:
    """Ten minutes of power and energy on both meters, a fill reading and parking states."""
    rows: list[tuple[datetime, str, str, float, str] | tuple[datetime, str, str, float, str, int]] = []
    for minute in range(10):
        t = T0 + timedelta(minutes=minute)
        rows.append((t, "compteur-a", "power_w", 1000.0 + minute * 10, "tenant-a"))
        rows.append((t, "compteur-a", "energy_kwh", 500.0 + minute, "tenant-a"))
        rows.append((t, "compteur-b", "power_w", 42.0, "tenant-b"))
        rows.append((t, "compteur-b", "energy_kwh", 80.0 + minute / 10, "tenant-b"))
    rows += [
        (T0, "relais-a", "relay_on", 1.0, "tenant-a"),
        (T0 + timedelta(minutes=5), "lampe-a1", "dim_pct", 70.0, "tenant-a"),
        (T0 + timedelta(minutes=5), "lampe-a1", "power_w", 35.0, "tenant-a"),
        (T0 + timedelta(minutes=3), "bac-1", "distance_mm", 450.0, "tenant-a"),
        (T0 + timedelta(minutes=4), "place-1", "occupied", 1.0, "tenant-a"),
        (T0 + timedelta(minutes=6), "place-2", "occupied", 0.0, "tenant-a"),
    ]
    add_readings(dsn, rows)
