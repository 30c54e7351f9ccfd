"""The published figures, reproduced at reduced size.

Is-sur-Tille is read back from the PostgreSQL relations (readings_daily,
events, devices) by the API's store functions. Montbéliard is computed from the simulated sensor stream with the
same library the API uses.
"""

from __future__ import annotations

import asyncio
from datetime import date

import numpy as np
import psycopg
import pytest

from api.savings.lighting import Period, option_c
from api.savings.store import load_lighting
from api.savings.tariffs import ADEME_2022, CONSTANT_2021, TRVE_2021_2023
from api.savings.waste import ContainerSeries, Geometry, compare_collection
from ingest.migrate import migrate
from simulators.scenarios import is_sur_tille, montbeliard
from simulators.scenarios.transport import register_inventory


def _store_like_ingest(dsn: str, config: is_sur_tille.LightingConfig) -> None:
    """Write the scenario's readings and events into the relations, and the daily rollup from them.

    Interim: the ingest service was still changing while this was written, so
    this stands in for MQTT -> ingest (docs/savings.md, "What is not done").
    """
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regprocedure('ingest_ensure_partitions(timestamptz,timestamptz)') IS NOT NULL")
        row = cur.fetchone()
        plain = bool(row and row[0])
        if plain:
            cur.execute("SELECT ingest_ensure_partitions('2020-12-01', '2024-02-01')")
        with cur.copy(
            "COPY readings (time, device_id, metric, value, quality, tenant_id) FROM STDIN"
        ) as copy:
            for chunk in is_sur_tille.chunks(config):
                for r in chunk.readings:
                    copy.write_row((r.time, r.device_id, r.metric, r.value, 0, config.tenant))
        for chunk in is_sur_tille.chunks(config):
            cur.executemany(
                "INSERT INTO events (time, device_id, kind, attrs, tenant_id) VALUES (to_timestamp(%s / 1e6), %s, %s, %s, %s)",
                [
                    (e.time_us, e.device_id, e.kind, psycopg.types.json.Jsonb(e.attrs), config.tenant)
                    for e in chunk.events
                ],
            )
        if not plain:
            conn.commit()
            conn.autocommit = True
            # TimescaleDB: the rollups are continuous aggregates; refresh them over the whole range.
            for view in ("readings_hourly", "readings_daily"):
                cur.execute(f"CALL refresh_continuous_aggregate('{view}', NULL, NULL)")
            return
        cur.execute(
            "INSERT INTO readings_daily (bucket, tenant_id, device_id, metric, avg, min, max, sum, count, last) "
            "SELECT date_trunc('day', time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', tenant_id, device_id, metric, "
            "avg(value), min(value), max(value), sum(value), count(*), (array_agg(value ORDER BY time DESC))[1] "
            "FROM readings GROUP BY 1, 2, 3, 4"
        )


def test_is_sur_tille_46_percent_from_the_database(fresh_database: str) -> None:
    migrate(fresh_database, "off")
    config = is_sur_tille.LightingConfig(
        cabinets=3, interval_s=3600, relay_events=False, readings_power=False, chunk_days=28
    )
    register_inventory(fresh_database, is_sur_tille.inventory(config))
    _store_like_ingest(fresh_database, config)

    async def compute() -> dict[str, dict[str, float]]:
        async with await psycopg.AsyncConnection.connect(fresh_database) as conn:
            site, cabinets = await load_lighting(conn, config.tenant, date(2021, 1, 1), date(2023, 12, 31))
        out = {}
        for tariff in (CONSTANT_2021, TRVE_2021_2023):
            res = option_c(
                site, cabinets, Period.year(2021), Period.year(2023), tariff=tariff, factor=ADEME_2022
            )
            out[tariff.version] = res.result
        return out

    results = asyncio.run(compute())
    energy = results[CONSTANT_2021.version]
    assert energy["savings_pct"] == pytest.approx(46.0, abs=2.0)
    assert energy["bill"]["change_pct"] == pytest.approx(-46.0, abs=2.0)  # at constant price: energy alone
    assert energy["fit"]["r2_min"] > 0.98
    # With the regulated-tariff rises the bill falls much less: the price effect is positive.
    priced = results[TRVE_2021_2023.version]["bill"]
    assert priced["price_effect_eur"] > 0 and -40 < priced["change_pct"] < -30
    truth = 1 - is_sur_tille.true_energy_kwh(config, 2023) / is_sur_tille.true_energy_kwh(config, 2021)
    assert -energy["energy_change_pct"] == pytest.approx(100 * truth, abs=0.5)


def test_montbeliard_about_30_percent_fewer_rounds_and_fewer_overflows() -> None:
    config = montbeliard.WasteConfig(interval_s=7200)
    run = montbeliard.simulate(config)
    rng = np.random.default_rng(0)
    series = [
        ContainerSeries(
            dev,
            sector,
            Geometry(config.height_mm, config.blind_zone_mm),
            run.times,
            montbeliard.distance_mm(config, run.fill[i], rng),
        )
        for dev, sector, i in montbeliard.container_ids(config)
    ]
    res = compare_collection(
        series, (date(2022, 10, 1), date(2023, 1, 1)), (date(2023, 10, 1), date(2024, 1, 1))
    ).result
    assert res["change_pct"]["rounds_per_week"] == pytest.approx(-30.0, abs=3.0)
    assert res["reporting"]["overflow_rate_pct"] < res["baseline"]["overflow_rate_pct"]
    assert res["reporting"]["mean_fill_at_collection_pct"] > res["baseline"]["mean_fill_at_collection_pct"]
