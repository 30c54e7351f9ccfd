"""Inventory: tenants, sites, gateways, devices, CSV imports, metric catalogue, audit."""

from __future__ import annotations

import psycopg
from fastapi.testclient import TestClient

from .conftest import bearer

POINT = {"type": "Point", "coordinates": [5.1, 47.52]}


def _audit_actions(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute("SELECT action FROM audit_log ORDER BY id").fetchall()]


def test_admins_create_tenants_and_others_see_only_theirs(
    app_client: TestClient, tokens: dict[str, str], api_dsn: str
) -> None:
    body = {"id": "is-sur-tille", "name": "Is-sur-Tille", "kind": "commune"}
    refused = app_client.post("/tenants", json=body, headers=bearer(tokens["technician-a"]))
    assert refused.status_code == 403
    created = app_client.post("/tenants", json=body, headers=bearer(tokens["admin"]))
    assert created.status_code == 201, created.text
    assert app_client.post("/tenants", json=body, headers=bearer(tokens["admin"])).status_code == 409
    bad = app_client.post("/tenants", json={**body, "id": "Is Sur Tille"}, headers=bearer(tokens["admin"]))
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    listed = app_client.get("/tenants", headers=bearer(tokens["viewer-a"])).json()
    assert [t["id"] for t in listed] == ["tenant-a"]
    assert len(app_client.get("/tenants", headers=bearer(tokens["admin"])).json()) == 3
    assert app_client.get("/tenants/tenant-b", headers=bearer(tokens["viewer-a"])).status_code == 404
    renamed = app_client.patch(
        "/tenants/is-sur-tille", json={"name": "Is-sur-Tille (21)"}, headers=bearer(tokens["admin"])
    )
    assert renamed.json()["name"] == "Is-sur-Tille (21)"
    assert app_client.delete("/tenants/is-sur-tille", headers=bearer(tokens["admin"])).status_code == 204
    assert _audit_actions(api_dsn) == ["tenant.create", "tenant.update", "tenant.delete"]


def test_site_crud_validates_geojson_and_hides_foreign_tenants(
    app_client: TestClient, tokens: dict[str, str], api_dsn: str
) -> None:
    tech = bearer(tokens["technician-a"])
    site = {
        "id": "armoire-centre",
        "name": "Armoire du centre",
        "kind": "lighting_cabinet",
        "location": POINT,
    }
    swapped = {**site, "location": {"type": "Point", "coordinates": [47.52, 95.0]}}
    answer = app_client.post("/tenants/tenant-a/sites", json=swapped, headers=tech)
    assert answer.status_code == 422
    assert "latitude" in answer.json()["detail"]
    open_ring = {"type": "Polygon", "coordinates": [[[5.0, 47.0], [5.1, 47.0], [5.1, 47.1], [5.0, 47.2]]]}
    assert (
        app_client.post(
            "/tenants/tenant-a/sites", json={**site, "location": open_ring}, headers=tech
        ).status_code
        == 422
    )
    assert app_client.post("/tenants/tenant-a/sites", json=site, headers=tech).status_code == 201
    assert app_client.get("/tenants/tenant-a/sites/armoire-centre", headers=tech).json()["location"] == POINT
    # Foreign and unknown tenants look the same, for reads and writes.
    other = bearer(tokens["technician-b"])
    for path in (
        "/tenants/tenant-a/sites",
        "/tenants/tenant-a/sites/armoire-centre",
        "/tenants/nowhere/sites",
    ):
        assert app_client.get(path, headers=other).status_code == 404
    assert (
        app_client.post("/tenants/tenant-a/sites", json={**site, "id": "x"}, headers=other).status_code == 404
    )
    assert app_client.delete("/tenants/tenant-a/sites/armoire-centre", headers=other).status_code == 404
    assert (
        app_client.post("/tenants/tenant-a/sites", json=site, headers=bearer(tokens["viewer-a"])).status_code
        == 403
    )
    patched = app_client.patch(
        "/tenants/tenant-a/sites/armoire-centre", json={"name": "Centre"}, headers=tech
    )
    assert patched.json()["name"] == "Centre"
    # null clears a nullable field; on a required one it is a clear 422, not a database error.
    cleared = app_client.patch(
        "/tenants/tenant-a/sites/armoire-centre", json={"location": None}, headers=tech
    )
    assert cleared.status_code == 200 and cleared.json()["location"] is None
    refused = app_client.patch("/tenants/tenant-a/sites/armoire-centre", json={"name": None}, headers=tech)
    assert refused.status_code == 422 and "name cannot be null" in refused.json()["detail"]
    assert app_client.delete("/tenants/tenant-a/sites/armoire-centre", headers=tech).status_code == 204
    assert app_client.get("/tenants/tenant-a/sites/armoire-centre", headers=tech).status_code == 404
    assert _audit_actions(api_dsn) == ["site.create", "site.update", "site.update", "site.delete"]


