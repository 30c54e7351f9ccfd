"""What every pooled API session is set to: UTC, and custom plans only on TimescaleDB."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from api.deps import configure_pooled
from ingest.migrate import migrate as migrate_data

# A series-like statement on the daily rollup: a hypertable-backed continuous aggregate on TimescaleDB.
SERIES = (
    "SELECT coalesce(json_agg(json_build_array(bucket, avg) ORDER BY bucket), '[]')::text FROM readings_daily "
    "WHERE device_id = ANY(%(devices)s) AND metric = %(metric)s AND bucket >= %(start)s AND bucket < %(end)s"
)


async def _session_after_series_runs(dsn: str) -> tuple[str, str, int, int]:
    """Settings of a session configured as the pool does, and the generic and custom plans its
    prepared series statement used."""
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        await configure_pooled(conn)
        start = datetime(2023, 1, 1, tzinfo=UTC)
        values = {"devices": ["d1"], "metric": "power_w", "start": start, "end": start + timedelta(days=30)}
        for _ in range(10):  # psycopg prepares from the 6th run; PostgreSQL weighs a generic plan after 5
            await (await conn.execute(SERIES, values)).fetchone()
        settings = await (
            await conn.execute("SELECT current_setting('TimeZone'), current_setting('plan_cache_mode')")
        ).fetchone()
        # The only statement psycopg prepared in this session (the others ran once).
        plans = await (
            await conn.execute(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE NOT from_sql"
            )
        ).fetchone()
        assert settings is not None and plans is not None, "the series statement was not prepared"
        return settings[0], settings[1], plans[0], plans[1]


def test_plain_sessions_are_in_utc_and_keep_postgresql_plan_choice(fresh_database: str) -> None:
    migrate_data(fresh_database, "off")
    zone, mode, _, _ = asyncio.run(_session_after_series_runs(fresh_database))
    assert (zone, mode) == ("UTC", "auto")


@pytest.mark.usefixtures("requires_timescaledb")
def test_timescale_sessions_never_use_a_generic_plan(fresh_database: str) -> None:
    migrate_data(fresh_database, "on")
    # Whether PostgreSQL would switch to a generic plan depends on the data (it did for the endpoint's
    # statement on a year of data, bench/bench_api.py --timescale on); with the setting it never can.
    zone, mode, generic, custom = asyncio.run(_session_after_series_runs(fresh_database))
    assert (zone, mode) == ("UTC", "force_custom_plan")
    assert generic == 0 and custom >= 5
