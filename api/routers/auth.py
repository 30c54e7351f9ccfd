"""Login (OAuth2 password flow) and the caller's own identity."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, Form, HTTPException, Request
from pydantic import BaseModel

from api.deps import Principal, connection, requires
from api.users import issue_token_async, verify_password

router = APIRouter(tags=["Authentification"])


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


class Me(BaseModel):
    subject: str
    role: str
    tenants: list[str] | None


@router.post("/auth/token", response_model=TokenOut)
async def login(
    request: Request,
    username: Annotated[str, Form(min_length=1, max_length=200)],
    password: Annotated[str, Form(min_length=1, max_length=1000)],
    conn: Annotated[psycopg.AsyncConnection[Any], Depends(connection)],
    _: Annotated[Principal, Depends(requires("public"))],
) -> TokenOut:
    account = await verify_password(conn, username, password)
    if account is None:
        raise HTTPException(401, "unknown account or wrong password", headers={"WWW-Authenticate": "Bearer"})
    ttl = request.app.state.settings.token_ttl_s
    token = await issue_token_async(conn, account.subject, ttl=timedelta(seconds=ttl), label="login")
    return TokenOut(access_token=token, expires_in=ttl)


@router.get("/auth/me", response_model=Me)
async def me(principal: Annotated[Principal, Depends(requires("read"))]) -> Me:
    tenants = None if principal.tenants is None else sorted(principal.tenants)
    return Me(subject=principal.subject, role=principal.role, tenants=tenants)