def test_devices_cannot_point_at_another_tenants_gateway(
    app_client: TestClient, tokens: dict[str, str]
) -> None:
    app_client.post("/tenants/tenant-b/gateways", json={"id": "gw-b"}, headers=bearer(tokens["technician-b"]))
    tech = bearer(tokens["technician-a"])
    answer = app_client.post(
        "/tenants/tenant-a/devices", json={"id": "d1", "gateway_id": "gw-b"}, headers=tech
    )
    assert answer.status_code == 422
    assert answer.json()["field"] == "gateway_id"
    app_client.post("/tenants/tenant-a/sites", json={"id": "s1", "name": "S1"}, headers=tech)
    assert (
        app_client.post(
            "/tenants/tenant-a/devices", json={"id": "d1", "site_id": "s1"}, headers=tech
        ).status_code
        == 201
    )
    in_use = app_client.delete("/tenants/tenant-a/sites/s1", headers=tech)
    assert in_use.status_code == 409 and "devices" in in_use.json()["detail"]


def test_taken_ids_answer_the_same_whichever_tenant_holds_them(
    app_client: TestClient, tokens: dict[str, str], api_dsn: str
) -> None:
    """Ids are global: a foreign tenant must not learn that its conflict is with another tenant, nor which."""
    tech_a, tech_b = bearer(tokens["technician-a"]), bearer(tokens["technician-b"])
    for kind, body in (("devices", {"id": "lampe-42", "model": "secret-model"}),
                       ("sites", {"id": "place-42", "name": "Secret"}),
                       ("gateways", {"id": "gw-42"})):  # fmt: skip
        assert app_client.post(f"/tenants/tenant-a/{kind}", json=body, headers=tech_a).status_code == 201
        own = app_client.post(f"/tenants/tenant-a/{kind}", json=body, headers=tech_a)
        foreign = app_client.post(f"/tenants/tenant-b/{kind}", json=body, headers=tech_b)
        assert own.status_code == foreign.status_code == 409
        assert foreign.content == own.content
        assert foreign.headers.items() == own.headers.items()
        assert "tenant-a" not in foreign.text and "Secret" not in foreign.text
        assert app_client.get(f"/tenants/tenant-b/{kind}", headers=tech_b).json() == []
    # The CSV import says the same per row.
    imported = app_client.post("/tenants/tenant-b/devices/import", content="id\nlampe-42\n", headers=tech_b)
    assert imported.json()["errors"] == [
        {"row": 2, "field": "id", "message": "'lampe-42' is not available; choose another id"}
    ]
    with psycopg.connect(api_dsn) as conn:
        assert conn.execute("SELECT tenant_id, model FROM devices WHERE id = 'lampe-42'").fetchone() == (
            "tenant-a", "secret-model",
        )  # fmt: skip


def test_csv_device_import_keeps_good_rows_and_reports_bad_ones(
    app_client: TestClient, tokens: dict[str, str], api_dsn: str
) -> None:
    tech = bearer(tokens["technician-a"])
    app_client.post("/tenants/tenant-a/gateways", json={"id": "gw-a"}, headers=tech)
    app_client.post("/tenants/tenant-a/devices", json={"id": "existing"}, headers=tech)
    csv_body = (
        "id,gateway_id,model,installed_on,expected_interval_s,attrs\n"
        'armoire-1,gw-a,relay,2024-03-01,900,"{""circuits"": 2}"\n'
        "bad id!,gw-a,relay,,,\n"
        "armoire-2,gw-nowhere,relay,,,\n"
        "armoire-3,,relay,not-a-date,,\n"
        "existing,,,,,\n"
        "armoire-4,,,,60,{broken\n"
        "a84041000181c7b2,gw-a,LDDS75,,1200,\n"
    )
    headers = {**tech, "Content-Type": "text/csv"}
    answer = app_client.post("/tenants/tenant-a/devices/import", content=csv_body, headers=headers)
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["created"] == ["armoire-1", "a84041000181c7b2"]
    assert [(e["row"], e["field"]) for e in report["errors"]] == [
        (3, "id"),
        (4, "gateway_id"),
        (5, "installed_on"),
        (6, "id"),
        (7, "attrs"),
    ]
    device = app_client.get("/tenants/tenant-a/devices/armoire-1", headers=tech).json()
    assert device["attrs"] == {"circuits": 2} and device["installed_on"] == "2024-03-01"
    unknown = app_client.post(
        "/tenants/tenant-a/devices/import", content="id,colour\nx,red\n", headers=headers
    )
    assert unknown.status_code == 422 and "colour" in unknown.json()["detail"]
    as_json = app_client.post("/tenants/tenant-a/devices/import", json=[{"id": "x"}], headers=tech)
    assert as_json.status_code == 415
    assert "device.import" in _audit_actions(api_dsn)


