"""NGSI-LD Smart Data Models entities over HTTP: structure of each type, q, paging, isolation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from .conftest import ApiServer

PARKING_CONTEXT = (
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Parking/master/context.jsonld"
)


def get(server: ApiServer, path: str, who: str = "viewer-a", **params: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {server.tokens[who]}"}
    return httpx.get(f"{server.url}/ngsi-ld/v1{path}", params=params, headers=headers, timeout=10)


def entities(server: ApiServer, entity_type: str, who: str = "viewer-a") -> dict[str, dict[str, Any]]:
    response = get(server, "/entities", who, type=entity_type)
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/ld+json")
    return {e["id"]: e for e in response.json()}


def assert_ngsi_ld(entity: dict[str, Any], entity_type: str, required: set[str]) -> None:
    assert entity["type"] == entity_type and entity["id"].startswith(f"urn:ngsi-ld:{entity_type}:tenant-a:")
    assert entity["@context"][-1] == "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"
    assert entity["@context"][0].startswith("https://raw.githubusercontent.com/smart-data-models/dataModel.")
    assert entity["location"]["type"] == "GeoProperty" and entity["location"]["value"]["type"] == "Point"
    assert required <= set(entity)
    for name in set(entity) - {"id", "type", "@context"}:
        attribute = entity[name]
        assert attribute["type"] in ("Property", "GeoProperty", "Relationship"), name
        assert ("object" in attribute) == (attribute["type"] == "Relationship"), name


def test_streetlight_and_cabinet(api_server: ApiServer) -> None:
    cabinets = entities(api_server, "StreetlightControlCabinet")
    cabinet = cabinets["urn:ngsi-ld:StreetlightControlCabinet:tenant-a:compteur-a"]
    assert list(cabinets) == [cabinet["id"]]
    assert_ngsi_ld(
        cabinet, "StreetlightControlCabinet", {"energyConsumed", "totalActivePower", "workingMode"}
    )
    assert cabinet["energyConsumed"] == {
        "type": "Property",
        "value": 509.0,
        "observedAt": "2025-01-15T00:09:00Z",
    }
    assert cabinet["totalActivePower"]["value"] == 1.09  # kW
    lights = entities(api_server, "Streetlight")
    assert set(lights) == {
        "urn:ngsi-ld:Streetlight:tenant-a:lampe-a1",
        "urn:ngsi-ld:Streetlight:tenant-a:relais-a",
    }
    lamp = lights["urn:ngsi-ld:Streetlight:tenant-a:lampe-a1"]
    assert_ngsi_ld(
        lamp, "Streetlight", {"powerState", "status", "illuminanceLevel", "refStreetlightControlCabinet"}
    )
    assert (lamp["powerState"]["value"], lamp["illuminanceLevel"]["value"], lamp["status"]["value"]) == (
        "on",
        0.7,
        "ok",
    )
    assert lamp["refStreetlightControlCabinet"]["object"] == cabinet["id"]
    assert lights["urn:ngsi-ld:Streetlight:tenant-a:relais-a"]["powerState"]["value"] == "on"  # relay_on = 1


def test_waste_container_filling_level(api_server: ApiServer) -> None:
    container = entities(api_server, "WasteContainer")["urn:ngsi-ld:WasteContainer:tenant-a:bac-1"]
    assert_ngsi_ld(container, "WasteContainer", {"fillingLevel", "status"})
    assert container["fillingLevel"] == {
        "type": "Property",
        "value": 0.75,
        "observedAt": "2025-01-15T00:03:00Z",
    }
    assert container["status"]["value"] == "unknown"  # the seed readings are far older than 3 × 1 h


def test_parking_spots_and_on_street_parking(api_server: ApiServer) -> None:
    spots = entities(api_server, "ParkingSpot")
    assert {k.rsplit(":", 1)[1]: v["status"]["value"] for k, v in spots.items()} == {
        "place-1": "occupied",
        "place-2": "free",
    }
    for spot in spots.values():
        assert_ngsi_ld(spot, "ParkingSpot", {"status", "category", "refParkingSite"})
        assert spot["@context"][0] == PARKING_CONTEXT
    zone = entities(api_server, "OnStreetParking")["urn:ngsi-ld:OnStreetParking:tenant-a:parking-halle"]
    assert_ngsi_ld(zone, "OnStreetParking", {"totalSpotNumber", "availableSpotNumber", "refParkingSpot"})
    assert (zone["totalSpotNumber"]["value"], zone["availableSpotNumber"]["value"]) == (2, 1)
    assert sorted(zone["refParkingSpot"]["object"]) == sorted(spots)


def test_get_by_id_q_count_paging_and_isolation(api_server: ApiServer) -> None:
    one = get(api_server, "/entities/urn:ngsi-ld:ParkingSpot:tenant-a:place-2")
    assert one.status_code == 200 and one.json()["status"]["value"] == "free"
    assert [e["id"] for e in get(api_server, "/entities", q="status==free").json()] == [one.json()["id"]]
    assert [e["type"] for e in get(api_server, "/entities", q="fillingLevel>=0.7").json()] == [
        "WasteContainer"
    ]
    everything = get(api_server, "/entities", count="true", limit="100")
    assert everything.headers["NGSILD-Results-Count"] == "7" == str(len(everything.json()))
    page = get(api_server, "/entities", limit="3", offset="6").json()
    assert [e["id"] for e in page] == [e["id"] for e in everything.json()][6:]
    # tenant-b sees its own cabinet only, and tenant-a's entities do not exist for it.
    assert list(entities(api_server, "StreetlightControlCabinet", "technician-b")) == [
        "urn:ngsi-ld:StreetlightControlCabinet:tenant-b:compteur-b"]  # fmt: skip
    hidden = get(api_server, "/entities/urn:ngsi-ld:ParkingSpot:tenant-a:place-2", "technician-b")
    assert hidden.status_code == 404


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/entities", {"type": "Vehicle"}, 400),
        ("/entities", {"q": "status~=free"}, 400),
        ("/entities", {"limit": "5000"}, 422),
        ("/entities/urn:ngsi-ld:ParkingSpot:tenant-a:nope", {}, 404),
        ("/entities/not-a-urn", {}, 404),
    ],
)
def test_errors_are_problem_documents(
    api_server: ApiServer, path: str, params: dict[str, str], status: int
) -> None:
    response = get(api_server, path, **params)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
