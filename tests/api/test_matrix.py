"""Authorisation matrix: every route × every role × own and foreign tenants, generated from the app.

Rules checked:
- no 5xx anywhere;
- anonymous callers get 401 except on the routes meant to be public;
- a role outside a route's access kind gets 403; a tenant out of reach gets 404;
- a 2xx answer never carries another tenant's identifiers;
- requests without the right change nothing (database snapshot before/after);
- tokens and MQTT passwords never reach the logs.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from api.app import create_app
from api.deps import _ALLOWED, Principal
from api.settings import Settings
from territoire.services import MosquittoServer

from .conftest import ACCOUNTS, bearer

TENANTS = ("tenant-a", "tenant-b", "tenant-c")
PUBLIC = {
    ("POST", "/auth/token"),
    ("GET", "/"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    # The dashboard's sign-in form, its sign-out (revokes only the caller's own verified token)
    # and its static files (scripts, styles, chart library licence).
    ("POST", "/tableau/connexion"),
    ("POST", "/tableau/deconnexion"),
    ("GET", "/tableau/_static/{name}"),
}
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
T0 = datetime(2024, 3, 1, tzinfo=UTC)
QUERY = {"start": "2024-03-01T00:00:00Z", "end": "2024-03-03T00:00:00Z", "metric": "power_w", "bucket": "1d"}
SNAPSHOT_TABLES = ("tenants", "sites", "gateways", "devices", "commands", "metrics", "api_user_tenants")


def _access_kind(route: APIRoute) -> str:
    found = set()
    stack = list(route.dependant.dependencies)
    while stack:
        dependant = stack.pop()
        kind = getattr(dependant.call, "access_kind", None)
        if kind is not None:
            found.add(kind)
        stack.extend(dependant.dependencies)
    assert len(found) == 1, f"{route.path} declares {found or 'no'} access rule"
    return found.pop()


def _routes(app: Any) -> list[tuple[str, str, str]]:
    """(method, full path, access kind) of every API route, routers included."""
    found = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            kind = _access_kind(route)
            found += [(method, str(context.path), kind) for method in sorted(context.methods or ())]
    return found


def _seed(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO tenants (id, name, kind) VALUES ('tenant-c', 'Commune C', 'commune')")
        if conn.execute("SELECT to_regproc('ingest_ensure_partitions')").fetchone() != (None,):
            conn.execute("SELECT ingest_ensure_partitions(%s, %s)", (T0, T0 + timedelta(days=3)))
        conn.execute("INSERT INTO metrics (name, unit) VALUES ('power_w', 'W') ON CONFLICT (name) DO NOTHING")
        for tenant in TENANTS:
            x = tenant[-1]
            conn.execute(
                "INSERT INTO sites (id, tenant_id, name, kind) VALUES (%s, %s, 'S', 'other')",
                (f"site-{x}", tenant),
            )
            conn.execute("INSERT INTO gateways (id, tenant_id) VALUES (%s, %s)", (f"gw-{x}", tenant))
            conn.execute(
                "INSERT INTO devices (id, tenant_id, gateway_id, site_id) VALUES (%s, %s, %s, %s)",
                (f"dev-{x}", tenant, f"gw-{x}", f"site-{x}"),
            )
            conn.execute(
                "INSERT INTO commands (id, tenant_id, device_id, gateway_id, action, subject, issued_at, expires_at) "
                "VALUES (%s, %s, %s, %s, 'switch', 'admin', %s, %s)",
                (f"cmd-{x}", tenant, f"dev-{x}", f"gw-{x}", T0, T0 + timedelta(minutes=1)),
            )
            for hour in range(0, 48, 6):
                conn.execute(
                    "INSERT INTO readings (time, device_id, metric, value, tenant_id) VALUES (%s, %s, 'power_w', 1, %s)",
                    (T0 + timedelta(hours=hour), f"dev-{x}", tenant),
                )


def _snapshot(dsn: str) -> list[Any]:
    with psycopg.connect(dsn) as conn:
        return [conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall() for table in SNAPSHOT_TABLES]


def _path(template: str, tenant: str) -> str:
    x = tenant[-1]
    values = {
        "tenant": tenant, "site": f"site-{x}", "gateway": f"gw-{x}", "device": f"dev-{x}",
        "command_id": f"cmd-{x}", "name": "power_w", "segment": f"Things('dev-{x}')", "navigation": "Datastreams",
        "entity_id": f"urn:ngsi-ld:Streetlight:{tenant}:dev-{x}", "alert_id": "1", "rule_id": "1",
    }  # fmt: skip
    return template.format(**values)


def _body(method: str, template: str, serial: int) -> dict[str, Any]:
    if template.endswith("/import"):
        return {"content": f"id\nimported-{serial}\n", "headers": {"Content-Type": "text/csv"}}
    if method not in ("POST", "PUT", "PATCH"):
        return {}
    bodies: dict[str, Any] = {
        "/tenants": {"id": f"tenant-new-{serial}", "name": "Nouvelle"},
        "/tenants/{tenant}": {"name": "Renommée"},
        "/tenants/{tenant}/sites": {"id": f"site-new-{serial}", "name": "S"},
        "/tenants/{tenant}/sites/{site}": {"name": "S2"},
        "/tenants/{tenant}/devices": {"id": f"dev-new-{serial}"},
        "/tenants/{tenant}/devices/{device}": {"model": "m"},
        "/tenants/{tenant}/gateways": {"id": f"gw-new-{serial}"},
        "/tenants/{tenant}/gateways/{gateway}": {"name": "G"},
        "/tenants/{tenant}/devices/{device}/commands": {"action": "switch", "params": {"on": True}},
        "/metrics/{name}": {"unit": "W"},
    }
    return {"json": bodies.get(template, {})}


def _principal(name: str) -> Principal:
    role, tenants = ACCOUNTS[name]
    return Principal(name, role, None if role == "admin" else frozenset(tenants))  # type: ignore[arg-type]


def _must_refuse(caller: str | None, method: str, template: str, kind: str, tenant: str) -> bool:
    if caller is None:
        return kind != "public"
    principal = _principal(caller)
    if principal.role not in _ALLOWED[kind]:  # type: ignore[index]
        return True
    if "{tenant}" not in template:
        return False
    return not principal.can_read(tenant) or (method in WRITE_METHODS and not principal.can_write(tenant))


def test_every_route_for_every_role_and_tenant(
    api_dsn: str,
    tokens: dict[str, str],
    mqtt_broker: MosquittoServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    _seed(api_dsn)
    settings = Settings(
        dsn=api_dsn, alert_interval_s=None, mqtt_port=mqtt_broker.port, broker_acl_dir=tmp_path
    )
    app = create_app(settings)
    routes = _routes(app)
    assert len(routes) > 40
    assert {(m, p) for m, p, kind in routes if kind == "public"} == PUBLIC
    unguarded = [(m, p) for m, p, kind in routes if m in WRITE_METHODS and kind in ("public", "read")]
    assert sorted(unguarded) == [
        ("POST", "/auth/token"),
        ("POST", "/tableau/connexion"),
        ("POST", "/tableau/deconnexion"),
    ], f"writes open to readers: {unguarded}"

    callers: list[str | None] = [None, *ACCOUNTS]
    refused: list[tuple[Any, ...]] = []
    allowed: list[tuple[Any, ...]] = []
    for caller in callers:
        for method, template, kind in routes:
            scopes = (
                TENANTS
                if "{tenant}" in template or "{entity_id}" in template or "{segment}" in template
                else ("tenant-a",)
            )
            for tenant in scopes:
                case = (caller, method, template, kind, tenant)
                (refused if _must_refuse(caller, method, template, kind, tenant) else allowed).append(case)

    secrets: list[str] = [t for token in tokens.values() for t in (token, token.split(".", 1)[1])]
    failures: list[str] = []
    before = _snapshot(api_dsn)
    with TestClient(app) as client:

        def call(case: tuple[Any, ...], serial: int) -> Any:
            caller, method, template, _kind, tenant = case
            headers = bearer(tokens[caller]) if caller else {}
            extra = _body(method, template, serial)
            headers.update(extra.pop("headers", {}))
            return client.request(method, _path(template, tenant), params=QUERY, headers=headers, **extra)

        for serial, case in enumerate(refused):
            caller, method, template, kind, tenant = case
            answer = call(case, serial)
            principal = _principal(caller) if caller else None
            if principal is None:
                expected = {401}
            elif principal.role not in _ALLOWED[kind]:  # type: ignore[index]
                expected = {403}
            else:
                expected = {404} if not principal.can_read(tenant) else {403, 404}
            if answer.status_code not in expected:
                failures.append(
                    f"{caller} {method} {_path(template, tenant)} -> {answer.status_code}, want {expected}"
                )
        if _snapshot(api_dsn) != before:
            failures.append("requests without the right changed the database")

        # Allowed calls last, deletions at the very end, so earlier calls find their objects.
        allowed.sort(key=lambda case: case[1] == "DELETE")
        for serial, case in enumerate(allowed, start=len(refused)):
            caller, method, template, _kind, tenant = case
            answer = call(case, serial)
            where = f"{caller} {method} {_path(template, tenant)}"
            if answer.status_code >= 500:
                failures.append(f"{where} -> {answer.status_code}: {answer.text[:200]}")
                continue
            if isinstance(answer.json() if "json" in answer.headers.get("content-type", "") else None, dict):
                mqtt = answer.json().get("mqtt") or answer.json()
                if isinstance(mqtt, dict) and isinstance(mqtt.get("password"), str):
                    secrets.append(mqtt["password"])
            principal = _principal(caller) if caller else None
            if 200 <= answer.status_code < 300 and principal is not None and principal.tenants is not None:
                foreign = [t for t in TENANTS if t not in principal.tenants]
                markers = [m for t in foreign for m in (t, f"dev-{t[-1]}", f"gw-{t[-1]}", f"site-{t[-1]}")]
                leaked = [m for m in markers if m in answer.text]
                if leaked:
                    failures.append(f"{where} leaked {leaked}")
    assert not failures, "\n".join(failures)
    assert any(len(s) >= 24 and not s.count(".") for s in secrets), "no MQTT password was issued in the sweep"
    logged = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert not [s for s in secrets if s in logged], "a secret reached the logs"
    passwd = (tmp_path / "passwd").read_text()
    assert not [s for s in secrets if s in passwd]
