"""Fixtures of the API tests: a migrated database, two tenants, one account per role."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from api.migrations import migrate as migrate_api
from api.settings import Settings
from api.users import create_user, issue_token
from ingest.migrate import migrate as migrate_data

TENANTS = {"tenant-a": "Commune A", "tenant-b": "Commune B"}
# name -> (role, tenants)
ACCOUNTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "admin": ("admin", ()),
    "technician-a": ("technician", ("tenant-a",)),
    "viewer-a": ("viewer", ("tenant-a",)),
    "analyst-ab": ("analyst", ("tenant-a", "tenant-b")),
    "technician-b": ("technician", ("tenant-b",)),
}
PASSWORD = "correct horse battery staple"


@pytest.fixture
def api_dsn(fresh_database: str) -> str:
    migrate_data(fresh_database, "auto")
    migrate_api(fresh_database)
    with psycopg.connect(fresh_database) as conn:
        for tenant, name in TENANTS.items():
            conn.execute("INSERT INTO tenants (id, name, kind) VALUES (%s, %s, 'commune')", (tenant, name))
    return fresh_database


@pytest.fixture
def tokens(api_dsn: str) -> dict[str, str]:
    issued = {}
    with psycopg.connect(api_dsn) as conn:
        for name, (role, tenants) in ACCOUNTS.items():
            create_user(conn, name, role, tenants, password=PASSWORD if name == "viewer-a" else None)
            issued[name] = issue_token(conn, name)
    return issued


@pytest.fixture
def api_app(api_dsn: str) -> FastAPI:
    return create_app(Settings(dsn=api_dsn, alert_interval_s=None))


@pytest.fixture
def app_client(api_app: FastAPI, tokens: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(api_app) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
