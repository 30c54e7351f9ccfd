"""The dashboard's browser session: a bearer token kept in an httpOnly, SameSite=Strict cookie.

The token is an ordinary API token (api.users), so revoking it in the API ends
the session too. Pages also accept an `Authorization: Bearer` header, which
lets scripts and the authorisation-matrix test read them like the JSON API.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from fastapi import Request, Response

from api.deps import Principal, verified_account

COOKIE = "territoire_session"
COOKIE_PATH = "/tableau"
SESSION_TTL = timedelta(hours=12)


def session_token(request: Request) -> str | None:
    token = request.cookies.get(COOKIE)
    if token:
        return token
    scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
    return bearer if scheme.lower() == "bearer" and bearer else None


async def principal_of(request: Request) -> Principal | None:
    token = session_token(request)
    if token is None or len(token) > 200:
        return None
    # The JSON API's cache: a page view needs no second argon2 check within the cache delay.
    account = await verified_account(request, token)
    if account is None:
        return None
    return Principal(account.subject, account.role, account.tenants)


def requires_session() -> Callable[[Request], Awaitable[Principal | None]]:
    """Dependency of every page: the signed-in reader, or None (the page then answers 401 with the login form).

    Every role may read the dashboard, so the route's access kind is "read";
    the tenant check (Principal.can_read) is done by each page.
    """

    async def dependency(request: Request) -> Principal | None:
        return await principal_of(request)

    dependency.access_kind = "read"  # type: ignore[attr-defined]
    dependency.__name__ = "requires_dashboard_session"
    return dependency


def set_session_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(SESSION_TTL.total_seconds()),
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")
