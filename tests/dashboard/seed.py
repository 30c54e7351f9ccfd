"""A database for the dashboard tests: scenario data for tenant-a, a little for tenant-b.

Readings and events are written with COPY like ingest would store them, then the
daily/hourly rollups are built (plain PostgreSQL tables or Timescale aggregates).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from importlib import resources

import psycopg
from psycopg.types.json import Jsonb

from api.migrations import migrate as migrate_api
from api.users import create_user
from ingest.migrate import migrate as migrate_data
from simulators.scenarios import is_sur_tille, montbeliard, parking
from simulators.scenarios.transport import register_inventory

PASSWORD = "mot de passe de test du tableau"
LIGHTING = is_sur_tille.LightingConfig(
    tenant="tenant-a", cabinets=2, interval_s=3600, relay_events=False, readings_power=False, chunk_days=28
)
WASTE = montbeliard.WasteConfig(tenant="tenant-a", containers=12, interval_s=3 * 3600, chunk_days=28)
PARKING = parking.ParkingConfig(tenant="tenant-a", spaces=10, days=3)
NOW = datetime(2024, 1, 1, 12, tzinfo=UTC)  # the gateways' "last seen" times are relative to it

Row = tuple[datetime, str, str, float, int, str]


def _readings() -> Iterable[Row]:
    for chunk in is_sur_tille.chunks(LIGHTING):
        for r in chunk.readings:
            yield (r.time, r.device_id, r.metric, r.value, 0, "tenant-a")
    for chunk in montbeliard.chunks(WASTE):
        for r in chunk.readings:
            yield (r.time, r.device_id, r.metric, r.value, 0, "tenant-a")
    for t, space, occupied in parking.occupancy_changes(PARKING):
        yield (datetime.fromtimestamp(t, UTC), space, "occupied", float(occupied), 0, "tenant-a")
    # Link quality and battery of a few devices, as the LNS and codecs report them.
    for i, (dev, _sector, _index) in enumerate(montbeliard.container_ids(WASTE)[:4]):
        yield (NOW - timedelta(hours=2 + i), dev, "rssi_dbm", -95.0 - 5 * i, 0, "tenant-a")
        yield (NOW - timedelta(hours=2 + i), dev, "snr_db", 7.5 - 3 * i, 0, "tenant-a")
        yield (NOW - timedelta(hours=2 + i), dev, "battery_v", 3.6 - 0.2 * i, 0, "tenant-a")
    yield (NOW - timedelta(hours=1), "dev-foreign-b", "rssi_dbm", -80.0, 0, "tenant-b")


def _store(dsn: str) -> None:
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT ingest_ensure_partitions('2020-12-01', '2024-03-01')")  # seed() migrates plain
        with cur.copy(
            "COPY readings (time, device_id, metric, value, quality, tenant_id) FROM STDIN"
        ) as copy:
            for values in _readings():
                copy.write_row(values)
        for chunk in is_sur_tille.chunks(LIGHTING):
            cur.executemany(
                "INSERT INTO events (time, device_id, kind, attrs, tenant_id) "
                "VALUES (to_timestamp(%s / 1e6), %s, %s, %s, 'tenant-a')",
                [(e.time_us, e.device_id, e.kind, Jsonb(e.attrs)) for e in chunk.events],
            )
        for table, width in (("readings_daily", "day"), ("readings_hourly", "hour")):
            cur.execute(
                f"INSERT INTO {table} (bucket, tenant_id, device_id, metric, avg, min, max, sum, count, last) "
                f"SELECT date_trunc('{width}', time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', tenant_id, device_id, "
                "metric, avg(value), min(value), max(value), sum(value), count(*), "
                "(array_agg(value ORDER BY time DESC))[1] FROM readings GROUP BY 1, 2, 3, 4"
            )


def _gateways_and_alerts(dsn: str) -> None:
    ddl = resources.files("api.alerting").joinpath("schema.sql").read_text(encoding="utf-8")
    with psycopg.connect(dsn) as conn:
        conn.execute(ddl.encode())  # what api.alerting.engine.ensure_schema runs
        conn.execute(
            "INSERT INTO sites (id, tenant_id, name, kind, location) VALUES ('site-foreign-b', 'tenant-b', "
            "'Site étranger', 'other', '{\"type\": \"Point\", \"coordinates\": [5.0, 47.0]}')"
        )
        conn.execute(
            "INSERT INTO gateways (id, tenant_id, name) VALUES ('gw-foreign-b', 'tenant-b', 'Voisine')"
        )
        conn.execute(
            "INSERT INTO devices (id, tenant_id, gateway_id) VALUES ('dev-foreign-b', 'tenant-b', 'gw-foreign-b')"
        )
        # Live state as ingest writes it from the retained status topic.
        conn.execute(
            "UPDATE gateways SET state = 'online', last_seen = %s, buffer_readings = 0, "
            "oldest_unsent_age_s = 0, dropped_readings = 0, clock_synced = true WHERE tenant_id = 'tenant-a'",
            (NOW - timedelta(minutes=3),),
        )
        conn.execute(
            "UPDATE gateways SET state = 'offline', last_seen = %s, buffer_readings = 1834, "
            "oldest_unsent_age_s = 26000, clock_synced = false WHERE id = 'gw-parking'",
            (NOW - timedelta(hours=7),),
        )
        conn.execute("UPDATE gateways SET state = 'online', last_seen = %s WHERE id = 'gw-foreign-b'", (NOW,))
        rules = [
            conn.execute(
                "INSERT INTO alert_rules (tenant_id, kind, name, params, channels, created_by) "
                "VALUES (%s, 'gateway_offline', 'Passerelle muette', '{}', '[]', 'admin') RETURNING id",
                (tenant,),
            ).fetchone()
            for tenant in ("tenant-a", "tenant-b")
        ]
        assert rules[0] and rules[1]
        conn.execute(
            "INSERT INTO alerts (rule_id, tenant_id, kind, subject, state, message, opened_at) VALUES "
            "(%s, 'tenant-a', 'gateway_offline', 'gateway:gw-parking', 'open', "
            "'Passerelle gw-parking hors ligne depuis 7 h', %s), "
            "(%s, 'tenant-b', 'gateway_offline', 'gateway:gw-foreign-b', 'open', "
            "'Alerte étrangère gw-foreign-b', %s)",
            (rules[0][0], NOW - timedelta(hours=6), rules[1][0], NOW - timedelta(hours=1)),
        )


def seed(dsn: str) -> None:
    migrate_data(dsn, "off")  # plain PostgreSQL: three years of day chunks would make seeding slow
    migrate_api(dsn)
    for inv in (is_sur_tille.inventory(LIGHTING), montbeliard.inventory(WASTE), parking.inventory(PARKING)):
        register_inventory(dsn, inv)
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE tenants SET name = 'Commune A' WHERE id = 'tenant-a'")
        conn.execute("INSERT INTO tenants (id, name, kind) VALUES ('tenant-b', 'Commune Voisine', 'commune')")
        create_user(conn, "elu-a", "viewer", ["tenant-a"], password=PASSWORD)
        create_user(conn, "tech-b", "technician", ["tenant-b"], password=PASSWORD)
        create_user(conn, "analyste-ab", "analyst", ["tenant-a", "tenant-b"], password=PASSWORD)
    _store(dsn)
    _gateways_and_alerts(dsn)
