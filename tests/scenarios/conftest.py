from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from territoire.services import PostgresServer


@pytest.fixture(scope="module")
def module_database(postgres: PostgresServer) -> Iterator[str]:
    """A new, empty database shared by one module's tests (each module streams its scenario once)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    dsn = postgres.create_database(name)
    yield dsn
    postgres.drop_database(name)
