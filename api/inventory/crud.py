"""The five operations shared by sites and devices, with tenant checks and audit."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Request
from pydantic import BaseModel

from api.deps import Principal, audit
from api.inventory import csv_import, store
from api.inventory.models import ImportReport, RowError
from api.inventory.store import Conn, FieldError, Row


async def listing(conn: Conn, principal: Principal, tenant: str, table: str) -> list[Row]:
    await store.tenant_for(conn, principal, tenant)
    return await store.fetch(conn, f"SELECT * FROM {table} WHERE tenant_id = %s ORDER BY id", (tenant,))


async def one(conn: Conn, principal: Principal, tenant: str, table: str, key: str) -> Row:
    await store.tenant_for(conn, principal, tenant)
    row = await store.fetch_one(
        conn, f"SELECT * FROM {table} WHERE tenant_id = %s AND id = %s", (tenant, key)
    )
    if row is None:
        raise HTTPException(404, f"no {table[:-1]} {key!r} in tenant {tenant!r}")
    return row


async def _create_checked(conn: Conn, tenant: str, table: str, body: BaseModel) -> Row:
    values = {**body.model_dump(), "tenant_id": tenant}
    await store.check_references(conn, tenant, values)
    return await store.insert(conn, table, values)


async def create(conn: Conn, principal: Principal, tenant: str, table: str, body: BaseModel) -> Row:
    await store.tenant_for(conn, principal, tenant, write=True)
    try:
        row = await _create_checked(conn, tenant, table, body)
    except FieldError as problem:
        raise problem.http() from None
    await audit(conn, principal, f"{table[:-1]}.create", f"{table[:-1]}:{row['id']}", {"tenant": tenant})
    return row


async def update(
    conn: Conn, principal: Principal, tenant: str, table: str, *, key: str, body: BaseModel
) -> Row:
    await store.tenant_for(conn, principal, tenant, write=True)
    values = body.model_dump(exclude_unset=True)
    try:
        await store.check_references(conn, tenant, values)
        row = await store.update(conn, table, tenant, key, values)
    except FieldError as problem:
        raise problem.http() from None
    if row is None:
        raise HTTPException(404, f"no {table[:-1]} {key!r} in tenant {tenant!r}")
    changed = sorted(values)
    await audit(
        conn, principal, f"{table[:-1]}.update", f"{table[:-1]}:{key}", {"tenant": tenant, "fields": changed}
    )
    return row


async def delete(conn: Conn, principal: Principal, tenant: str, table: str, key: str) -> None:
    await store.tenant_for(conn, principal, tenant, write=True)
    try:
        found = await store.delete(conn, table, tenant, key)
    except FieldError as problem:
        raise problem.http() from None
    if not found:
        raise HTTPException(404, f"no {table[:-1]} {key!r} in tenant {tenant!r}")
    await audit(conn, principal, f"{table[:-1]}.delete", f"{table[:-1]}:{key}", {"tenant": tenant})


CSV_TYPES = ("text/csv", "text/plain", "application/csv")


async def bulk_import(
    request: Request, conn: Conn, principal: Principal, tenant: str, *, table: str, spec: csv_import.Spec
) -> ImportReport:
    await store.tenant_for(conn, principal, tenant, write=True)
    content_type = request.headers.get("content-type", "text/csv").split(";")[0].strip().lower()
    if content_type not in CSV_TYPES:
        raise HTTPException(415, f"send the CSV file as text/csv, not {content_type}")
    created: list[str] = []
    errors: list[RowError] = []
    for number, cells in csv_import.rows(await request.body(), spec):
        checked = csv_import.validate(number, cells, spec)
        if isinstance(checked, list):
            errors.extend(checked)
            continue
        try:
            row = await _create_checked(conn, tenant, table, checked)
        except FieldError as problem:
            errors.append(RowError(row=number, field=problem.field, message=problem.message))
            continue
        created.append(row["id"])
    detail: dict[str, Any] = {"tenant": tenant, "created": created, "rejected_rows": len(errors)}
    await audit(conn, principal, f"{table[:-1]}.import", f"{table}:{tenant}", detail)
    return ImportReport(created=created, errors=errors)
