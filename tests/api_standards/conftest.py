"""Fixtures of the standards and alert tests: migrated databases with seed data, a real API server.

`api_server` runs create_app under uvicorn on a free loopback port (frost-sta-client
speaks HTTP through `requests`, so it needs a real socket). It is module-scoped:
tests that share it only read, or write alert tables they clean up.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest

from api.alerting.engine import ensure_schema
from api.app import create_app
from api.migrations import migrate as migrate_api
from api.settings import Settings
from api.users import create_user, issue_token
from ingest.migrate import migrate
from territoire.services import PostgresServer

from ..serving import served
from .seed import seed_inventory, seed_readings

# Same names, roles and tenants as tests/api/conftest.py.
ACCOUNTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "admin": ("admin", ()),
    "technician-a": ("technician", ("tenant-a",)),
    "viewer-a": ("viewer", ("tenant-a",)),
    "technician-b": ("technician", ("tenant-b",)),
}


@pytest.fixture
def data_dsn(fresh_database: str) -> str:
    """A database with the ingest relations, the alert tables and the seed inventory (no readings)."""
    migrate(fresh_database, "auto")
    seed_inventory(fresh_database)
    asyncio.run(_alert_schema(fresh_database))
    return fresh_database


async def _alert_schema(dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        await ensure_schema(conn)


@pytest.fixture
def readings_dsn(data_dsn: str) -> str:
    seed_readings(data_dsn)
    return data_dsn


@dataclass(frozen=True)
class ApiServer:
    url: str
    dsn: str
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def api_server(postgres: PostgresServer) -> Iterator[ApiServer]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    dsn = postgres.create_database(name)
    migrate(dsn, "auto")
    migrate_api(dsn)
    seed_inventory(dsn)
    seed_readings(dsn)
    asyncio.run(_alert_schema(dsn))
    with psycopg.connect(dsn) as conn:
        tokens = {}
        for subject, (role, tenants) in ACCOUNTS.items():
            create_user(conn, subject, role, tenants)
            tokens[subject] = issue_token(conn, subject)
    app = create_app(Settings(dsn=dsn, alert_interval_s=None))
    try:
        with served(app, name="uvicorn-standards") as url:
            yield ApiServer(url, dsn, tokens)
    finally:
        postgres.drop_database(name)
