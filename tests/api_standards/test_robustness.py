"""Odd inputs on the standards and alert routes answer clear client errors, never a server error."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from .conftest import ApiServer

ODD_GETS = [
    "/sta/v1.1/Things('%00')",
    "/sta/v1.1/Things(%00)/Datastreams",
    "/sta/v1.1/Observations('a:b:99999999999999999999')",
    "/sta/v1.1/Observations('a:b:-0')",
    "/sta/v1.1/Datastreams(':')",
    "/sta/v1.1/Things?$top=%C2%B2",
    "/sta/v1.1/Observations?$filter=result%20gt%201e999",
    "/sta/v1.1/Observations?$filter=phenomenonTime%20gt%209999-12-31T23:59:59.999999999-23:59",
    "/sta/v1.1/Observations?$filter=phenomenonTime%20gt%20'%00'",
    "/sta/v1.1/Things?$expand=Datastreams($filter=result%20gt%201)",
    "/sta/v1.1/Things?$select=%00",
    "/ngsi-ld/v1/entities/urn:ngsi-ld:Streetlight:tenant-a:%00",
    "/ngsi-ld/v1/entities?type=%00&q=%00",
    "/ngsi-ld/v1/entities?q=status==%22%00%22",
    "/alerts?tenant=%00",
    "/alerts/99999999999999999999999/ack",
]


@pytest.mark.parametrize("path", ODD_GETS)
def test_odd_requests_are_client_errors(api_server: ApiServer, path: str) -> None:
    method = "POST" if path.endswith("/ack") else "GET"
    headers = {"Authorization": f"Bearer {api_server.tokens['admin']}"}
    response = httpx.request(method, api_server.url + path, headers=headers, timeout=10)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    "body",
    [
        {"tenant_id": "tenant-a\x00", "kind": "low_battery"},
        {"tenant_id": "tenant-a", "kind": "low_battery", "name": "a\x00b"},
        {
            "tenant_id": "tenant-a",
            "kind": "low_battery",
            "channels": [{"type": "email", "to": ["a\x00@b.fr"]}],
        },
        {"tenant_id": "tenant-a", "kind": "low_battery", "params": {"pct": "\x00"}},
        {"tenant_id": "nowhere", "kind": "low_battery"},
    ],
)
def test_odd_rules_are_refused(api_server: ApiServer, body: dict[str, Any]) -> None:
    headers = {"Authorization": f"Bearer {api_server.tokens['admin']}"}
    response = httpx.post(f"{api_server.url}/alerts/rules", json=body, headers=headers, timeout=10)
    assert response.status_code in (404, 422), response.text
