"""Is-sur-Tille (Côte-d'Or) street lighting, 2021-2023.

2021: lit dusk to dawn (photocells at about -2° sun elevation). From the night
of 31 January 2022: off 00:30-04:30. From July 2023: off 22:00-06:00 with
on-demand relights (6 minutes per request from a phone app). Each cabinet
carries a meter (energy counter and power, as an iEM3155 read over Modbus)
and a controller whose schedule changes, relights and relay switches are
events. Circuits on main roads stay lit all night: their share of the load is
the free parameter calibrated on the published 46% (docs/savings.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from astral import Observer, SunDirection
from astral.sun import time_at_elevation

from territoire_kernel.records import Event, Reading

from .common import Chunk, FloatArray, Inventory, inside, merge_intervals, seconds_within

PARIS = ZoneInfo("Europe/Paris")
US = 1_000_000

# (first night, local off windows); () is dusk to dawn.
PHASES: tuple[tuple[date, tuple[tuple[str, str], ...]], ...] = (
    (date(2020, 1, 1), ()),
    (date(2022, 1, 31), (("00:30", "04:30"),)),
    (date(2023, 7, 1), (("22:00", "06:00"),)),
)
RELIGHTS_FROM = date(2023, 7, 1)


@dataclass(frozen=True)
class LightingConfig:
    tenant: str = "is-sur-tille"
    seed: int = 1
    cabinets: int = 16
    start: date = date(2021, 1, 1)
    end: date = date(2024, 1, 1)  # exclusive
    interval_s: int = 600
    latitude: float = 47.52
    longitude: float = 5.10
    switch_elevation_deg: float = -2.0
    photocell_jitter_min: float = 3.0  # standard deviation per switch
    luminaires_min: int = 25
    luminaires_max: int = 70
    luminaire_w: tuple[float, ...] = (70.0, 100.0, 150.0)  # sodium lamps with ballast, typical ratings
    standby_w: float = 6.0  # controller and meter
    exempt_share: float = 0.105  # calibrated: share of load never cut (docs/savings.md)
    relights_per_night: float = 1.5  # requests per cabinet per night during the cut-off, from July 2023
    relight_minutes: float = 6.0
    relay_events: bool = True
    readings_power: bool = True
    chunk_days: int = 7


@dataclass(frozen=True)
class CabinetSpec:
    index: int
    site_id: str
    gateway: str
    meter: str
    controller: str
    luminaires: int
    installed_w: float


def cabinet_specs(config: LightingConfig) -> list[CabinetSpec]:
    rng = np.random.default_rng([config.seed, 0])
    specs = []
    for i in range(1, config.cabinets + 1):
        n = int(rng.integers(config.luminaires_min, config.luminaires_max + 1))
        watts = float(np.sum(rng.choice(config.luminaire_w, size=n)))
        name = f"armoire-{i:02d}"
        specs.append(
            CabinetSpec(
                i, f"{config.tenant}-{name}", f"gw-{name}", f"{name}-compteur", f"{name}-commande", n, watts
            )
        )
    return specs


def inventory(config: LightingConfig) -> Inventory:
    inv = Inventory(config.tenant, "Is-sur-Tille")
    rng = np.random.default_rng([config.seed, 1])
    for spec in cabinet_specs(config):
        lat = config.latitude + float(rng.normal(0, 0.004))
        lon = config.longitude + float(rng.normal(0, 0.006))
        inv.sites.append(
            {
                "id": spec.site_id,
                "name": f"Armoire d'éclairage {spec.index:02d}",
                "kind": "lighting_cabinet",
                "location": {"type": "Point", "coordinates": [round(lon, 5), round(lat, 5)]},
                "attrs": {"luminaires": spec.luminaires, "installed_w": spec.installed_w},
            }
        )
        inv.gateways.append(
            {"id": spec.gateway, "site_id": spec.site_id, "name": f"Passerelle {spec.index:02d}"}
        )
        common = {"site_id": spec.site_id, "gateway_id": spec.gateway, "installed_on": "2020-12-01"}
        inv.devices.append(
            common
            | {
                "id": spec.meter,
                "model": "iem3155",
                "profile": "schneider-iem3155",
                "expected_interval_s": config.interval_s,
                "attrs": {
                    "role": "cabinet_meter",
                    "luminaires": spec.luminaires,
                    "installed_w": spec.installed_w,
                },
            }
        )
        inv.devices.append(
            common
            | {
                "id": spec.controller,
                "model": "modbus-relay-8",
                "profile": "modbus-relay-8",
                "attrs": {"role": "cabinet_controller"},
            }
        )
    return inv


def _local(day: date, hhmm: str) -> float:
    hours, minutes = (int(x) for x in hhmm.split(":"))
    return datetime.combine(day, time(hours, minutes), tzinfo=PARIS).timestamp()


def _phase(night: date) -> tuple[tuple[str, str], ...]:
    current: tuple[tuple[str, str], ...] = ()
    for first, windows in PHASES:
        if night >= first:
            current = windows
    return current


def _window(night: date, start: str, end: str) -> tuple[float, float]:
    """The off window of a night: evening starts belong to the night's date, others to the next morning."""
    start_day = night if int(start[:2]) >= 12 else night + timedelta(days=1)
    end_day = start_day if end > start else start_day + timedelta(days=1)
    return _local(start_day, start), _local(end_day, end)


