"""Pays de Montbéliard bio-waste containers: Q4 2023 (sensor-driven) vs Q4 2022 (fixed rounds), via the API.

Every fill-level reading is a Dragino LDDS75 uplink (FPort 2 bytes) in a
ChirpStack v4 event, published over MQTT; ingest decodes it with the
firmware profile and stores the distance; the API's waste endpoint computes
the rounds from what is stored. Several seeds, one tenant each, one pass
through the pipeline. Reduced size: the 240 containers send one uplink a
day, and only in the two compared quarters (the simulation runs whole).
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from simulators.scenarios import montbeliard
from simulators.scenarios.transport import Publisher, publish_lns, register_inventory
from territoire.services import MosquittoServer

from .pipeline import api_client, ingest_service, prepare_database, viewer_token

SEEDS = (1, 2, 3)
BASELINE = (date(2022, 10, 1), date(2023, 1, 1))
REPORTING = (date(2023, 10, 1), date(2024, 1, 1))
APPLICATION = "6b0c3f7e-2a51-4d0e-9a9f-3c1d2e4f5a60"


def config(seed: int) -> montbeliard.WasteConfig:
    return montbeliard.WasteConfig(
        tenant=f"montbeliard-{seed}", seed=seed, interval_s=7200, uplink_interval_s=86_400
    )


@pytest.fixture(scope="module")
def results(module_database: str, mqtt_broker: MosquittoServer) -> Iterator[dict[int, dict[str, Any]]]:
    dsn = module_database
    prepare_database(dsn)
    for seed in SEEDS:
        register_inventory(dsn, montbeliard.inventory(config(seed)))
    # From the day before each period: an emptying on its first day is a drop from the day before.
    windows = [(start - timedelta(days=1), end) for start, end in (BASELINE, REPORTING)]
    streams = [montbeliard.lns_uplinks(config(seed), APPLICATION, windows=windows) for seed in SEEDS]
    with (
        tempfile.TemporaryDirectory(prefix="territoire-scenario-") as tmp,
        ingest_service(dsn, mqtt_broker, Path(tmp)) as ingest,
    ):
        publisher = Publisher("127.0.0.1", mqtt_broker.port, "simulator-montbeliard-test")
        try:
            sent = publish_lns(publisher, itertools.chain(*streams))
        finally:
            publisher.close()
        ingest.wait_stored(sent, timeout=240)
    query = "&".join(
        f"{k}={v.isoformat()}"
        for k, v in (
            ("baseline_start", BASELINE[0]),
            ("baseline_end", BASELINE[1]),
            ("reporting_start", REPORTING[0]),
            ("reporting_end", REPORTING[1]),
        )
    )
    out: dict[int, dict[str, Any]] = {}
    with api_client(dsn) as client:
        for seed in SEEDS:
            tenant = config(seed).tenant
            auth = {"Authorization": f"Bearer {viewer_token(dsn, tenant)}"}
            response = client.get(f"/tenants/{tenant}/savings/waste?{query}", headers=auth)
            assert response.status_code == 200, response.text
            out[seed] = response.json()["result"]
    yield out


@pytest.mark.parametrize("seed", SEEDS)
def test_about_30_percent_fewer_rounds_and_fewer_overflows(
    results: dict[int, dict[str, Any]], seed: int
) -> None:
    res = results[seed]
    assert res["baseline"]["rounds"] > 0 and res["reporting"]["rounds"] > 0
    assert res["change_pct"]["rounds_per_week"] == pytest.approx(-30.0, abs=3.0), res
    assert res["reporting"]["overflow_rate_pct"] < res["baseline"]["overflow_rate_pct"], res
    assert res["reporting"]["mean_fill_at_collection_pct"] > res["baseline"]["mean_fill_at_collection_pct"]
