"""Authentication, roles and the rule that every route declares its access."""

from __future__ import annotations

import time
from datetime import timedelta

import psycopg
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from api.deps import forget_token
from api.users import issue_token

from .conftest import PASSWORD, bearer


def _access_kinds(route: APIRoute) -> set[str]:
    found = set()
    stack = list(route.dependant.dependencies)
    while stack:
        dependant = stack.pop()
        kind = getattr(dependant.call, "access_kind", None)
        if kind is not None:
            found.add(kind)
        stack.extend(dependant.dependencies)
    return found


def test_every_route_declares_exactly_one_access_rule(api_app: FastAPI) -> None:
    # Included routers appear as nested entries: walk them all, not just the top level.
    routes = [
        c.original_route
        for c in iter_route_contexts(api_app.routes)
        if isinstance(c.original_route, APIRoute)
    ]
    assert len(routes) > 40
    missing = [f"{sorted(r.methods)} {r.path}" for r in routes if len(_access_kinds(r)) != 1]
    assert not missing, f"routes without exactly one requires(...): {missing}"


def test_the_server_address_leads_to_the_dashboard(app_client: TestClient) -> None:
    answer = app_client.get("/", follow_redirects=False)
    assert (answer.status_code, answer.headers["location"]) == (307, "/tableau/")
    assert "/" not in app_client.get("/openapi.json").json()["paths"]


def test_password_login_issues_a_working_token(app_client: TestClient) -> None:
    answer = app_client.post("/auth/token", data={"username": "viewer-a", "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    token = answer.json()["access_token"]
    me = app_client.get("/auth/me", headers=bearer(token)).json()
    assert me == {"subject": "viewer-a", "role": "viewer", "tenants": ["tenant-a"]}


def test_wrong_password_and_unknown_account_look_the_same(app_client: TestClient) -> None:
    wrong = app_client.post("/auth/token", data={"username": "viewer-a", "password": "nope"})
    unknown = app_client.post("/auth/token", data={"username": "nobody", "password": "nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]
    assert wrong.headers["content-type"] == "application/problem+json"


def test_missing_bad_and_revoked_tokens_are_refused(app_client: TestClient, api_dsn: str) -> None:
    assert app_client.get("/auth/me").status_code == 401
    assert app_client.get("/auth/me", headers=bearer("0123456789abcdef.forged")).status_code == 401
    with psycopg.connect(api_dsn) as conn:
        token = issue_token(conn, "technician-b")
    assert app_client.get("/auth/me", headers=bearer(token)).status_code == 200
    with psycopg.connect(api_dsn) as conn:
        conn.execute("UPDATE api_tokens SET revoked_at = now() WHERE id = %s", (token.split(".")[0],))
    # Verified tokens are cached briefly; forgetting the revoked one makes it fail at once.
    assert app_client.get("/auth/me", headers=bearer(token)).status_code == 200
    forget_token(token)
    assert app_client.get("/auth/me", headers=bearer(token)).status_code == 401


def test_a_cached_token_stops_working_when_it_expires(app_client: TestClient, api_dsn: str) -> None:
    with psycopg.connect(api_dsn) as conn:
        token = issue_token(conn, "technician-b", ttl=timedelta(seconds=1))
    assert app_client.get("/auth/me", headers=bearer(token)).status_code == 200
    time.sleep(1.1)
    assert app_client.get("/auth/me", headers=bearer(token)).status_code == 401


def test_tokens_are_stored_hashed(app_client: TestClient, api_dsn: str, tokens: dict[str, str]) -> None:
    with psycopg.connect(api_dsn) as conn:
        stored = [r[0] for r in conn.execute("SELECT secret_hash FROM api_tokens").fetchall()]
    secrets = [t.split(".", 1)[1] for t in tokens.values()]
    assert stored and all(h.startswith("$argon2") for h in stored)
    assert not any(secret in h for secret in secrets for h in stored)


def test_health_and_readiness_are_public(app_client: TestClient) -> None:
    assert app_client.get("/healthz").json() == {"status": "ok"}
    assert app_client.get("/readyz").json() == {"status": "ready"}
