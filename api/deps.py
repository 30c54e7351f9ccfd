"""Request-scoped dependencies: who is calling, a database connection, audit.

Every route declares what it does with `Depends(requires(kind))`; the
authorisation-matrix test walks the routes and fails on one without it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from fastapi import HTTPException, Request
from psycopg.types.json import Jsonb

from api.users import Account, Role, verify_token

AccessKind = Literal["public", "read", "write", "command", "admin"]
_ALLOWED: dict[AccessKind, frozenset[Role]] = {
    "public": frozenset({"admin", "technician", "viewer", "analyst"}),
    "read": frozenset({"admin", "technician", "viewer", "analyst"}),
    "write": frozenset({"admin", "technician"}),
    "command": frozenset({"admin", "technician"}),
    "admin": frozenset({"admin"}),
}
_CACHE_S = 30.0
_cache: dict[bytes, tuple[float, Account]] = {}


@dataclass(frozen=True)
class Principal:
    subject: str
    role: Role
    tenants: frozenset[str] | None  # None: all tenants (admin only)

    def can_read(self, tenant_id: str) -> bool:
        return self.tenants is None or tenant_id in self.tenants

    def can_write(self, tenant_id: str) -> bool:
        return self.role in ("admin", "technician") and self.can_read(tenant_id)

    def can_command(self, tenant_id: str) -> bool:
        return self.can_write(tenant_id)

    def readable_tenants(self) -> frozenset[str] | None:
        return self.tenants


ANONYMOUS = Principal("anonymous", "viewer", frozenset())


async def connection(request: Request) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """One pooled connection per request; committed when the handler returns normally."""
    async with request.app.state.pool.connection() as conn:
        yield conn


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


async def _authenticate(request: Request) -> Account:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("send 'Authorization: Bearer <token>' (get one from POST /auth/token)")
    # Cache by digest so the clear token never sits in memory longer than the request.
    key = hashlib.sha256(token.encode()).digest()
    cached = _cache.get(key)
    now = time.monotonic()
    if cached is not None and cached[0] > now:
        return cached[1]
    async with request.app.state.pool.connection() as conn:
        account = await verify_token(conn, token)
    if account is None:
        raise _unauthorized("the token is unknown, expired or revoked")
    if len(_cache) > 10_000:
        _cache.clear()
    _cache[key] = (now + _CACHE_S, account)
    return account


def forget_cached_tokens() -> None:
    """Revocation takes effect at once in this process (others within the cache delay)."""
    _cache.clear()


def requires(kind: AccessKind) -> Callable[[Request], Awaitable[Principal]]:
    async def dependency(request: Request) -> Principal:
        if kind == "public":
            return ANONYMOUS
        account = await _authenticate(request)
        if account.role not in _ALLOWED[kind]:
            raise HTTPException(403, f"the {account.role} role cannot {kind}")
        return Principal(account.subject, account.role, account.tenants)

    dependency.access_kind = kind  # type: ignore[attr-defined]
    dependency.__name__ = f"requires_{kind}"
    return dependency


async def audit(
    conn: psycopg.AsyncConnection[Any],
    principal: Principal,
    action: str,
    target: str,
    detail: dict[str, Any],
) -> None:
    """Recorded in the caller's transaction: no audit row without the write, and the reverse."""
    tenant = detail.get("tenant") or detail.get("tenant_id")
    await conn.execute(
        "INSERT INTO audit_log (subject, action, target, tenant_id, detail) VALUES (%s, %s, %s, %s, %s)",
        (principal.subject, action, target, tenant if isinstance(tenant, str) else None, Jsonb(detail)),
    )
