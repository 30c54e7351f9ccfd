"""Alert rules and alerts over HTTP: rights per role and tenant, validation, acknowledgement."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import psycopg

from api.alerting.engine import evaluate

from .conftest import ApiServer
from .seed import T0, execute


def call(
    server: ApiServer, method: str, path: str, who: str, body: Any = None, **params: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {server.tokens[who]}"}
    return httpx.request(method, f"{server.url}{path}", json=body, params=params, headers=headers, timeout=10)


async def _evaluate(dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        await evaluate(conn, T0 + timedelta(minutes=1))


RULE = {"tenant_id": "tenant-a", "kind": "gateway_offline", "name": "Passerelles",
        "channels": [{"type": "webhook", "url": "http://127.0.0.1:9/hook"}, {"type": "email", "to": ["a@b.fr"]}]}  # fmt: skip


def test_rules_and_alerts_lifecycle_with_rights(api_server: ApiServer) -> None:
    assert call(api_server, "POST", "/alerts/rules", "viewer-a", RULE).status_code == 403
    assert call(api_server, "POST", "/alerts/rules", "technician-b", RULE).status_code == 404
    created = call(api_server, "POST", "/alerts/rules", "technician-a", RULE)
    assert created.status_code == 201, created.text
    rule = created.json()
    assert (rule["kind"], rule["created_by"], rule["params"]) == ("gateway_offline", "technician-a", {})
    assert [r["id"] for r in call(api_server, "GET", "/alerts/rules", "viewer-a").json()] == [rule["id"]]
    assert call(api_server, "GET", "/alerts/rules", "technician-b").json() == []

    execute(api_server.dsn, "UPDATE gateways SET state = 'offline'")
    asyncio.run(_evaluate(api_server.dsn))
    alerts = call(api_server, "GET", "/alerts", "viewer-a").json()
    assert [(a["subject"], a["state"], a["message"]) for a in alerts] == [
        ("gateway:gw-a", "open", "Passerelle Mairie hors ligne")]  # fmt: skip
    assert call(api_server, "GET", "/alerts", "technician-b").json() == []
    alert_id = alerts[0]["id"]
    assert call(api_server, "POST", f"/alerts/{alert_id}/ack", "viewer-a").status_code == 403
    assert call(api_server, "POST", f"/alerts/{alert_id}/ack", "technician-b").status_code == 404
    acked = call(api_server, "POST", f"/alerts/{alert_id}/ack", "technician-a").json()
    assert acked["acknowledged_by"] == "technician-a" and acked["state"] == "open"

    assert call(api_server, "DELETE", f"/alerts/rules/{rule['id']}", "technician-b").status_code == 404
    assert call(api_server, "DELETE", f"/alerts/rules/{rule['id']}", "viewer-a").status_code == 403
    assert call(api_server, "DELETE", f"/alerts/rules/{rule['id']}", "technician-a").status_code == 204
    assert call(api_server, "GET", "/alerts", "admin", state="all").json() == []  # deleted with its rule
    actions = [r[0] for r in execute(api_server.dsn, "SELECT action FROM audit_log ORDER BY 1")]
    assert {"alert.acknowledge", "alert_rule.create", "alert_rule.delete"} <= set(actions)


def test_rule_validation_answers_problems(api_server: ApiServer) -> None:
    bad = [
        {**RULE, "kind": "volcano"},
        {**RULE, "kind": "container_full", "params": {"threshold": 1.5}},
        {**RULE, "kind": "device_silent", "params": {"interval": 3}},
        {**RULE, "channels": [{"type": "webhook", "url": "ftp://x"}]},
        {**RULE, "channels": [{"type": "email", "to": ["not an address"]}]},
    ]
    for body in bad:
        response = call(api_server, "POST", "/alerts/rules", "technician-a", body)
        assert response.status_code == 422, body
        assert response.headers["content-type"].startswith("application/problem+json")
    assert call(api_server, "POST", "/alerts/999999/ack", "admin").status_code == 404
