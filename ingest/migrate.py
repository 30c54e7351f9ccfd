"""Versioned SQL migrations of the data tables (see docs/ingest.md).

Files in ``ingest/migrations`` are named ``NNNN_name.sql`` (both storage modes)
or ``NNNN_name.plain.sql`` / ``NNNN_name.timescale.sql`` (one per mode, same
version). Each runs in its own transaction and is recorded in
``schema_migrations``; a session advisory lock makes two workers starting at
once apply each file exactly once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Literal

import psycopg

from territoire_kernel.errors import ConfigError

StorageMode = Literal["timescale", "plain"]
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+?)(?:\.(plain|timescale))?\.sql$")
_LOCK_KEY = 0x7465727269746F  # "territo": one lock for every migration run
_INTERVAL = re.compile(r"^\s*\d+\s*(minutes?|hours?|days?|weeks?|months?|years?)\s*$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    mode: StorageMode | None
    sql: str


@dataclass(frozen=True)
class RetentionSettings:
    """Ages as PostgreSQL intervals ('7 days'); None keeps data for ever."""

    compress_after: str = "7 days"
    readings_retention: str | None = None
    dead_letters_retention: str | None = "90 days"

    def __post_init__(self) -> None:
        for name in ("compress_after", "readings_retention", "dead_letters_retention"):
            value = getattr(self, name)
            if value is not None and not _INTERVAL.match(value):
                raise ConfigError(f"{value!r} is not an age like '7 days' or '2 years'", field=name)
        if self.compress_after is None:
            raise ConfigError("an age is required", field="compress_after")


@dataclass
class MigrationReport:
    mode: StorageMode
    applied: list[str] = field(default_factory=list)
    already_applied: list[int] = field(default_factory=list)


def available_migrations() -> list[Migration]:
    found = []
    for entry in resources.files("ingest.migrations").iterdir():
        match = _FILE.match(entry.name)
        if match is None:
            continue
        version, name, mode = match.groups()
        found.append(Migration(int(version), name, mode, entry.read_text(encoding="utf-8")))  # type: ignore[arg-type]
    return sorted(found, key=lambda m: (m.version, m.mode or ""))


def _select(migrations: list[Migration], mode: StorageMode) -> list[Migration]:
    chosen = [m for m in migrations if m.mode in (None, mode)]
    versions = [m.version for m in chosen]
    if len(versions) != len(set(versions)):
        raise RuntimeError(f"two migration files share a version: {versions}")
    return chosen


def _existing_mode(conn: psycopg.Connection[tuple[object, ...]]) -> StorageMode | None:
    if conn.execute("SELECT to_regclass('ingest_settings')").fetchone() == (None,):
        return None
    row = conn.execute("SELECT value FROM ingest_settings WHERE key = 'storage'").fetchone()
    return None if row is None else row[0]  # type: ignore[return-value]


def _choose_mode(conn: psycopg.Connection[tuple[object, ...]], timescale: str) -> StorageMode:
    if timescale not in ("auto", "on", "off"):
        raise ConfigError("must be auto, on or off", field="timescale")
    existing = _existing_mode(conn)
    available = (
        conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
        is not None
    )
    if timescale == "on" and not available:
        raise ConfigError(
            "TimescaleDB was required (--timescale on) but the timescaledb extension is not available "
            "on this PostgreSQL server; install it or use --timescale off",
            field="timescale",
        )
    wanted: StorageMode | None = {"on": "timescale", "off": "plain"}.get(timescale)  # type: ignore[assignment]
    if existing is not None:
        if wanted is not None and wanted != existing:
            raise ConfigError(
                f"this database was migrated for {existing} storage; converting it to {wanted} is not supported",
                field="timescale",
            )
        return existing
    if wanted is not None:
        return wanted
    return "timescale" if available else "plain"


def migrate(dsn: str, timescale: str = "auto", retention: RetentionSettings | None = None) -> MigrationReport:
    """Bring the database to the newest schema; safe to run again and concurrently."""
    retention = retention or RetentionSettings()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, "
                "applied_at timestamptz NOT NULL DEFAULT now())"
            )
            mode = _choose_mode(conn, timescale)
            report = MigrationReport(mode)
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for migration in _select(available_migrations(), mode):
                if migration.version in done:
                    report.already_applied.append(migration.version)
                    continue
                with conn.transaction():
                    conn.execute(migration.sql.encode())
                    label = migration.name + (f".{migration.mode}" if migration.mode else "")
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        (migration.version, label),
                    )
                    if migration.version == 1:
                        _store_setting(conn, "storage", mode)
                report.applied.append(f"{migration.version:04d}_{label}")
            with conn.transaction():
                _apply_retention(conn, mode, retention)
                _sync_metric_catalogue(conn)
            return report
        finally:
            if not conn.closed and not conn.broken:
                conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))


def _sync_metric_catalogue(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Adds the firmware profiles' metrics; units and flags an operator changed are kept."""
    from firmware_profiles import load_metrics

    rows = [(m.name, m.unit, m.description, m.personal_data) for m in load_metrics().values()]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO metrics (name, unit, description, personal_data) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (name) DO NOTHING",
            rows,
        )


def _store_setting(conn: psycopg.Connection[tuple[object, ...]], key: str, value: str | None) -> None:
    conn.execute(
        "INSERT INTO ingest_settings (key, value) VALUES (%s, %s) "
        "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        (key, value),
    )


def _apply_retention(
    conn: psycopg.Connection[tuple[object, ...]], mode: StorageMode, ret: RetentionSettings
) -> None:
    _store_setting(conn, "compress_after", ret.compress_after)
    _store_setting(conn, "readings_retention", ret.readings_retention)
    _store_setting(conn, "dead_letters_retention", ret.dead_letters_retention)
    if mode != "timescale":
        return  # plain PostgreSQL: ingest's maintenance task applies these settings
    for table in ("readings", "events"):
        conn.execute("SELECT remove_compression_policy(%s, if_exists => true)", (table,))
        conn.execute(
            "SELECT add_compression_policy(%s, compress_after => %s::interval)", (table, ret.compress_after)
        )
        conn.execute("SELECT remove_retention_policy(%s, if_exists => true)", (table,))
        if ret.readings_retention is not None:
            conn.execute(
                "SELECT add_retention_policy(%s, drop_after => %s::interval)", (table, ret.readings_retention)
            )
    conn.execute(
        "SELECT delete_job(job_id) FROM timescaledb_information.jobs "
        "WHERE proc_name = 'ingest_purge_dead_letters_job'"
    )
    if ret.dead_letters_retention is not None:
        conn.execute(
            "SELECT add_job('ingest_purge_dead_letters_job', INTERVAL '1 day', "
            "config => jsonb_build_object('keep', %s::text))",
            (ret.dead_letters_retention,),
        )


def status(dsn: str) -> tuple[StorageMode | None, list[tuple[int, str, str]], list[str]]:
    """Storage mode, applied migrations (version, name, time) and pending file names."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        mode = _existing_mode(conn)
        applied: list[tuple[int, str, str]] = []
        if conn.execute("SELECT to_regclass('schema_migrations')").fetchone() != (None,):
            applied = [
                (int(v), str(n), str(t))
                for v, n, t in conn.execute(
                    "SELECT version, name, applied_at FROM schema_migrations ORDER BY 1"
                )
            ]
        done = {v for v, _, _ in applied}
        candidates = _select(available_migrations(), mode or "plain") if mode else available_migrations()
        pending = sorted({f"{m.version:04d}_{m.name}" for m in candidates if m.version not in done})
        return mode, applied, pending
