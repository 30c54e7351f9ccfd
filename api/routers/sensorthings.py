"""OGC SensorThings API v1.1, read-only subset, under /sta/v1.1 (docs/standards.md)."""

from __future__ import annotations

import re
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Request

from api.deps import Principal, connection, requires
from api.standards.sta_entities import ENTITY_SETS, EntitySet, Row, UnknownKeyError
from api.standards.sta_options import OptionError, QueryOptions, parse_options
from api.standards.sta_query import Renderer, fetch_page

PREFIX = "/sta/v1.1"
router = APIRouter(prefix=PREFIX, tags=["SensorThings"])

_SEGMENT = re.compile(r"^(?P<set>[A-Za-z]+)(?:\((?P<key>.+)\))?$")
Conn = Annotated[psycopg.AsyncConnection[Any], Depends(connection)]
Reader = Annotated[Principal, Depends(requires("read"))]
OPTIONS_DOC = (
    "Query options: $top, $skip, $count, $orderby, $filter (Observations: phenomenonTime, resultTime, result"
    " with eq ne gt ge lt le, and, or, not), $expand, $select."
)


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/") + PREFIX


def _options(request: Request) -> QueryOptions:
    try:
        return parse_options(dict(request.query_params))
    except OptionError as exc:
        raise HTTPException(400, str(exc)) from exc


def _not_found(what: str) -> HTTPException:
    return HTTPException(404, f"{what} not found")


def _segment(text: str) -> tuple[EntitySet, str | None]:
    match = _SEGMENT.match(text)
    entity_set = ENTITY_SETS.get(match.group("set")) if match else None
    if match is None or entity_set is None:
        raise _not_found(f"resource {text!r}")
    key = match.group("key")
    if key is not None and "\x00" in key:
        raise _not_found(f"resource {text!r}")  # PostgreSQL text cannot hold NUL: no such entity
    if key is not None and len(key) >= 2 and key[0] == key[-1] == "'":
        key = key[1:-1].replace("''", "'")
    return entity_set, key


async def _one(
    conn: psycopg.AsyncConnection[Any], principal: Principal, entity_set: EntitySet, key: str
) -> Row:
    try:
        conditions = entity_set.parse_key(key)
    except UnknownKeyError as exc:
        raise _not_found(f"{entity_set.name}({key!r})") from exc
    page = await fetch_page(conn, entity_set, principal.readable_tenants(), conditions, QueryOptions(top=1))
    if not page.rows:
        raise _not_found(f"{entity_set.name}({key!r})")
    return page.rows[0]


async def _run(
    request: Request, conn: psycopg.AsyncConnection[Any], principal: Principal,
    entity_set: EntitySet, conditions: dict[str, object], *, single: bool,
) -> dict[str, Any]:  # fmt: skip
    options = _options(request)
    renderer = Renderer(conn, principal.readable_tenants(), _base_url(request))
    try:
        if single:
            page = await fetch_page(
                conn, entity_set, principal.readable_tenants(), conditions, QueryOptions(top=1)
            )
            if not page.rows:
                raise _not_found(f"{entity_set.name} matching {request.url.path!r}")
            return await renderer.entity(entity_set, page.rows[0], options)
        page = await fetch_page(conn, entity_set, principal.readable_tenants(), conditions, options)

        def next_link(skip: int) -> str:
            return str(request.url.include_query_params(**{"$skip": skip, "$top": options.top}))

        return await renderer.collection(entity_set, page, options, next_link)
    except OptionError as exc:
        raise HTTPException(400, str(exc)) from exc


@router.get("", summary="SensorThings service root")
async def service_root(request: Request, principal: Reader) -> dict[str, Any]:
    base = _base_url(request)
    return {
        "value": [{"name": name, "url": f"{base}/{name}"} for name in ENTITY_SETS],
        "serverSettings": {
            "conformance": [
                "http://www.opengis.net/spec/iot_sensing/1.1/req/datamodel",
                "http://www.opengis.net/spec/iot_sensing/1.1/req/request-data",
            ]
        },
    }


@router.get(
    "/{segment}", summary="A SensorThings collection, or one entity as Set('id')", description=OPTIONS_DOC
)
async def collection_or_entity(
    request: Request, segment: str, principal: Reader, conn: Conn
) -> dict[str, Any]:
    entity_set, key = _segment(segment)
    if key is None:
        return await _run(request, conn, principal, entity_set, {}, single=False)
    try:
        conditions = entity_set.parse_key(key)
    except UnknownKeyError as exc:
        raise _not_found(f"{entity_set.name}({key!r})") from exc
    return await _run(request, conn, principal, entity_set, conditions, single=True)


@router.get("/{segment}/{navigation}", summary="Entities related to one entity", description=OPTIONS_DOC)
async def navigate(
    request: Request, segment: str, navigation: str, principal: Reader, conn: Conn
) -> dict[str, Any]:
    entity_set, key = _segment(segment)
    link = entity_set.navigation.get(navigation)
    if key is None or link is None:
        raise _not_found(f"{segment}/{navigation}")
    parent = await _one(conn, principal, entity_set, key)
    return await _run(
        request, conn, principal, ENTITY_SETS[link.target], link.conditions(parent), single=link.single
    )
