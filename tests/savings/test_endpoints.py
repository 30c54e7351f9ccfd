"""Savings endpoints over the API app: tenant isolation, empty tenants, bounded parking periods.

The figures themselves, from data stored by ingest, are in tests/scenarios.
"""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from api.routers.savings import MAX_PARKING_DAYS
from tests.api.conftest import api_app, api_dsn, app_client, bearer, tokens  # noqa: F401  (fixtures)


def test_isolation_and_empty_tenant(app_client: TestClient, tokens: dict[str, str]) -> None:  # noqa: F811
    viewer = bearer(tokens["viewer-a"])
    for path in ("savings/lighting", "savings/waste", "reports/council"):
        assert app_client.get(f"/tenants/tenant-b/{path}", headers=viewer).status_code == 404
    # No cabinet: the lighting savings say so; no container: zero rounds rather than an error.
    assert app_client.get("/tenants/tenant-a/savings/lighting", headers=viewer).status_code == 404
    waste = app_client.get("/tenants/tenant-a/savings/waste", headers=viewer)
    assert waste.status_code == 200 and waste.json()["result"]["baseline"]["rounds"] == 0
    report = app_client.get("/tenants/tenant-a/reports/council", headers=viewer)
    assert report.status_code == 200 and "Commune A" in report.text


def test_parking_period_is_bounded(app_client: TestClient, tokens: dict[str, str]) -> None:  # noqa: F811
    viewer = bearer(tokens["viewer-a"])
    url = "/tenants/tenant-a/savings/parking?start={}&end={}"
    started = time.monotonic()
    century = app_client.get(url.format("2000-01-01", "2100-01-01"), headers=viewer)
    assert time.monotonic() - started < 5
    assert century.status_code == 422
    assert century.headers["content-type"].startswith("application/problem+json")
    assert f"at most {MAX_PARKING_DAYS} days" in century.json()["detail"]
    longest = app_client.get(url.format("2021-01-01", "2024-01-04"), headers=viewer)
    assert longest.status_code == 200, longest.text
    over = app_client.get(url.format("2021-01-01", "2024-01-05"), headers=viewer)
    assert over.status_code == 422
