"""Commands to a device through its gateway: created, rate-limited, published, tracked, audited.

Lifecycle (status): pending (stored and acknowledged by the broker) → done,
failed or rejected (the gateway's result, via ingest's command_results), or
expired (the gateway said so, or no result arrived by expires + RESULT_GRACE_S).
A command the broker would not take is failed at once and answered 503.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field

from api import problems
from api.command_bus import Broker, PublishError, publish
from api.deps import Principal, audit, connection, requires
from api.inventory import store
from api.settings import Settings
from territoire_kernel.errors import ValidationError
from territoire_kernel.ids import new_command_id
from territoire_kernel.messages import Command
from territoire_kernel.records import to_time_us
from territoire_kernel.topics import TopicKind, topic
from territoire_kernel.wire import encode

router = APIRouter(prefix="/tenants/{tenant}/devices/{device}/commands", tags=["Commandes"])
Conn = Annotated[psycopg.AsyncConnection[Any], Depends(connection)]
Reader = Annotated[Principal, Depends(requires("read"))]
Commander = Annotated[Principal, Depends(requires("command"))]
Status = Literal["pending", "done", "failed", "rejected", "expired"]
RESULT_GRACE_S = 30
WINDOW_S = 60

_SELECT = f"""
SELECT c.id, c.tenant_id, c.device_id, c.gateway_id, c.action, c.params, c.subject, c.issued_at, c.expires_at,
       c.published_at, r.time AS result_time,
       CASE WHEN r.status IS NOT NULL THEN r.status
            WHEN c.publish_error IS NOT NULL THEN 'failed'
            WHEN now() > c.expires_at + interval '{RESULT_GRACE_S} seconds' THEN 'expired'
            ELSE 'pending' END AS status,
       COALESCE(r.detail, c.publish_error, '') AS detail
FROM commands c LEFT JOIN command_results r ON r.command_id = c.id AND r.gateway_id = c.gateway_id
"""


async def audit_expired(conn: store.Conn) -> int:
    """Audits, once each, the commands that expired without a result from their gateway (results
    themselves are audited by the database as ingest stores them). Run by the background loop."""
    cursor = await conn.execute(
        f"""
        WITH expired AS (
            UPDATE commands c SET expiry_audited = true
            WHERE NOT c.expiry_audited AND c.publish_error IS NULL
              AND c.expires_at < now() - interval '{RESULT_GRACE_S} seconds'
              AND NOT EXISTS (SELECT 1 FROM command_results r WHERE r.command_id = c.id AND r.gateway_id = c.gateway_id)
            RETURNING c.id, c.tenant_id, c.device_id, c.gateway_id, c.expires_at
        )
        INSERT INTO audit_log (subject, action, target, tenant_id, detail)
        SELECT 'territoire-api', 'command.expired', 'command:' || id, tenant_id,
               jsonb_build_object('tenant', tenant_id, 'device', device_id, 'gateway', gateway_id,
                                  'expires', expires_at)
        FROM expired
        """
    )
    return cursor.rowcount


class CommandIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$", examples=["switch"])]
    params: Annotated[dict[str, str | int | float | bool], Field(max_length=64)] = Field(
        default_factory=dict, examples=[{"circuit": 1, "on": True, "duration_s": 360}]
    )
    ttl_s: Annotated[int, Field(ge=5, le=86_400, description="the gateway refuses it after this delay")] = 60


class CommandOut(BaseModel):
    id: str
    tenant_id: str
    device_id: str
    gateway_id: str
    action: str
    params: dict[str, Any]
    subject: str
    issued_at: datetime
    expires_at: datetime
    published_at: datetime | None
    status: Status
    detail: str
    result_time: datetime | None


async def _device_gateway(conn: store.Conn, principal: Principal, tenant: str, device: str) -> str | None:
    await store.tenant_for(conn, principal, tenant)
    row = await store.fetch_one(
        conn, "SELECT gateway_id FROM devices WHERE id = %s AND tenant_id = %s", (device, tenant)
    )
    if row is None:
        raise HTTPException(404, f"no device {device!r} in tenant {tenant!r}")
    gateway: str | None = row["gateway_id"]
    return gateway


async def _retry_after(conn: store.Conn, tenant: str, limit: int) -> int | None:
    """Seconds until a slot frees in the tenant's one-minute window, None when one is free."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('territoire-commands:' || %s))", (tenant,))
    row = await store.fetch_one(
        conn,
        "SELECT count(*) AS n, min(issued_at) AS oldest FROM commands "
        "WHERE tenant_id = %s AND issued_at > now() - make_interval(secs => %s)",
        (tenant, WINDOW_S),
    )
    assert row is not None
    if row["n"] < limit:
        return None
    waited = (datetime.now(UTC) - row["oldest"]).total_seconds()
    return max(1, math.ceil(WINDOW_S - float(waited)))


