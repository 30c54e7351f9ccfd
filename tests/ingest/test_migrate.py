from __future__ import annotations

import threading
from datetime import UTC, datetime

import psycopg
import pytest

from ingest.migrate import MigrationReport, RetentionSettings, migrate, status
from ingest.writer import Writer
from territoire_kernel.errors import ConfigError

from .helpers import count, query

CONTRACT_TABLES = {
    "tenants",
    "sites",
    "gateways",
    "devices",
    "metrics",
    "readings",
    "events",
    "received_batches",
    "lns_uplinks",
    "dead_letters",
    "sequence_gaps",
    "gateway_status_log",
    "command_results",
    "readings_hourly",
    "readings_daily",
    "schema_migrations",
}


def relations(dsn: str) -> set[str]:
    rows = query(
        dsn,
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm')",
    )
    return {r[0] for r in rows}


def test_plain_migration_is_idempotent_and_recorded(fresh_database: str) -> None:
    first = migrate(fresh_database, "off")
    assert first.mode == "plain"
    assert first.applied == ["0001_core", "0002_timeseries.plain"]
    second = migrate(fresh_database, "off")
    assert second.applied == [] and second.already_applied == [1, 2]
    assert relations(fresh_database) >= CONTRACT_TABLES
    assert query(fresh_database, "SELECT version, name FROM schema_migrations ORDER BY 1") == [
        (1, "core"),
        (2, "timeseries.plain"),
    ]
    mode, applied, pending = status(fresh_database)
    assert mode == "plain" and len(applied) == 2 and pending == []
    # readings is partitioned by month, with the current month and three ahead in place
    kind = query(fresh_database, "SELECT relkind FROM pg_class WHERE relname = 'readings'")[0][0]
    assert kind == "p"
    now = datetime.now(UTC)
    assert f"readings_{now:%Y%m}" in relations(fresh_database)


def test_two_workers_migrating_at_once_apply_each_file_once(fresh_database: str) -> None:
    reports: list[MigrationReport] = []
    threads = [
        threading.Thread(target=lambda: reports.append(migrate(fresh_database, "off"))) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(len(r.applied) for r in reports) == [0, 0, 2]
    assert count(fresh_database, "schema_migrations") == 2


def test_mode_cannot_switch_and_bad_values_name_the_field(fresh_database: str) -> None:
    migrate(fresh_database, "off")
    with pytest.raises(ConfigError, match="timescale"):
        migrate(fresh_database, "on")
    assert migrate(fresh_database, "auto").mode == "plain"  # auto keeps what the database has
    with pytest.raises(ConfigError, match="timescale"):
        migrate(fresh_database, "maybe")
    with pytest.raises(ConfigError, match="readings_retention"):
        RetentionSettings(readings_retention="forever")


def test_partitions_are_created_on_demand_and_dropped_by_retention(plain_db: str) -> None:
    with psycopg.connect(plain_db) as conn:
        made = conn.execute("SELECT ingest_ensure_partitions('2021-01-15Z', '2021-03-02Z')").fetchone()
        assert made == (6,)  # three months of readings and events
        assert conn.execute("SELECT ingest_ensure_partitions('2021-02-01Z', '2021-02-01Z')").fetchone() == (
            0,
        )
        conn.execute(
            "INSERT INTO readings VALUES ('2021-02-10Z', 'armoire-1', 'power_w', 1, 0, 'is-sur-tille')"
        )
    migrate(plain_db, "off", RetentionSettings(readings_retention="1 year"))
    with Writer(plain_db) as writer:
        done = writer.maintenance()
    assert done["partitions_dropped"] >= 6
    assert "readings_202102" not in relations(plain_db)
    assert count(plain_db, "readings") == 0
    assert f"readings_{datetime.now(UTC):%Y%m}" in relations(plain_db)


def test_dead_letters_are_purged_after_their_retention(plain_db: str) -> None:
    with psycopg.connect(plain_db) as conn:
        conn.execute(
            "INSERT INTO dead_letters (received_at, topic, payload, reason) VALUES "
            "(now() - interval '100 days', 't', 'x', 'old'), (now(), 't', 'y', 'new')"
        )
    with Writer(plain_db) as writer:
        assert writer.maintenance()["dead_letters_purged"] == 1
    assert query(plain_db, "SELECT reason FROM dead_letters") == [("new",)]


def test_timescale_migration_builds_hypertables_aggregates_and_policies(
    requires_timescaledb: None, fresh_database: str
) -> None:
    report = migrate(
        fresh_database, "on", RetentionSettings(compress_after="3 days", readings_retention="5 years")
    )
    assert report.mode == "timescale"
    assert migrate(fresh_database, "on", RetentionSettings(compress_after="3 days")).applied == []
    hypertables = query(fresh_database, "SELECT hypertable_name FROM timescaledb_information.hypertables")
    assert {"readings", "events"} <= {h[0] for h in hypertables}
    chunk = query(
        fresh_database,
        "SELECT time_interval FROM timescaledb_information.dimensions WHERE hypertable_name = 'readings'",
    )
    assert chunk[0][0].days == 1
    segment = query(
        fresh_database,
        "SELECT attname FROM timescaledb_information.compression_settings "
        "WHERE hypertable_name = 'readings' AND segmentby_column_index IS NOT NULL "
        "ORDER BY segmentby_column_index",
    )
    assert [s[0] for s in segment] == ["device_id", "metric"]
    caggs = {
        c[0]
        for c in query(fresh_database, "SELECT view_name FROM timescaledb_information.continuous_aggregates")
    }
    assert caggs == {"readings_hourly", "readings_daily"}
    jobs = query(
        fresh_database, "SELECT proc_name, hypertable_name, config FROM timescaledb_information.jobs"
    )
    procs = {(j[0], j[1]) for j in jobs}
    assert ("policy_compression", "readings") in procs
    assert ("policy_refresh_continuous_aggregate", None) not in procs  # attached to the aggregates' tables
    assert ("ingest_purge_dead_letters_job", None) in procs
    # the second run removed the readings retention policy (not given any more)
    assert ("policy_retention", "readings") not in procs
    compress = [j[2] for j in jobs if j[0] == "policy_compression" and j[1] == "readings"]
    assert compress == [{"hypertable_id": compress[0]["hypertable_id"], "compress_after": "3 days"}]
    assert sum(1 for j in jobs if j[0] == "policy_refresh_continuous_aggregate") == 2


def test_migrate_fills_the_metric_catalogue_without_overwriting(fresh_database: str) -> None:
    import psycopg

    from firmware_profiles import load_metrics
    from ingest.migrate import migrate

    migrate(fresh_database, "off")
    with psycopg.connect(fresh_database) as conn:
        conn.execute("UPDATE metrics SET description = 'edited' WHERE name = 'power_w'")
    migrate(fresh_database, "off")
    with psycopg.connect(fresh_database) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM metrics").fetchall()}
        edited = conn.execute("SELECT description, unit FROM metrics WHERE name = 'power_w'").fetchone()
    assert set(load_metrics()) <= names
    assert edited == ("edited", "W")
