"""The SensorThings entity sets, mapped onto the platform's relations.

Each set is a SQL sub-select restricted to the caller's tenants, a stable key,
a renderer for its properties and its navigation links:

    Thing            a device                       id = device id
    Location         a site with a GeoJSON location id = site id
    Sensor           a device model / profile       id = profile, else model, else "unknown"
    ObservedProperty a metric of the catalogue      id = metric name
    Datastream       device x metric with readings  id = "{device_id}:{metric}"
    Observation      one reading                    id = "{device_id}:{metric}:{µs since epoch}"

Device ids may contain ':' but metric names never do, so keys split from the right.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import sql

from api.standards.odata_filter import Kind

Row = dict[str, Any]
Tenants = frozenset[str] | None
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECONDS = re.compile(r"-?[0-9]{1,20}")
OM_MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
SENSOR_KEY = "coalesce(nullif(d.profile, ''), nullif(d.model, ''), 'unknown')"
# UCUM codes for the units the firmware profiles emit; others keep their symbol only.
UCUM = {"W": "W", "kW": "kW", "kWh": "kW.h", "Wh": "W.h", "V": "V", "A": "A", "mm": "mm", "m": "m",
        "%": "%", "lx": "lx", "°C": "Cel", "dB": "dB", "s": "s", "h": "h"}  # fmt: skip


class UnknownKeyError(ValueError):
    """A key that cannot name an entity of this set (answered 404, like an unknown one)."""


@dataclass(frozen=True)
class Navigation:
    target: str
    single: bool
    conditions: Callable[[Row], dict[str, object]]


@dataclass(frozen=True)
class EntitySet:
    name: str
    base: Callable[[Tenants], tuple[sql.Composable, list[object]]]
    key_columns: tuple[str, ...]
    parse_key: Callable[[str], dict[str, object]]
    format_key: Callable[[Row], str]
    order: dict[str, tuple[str, ...]]
    render: Callable[[Row], dict[str, object]]
    navigation: dict[str, Navigation]
    filter_columns: dict[str, tuple[str, Kind]] | None = None


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _tenant_clause(column: str, tenants: Tenants) -> tuple[sql.Composable, list[object]]:
    if tenants is None:
        return sql.SQL("TRUE"), []
    return sql.SQL("{} = ANY(%s)").format(sql.SQL(column)), [sorted(tenants)]


def _based_on(template: str, column: str) -> Callable[[Tenants], tuple[sql.Composable, list[object]]]:
    def base(tenants: Tenants) -> tuple[sql.Composable, list[object]]:
        clause, params = _tenant_clause(column, tenants)
        return sql.SQL(template).format(tenant=clause), params

    return base


def _plain_key(key: str) -> dict[str, object]:
    return {"id": key}


def datastream_key(key: str) -> dict[str, object]:
    device, sep, metric = key.rpartition(":")
    if not sep or not device or not metric:
        raise UnknownKeyError(key)
    return {"device_id": device, "metric": metric}


def observation_key(key: str) -> dict[str, object]:
    parts = key.rsplit(":", 2)
    if len(parts) != 3 or not parts[0] or not _MICROSECONDS.fullmatch(parts[2]):
        raise UnknownKeyError(key)
    try:
        moment = EPOCH + timedelta(microseconds=int(parts[2]))
    except OverflowError as exc:
        raise UnknownKeyError(key) from exc
    return {"device_id": parts[0], "metric": parts[1], "time": moment}


def _microseconds(moment: datetime) -> int:
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _thing(row: Row) -> dict[str, object]:
    model = row["model"] or "device"
    return {
        "name": row["id"],
        "description": f"{model} ({row['tenant_id']})",
        "properties": {
            "tenant": row["tenant_id"], "site": row["site_id"], "gateway": row["gateway_id"],
            "model": row["model"], "profile": row["profile"],
            "installedOn": row["installed_on"].isoformat() if row["installed_on"] else None,
            "expectedIntervalS": row["expected_interval_s"], "attrs": row["attrs"],
        },
    }  # fmt: skip


def _location(row: Row) -> dict[str, object]:
    return {
        "name": row["name"],
        "description": f"{row['kind']} site of {row['tenant_id']}",
        "encodingType": "application/geo+json",
        "location": row["location"],
        "properties": {"tenant": row["tenant_id"], "kind": row["kind"]},
    }


def _sensor(row: Row) -> dict[str, object]:
    return {
        "name": row["id"],
        "description": f"device model {row['model'] or 'unknown'}, firmware profile {row['profile'] or 'none'}",
        "encodingType": "text/plain",
        "metadata": f"territoire firmware profile {row['profile'] or row['id']}",
        "properties": {"model": row["model"], "profile": row["profile"]},
    }


def _observed_property(row: Row) -> dict[str, object]:
    return {
        "name": row["id"],
        "definition": f"urn:territoire:metric:{row['id']}",
        "description": row["description"] or row["id"],
        "properties": {"unit": row["unit"], "personalData": row["personal_data"]},
    }


def _datastream(row: Row) -> dict[str, object]:
    unit = row["unit"]
    return {
        "name": f"{row['metric']} of {row['device_id']}",
        "description": row["description"] or f"{row['metric']} measured by {row['device_id']}",
        "observationType": OM_MEASUREMENT,
        "unitOfMeasurement": {
            "name": unit,
            "symbol": unit,
            "definition": f"http://unitsofmeasure.org/ucum.html#{UCUM[unit]}" if unit in UCUM else "",
        },
        "properties": {"tenant": row["tenant_id"], "device": row["device_id"], "metric": row["metric"]},
    }


def _observation(row: Row) -> dict[str, object]:
    # Readings carry the measurement time only; the result is produced when measured.
    moment = iso(row["time"])
    return {"phenomenonTime": moment, "resultTime": moment, "result": row["value"],
            "parameters": {"quality": row["quality"]}}  # fmt: skip


THINGS = EntitySet(
    "Things",
    _based_on(
        "SELECT d.id, d.tenant_id, d.site_id, d.gateway_id, d.model, d.profile, d.installed_on,"
        f" d.expected_interval_s, d.attrs, {SENSOR_KEY} AS sensor_key FROM devices d WHERE {{tenant}}",
        "d.tenant_id",
    ),
    ("id",), _plain_key, lambda r: str(r["id"]), {"id": ("id",), "name": ("id",)}, _thing,
    {
        "Locations": Navigation("Locations", False, lambda r: {"id": r["site_id"]}),
        "Datastreams": Navigation("Datastreams", False, lambda r: {"device_id": r["id"]}),
    },
)  # fmt: skip

LOCATIONS = EntitySet(
    "Locations",
    _based_on(
        "SELECT s.id, s.tenant_id, s.name, s.kind, s.location FROM sites s"
        " WHERE s.location IS NOT NULL AND {tenant}",
        "s.tenant_id",
    ),
    ("id",), _plain_key, lambda r: str(r["id"]), {"id": ("id",), "name": ("name", "id")}, _location,
    {"Things": Navigation("Things", False, lambda r: {"site_id": r["id"]})},
)  # fmt: skip

SENSORS = EntitySet(
    "Sensors",
    _based_on(
        f"SELECT {SENSOR_KEY} AS id, min(d.model) AS model, min(d.profile) AS profile"
        " FROM devices d WHERE {tenant} GROUP BY 1",
        "d.tenant_id",
    ),
    ("id",), _plain_key, lambda r: str(r["id"]), {"id": ("id",), "name": ("id",)}, _sensor,
    {"Datastreams": Navigation("Datastreams", False, lambda r: {"sensor_key": r["id"]})},
)  # fmt: skip

OBSERVED_PROPERTIES = EntitySet(
    "ObservedProperties",
    lambda tenants: (sql.SQL("SELECT m.name AS id, m.unit, m.description, m.personal_data FROM metrics m"), []),
    ("id",), _plain_key, lambda r: str(r["id"]), {"id": ("id",), "name": ("id",)}, _observed_property,
    {"Datastreams": Navigation("Datastreams", False, lambda r: {"metric": r["id"]})},
)  # fmt: skip

# The metrics of a device are found with a loose index scan on readings'
# unique (device_id, metric, time) index: one index probe per metric, whatever
# the number of readings.
DATASTREAMS = EntitySet(
    "Datastreams",
    _based_on(
        "SELECT d.id AS device_id, m.metric, d.tenant_id,"
        f" {SENSOR_KEY} AS sensor_key, coalesce(mt.unit, '') AS unit, coalesce(mt.description, '') AS description"
        " FROM devices d CROSS JOIN LATERAL ("
        "  WITH RECURSIVE t(metric) AS ("
        "   (SELECT r.metric FROM readings r WHERE r.device_id = d.id ORDER BY r.metric LIMIT 1)"
        "   UNION ALL"
        "   SELECT (SELECT r.metric FROM readings r WHERE r.device_id = d.id AND r.metric > t.metric"
        "           ORDER BY r.metric LIMIT 1) FROM t WHERE t.metric IS NOT NULL"
        "  ) SELECT t.metric FROM t WHERE t.metric IS NOT NULL"
        " ) m LEFT JOIN metrics mt ON mt.name = m.metric WHERE {tenant}",
        "d.tenant_id",
    ),
    ("device_id", "metric"), datastream_key, lambda r: f"{r['device_id']}:{r['metric']}",
    {"id": ("device_id", "metric"), "name": ("metric", "device_id")}, _datastream,
    {
        "Thing": Navigation("Things", True, lambda r: {"id": r["device_id"]}),
        "Sensor": Navigation("Sensors", True, lambda r: {"id": r["sensor_key"]}),
        "ObservedProperty": Navigation("ObservedProperties", True, lambda r: {"id": r["metric"]}),
        "Observations": Navigation(
            "Observations", False, lambda r: {"device_id": r["device_id"], "metric": r["metric"]}
        ),
    },
)  # fmt: skip

OBSERVATIONS = EntitySet(
    "Observations",
    _based_on(
        "SELECT r.device_id, r.metric, r.time, r.value, r.quality, r.tenant_id FROM readings r WHERE {tenant}",
        "r.tenant_id",
    ),
    ("device_id", "metric", "time"), observation_key,
    lambda r: f"{r['device_id']}:{r['metric']}:{_microseconds(r['time'])}",
    {"id": ("device_id", "metric", "time"), "phenomenonTime": ("time",), "resultTime": ("time",),
     "result": ("value",)},
    _observation,
    {"Datastream": Navigation("Datastreams", True, lambda r: {"device_id": r["device_id"], "metric": r["metric"]})},
    filter_columns={"phenomenonTime": ("time", "time"), "resultTime": ("time", "time"), "result": ("value", "number")},
)  # fmt: skip

ENTITY_SETS: dict[str, EntitySet] = {
    s.name: s for s in (THINGS, LOCATIONS, SENSORS, OBSERVED_PROPERTIES, DATASTREAMS, OBSERVATIONS)
}
