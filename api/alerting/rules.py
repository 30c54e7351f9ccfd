"""Alert rule kinds: their parameters and the condition each one checks (docs/alerts.md).

An evaluator returns the subjects in alarm now, each with a message (French:
collectivités read it) and details. `open_subjects` lets a rule keep an alert
open inside its hysteresis band so a value hovering at the threshold does not
flap.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row
from pydantic import BaseModel, ConfigDict, Field

from api.standards.smart_data_models import Device, Latest, filling_level

RuleKind = Literal["gateway_offline", "device_silent", "container_full", "lighting_fault", "low_battery"]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GatewayOfflineParams(_Params):
    # The last will sets state=offline at once; a gateway that stops without it is caught by age.
    stale_after_s: int | None = Field(default=None, ge=60)


class DeviceSilentParams(_Params):
    intervals: float = Field(default=3.0, ge=1.0, le=1000.0)


class ContainerFullParams(_Params):
    threshold: float = Field(default=0.8, gt=0.0, le=1.0)
    hysteresis: float = Field(default=0.05, ge=0.0, lt=1.0)


class LightingFaultParams(_Params):
    on_threshold_w: float = Field(default=50.0, gt=0.0)
    settle_s: int = Field(default=120, ge=0)


class LowBatteryParams(_Params):
    pct: float | None = Field(default=20.0, ge=0.0, le=100.0)
    volts: float | None = Field(default=None, ge=0.0)
    hysteresis_pct: float = Field(default=5.0, ge=0.0)
    hysteresis_v: float = Field(default=0.1, ge=0.0)


PARAMS: dict[str, type[_Params]] = {
    "gateway_offline": GatewayOfflineParams,
    "device_silent": DeviceSilentParams,
    "container_full": ContainerFullParams,
    "lighting_fault": LightingFaultParams,
    "low_battery": LowBatteryParams,
}


@dataclass(frozen=True)
class Rule:
    id: int
    tenant_id: str
    kind: str
    params: dict[str, Any]
    channels: list[dict[str, Any]]


@dataclass(frozen=True)
class Finding:
    message: str
    details: dict[str, Any]


Conn = psycopg.AsyncConnection[Any]
Evaluator = Callable[[Conn, Rule, datetime, set[str]], Awaitable[dict[str, Finding]]]


async def _rows(conn: Conn, query: str, params: list[object]) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return await cur.fetchall()


async def _latest(
    conn: Conn, tenant: str, metrics: list[str], site_kind: str | None = None
) -> list[dict[str, Any]]:
    """Latest reading of each metric for the tenant's devices (one index probe each)."""
    return await _rows(
        conn,
        "SELECT d.id AS device_id, d.site_id, d.attrs, m.metric, l.value, l.time, l.quality FROM devices d"
        " LEFT JOIN sites s ON s.id = d.site_id"
        " CROSS JOIN unnest(%s::text[]) AS m(metric)"
        " CROSS JOIN LATERAL (SELECT r.value, r.time, r.quality FROM readings r"
        "   WHERE r.device_id = d.id AND r.metric = m.metric ORDER BY r.time DESC LIMIT 1) l"
        " WHERE d.tenant_id = %s AND (%s::text IS NULL OR s.kind = %s::text)",
        [metrics, tenant, site_kind, site_kind],
    )


async def gateway_offline(
    conn: Conn, rule: Rule, now: datetime, open_subjects: set[str]
) -> dict[str, Finding]:
    params = GatewayOfflineParams(**rule.params)
    stale = now - timedelta(seconds=params.stale_after_s) if params.stale_after_s else None
    rows = await _rows(
        conn,
        "SELECT id, name, state, last_seen FROM gateways WHERE tenant_id = %s"
        " AND (state = 'offline' OR (%s::timestamptz IS NOT NULL AND last_seen < %s::timestamptz))",
        [rule.tenant_id, stale, stale],
    )
    return {
        f"gateway:{r['id']}": Finding(
            f"Passerelle {r['name'] or r['id']} hors ligne",
            {
                "gateway": r["id"],
                "state": r["state"],
                "last_seen": r["last_seen"].isoformat() if r["last_seen"] else None,
            },
        )
        for r in rows
    }


async def device_silent(conn: Conn, rule: Rule, now: datetime, open_subjects: set[str]) -> dict[str, Finding]:
    params = DeviceSilentParams(**rule.params)
    # Time-bounded EXISTS: partition pruning keeps it to recent partitions/chunks.
    rows = await _rows(
        conn,
        "SELECT d.id, d.expected_interval_s FROM devices d WHERE d.tenant_id = %s AND d.expected_interval_s > 0"
        " AND d.created_at < %s::timestamptz - d.expected_interval_s * %s * interval '1 second'"
        " AND NOT EXISTS (SELECT 1 FROM readings r WHERE r.device_id = d.id"
        "   AND r.time > %s::timestamptz - d.expected_interval_s * %s * interval '1 second' AND r.time <= %s)",
        [rule.tenant_id, now, params.intervals, now, params.intervals, now],
    )
    return {
        f"device:{r['id']}": Finding(
            f"Capteur {r['id']} muet depuis plus de {params.intervals:g} intervalles ({r['expected_interval_s']} s)",
            {
                "device": r["id"],
                "expected_interval_s": r["expected_interval_s"],
                "intervals": params.intervals,
            },
        )
        for r in rows
    }