@dataclass
class CabinetTimeline:
    spec: CabinetSpec
    dark: tuple[FloatArray, FloatArray]  # exempt circuits: dusk to dawn
    switched: tuple[FloatArray, FloatArray]  # switched circuits: dark minus cut-off plus relights
    relights: list[float]  # request times


def cabinet_timeline(config: LightingConfig, spec: CabinetSpec) -> CabinetTimeline:
    rng = np.random.default_rng([config.seed, 2, spec.index])
    observer = Observer(latitude=config.latitude, longitude=config.longitude)
    dark: list[tuple[float, float]] = []
    switched: list[tuple[float, float]] = []
    relights: list[float] = []
    night = config.start - timedelta(days=1)
    jitter = config.photocell_jitter_min * 60
    while night < config.end:
        dusk = time_at_elevation(
            observer, config.switch_elevation_deg, night, direction=SunDirection.SETTING, tzinfo=UTC
        ).timestamp() + rng.normal(0, jitter)
        dawn = time_at_elevation(
            observer,
            config.switch_elevation_deg,
            night + timedelta(days=1),
            direction=SunDirection.RISING,
            tzinfo=UTC,
        ).timestamp() + rng.normal(0, jitter)
        dark.append((dusk, dawn))
        pieces = [(dusk, dawn)]
        for start, end in _phase(night):
            off0, off1 = _window(night, start, end)
            pieces = [p for a, b in pieces for p in ((a, min(b, off0)), (max(a, off1), b)) if p[1] > p[0]]
            lo, hi = max(dusk, off0), min(dawn, off1)
            if night >= RELIGHTS_FROM and hi > lo:
                for _ in range(int(rng.poisson(config.relights_per_night))):
                    at = float(rng.uniform(lo, hi))
                    relights.append(at)
                    pieces.append((at, min(at + config.relight_minutes * 60, hi)))
        switched.extend(pieces)
        night += timedelta(days=1)
    return CabinetTimeline(spec, merge_intervals(dark), merge_intervals(switched), sorted(relights))


def _schedule_events(config: LightingConfig, spec: CabinetSpec) -> list[Event]:
    events = []
    for first, windows in PHASES:
        effective = max(first, config.start)
        if effective >= config.end:
            continue
        at = int(_local(effective, "12:00") * US)
        attrs: dict[str, str | int | float | bool] = {"switched_share": round(1 - config.exempt_share, 6)}
        if windows:
            attrs |= {"off_start": windows[0][0], "off_end": windows[0][1]}
        else:
            attrs |= {"mode": "dusk_to_dawn"}
        events.append(Event(spec.controller, "schedule_changed", at, attrs))
    return events


