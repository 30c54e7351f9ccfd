"""Inventory: tenants (admins), sites, gateways and devices of a tenant, the metric catalogue.

Per-tenant rule: a tenant the caller cannot see answers 404 exactly like an
unknown one, for reads and writes alike. Every write is audited in its transaction.
"""

from __future__ import annotations

from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from psycopg import errors

from api.deps import Principal, audit, connection, requires
from api.inventory import crud, csv_import, store
from api.inventory.gateways import router as gateways_router
from api.inventory.models import (
    DeviceIn,
    DeviceOut,
    DevicePatch,
    ImportReport,
    MetricIn,
    MetricOut,
    SiteIn,
    SiteOut,
    SitePatch,
    TenantIn,
    TenantOut,
    TenantPatch,
)
from territoire_kernel import ids

router = APIRouter(tags=["Inventaire"])
Conn = Annotated[psycopg.AsyncConnection[Any], Depends(connection)]
Reader = Annotated[Principal, Depends(requires("read"))]
Writer = Annotated[Principal, Depends(requires("write"))]
Admin = Annotated[Principal, Depends(requires("admin"))]
CSV_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {"schema": {"type": "string", "description": "header row, then one row per item"}}
        },
    }
}


# --------------------------------------------------------------------------- tenants


@router.get("/tenants", response_model=list[TenantOut], summary="Tenants the caller can read")
async def list_tenants(principal: Reader, conn: Conn) -> list[store.Row]:
    readable = principal.readable_tenants()
    if readable is None:
        return await store.fetch(conn, "SELECT * FROM tenants ORDER BY id")
    return await store.fetch(
        conn, "SELECT * FROM tenants WHERE id = ANY(%s) ORDER BY id", (sorted(readable),)
    )


@router.get("/tenants/{tenant}", response_model=TenantOut)
async def get_tenant(tenant: str, principal: Reader, conn: Conn) -> store.Row:
    await store.tenant_for(conn, principal, tenant)
    row = await store.fetch_one(conn, "SELECT * FROM tenants WHERE id = %s", (tenant,))
    assert row is not None
    return row


@router.post("/tenants", response_model=TenantOut, status_code=201, summary="Create a tenant (admins)")
async def create_tenant(body: TenantIn, principal: Admin, conn: Conn) -> store.Row:
    try:
        row = await store.insert(conn, "tenants", body.model_dump())
    except store.FieldError as problem:
        raise problem.http() from None
    await audit(conn, principal, "tenant.create", f"tenant:{body.id}", {"tenant": body.id})
    return row


@router.patch("/tenants/{tenant}", response_model=TenantOut, summary="Rename or re-attach a tenant (admins)")
async def update_tenant(tenant: str, body: TenantPatch, principal: Admin, conn: Conn) -> store.Row:
    values = body.model_dump(exclude_unset=True)
    if values.get("parent_id") == tenant:
        raise HTTPException(422, "parent_id: a tenant cannot be its own parent")
    await store.tenant_for(conn, principal, tenant)
    row = await store.fetch_one(conn, "SELECT * FROM tenants WHERE id = %s", (tenant,))
    if values:
        sets = ", ".join(f"{column} = %s" for column in values)
        try:
            async with conn.transaction():
                row = await store.fetch_one(
                    conn, f"UPDATE tenants SET {sets} WHERE id = %s RETURNING *", [*values.values(), tenant]
                )
        except (errors.ForeignKeyViolation, errors.CheckViolation):
            raise HTTPException(422, "parent_id: no such tenant") from None
    await audit(
        conn, principal, "tenant.update", f"tenant:{tenant}", {"tenant": tenant, "fields": sorted(values)}
    )
    assert row is not None
    return row


@router.delete("/tenants/{tenant}", status_code=204, summary="Delete an empty tenant (admins)")
async def delete_tenant(tenant: str, principal: Admin, conn: Conn) -> Response:
    await store.tenant_for(conn, principal, tenant)
    try:
        async with conn.transaction():
            await conn.execute("DELETE FROM tenants WHERE id = %s", (tenant,))
    except errors.ForeignKeyViolation as exc:
        where = exc.diag.table_name or "other rows"
        raise HTTPException(409, f"tenant {tenant!r} still has {where}; delete them first") from None
    await audit(conn, principal, "tenant.delete", f"tenant:{tenant}", {"tenant": tenant})
    return Response(status_code=204)


# --------------------------------------------------------------------------- sites


@router.get("/tenants/{tenant}/sites", response_model=list[SiteOut])
async def list_sites(tenant: str, principal: Reader, conn: Conn) -> list[store.Row]:
    return await crud.listing(conn, principal, tenant, "sites")