@router.post("", status_code=201, response_model=CommandOut, summary="Send a command to a device")
async def create_command(
    *, tenant: str, device: str, body: CommandIn, request: Request, principal: Commander, conn: Conn
) -> Any:
    if not principal.can_command(tenant):
        raise HTTPException(404, f"no tenant {tenant!r}")
    gateway = await _device_gateway(conn, principal, tenant, device)
    if gateway is None:
        raise HTTPException(409, f"device {device!r} has no gateway to carry the command")
    settings: Settings = request.app.state.settings
    retry = await _retry_after(conn, tenant, settings.command_rate_per_minute)
    if retry is not None:
        await audit(
            conn,
            principal,
            "command.rate_limited",
            f"device:{device}",
            {"tenant": tenant, "action": body.action},
        )
        limit = settings.command_rate_per_minute
        return problems.problem(
            429, f"tenant {tenant!r} may send {limit} commands per minute; retry in {retry} s",
            headers={"Retry-After": str(retry)},
        )  # fmt: skip
    issued = datetime.now(UTC)
    expires = issued + timedelta(seconds=body.ttl_s)
    try:
        command = Command(
            new_command_id(), device, body.action, to_time_us(issued), to_time_us(expires), body.params
        )
    except ValidationError as exc:
        raise HTTPException(422, str(exc)) from None
    await conn.execute(
        "INSERT INTO commands (id, tenant_id, device_id, gateway_id, action, params, subject, issued_at, expires_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            command.command_id,
            tenant,
            device,
            gateway,
            body.action,
            Jsonb(body.params),
            principal.subject,
            issued,
            expires,
        ),
    )
    detail = {
        "tenant": tenant,
        "device": device,
        "gateway": gateway,
        "action": body.action,
        "params": body.params,
    }
    await audit(
        conn, principal, "command.create", f"command:{command.command_id}", {**detail, "ttl_s": body.ttl_s}
    )
    broker = Broker(settings.mqtt_host, settings.mqtt_port, settings.mqtt_username, settings.mqtt_password)
    try:
        await publish(broker, topic(tenant, gateway, TopicKind.COMMAND), encode(command))
    except PublishError as exc:
        await conn.execute(
            "UPDATE commands SET publish_error = %s WHERE id = %s", (str(exc), command.command_id)
        )
        await audit(
            conn,
            principal,
            "command.failed",
            f"command:{command.command_id}",
            {"tenant": tenant, "error": str(exc)},
        )
        # Answered, not raised: the failed command and its audit rows are committed.
        return problems.problem(503, f"the command could not be sent: {exc}", command_id=command.command_id)
    await conn.execute("UPDATE commands SET published_at = now() WHERE id = %s", (command.command_id,))
    row = await store.fetch_one(conn, _SELECT + " WHERE c.id = %s", (command.command_id,))
    return JSONResponse(CommandOut.model_validate(row).model_dump(mode="json"), status_code=201)


@router.get("", response_model=list[CommandOut], summary="Commands of a device, newest first")
async def list_commands(
    tenant: str,
    device: str,
    principal: Reader,
    conn: Conn,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[store.Row]:
    await _device_gateway(conn, principal, tenant, device)
    return await store.fetch(
        conn,
        _SELECT + " WHERE c.tenant_id = %s AND c.device_id = %s ORDER BY c.issued_at DESC LIMIT %s",
        (tenant, device, limit),
    )


@router.get("/{command_id}", response_model=CommandOut, summary="One command and its result")
async def get_command(tenant: str, device: str, command_id: str, principal: Reader, conn: Conn) -> store.Row:
    await _device_gateway(conn, principal, tenant, device)
    row = await store.fetch_one(
        conn,
        _SELECT + " WHERE c.tenant_id = %s AND c.device_id = %s AND c.id = %s",
        (tenant, device, command_id),
    )
    if row is None:
        raise HTTPException(404, f"no command {command_id!r} for device {device!r}")
    return row
