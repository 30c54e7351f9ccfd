"""Session fixtures: a real Mosquitto broker and a real PostgreSQL server.

Both start on free loopback ports in temporary directories and are torn down at
the end of the session. Tests that need a clean database use `fresh_database`.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, TypeVar, overload

import pytest

from territoire.services import BrokerProcess, MosquittoServer, PostgresServer

B = TypeVar("B", bound=BrokerProcess)


@overload
def started_broker(prefix: str = ...) -> AbstractContextManager[MosquittoServer]: ...
@overload
def started_broker(prefix: str, server: Callable[..., B]) -> AbstractContextManager[B]: ...
@contextmanager
def started_broker(
    prefix: str = "territoire-mqtt-", server: Callable[..., BrokerProcess] = MosquittoServer
) -> Iterator[Any]:
    """A broker of its own (Mosquitto by default) on a free loopback port, removed with its files afterwards."""
    # Mosquitto drops root for its own account, which must reach its log and persistence files.
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    workdir.chmod(0o755)
    broker = server(workdir=workdir)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def mqtt_broker() -> Iterator[MosquittoServer]:
    with started_broker() as broker:
        yield broker


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    # Not under pytest's tmp dir: that one is private to root, and PostgreSQL
    # runs as an unprivileged account that must reach its data directory.
    workdir = Path(tempfile.mkdtemp(prefix="territoire-pg-"))
    workdir.chmod(0o755)
    server = PostgresServer(workdir=workdir, durable=False)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def fresh_database(postgres: PostgresServer) -> Iterator[str]:
    """DSN of a new, empty database, dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    dsn = postgres.create_database(name)
    yield dsn
    postgres.drop_database(name)


@pytest.fixture
def requires_timescaledb(postgres: PostgresServer) -> None:
    if not postgres.has_timescaledb:
        pytest.skip("TimescaleDB extension is not installed for this PostgreSQL")
