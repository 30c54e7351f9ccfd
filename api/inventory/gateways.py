"""Gateways of a tenant: registry, live state, and their MQTT credentials.

Registering a gateway (or rotating its credentials) draws a random password,
returns it once, and when `broker_acl_dir` is set writes the broker's password
file and the ACL confining the gateway to its own topics. A failure to update
the broker files rolls the registration back.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Request, Response

from api.broker_acl import BrokerFiles, BrokerFilesError, new_password
from api.deps import Principal, audit, connection, requires
from api.inventory import crud, store
from api.inventory.models import (
    GatewayIn,
    GatewayOut,
    GatewayPatch,
    GatewayRegistered,
    MqttCredentials,
    MqttTopics,
)
from api.settings import Settings
from territoire_kernel.topics import TopicKind, topic

router = APIRouter(tags=["Inventaire"])
Conn = Annotated[psycopg.AsyncConnection[Any], Depends(connection)]
Reader = Annotated[Principal, Depends(requires("read"))]
Writer = Annotated[Principal, Depends(requires("write"))]


def _credentials(tenant: str, gateway: str, password: str, written: bool) -> MqttCredentials:
    topics = MqttTopics(
        up=topic(tenant, gateway, TopicKind.UP),
        status=topic(tenant, gateway, TopicKind.STATUS),
        cmd=topic(tenant, gateway, TopicKind.COMMAND),
        cmd_result=topic(tenant, gateway, TopicKind.COMMAND_RESULT),
    )
    return MqttCredentials(username=gateway, password=password, topics=topics, broker_files_written=written)


def _broker_files(request: Request) -> BrokerFiles | None:
    settings: Settings = request.app.state.settings
    if settings.broker_acl_dir is None:
        return None
    return BrokerFiles(settings.broker_acl_dir, settings.broker_reload_command)


async def _all_gateways(conn: store.Conn) -> list[tuple[str, str]]:
    rows = await store.fetch(conn, "SELECT id, tenant_id FROM gateways ORDER BY id")
    return [(row["id"], row["tenant_id"]) for row in rows]


async def _provision(request: Request, conn: store.Conn, gateway: str, password: str) -> bool:
    files = _broker_files(request)
    if files is None:
        return False
    try:
        await asyncio.to_thread(files.register, gateway, password, await _all_gateways(conn))
    except (BrokerFilesError, OSError) as exc:
        raise HTTPException(503, f"the broker files could not be updated: {exc}") from None
    return True


@router.get("/tenants/{tenant}/gateways", response_model=list[GatewayOut],
            summary="Gateways with their live state (state, last_seen, buffer, dropped, clock)")  # fmt: skip
async def list_gateways(tenant: str, principal: Reader, conn: Conn) -> list[store.Row]:
    return await crud.listing(conn, principal, tenant, "gateways")


@router.get("/tenants/{tenant}/gateways/{gateway}", response_model=GatewayOut)
async def get_gateway(tenant: str, gateway: str, principal: Reader, conn: Conn) -> store.Row:
    return await crud.one(conn, principal, tenant, "gateways", gateway)


@router.post("/tenants/{tenant}/gateways", response_model=GatewayRegistered, status_code=201,
             summary="Register a gateway; its MQTT password is in this answer only")  # fmt: skip
async def create_gateway(
    tenant: str, body: GatewayIn, request: Request, principal: Writer, conn: Conn
) -> dict[str, Any]:
    row = await crud.create(conn, principal, tenant, "gateways", body)
    password = new_password()
    written = await _provision(request, conn, body.id, password)
    return {**row, "mqtt": _credentials(tenant, body.id, password, written)}


@router.post("/tenants/{tenant}/gateways/{gateway}/credentials", response_model=MqttCredentials,
             summary="Issue a new MQTT password for a gateway (the old one stops working)")  # fmt: skip
async def rotate_credentials(
    tenant: str, gateway: str, request: Request, principal: Writer, conn: Conn
) -> MqttCredentials:
    await store.tenant_for(conn, principal, tenant, write=True)
    await crud.one(conn, principal, tenant, "gateways", gateway)
    password = new_password()
    written = await _provision(request, conn, gateway, password)
    await audit(conn, principal, "gateway.credentials", f"gateway:{gateway}", {"tenant": tenant})
    return _credentials(tenant, gateway, password, written)


@router.patch("/tenants/{tenant}/gateways/{gateway}", response_model=GatewayOut)
async def update_gateway(
    tenant: str, gateway: str, body: GatewayPatch, principal: Writer, conn: Conn
) -> store.Row:
    return await crud.update(conn, principal, tenant, "gateways", key=gateway, body=body)


@router.delete("/tenants/{tenant}/gateways/{gateway}", status_code=204,
               summary="Delete a gateway and its broker account")  # fmt: skip
async def delete_gateway(
    tenant: str, gateway: str, request: Request, principal: Writer, conn: Conn
) -> Response:
    await crud.delete(conn, principal, tenant, "gateways", gateway)
    files = _broker_files(request)
    if files is not None:
        try:
            await asyncio.to_thread(files.unregister, gateway, await _all_gateways(conn))
        except (BrokerFilesError, OSError) as exc:
            raise HTTPException(503, f"the broker files could not be updated: {exc}") from None
    return Response(status_code=204)
