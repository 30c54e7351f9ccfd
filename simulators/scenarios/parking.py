"""On-street parking: Poisson arrivals by hour, lognormal stays, Bosch TPS110 sensors through ChirpStack.

Each space's sensor sends an uplink on every change (FPort 1) with the real
TPS110 payload byte; the platform sees them as ChirpStack v4 uplink events.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from simulators.devices.lns_events import LnsDevice, chirpstack_uplink
from simulators.devices.lorawan_encoders import bosch_tps110

from .common import Inventory

PARIS = ZoneInfo("Europe/Paris")
# Arrivals per space per hour of the local day: a small-town centre with market mornings.
HOURLY_RATE = (0.02, 0.01, 0.01, 0.01, 0.02, 0.05, 0.15, 0.35, 0.55, 0.6, 0.6, 0.55,
               0.5, 0.45, 0.5, 0.55, 0.6, 0.55, 0.45, 0.3, 0.15, 0.08, 0.05, 0.03)  # fmt: skip


@dataclass(frozen=True)
class ParkingConfig:
    tenant: str = "is-sur-tille"
    seed: int = 1
    spaces: int = 40
    start: date = date(2023, 10, 2)
    days: int = 7
    duration_median_min: float = 45.0
    duration_sigma: float = 0.9  # lognormal shape


def space_ids(config: ParkingConfig) -> list[str]:
    return [f"70b3d5{config.seed % 256:02x}{i:08x}" for i in range(config.spaces)]


def inventory(config: ParkingConfig) -> Inventory:
    inv = Inventory(config.tenant, "Is-sur-Tille")
    zone = f"{config.tenant}-centre"
    inv.sites.append(
        {
            "id": zone,
            "name": "Stationnement centre-bourg",
            "kind": "parking_zone",
            "location": None,
            "attrs": {},
        }
    )
    inv.gateways.append({"id": "gw-parking", "site_id": zone, "name": "Passerelle LoRaWAN centre"})
    for dev in space_ids(config):
        inv.devices.append(
            {
                "id": dev,
                "site_id": zone,
                "gateway_id": "gw-parking",
                "model": "bosch-tps110",
                "profile": "bosch-tps110",
                "attrs": {"role": "parking_space", "zone": zone},
            }
        )
    return inv


def occupancy_changes(config: ParkingConfig) -> list[tuple[float, str, bool]]:
    """(time, space, occupied) sorted by time; a car arriving at an occupied space goes elsewhere."""
    rng = np.random.default_rng([config.seed, 20])
    changes: list[tuple[float, str, bool]] = []
    for space in space_ids(config):
        free_from = 0.0
        for d in range(config.days):
            day = config.start + timedelta(days=d)
            for hour, rate in enumerate(HOURLY_RATE):
                base = datetime.combine(day, time(hour), tzinfo=PARIS).timestamp()
                for offset in np.sort(rng.uniform(0, 3600, rng.poisson(rate))):
                    arrival = base + float(offset)
                    if arrival < free_from:
                        continue
                    stay = float(
                        rng.lognormal(np.log(config.duration_median_min * 60), config.duration_sigma)
                    )
                    changes += [(arrival, space, True), (arrival + stay, space, False)]
                    free_from = arrival + stay
    return sorted(changes)


def lns_uplinks(config: ParkingConfig, application_id: str) -> Iterator[tuple[float, str, bytes]]:
    """(time, topic, ChirpStack v4 event body) for every change, with the TPS110 payload bytes."""
    devices = {
        s: LnsDevice(dev_eui=s, name=f"place-{s[-4:]}", application_id=application_id)
        for s in space_ids(config)
    }
    end = datetime.combine(config.start + timedelta(days=config.days), time(0), tzinfo=UTC).timestamp()
    for at, space, occupied in occupancy_changes(config):
        if at >= end:
            continue
        port, payload = bosch_tps110(occupied)
        topic, body = chirpstack_uplink(devices[space], port, payload, int(at * 1_000_000))
        yield at, topic, body
