"""FIWARE Smart Data Models as NGSI-LD entities (read-only), under /ngsi-ld/v1 (docs/standards.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import JSONResponse
from psycopg import sql
from psycopg.rows import dict_row

from api.deps import Principal, connection, requires
from api.standards.ngsi_query import QueryError, parse_q
from api.standards.smart_data_models import METRICS, TYPES, Device, Latest, Site, build_entities, parse_urn

router = APIRouter(prefix="/ngsi-ld/v1", tags=["NGSI-LD"])
Conn = Annotated[psycopg.AsyncConnection[Any], Depends(connection)]
Reader = Annotated[Principal, Depends(requires("read"))]
SITE_KINDS = ["lighting_cabinet", "waste_point", "parking_zone"]


class LDJSONResponse(JSONResponse):
    media_type = "application/ld+json"


def _tenant_clause(column: str, tenants: frozenset[str] | None) -> tuple[sql.Composable, list[object]]:
    if tenants is None:
        return sql.SQL("TRUE"), []
    return sql.SQL("{} = ANY(%s)").format(sql.SQL(column)), [sorted(tenants)]


async def load_entities(
    conn: psycopg.AsyncConnection[Any], tenants: frozenset[str] | None
) -> list[dict[str, Any]]:
    """All Smart Data Models entities of `tenants` (None: every tenant)."""
    site_clause, site_params = _tenant_clause("s.tenant_id", tenants)
    device_clause, device_params = _tenant_clause("d.tenant_id", tenants)
    relevant = sql.SQL(
        "{} AND (d.attrs ? 'smart_data_model' OR d.site_id IN (SELECT id FROM sites WHERE kind = ANY(%s)))"
    ).format(device_clause)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            sql.SQL("SELECT id, tenant_id, name, kind, location, attrs FROM sites s WHERE {}").format(
                site_clause
            ),
            site_params,
        )
        sites = [Site(**row) for row in await cur.fetchall()]
        await cur.execute(
            sql.SQL(
                "SELECT d.id, d.tenant_id, d.site_id, d.model, d.expected_interval_s, d.attrs FROM devices d WHERE {}"
            ).format(relevant),
            [*device_params, SITE_KINDS],
        )
        device_rows = await cur.fetchall()
        # Latest value of each interesting metric: one index probe per device and metric.
        await cur.execute(
            sql.SQL(
                "SELECT d.id AS device_id, m.metric, l.value, l.time, l.quality FROM devices d"
                " CROSS JOIN unnest(%s::text[]) AS m(metric)"
                " CROSS JOIN LATERAL (SELECT r.value, r.time, r.quality FROM readings r"
                "   WHERE r.device_id = d.id AND r.metric = m.metric ORDER BY r.time DESC LIMIT 1) l WHERE {}"
            ).format(relevant),
            [list(METRICS), *device_params, SITE_KINDS],
        )
        latest: dict[str, dict[str, Latest]] = {}
        for row in await cur.fetchall():
            latest.setdefault(row["device_id"], {})[row["metric"]] = Latest(
                row["value"], row["time"], row["quality"]
            )
    devices = [Device(**row, latest=latest.get(row["id"], {})) for row in device_rows]
    return build_entities(sites, devices, datetime.now(UTC))


@router.get(
    "/entities",
    response_class=LDJSONResponse,
    summary="Smart Data Models entities (Streetlight, StreetlightControlCabinet, WasteContainer, ParkingSpot, OnStreetParking)",
)
async def list_entities(
    *,
    principal: Reader,
    conn: Conn,
    type: Annotated[str | None, Query(description="Entity type(s), comma-separated")] = None,
    q: Annotated[
        str | None, Query(description="attr op value terms joined by ';' (op: == != > >= < <=)")
    ] = None,
    limit: Annotated[int, Query(ge=0, le=1000)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
    count: bool = False,
) -> LDJSONResponse:
    wanted = set(type.split(",")) if type else set(TYPES)
    unknown = wanted - set(TYPES)
    if unknown:
        raise HTTPException(400, f"unsupported entity type(s) {sorted(unknown)}; served: {', '.join(TYPES)}")
    try:
        predicate = parse_q(q) if q else None
    except QueryError as exc:
        raise HTTPException(400, str(exc)) from exc
    entities = [
        e for e in await load_entities(conn, principal.readable_tenants())
        if e["type"] in wanted and (predicate is None or predicate(e))
    ]  # fmt: skip
    headers = {"NGSILD-Results-Count": str(len(entities))} if count else None
    return LDJSONResponse(entities[offset : offset + limit], headers=headers)


@router.get("/entities/{entity_id}", response_class=LDJSONResponse, summary="One Smart Data Models entity")
async def get_entity(entity_id: str, principal: Reader, conn: Conn) -> LDJSONResponse:
    parsed = parse_urn(entity_id)
    if parsed is None or parsed[0] not in TYPES or "\x00" in entity_id or not principal.can_read(parsed[1]):
        raise HTTPException(404, f"entity {entity_id!r} not found")
    for entity in await load_entities(conn, frozenset({parsed[1]})):
        if entity["id"] == entity_id:
            return LDJSONResponse(entity)
    raise HTTPException(404, f"entity {entity_id!r} not found")
