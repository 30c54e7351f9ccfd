"""Streaming exports with licence metadata, open-data filtering, and the audit log endpoint."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import psycopg
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from api.routers import exports

from .conftest import bearer

T0 = datetime(2024, 3, 1, tzinfo=UTC)
PERIOD = {"start": "2024-03-01T00:00:00Z", "end": "2024-03-02T00:00:00Z"}


@pytest.fixture
def readings(api_dsn: str) -> str:
    with psycopg.connect(api_dsn) as conn:
        if conn.execute("SELECT to_regproc('ingest_ensure_partitions')").fetchone() != (None,):
            conn.execute("SELECT ingest_ensure_partitions(%s, %s)", (T0, T0 + timedelta(days=2)))
        conn.execute(
            "INSERT INTO metrics (name, unit, personal_data) VALUES ('power_w', 'W', false), ('badge_id', '', true)"
            " ON CONFLICT (name) DO UPDATE SET personal_data = EXCLUDED.personal_data"
        )
        with conn.cursor().copy(
            "COPY readings (time, device_id, metric, value, tenant_id) FROM STDIN"
        ) as copy:
            for hour in range(24):
                at = T0 + timedelta(hours=hour)
                copy.write_row((at, "armoire-1", "power_w", 100.0 + hour, "tenant-a"))
                copy.write_row((at, "bac-1", "badge_id", 4242.0, "tenant-a"))
                copy.write_row((at, "bac-1", "undeclared_metric", 1.0, "tenant-a"))
                copy.write_row((at, "armoire-9", "power_w", 7.0, "tenant-b"))
    return api_dsn


def _csv_rows(text: str) -> tuple[list[str], list[dict[str, str]]]:
    comments = [line for line in text.splitlines() if line.startswith("#")]
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    return comments, list(csv.DictReader(io.StringIO(body)))


def test_csv_export_carries_the_licence_and_respects_tenants(
    app_client: TestClient, tokens: dict[str, str], readings: str
) -> None:
    analyst = app_client.get("/exports/readings", params=PERIOD, headers=bearer(tokens["analyst-ab"]))
    assert analyst.status_code == 200, analyst.text
    assert analyst.headers["x-license"] == "Licence Ouverte / Etalab 2.0"
    assert 'rel="license"' in analyst.headers["link"]
    comments, rows = _csv_rows(analyst.text)
    assert "# licence: Licence Ouverte / Etalab 2.0" in comments
    assert {r["tenant_id"] for r in rows} == {"tenant-a", "tenant-b"} and len(rows) == 96
    viewer = app_client.get("/exports/readings", params=PERIOD, headers=bearer(tokens["viewer-a"]))
    assert {r["tenant_id"] for r in _csv_rows(viewer.text)[1]} == {"tenant-a"}
    foreign = app_client.get(
        "/exports/readings", params={**PERIOD, "tenant": "tenant-b"}, headers=bearer(tokens["viewer-a"])
    )
    assert foreign.status_code == 404
    assert app_client.get("/exports/readings", params=PERIOD).status_code == 401


def test_export_errors_come_before_the_stream_and_batches_all_arrive(
    app_client: TestClient, tokens: dict[str, str], readings: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The query starts before the answer does: a refused value is a 422 problem, not a cut stream."""
    headers = bearer(tokens["analyst-ab"])
    for fmt in ("csv", "parquet"):
        refused = app_client.get(
            "/exports/readings", params={**PERIOD, "metric": "power\x00w", "format": fmt}, headers=headers
        )
        assert refused.status_code == 422
        assert refused.headers["content-type"] == "application/problem+json"
    monkeypatch.setattr(exports, "CHUNK", 10)
    chunked = app_client.get("/exports/readings", params=PERIOD, headers=headers)
    assert len(_csv_rows(chunked.text)[1]) == 96
    empty = app_client.get("/exports/readings", params={**PERIOD, "metric": "none"}, headers=headers)
    assert empty.status_code == 200 and _csv_rows(empty.text)[1] == []


def test_parquet_open_data_export_leaves_out_personal_and_undeclared_metrics(
    app_client: TestClient, tokens: dict[str, str], readings: str
) -> None:
    params = {**PERIOD, "format": "parquet", "open_data": "true", "tenant": ["tenant-a"]}
    answer = app_client.get("/exports/readings", params=params, headers=bearer(tokens["analyst-ab"]))
    assert answer.status_code == 200, answer.text
    table = pq.read_table(io.BytesIO(answer.content))
    assert table.schema.metadata[b"licence"] == b"Licence Ouverte / Etalab 2.0"
    assert table.schema.metadata[b"open_data"] == b"true"
    assert set(table.column("metric").to_pylist()) == {"power_w"}
    assert table.num_rows == 24
    everything = app_client.get(
        "/exports/readings", params={**params, "open_data": "false"}, headers=bearer(tokens["analyst-ab"])
    )
    assert pq.read_table(io.BytesIO(everything.content)).num_rows == 72


def test_audit_log_is_for_admins_and_technicians_of_the_tenant(
    app_client: TestClient, tokens: dict[str, str]
) -> None:
    tech = bearer(tokens["technician-a"])
    app_client.post("/tenants/tenant-a/sites", json={"id": "s1", "name": "S1"}, headers=tech)
    app_client.post(
        "/tenants/tenant-b/sites", json={"id": "s2", "name": "S2"}, headers=bearer(tokens["technician-b"])
    )
    entries = app_client.get("/tenants/tenant-a/audit", headers=tech).json()
    assert [(e["action"], e["target"], e["subject"]) for e in entries] == [
        ("site.create", "site:s1", "technician-a")
    ]
    assert len(app_client.get("/tenants/tenant-b/audit", headers=bearer(tokens["admin"])).json()) == 1
    assert app_client.get("/tenants/tenant-a/audit", headers=bearer(tokens["viewer-a"])).status_code == 403
    assert (
        app_client.get("/tenants/tenant-a/audit", headers=bearer(tokens["technician-b"])).status_code == 404
    )
