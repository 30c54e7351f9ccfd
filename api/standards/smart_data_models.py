"""FIWARE Smart Data Models as NGSI-LD entities, built from sites, devices and latest readings.

Pure functions: the router loads rows, this module decides types and attributes
(mapping in docs/standards.md). Attribute names follow the Smart Data Models
schemas of dataModel.Streetlighting, dataModel.WasteManagement and dataModel.Parking.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

CORE_CONTEXT = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"
CONTEXTS = {
    "Streetlight": "https://raw.githubusercontent.com/smart-data-models/dataModel.Streetlighting/master/context.jsonld",
    "StreetlightControlCabinet": "https://raw.githubusercontent.com/smart-data-models/dataModel.Streetlighting/master/context.jsonld",
    "WasteContainer": "https://raw.githubusercontent.com/smart-data-models/dataModel.WasteManagement/master/context.jsonld",
    "ParkingSpot": "https://raw.githubusercontent.com/smart-data-models/dataModel.Parking/master/context.jsonld",
    "OnStreetParking": "https://raw.githubusercontent.com/smart-data-models/dataModel.Parking/master/context.jsonld",
}
TYPES = tuple(CONTEXTS)
# Metrics whose latest value feeds an entity; fetched with one index probe each.
METRICS = (
    "energy_kwh",
    "power_w",
    "relay_on",
    "relay_1_on",
    "lamp_on",
    "dim_pct",
    "distance_mm",
    "fill_pct",
    "occupied",
)
DEVICE_ERROR = 16  # quality bit set by the gateway when the device reports an error state
LAMP_ON_MIN_W = 1.0  # below this a metered circuit counts as off (standby consumption)


@dataclass(frozen=True)
class Latest:
    value: float
    time: datetime
    quality: int = 0


@dataclass(frozen=True)
class Site:
    id: str
    tenant_id: str
    name: str
    kind: str
    location: dict[str, Any] | None
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Device:
    id: str
    tenant_id: str
    site_id: str | None
    model: str
    expected_interval_s: int | None
    attrs: dict[str, Any]
    latest: dict[str, Latest] = field(default_factory=dict)


def urn(entity_type: str, tenant: str, local_id: str) -> str:
    return f"urn:ngsi-ld:{entity_type}:{tenant}:{local_id}"


def parse_urn(text: str) -> tuple[str, str, str] | None:
    parts = text.split(":", 4)
    if len(parts) != 5 or parts[0] != "urn" or parts[1] != "ngsi-ld" or not all(parts[2:]):
        return None
    return parts[2], parts[3], parts[4]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def prop(value: object, observed: Latest | datetime | None = None) -> dict[str, Any]:
    attribute: dict[str, Any] = {"type": "Property", "value": value}
    moment = observed.time if isinstance(observed, Latest) else observed
    if moment is not None:
        attribute["observedAt"] = _iso(moment)
    return attribute


def relationship(target: str | list[str]) -> dict[str, Any]:
    return {"type": "Relationship", "object": target}


def _entity(entity_type: str, tenant: str, local_id: str, site: Site | None, **attrs: Any) -> dict[str, Any]:
    entity: dict[str, Any] = {"id": urn(entity_type, tenant, local_id), "type": entity_type}
    if site is not None and site.location is not None:
        entity["location"] = {"type": "GeoProperty", "value": site.location}
    if site is not None:
        entity["name"] = prop(site.name)
    entity.update({k: v for k, v in attrs.items() if v is not None})
    entity["@context"] = [CONTEXTS[entity_type], CORE_CONTEXT]
    return entity


def classify(device: Device, site: Site | None) -> str | None:
    """The Smart Data Models type of a device, or None when it has none.

    `attrs.smart_data_model` overrides; otherwise the site kind decides, and on
    a lighting cabinet the device metering energy is the cabinet itself.
    """
    explicit = device.attrs.get("smart_data_model")
    if explicit in ("Streetlight", "StreetlightControlCabinet", "WasteContainer", "ParkingSpot"):
        return str(explicit)
    if site is None:
        return None
    if site.kind == "lighting_cabinet":
        return "StreetlightControlCabinet" if "energy_kwh" in device.latest else "Streetlight"
    return {"waste_point": "WasteContainer", "parking_zone": "ParkingSpot"}.get(site.kind)


def filling_level(device: Device) -> tuple[float, Latest] | None:
    """Fill ratio 0–1 from an ultrasonic distance (sensor on the lid looking down).

    Empty when the echo comes from the bottom (distance = height_mm), full when it
    reaches the blind zone under the sensor (distance <= blind_zone_mm).
    """
    distance = device.latest.get("distance_mm")
    height = device.attrs.get("height_mm")
    blind = device.attrs.get("blind_zone_mm", 0)
    if (
        distance is not None
        and isinstance(height, int | float)
        and isinstance(blind, int | float)
        and height > blind
    ):
        ratio = (height - distance.value) / (height - blind)
        return round(min(1.0, max(0.0, ratio)), 4), distance
    percent = device.latest.get("fill_pct")
    if percent is not None:
        return round(min(1.0, max(0.0, percent.value / 100.0)), 4), percent
    return None


def _power_state(device: Device) -> tuple[str, Latest] | None:
    for metric in ("lamp_on", "relay_on", "relay_1_on"):
        state = device.latest.get(metric)
        if state is not None:
            return ("on" if state.value >= 0.5 else "off"), state
    power = device.latest.get("power_w")
    if power is not None:
        return ("on" if power.value >= LAMP_ON_MIN_W else "off"), power
    return None


def _fresh(device: Device, now: datetime) -> bool:
    if not device.latest:
        return False
    newest = max(item.time for item in device.latest.values())
    if device.expected_interval_s is None:
        return True
    return now - newest <= timedelta(seconds=3 * device.expected_interval_s)


def _streetlight(device: Device, site: Site | None, cabinet: str | None) -> dict[str, Any]:
    state = _power_state(device)
    dim = device.latest.get("dim_pct")
    power = device.latest.get("power_w")
    faulty = any(item.quality & DEVICE_ERROR for item in device.latest.values())
    return _entity(
        "Streetlight", device.tenant_id, device.id, site,
        powerState=prop(state[0], state[1]) if state else None,
        status=prop("defectiveLamp" if faulty else "ok"),
        illuminanceLevel=prop(round(min(1.0, max(0.0, dim.value / 100)), 4), dim) if dim else None,
        powerConsumption=prop(power.value, power) if power else None,
        refStreetlightControlCabinet=relationship(cabinet) if cabinet else None,
        refDevice=relationship([urn("Device", device.tenant_id, device.id)]),
    )  # fmt: skip


def _cabinet(device: Device, site: Site | None) -> dict[str, Any]:
    energy = device.latest.get("energy_kwh")
    power = device.latest.get("power_w")
    return _entity(
        "StreetlightControlCabinet", device.tenant_id, device.id, site,
        energyConsumed=prop(energy.value, energy) if energy else None,
        lastMeterReading=prop(energy.value, energy) if energy else None,
        totalActivePower=prop(round(power.value / 1000.0, 6), power) if power else None,
        workingMode=prop("automatic"),
        refDevice=relationship([urn("Device", device.tenant_id, device.id)]),
    )  # fmt: skip


def _container(device: Device, site: Site | None, now: datetime) -> dict[str, Any]:
    level = filling_level(device)
    return _entity(
        "WasteContainer", device.tenant_id, device.id, site,
        fillingLevel=prop(level[0], level[1]) if level else None,
        status=prop("ok" if _fresh(device, now) else "unknown"),
        refDevice=relationship([urn("Device", device.tenant_id, device.id)]),
    )  # fmt: skip


def _spot_status(device: Device) -> tuple[str, Latest | None]:
    occupied = device.latest.get("occupied")
    if occupied is None:
        return "unknown", None
    return ("occupied" if occupied.value >= 0.5 else "free"), occupied


def _spot(device: Device, site: Site | None) -> dict[str, Any]:
    status, observed = _spot_status(device)
    return _entity(
        "ParkingSpot", device.tenant_id, device.id, site,
        status=prop(status, observed),
        category=prop(["onStreet"]),
        refParkingSite=relationship(urn("OnStreetParking", site.tenant_id, site.id)) if site else None,
        refDevice=relationship([urn("Device", device.tenant_id, device.id)]),
    )  # fmt: skip


def _parking(site: Site, spots: list[Device]) -> dict[str, Any]:
    statuses = [_spot_status(d) for d in spots]
    known = [observed for status, observed in statuses if observed is not None]
    observed_at = max((o.time for o in known), default=None)
    total = site.attrs.get("total_spots", len(spots))
    return _entity(
        "OnStreetParking", site.tenant_id, site.id, site,
        totalSpotNumber=prop(total),
        availableSpotNumber=prop(sum(1 for s, _ in statuses if s == "free"), observed_at),
        occupancyDetectionType=prop(["singleSpaceDetection"]),
        refParkingSpot=relationship([urn("ParkingSpot", d.tenant_id, d.id) for d in spots]) if spots else None,
    )  # fmt: skip


def build_entities(sites: Iterable[Site], devices: Iterable[Device], now: datetime) -> list[dict[str, Any]]:
    """Every Smart Data Models entity the given sites and devices describe, ordered by id."""
    by_id = {s.id: s for s in sites}
    typed = [(d, classify(d, by_id.get(d.site_id or ""))) for d in devices]
    cabinets = {d.site_id: urn("StreetlightControlCabinet", d.tenant_id, d.id)
                for d, t in typed if t == "StreetlightControlCabinet" and d.site_id}  # fmt: skip
    entities: list[dict[str, Any]] = []
    spots_by_site: dict[str, list[Device]] = {}
    for device, entity_type in typed:
        site = by_id.get(device.site_id or "")
        if entity_type == "Streetlight":
            entities.append(_streetlight(device, site, cabinets.get(device.site_id or "")))
        elif entity_type == "StreetlightControlCabinet":
            entities.append(_cabinet(device, site))
        elif entity_type == "WasteContainer":
            entities.append(_container(device, site, now))
        elif entity_type == "ParkingSpot":
            entities.append(_spot(device, site))
            if device.site_id:
                spots_by_site.setdefault(device.site_id, []).append(device)
    entities.extend(
        _parking(s, spots_by_site.get(s.id, [])) for s in by_id.values() if s.kind == "parking_zone"
    )
    return sorted(entities, key=lambda e: str(e["id"]))