def chunks(config: LightingConfig) -> Iterator[Chunk]:
    """All cabinets' readings and events, week by week, in time order."""
    specs = cabinet_specs(config)
    lines = [cabinet_timeline(config, spec) for spec in specs]
    t0 = datetime.combine(config.start, time(0), tzinfo=UTC).timestamp()
    t_end = datetime.combine(config.end, time(0), tzinfo=UTC).timestamp()
    step = config.chunk_days * 86_400.0
    pending = {line.spec.index: _schedule_events(config, line.spec) for line in lines}
    start = t0
    while start < t_end:
        stop = min(start + step, t_end)
        times = np.arange(start, stop, config.interval_s, dtype=np.float64)
        for line in lines:
            yield _chunk(config, line, times, start=start, stop=stop, pending=pending[line.spec.index])
        start = stop


def _chunk(
    config: LightingConfig,
    line: CabinetTimeline,
    times: FloatArray,
    *,
    start: float,
    stop: float,
    pending: list[Event],
) -> Chunk:
    spec = line.spec
    exempt_w = spec.installed_w * config.exempt_share
    switched_w = spec.installed_w - exempt_w
    # Energy counter in kWh: standby + exempt load over dark + switched load over its lit time.
    energy_wh = (
        1_000_000.0
        + config.standby_w * (times - datetime.combine(config.start, time(0), tzinfo=UTC).timestamp()) / 3600
        + exempt_w * seconds_within(*line.dark, times) / 3600
        + switched_w * seconds_within(*line.switched, times) / 3600
    )
    stamps = (times * US).astype(np.int64)
    readings = [
        Reading(spec.meter, "energy_kwh", round(float(e) / 1000, 4), int(t), "kWh")
        for e, t in zip(energy_wh, stamps, strict=True)
    ]
    if config.readings_power:
        power = (
            config.standby_w
            + exempt_w * inside(*line.dark, times)
            + switched_w * inside(*line.switched, times)
        )
        readings += [
            Reading(spec.meter, "power_w", round(float(p), 1), int(t), "W")
            for p, t in zip(power, stamps, strict=True)
        ]
    events = [e for e in pending if start * US <= e.time_us < stop * US]
    events += [
        Event(spec.controller, "relight", int(at * US), {"duration_s": int(config.relight_minutes * 60)})
        for at in line.relights
        if start <= at < stop
    ]
    if config.relay_events:
        s_starts, s_ends = line.switched
        lo, hi = np.searchsorted(s_starts, start), np.searchsorted(s_starts, stop)
        for a in s_starts[lo:hi]:
            events.append(Event(spec.controller, "relay_switched", int(a * US), {"on": True}))
        lo, hi = np.searchsorted(s_ends, start), np.searchsorted(s_ends, stop)
        for b in s_ends[lo:hi]:
            events.append(Event(spec.controller, "relay_switched", int(b * US), {"on": False}))
    events.sort(key=lambda e: e.time_us)
    return Chunk(spec.gateway, int(stop * US), tuple(readings), tuple(events))


def true_energy_kwh(config: LightingConfig, year: int) -> float:
    """Ground truth of the simulation: energy of every cabinet in a UTC calendar year."""
    specs = cabinet_specs(config)
    a = datetime(year, 1, 1, tzinfo=UTC).timestamp()
    b = datetime(year + 1, 1, 1, tzinfo=UTC).timestamp()
    total = 0.0
    for spec in specs:
        line = cabinet_timeline(config, spec)
        ends = np.array([a, b])
        exempt_w = spec.installed_w * config.exempt_share
        dark = np.diff(seconds_within(*line.dark, ends))[0]
        lit = np.diff(seconds_within(*line.switched, ends))[0]
        total += (
            (config.standby_w * (b - a) + exempt_w * dark + (spec.installed_w - exempt_w) * lit) / 3600 / 1000
        )
    return total
