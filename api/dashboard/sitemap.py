"""A schematic site map drawn as inline SVG: no tiles, works offline.

Points are projected equirectangularly around the sites' mean latitude
(x scaled by cos(latitude)), which is accurate enough at commune scale.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

WIDTH, HEIGHT, MARGIN = 640.0, 400.0, 28.0
KIND_LABELS = {
    "lighting_cabinet": "Armoire d'éclairage",
    "waste_point": "Point d'apport (déchets)",
    "parking_zone": "Zone de stationnement",
    "other": "Autre site",
}
# Shapes differ by kind so colour is never the only cue.
KIND_SHAPES = {
    "lighting_cabinet": "circle",
    "waste_point": "square",
    "parking_zone": "triangle",
    "other": "diamond",
}


@dataclass(frozen=True)
class MapPoint:
    site_id: str
    name: str
    kind: str
    lon: float
    lat: float
    x: float
    y: float

    @property
    def kind_label(self) -> str:
        return KIND_LABELS.get(self.kind, self.kind)

    @property
    def shape(self) -> str:
        return KIND_SHAPES.get(self.kind, "diamond")


def _point(location: Any) -> tuple[float, float] | None:
    if isinstance(location, str):
        location = json.loads(location)
    if not isinstance(location, dict) or location.get("type") != "Point":
        return None
    coordinates = location.get("coordinates")
    if not isinstance(coordinates, list) or len(coordinates) < 2:
        return None
    lon, lat = coordinates[0], coordinates[1]
    if not all(isinstance(v, int | float) and math.isfinite(v) for v in (lon, lat)):
        return None
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        return None
    return float(lon), float(lat)


def project(sites: list[dict[str, Any]]) -> list[MapPoint]:
    """Sites with a GeoJSON Point, placed in a WIDTH x HEIGHT box (north up, aspect kept)."""
    located = [(s, p) for s in sites if (p := _point(s.get("location"))) is not None]
    if not located:
        return []
    lat0 = sum(p[1] for _, p in located) / len(located)
    scale_x = math.cos(math.radians(lat0))
    xs = [p[0] * scale_x for _, p in located]
    ys = [p[1] for _, p in located]
    span = max(max(xs) - min(xs), max(ys) - min(ys), 1e-6)
    unit = min((WIDTH - 2 * MARGIN), (HEIGHT - 2 * MARGIN)) / span
    x_off = (WIDTH - (max(xs) - min(xs)) * unit) / 2
    y_off = (HEIGHT - (max(ys) - min(ys)) * unit) / 2
    return [
        MapPoint(
            site_id=str(site["id"]),
            name=str(site["name"]),
            kind=str(site["kind"]),
            lon=lon,
            lat=lat,
            x=round(x_off + (x - min(xs)) * unit, 1),
            y=round(HEIGHT - y_off - (y - min(ys)) * unit, 1),
        )
        for (site, (lon, lat)), x, y in zip(located, xs, ys, strict=True)
    ]