@router.post("/tenants/{tenant}/sites/import", response_model=ImportReport, openapi_extra=CSV_BODY,
             summary="Bulk import sites from CSV; bad rows are reported, good rows kept")  # fmt: skip
async def import_sites(tenant: str, request: Request, principal: Writer, conn: Conn) -> ImportReport:
    return await crud.bulk_import(request, conn, principal, tenant, table="sites", spec=csv_import.SITES)


@router.get("/tenants/{tenant}/sites/{site}", response_model=SiteOut)
async def get_site(tenant: str, site: str, principal: Reader, conn: Conn) -> store.Row:
    return await crud.one(conn, principal, tenant, "sites", site)


@router.post("/tenants/{tenant}/sites", response_model=SiteOut, status_code=201)
async def create_site(tenant: str, body: SiteIn, principal: Writer, conn: Conn) -> store.Row:
    return await crud.create(conn, principal, tenant, "sites", body)


@router.patch("/tenants/{tenant}/sites/{site}", response_model=SiteOut)
async def update_site(tenant: str, site: str, body: SitePatch, principal: Writer, conn: Conn) -> store.Row:
    return await crud.update(conn, principal, tenant, "sites", key=site, body=body)


@router.delete("/tenants/{tenant}/sites/{site}", status_code=204)
async def delete_site(tenant: str, site: str, principal: Writer, conn: Conn) -> Response:
    await crud.delete(conn, principal, tenant, "sites", site)
    return Response(status_code=204)


# --------------------------------------------------------------------------- devices


@router.get("/tenants/{tenant}/devices", response_model=list[DeviceOut])
async def list_devices(tenant: str, principal: Reader, conn: Conn) -> list[store.Row]:
    return await crud.listing(conn, principal, tenant, "devices")


@router.post("/tenants/{tenant}/devices/import", response_model=ImportReport, openapi_extra=CSV_BODY,
             summary="Bulk import devices from CSV; bad rows are reported, good rows kept")  # fmt: skip
async def import_devices(tenant: str, request: Request, principal: Writer, conn: Conn) -> ImportReport:
    return await crud.bulk_import(request, conn, principal, tenant, table="devices", spec=csv_import.DEVICES)


@router.get("/tenants/{tenant}/devices/{device}", response_model=DeviceOut)
async def get_device(tenant: str, device: str, principal: Reader, conn: Conn) -> store.Row:
    return await crud.one(conn, principal, tenant, "devices", device)


@router.post("/tenants/{tenant}/devices", response_model=DeviceOut, status_code=201)
async def create_device(tenant: str, body: DeviceIn, principal: Writer, conn: Conn) -> store.Row:
    return await crud.create(conn, principal, tenant, "devices", body)


@router.patch("/tenants/{tenant}/devices/{device}", response_model=DeviceOut)
async def update_device(
    tenant: str, device: str, body: DevicePatch, principal: Writer, conn: Conn
) -> store.Row:
    return await crud.update(conn, principal, tenant, "devices", key=device, body=body)


@router.delete("/tenants/{tenant}/devices/{device}", status_code=204)
async def delete_device(tenant: str, device: str, principal: Writer, conn: Conn) -> Response:
    await crud.delete(conn, principal, tenant, "devices", device)
    return Response(status_code=204)


# --------------------------------------------------------------------------- metric catalogue


@router.get("/metrics", response_model=list[MetricOut], summary="Metric catalogue, with personal-data tags")
async def list_metrics(_: Reader, conn: Conn) -> list[store.Row]:
    return await store.fetch(conn, "SELECT name, unit, description, personal_data FROM metrics ORDER BY name")


@router.put("/metrics/{name}", response_model=MetricOut, summary="Declare or change a metric (admins)")
async def put_metric(name: str, body: MetricIn, principal: Admin, conn: Conn) -> store.Row:
    try:
        checked = ids.metric_name(name)
    except ValueError as exc:
        raise HTTPException(422, f"name: {exc}") from None
    row = await store.fetch_one(
        conn,
        "INSERT INTO metrics (name, unit, description, personal_data) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (name) DO UPDATE SET unit = EXCLUDED.unit, description = EXCLUDED.description, "
        "personal_data = EXCLUDED.personal_data RETURNING name, unit, description, personal_data",
        (checked, body.unit, body.description, body.personal_data),
    )
    await audit(conn, principal, "metric.put", f"metric:{checked}", body.model_dump())
    assert row is not None
    return row


router.include_router(gateways_router)
