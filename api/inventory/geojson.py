"""GeoJSON geometry validation (RFC 7946) for site locations, WGS84 longitude/latitude.

Only geometries are accepted (not Features): the site row is the feature.
"""

from __future__ import annotations

import math
from typing import Any

TYPES = (
    "Point",
    "MultiPoint",
    "LineString",
    "MultiLineString",
    "Polygon",
    "MultiPolygon",
    "GeometryCollection",
)


class GeometryError(ValueError):
    """The value is not a valid GeoJSON geometry; the message says where."""


def _position(value: Any, where: str) -> None:
    if not isinstance(value, list) or len(value) not in (2, 3):
        raise GeometryError(
            f"{where}: a position is [longitude, latitude] or [longitude, latitude, altitude]"
        )
    for number in value:
        if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
            raise GeometryError(f"{where}: coordinates must be finite numbers")
    lon, lat = value[0], value[1]
    if not -180 <= lon <= 180:
        raise GeometryError(f"{where}: longitude {lon} outside -180..180 (order is [longitude, latitude])")
    if not -90 <= lat <= 90:
        raise GeometryError(f"{where}: latitude {lat} outside -90..90 (order is [longitude, latitude])")


def _positions(value: Any, where: str, minimum: int) -> None:
    if not isinstance(value, list) or len(value) < minimum:
        raise GeometryError(f"{where}: needs a list of at least {minimum} positions")
    for i, position in enumerate(value):
        _position(position, f"{where}[{i}]")


def _polygon(value: Any, where: str) -> None:
    if not isinstance(value, list) or not value:
        raise GeometryError(f"{where}: a polygon is a non-empty list of linear rings")
    for i, ring in enumerate(value):
        _positions(ring, f"{where}[{i}]", 4)
        if ring[0] != ring[-1]:
            raise GeometryError(f"{where}[{i}]: a linear ring must end on its first position")


def _many(value: Any, where: str, check: Any) -> None:
    if not isinstance(value, list):
        raise GeometryError(f"{where}: expected a list")
    for i, item in enumerate(value):
        check(item, f"{where}[{i}]")


def validate_geometry(value: Any, where: str = "location") -> dict[str, Any]:
    """Returns the geometry unchanged when valid, else raises GeometryError."""
    if not isinstance(value, dict):
        raise GeometryError(f"{where}: a GeoJSON geometry is an object with 'type' and 'coordinates'")
    kind = value.get("type")
    if kind not in TYPES:
        raise GeometryError(f"{where}.type: must be one of {', '.join(TYPES)}, not {kind!r}")
    if kind == "GeometryCollection":
        geometries = value.get("geometries")
        if not isinstance(geometries, list):
            raise GeometryError(f"{where}.geometries: expected a list of geometries")
        for i, geometry in enumerate(geometries):
            validate_geometry(geometry, f"{where}.geometries[{i}]")
        return value
    coordinates = value.get("coordinates")
    at = f"{where}.coordinates"
    if kind == "Point":
        _position(coordinates, at)
    elif kind == "MultiPoint":
        _positions(coordinates, at, 1)
    elif kind == "LineString":
        _positions(coordinates, at, 2)
    elif kind == "MultiLineString":
        _many(coordinates, at, lambda item, w: _positions(item, w, 2))
    elif kind == "Polygon":
        _polygon(coordinates, at)
    else:
        _many(coordinates, at, _polygon)
    return value
