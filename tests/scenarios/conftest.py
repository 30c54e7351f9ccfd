from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from territoire.services import MosquittoServer, PostgresServer

from ..conftest import started_broker


@pytest.fixture(scope="module")
def module_database(postgres: PostgresServer) -> Iterator[str]:
    """A new, empty database shared by one module's tests (each module streams its scenario once)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    dsn = postgres.create_database(name)
    yield dsn
    postgres.drop_database(name)


@pytest.fixture(scope="module")
def mqtt_broker() -> Iterator[MosquittoServer]:
    """A broker of the module's own: the session broker holds retained messages of other tests
    (gateway statuses, LNS uplinks) that the scenario's ingest would rightly dead-letter."""
    with started_broker("territoire-mqtt-scenario-") as broker:
        yield broker
