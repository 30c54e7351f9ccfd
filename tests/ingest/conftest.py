from __future__ import annotations

import pytest

from ingest.migrate import migrate

from .helpers import seed


@pytest.fixture
def plain_db(fresh_database: str) -> str:
    """A database migrated for plain PostgreSQL, with one tenant, gateway and its devices."""
    migrate(fresh_database, "off")
    seed(fresh_database)
    return fresh_database


@pytest.fixture
def timescale_db(requires_timescaledb: None, fresh_database: str) -> str:
    migrate(fresh_database, "on")
    seed(fresh_database)
    return fresh_database
