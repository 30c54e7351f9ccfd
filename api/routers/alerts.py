"""Alerts and alert rules per tenant (docs/alerts.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Query, Response
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, ValidationError

from api.alerting.engine import ensure_schema
from api.alerting.rules import PARAMS, RuleKind
from api.deps import Principal, audit, connection, requires

router = APIRouter(prefix="/alerts", tags=["Alerts"])
Conn = Annotated[psycopg.AsyncConnection[Any], Depends(connection)]
Reader = Annotated[Principal, Depends(requires("read"))]
Writer = Annotated[Principal, Depends(requires("write"))]


_EMAIL = r"^[^@\s<>,;\x00-\x1f]+@[^@\s<>,;\x00-\x1f]+\.[^@\s<>,;\x00-\x1f]+$"


class WebhookChannel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["webhook"]
    url: AnyHttpUrl


class EmailChannel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["email"]
    # A plain pattern: no extra dependency, and the SMTP server has the last word anyway.
    to: list[Annotated[str, Field(pattern=_EMAIL, max_length=254)]] = Field(min_length=1, max_length=20)


class RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tenant_id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    kind: RuleKind
    name: str = Field(default="", max_length=200, pattern=r"^[^\x00-\x1f]*$")
    params: dict[str, Any] = Field(default_factory=dict, description="See docs/alerts.md for each kind")
    channels: list[WebhookChannel | EmailChannel] = Field(default_factory=list, max_length=10)
    enabled: bool = True


class RuleOut(BaseModel):
    id: int
    tenant_id: str
    kind: str
    name: str
    params: dict[str, Any]
    channels: list[dict[str, Any]]
    enabled: bool
    created_by: str
    created_at: datetime


class AlertOut(BaseModel):
    id: int
    rule_id: int
    tenant_id: str
    kind: str
    subject: str
    state: str
    message: str
    details: dict[str, Any]
    opened_at: datetime
    resolved_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None


def _tenant_filter(principal: Principal) -> tuple[str, list[object]]:
    tenants = principal.readable_tenants()
    return ("TRUE", []) if tenants is None else ("tenant_id = ANY(%s)", [sorted(tenants)])


@router.get("", summary="Alerts of the tenants the caller can read, newest first")
async def list_alerts(
    principal: Reader,
    conn: Conn,
    state: Literal["open", "resolved", "all"] = "open",
    tenant: Annotated[str | None, Query(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AlertOut]:
    await ensure_schema(conn)
    clause, params = _tenant_filter(principal)
    query = f"SELECT * FROM alerts WHERE {clause}"
    if state != "all":
        query += " AND state = %s"
        params.append(state)
    if tenant is not None:
        query += " AND tenant_id = %s"
        params.append(tenant)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute((query + " ORDER BY opened_at DESC, id DESC LIMIT %s").encode(), [*params, limit])
        return [AlertOut(**row) for row in await cur.fetchall()]


@router.post("/{alert_id}/ack", summary="Acknowledge an alert (it stays open until its condition clears)")
async def acknowledge(alert_id: int, principal: Writer, conn: Conn) -> AlertOut:
    await ensure_schema(conn)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT tenant_id FROM alerts WHERE id = %s", [alert_id])
        row = await cur.fetchone()
        if row is None or not principal.can_read(row["tenant_id"]):
            raise HTTPException(404, f"alert {alert_id} not found")
        if not principal.can_write(row["tenant_id"]):
            raise HTTPException(403, "acknowledging needs write access to this tenant")
        await cur.execute(
            "UPDATE alerts SET acknowledged_at = %s, acknowledged_by = %s WHERE id = %s RETURNING *",
            [datetime.now(UTC), principal.subject, alert_id],
        )
        updated = await cur.fetchone()
    await audit(conn, principal, "alert.acknowledge", f"alert:{alert_id}", {"tenant": row["tenant_id"]})
    return AlertOut(**(updated or {}))


@router.get("/rules", summary="Alert rules of the tenants the caller can read")
async def list_rules(principal: Reader, conn: Conn) -> list[RuleOut]:
    await ensure_schema(conn)
    clause, params = _tenant_filter(principal)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT * FROM alert_rules WHERE {clause} ORDER BY id".encode(), params)
        return [RuleOut(**row) for row in await cur.fetchall()]


@router.post("/rules", status_code=201, summary="Create an alert rule")
async def create_rule(body: RuleIn, principal: Writer, conn: Conn) -> RuleOut:
    if not principal.can_read(body.tenant_id):
        raise HTTPException(404, f"tenant {body.tenant_id!r} not found")
    if not principal.can_write(body.tenant_id):
        raise HTTPException(403, "creating a rule needs write access to this tenant")
    try:
        params = PARAMS[body.kind](**body.params).model_dump(exclude_none=True)
    except ValidationError as exc:
        raise HTTPException(422, f"invalid params for {body.kind}: {exc.errors(include_url=False)}") from exc
    await ensure_schema(conn)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT 1 FROM tenants WHERE id = %s", [body.tenant_id])
        if await cur.fetchone() is None:
            raise HTTPException(404, f"tenant {body.tenant_id!r} not found")
        await cur.execute(
            "INSERT INTO alert_rules (tenant_id, kind, name, params, channels, enabled, created_by)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING *",
            [body.tenant_id, body.kind, body.name, Jsonb(params),
             Jsonb([c.model_dump(mode="json") for c in body.channels]), body.enabled, principal.subject],
        )  # fmt: skip
        row = await cur.fetchone()
    rule = RuleOut(**(row or {}))
    await audit(
        conn,
        principal,
        "alert_rule.create",
        f"alert_rule:{rule.id}",
        {"tenant": rule.tenant_id, "kind": rule.kind},
    )
    return rule


@router.delete("/rules/{rule_id}", status_code=204, summary="Delete an alert rule and its alerts")
async def delete_rule(rule_id: int, principal: Writer, conn: Conn) -> Response:
    await ensure_schema(conn)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT tenant_id, kind FROM alert_rules WHERE id = %s", [rule_id])
        row = await cur.fetchone()
        if row is None or not principal.can_read(row["tenant_id"]):
            raise HTTPException(404, f"alert rule {rule_id} not found")
        if not principal.can_write(row["tenant_id"]):
            raise HTTPException(403, "deleting a rule needs write access to this tenant")
        await cur.execute("DELETE FROM alert_rules WHERE id = %s", [rule_id])
    await audit(
        conn,
        principal,
        "alert_rule.delete",
        f"alert_rule:{rule_id}",
        {"tenant": row["tenant_id"], "kind": row["kind"]},
    )
    return Response(status_code=204)