def test_csv_site_import_takes_longitude_and_latitude(app_client: TestClient, tokens: dict[str, str]) -> None:
    headers = {**bearer(tokens["technician-a"]), "Content-Type": "text/csv; charset=utf-8"}
    body = "\ufeffid,name,kind,longitude,latitude\np1,Place du marché,parking_zone,5.10,47.52\np2,Loin,other,5.1,147\n"
    report = app_client.post("/tenants/tenant-a/sites/import", content=body.encode(), headers=headers).json()
    assert report["created"] == ["p1"]
    assert [(e["row"], e["field"]) for e in report["errors"]] == [(3, "location")]
    site = app_client.get("/tenants/tenant-a/sites/p1", headers=headers).json()
    assert site["location"] == {"type": "Point", "coordinates": [5.1, 47.52]}


def test_gateway_list_shows_live_state_and_registration_returns_credentials(
    app_client: TestClient, tokens: dict[str, str], api_dsn: str
) -> None:
    tech = bearer(tokens["technician-a"])
    registered = app_client.post(
        "/tenants/tenant-a/gateways", json={"id": "gw-mairie", "name": "Mairie"}, headers=tech
    )
    assert registered.status_code == 201, registered.text
    mqtt = registered.json()["mqtt"]
    assert mqtt["username"] == "gw-mairie" and len(mqtt["password"]) >= 24
    assert mqtt["topics"]["up"] == "territoire/v1/tenant-a/gw-mairie/up"
    assert mqtt["broker_files_written"] is False
    reserved = app_client.post("/tenants/tenant-a/gateways", json={"id": "territoire-ingest"}, headers=tech)
    assert reserved.status_code == 422
    with psycopg.connect(api_dsn) as conn:
        conn.execute(
            "UPDATE gateways SET state = 'online', last_seen = now(), buffer_readings = 240, "
            "dropped_readings = 0, clock_synced = true WHERE id = 'gw-mairie'"
        )
        details = [r[0] for r in conn.execute("SELECT detail::text FROM audit_log").fetchall()]
    assert not any(mqtt["password"] in d for d in details)
    listed = app_client.get("/tenants/tenant-a/gateways", headers=bearer(tokens["viewer-a"])).json()
    assert len(listed) == 1
    row = listed[0]
    assert (row["state"], row["buffer_readings"], row["dropped_readings"], row["clock_synced"]) == (
        "online",
        240,
        0,
        True,
    )
    assert row["last_seen"] is not None
    assert "password" not in row


def test_metric_catalogue_tags_personal_data(app_client: TestClient, tokens: dict[str, str]) -> None:
    body = {"unit": "", "description": "badge id of a resident at a bin", "personal_data": True}
    assert (
        app_client.put("/metrics/badge_id", json=body, headers=bearer(tokens["technician-a"])).status_code
        == 403
    )
    assert app_client.put("/metrics/badge_id", json=body, headers=bearer(tokens["admin"])).status_code == 200
    assert app_client.put("/metrics/Bad-Name", json=body, headers=bearer(tokens["admin"])).status_code == 422
    listed = app_client.get("/metrics", headers=bearer(tokens["viewer-a"])).json()
    assert {"name": "badge_id", **body} in listed
    # The firmware profiles' catalogue is loaded by the migrations, none of it personal.
    assert {
        "name": "power_w",
        "unit": "W",
        "description": "active power, total of all phases",
        "personal_data": False,
    } in listed
