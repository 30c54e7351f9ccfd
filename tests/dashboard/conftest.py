"""A seeded database, the API served by uvicorn on a loopback port, and Debian's Chromium."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from api.settings import Settings
from territoire.services import PostgresServer

from ..serving import served as served_app
from .seed import PASSWORD, seed

CHROMIUM = Path("/usr/bin/chromium")


@dataclass(frozen=True)
class Served:
    url: str
    dsn: str

    def token(self, username: str) -> str:
        answer = httpx.post(f"{self.url}/auth/token", data={"username": username, "password": PASSWORD})
        answer.raise_for_status()
        return str(answer.json()["access_token"])


@pytest.fixture(scope="module")
def served(postgres: PostgresServer) -> Iterator[Served]:
    name = f"t_dash_{uuid.uuid4().hex[:8]}"
    dsn = postgres.create_database(name)
    seed(dsn)
    app = create_app(Settings(dsn=dsn, alert_interval_s=None))
    try:
        with served_app(app, name="uvicorn-dashboard") as url:
            yield Served(url, dsn)
    finally:
        postgres.drop_database(name)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    # Screenshots and page weights are kept for inspection, outside version control.
    default = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"
    directory = Path(os.environ.get("TERRITOIRE_ARTIFACTS", default))
    directory.mkdir(parents=True, exist_ok=True)
    return directory
