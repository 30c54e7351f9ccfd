"""Pays de Montbéliard bio-waste containers: fixed rounds, then fill-level-driven rounds from October 2023.

Filling is compound Poisson: deposits arrive at a weekday- and season-shaped
rate and each adds a gamma-distributed volume. Until the switch date every
sector is collected on two fixed weekdays; afterwards a sector is visited on
a working day only if one of its containers is urgent (>= 80 %, or forecast
to overflow before the next working day) and the truck lifts the urgent and
eligible (>= 60 %) ones. Sensors (Dragino LDDS75) report the distance to the
waste surface.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from statistics import NormalDist
from zoneinfo import ZoneInfo

import numpy as np

from simulators.devices.lns_events import LnsDevice, chirpstack_uplink
from simulators.devices.lorawan_encoders import dragino_ldds75
from territoire_kernel.records import Reading

from .common import Chunk, Inventory

PARIS = ZoneInfo("Europe/Paris")
_STANDARD_NORMAL = NormalDist()
US = 1_000_000
# Deposits by weekday (Mon..Sun): more after weekends, fewer on Sunday.
WEEKDAY_FACTOR = (1.25, 1.0, 0.95, 0.95, 1.0, 1.1, 0.75)


@dataclass(frozen=True)
class WasteConfig:
    tenant: str = "pays-de-montbeliard"
    seed: int = 1
    containers: int = 240
    containers_per_sector: int = 10
    start: date = date(2022, 9, 1)
    end: date = date(2024, 1, 1)
    sensor_driven_from: date = date(2023, 10, 1)
    interval_s: int = 3600  # simulation step
    uplink_interval_s: int = 0  # seconds between a sensor's uplinks (0: every step); a multiple of the step
    height_mm: float = 1300.0
    blind_zone_mm: float = 280.0  # LDDS75 blind zone
    deposits_per_day: float = 4.2  # mean, per container (the calibrated parameter, docs/savings.md)
    deposit_pct_mean: float = 1.45  # mean volume of a deposit, % of the container
    rate_spread: float = 0.35  # lognormal sigma of container-to-container rate differences
    seasonal_amplitude: float = 0.2  # summer peak of garden and food waste
    hotspot_share: float = 0.03  # containers near markets and canteens
    hotspot_factor: float = 4.0  # fixed twice-weekly rounds let them overflow at weekends
    forecast_margin: float = 1.3  # safety factor on the expected filling until the next working day
    urgent_pct: float = 80.0
    eligible_pct: float = 50.0
    noise_mm: float = 6.0
    chunk_days: int = 7
    stratified: bool = True  # False: independent draws of rates and hot spots (the former model)

    @property
    def sectors(self) -> int:
        return max(1, -(-self.containers // self.containers_per_sector))


def container_ids(config: WasteConfig) -> list[tuple[str, str, int]]:
    """(device id = DevEUI, sector, index)."""
    return [
        (f"a84041{config.seed % 256:02x}{i:08x}", f"secteur-{i % config.sectors + 1:02d}", i)
        for i in range(config.containers)
    ]


def inventory(config: WasteConfig) -> Inventory:
    inv = Inventory(config.tenant, "Pays de Montbéliard Agglomération", "intercommunalite")
    for s in range(1, config.sectors + 1):
        inv.gateways.append(
            {"id": f"gw-secteur-{s:02d}", "site_id": None, "name": f"Passerelle LoRaWAN secteur {s:02d}"}
        )
    rng = np.random.default_rng([config.seed, 10])
    for dev, sector, i in container_ids(config):
        site = f"{config.tenant}-pav-{i:04d}"
        inv.sites.append(
            {
                "id": site,
                "name": f"Point d'apport {i:04d}",
                "kind": "waste_point",
                "location": {
                    "type": "Point",
                    "coordinates": [
                        round(6.80 + float(rng.normal(0, 0.03)), 5),
                        round(47.51 + float(rng.normal(0, 0.02)), 5),
                    ],
                },
                "attrs": {"sector": sector},
            }
        )
        inv.devices.append(
            {
                "id": dev,
                "site_id": site,
                "gateway_id": f"gw-{sector}",
                "model": "dragino-ldds75",
                "profile": "dragino-ldds75",
                "expected_interval_s": config.interval_s,
                "installed_on": "2022-06-01",
                "attrs": {
                    "role": "waste_container",
                    "sector": sector,
                    "height_mm": config.height_mm,
                    "blind_zone_mm": config.blind_zone_mm,
                    "stream": "biodechets",
                },
            }
        )
    return inv


def _fixed_days(sector_index: int) -> tuple[int, int]:
    first = sector_index % 3  # Mon/Thu, Tue/Fri, Wed/Sat
    return first, first + 3


@dataclass
class WasteRun:
    times: np.ndarray
    fill: np.ndarray  # shape (containers, samples), % before sensor noise
    rounds: list[tuple[date, str]]


def simulate(config: WasteConfig) -> WasteRun:
    """The true fill of every container at every sample time, and the rounds driven."""
    rng = np.random.default_rng([config.seed, 11])
    ids = container_ids(config)
    n = len(ids)
    sector_of = np.array([int(s.split("-")[1]) - 1 for _, s, _ in ids])
    base_rate = deposit_rates(config, np.random.default_rng([config.seed, 13]), sector_of)
    t0 = datetime.combine(config.start, time(0), tzinfo=UTC).timestamp()
    t1 = datetime.combine(config.end, time(0), tzinfo=UTC).timestamp()
    times = np.arange(t0, t1, config.interval_s, dtype=np.float64)
    fill = np.zeros((n, len(times)))
    level = rng.uniform(0, 50, n)
    dt_days = config.interval_s / 86_400
    rounds: list[tuple[date, str]] = []
    collect_at = 7 * 3600  # rounds start around 07:00 local
    last_round_day: date | None = None
    for k, t in enumerate(times):
        local = datetime.fromtimestamp(t, PARIS)
        day = local.date()
        season = 1 + config.seasonal_amplitude * np.cos(2 * np.pi * (day.timetuple().tm_yday - 196) / 365.25)
        lam = base_rate * WEEKDAY_FACTOR[day.weekday()] * season * dt_days
        deposits = rng.poisson(lam)
        volume = rng.gamma(np.maximum(deposits, 1e-9) * 2.0, config.deposit_pct_mean / 2.0) * (deposits > 0)
        level = np.minimum(level + volume, 100.0)
        seconds_of_day = local.hour * 3600 + local.minute * 60 + local.second
        if seconds_of_day >= collect_at and day != last_round_day:
            last_round_day = day
            lifted = _collect(config, day, level, base_rate=base_rate, sector_of=sector_of, rounds=rounds)
            level[lifted] = rng.uniform(0, 3, int(lifted.sum()))
        fill[:, k] = level
    return WasteRun(times, fill, rounds)


def deposit_rates(config: WasteConfig, rng: np.random.Generator, sector_of: np.ndarray) -> np.ndarray:
    """Mean deposits per day of each container.

    The fleet's spread of rates is a lognormal, drawn stratified (one draw in
    each of n equal-probability bins, shuffled over the containers): the fleet
    as a whole always has the same spread, only which container gets which
    rate is random. Hot spots (markets, canteens) are a known count, at most
    one per sector: with independent draws their number alone moved the
    sensor-driven rounds by +-4 points from seed to seed (docs/savings.md).
    """
    n = len(sector_of)
    if config.stratified:
        probs = (np.arange(n) + rng.random(n)) / n
        z = np.array([_STANDARD_NORMAL.inv_cdf(float(p)) for p in probs])
        rates = _balanced(np.exp(config.rate_spread * z - config.rate_spread**2 / 2), sector_of, rng)
        hot = np.zeros(n, dtype=bool)
        sectors = rng.permutation(config.sectors)[: round(config.hotspot_share * n)]
        for s in sectors:
            hot[rng.choice(np.flatnonzero(sector_of == s))] = True
    else:
        rates = rng.lognormal(-(config.rate_spread**2) / 2, config.rate_spread, n)
        hot = rng.random(n) < config.hotspot_share
    if config.stratified:
        # A hot spot's rate is its own (known to the planner), not a hot spot times a random spread.
        return config.deposits_per_day * np.where(hot, config.hotspot_factor, rates)
    return config.deposits_per_day * rates * np.where(hot, config.hotspot_factor, 1.0)


def _balanced(sorted_rates: np.ndarray, sector_of: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Deal the sorted rates to the sectors one stratum at a time (each sector one of the slowest, ...).

    Collection sectors are drawn to balance the trucks' work, so each holds a
    similar mix of slow and fast containers; which container of the sector
    gets which rate stays random.
    """
    rates = np.empty(len(sector_of))
    members = [rng.permutation(np.flatnonzero(sector_of == s)) for s in range(int(sector_of.max()) + 1)]
    position = 0
    for rank in range(max(len(m) for m in members)):
        holders = [m[rank] for m in members if rank < len(m)]
        block = sorted_rates[position : position + len(holders)]
        rates[np.array(holders)[rng.permutation(len(holders))]] = block
        position += len(holders)
    return rates


