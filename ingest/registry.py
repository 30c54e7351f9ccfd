"""Cache of tenants, gateways and devices, refreshed from the database on a miss.

Misses are remembered for a few seconds so a storm of messages from an unknown
device costs one query, not one per message.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import psycopg

NEGATIVE_TTL_S = 10.0


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    tenant_id: str
    gateway_id: str | None
    profile: str | None


@dataclass
class Registry:
    tenants: set[str] = field(default_factory=set)
    gateways: dict[str, str] = field(default_factory=dict)  # gateway -> tenant
    devices: dict[str, DeviceInfo] = field(default_factory=dict)
    _missing: dict[tuple[str, str], float] = field(default_factory=dict)

    def load(self, conn: psycopg.Connection[Any]) -> None:
        self.tenants = {row[0] for row in conn.execute("SELECT id FROM tenants")}
        self.gateways = dict(conn.execute("SELECT id, tenant_id FROM gateways").fetchall())
        self.devices = {
            row[0]: DeviceInfo(row[1], row[2], row[3])
            for row in conn.execute("SELECT id, tenant_id, gateway_id, profile FROM devices")
        }
        self._missing.clear()

    def forget_misses(self) -> None:
        self._missing.clear()

    def _recently_missing(self, kind: str, key: str) -> bool:
        expiry = self._missing.get((kind, key))
        return expiry is not None and expiry > time.monotonic()

    def _miss(self, kind: str, key: str) -> None:
        if len(self._missing) > 100_000:
            self._missing.clear()
        self._missing[(kind, key)] = time.monotonic() + NEGATIVE_TTL_S

    def tenant(self, conn: psycopg.Connection[Any], tenant_id: str) -> bool:
        if tenant_id in self.tenants:
            return True
        if self._recently_missing("tenant", tenant_id):
            return False
        if conn.execute("SELECT 1 FROM tenants WHERE id = %s", (tenant_id,)).fetchone():
            self.tenants.add(tenant_id)
            return True
        self._miss("tenant", tenant_id)
        return False

    def gateway(self, conn: psycopg.Connection[Any], gateway_id: str) -> str | None:
        """The gateway's tenant, or None when unknown."""
        found = self.gateways.get(gateway_id)
        if found is not None or self._recently_missing("gateway", gateway_id):
            return found
        row = conn.execute("SELECT tenant_id FROM gateways WHERE id = %s", (gateway_id,)).fetchone()
        if row is None:
            self._miss("gateway", gateway_id)
            return None
        self.gateways[gateway_id] = row[0]
        return str(row[0])

    def device(self, conn: psycopg.Connection[Any], device_id: str) -> DeviceInfo | None:
        found = self.devices.get(device_id)
        if found is not None or self._recently_missing("device", device_id):
            return found
        row = conn.execute(
            "SELECT tenant_id, gateway_id, profile FROM devices WHERE id = %s", (device_id,)
        ).fetchone()
        if row is None:
            self._miss("device", device_id)
            return None
        info = DeviceInfo(row[0], row[1], row[2])
        self.devices[device_id] = info
        return info
