"""SQL of the inventory, with per-tenant checks and errors that name the field at fault."""

from __future__ import annotations

from typing import Any

import psycopg
from fastapi import HTTPException
from psycopg import errors, sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from api.deps import Principal

Conn = psycopg.AsyncConnection[Any]
Row = dict[str, Any]
# Tables a tenant's inventory row may reference, by column.
REFERENCES = {"site_id": ("sites", "site"), "gateway_id": ("gateways", "gateway")}


class FieldError(Exception):
    """A write refused because of one field; imports report it per row, routes as a problem."""

    def __init__(self, status: int, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.status, self.field, self.message = status, field, message

    def http(self) -> HTTPException:
        return HTTPException(self.status, {"detail": f"{self.field}: {self.message}", "field": self.field})


async def fetch(conn: Conn, query: str | sql.Composed, params: Any = ()) -> list[Row]:
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(query, params)
        return await cursor.fetchall()


async def fetch_one(conn: Conn, query: str | sql.Composed, params: Any = ()) -> Row | None:
    found = await fetch(conn, query, params)
    return found[0] if found else None


async def tenant_for(conn: Conn, principal: Principal, tenant: str, *, write: bool = False) -> None:
    """404 when the tenant is unknown or out of the caller's reach: never reveal which."""
    allowed = principal.can_write(tenant) if write else principal.can_read(tenant)
    if (
        not allowed
        or await fetch_one(conn, "SELECT 1 AS found FROM tenants WHERE id = %s", (tenant,)) is None
    ):
        raise HTTPException(404, f"no tenant {tenant!r}")


async def check_references(conn: Conn, tenant: str, values: Row) -> None:
    """A site or gateway of another tenant is as unknown as a missing one."""
    for column, (table, what) in REFERENCES.items():
        ref = values.get(column)
        if ref is None:
            continue
        row = await fetch_one(
            conn, sql.SQL("SELECT tenant_id FROM {} WHERE id = %s").format(sql.Identifier(table)), (ref,)
        )
        if row is None or row["tenant_id"] != tenant:
            raise FieldError(422, column, f"no {what} {ref!r} in tenant {tenant!r}")


def _adapt(value: Any) -> Any:
    return Jsonb(value) if isinstance(value, dict | list) else value


async def insert(conn: Conn, table: str, values: Row) -> Row:
    columns = list(values)
    query = sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING *").format(
        sql.Identifier(table),
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL(", ").join(sql.Placeholder() * len(columns)),
    )
    try:
        async with conn.transaction():  # a savepoint: a refused row leaves the others intact
            row = await fetch_one(conn, query, [_adapt(values[c]) for c in columns])
    except errors.UniqueViolation:
        # Ids are global (ingest and MQTT topics know devices and gateways by id alone): the
        # answer must not tell whether the id is taken here or in another tenant, nor by whom.
        raise FieldError(409, "id", f"{values['id']!r} is not available; choose another id") from None
    except (errors.ForeignKeyViolation, errors.CheckViolation) as exc:
        raise FieldError(422, _column_of(exc), "refused by the database constraints") from None
    assert row is not None
    return row


async def update(conn: Conn, table: str, tenant: str, key: str, values: Row) -> Row | None:
    if not values:
        return await fetch_one(
            conn,
            sql.SQL("SELECT * FROM {} WHERE id = %s AND tenant_id = %s").format(sql.Identifier(table)),
            (key, tenant),
        )
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(c), sql.Placeholder()) for c in values
    )
    query = sql.SQL("UPDATE {} SET {} WHERE id = %s AND tenant_id = %s RETURNING *").format(
        sql.Identifier(table), assignments
    )
    try:
        async with conn.transaction():
            return await fetch_one(conn, query, [*(_adapt(v) for v in values.values()), key, tenant])
    except (errors.ForeignKeyViolation, errors.CheckViolation) as exc:
        raise FieldError(422, _column_of(exc), "refused by the database constraints") from None


async def delete(conn: Conn, table: str, tenant: str, key: str) -> bool:
    query = sql.SQL("DELETE FROM {} WHERE id = %s AND tenant_id = %s").format(sql.Identifier(table))
    try:
        async with conn.transaction():
            cursor = await conn.execute(query, (key, tenant))
    except errors.ForeignKeyViolation as exc:
        detail = exc.diag.table_name or "other rows"
        raise FieldError(
            409, "id", f"{key!r} is still referenced by {detail}; delete or move those first"
        ) from None
    return cursor.rowcount > 0


def _column_of(exc: psycopg.Error) -> str:
    constraint = exc.diag.constraint_name or ""
    for column in ("site_id", "gateway_id", "parent_id", "kind"):
        if column in constraint:
            return column
    return constraint or "body"
