"""Is-sur-Tille street lighting, 2023 vs 2021, through the real path and the API.

The scenario's meter readings and controller events are published as kernel
batches over MQTT (what `territoire simulate is-sur-tille` does), stored by
the ingest service (which also maintains the daily rollup the savings read),
and the API's savings endpoint computes the result from PostgreSQL.
Reduced size: 3 cabinets, hourly counter readings (full size: bench).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.savings.tariffs import CONSTANT_2021, TRVE_2021_2023
from simulators.scenarios import is_sur_tille
from simulators.scenarios.common import batches
from simulators.scenarios.transport import Publisher, publish_batches, register_inventory
from territoire.services import MosquittoServer

from .pipeline import api_client, ingest_service, prepare_database, viewer_token

CONFIG = is_sur_tille.LightingConfig(
    cabinets=3, interval_s=3600, relay_events=False, readings_power=False, chunk_days=28
)
URL = f"/tenants/{CONFIG.tenant}/savings/lighting?baseline=2021&reporting=2023&method=C&tariff="


@pytest.fixture(scope="module")
def api(module_database: str, mqtt_broker: MosquittoServer) -> Iterator[tuple[TestClient, dict[str, str]]]:
    dsn = module_database
    prepare_database(dsn)
    register_inventory(dsn, is_sur_tille.inventory(CONFIG))
    register_inventory(dsn, is_sur_tille.inventory(is_sur_tille.LightingConfig(tenant="voisine", cabinets=1)))
    with (
        tempfile.TemporaryDirectory(prefix="territoire-scenario-") as tmp,
        ingest_service(dsn, mqtt_broker, Path(tmp)) as ingest,
    ):
        publisher = Publisher("127.0.0.1", mqtt_broker.port, "simulator-is-sur-tille-test")
        try:
            sent = publish_batches(
                publisher, CONFIG.tenant, batches(is_sur_tille.chunks(CONFIG), CONFIG.seed)
            )
        finally:
            publisher.close()
        ingest.wait_stored(sent, timeout=120)
    headers = {"Authorization": f"Bearer {viewer_token(dsn, CONFIG.tenant)}"}
    other = {"Authorization": f"Bearer {viewer_token(dsn, 'voisine')}"}
    with api_client(dsn) as client:
        yield client, {"viewer": headers["Authorization"], "other": other["Authorization"]}


def _get(api: tuple[TestClient, dict[str, str]], url: str, who: str = "viewer") -> dict[str, Any]:
    client, auth = api
    response = client.get(url, headers={"Authorization": auth[who]})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_46_percent_less_energy_from_the_api(api: tuple[TestClient, dict[str, str]]) -> None:
    body = _get(api, URL + CONSTANT_2021.version)
    res = body["result"]
    assert res["savings_pct"] == pytest.approx(46.0, abs=2.0)
    assert res["bill"]["change_pct"] == pytest.approx(-46.0, abs=2.0)  # at constant price: energy alone
    assert res["fit"]["r2_min"] > 0.98
    # What the API read back from the database is what the simulator metered.
    truth = 1 - is_sur_tille.true_energy_kwh(CONFIG, 2023) / is_sur_tille.true_energy_kwh(CONFIG, 2021)
    assert -res["energy_change_pct"] == pytest.approx(100 * truth, abs=0.5)
    assert _get(api, URL + CONSTANT_2021.version)["inputs_hash"] == body["inputs_hash"]


def test_a_year_past_the_tariff_table_is_refused_not_priced_at_its_last_rate(
    api: tuple[TestClient, dict[str, str]],
) -> None:
    client, auth = api
    url = URL.replace("reporting=2023", "reporting=2024") + TRVE_2021_2023.version
    response = client.get(url, headers={"Authorization": auth["viewer"]})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "documents prices until 2023-12-31" in response.json()["detail"]


def test_bill_under_regulated_tariffs_falls_less(api: tuple[TestClient, dict[str, str]]) -> None:
    bill = _get(api, URL + TRVE_2021_2023.version)["result"]["bill"]
    assert bill["price_effect_eur"] > 0 and bill["consumption_effect_eur"] < 0
    assert -40 < bill["change_pct"] < -30


def test_other_tenant_and_council_report(api: tuple[TestClient, dict[str, str]]) -> None:
    client, auth = api
    assert (
        client.get(URL + CONSTANT_2021.version, headers={"Authorization": auth["other"]}).status_code == 404
    )
    report = client.get(
        f"/tenants/{CONFIG.tenant}/reports/council", headers={"Authorization": auth["viewer"]}
    )
    assert report.status_code == 200 and "Éclairage public" in report.text
    assert "Économie d'énergie" in report.text