def _collect(
    config: WasteConfig,
    day: date,
    level: np.ndarray,
    *,
    base_rate: np.ndarray,
    sector_of: np.ndarray,
    rounds: list[tuple[date, str]],
) -> np.ndarray:
    lifted = np.zeros(len(level), dtype=bool)
    if day.weekday() == 6:
        return lifted
    for s in range(config.sectors):
        members = sector_of == s
        if day < config.sensor_driven_from:
            if day.weekday() in _fixed_days(s):
                lifted |= members
                rounds.append((day, f"secteur-{s + 1:02d}"))
            continue
        # Forecast to the next working day (Saturday -> Monday spans two days).
        gap = 2 if day.weekday() == 5 else 1
        expected = base_rate * config.deposit_pct_mean * config.forecast_margin * gap
        urgent = members & ((level >= config.urgent_pct) | (level + expected >= 100.0))
        if urgent.any():
            lifted |= urgent | (members & (level >= config.eligible_pct))
            rounds.append((day, f"secteur-{s + 1:02d}"))
    return lifted


def distance_mm(config: WasteConfig, fill_pct: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    usable = config.height_mm - config.blind_zone_mm
    d = config.height_mm - fill_pct / 100 * usable + rng.normal(0, config.noise_mm, fill_pct.shape)
    # At 100 % the surface is inside the blind zone: the sensor reports its minimum.
    return np.clip(
        np.where(fill_pct >= 100.0, config.blind_zone_mm - 20, d), 0, config.height_mm + 50
    ).round()


def chunks(config: WasteConfig, run: WasteRun | None = None) -> Iterator[Chunk]:
    run = run or simulate(config)
    rng = np.random.default_rng([config.seed, 12])
    ids = container_ids(config)
    step = config.chunk_days * 86_400
    start = run.times[0]
    while start <= run.times[-1]:
        sel = (run.times >= start) & (run.times < start + step)
        times = run.times[sel]
        dist = distance_mm(config, run.fill[:, sel], rng)
        by_gateway: dict[str, list[Reading]] = {}
        for dev, sector, i in ids:
            gw = f"gw-{sector}"
            by_gateway.setdefault(gw, []).extend(
                Reading(dev, "distance_mm", float(v), int(t * US), "mm")
                for v, t in zip(dist[i], times, strict=True)
            )
        for gw, readings in sorted(by_gateway.items()):
            yield Chunk(gw, int((start + step) * US), tuple(readings))
        start += step


def lns_uplinks(
    config: WasteConfig,
    application_id: str,
    run: WasteRun | None = None,
    windows: Sequence[tuple[date, date]] = (),
) -> Iterator[tuple[float, str, bytes]]:
    """(time, topic, ChirpStack v4 event body) of every sensor reading, in time order, with LDDS75 bytes.

    `windows` (UTC days, end exclusive) restricts which readings are sent, e.g.
    only the compared quarters in CI; the simulation itself always runs whole.
    """
    run = run or simulate(config)
    rng = np.random.default_rng([config.seed, 12])
    ids = container_ids(config)
    devices = [
        LnsDevice(dev_eui=dev, name=f"pav-{i:04d}", application_id=application_id) for dev, _, i in ids
    ]
    keep = uplink_mask(config, run.times)
    if windows:
        bounds = [(_utc_s(a), _utc_s(b)) for a, b in windows]
        keep &= np.any([(run.times >= a) & (run.times < b) for a, b in bounds], axis=0)
    # One draw for every sample, sent or not, so a window's readings do not depend on the others.
    battery = 3300 - np.arange(len(run.times)) * 400 // max(len(run.times), 1)
    for k in range(len(run.times)):
        dist = distance_mm(config, run.fill[:, k], rng)
        if not keep[k]:
            continue
        time_us = int(run.times[k] * US)
        for device, d in zip(devices, dist, strict=True):
            port, payload = dragino_ldds75(int(d), battery_mv=int(battery[k]))
            name, body = chirpstack_uplink(device, port, payload, time_us)
            yield float(run.times[k]), name, body


def uplink_mask(config: WasteConfig, times: np.ndarray) -> np.ndarray:
    """The simulation steps at which the sensors send an uplink."""
    every = max(1, config.uplink_interval_s // config.interval_s)
    mask: np.ndarray = np.arange(len(times)) % every == 0
    return mask


def _utc_s(day: date) -> float:
    return datetime.combine(day, time(0), tzinfo=UTC).timestamp()