async def container_full(
    conn: Conn, rule: Rule, now: datetime, open_subjects: set[str]
) -> dict[str, Finding]:
    params = ContainerFullParams(**rule.params)
    devices: dict[str, Device] = {}
    for row in await _latest(conn, rule.tenant_id, ["distance_mm", "fill_pct"], "waste_point"):
        device = devices.setdefault(
            row["device_id"], Device(row["device_id"], rule.tenant_id, row["site_id"], "", None, row["attrs"])
        )
        device.latest[row["metric"]] = Latest(row["value"], row["time"], row["quality"])
    findings = {}
    for device in devices.values():
        level = filling_level(device)
        if level is None:
            continue
        subject = f"device:{device.id}"
        limit = params.threshold - params.hysteresis if subject in open_subjects else params.threshold
        if level[0] >= limit:
            findings[subject] = Finding(
                f"Conteneur {device.id} rempli à {level[0]:.0%} (seuil {params.threshold:.0%})",
                {"device": device.id, "site": device.site_id, "filling_level": level[0],
                 "threshold": params.threshold, "observed_at": level[1].time.isoformat()},
            )  # fmt: skip
    return findings


async def lighting_fault(
    conn: Conn, rule: Rule, now: datetime, open_subjects: set[str]
) -> dict[str, Finding]:
    """Per lighting site: the commanded circuit state against the metered power.

    Commanded state = the newest of `relay_on` readings and `circuit_switched`
    events (attrs.on) of the site's devices. Power = sum of the latest `power_w`
    of the site's devices, counted only if measured at least settle_s after
    that switch. Fault: commanded off and power >= on_threshold_w, or commanded
    on and power < on_threshold_w.
    """
    params = LightingFaultParams(**rule.params)
    commands = await _rows(
        conn,
        "SELECT DISTINCT ON (site_id) site_id, is_on, time FROM ("
        "  SELECT d.site_id, l.value >= 0.5 AS is_on, l.time FROM devices d JOIN sites s ON s.id = d.site_id"
        "  CROSS JOIN LATERAL (SELECT r.value, r.time FROM readings r WHERE r.device_id = d.id AND r.metric IN ('relay_on', 'relay_1_on')"
        "    AND r.time <= %s ORDER BY r.time DESC LIMIT 1) l WHERE d.tenant_id = %s AND s.kind = 'lighting_cabinet'"
        "  UNION ALL"
        "  SELECT d.site_id, CASE jsonb_typeof(e.attrs->'on') WHEN 'boolean' THEN (e.attrs->>'on')::boolean"
        "    ELSE (e.attrs->>'on')::numeric >= 0.5 END, e.time FROM devices d JOIN sites s ON s.id = d.site_id"
        "  CROSS JOIN LATERAL (SELECT ev.attrs, ev.time FROM events ev WHERE ev.device_id = d.id"
        "    AND ev.kind = 'circuit_switched' AND jsonb_typeof(ev.attrs->'on') IN ('boolean', 'number')"
        "    AND ev.time <= %s ORDER BY ev.time DESC LIMIT 1) e"
        "  WHERE d.tenant_id = %s AND s.kind = 'lighting_cabinet'"
        ") c ORDER BY site_id, time DESC",
        [now, rule.tenant_id, now, rule.tenant_id],
    )
    power: dict[str, list[dict[str, Any]]] = {}
    for row in await _latest(conn, rule.tenant_id, ["power_w"], "lighting_cabinet"):
        power.setdefault(row["site_id"], []).append(row)
    findings = {}
    for command in commands:
        settled = command["time"] + timedelta(seconds=params.settle_s)
        meters = [r for r in power.get(command["site_id"], []) if settled <= r["time"] <= now]
        if not meters:
            continue  # no measurement since the circuit settled: no verdict
        watts = sum(r["value"] for r in meters)
        lit = watts >= params.on_threshold_w
        if lit == command["is_on"]:
            continue
        message = (
            f"Circuit d'éclairage {command['site_id']} allumé ({watts:.0f} W) alors qu'il devrait être éteint"
            if lit
            else f"Circuit d'éclairage {command['site_id']} sans puissance ({watts:.0f} W) alors qu'il devrait être allumé"
        )
        findings[f"site:{command['site_id']}"] = Finding(
            message,
            {"site": command["site_id"], "commanded_on": command["is_on"], "power_w": watts,
             "switched_at": command["time"].isoformat(), "on_threshold_w": params.on_threshold_w},
        )  # fmt: skip
    return findings


async def low_battery(conn: Conn, rule: Rule, now: datetime, open_subjects: set[str]) -> dict[str, Finding]:
    params = LowBatteryParams(**rule.params)
    findings = {}
    for row in await _latest(conn, rule.tenant_id, ["battery_pct", "battery_v"]):
        subject = f"device:{row['device_id']}"
        is_open = subject in open_subjects
        if row["metric"] == "battery_pct" and params.pct is not None:
            limit, unit = params.pct + (params.hysteresis_pct if is_open else 0.0), "%"
        elif row["metric"] == "battery_v" and params.volts is not None:
            limit, unit = params.volts + (params.hysteresis_v if is_open else 0.0), "V"
        else:
            continue
        if row["value"] < limit:
            findings[subject] = Finding(
                f"Pile faible sur {row['device_id']} : {row['value']:g} {unit}",
                {"device": row["device_id"], "metric": row["metric"], "value": row["value"],
                 "observed_at": row["time"].isoformat()},
            )  # fmt: skip
    return findings


EVALUATORS: dict[str, Evaluator] = {
    "gateway_offline": gateway_offline,
    "device_silent": device_silent,
    "container_full": container_full,
    "lighting_fault": lighting_fault,
    "low_battery": low_battery,
}
