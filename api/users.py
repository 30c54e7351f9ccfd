"""Accounts, tenant grants and bearer tokens.

A token is "<id>.<secret>": the id finds the row, the secret is checked
against an argon2 hash, so a stolen database copy does not give working tokens.
"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import psycopg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

Role = Literal["admin", "technician", "viewer", "analyst"]
ROLES: tuple[Role, ...] = ("admin", "technician", "viewer", "analyst")

# Tokens carry 256 random bits, so a light argon2 cost is enough; passwords get the default cost.
_TOKEN_HASHER = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)
_PASSWORD_HASHER = PasswordHasher()


class UserError(ValueError):
    """A request about accounts that cannot be honoured; the message says why."""


@dataclass(frozen=True)
class Account:
    subject: str
    role: Role
    tenants: frozenset[str] | None  # None: every tenant (admins)
    expires_at: datetime | None = None  # of the token that authenticated it, if any


def _role(value: str) -> Role:
    if value not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}, not {value!r}")
    return value


def create_user(
    conn: psycopg.Connection[Any],
    subject: str,
    role: str,
    tenants: list[str] | tuple[str, ...] = (),
    password: str | None = None,
) -> Account:
    checked = _role(role)
    if checked != "admin" and not tenants:
        raise UserError(f"a {checked} account needs at least one tenant")
    password_hash = _PASSWORD_HASHER.hash(password) if password else None
    conn.execute(
        "INSERT INTO api_users (subject, role, password_hash) VALUES (%s, %s, %s)"
        " ON CONFLICT (subject) DO UPDATE SET role = EXCLUDED.role,"
        " password_hash = COALESCE(EXCLUDED.password_hash, api_users.password_hash)",
        (subject, checked, password_hash),
    )
    conn.execute("DELETE FROM api_user_tenants WHERE subject = %s", (subject,))
    for tenant in tenants:
        conn.execute("INSERT INTO api_user_tenants (subject, tenant_id) VALUES (%s, %s)", (subject, tenant))
    return Account(subject, checked, None if checked == "admin" else frozenset(tenants))


def issue_token(
    conn: psycopg.Connection[Any], subject: str, *, ttl: timedelta | None = None, label: str = ""
) -> str:
    row = conn.execute("SELECT 1 FROM api_users WHERE subject = %s AND NOT disabled", (subject,)).fetchone()
    if row is None:
        raise UserError(f"no active account {subject!r}")
    token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    expires = datetime.now(UTC) + ttl if ttl else None
    conn.execute(
        "INSERT INTO api_tokens (id, subject, secret_hash, expires_at, label) VALUES (%s, %s, %s, %s, %s)",
        (token_id, subject, _TOKEN_HASHER.hash(secret), expires, label),
    )
    return f"{token_id}.{secret}"


async def issue_token_async(
    conn: psycopg.AsyncConnection[Any], subject: str, *, ttl: timedelta, label: str = ""
) -> str:
    token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO api_tokens (id, subject, secret_hash, expires_at, label) VALUES (%s, %s, %s, %s, %s)",
        (token_id, subject, _TOKEN_HASHER.hash(secret), datetime.now(UTC) + ttl, label),
    )
    return f"{token_id}.{secret}"


async def _account(conn: psycopg.AsyncConnection[Any], subject: str, role: str) -> Account:
    if role == "admin":
        return Account(subject, "admin", None)
    cursor = await conn.execute("SELECT tenant_id FROM api_user_tenants WHERE subject = %s", (subject,))
    return Account(subject, _role(role), frozenset(r[0] for r in await cursor.fetchall()))


async def verify_token(conn: psycopg.AsyncConnection[Any], token: str) -> Account | None:
    token_id, _, secret = token.partition(".")
    if not secret or len(token_id) != 16:
        return None
    cursor = await conn.execute(
        "SELECT t.subject, t.secret_hash, u.role, t.expires_at FROM api_tokens t JOIN api_users u USING (subject)"
        " WHERE t.id = %s AND t.revoked_at IS NULL AND NOT u.disabled"
        " AND (t.expires_at IS NULL OR t.expires_at > now())",
        (token_id,),
    )
    row = await cursor.fetchone()
    if row is None:
        return None
    try:
        _TOKEN_HASHER.verify(row[1], secret)
    except (VerificationError, InvalidHashError):
        return None
    account = await _account(conn, row[0], row[2])
    return dataclasses.replace(account, expires_at=row[3])


async def verify_password(conn: psycopg.AsyncConnection[Any], subject: str, password: str) -> Account | None:
    cursor = await conn.execute(
        "SELECT password_hash, role FROM api_users WHERE subject = %s AND NOT disabled", (subject,)
    )
    row = await cursor.fetchone()
    if row is None or row[0] is None:
        _PASSWORD_HASHER.hash(password)  # same cost whether or not the account exists
        return None
    try:
        _PASSWORD_HASHER.verify(row[0], password)
    except (VerificationError, InvalidHashError):
        return None
    return await _account(conn, subject, row[1])
