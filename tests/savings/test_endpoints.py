"""The savings endpoints and the council report over the API app (tenant isolation included)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from simulators.scenarios import is_sur_tille
from simulators.scenarios.transport import register_inventory
from tests.api.conftest import api_app, api_dsn, app_client, bearer, tokens  # noqa: F401  (fixtures)
from tests.scenarios.test_reproductions import _store_like_ingest


def test_lighting_endpoint_report_and_isolation(
    api_dsn: str,  # noqa: F811
    app_client: TestClient,  # noqa: F811
    tokens: dict[str, str],  # noqa: F811
) -> None:
    config = is_sur_tille.LightingConfig(
        tenant="tenant-a",
        cabinets=2,
        interval_s=3600,
        relay_events=False,
        readings_power=False,
        chunk_days=28,
    )
    inv = is_sur_tille.inventory(config)
    register_inventory(api_dsn, inv)
    _store_like_ingest(api_dsn, config)
    url = "/tenants/tenant-a/savings/lighting?baseline=2021&reporting=2023"
    first = app_client.get(url, headers=bearer(tokens["viewer-a"]))
    assert first.status_code == 200, first.text
    body = first.json()
    assert set(body) >= {"method", "inputs", "inputs_hash", "period", "result"}
    assert body["result"]["savings_pct"] == pytest.approx(46.0, abs=3.0)
    assert (
        app_client.get(url, headers=bearer(tokens["viewer-a"])).json()["inputs_hash"] == body["inputs_hash"]
    )
    assert app_client.get(url, headers=bearer(tokens["technician-b"])).status_code == 404
    report = app_client.get("/tenants/tenant-a/reports/council", headers=bearer(tokens["viewer-a"]))
    assert (
        report.status_code == 200
        and "Éclairage public" in report.text
        and "Économie d'énergie" in report.text
    )
    assert (
        app_client.get("/tenants/tenant-a/savings/waste", headers=bearer(tokens["viewer-a"])).status_code
        == 200
    )
