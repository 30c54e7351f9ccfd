"""Request-scoped dependencies: who is calling, a database connection, audit.

Every route declares what it does with `Depends(requires(kind))`; the
authorisation-matrix test walks the routes and fails on one without it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
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
# A verified token is remembered briefly: argon2 is slow by design (10–17 ms per check here, several
# times a small series). Revocation through forget_token is immediate in this process; elsewhere
# (another worker, SQL) it waits for the end of _CACHE_S.
_CACHE_S = 10.0
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


@asynccontextmanager
async def reading(request: Request) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """For handlers that only run plain SELECTs: autocommit spares the BEGIN and COMMIT round trips
    (a third of the database time of a small series). Switching autocommit is client-side in psycopg
    (no round trip while idle); the pool's reset turns it off again, also without one."""
    async with request.app.state.pool.connection() as conn:
        await conn.set_autocommit(True)
        yield conn


async def read_connection(request: Request) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """`reading` as a dependency. A hot handler can enter `reading` itself instead: FastAPI's
    generator-dependency machinery costs more than the pool checkout (docs/benchmarks.md)."""
    async with reading(request) as conn:
        yield conn


def session_settings(timescale: bool) -> tuple[str, ...]:
    """What every API session sets. UTC whatever the server's default: times read back as Python
    objects and those PostgreSQL writes as JSON (api/series/formats.py) then agree.

    On TimescaleDB, custom plans only: psycopg prepares a statement from its sixth run, and
    PostgreSQL may then switch it to a generic plan, which cannot exclude chunks at plan time
    (timescale/timescaledb#2594). The one-device series then read every chunk of the continuous
    aggregate, 13.7 ms instead of 5.7 (bench/bench_plan_modes.py). Re-planning costs less."""
    custom_plans = ("SET plan_cache_mode = force_custom_plan",) if timescale else ()
    return ("SET TIME ZONE 'UTC'", *custom_plans)


async def configure_pooled(conn: psycopg.AsyncConnection[Any]) -> None:
    """Run by the pool on each new connection: the session settings, TimescaleDB detected."""
    found = await conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")
    for statement in session_settings(await found.fetchone() is not None):
        await conn.execute(statement)
    await conn.commit()


async def reset_pooled(conn: psycopg.AsyncConnection[Any]) -> None:
    """Run by the pool on every returned connection, which it hands over idle."""
    if conn.autocommit:
        await conn.set_autocommit(False)


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


async def _authenticate(request: Request) -> Account:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("send 'Authorization: Bearer <token>' (get one from POST /auth/token)")
    account = await verified_account(request, token)
    if account is None:
        raise _unauthorized("the token is unknown, expired or revoked")
    return account


async def verified_account(request: Request, token: str) -> Account | None:
    """The token's account, from the short cache or checked against the database (argon2)."""
    key = _key(token)
    cached = _cache.get(key)
    now = time.monotonic()
    if cached is not None and cached[0] > now:
        return cached[1]
    async with request.app.state.pool.connection() as conn:
        account = await verify_token(conn, token)
    if account is None:
        return None
    if len(_cache) > 10_000:
        _cache.clear()
    lifetime = _CACHE_S
    if account.expires_at is not None:  # never past the token's own expiry
        lifetime = min(lifetime, (account.expires_at - datetime.now(UTC)).total_seconds())
    _cache[key] = (now + lifetime, account)
    return account


def _key(token: str) -> bytes:
    # By digest, so the clear token never sits in memory longer than the request.
    return hashlib.sha256(token.encode()).digest()


def forget_token(token: str) -> None:
    """Call on revocation: the token stops working at once in this process."""
    _cache.pop(_key(token), None)


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
