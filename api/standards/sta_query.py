"""Run SensorThings requests against the database and render the JSON documents."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from api.standards.odata_filter import FilterError, compile_filter
from api.standards.sta_entities import ENTITY_SETS, EntitySet, Row, Tenants
from api.standards.sta_options import OptionError, QueryOptions


@dataclass(frozen=True)
class Page:
    rows: list[Row]
    more: bool
    total: int | None


def entity_path(base_url: str, entity_set: EntitySet, key: str) -> str:
    # OData string keys are quoted, with quotes doubled; the rest is percent-encoded.
    quoted = quote(key.replace("'", "''"), safe=":-._~")
    return f"{base_url}/{entity_set.name}('{quoted}')"


def _where(
    entity_set: EntitySet, conditions: dict[str, object], options: QueryOptions
) -> tuple[sql.Composable, list[object]]:
    parts: list[sql.Composable] = [sql.SQL("TRUE")]
    params: list[object] = []
    for column, value in conditions.items():
        parts.append(sql.SQL("e.{} = %s").format(sql.Identifier(column)))
        params.append(value)
    if options.filter is not None:
        if entity_set.filter_columns is None:
            raise OptionError(f"$filter is supported on Observations only, not on {entity_set.name}")
        columns = {
            name: (sql.SQL("e.{}").format(sql.Identifier(column)), kind)
            for name, (column, kind) in entity_set.filter_columns.items()
        }
        try:
            clause, filter_params = compile_filter(options.filter, columns)
        except FilterError as exc:
            raise OptionError(f"invalid $filter: {exc}") from exc
        parts.append(clause)
        params.extend(filter_params)
    return sql.SQL(" AND ").join(parts), params


def _order(entity_set: EntitySet, options: QueryOptions) -> sql.Composable:
    terms: list[sql.Composable] = []
    for item in options.orderby:
        columns = entity_set.order.get(item.name)
        if columns is None:
            allowed = ", ".join(sorted(entity_set.order))
            raise OptionError(f"cannot order {entity_set.name} by {item.name!r}; allowed: {allowed}")
        direction = sql.SQL(" DESC" if item.descending else " ASC")
        terms.extend(sql.SQL("e.{}{}").format(sql.Identifier(c), direction) for c in columns)
    terms.extend(sql.SQL("e.{}").format(sql.Identifier(c)) for c in entity_set.key_columns)
    return sql.SQL(", ").join(terms)


async def fetch_page(
    conn: psycopg.AsyncConnection[Any],
    entity_set: EntitySet,
    tenants: Tenants,
    conditions: dict[str, object],
    options: QueryOptions,
) -> Page:
    base, base_params = entity_set.base(tenants)
    where, where_params = _where(entity_set, conditions, options)
    query = sql.SQL("SELECT * FROM ({}) AS e WHERE {} ORDER BY {} LIMIT %s OFFSET %s").format(
        base, where, _order(entity_set, options)
    )
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, [*base_params, *where_params, options.top + 1, options.skip])
        rows = await cur.fetchall()
        total = None
        if options.count:
            await cur.execute(
                sql.SQL("SELECT count(*) AS n FROM ({}) AS e WHERE {}").format(base, where),
                [*base_params, *where_params],
            )
            counted = await cur.fetchone()
            total = int(counted["n"]) if counted else 0
    return Page(rows[: options.top], len(rows) > options.top, total)


def _query_string(options: QueryOptions, skip: int) -> str:
    params: dict[str, str] = {"$top": str(options.top), "$skip": str(skip)}
    if options.filter_text:
        params["$filter"] = options.filter_text
    if options.orderby:
        params["$orderby"] = ",".join(
            f"{o.name} {'desc' if o.descending else 'asc'}" for o in options.orderby
        )
    if options.count:
        params["$count"] = "true"
    return urlencode(params, quote_via=quote)


class Renderer:
    """Renders entities (with their expansions) for one request."""

    def __init__(self, conn: psycopg.AsyncConnection[Any], tenants: Tenants, base_url: str) -> None:
        self.conn = conn
        self.tenants = tenants
        self.base_url = base_url

    async def entity(self, entity_set: EntitySet, row: Row, options: QueryOptions) -> dict[str, Any]:
        self_link = entity_path(self.base_url, entity_set, entity_set.format_key(row))
        document: dict[str, Any] = {"@iot.id": entity_set.format_key(row), "@iot.selfLink": self_link}
        document.update(entity_set.render(row))
        for name in entity_set.navigation:
            document[f"{name}@iot.navigationLink"] = f"{self_link}/{name}"
        for name, nested in options.expand.items():
            navigation = entity_set.navigation.get(name)
            if navigation is None:
                raise OptionError(
                    f"{entity_set.name} cannot expand {name!r}; allowed: {', '.join(entity_set.navigation)}"
                )
            target = ENTITY_SETS[navigation.target]
            page = await fetch_page(self.conn, target, self.tenants, navigation.conditions(row), nested)
            if navigation.single:
                document[name] = await self.entity(target, page.rows[0], nested) if page.rows else None
                continue
            document[name] = [await self.entity(target, r, nested) for r in page.rows]
            if page.total is not None:
                document[f"{name}@iot.count"] = page.total
            if page.more:
                document[f"{name}@iot.nextLink"] = (
                    f"{self_link}/{name}?{_query_string(nested, nested.skip + nested.top)}"
                )
        if options.select is not None:
            wanted = {"@iot.id" if s == "id" else s for s in options.select}
            wanted |= {
                f"{n}{suffix}" for n in options.expand for suffix in ("", "@iot.count", "@iot.nextLink")
            }
            document = {k: v for k, v in document.items() if k in wanted}
        return document

    async def collection(
        self, entity_set: EntitySet, page: Page, options: QueryOptions, next_link: Callable[[int], str]
    ) -> dict[str, Any]:
        document: dict[str, Any] = {}
        if page.total is not None:
            document["@iot.count"] = page.total
        document["value"] = [await self.entity(entity_set, row, options) for row in page.rows]
        if page.more:
            document["@iot.nextLink"] = next_link(options.skip + options.top)
        return document
