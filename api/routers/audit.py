"""The audit log of a tenant: every write and command, for its admins and technicians."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel

from api.deps import Principal, connection, requires
from api.inventory import store

router = APIRouter(tags=["Journal d'audit"])
Conn = Annotated[psycopg.AsyncConnection[Any], Depends(connection)]


class AuditEntry(BaseModel):
    id: int
    time: datetime
    subject: str
    action: str
    target: str
    tenant_id: str | None
    detail: dict[str, Any]


@router.get("/tenants/{tenant}/audit", response_model=list[AuditEntry], summary="Audit log, newest first")
async def audit_log(
    tenant: str,
    principal: Annotated[Principal, Depends(requires("read"))],
    conn: Conn,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[int | None, Query(description="id of the last entry of the previous page")] = None,
) -> list[store.Row]:
    await store.tenant_for(conn, principal, tenant)
    if principal.role not in ("admin", "technician"):
        raise HTTPException(403, f"the {principal.role} role cannot read the audit log")
    return await store.fetch(
        conn,
        "SELECT id, time, subject, action, target, tenant_id, detail FROM audit_log "
        "WHERE tenant_id = %s AND (%s::bigint IS NULL OR id < %s) ORDER BY id DESC LIMIT %s",
        (tenant, before, before, limit),
    )
