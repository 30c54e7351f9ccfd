"""Smart Data Models entity builders and the NGSI-LD q subset (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from api.standards.ngsi_query import QueryError, parse_q
from api.standards.smart_data_models import (
    CORE_CONTEXT,
    Device,
    Latest,
    Site,
    build_entities,
    filling_level,
    parse_urn,
    urn,
)

NOW = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
POINT = {"type": "Point", "coordinates": [5.1, 47.52]}


def device(id: str, site: str | None, attrs: dict[str, Any] | None = None, interval: int | None = None,
           **latest: float | Latest) -> Device:  # fmt: skip
    values = {
        k: v if isinstance(v, Latest) else Latest(v, NOW - timedelta(minutes=5)) for k, v in latest.items()
    }
    return Device(id, "t-a", site, "model", interval, attrs or {}, values)


def by_type(entities: list[dict[str, Any]], entity_type: str) -> list[dict[str, Any]]:
    return [e for e in entities if e["type"] == entity_type]


def test_filling_level_from_distance_and_geometry() -> None:
    bin_ = device("b", "w", {"height_mm": 1200, "blind_zone_mm": 200}, distance_mm=450.0)
    assert filling_level(bin_) is not None and filling_level(bin_)[0] == 0.75  # type: ignore[index]
    assert (
        filling_level(device("b", "w", {"height_mm": 1200, "blind_zone_mm": 200}, distance_mm=100.0))[0]
        == 1.0
    )  # type: ignore[index]
    assert filling_level(device("b", "w", {"height_mm": 1200}, distance_mm=1500.0))[0] == 0.0  # type: ignore[index]
    assert filling_level(device("b", "w", {}, fill_pct=42.0))[0] == 0.42  # type: ignore[index]
    assert filling_level(device("b", "w", {}, distance_mm=300.0)) is None  # no geometry: unknown, not guessed


def test_entities_of_every_type_have_the_smart_data_models_structure() -> None:
    sites = [
        Site("cab", "t-a", "Armoire", "lighting_cabinet", POINT),
        Site("pav", "t-a", "PAV", "waste_point", POINT),
        Site("park", "t-a", "Halle", "parking_zone", POINT, {"total_spots": 3}),
        Site("misc", "t-a", "Autre", "other", None),
    ]
    devices = [
        device("meter", "cab", energy_kwh=512.5, power_w=1830.0),
        device("lamp", "cab", relay_on=1.0, dim_pct=70.0, power_w=35.0),
        device("bin", "pav", {"height_mm": 1200, "blind_zone_mm": 200}, 3600, distance_mm=450.0),
        device("spot1", "park", occupied=1.0),
        device("spot2", "park", occupied=0.0),
        device("spot3", "park"),
        device("weather", "misc", temperature=3.0),
    ]
    entities = build_entities(sites, devices, NOW)
    assert sorted(e["type"] for e in entities) == sorted(
        ["StreetlightControlCabinet", "Streetlight", "WasteContainer", "ParkingSpot", "ParkingSpot", "ParkingSpot",
         "OnStreetParking"])  # fmt: skip
    for entity in entities:
        assert parse_urn(entity["id"])[:2] == (entity["type"], "t-a")  # type: ignore[index]
        assert entity["@context"][-1] == CORE_CONTEXT and "smart-data-models" in entity["@context"][0]
        assert entity["location"] == {"type": "GeoProperty", "value": POINT}
        for name, attribute in entity.items():
            if name not in ("id", "type", "@context"):
                assert attribute["type"] in ("Property", "GeoProperty", "Relationship"), name

    cabinet = by_type(entities, "StreetlightControlCabinet")[0]
    assert cabinet["energyConsumed"]["value"] == 512.5 and cabinet["totalActivePower"]["value"] == 1.83
    assert cabinet["energyConsumed"]["observedAt"] == "2025-01-15T11:55:00Z"
    light = by_type(entities, "Streetlight")[0]
    assert light["powerState"]["value"] == "on" and light["illuminanceLevel"]["value"] == 0.7
    assert light["status"]["value"] == "ok"
    assert light["refStreetlightControlCabinet"] == {"type": "Relationship", "object": cabinet["id"]}
    container = by_type(entities, "WasteContainer")[0]
    assert container["fillingLevel"]["value"] == 0.75 and container["status"]["value"] == "ok"
    spots = {e["id"].rsplit(":", 1)[1]: e for e in by_type(entities, "ParkingSpot")}
    assert {k: s["status"]["value"] for k, s in spots.items()} == {
        "spot1": "occupied",
        "spot2": "free",
        "spot3": "unknown",
    }
    assert spots["spot1"]["category"]["value"] == ["onStreet"]
    parking = by_type(entities, "OnStreetParking")[0]
    assert spots["spot1"]["refParkingSite"]["object"] == parking["id"]
    assert parking["totalSpotNumber"]["value"] == 3 and parking["availableSpotNumber"]["value"] == 1
    assert len(parking["refParkingSpot"]["object"]) == 3


def test_status_reflects_staleness_errors_and_power() -> None:
    stale = device(
        "bin", "pav", {"height_mm": 1000}, 600, distance_mm=Latest(500.0, NOW - timedelta(hours=1))
    )
    faulty = device("lamp", "cab", power_w=Latest(0.2, NOW, quality=16))
    override = device("x", None, {"smart_data_model": "ParkingSpot"}, occupied=1.0)
    entities = build_entities(
        [Site("pav", "t-a", "P", "waste_point", None), Site("cab", "t-a", "C", "lighting_cabinet", None)],
        [stale, faulty, override], NOW,
    )  # fmt: skip
    assert by_type(entities, "WasteContainer")[0]["status"]["value"] == "unknown"
    light = by_type(entities, "Streetlight")[0]
    assert (light["status"]["value"], light["powerState"]["value"]) == ("defectiveLamp", "off")
    assert "location" not in light and by_type(entities, "ParkingSpot")[0]["id"] == urn(
        "ParkingSpot", "t-a", "x"
    )


def test_urn_round_trip_keeps_colons_in_device_ids() -> None:
    assert parse_urn(urn("Streetlight", "t-a", "a8:40:41")) == ("Streetlight", "t-a", "a8:40:41")
    assert parse_urn("urn:ngsi-ld:Streetlight") is None and parse_urn("urn:other:A:b:c") is None


def test_q_subset() -> None:
    entity = {
        "status": {"type": "Property", "value": "free"},
        "fillingLevel": {"type": "Property", "value": 0.8},
    }
    assert parse_q('status=="free"')(entity) and parse_q("status==free;fillingLevel>=0.8")(entity)
    assert not parse_q("fillingLevel<0.5")(entity) and not parse_q("missing==1")(entity)
    assert parse_q("status!=occupied")(entity) and not parse_q("fillingLevel==free")(entity)
    with pytest.raises(QueryError):
        parse_q("status~=free")
