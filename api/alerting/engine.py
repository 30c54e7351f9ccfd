"""The alert engine: evaluate every enabled rule, open and resolve alerts, queue notifications.

`evaluate(conn, now)` runs in the caller's transaction: alert changes and
their notifications (an outbox) commit together, and `delivery.deliver_pending`
sends them afterwards, so a crash never loses or doubles a notification.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from api.alerting.rules import EVALUATORS, Finding, Rule

log = logging.getLogger("territoire.api.alerts")
_SCHEMA_LOCK = 0x616C657274  # "alert": serialises concurrent schema creation
_ensured: set[tuple[str, str, str]] = set()


@dataclass(frozen=True)
class AlertChange:
    alert_id: int
    rule_id: int
    tenant_id: str
    kind: str
    subject: str
    change: Literal["opened", "resolved"]
    message: str
    details: dict[str, Any]
    at: datetime


async def ensure_schema(conn: psycopg.AsyncConnection[Any]) -> None:
    """Create the alert tables if missing (idempotent; once per database per process)."""
    key = (conn.info.host, str(conn.info.port), conn.info.dbname)
    if key in _ensured:
        return
    ddl = resources.files("api.alerting").joinpath("schema.sql").read_text(encoding="utf-8")
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", [_SCHEMA_LOCK])
        await conn.execute(ddl.encode())  # our own file, several statements, no parameters
    _ensured.add(key)


def _targets(channels: list[dict[str, Any]]) -> list[tuple[str, str]]:
    targets = []
    for channel in channels:
        if channel.get("type") == "webhook" and channel.get("url"):
            targets.append(("webhook", str(channel["url"])))
        elif channel.get("type") == "email":
            recipients = channel.get("to") or []
            for address in [recipients] if isinstance(recipients, str) else recipients:
                targets.append(("email", str(address)))
    return targets


async def _queue(
    conn: psycopg.AsyncConnection[Any], alert_id: int, event: str, rule: Rule, now: datetime
) -> None:
    for channel, target in _targets(rule.channels):
        await conn.execute(
            "INSERT INTO alert_notifications (alert_id, event, channel, target, next_attempt_at)"
            " VALUES (%s, %s, %s, %s, %s)",
            [alert_id, event, channel, target, now],
        )


async def _open(
    conn: psycopg.AsyncConnection[Any], rule: Rule, subject: str, finding: Finding, now: datetime
) -> AlertChange | None:
    cur = await conn.execute(
        "INSERT INTO alerts (rule_id, tenant_id, kind, subject, state, message, details, opened_at)"
        " VALUES (%s, %s, %s, %s, 'open', %s, %s, %s)"
        " ON CONFLICT (rule_id, subject) WHERE state = 'open' DO NOTHING RETURNING id",
        [rule.id, rule.tenant_id, rule.kind, subject, finding.message, Jsonb(finding.details), now],
    )
    row = await cur.fetchone()
    if row is None:
        return None  # another evaluator opened it first
    await _queue(conn, row[0], "opened", rule, now)
    return AlertChange(
        row[0], rule.id, rule.tenant_id, rule.kind, subject, "opened", finding.message, finding.details, now
    )


async def _resolve(
    conn: psycopg.AsyncConnection[Any], rule: Rule, alert: dict[str, Any], now: datetime
) -> AlertChange | None:
    cur = await conn.execute(
        "UPDATE alerts SET state = 'resolved', resolved_at = %s WHERE id = %s AND state = 'open' RETURNING id",
        [now, alert["id"]],
    )
    if await cur.fetchone() is None:
        return None
    await _queue(conn, alert["id"], "resolved", rule, now)
    return AlertChange(
        alert["id"], rule.id, rule.tenant_id, rule.kind, alert["subject"], "resolved", alert["message"],
        alert["details"], now,
    )  # fmt: skip


async def _evaluate_rule(conn: psycopg.AsyncConnection[Any], rule: Rule, now: datetime) -> list[AlertChange]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT id, subject, message, details FROM alerts WHERE rule_id = %s AND state = 'open'",
            [rule.id],
        )
        open_alerts = {row["subject"]: row for row in await cur.fetchall()}
    findings = await EVALUATORS[rule.kind](conn, rule, now, set(open_alerts))
    changes = []
    for subject in sorted(set(findings) - set(open_alerts)):
        opened = await _open(conn, rule, subject, findings[subject], now)
        if opened is not None:
            changes.append(opened)
    for subject in sorted(set(open_alerts) - set(findings)):
        resolved = await _resolve(conn, rule, open_alerts[subject], now)
        if resolved is not None:
            changes.append(resolved)
    return changes


async def evaluate(conn: psycopg.AsyncConnection[Any], now: datetime) -> list[AlertChange]:
    """Evaluate every enabled rule at `now`; returns the alerts opened and resolved."""
    await ensure_schema(conn)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT id, tenant_id, kind, params, channels FROM alert_rules WHERE enabled ORDER BY id"
        )
        rules = [Rule(**row) for row in await cur.fetchall()]
    changes: list[AlertChange] = []
    for rule in rules:
        try:
            async with conn.transaction():  # a savepoint: one failing rule does not sink the others
                changes.extend(await _evaluate_rule(conn, rule, now))
        except (psycopg.Error, ValueError):
            log.exception("alert rule %s (%s) could not be evaluated", rule.id, rule.kind)
    return changes
