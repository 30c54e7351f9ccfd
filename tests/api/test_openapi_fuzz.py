"""schemathesis over the OpenAPI document: generated requests to every operation never get a 5xx,
every error is a problem+json, and 2xx answers match their declared schema.

The API is served by uvicorn on a loopback port (its lifespan and pool as in production), with a
seeded database and a real broker for commands. Half of the generated requests keep schemathesis'
random path parameters (unknown tenants, odd ids); the other half point at seeded rows so the
generated query strings and bodies reach the SQL underneath.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.core.transport import Response
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import response_schema_conformance

from api.app import create_app
from api.migrations import migrate as migrate_api
from api.settings import Settings
from api.users import create_user, issue_token
from ingest.migrate import migrate as migrate_data
from territoire.services import MosquittoServer, PostgresServer

from ..serving import served as served_app
from .test_matrix import _seed

# 20 per operation: about 20 s on the shared 2-core box (load 5), 200 about 3 min; generation is
# derandomized, so a run is repeatable. Deeper search: TERRITOIRE_FUZZ_EXAMPLES=200.
EXAMPLES_PER_OPERATION = int(os.environ.get("TERRITOIRE_FUZZ_EXAMPLES", "20"))
SEEDED = {
    "tenant": "tenant-a", "site": "site-a", "gateway": "gw-a", "device": "dev-a", "command_id": "cmd-a",
    "name": "power_w", "segment": "Things('dev-a')", "navigation": "Datastreams",
    "entity_id": "urn:ngsi-ld:Streetlight:tenant-a:dev-a", "alert_id": "1", "rule_id": "1",
}  # fmt: skip
# The document is built without a database: create_app connects only when served.
SCHEMA = schemathesis.openapi.from_dict(create_app(Settings(dsn="postgresql:///unused")).openapi())
OPERATIONS: list[APIOperation] = [result.ok() for result in SCHEMA.get_all_operations()]


class Served:
    def __init__(self, url: str, tokens: dict[str, str]) -> None:
        self.url = url
        self.tokens = tokens


@pytest.fixture(scope="module")
def served(postgres: PostgresServer, mqtt_broker: MosquittoServer) -> Iterator[Served]:
    name = f"t_fuzz_{uuid.uuid4().hex[:8]}"
    dsn = postgres.create_database(name)
    migrate_data(dsn, "off")
    migrate_api(dsn)
    with psycopg.connect(dsn) as conn:
        for tenant in ("tenant-a", "tenant-b"):
            conn.execute("INSERT INTO tenants (id, name, kind) VALUES (%s, %s, 'commune')", (tenant, tenant))
    _seed(dsn)
    with psycopg.connect(dsn) as conn:
        create_user(conn, "admin", "admin")
        create_user(conn, "technician-a", "technician", ["tenant-a"])
        tokens = {subject: issue_token(conn, subject) for subject in ("admin", "technician-a")}
    app = create_app(Settings(dsn=dsn, mqtt_port=mqtt_broker.port, alert_interval_s=None))
    try:
        with served_app(app, name="uvicorn-fuzz") as url:
            yield Served(url, tokens)
    finally:
        postgres.drop_database(name)


def _check(case: Any, response: Response) -> None:
    where = f"{case.method} {case.formatted_path} query={case.query!r} body={case.body!r} -> {response.status_code}"
    assert response.status_code < 500, f"{where}: {response.text[:500]}"
    if response.status_code >= 400:
        assert response.headers.get("content-type", [""])[0].startswith("application/problem+json"), where
        body = response.json()
        assert body["status"] == response.status_code, where
        assert isinstance(body["title"], str) and isinstance(body["detail"], str) and body["detail"], where
    elif response.status_code < 300:
        case.validate_response(response, checks=[response_schema_conformance])


@pytest.mark.parametrize("operation", OPERATIONS, ids=[op.label for op in OPERATIONS])
def test_generated_requests_get_no_server_error(operation: APIOperation, served: Served) -> None:
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(), seeded=st.booleans(), caller=st.sampled_from(sorted(served.tokens)))
    def run(case: Any, seeded: bool, caller: str) -> None:
        if seeded:
            case.path_parameters = {
                key: SEEDED.get(key, value) for key, value in (case.path_parameters or {}).items()
            }
        headers = {"Authorization": f"Bearer {served.tokens[caller]}"}
        response = case.call(base_url=served.url, headers=headers, timeout=30)
        _check(case, response)

    run()
